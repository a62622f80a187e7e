"""SUBSCRIBE/NOTIFY (RFC 6665) in both roles, and PUBLISH (RFC 3903).

The engine keeps the dialogs (csrc/engine/engine_sub.c: created by the 2xx or by a NOTIFY that comes first;
ended by a terminated NOTIFY); these classes keep the subscription state a test looks at.  Their response and
request handling runs on the dispatcher thread under the phone's lock (pysiptest/services.py routes to them);
the blocking helpers (``wait_*``, ``refresh`` with a wait) run in the caller's thread without that lock.
"""
from __future__ import annotations

import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Union

from pysiptest import eventpkg
from pysiptest.errors import LocalProtocolError
from pysiptest.events import NotifyReceived, SubscriptionEnded

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.phone import Phone


def parse_state(value: Optional[str]) -> tuple[str, dict[str, str]]:
    """``Subscription-State: active;expires=60`` -> ("active", {"expires": "60"})."""
    parts = [p.strip() for p in (value or "").split(";")]
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        if k:
            params[k.strip().lower()] = v.strip()
    return parts[0].lower(), params


def event_of(msg: Any) -> tuple[str, Optional[str]]:
    """Event package and id of a message (REFER implies "refer")."""
    value = msg.header("Event") or ("refer" if msg.is_request and msg.method == "REFER" else "")
    pkg, params = parse_state(value)
    return pkg, params.get("id")


def _expires(msg: Any, default: int) -> int:
    v = msg.header("Expires") if msg is not None else None
    return int(v.strip()) if v and v.strip().isdigit() else default


