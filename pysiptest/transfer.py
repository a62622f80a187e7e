"""Call transfer: REFER (RFC 3515) blind and attended (Replaces, RFC 3891), with the implicit "refer"
subscription reporting progress as message/sipfrag NOTIFYs, or none with ``norefersub`` (RFC 4488).

Transferor: :func:`send_refer` (``call.transfer`` / ``call.attended_transfer``) gives a :class:`Transfer` whose
``progress`` collects (status, reason) from the NOTIFYs; once the final NOTIFY reports a 2xx it hangs up the
transferred call.  Transferee: :class:`Referral` answers the REFER with 202, places the new call and reports
its progress.  Target: an INVITE with Replaces takes the place of the matched call (see services.py).
All of it runs on the dispatcher thread under the phone's lock, except ``Transfer.wait``.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote, unquote

from pysiptest import eventpkg
from pysiptest.errors import EngineError, LocalProtocolError
from pysiptest.events import TransferProgress, TransferRequested
from pysiptest.message import reason_phrase
from pysiptest.subscription import parse_state

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.call import Call
    from pysiptest.phone import Phone



def replaces_value(call: "Call") -> str:
    """The Replaces value that names ``call``'s dialog at its peer: its to-tag is the peer's tag."""
    info = call.phone.engine.core.dialog_info(call.dialog_id)
    return f"{info['call_id']};to-tag={info['remote_tag']};from-tag={info['local_tag']}"


class Transfer:
    """A REFER we sent (transferor role): ``status`` of the REFER, ``progress`` of the sipfrag NOTIFYs,
    ``outcome`` (the final sipfrag status, or the REFER's failure) once known."""

    def __init__(self, call: "Call", target: str, norefersub: bool, hangup_on_success: bool) -> None:
        self.call = call
        self.target = target
        self.norefersub = norefersub
        self.hangup_on_success = hangup_on_success
        self.status = 0
        self.cseq = 0
        self.progress: list[tuple[int, str]] = []
        self.outcome: Optional[int] = None
        self._cond = threading.Condition()

    def __repr__(self) -> str:
        return f"<Transfer to {self.target} status={self.status} outcome={self.outcome}>"

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the outcome (the final NOTIFY's status; with norefersub the REFER's status)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.outcome is not None, timeout):
                raise AssertionError(f"transfer to {self.target}: no outcome within {timeout:g} s; "
                                     f"REFER {self.status}, progress {self.progress}")
            return self.outcome  # type: ignore[return-value]

    def _finish(self, status: int) -> None:
        with self._cond:
            self.outcome = status
            self._cond.notify_all()

    def _on_final(self, ev: Any) -> None:
        phone = self.call.phone
        self.status = ev.status
        ref_sub = (ev.message.header("Refer-Sub") or "").strip().lower() if ev.message is not None else ""
        if ev.status >= 300:
            phone._post(TransferProgress(self.call, ev.status, ev.message.reason if ev.message else "", True))
            self._finish(ev.status)
        elif ref_sub == "false" or self.norefersub:
            phone._post(TransferProgress(self.call, ev.status, "Accepted", True))
            self._finish(ev.status)  # no NOTIFYs will come (RFC 4488)

    def _on_notify(self, ev: Any, txn_id: int) -> None:
        msg = ev.message
        phone = self.call.phone
        phone.engine.core.respond(txn_id, 200)
        state, _ = parse_state(msg.header("Subscription-State"))
        try:
            status, reason = eventpkg.parse_sipfrag(msg.body)
        except ValueError:
            status, reason = 0, ""
        final = state == "terminated" or status >= 200
        self.progress.append((status, reason))
        phone._post(TransferProgress(self.call, status, reason, final))
        if final:
            if 200 <= status < 300 and self.hangup_on_success and self.call.is_active:
                self.call.hangup()
            self._finish(status)


def send_refer(call: "Call", refer_to: str, norefersub: bool = False, hangup_on_success: bool = True) -> Transfer:
    """Send REFER on ``call``'s dialog with Refer-To ``refer_to`` (a URI, maybe with ?Replaces=...)."""
    phone = call.phone
    with call._lock:
        if call.state != "confirmed" or not call.dialog_id:
            raise LocalProtocolError(f"cannot transfer a call that is {call.state}")
        xfer = Transfer(call, refer_to, norefersub, hangup_on_success)
        hdrs = [("Refer-To", f"<{refer_to}>"), ("Referred-By", f"<{phone.aor}>"),
                ("Contact", f"<{phone.contact_uri}>")]
        if norefersub:
            hdrs += [("Refer-Sub", "false"), ("Supported", "norefersub")]
        txn = phone.engine.core.dialog_request(call.dialog_id, "REFER", hdrs)
        xfer.cseq = phone.engine.core.dialog_info(call.dialog_id)["local_cseq"]
        phone._track(txn, "refer", xfer)
        phone._services.transfers.setdefault(call.dialog_id, []).append(xfer)
        return xfer


