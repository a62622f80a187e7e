"""A phone's requests beyond the basic call: SUBSCRIBE/NOTIFY, REFER and Replaces, MESSAGE, INFO, PUBLISH
responses, 3xx redirects, forked 2xx answers, and the default answer to requests nobody handles.

:class:`PhoneServices` is owned by a Phone; the phone's dispatcher hands it requests and responses first
(on the dispatcher thread, under the phone's lock) and it says whether it took them.
"""
from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from pysiptest import eventpkg
from pysiptest._core import parse_uri
from pysiptest.events import (
    Answered,
    CallEnded,
    CallReplaced,
    ForkDropped,
    InfoReceived,
    MessageReceived,
    NotifyReceived,
    Redirected,
    RequestReceived,
    Ringing,
    SubscriptionRequested,
)
from pysiptest.subscription import IncomingSubscription, Subscription, event_of, parse_state
from pysiptest.transfer import Referral, Transfer

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.call import Call
    from pysiptest.events import CoreEvent
    from pysiptest.phone import Phone

log = logging.getLogger("pysiptest.phone")

#: response kinds (phone._track) whose final responses this module handles
KINDS = frozenset({"subscribe", "publish", "refer", "notify", "fork-bye"})
#: methods a phone knows but does not serve: 405 with Allow (others get 501)
KNOWN_METHODS = frozenset({"REGISTER", "PUBLISH", "SUBSCRIBE", "REFER", "PRACK", "UPDATE", "INFO", "MESSAGE",
                           "NOTIFY", "OPTIONS", "BYE", "INVITE"})
MAX_ANSWERED_INVITES = 1024


@dataclass
class IncomingRequest:
    """A request given to a handler of ``phone.request_handlers[method]``; answer it with :meth:`respond`."""

    phone: "Phone" = field(repr=False)
    txn_id: int
    method: str
    message: Any = field(repr=False)
    call: Optional["Call"] = field(default=None, repr=False)

    def respond(self, status: int, reason: Optional[str] = None, headers: Sequence[tuple[str, str]] = (),
                body: Union[bytes, str] = b"") -> None:
        """Send the response (once a final one, the transaction is done)."""
        self.phone.engine.core.respond(self.txn_id, status, reason, list(headers),
                                       body.encode() if isinstance(body, str) else body)


