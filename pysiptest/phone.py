"""Phone: an emulated SIP user agent with an identity, a device profile and calls."""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Optional, Union

from pysiptest import sdp
from pysiptest._uri import hostport as _hostport
from pysiptest._uri import uri_host as _uri_host
from pysiptest._uri import uri_user as _uri_user
from pysiptest.call import Call
from pysiptest.device import Device
from pysiptest.engine import Engine, default_engine
from pysiptest.errors import ExpectationError
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

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, UPDATE"
EventTypes = Union[type[Event], tuple[type[Event], ...]]


class Phone:
    """An emulated phone.

    ``proxy`` is the (host, port) every request goes to (the PBX or proxy under test); ``domain`` is the
    domain of the phone's address of record (default: the proxy's host).
    """

    def __init__(self, user: str, device: Optional[Device] = None, *, engine: Optional[Engine] = None,
                 host: str = "127.0.0.1", port: int = 0, proxy: Optional[tuple[str, int]] = None,
                 domain: Optional[str] = None, display_name: Optional[str] = None, name: Optional[str] = None) -> None:
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
        self.transport_id, self.port = self.engine.listen_udp(host, port, self)
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
        return f"sip:{self.user}@{_hostport(self.host, self.port)}"

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
            raise ExpectationError(f"{self.name} expected {names}{cond} within {timeout:g} s; pending events: {pending}")

    def unexpected(self) -> list[Event]:
        """Events that arrived and were not consumed by expect()."""
        with self._cond:
            return list(self._events)

    def clear_events(self) -> None:
        """Forget events not yet consumed."""
        with self._cond:
            self._events.clear()

    # -- registration -----------------------------------------------------------------------
    def register(self, expires: Optional[int] = None, timeout: float = 5.0) -> Registered:
        """REGISTER with the proxy and wait for the outcome; AssertionError if it fails."""
        exp = self.device.register_expires if expires is None else expires
        host, port = self._target()
        headers = [
            ("From", f"\"{self.display_name}\" <{self.aor}>;tag={self._reg_tag}"),
            ("To", f"\"{self.display_name}\" <{self.aor}>"),
            ("Call-ID", self._reg_call_id),
            ("CSeq", f"{self._next_cseq()} REGISTER"),
            ("Contact", f"<{self.contact_uri}>"),
            ("Expires", str(exp)),
            ("User-Agent", self.device.user_agent),
        ]
        with self._lock:
            txn = self.engine.core.request(self.transport_id, host, port, "REGISTER", f"sip:{self.domain}", headers)
            self._track(txn, "register", exp)
        try:
            ev = self.expect((Registered, RegistrationFailed), timeout=timeout)
        except ExpectationError:
            raise AssertionError(f"{self.name} could not register: no answer to REGISTER from "
                                 f"{_hostport(host, port)} within {timeout:g} s") from None
        if isinstance(ev, RegistrationFailed):
            raise AssertionError(f"{self.name} could not register: {ev.status} {ev.reason}")
        return ev

    def unregister(self, timeout: float = 5.0) -> None:
        """REGISTER with Expires: 0."""
        self.register(expires=0, timeout=timeout)

    # -- calls ------------------------------------------------------------------------------
    def call(self, target: Union[str, "Phone"]) -> Call:
        """Place a call to a user name, a SIP URI or another Phone; returns at once with the Call."""
        uri = self._uri_for(target)
        host, port = self._target()
        call = Call(self, "outgoing", uri, secrets.token_hex(10))
        call._open_media()
        body = sdp.build(self.host, call.media_port, self.device.codecs, ptime=self.device.ptime, username=self.user)
        headers = [
            ("From", f"\"{self.display_name}\" <{self.aor}>;tag={secrets.token_hex(6)}"),
            ("To", f"<{uri}>"),
            ("Call-ID", call.call_id),
            ("CSeq", "1 INVITE"),
            *self._contact_headers(),
            ("User-Agent", self.device.user_agent),
            ("Content-Type", "application/sdp"),
        ]
        with self._lock:
            try:
                call.invite_txn = self.engine.core.request(self.transport_id, host, port, "INVITE", uri, headers, body)
            except Exception:
                call._close_media()
                raise
            self.calls.append(call)
            self._calls_by_txn[call.invite_txn] = call
        return call

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
        self._post(TransportError(ev.info))

    def _ev_dialog_ended(self, ev: CoreEvent) -> None:
        self._calls_by_dialog.pop(ev.dialog_id, None)

    def _ev_timeout(self, ev: CoreEvent) -> None:
        kind, obj = self._pending.pop(ev.txn_id, (None, None))
        call = self._calls_by_txn.pop(ev.txn_id, None) or self._calls_by_dialog.get(ev.dialog_id)
        if kind == "register":
            self._post(RegistrationFailed(408, f"no answer ({ev.info})"))
        elif kind == "bye" and isinstance(obj, Call):
            if obj._ended(f"BYE timed out ({ev.info})", 408):
                self._post(CallEnded(obj, obj.end_reason, 408))
        elif call is not None and call.state in ("calling", "ringing", "early", "terminating"):
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
        cseq = msg.cseq() if msg is not None else None
        method = cseq[1] if cseq else ""
        call = self._calls_by_txn.get(ev.txn_id)
        kind, obj = self._pending.get(ev.txn_id, (None, None))
        if ev.status >= 200:
            self._pending.pop(ev.txn_id, None)
        self._post(ResponseReceived(ev.status, method, msg, call or (obj if isinstance(obj, Call) else None)))
        if kind == "register":
            if 200 <= ev.status < 300:
                self.registered = int(obj) > 0
                self._post(Registered(int(obj)))
            elif ev.status >= 300:
                self._post(RegistrationFailed(ev.status, msg.reason or ""))
            return
        if kind == "bye" and isinstance(obj, Call) and ev.status >= 200:
            if obj._ended("hung up", 0):
                self._post(CallEnded(obj, "hung up", ev.status))
            return
        if call is None or method != "INVITE":
            return
        if 100 < ev.status < 200:
            call._bind_dialog(ev.dialog_id)
            if call.state == "calling" or (call.state == "ringing" and ev.status == 183):
                call._set_state("early" if ev.status == 183 else "ringing")
            self._post(Ringing(call, ev.status))
        elif 200 <= ev.status < 300:
            self._calls_by_txn.pop(ev.txn_id, None)
            call._bind_dialog(ev.dialog_id)
            if msg.body:
                try:
                    call.remote_sdp = sdp.parse_audio(msg.body)
                    call.payload_type = sdp.choose_codec(call.remote_sdp.payload_types, self.device.codecs)
                except sdp.SdpError as exc:
                    log.warning("%s: bad SDP in %d: %s", self.name, ev.status, exc)
            if call.state == "terminating":  # our CANCEL crossed the 200: end the call properly
                call._set_state("confirmed")
                call.hangup()
                return
            call._set_state("confirmed")
            call._start_media()
            self._post(Answered(call))
        elif ev.status >= 300:
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
                if confirmed:
                    self._post(Answered(call))
            return
        if method == "BYE":
            self.engine.core.respond(ev.txn_id, 200 if call else 481)
            self._post(RequestReceived("BYE", msg, call))
            if call is not None and call._ended("BYE received", 0):
                self._post(CallEnded(call, "BYE received"))
            return
        if method == "INVITE" and call is not None:  # re-INVITE: keep our media as it is
            body = sdp.build(self.host, call.media_port, [call.payload_type or self.device.codecs[0]],
                             ptime=self.device.ptime, username=self.user)
            self.engine.core.respond(ev.txn_id, 200, None, self._contact_headers()
                                     + [("Content-Type", "application/sdp")], body)
            self._post(RequestReceived(method, msg, call))
            return
        if method in ("OPTIONS", "MESSAGE", "NOTIFY", "INFO", "UPDATE"):
            headers = [("Allow", ALLOW)] if method == "OPTIONS" else []
            self.engine.core.respond(ev.txn_id, 200, None, headers)
        else:
            self.engine.core.respond(ev.txn_id, 501)
        self._post(RequestReceived(method, msg, call))

    def _incoming_invite(self, ev: CoreEvent) -> None:
        msg = ev.message
        from_ = msg.nameaddr("From") or {}
        caller_uri = from_.get("uri") or ""
        caller = _uri_user(caller_uri) or caller_uri
        status = self.device.incoming_call_status(caller)
        if status is not None:
            self.engine.core.respond(ev.txn_id, status)
            return
        call = Call(self, "incoming", caller_uri, msg.call_id or "")
        call.invite_txn = ev.txn_id
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