class _Waitable:
    """A response slot a caller waits on (set on the dispatcher thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.last_status = 0
        self._seq = 0

    def _done(self, status: int) -> None:
        with self._cond:
            self.last_status = status
            self._seq += 1
            self._cond.notify_all()

    def _wait(self, seq: int, timeout: float, what: str) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > seq, timeout):
                raise AssertionError(f"{what}: no final response within {timeout:g} s")
            return self.last_status


class Subscription(_Waitable):
    """Our subscription to ``event`` at ``target`` (subscriber role).

    ``state`` is "init" (SUBSCRIBE sent), "pending", "active" or "terminated"; ``notifies`` lists every
    NotifyReceived; ``expires`` is what the notifier granted.
    """

    def __init__(self, phone: "Phone", target: str, event: str, expires: int, accept: Optional[str]) -> None:
        super().__init__()
        self.phone = phone
        self.target = target
        self.event = event
        self.accept = accept
        self.requested_expires = expires
        self.expires = expires
        self.call_id = secrets.token_hex(10)
        self.from_tag = secrets.token_hex(6)
        self.dialog_id = 0
        self.state = "init"
        self.end_reason = ""
        self.notifies: list[NotifyReceived] = []
        #: refresh by itself at ``refresh_fraction`` of the granted expiry (RFC 6665 4.1.2.1)
        self.auto_refresh = True
        self.refresh_fraction = 0.8
        self._cseq = 0
        self._timer_gen = 0

    def __repr__(self) -> str:
        return f"<Subscription {self.event} to {self.target} {self.state}>"

    def _headers(self, expires: int) -> list[tuple[str, str]]:
        h = [("Event", self.event), ("Expires", str(expires)), ("Contact", f"<{self.phone.contact_uri}>")]
        if self.accept:
            h.append(("Accept", self.accept))
        return h

    def _send(self, expires: int) -> None:
        """Dispatcher or caller: the initial SUBSCRIBE, or a refresh inside the dialog."""
        phone = self.phone
        core = phone.engine.core
        with phone._lock:
            if self.dialog_id:
                txn = core.dialog_request(self.dialog_id, "SUBSCRIBE", self._headers(expires))
                phone._retry.remember(txn, "SUBSCRIBE", None, self._headers(expires), dialog_id=self.dialog_id)
            else:
                host, port = phone._target()
                self._cseq += 1
                hdrs = [("From", f"\"{phone.display_name}\" <{phone.aor}>;tag={self.from_tag}"),
                        ("To", f"<{self.target}>"), ("Call-ID", self.call_id),
                        ("CSeq", f"{self._cseq} SUBSCRIBE"), ("User-Agent", phone.device.user_agent),
                        *self._headers(expires)]
                txn = core.request(phone.transport_id, host, port, "SUBSCRIBE", self.target, hdrs)
                phone._retry.remember(txn, "SUBSCRIBE", self.target, hdrs, dest=(host, port))
            phone._track(txn, "subscribe", self)

    def refresh(self, expires: Optional[int] = None, timeout: float = 5.0) -> int:
        """SUBSCRIBE again inside the dialog (RFC 6665 4.1.2.1); waits for and returns the final status."""
        if self.state == "terminated" or not self.dialog_id:
            raise LocalProtocolError(f"cannot refresh a subscription that is {self.state}")
        seq = self._seq
        self._send(self.requested_expires if expires is None else expires)
        return self._wait(seq, timeout, f"{self.phone.name}: SUBSCRIBE refresh ({self.event})")

    def unsubscribe(self, timeout: float = 5.0) -> int:
        """SUBSCRIBE with Expires: 0 (RFC 6665 4.1.2.3); the notifier answers with a terminated NOTIFY."""
        return self.refresh(0, timeout)

    def wait_active(self, timeout: float = 5.0) -> None:
        """Wait until the subscription is active (a NOTIFY said so)."""
        self.wait_state("active", timeout)

    def wait_state(self, state: str, timeout: float = 5.0) -> None:
        """Wait until the subscription reaches ``state``; AssertionError naming the state it is in."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self.state in (state, "terminated"), timeout)
            if not ok or self.state != state:
                raise AssertionError(f"{self.phone.name}: subscription to {self.event} at {self.target} is "
                                     f"{self.state!r}, expected {state!r}"
                                     + (f" ({self.end_reason})" if self.end_reason else ""))

    # -- dispatcher --------------------------------------------------------------------------
    def _on_final(self, ev: Any) -> None:
        msg = ev.message
        if 200 <= ev.status < 300:
            if ev.dialog_id:
                self._bind(ev.dialog_id)
            self.expires = _expires(msg, self.expires)
            with self._cond:
                if self.state == "init":
                    self.state = "pending"
            self._schedule_refresh()
        elif ev.status >= 300:
            self._end(f"{ev.status} {msg.reason if msg is not None else ''}".strip())
        self._done(ev.status)

    def _schedule_refresh(self) -> None:
        self._timer_gen += 1
        gen = self._timer_gen
        if not self.auto_refresh or self.expires <= 0 or self.state == "terminated":
            return

        def due() -> None:
            with self.phone._lock:
                if gen == self._timer_gen and self.state != "terminated" and self.dialog_id:
                    self._send(self.requested_expires)
        self.phone.engine.call_later(max(0.5, self.expires * self.refresh_fraction), due)

    def _bind(self, dialog_id: int) -> None:
        if dialog_id and dialog_id != self.dialog_id:
            self.dialog_id = dialog_id
            services = self.phone._services
            services.subs_by_dialog[dialog_id] = self
            if self in services.pending_subs:
                services.pending_subs.remove(self)

    def _on_notify(self, ev: Any, txn_id: int) -> None:
        msg = ev.message
        self._bind(ev.dialog_id)
        state, params = parse_state(msg.header("Subscription-State"))
        self.phone.engine.core.respond(txn_id, 200)
        n = NotifyReceived(self.event, state, msg.body, msg.header("Content-Type") or "",
                           params.get("reason", ""), msg, self)
        with self._cond:
            self.notifies.append(n)
            if state in ("active", "pending") and self.state != "terminated":
                self.state = state
                if params.get("expires", "").isdigit():
                    self.expires = int(params["expires"])
            self._cond.notify_all()
        self.phone._post(n)
        if state == "terminated":
            self._end(params.get("reason", "terminated"))

    def _end(self, reason: str) -> None:
        with self._cond:
            if self.state == "terminated":
                return
            self.state = "terminated"
            self.end_reason = reason
            self._cond.notify_all()
        self._timer_gen += 1  # no more refreshes
        self.phone._services.subs_by_dialog.pop(self.dialog_id, None)
        self.phone._post(SubscriptionEnded(self, reason))