class PhoneServices:
    """Subscriptions, transfers and the other non-call requests of one phone."""

    def __init__(self, phone: "Phone") -> None:
        self.phone = phone
        self.log = log
        self.pending_subs: list[Subscription] = []       # SUBSCRIBE sent, no dialog yet
        self.subs_by_dialog: dict[int, Subscription] = {}
        self.served_by_dialog: dict[int, IncomingSubscription] = {}
        self.transfers: dict[int, list[Transfer]] = {}    # call dialog id -> our REFERs
        self.referrals: dict[int, Referral] = {}          # id(new call) -> the REFER it carries out
        self.answered_invites: "OrderedDict[int, Call]" = OrderedDict()  # INVITE txn -> call (forking)
        #: event packages this phone serves to subscribers
        self.served_events = {"presence", "message-summary", "dialog"}
        #: method -> handler(IncomingRequest): the application answers these requests itself
        self.request_handlers: dict[str, Callable[[IncomingRequest], None]] = {}

    # -- requests -----------------------------------------------------------------------------
    def on_request(self, ev: "CoreEvent", call: Optional["Call"]) -> bool:
        """A request for the phone; True when answered here."""
        msg = ev.message
        method = msg.method or ""
        handler = self.request_handlers.get(method)
        if handler is not None and method != "ACK":
            self.phone._post(RequestReceived(method, msg, call))
            handler(IncomingRequest(self.phone, ev.txn_id, method, msg, call))
            return True
        if method == "INVITE" and not ev.dialog_id and msg.header("Replaces"):
            self._replaces(ev)
            return True
        fn = {"SUBSCRIBE": self._subscribe, "NOTIFY": self._notify, "REFER": self._refer,
              "MESSAGE": self._message, "INFO": self._info}.get(method)
        if fn is None:
            return False
        fn(ev, call)
        return True

    def default_answer(self, ev: "CoreEvent", call: Optional["Call"]) -> None:
        """Nobody serves this method: 405 with Allow for a method we know, 501 otherwise (RFC 3261 8.2.1)."""
        from pysiptest.phone import ALLOW
        method = ev.message.method or ""
        self.phone.engine.core.respond(ev.txn_id, 405 if method in KNOWN_METHODS else 501, None,
                                       [("Allow", ALLOW)])
        self.phone._post(RequestReceived(method, ev.message, call))

    def _message(self, ev: "CoreEvent", call: Optional["Call"]) -> None:
        msg = ev.message
        self.phone.engine.core.respond(ev.txn_id, 200)
        sender = (msg.nameaddr("From") or {}).get("uri") or ""
        self.phone._post(RequestReceived("MESSAGE", msg, call))
        self.phone._post(MessageReceived(sender, msg.body.decode("utf-8", "replace"),
                                         msg.header("Content-Type") or "", msg))

    def _info(self, ev: "CoreEvent", call: Optional["Call"]) -> None:
        msg = ev.message
        ctype = msg.header("Content-Type") or ""
        signal = duration = None
        if ctype.split(";")[0].strip().lower() == eventpkg.DTMF_RELAY:
            signal, duration = eventpkg.parse_dtmf_relay(msg.body)
        self.phone.engine.core.respond(ev.txn_id, 200 if call is not None or not ev.dialog_id else 481)
        self.phone._post(RequestReceived("INFO", msg, call))
        self.phone._post(InfoReceived(call, ctype, msg.body, signal, duration, msg))

    def _subscribe(self, ev: "CoreEvent", call: Optional["Call"]) -> None:
        msg = ev.message
        phone = self.phone
        phone._post(RequestReceived("SUBSCRIBE", msg, call))
        served = self.served_by_dialog.get(ev.dialog_id) if ev.dialog_id else None
        if served is not None:
            served._on_refresh(ev)
            return
        pkg, eid = event_of(msg)
        if pkg not in self.served_events:
            phone.engine.core.respond(ev.txn_id, 489, "Bad Event",
                                      [("Allow-Events", ", ".join(sorted(self.served_events)))])
            return
        sub = IncomingSubscription(phone, ev.txn_id, msg, pkg, eid)
        if phone.on_subscribe is not None:
            phone.on_subscribe(sub)
        else:
            phone._post(SubscriptionRequested(sub, pkg))

    def _notify(self, ev: "CoreEvent", call: Optional["Call"]) -> None:
        msg = ev.message
        phone = self.phone
        phone._post(RequestReceived("NOTIFY", msg, call))
        pkg, eid = event_of(msg)
        sub = self.subs_by_dialog.get(ev.dialog_id) if ev.dialog_id else None
        if sub is None and ev.dialog_id:
            to_tag = (msg.nameaddr("To") or {}).get("tag")
            for s in self.pending_subs:
                if s.call_id == msg.call_id and s.from_tag == to_tag and s.event == pkg:
                    sub = s
                    break
        if sub is not None and sub.event == pkg:
            if sub in self.pending_subs:
                self.pending_subs.remove(sub)
            sub._on_notify(ev, ev.txn_id)
            return
        if pkg == "refer" and ev.dialog_id in self.transfers:
            xfers = self.transfers[ev.dialog_id]
            match = [x for x in xfers if eid is None or str(x.cseq) == eid]
            xfer = (match or xfers)[-1]
            xfer._on_notify(ev, ev.txn_id)
            return
        # unsolicited (e.g. MWI from a voicemail server) or for a call: answered 200 and reported
        state, params = parse_state(msg.header("Subscription-State"))
        phone.engine.core.respond(ev.txn_id, 200)
        phone._post(NotifyReceived(pkg, state, msg.body, msg.header("Content-Type") or "",
                                   params.get("reason", ""), msg, None))

    def _refer(self, ev: "CoreEvent", call: Optional["Call"]) -> None:
        msg = ev.message
        phone = self.phone
        phone._post(RequestReceived("REFER", msg, call))
        if call is None or call.state != "confirmed":
            phone.engine.core.respond(ev.txn_id, 403 if not ev.dialog_id else 481,
                                      "REFER only inside a call" if not ev.dialog_id else None)
            return
        Referral(phone, call, ev).start()

    def _replaces(self, ev: "CoreEvent") -> None:
        """An INVITE with Replaces (RFC 3891 3): answer it at once in place of the matched call, BYE that."""
        phone = self.phone
        msg = ev.message
        value = msg.header("Replaces") or ""
        cid, _, rest = value.partition(";")
        params = dict(p.strip().partition("=")[::2] for p in rest.split(";") if p.strip())
        old = None
        for c in phone.calls:
            if c.call_id != cid.strip() or not c.dialog_id or c.state != "confirmed":
                continue
            try:
                info = phone.engine.core.dialog_info(c.dialog_id)
            except KeyError:
                continue
            if info["local_tag"] == params.get("to-tag") and info["remote_tag"] == params.get("from-tag"):
                old = c
                break
        if old is None:
            phone.engine.core.respond(ev.txn_id, 481)
            phone._post(RequestReceived("INVITE", msg, None))
            return
        phone._incoming_invite(ev)
        new = phone._calls_by_txn.get(ev.txn_id)
        if new is None:  # the device refused the call
            return
        new.answer()
        old.hangup()
        phone._post(CallReplaced(old, new))

    # -- responses ----------------------------------------------------------------------------
    def on_response(self, ev: "CoreEvent", kind: str, obj: Any) -> None:
        """A response to a SUBSCRIBE, PUBLISH, REFER, NOTIFY or fork BYE of ours (after ResponseReceived)."""
        if ev.status < 200:
            return
        if kind in ("subscribe", "publish", "refer") and obj is not None:
            obj._on_final(ev)

    def on_timeout(self, kind: str, obj: Any) -> None:
        """A SUBSCRIBE or PUBLISH that got no answer."""
        if kind in ("subscribe", "publish") and obj is not None:
            if kind == "subscribe":
                obj._end("no answer (timeout)")
            obj._done(408)

    # -- INVITE: forking and redirects ------------------------------------------------------------
    def on_invite_2xx(self, ev: "CoreEvent", call: "Call") -> None:
        """The first 2xx of ``call``'s INVITE: later ones from other forks are dropped (forked_2xx)."""
        self.answered_invites[ev.txn_id] = call
        while len(self.answered_invites) > MAX_ANSWERED_INVITES:
            self.answered_invites.popitem(last=False)

    def forked_2xx(self, ev: "CoreEvent") -> bool:
        """A 2xx for an INVITE already answered, from another fork (a new dialog the engine ACKed): BYE it."""
        call = self.answered_invites.get(ev.txn_id)
        if call is None or not ev.dialog_id or ev.dialog_id == call.dialog_id or not 200 <= ev.status < 300:
            return False
        phone = self.phone
        txn = phone.engine.core.dialog_request(ev.dialog_id, "BYE")
        phone._track(txn, "fork-bye", None)
        phone._post(ForkDropped(call, (ev.message.nameaddr("To") or {}).get("tag") or ""))
        return True

    def redirect(self, ev: "CoreEvent", call: "Call") -> bool:
        """A 3xx to our INVITE: a new INVITE to the best Contact not tried yet, same Call-ID and From tag,
        CSeq + 1 (RFC 3261 8.1.3.4), at most ``phone.max_redirects`` times; True when one went."""
        phone = self.phone
        msg = ev.message
        headers = getattr(call, "_invite_headers", None)
        if not 300 <= ev.status < 400 or msg is None or headers is None or call.state == "terminating":
            return False
        tried: set[str] = call.__dict__.setdefault("_redirect_tried", set())
        if len(tried) >= phone.max_redirects:
            return False

        def q(c: Any) -> float:
            try:
                return float(c.param("q") or 1)
            except ValueError:
                return 0.0
        contacts = sorted(msg.contacts, key=q, reverse=True)
        uri = next((c.uri for c in contacts if c.uri.startswith(("sip:", "sips:")) and c.uri not in tried), None)
        if uri is None:
            return False
        tried.add(uri)
        new_headers = []
        for n, v in headers:
            if n.lower() == "cseq":
                v = f"{int(v.split()[0]) + 1} INVITE"
            new_headers.append((n, v))
        try:
            u = parse_uri(uri)
            ipaddress.ip_address(u["host"].strip("[]"))
            dest = (u["host"].strip("[]"), u["port"] or 5060)
        except (ValueError, KeyError, TypeError):
            dest = phone._target()
        ruri = uri.split("?")[0]
        body = getattr(call, "_invite_body", b"")
        txn = phone.engine.core.request(phone.transport_id, dest[0], dest[1], "INVITE", ruri, new_headers, body)
        phone._retry.remember(txn, "INVITE", ruri, new_headers, body, dest=dest)
        phone._calls_by_txn.pop(ev.txn_id, None)
        phone._calls_by_txn[txn] = call
        call.invite_txn = txn
        call._invite_headers = new_headers
        call.redirected_to = ruri
        phone._post(Redirected(call, ev.status, ruri))
        return True

    # -- events the phone posted ----------------------------------------------------------------
    def on_posted(self, ev: Any) -> None:
        """Follow the calls placed for a REFER: their progress goes to the transferor as NOTIFYs."""
        if isinstance(ev, (Ringing, Answered, CallEnded)) and self.referrals:
            ref = self.referrals.get(id(ev.call))
            if ref is not None:
                with self.phone._lock:
                    ref.on_event(ev)
