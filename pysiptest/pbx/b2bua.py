"""The reference PBX: a registrar and a back-to-back user agent on the pysiptest engine.

Why a B2BUA and not a proxy: a PBX owns both call legs (it answers, forwards
to voicemail, records, sends MWI, transfers), which is what Asterisk or
FreeSWITCH do and what the features test; Kamailio covers the proxy case.
Each call is two dialogs, the caller's (A) and the callee's (B), joined in
Python per call event; retransmissions, ACKs and 100 Trying stay in C.  SDP
passes through unchanged, so media flows directly between the phones.

Features: per-user DND and unconditional forwarding (:meth:`ReferencePBX.set_dnd`,
:meth:`ReferencePBX.set_forward`); forwarding to the voicemail user (default ``voicemail``, when it is
registered) on DND, busy (486/600/603), no answer (``no_answer_timeout``) and B-leg timeouts, with a
``Diversion`` header (RFC 5806) naming the mailbox owner; relay of in-dialog requests (re-INVITE, UPDATE,
INFO, MESSAGE, NOTIFY, REFER, SUBSCRIBE) to the other leg and of out-of-dialog MESSAGE, NOTIFY, INFO and
OPTIONS to registered users (:mod:`pysiptest.pbx.outdialog`); SUBSCRIBE to a registered user relayed as a
subscription of our own (:mod:`pysiptest.pbx.subrelay`); reliable provisionals (RFC 3262) on both legs when
the caller offers 100rel; session timers (RFC 4028) agreed across both legs (:mod:`pysiptest.pbx.timers`);
Replaces (RFC 3891) translated between legs for attended transfer (:mod:`pysiptest.pbx.replaces`); an
optional user list (REGISTER from anyone else is refused with 403), digest challenges for REGISTER (401,
:func:`pysiptest.pbx.registrar.register`) and the users' initial requests (407, :mod:`pysiptest.pbx.access`);
UDP and TCP on one port, and TLS with a certificate.

100rel: a caller's INVITE with 100rel in Supported or Require makes the B-leg INVITE offer it (Supported).
The engine PRACKs the callee's reliable 18x; the PBX relays an 18x to the caller reliably when the caller
requires 100rel, or offers it and the callee's 18x was reliable.  One reliable 18x is outstanding on the A
leg at a time: a further one before the caller's PRACK goes unreliably (or, when the caller requires
100rel, is not relayed).  A 2xx that follows a reliable 18x with SDP waits in the engine for the caller's
PRACK (RFC 3262 3).  The caller's PRACKs are answered by the engine and end there.
"""
from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Optional

from pysiptest._uri import hostport as _hostport
from pysiptest._uri import uri_host
from pysiptest._uri import uri_user as _user_of
from pysiptest.auth import DigestServer
from pysiptest.engine import Engine
from pysiptest.errors import EngineError
from pysiptest.events import CoreEvent
from pysiptest.pbx import replaces, timers
from pysiptest.pbx.access import RequestAuth
from pysiptest.pbx.registrar import Registrar, register
from pysiptest.pbx.outdialog import relay_out_of_dialog
from pysiptest.pbx.subrelay import SubscriptionRelay
from pysiptest.transport import TlsConfig

log = logging.getLogger("pysiptest.pbx")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, NOTIFY, INFO, UPDATE, REFER, SUBSCRIBE, PRACK"
#: B-leg final statuses that send the call to voicemail, with the Diversion reason
FORWARD_ON = {486: "user-busy", 600: "user-busy", 603: "user-busy", 408: "no-answer", 480: "no-answer"}
#: headers copied from a relayed request or response
_COPY = ("Content-Type", "Event", "Subscription-State", "Refer-To", "Referred-By", "Accept", "Expires",
         "Session-Expires", "Min-SE", "Require", "Supported", "Diversion", "Allow", "Allow-Events")


#: methods whose requests and 2xx carry our Contact (they set or refresh a dialog's remote target)
_TARGET_METHODS = ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY")