class IncomingSubscription:
    """A subscription we serve (notifier role): ``accept(state)``, ``notify(body, state)``, ``terminate()``.

    ``body`` is the current state document sent with each NOTIFY (on accept, on refresh, on notify()).
    """

    def __init__(self, phone: "Phone", txn_id: int, msg: Any, event: str, event_id: Optional[str]) -> None:
        self.phone = phone
        self.txn_id = txn_id
        self.request = msg
        self.event = event
        self.event_id = event_id
        self.subscriber = (msg.nameaddr("From") or {}).get("uri") or ""
        self.expires = _expires(msg, 3600)
        self.accept_types = msg.header("Accept") or ""
        self.dialog_id = 0
        self.state = "init"
        self.body: bytes = b""
        self.content_type = eventpkg.CONTENT_TYPES.get(event, "text/plain")
        self.end_reason = ""
        self.expires_at = 0.0

    def __repr__(self) -> str:
        return f"<IncomingSubscription {self.event} from {self.subscriber} {self.state}>"

    def _event_header(self) -> str:
        return self.event + (f";id={self.event_id}" if self.event_id else "")

    def accept(self, state: str = "active", body: Union[bytes, str, None] = None,
               content_type: Optional[str] = None, expires: Optional[int] = None) -> None:
        """200 to the SUBSCRIBE, then the immediate NOTIFY (RFC 6665 4.2.1) with ``state`` and ``body``."""
        if state not in ("active", "pending"):
            raise ValueError(f"state must be 'active' or 'pending', not {state!r}")
        phone = self.phone
        with phone._lock:
            if self.state != "init":
                raise LocalProtocolError(f"the subscription was already {self.state}")
            if expires is not None:
                self.expires = expires
            did = phone.engine.core.respond(self.txn_id, 200, None, [
                ("Expires", str(self.expires)), ("Contact", f"<{phone.contact_uri}>")])
            self.dialog_id = did
            phone._services.served_by_dialog[did] = self
            self.state = state
            self.expires_at = time.monotonic() + self.expires
            self._schedule_expiry()
            self.notify(body, state, content_type)

    def reject(self, status: int = 403, reason: Optional[str] = None) -> None:
        """Refuse the SUBSCRIBE with a final status."""
        with self.phone._lock:
            self.phone.engine.core.respond(self.txn_id, status, reason)
            self.state = "terminated"
            self.end_reason = f"rejected with {status}"

    def notify(self, body: Union[bytes, str, None] = None, state: Optional[str] = None,
               content_type: Optional[str] = None, reason: Optional[str] = None) -> int:
        """Send a NOTIFY with the state document (``body``, kept as the current one) and Subscription-State
        ``state`` (default: the current state); ``terminated`` ends the subscription. Returns the txn id."""
        phone = self.phone
        with phone._lock:
            if not self.dialog_id or self.state == "terminated":
                raise LocalProtocolError(f"cannot NOTIFY a subscription that is {self.state}")
            if body is not None:
                self.body = body.encode() if isinstance(body, str) else bytes(body)
            if content_type:
                self.content_type = content_type
            state = state or self.state
            if state == "terminated":
                ss = f"terminated;reason={reason or 'noresource'}"
            else:
                left = max(0, int(self.expires_at - time.monotonic())) if self.expires_at else self.expires
                ss = f"{state};expires={left}"
            hdrs = [("Event", self._event_header()), ("Subscription-State", ss),
                    ("Contact", f"<{phone.contact_uri}>")]
            if self.body:
                hdrs.append(("Content-Type", self.content_type))
            txn = phone.engine.core.dialog_request(self.dialog_id, "NOTIFY", hdrs, self.body)
            phone._track(txn, "notify", self)
            if state == "terminated":
                self._end(reason or "noresource")
            else:
                self.state = state
            return txn

    def terminate(self, reason: str = "noresource") -> int:
        """End the subscription with a terminated NOTIFY."""
        return self.notify(None, "terminated", reason=reason)

    def _on_refresh(self, ev: Any) -> None:
        """Dispatcher: SUBSCRIBE inside our dialog: 200 with the expiry, then a NOTIFY (terminated for 0)."""
        msg = ev.message
        exp = _expires(msg, self.expires)
        self.phone.engine.core.respond(ev.txn_id, 200, None, [("Expires", str(exp)),
                                                             ("Contact", f"<{self.phone.contact_uri}>")])
        if exp == 0:
            self.notify(None, "terminated", reason="timeout")
        else:
            self.expires = exp
            self.expires_at = time.monotonic() + exp
            self._schedule_expiry()
            self.notify()

    def _schedule_expiry(self) -> None:
        """Not refreshed in time: a terminated NOTIFY with reason=timeout (RFC 6665 4.2.2)."""
        at = self.expires_at

        def due() -> None:
            with self.phone._lock:
                if self.expires_at == at and self.state not in ("init", "terminated"):
                    self.notify(None, "terminated", reason="timeout")
        self.phone.engine.call_later(max(0.0, at - time.monotonic()) + 0.05, due)

    def _end(self, reason: str) -> None:
        self.state = "terminated"
        self.end_reason = reason
        self.phone._services.served_by_dialog.pop(self.dialog_id, None)
        self.phone._post(SubscriptionEnded(self, reason))