def attended_refer_to(other: "Call") -> str:
    """Refer-To of an attended transfer: the target of ``other`` with Replaces naming ``other``'s dialog."""
    if other.state != "confirmed" or not other.dialog_id:
        raise LocalProtocolError(f"the call to replace is {other.state}, not confirmed")
    target = other.remote
    return f"{target}?Replaces={quote(replaces_value(other), safe='')}"


class Referral:
    """A REFER we received (transferee role): 202, then the new call, then NOTIFYs of its progress."""

    def __init__(self, phone: "Phone", call: "Call", ev: Any) -> None:
        self.phone = phone
        self.call = call
        msg = ev.message
        self.norefersub = (msg.header("Refer-Sub") or "").strip().lower() == "false"
        cseq = msg.cseq() if callable(msg.cseq) else msg.cseq
        self.event_id = str(cseq[0]) if cseq else None
        refer_to = (msg.nameaddr("Refer-To") or {}).get("uri") or ""
        self.target, _, query = refer_to.partition("?")
        self.replaces: Optional[str] = None
        self.headers: list[tuple[str, str]] = []
        for item in filter(None, query.split("&")):
            name, _, value = item.partition("=")
            value = unquote(value)
            if name.lower() == "replaces":
                self.replaces = value
            self.headers.append((name, value))
        self.referred_by = msg.header("Referred-By")
        self.new_call: Optional["Call"] = None
        self.done = False
        self.txn_id = ev.txn_id

    def start(self) -> None:
        """Answer 202 and place the call to the Refer-To target."""
        phone, core = self.phone, self.phone.engine.core
        if not self.target:
            core.respond(self.txn_id, 400, "Missing Refer-To")
            return
        core.respond(self.txn_id, 202, None, [("Refer-Sub", "false")] if self.norefersub else
                     [("Contact", f"<{phone.contact_uri}>")])
        self._notify(100, "Trying", final=False)
        extra = list(self.headers)
        if self.referred_by:
            extra.append(("Referred-By", self.referred_by))
        try:
            self.new_call = phone.call(self.target, headers=extra)
        except Exception as exc:  # unroutable target: report it
            self._notify(503, f"Service Unavailable ({exc})"[:60], final=True)
            return
        phone._services.referrals[id(self.new_call)] = self
        phone._post(TransferRequested(self.call, self.target, self.replaces, self.new_call))

    def on_event(self, ev: Any) -> None:
        """The new call's Ringing / Answered / CallEnded, as posted: report them to the transferor."""
        name = type(ev).__name__
        if self.done:
            return
        if name == "Ringing":
            self._notify(ev.status, reason_phrase(ev.status), final=False)
        elif name == "Answered":
            self._notify(200, "OK", final=True)
        elif name == "CallEnded":
            status = ev.status if ev.status >= 300 else 487
            self._notify(status, ev.reason or "Failed", final=True)

    def _notify(self, status: int, reason: str, final: bool) -> None:
        phone = self.phone
        if final:
            self.done = True
            phone._services.referrals.pop(id(self.new_call), None)
        phone._post(TransferProgress(self.call, status, reason, final))
        if self.norefersub or not self.call.dialog_id or self.call.state == "terminated":
            return
        ss = "terminated;reason=noresource" if final else "active;expires=60"
        hdrs = [("Event", "refer" + (f";id={self.event_id}" if self.event_id else "")),
                ("Subscription-State", ss), ("Contact", f"<{phone.contact_uri}>"),
                ("Content-Type", eventpkg.SIPFRAG)]
        try:
            txn = phone.engine.core.dialog_request(self.call.dialog_id, "NOTIFY", hdrs, eventpkg.sipfrag(status, reason))
            phone._track(txn, "notify", self)
        except (KeyError, ValueError, EngineError) as exc:  # the dialog ended meanwhile
            phone._services.log.debug("refer NOTIFY not sent: %s", exc)