def _option_tags(msg: object, name: str) -> set[str]:
    """The option tags of every ``name`` header (Supported, Require) of msg, lower case."""
    return {t.strip().lower() for v in msg.headers_all(name) for t in v.split(",") if t.strip()}  # type: ignore


def _cseq_method(msg: object) -> str:
    """The method in a message's CSeq ("" without one); Message.cseq is a property (or, before, a method)."""
    c = getattr(msg, "cseq", None)
    c = c() if callable(c) else c
    return c[1] if c else ""


@dataclass
class Bridge:
    """One call through the PBX: the A leg (caller to us) and the B leg (us to the callee)."""

    caller: str
    callee: str
    a_txn: int
    b_txn: int = 0
    a_dialog: int = 0
    b_dialog: int = 0
    answered: bool = False
    ended: bool = False
    #: the user the B leg rings now (the callee, a forwarding target or the voicemail user)
    target: str = ""
    #: why the call was forwarded ("do-not-disturb", "user-busy", "no-answer", "unconditional"), "" if not
    diverted: str = ""
    #: set when we CANCELled the B leg to forward it (no answer); the 487 then starts the next leg
    forward_after_cancel: str = ""
    caller_display: str = ""
    offer: bytes = b""
    offer_type: str = ""
    #: the caller's INVITE offers (Supported) / requires 100rel (RFC 3262)
    a_100rel: bool = False
    a_requires_100rel: bool = False
    #: the caller's session timer request (RFC 4028), None without one
    timer: Optional[timers.TimerOffer] = None
    #: the PBX's watch over the agreed session interval (ends both legs without refreshes), None without one
    guard: Optional[timers.SessionGuard] = None
    #: the caller's INVITE named a dialog to replace (RFC 3891), as sent on the B leg
    replaces: str = ""
    #: engine transports of the two legs (for our Contact: sip, sip;transport=tcp or sips)
    a_transport: int = 0
    b_transport: int = 0
    history: list[str] = field(default_factory=list)


