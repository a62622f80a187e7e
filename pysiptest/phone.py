"""Phone: an emulated SIP user agent with an identity, a device profile and calls."""
from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time
from typing import Any, Callable, Optional, Sequence, Union

from pysiptest import sdp, session_timer
from pysiptest._core import parse_uri
from pysiptest._uri import hostport as _hostport
from pysiptest._uri import uri_host as _uri_host
from pysiptest._retry import RequestRetrier
from pysiptest._uri import uri_user as _uri_user
from pysiptest.auth import ClientAuth, Credentials
from pysiptest.call import Call
from pysiptest.device import Device
from pysiptest.engine import Engine, default_engine
from pysiptest.transport import TlsConfig, check_transport, uri_params, uri_scheme
from pysiptest.errors import ExpectationError
from pysiptest.registration import Registration
from pysiptest import eventpkg
from pysiptest.services import KINDS as SERVICE_KINDS
from pysiptest.services import IncomingRequest, PhoneServices
from pysiptest.subscription import IncomingSubscription, Publication, Subscription
from pysiptest.summary import CallSummary
from pysiptest.events import (
    Answered,
    CallEnded,
    CoreEvent,
    Event,
    IncomingCall,
    MalformedMessage,
    Registered,
    RegistrationFailed,
    RequestReceived,
    ResponseReceived,
    Ringing,
    TransportError,
)

log = logging.getLogger("pysiptest.phone")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, UPDATE, PRACK, SUBSCRIBE, REFER"
EventTypes = Union[type[Event], tuple[type[Event], ...]]