def default_body(phone: "Phone", event: str) -> bytes:
    """The state document a phone serves for a package by default."""
    if event == "presence":
        return eventpkg.pidf(phone.aor, "open")
    if event == "message-summary":
        return eventpkg.message_summary(0, 0, phone.aor)
    if event == "dialog":
        active = [(str(c.dialog_id), c.call_id, "confirmed" if c.state == "confirmed" else "early")
                  for c in phone.active_calls]
        return eventpkg.dialog_info(phone.aor, 0, active)
    return b""


class Publication(_Waitable):
    """Event state we publish (RFC 3903): ``etag`` from the last 2xx; ``refresh()`` and ``modify()`` send
    SIP-If-Match, ``remove()`` Expires: 0."""

    def __init__(self, phone: "Phone", event: str, target: str, content_type: str, expires: int) -> None:
        super().__init__()
        self.phone = phone
        self.event = event
        self.target = target
        self.content_type = content_type
        self.expires = expires
        self.etag: Optional[str] = None
        self.call_id = secrets.token_hex(10)
        self.from_tag = secrets.token_hex(6)
        self.removed = False
        self._cseq = 0

    def __repr__(self) -> str:
        return f"<Publication {self.event} etag={self.etag}>"

    def _send(self, body: bytes, expires: int) -> None:
        phone = self.phone
        with phone._lock:
            host, port = phone._target()
            self._cseq += 1
            hdrs = [("From", f"\"{phone.display_name}\" <{phone.aor}>;tag={self.from_tag}"),
                    ("To", f"<{self.target}>"), ("Call-ID", self.call_id), ("CSeq", f"{self._cseq} PUBLISH"),
                    ("User-Agent", phone.device.user_agent), ("Event", self.event), ("Expires", str(expires))]
            if self.etag:
                hdrs.append(("SIP-If-Match", self.etag))
            if body:
                hdrs.append(("Content-Type", self.content_type))
            txn = phone.engine.core.request(phone.transport_id, host, port, "PUBLISH", self.target, hdrs, body)
            phone._retry.remember(txn, "PUBLISH", self.target, hdrs, body, dest=(host, port))
            phone._track(txn, "publish", self)

    def _request(self, body: bytes, expires: int, timeout: float, what: str) -> int:
        seq = self._seq
        self._send(body, expires)
        return self._wait(seq, timeout, f"{self.phone.name}: PUBLISH {what} ({self.event})")

    def refresh(self, expires: Optional[int] = None, timeout: float = 5.0) -> int:
        """Refresh without a body, with SIP-If-Match (RFC 3903 4.3); returns the status."""
        if not self.etag:
            raise LocalProtocolError("nothing published yet (no SIP-ETag)")
        return self._request(b"", self.expires if expires is None else expires, timeout, "refresh")

    def modify(self, body: Union[bytes, str], timeout: float = 5.0) -> int:
        """Replace the published state (SIP-If-Match and a body); returns the status."""
        if not self.etag:
            raise LocalProtocolError("nothing published yet (no SIP-ETag)")
        return self._request(body.encode() if isinstance(body, str) else body, self.expires, timeout, "modify")

    def remove(self, timeout: float = 5.0) -> int:
        """Remove the published state (Expires: 0); returns the status."""
        status = self._request(b"", 0, timeout, "remove")
        if 200 <= status < 300:
            self.removed = True
        return status

    def _on_final(self, ev: Any) -> None:
        msg = ev.message
        if 200 <= ev.status < 300 and msg is not None:
            self.etag = msg.header("SIP-ETag") or self.etag
            self.expires = _expires(msg, self.expires)
        elif ev.status == 412:
            self.etag = None  # the server forgot it: publish the full state again
        self._done(ev.status)