class ReferencePBX:
    """Registrar plus call routing between registered users, on UDP and TCP on one port (and TLS).

    ``users`` (name to password) limits who may register; None accepts anyone. With ``auth_algorithm``
    (e.g. "SHA-256", "MD5") REGISTER is challenged with digest authentication (RFC 7616/8760) and must
    be answered with the user's password; the users' initial INVITE, MESSAGE, SUBSCRIBE and REFER are then
    challenged with 407 too (:mod:`pysiptest.pbx.access`) unless ``challenge_requests`` is False.
    ``voicemail_user`` is the account calls are forwarded to; ``no_answer_timeout`` seconds of ringing
    forward a call there. ``tls`` (a :class:`~pysiptest.transport.TlsConfig` with the certificate and key)
    adds a TLS listener on ``tls_port`` (0: a free one; :attr:`tls_port` says which); phones registered over
    TLS are called over it with a ``sips:`` Contact.
    """

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, domain: Optional[str] = None,
                 users: Optional[dict[str, str]] = None, voicemail_user: str = "voicemail",
                 no_answer_timeout: float = 5.0, auth_algorithm: Optional[str] = None,
                 challenge_requests: Optional[bool] = None, tls: Optional[TlsConfig] = None,
                 tls_port: int = 0) -> None:
        self.engine = engine
        self.host = host
        self.registrar = Registrar()
        self.transport_id, self.port = engine.listen_udp(host, port, self)
        #: TCP on the same port (phones such as Chipmunk5000 register and call over TCP); None if it was taken
        self.tcp_transport_id: Optional[int] = None
        try:
            self.tcp_transport_id, _ = engine.listen_tcp(host, self.port, self)
        except Exception as exc:  # UDP still works: say why TCP does not
            log.warning("reference PBX: no TCP on %s: %s", _hostport(host, self.port), exc)
        self.domain = uri_host(domain or host)
        self.users = dict(users) if users is not None else None
        self.auth: Optional[DigestServer] = None
        if auth_algorithm:
            if self.users is None:
                raise ValueError("digest authentication needs a users list (name to password)")
            self.auth = DigestServer(self.domain.strip("[]"), self.users, auth_algorithm)
        if challenge_requests and self.auth is None:
            raise ValueError("challenging INVITE/MESSAGE needs digest authentication (auth_algorithm and users)")
        #: 407 challenges for the users' initial requests (on by default with digest authentication)
        self.request_auth: Optional[RequestAuth] = None
        if self.auth is not None and challenge_requests is not False:
            self.request_auth = RequestAuth(self.auth.realm, self.auth.users, self.auth.algorithm)
        #: the TLS listener (transport id, port), when given a certificate
        self.tls_transport_id: Optional[int] = None
        self.tls_port = 0
        if tls is not None:
            if not (tls.cert and tls.key):
                raise ValueError("a TLS listener needs a certificate and a key (TlsConfig cert and key)")
            self.tls_transport_id, self.tls_port = engine.listen_tls(host, tls_port, self, tls)
        self.voicemail_user = voicemail_user
        self.no_answer_timeout = no_answer_timeout
        #: a REGISTER asking for less (but not 0) is answered 423 with Min-Expires (RFC 3261 10.3); 0: never
        self.min_expires = 0
        #: an INVITE asking for a shorter session interval is answered 422 with this Min-SE (RFC 4028); 0: never
        self.min_se = 0
        self.dnd: set[str] = set()
        self.forward: dict[str, str] = {}
        self.calls: list[Bridge] = []
        self._by_a_txn: dict[int, Bridge] = {}
        self._by_b_txn: dict[int, Bridge] = {}
        self._by_dialog: dict[int, tuple[Bridge, str]] = {}
        self._relays: dict[int, int] = {}  # our request's txn -> the txn of the request it relays
        self._relay_tp: dict[int, int] = {}  # the relayed request's txn -> the transport it came on
        self.subscriptions = SubscriptionRelay(self)
        self.log = log
        self._lock = threading.RLock()

    @property
    def contact(self) -> str:
        """The PBX's own Contact URI."""
        return f"sip:pbx@{_hostport(self.host, self.port)}"

    def _contact_on(self, transport_id: int) -> str:
        """Our Contact URI for a leg on this transport (``;transport=tcp`` on TCP, ``sips:`` on TLS)."""
        if transport_id and transport_id == self.tls_transport_id:
            return f"sips:pbx@{_hostport(self.host, self.tls_port)}"
        tcp = bool(transport_id) and transport_id == self.tcp_transport_id
        return self.contact + (";transport=tcp" if tcp else "")

    # -- control ----------------------------------------------------------------------------
    def set_dnd(self, user: str, on: bool) -> None:
        """Turn Do Not Disturb on or off for a user: calls go to voicemail (or 486 without one)."""
        with self._lock:
            (self.dnd.add if on else self.dnd.discard)(user)

    def set_forward(self, user: str, target: Optional[str]) -> None:
        """Forward every call for user to target (a user name); None turns forwarding off."""
        with self._lock:
            if target:
                self.forward[user] = target
            else:
                self.forward.pop(user, None)

    def voicemail_available(self) -> bool:
        """True when the voicemail user is registered."""
        return bool(self.voicemail_user and self.registrar.lookup(self.voicemail_user))

    # -- dispatch (dispatcher thread) -------------------------------------------------------
    def _on_core_event(self, ev: CoreEvent) -> None:
        with self._lock:
            try:
                if ev.kind == "request":
                    self._on_request(ev)
                elif ev.kind == "response":
                    self._on_response(ev)
                elif ev.kind == "cancelled":
                    self._on_cancelled(ev)
                elif ev.kind == "timeout":
                    self._on_timeout(ev)
                elif ev.kind == "dialog_ended":
                    self._by_dialog.pop(ev.dialog_id, None)
            except Exception:
                log.exception("PBX failed on %s event", ev.kind)

    def _respond(self, txn: int, status: int, reason: Optional[str] = None, headers: list[tuple[str, str]] = (),
                 body: bytes = b"") -> int:
        try:
            return self.engine.core.respond(txn, status, reason, list(headers), body)
        except (KeyError, ValueError, EngineError) as exc:
            log.debug("respond %d on %d failed: %s", status, txn, exc)
            return 0

    def _on_request(self, ev: CoreEvent) -> None:
        msg = ev.message
        method = msg.method
        if self.request_auth is not None and not self.request_auth.admit(self, ev):
            return
        if method == "REGISTER":
            register(self, ev)
        elif method == "INVITE" and not ev.dialog_id:
            self._invite(ev)
        elif method in ("ACK", "PRACK"):
            return  # the engine ACKs the callee's 2xx, answers the caller's PRACK and PRACKs the callee's 18x
        elif method == "BYE":
            self._bye(ev)
        elif ev.dialog_id:
            self._relay_in_dialog(ev)
        elif method == "SUBSCRIBE":
            self.subscriptions.subscribe(ev)
        elif method in ("MESSAGE", "NOTIFY", "INFO") or (method == "OPTIONS" and _user_of(msg.uri or "")):
            relay_out_of_dialog(self, ev)
        elif method == "OPTIONS":
            self._respond(ev.txn_id, 200, None, [("Allow", ALLOW)])
        else:
            self._respond(ev.txn_id, 405, None, [("Allow", ALLOW)])

    # -- calls ------------------------------------------------------------------------------
    def _invite(self, ev: CoreEvent) -> None:
        msg = ev.message
        caller_na = msg.nameaddr("From") or {}
        caller = _user_of(caller_na.get("uri", "")) or "anonymous"
        callee = _user_of(msg.uri or "")
        if not callee:
            self._respond(ev.txn_id, 484, "Address Incomplete")
            return
        br = Bridge(caller=caller, callee=callee, a_txn=ev.txn_id, target=callee,
                    caller_display=caller_na.get("display") or caller, offer=msg.body or b"",
                    offer_type=msg.header("Content-Type") or "")
        br.a_requires_100rel = "100rel" in _option_tags(msg, "Require")
        br.a_100rel = br.a_requires_100rel or "100rel" in _option_tags(msg, "Supported")
        br.a_transport = ev.transport_id
        br.timer = timers.offer_of(msg)
        too_small = timers.too_small(br.timer, self.min_se)
        if too_small is not None:  # RFC 4028 8.1.1
            self._respond(ev.txn_id, 422, "Session Interval Too Small", too_small)
            return
        value = msg.header("Replaces")
        if value:
            br.replaces = replaces.translate(value, self._leg_pairs(), self.engine.core.dialog_info) or value
        if callee in self.forward:
            br.target, br.diverted = self.forward[callee], "unconditional"
        if br.target in self.dnd:
            if not self.voicemail_available():
                self._respond(ev.txn_id, 486, "Busy Here (Do Not Disturb)")
                return
            br.target, br.diverted = self.voicemail_user, "do-not-disturb"
        if not self.registrar.lookup(br.target):
            self._respond(ev.txn_id, 404, f"User {br.target} Not Registered")
            return
        self.calls.append(br)
        self._by_a_txn[br.a_txn] = br
        if not self._start_b_leg(br):
            self._by_a_txn.pop(br.a_txn, None)
            self._respond(ev.txn_id, 480, "Temporarily Unavailable")

    def _start_b_leg(self, br: Bridge) -> bool:
        """INVITE br.target; False when it cannot be sent."""
        bindings = self.registrar.lookup(br.target)
        if not bindings:
            return False
        b = bindings[0]
        headers = [
            ("From", f"\"{br.caller_display}\" <sip:{br.caller}@{self.domain}>;tag={secrets.token_hex(6)}"),
            ("To", f"<sip:{br.callee}@{self.domain}>"),
            ("Call-ID", secrets.token_hex(10)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{self._contact_on(b.transport_id)}>"),
            *timers.b_leg_headers(br.timer, self.min_se),
        ]
        if br.replaces:
            headers.append(("Replaces", br.replaces))
        if br.diverted:
            headers.append(("Diversion", f"<sip:{br.callee}@{self.domain}>;reason={br.diverted};counter=1"))
        if br.offer and br.offer_type:
            headers.append(("Content-Type", br.offer_type))
        tags = [t for t, on in (("100rel", br.a_100rel), ("timer", br.timer and br.timer.supported),
                                ("replaces", bool(br.replaces))) if on]
        if tags:
            headers.append(("Supported", ", ".join(tags)))
        try:
            txn = self.engine.core.request(b.transport_id or self.transport_id, b.host, b.port, "INVITE", b.contact,
                                           headers, br.offer)
        except Exception as exc:
            log.warning("cannot call %s at %s: %s", br.target, b.contact, exc)
            return False
        br.b_txn, br.b_dialog, br.b_transport = txn, 0, b.transport_id or self.transport_id
        br.history.append(f"B INVITE {br.target}")
        self._by_b_txn[txn] = br
        if br.target != self.voicemail_user and self.no_answer_timeout > 0:
            self.engine.call_later(self.no_answer_timeout, lambda: self._no_answer(br, txn))
        return True

    def _no_answer(self, br: Bridge, txn: int) -> None:
        with self._lock:
            if br.b_txn != txn or br.answered or br.ended or not self.voicemail_available():
                return
            br.forward_after_cancel = "no-answer"
            br.history.append("B no answer: CANCEL")
            try:
                self.engine.core.cancel(txn)
            except Exception as exc:
                log.debug("cancel for no-answer failed: %s", exc)

    def _forward_to_voicemail(self, br: Bridge, reason: str) -> bool:
        """Ring the voicemail user instead of the current target; False if there is none to ring."""
        if br.ended or br.target == self.voicemail_user or not self.voicemail_available():
            return False
        br.target, br.diverted, br.forward_after_cancel = self.voicemail_user, reason, ""
        return self._start_b_leg(br)

    def _on_response(self, ev: CoreEvent) -> None:
        msg = ev.message
        method = _cseq_method(msg)
        if ev.txn_id in self._relays:
            self._relay_response(ev)
            return
        br = self._by_b_txn.get(ev.txn_id)
        if br is None or method != "INVITE":
            return
        br.history.append(f"B {ev.status}")
        if ev.status == 100:
            return
        if ev.dialog_id and not br.b_dialog and ev.status < 300:
            br.b_dialog = ev.dialog_id
            self._by_dialog[ev.dialog_id] = (br, "B")
        if br.ended:
            # the caller went away (CANCEL) and the callee answered anyway: hang the B leg up
            if 200 <= ev.status < 300 and ev.dialog_id:
                self._safe_bye(ev.dialog_id)
            return
        if ev.status >= 300:
            self._by_b_txn.pop(ev.txn_id, None)
            if br.b_dialog:
                self._by_dialog.pop(br.b_dialog, None)
                br.b_dialog = 0
            if ev.status == 422 and timers.retry_after_422(br.timer, msg):  # RFC 4028 7.4, on our own
                br.history.append(f"B 422: INVITE again with Session-Expires {br.timer.interval}")  # type: ignore
                if self._start_b_leg(br):
                    return
            reason = br.forward_after_cancel or FORWARD_ON.get(ev.status, "")
            if reason and self._forward_to_voicemail(br, reason):
                return
        elif br.forward_after_cancel:
            if 200 <= ev.status < 300:  # answered just as we gave up: keep the call
                br.forward_after_cancel = ""
            else:
                return
        self._relay_to_a(br, ev)

    def _relay_to_a(self, br: Bridge, ev: CoreEvent) -> None:
        msg = ev.message
        headers = [("Contact", f"<{self._contact_on(br.a_transport)}>")]
        if 200 <= ev.status < 300:
            headers += timers.answer_headers(br.timer, msg)
            interval = timers.agreed_interval(br.timer, msg)
            if interval and br.guard is None:
                br.guard = timers.SessionGuard(self.engine.call_later, interval, lambda: self._session_expired(br))
                br.guard.start()
        elif ev.status == 422 and msg.header("Min-SE"):
            headers.append(("Min-SE", msg.header("Min-SE")))
        ctype = msg.header("Content-Type")
        body = msg.body or b""
        if body and ctype:
            headers.append(("Content-Type", ctype))
        if 100 < ev.status < 200 and br.a_100rel:
            did = self._relay_provisional(br, ev, headers, body)
        else:
            did = self._respond(br.a_txn, ev.status, msg.reason, headers, body)
        if did and not br.a_dialog:
            br.a_dialog = did
            self._by_dialog[did] = (br, "A")
        if 200 <= ev.status < 300:
            br.answered = True
            self._by_b_txn.pop(ev.txn_id, None)
            self._by_a_txn.pop(br.a_txn, None)
        elif ev.status >= 300:
            br.ended = True
            self._by_a_txn.pop(br.a_txn, None)

    def _relay_provisional(self, br: Bridge, ev: CoreEvent, headers: list[tuple[str, str]], body: bytes) -> int:
        """An 18x to a caller that offers 100rel: reliably when it requires 100rel or the callee's was reliable."""
        msg = ev.message
        reliable = br.a_requires_100rel or "100rel" in _option_tags(msg, "Require")
        if reliable:
            try:
                return self.engine.core.respond(br.a_txn, ev.status, msg.reason, headers, body, reliable=True)
            except EngineError as exc:  # the previous reliable 18x is not PRACKed yet (one at a time)
                br.history.append(f"A {ev.status} not sent reliably: {exc}")
                if br.a_requires_100rel:
                    return 0
        return self._respond(br.a_txn, ev.status, msg.reason, headers, body)

    def _on_cancelled(self, ev: CoreEvent) -> None:
        br = self._by_a_txn.pop(ev.txn_id, None)
        if br is None:
            return
        br.ended = True
        br.history.append("A CANCEL")
        try:
            self.engine.core.cancel(br.b_txn)
        except Exception as exc:
            log.debug("cancel of B leg failed: %s", exc)

    def _on_timeout(self, ev: CoreEvent) -> None:
        relayed = self._relays.pop(ev.txn_id, None)
        if relayed is not None:
            self._relay_tp.pop(relayed, None)
            self.subscriptions.on_timeout(ev.txn_id)
            self._respond(relayed, 408, "Request Timeout")
            return
        br = self._by_b_txn.pop(ev.txn_id, None)
        if br is not None and not br.ended:
            if self._forward_to_voicemail(br, "no-answer"):
                return
            br.ended = True
            self._respond(br.a_txn, 408, "Request Timeout")

    def _session_expired(self, br: Bridge) -> None:
        """No refresh crossed the PBX for the session interval: BYE on both legs (RFC 4028 10)."""
        with self._lock:
            if br.ended:
                return
            br.ended = True
            br.history.append(f"session expired: no refresh for {br.guard.interval if br.guard else 0} s: BYE")
            for did in (br.a_dialog, br.b_dialog):
                if did and self._by_dialog.pop(did, None) is not None:
                    self._safe_bye(did)

    def _safe_bye(self, dialog_id: int) -> None:
        try:
            self.engine.core.dialog_request(dialog_id, "BYE")
        except (KeyError, ValueError) as exc:
            log.debug("BYE on dialog %d failed: %s", dialog_id, exc)

    def _bye(self, ev: CoreEvent) -> None:
        entry = self._by_dialog.pop(ev.dialog_id, None)
        self._respond(ev.txn_id, 200 if entry else 481)
        if entry is None:
            return
        br, side = entry
        br.ended = True
        br.history.append(f"{side} BYE")
        if br.guard is not None:
            br.guard.stop()
        other = br.b_dialog if side == "A" else br.a_dialog
        if other:
            self._by_dialog.pop(other, None)
            self._safe_bye(other)

    # -- relaying other requests ------------------------------------------------------------
    @staticmethod
    def _copied_headers(msg: object) -> list[tuple[str, str]]:
        out = []
        for name in _COPY:
            v = msg.header(name)  # type: ignore[attr-defined]
            if v is not None:
                out.append((name, v))
        return out

    def _relay_in_dialog(self, ev: CoreEvent) -> None:
        """A request inside a call (re-INVITE, UPDATE, INFO, MESSAGE, NOTIFY, REFER): sent on the other leg."""
        msg = ev.message
        entry = self._by_dialog.get(ev.dialog_id)
        if entry is None and msg.method == "NOTIFY" and self.subscriptions.early_notify(ev) is not None:
            entry = self._by_dialog.get(ev.dialog_id)
        if entry is None:
            self._respond(ev.txn_id, 481, "Call/Transaction Does Not Exist")
            return
        br, side = entry
        other = br.b_dialog if side == "A" else br.a_dialog
        if not other:
            self._respond(ev.txn_id, 491 if msg.method in ("INVITE", "UPDATE") else 500, "Other Leg Not Ready")
            return
        headers = self._copied_headers(msg)
        if msg.method in _TARGET_METHODS:
            headers.append(("Contact", f"<{self._contact_on(br.b_transport if side == 'A' else br.a_transport)}>"))
        if msg.method == "REFER" and msg.header("Refer-To"):  # attended transfer: name the far leg's dialog
            new = replaces.translate_refer_to(msg.header("Refer-To"), self._leg_pairs(), self.engine.core.dialog_info)
            headers = [("Refer-To", new) if n == "Refer-To" and new else (n, v) for n, v in headers]
        try:
            txn = self.engine.core.dialog_request(other, msg.method, headers, msg.body or b"")
        except (KeyError, ValueError) as exc:
            log.debug("relay of %s failed: %s", msg.method, exc)
            self._respond(ev.txn_id, 500, "Relay Failed")
            return
        self._relays[txn] = ev.txn_id
        self._relay_tp[ev.txn_id] = ev.transport_id
        br.history.append(f"{side} {msg.method} relayed")

    def _leg_pairs(self) -> list[tuple[int, int]]:
        """(leg, other leg) for every call and subscription whose two dialogs are up."""
        out = []
        for did, (br, side) in self._by_dialog.items():
            other = br.b_dialog if side == "A" else br.a_dialog
            if other:
                out.append((did, other))
        return out

    def _relay_response(self, ev: CoreEvent) -> None:
        if ev.status < 200:
            return  # provisional responses stay hop by hop
        orig = self._relays.pop(ev.txn_id)
        msg = ev.message
        headers = self._copied_headers(msg)
        transport = self._relay_tp.pop(orig, 0)
        if _cseq_method(msg) in _TARGET_METHODS:
            headers.append(("Contact", f"<{self._contact_on(transport)}>"))
        entry = self._by_dialog.get(ev.dialog_id) if ev.dialog_id else None
        if entry is not None and entry[0].guard is not None and _cseq_method(msg) in ("INVITE", "UPDATE") \
                and 200 <= ev.status < 300:  # a session refresh (RFC 4028 10: any 2xx re-INVITE/UPDATE)
            entry[0].guard.refreshed(timers.interval_of(msg))
        did = self._respond(orig, ev.status, msg.reason, headers, msg.body or b"")
        if _cseq_method(msg) == "SUBSCRIBE":
            self.subscriptions.on_final(ev, did)