class Phone:
    """An emulated phone.

    ``proxy`` is the (host, port) every request goes to (the PBX or proxy under test); ``domain`` is the
    domain of the phone's address of record (default: the proxy's host). ``transport`` is "udp", "tcp" or
    "tls" (then ``tls`` holds the certificate settings, and the Contact is a ``sips:`` URI); the default is
    the device model's ``transport``.
    """

    def __init__(self, user: str, device: Optional[Device] = None, *, engine: Optional[Engine] = None,
                 host: str = "127.0.0.1", port: int = 0, proxy: Optional[tuple[str, int]] = None,
                 domain: Optional[str] = None, display_name: Optional[str] = None, name: Optional[str] = None,
                 transport: Optional[str] = None, tls: Optional[TlsConfig] = None, password: Optional[str] = None,
                 credentials: Union[Credentials, Sequence[Credentials], None] = None,
                 fast: Optional[bool] = None, share_port: bool = False, fast_summaries: bool = True) -> None:
        if not user or any(c in user for c in " <>@:;\"\r\n"):
            raise ValueError(f"user {user!r} must be a plain SIP user name")
        self.user = user
        self.name = name or user
        self.display_name = display_name or self.name
        self.device = device if device is not None else Device()
        self.engine = engine or default_engine()
        self.host = host
        self.proxy = proxy
        self.domain = _uri_host(domain or (proxy[0] if proxy else host))
        self.transport = check_transport(transport or self.device.transport)
        if share_port:  # many phones on one transport (pysiptest/shared_port.py): port 0 opens a new one
            if fast:
                raise ValueError("a phone on a shared port cannot use the fast path (its table is per transport)")
            from pysiptest.shared_port import listen_shared
            self.transport_id, self.port = listen_shared(self.engine, self.transport, host, port, self, tls=tls)
        else:
            self.transport_id, self.port = self.engine.listen(self.transport, host, port, self, tls=tls)
        self.calls: list[Call] = []
        self._calls_by_txn: dict[int, Call] = {}
        self._calls_by_dialog: dict[int, Call] = {}
        self._pending: dict[int, tuple[str, Any]] = {}
        self._cseq = 0
        self._reg_call_id = secrets.token_hex(8)
        self._reg_tag = secrets.token_hex(6)
        self._lock = threading.RLock()  # protects call tables and call state; see Call._lock
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self.history: list[tuple[float, Event]] = []
        self.registered = False
        # digest credentials: password= for this user in any realm, credentials= for several realms/users
        creds = [credentials] if isinstance(credentials, Credentials) else list(credentials or ())
        if password is not None:
            creds.append(Credentials(user, password))
        self.auth = ClientAuth(creds)
        self._retry = RequestRetrier(self)  # sends a request again after 401/407/423
        self._services = PhoneServices(self)  # SUBSCRIBE/NOTIFY, REFER, MESSAGE, INFO, PUBLISH, 3xx, forks
        #: notifier role: called with each IncomingSubscription (else a SubscriptionRequested event)
        self.on_subscribe: Optional[Callable[[IncomingSubscription], None]] = None
        #: how many 3xx responses an INVITE follows (RFC 3261 8.1.3.4)
        self.max_redirects = 3
        self.registration = Registration(self)
        #: calls run by the C fast path, one CallSummary each as they end (``fast=True`` or ``device.fast_path``)
        self.summaries: list[CallSummary] = []
        self.fast = (self.device.fast_path and not share_port) if fast is None else fast
        #: fast path: one CallSummary per call in ``summaries`` (True), or only the counters of
        #: :meth:`fast_counts` (False: no Python work per call, for long high-rate runs)
        self.fast_summaries = fast_summaries
        if not self.device.auto_prack:
            self.engine.core.set_auto_prack(self.transport_id, False)
        if self.fast:
            self._hand_to_fast_path()

    def __repr__(self) -> str:
        return f"<Phone {self.name} {self.aor} {self.device.model} at {_hostport(self.host, self.port)}>"

    # -- identity ---------------------------------------------------------------------------
    @property
    def aor(self) -> str:
        """The address of record, sip:user@domain."""
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact_uri(self) -> str:
        """Where this phone is reached."""
        return f"{uri_scheme(self.transport)}:{self.user}@{_hostport(self.host, self.port)}{uri_params(self.transport)}"

    def _hand_to_fast_path(self) -> None:
        """Give the device's routine call behaviour to the signalling thread (engine_fast.c)."""
        dev = self.device
        body = sdp.build(self.host, 9, [dev.codecs[0]], ptime=dev.ptime, username=self.user)
        contact = self._contact_headers()
        self.engine.core.set_profile(
            self.transport_id, ring_delay=dev.ring_delay, answer_delay=dev.auto_answer_after, hold=dev.hold_time,
            summary=True if self.fast_summaries else "count", contact=contact[0][1], body=body,
            headers=[*contact[1:], ("Server", dev.user_agent)])

    def wait_summaries(self, count: int, timeout: float = 10.0) -> list[CallSummary]:
        """Wait until ``count`` fast-path calls have ended; their summaries. AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.summaries) >= count, timeout):
                raise AssertionError(f"{self.name}: {len(self.summaries)} of {count} fast-path calls ended "
                                     f"within {timeout:g} s")
            return list(self.summaries)

    def fast_counts(self) -> tuple[int, int]:
        """Fast-path calls of this phone that ended, and how many of them were answered (counted in C)."""
        ended, answered = self.engine.core.fast_counts(self.transport_id)
        return int(ended), int(answered)

    def _ev_call_summary(self, ev: CoreEvent) -> None:
        s = CallSummary.from_info(ev.status, ev.info)
        with self._cond:
            self.summaries.append(s)
            self._cond.notify_all()

    def _contact_headers(self) -> list[tuple[str, str]]:
        h = [("Contact", f"<{self.contact_uri}>"), ("Allow", ALLOW)]
        if self.device.supported:
            h.append(("Supported", ", ".join(self.device.supported)))
        return h

    def _next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    def _target(self) -> tuple[str, int]:
        if self.proxy is None:
            raise ValueError(f"{self.name} has no proxy/registrar to send to")
        return self.proxy

    def _dest_for(self, uri: str) -> tuple[str, int]:
        """Where a new request to ``uri`` goes: the proxy; without one, the URI's own numeric host and port
        (a phone dialling an IP address, or following a REFER to one); else the no-proxy error."""
        if self.proxy is None:
            try:
                u = parse_uri(uri)
                host = u["host"].strip("[]")
                ipaddress.ip_address(host)
                return host, int(u["port"] or (5061 if self.transport == "tls" else 5060))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        return self._target()

    def _uri_for(self, target: Union[str, "Phone"]) -> str:
        if isinstance(target, Phone):
            return target.aor
        if target.startswith(("sip:", "sips:", "tel:")):
            return target
        return f"sip:{target}@{self.domain}"

    # -- events -----------------------------------------------------------------------------
    def _post(self, ev: Event) -> None:
        with self._cond:
            self._events.append(ev)
            self.history.append((time.time(), ev))
            self._cond.notify_all()
        services = getattr(self, "_services", None)
        if services is not None:
            services.on_posted(ev)  # transfers follow the calls they placed

    def _track(self, txn: int, kind: str, obj: Any) -> None:
        self._pending[txn] = (kind, obj)

    def expect(self, types: EventTypes, timeout: float = 5.0, **match: Any) -> Any:
        """Wait for the next event of the given type(s) whose attributes equal match; it is consumed.

        Events that arrived and do not match stay queued. On timeout an ExpectationError lists them.
        """
        def find() -> Optional[Event]:
            for i, ev in enumerate(self._events):
                if isinstance(ev, types) and all(
                    (getattr(ev, k, None) is v) if k == "call" else getattr(ev, k, None) == v for k, v in match.items()
                ):
                    return self._events.pop(i)
            return None

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ev = find()
                if ev is not None:
                    return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            cond = "".join(f", {k}={v!r}" for k, v in match.items() if k != "call")
            pending = ", ".join(e.describe() for e in self._events[-10:]) or "nothing"
        # the SIP ladder of this phone when the engine keeps a trace (pysiptest/trace.py), outside the lock
        from pysiptest import trace
        steps = trace.format_ladder(((self.name, e) for e in trace.ladder(self)), limit=20)
        ladder = f"\nlast SIP messages of {self.name}:\n{steps}" if steps else ""
        raise ExpectationError(f"{self.name} expected {names}{cond} within {timeout:g} s; pending events: {pending}"
                               + ladder)

    def unexpected(self) -> list[Event]:
        """Events that arrived and were not consumed by expect()."""
        with self._cond:
            return list(self._events)

    def clear_events(self) -> None:
        """Forget events not yet consumed."""
        with self._cond:
            self._events.clear()

    # -- registration -----------------------------------------------------------------------
    def register(self, expires: Optional[int] = None, timeout: float = 5.0,
                 contacts: Optional[Sequence[str]] = None) -> Registered:
        """REGISTER with the proxy and wait for the outcome; AssertionError if it fails.

        ``contacts`` registers these URIs instead of the phone's own contact.  A 401/407 is answered with the
        phone's credentials, a 423 retried with Min-Expires; the registration is then refreshed at
        ``registration.refresh_fraction`` of the granted expiry until :meth:`unregister`.
        """
        exp = self.device.register_expires if expires is None else expires
        return self._register_wait(exp, Registration.contact_list(self, contacts), False, timeout)

    def unregister(self, timeout: float = 5.0, all_contacts: bool = False) -> None:
        """REGISTER with Expires: 0 for our contacts, or ``Contact: *`` (every contact of the AOR)."""
        self.registration.stop_refresh()
        contacts = self.registration.contacts or Registration.contact_list(self, None)
        self._register_wait(0, contacts, all_contacts, timeout)

    def _register_wait(self, exp: int, contacts: Sequence[str], wildcard: bool, timeout: float) -> Registered:
        host, port = self._target()
        self.registration.send(exp, contacts, wildcard)
        try:
            ev = self.expect((Registered, RegistrationFailed), timeout=timeout)
        except ExpectationError:
            raise AssertionError(f"{self.name} could not register: no answer to REGISTER from "
                                 f"{_hostport(host, port)} within {timeout:g} s") from None
        if isinstance(ev, RegistrationFailed):
            raise AssertionError(f"{self.name} could not register: {ev.status} {ev.reason}")
        return ev

    # -- calls ------------------------------------------------------------------------------
    def call(self, target: Union[str, "Phone"], headers: Sequence[tuple[str, str]] = ()) -> Call:
        """Place a call to a user name, a SIP URI or another Phone; returns at once with the Call.
        ``headers`` are added to the INVITE (Replaces, Referred-By, ...)."""
        extra_headers = list(headers)
        uri = self._uri_for(target)
        host, port = self._dest_for(uri)
        call = Call(self, "outgoing", uri, secrets.token_hex(10))
        call._open_media()
        body = self.device.offer_sdp(self.host, call.media_port, self.user)
        call._local_offer = body
        headers = [
            ("From", f"\"{self.display_name}\" <{self.aor}>;tag={secrets.token_hex(6)}"),
            ("To", f"<{uri}>"),
            ("Call-ID", call.call_id),
            ("CSeq", "1 INVITE"),
            *self._contact_headers(),
            ("User-Agent", self.device.user_agent),
            ("Content-Type", "application/sdp"),
            *([("Require", ", ".join(self.device.require))] if self.device.require else []),
            *session_timer.invite_headers(self.device),
            *extra_headers,
        ]
        call._invite_headers, call._invite_body = headers, body  # for following a 3xx
        with self._lock:
            try:
                call.invite_txn = self.engine.core.request(self.transport_id, host, port, "INVITE", uri, headers, body)
                self._retry.remember(call.invite_txn, "INVITE", uri, headers, body, dest=(host, port))
            except Exception:
                call._close_media()
                raise
            self.calls.append(call)
            self._calls_by_txn[call.invite_txn] = call
        return call

    def send_request(self, method: str, target: Union[str, "Phone"], headers: Sequence[tuple[str, str]] = (),
                     body: bytes = b"", content_type: Optional[str] = None) -> int:
        """Send an out-of-dialog request (MESSAGE, NOTIFY, OPTIONS, ...) through the proxy; returns its
        transaction id. Its final response arrives as a ResponseReceived event."""
        uri = self._uri_for(target)
        host, port = self._dest_for(uri)
        hdrs = [
            ("From", f"\"{self.display_name}\" <{self.aor}>;tag={secrets.token_hex(6)}"),
            ("To", f"<{uri}>"),
            ("Call-ID", secrets.token_hex(10)),
            ("CSeq", f"{self._next_cseq()} {method}"),
            ("User-Agent", self.device.user_agent),
            *headers,
        ]
        if body and content_type:
            hdrs.append(("Content-Type", content_type))
        with self._lock:
            txn = self.engine.core.request(self.transport_id, host, port, method, uri, hdrs, body)
            self._retry.remember(txn, method, uri, hdrs, body, dest=(host, port))
            return txn

    def options(self, target: Union[str, "Phone"], timeout: float = 5.0) -> ResponseReceived:
        """Send OPTIONS (RFC 3261 11) and wait for its final response (Allow, Accept, Supported of the peer);
        AssertionError when none arrives in time."""
        self.send_request("OPTIONS", target, [("Accept", "application/sdp")])
        deadline = time.monotonic() + timeout
        while True:  # a 401/407 answered with our credentials is followed by the real outcome
            ev = self.expect(ResponseReceived, max(0.0, deadline - time.monotonic()), method="OPTIONS")
            if ev.status >= 200 and not (ev.status in (401, 407) and self.auth):
                return ev

    def send_message(self, target: Union[str, "Phone"], text: str) -> int:
        """Send a MESSAGE (RFC 3428) with a text/plain body; returns the transaction id."""
        return self.send_request("MESSAGE", target, body=text.encode(), content_type="text/plain;charset=UTF-8")

    def subscribe(self, target: Union[str, "Phone"], event: str, expires: int = 3600,
                  accept: Optional[str] = None) -> Subscription:
        """SUBSCRIBE (RFC 6665) to ``event`` at ``target``; returns at once with the Subscription, whose
        NOTIFYs arrive as NotifyReceived events (``accept`` defaults to the package's body type)."""
        sub = Subscription(self, self._uri_for(target), event, expires,
                           accept if accept is not None else eventpkg.CONTENT_TYPES.get(event))
        with self._lock:
            self._services.pending_subs.append(sub)
            sub._send(expires)
        return sub

    def publish(self, event: str, body: Union[bytes, str], expires: int = 3600,
                content_type: Optional[str] = None, target: Union[str, "Phone", None] = None,
                timeout: float = 5.0) -> Publication:
        """PUBLISH (RFC 3903) ``body`` for ``event`` to ``target`` (default: our own AOR) and wait for the
        answer; the Publication keeps the SIP-ETag for refresh(), modify() and remove()."""
        ctype = content_type or eventpkg.CONTENT_TYPES.get(event, "text/plain")
        pub = Publication(self, event, self._uri_for(target) if target is not None else self.aor, ctype, expires)
        status = pub._request(body.encode() if isinstance(body, str) else body, expires, timeout, "initial")
        if not 200 <= status < 300:
            raise AssertionError(f"{self.name}: PUBLISH {event} was refused with {status}")
        return pub

    @property
    def request_handlers(self) -> dict[str, Callable[[IncomingRequest], None]]:
        """method -> handler(IncomingRequest): requests of these methods are answered by the handler."""
        return self._services.request_handlers

    @property
    def served_events(self) -> set[str]:
        """Event packages this phone accepts SUBSCRIBEs for (others get 489 Bad Event)."""
        return self._services.served_events

    def wait_for_call(self, timeout: float = 5.0) -> Call:
        """Wait for an incoming call and return it."""
        ev: IncomingCall = self.expect(IncomingCall, timeout=timeout)
        return ev.call

    @property
    def active_calls(self) -> list[Call]:
        """Calls that have not ended."""
        return [c for c in self.calls if c.is_active]

    def close(self) -> None:
        """Hang up every active call."""
        for c in self.active_calls:
            try:
                c.hangup()
            except Exception as exc:  # best effort at teardown
                log.debug("hangup at close failed: %s", exc)

    # -- event handling (dispatcher thread) -------------------------------------------------
    def _on_core_event(self, ev: CoreEvent) -> None:
        handler = getattr(self, f"_ev_{ev.kind}", None)
        if handler is not None:
            with self._lock:
                handler(ev)

    def _ev_parse_error(self, ev: CoreEvent) -> None:
        self._post(MalformedMessage(ev.info, ev.src))

    def _ev_transport_error(self, ev: CoreEvent) -> None:
        # a transaction the engine ended because its request could not reach the peer (connection refused,
        # ICMP port unreachable, TLS handshake failure): its call or registration fails now (RFC 3261 8.1.3.1)
        kind, obj = self._pending.pop(ev.txn_id, (None, None)) if ev.txn_id else (None, None)
        call = self._calls_by_txn.pop(ev.txn_id, None) if ev.txn_id else None
        if kind == "register":
            self._post(RegistrationFailed(503, f"transport error ({ev.info})"))
        elif kind == "bye" and isinstance(obj, Call):
            if obj._ended(f"BYE failed ({ev.info})", 503):
                self._post(CallEnded(obj, obj.end_reason, 503))
        elif call is not None and call.state in ("calling", "ringing", "early"):
            if call._ended(f"transport error ({ev.info})", 503):
                self._post(CallEnded(call, call.end_reason, 503))
        self._post(TransportError(ev.info))

    def _ev_dialog_ended(self, ev: CoreEvent) -> None:
        self._calls_by_dialog.pop(ev.dialog_id, None)

    def _ev_timeout(self, ev: CoreEvent) -> None:
        self._retry.forget(ev.txn_id)
        kind, obj = self._pending.pop(ev.txn_id, (None, None))
        self._services.on_timeout(kind or "", obj)
        call = self._calls_by_txn.pop(ev.txn_id, None) or self._calls_by_dialog.get(ev.dialog_id)
        if kind == "register":
            self._post(RegistrationFailed(408, f"no answer ({ev.info})"))
        elif kind == "bye" and isinstance(obj, Call):
            reason, status = obj._hangup_cause or ("", 408)
            if obj._ended(f"{reason + '; ' if reason else ''}BYE timed out ({ev.info})", status or 408):
                self._post(CallEnded(obj, obj.end_reason, obj.end_status))
        elif kind == "refresh":
            obj[1].on_refresh_failed(408, f"timed out ({ev.info})")
        elif call is not None and call.state in ("calling", "ringing", "early", "answering", "terminating"):
            if call._ended(f"no answer ({ev.info})", 408):
                self._post(CallEnded(call, call.end_reason, 408))
        self._post(TransportError(f"timeout: {ev.info}"))

    def _ev_cancelled(self, ev: CoreEvent) -> None:
        call = self._calls_by_txn.pop(ev.txn_id, None)
        if ev.message is not None:
            self._post(RequestReceived("CANCEL", ev.message, call))
        if call is not None and call._ended("cancelled by the caller", 487):
            self._post(CallEnded(call, call.end_reason, 487))

    def _ev_response(self, ev: CoreEvent) -> None:
        msg = ev.message
        cseq = (msg.cseq() if callable(msg.cseq) else msg.cseq) if msg is not None else None
        method = cseq[1] if cseq else ""
        call = self._calls_by_txn.get(ev.txn_id)
        kind, obj = self._pending.get(ev.txn_id, (None, None))
        if ev.status >= 200 and self._retry.on_final(ev):
            # answered a 401/407 challenge or a 423: the request went again, this is not the outcome
            self._post(ResponseReceived(ev.status, method, msg, call or (obj if isinstance(obj, Call) else None)))
            return
        if ev.status >= 200:
            self._pending.pop(ev.txn_id, None)
        self._post(ResponseReceived(ev.status, method, msg, call or (obj if isinstance(obj, Call) else None)))
        if kind in SERVICE_KINDS:
            self._services.on_response(ev, kind, obj)
            return
        if kind == "register":
            self.registration.on_final(ev, obj)
            return
        if kind == "reinvite" and ev.status >= 200:
            obj[0]._on_reinvite_final(obj[1], ev.status, msg.body if msg is not None else b"")
            return
        if kind == "update" and ev.status >= 200:
            obj[0]._on_update_final(obj[1], ev.status, msg.body if msg is not None else b"")
            return
        if kind == "refresh" and ev.status >= 200:
            obj[0]._on_refresh_final(obj[1], obj[2], ev.status, msg)
            return
        if kind == "bye" and isinstance(obj, Call) and ev.status >= 200:
            reason, status = obj._hangup_cause or ("hung up", 0)
            if obj._ended(reason, status):
                self._post(CallEnded(obj, reason, status or ev.status))
            return
        if call is None and method == "INVITE" and self._services.forked_2xx(ev):
            return
        if call is None or method != "INVITE":
            return
        if 100 < ev.status < 200:
            call._bind_dialog(ev.dialog_id)
            if call.state == "calling" or (call.state == "ringing" and ev.status == 183):
                call._set_state("early" if ev.status == 183 else "ringing")
            if msg.body and call._local_offer and not call._early_answer and call.state != "terminating":
                try:  # early media (183 with the SDP answer): media starts now
                    call._early_answer = bytes(msg.body)
                    call.remote_sdp = sdp.parse_audio(msg.body)
                    call._negotiate(call._local_offer, msg.body, remote_is_answer=True)
                    call._start_media()
                except sdp.SdpError as exc:
                    log.warning("%s: bad SDP in %d: %s", self.name, ev.status, exc)
            self._post(Ringing(call, ev.status))
        elif 200 <= ev.status < 300:
            self._calls_by_txn.pop(ev.txn_id, None)
            self._services.on_invite_2xx(ev, call)
            call._bind_dialog(ev.dialog_id)
            if msg.body:
                try:
                    call.remote_sdp = sdp.parse_audio(msg.body)
                    call.payload_type = sdp.choose_codec(call.remote_sdp.payload_types, self.device.codecs)
                    if call._local_offer:
                        call._negotiate(call._local_offer, msg.body, remote_is_answer=True)
                except sdp.SdpError as exc:
                    log.warning("%s: bad SDP in %d: %s", self.name, ev.status, exc)
            if call.state == "terminating":  # our CANCEL crossed the 200: end the call properly
                call._set_state("confirmed")
                call.hangup()
                return
            call._set_state("confirmed")
            if call._early_answer:
                call._stop_media()  # early media: the same stream, restarted with the final answer
            call._start_media()
            if call.session_timer is None:
                call.session_timer = session_timer.start_uac(call, msg)
            self._post(Answered(call))
        elif ev.status >= 300:
            if self._services.redirect(ev, call):
                return
            self._calls_by_txn.pop(ev.txn_id, None)
            reason = "cancelled" if ev.status == 487 and call.state == "terminating" else f"{ev.status} {msg.reason}"
            if call._ended(reason, ev.status):
                self._post(CallEnded(call, reason, ev.status))

    def _ev_request(self, ev: CoreEvent) -> None:
        msg = ev.message
        if msg is None:
            return
        method = msg.method or ""
        call = self._calls_by_dialog.get(ev.dialog_id) if ev.dialog_id else None
        if self._services.on_request(ev, call):
            return
        if method == "INVITE" and not ev.dialog_id:
            self._incoming_invite(ev)
            return
        if method == "ACK":
            self._post(RequestReceived("ACK", msg, call))
            if call is not None:
                with call._lock:
                    confirmed = call.state == "answering"
                    if confirmed:
                        call._set_state("confirmed")
                        if msg.body:  # late offer: the answer to the offer in our 200
                            call._on_ack_answer(msg.body)
                if confirmed:
                    self._post(Answered(call))
            return
        if method == "BYE":
            self.engine.core.respond(ev.txn_id, 200 if call else 481)
            self._post(RequestReceived("BYE", msg, call))
            if call is not None and call._ended("BYE received", 0):
                self._post(CallEnded(call, "BYE received"))
            return
        if method == "INVITE" and call is not None:  # re-INVITE: answer it; media follows (hold, resume)
            body = None
            if msg.body:
                try:
                    body = call._answer_reinvite(msg.body)
                except sdp.SdpError as exc:
                    self.engine.core.respond(ev.txn_id, 488, "Not Acceptable Here",
                                             [("Warning", f'399 pysiptest "{exc}"')])
                    self._post(RequestReceived(method, msg, call))
                    return
            if body is None:
                body = sdp.build(self.host, call.media_port, [call.payload_type or self.device.codecs[0]],
                                 ptime=self.device.ptime, username=self.user)
            st_hdrs = call.session_timer.on_refresh_received(msg) if call.session_timer is not None else []
            self.engine.core.respond(ev.txn_id, 200, None, self._contact_headers()
                                     + [("Content-Type", "application/sdp")] + st_hdrs, body)
            self._post(RequestReceived(method, msg, call))
            return
        if method == "PRACK":  # answered by the engine (RFC 3262), which matched it to our reliable 1xx
            self._post(RequestReceived(method, msg, call))
            return
        if method == "UPDATE" and call is not None:  # RFC 3311: an offer gets our answer; a session refresh
            headers = self._contact_headers()
            body = b""
            if msg.body:
                try:
                    body = call._answer_update(msg.body)
                except sdp.SdpError as exc:
                    self.engine.core.respond(ev.txn_id, 488, "Not Acceptable Here",
                                             [("Warning", f'399 pysiptest "{exc}"')])
                    self._post(RequestReceived(method, msg, call))
                    return
                headers.append(("Content-Type", "application/sdp"))
            if call.session_timer is not None:
                headers += call.session_timer.on_refresh_received(msg)
            self.engine.core.respond(ev.txn_id, 200, None, headers, body)
            self._post(RequestReceived(method, msg, call))
            return
        if method in ("OPTIONS", "MESSAGE", "NOTIFY", "INFO", "UPDATE"):
            headers = [("Allow", ALLOW)] if method == "OPTIONS" else []
            self.engine.core.respond(ev.txn_id, 200, None, headers)
        else:
            self._services.default_answer(ev, call)  # 405/501 with Allow, recorded
            return
        self._post(RequestReceived(method, msg, call))

    def _incoming_invite(self, ev: CoreEvent) -> None:
        msg = ev.message
        from_ = msg.nameaddr("From") or {}
        caller_uri = from_.get("uri") or ""
        caller = _uri_user(caller_uri) or caller_uri
        unsupported = sorted(session_timer.option_tags(msg, "Require") - {t.lower() for t in self.device.supported})
        if unsupported:  # RFC 3261 8.2.2.3
            self.engine.core.respond(ev.txn_id, 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
            return
        too_small = session_timer.too_small(self.device, msg)
        if too_small is not None:  # RFC 4028 8.1.1
            self.engine.core.respond(ev.txn_id, 422, "Session Interval Too Small", too_small)
            return
        status = self.device.incoming_call_status(caller)
        if status is not None:
            self.engine.core.respond(ev.txn_id, status)
            return
        call = Call(self, "incoming", caller_uri, msg.call_id or "")
        call.invite_txn = ev.txn_id
        call.request = msg
        if msg.body:
            try:
                call.remote_sdp = sdp.parse_audio(msg.body)
            except sdp.SdpError as exc:
                self.engine.core.respond(ev.txn_id, 488, "Not Acceptable Here", [("Warning", f'399 pysiptest "{exc}"')])
                return
        call._open_media()
        self.calls.append(call)
        self._calls_by_txn[ev.txn_id] = call
        self._post(IncomingCall(call, caller))
        dev = self.device
        if self.fast:
            return  # the fast path rings (and answers, when the device answers by itself) in C
        if dev.ring_delay is not None:
            if dev.ring_delay <= 0:
                call.ring()
            else:
                self.engine.call_later(dev.ring_delay, call.ring)
        if dev.auto_answer_after is not None:
            def auto() -> None:
                if call.state in ("ringing", "early"):
                    call.answer()
            self.engine.call_later(dev.auto_answer_after, auto)
