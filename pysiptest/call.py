"""A call: one INVITE dialog and its media, seen from one phone."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

from pysiptest import sdp
from pysiptest.errors import EngineError, LocalProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.phone import Phone

log = logging.getLogger("pysiptest.call")

STATES = ("calling", "ringing", "early", "answering", "confirmed", "terminating", "terminated")


class Call:
    """One call of a Phone: state, control (answer, reject, hang up) and media figures.

    States: ``calling`` (INVITE sent), ``ringing`` (180 sent or received), ``early`` (183),
    ``answering`` (our 200 sent, ACK awaited), ``confirmed``, ``terminating`` (BYE sent), ``terminated``.
    """

    def __init__(self, phone: "Phone", direction: str, remote: str, call_id: str) -> None:
        self.phone = phone
        self.direction = direction
        self.remote = remote
        self.call_id = call_id
        self.state = "calling" if direction == "outgoing" else "ringing"
        self.invite_txn = 0
        self.dialog_id = 0
        self.media_id: Optional[int] = None
        self.media_port = 0
        self.remote_sdp: Optional[sdp.AudioOffer] = None
        self.payload_type: Optional[int] = None
        self.end_reason = ""
        self.end_status = 0
        self._final_stats: Optional[dict[str, Any]] = None
        # the phone's lock: held by call commands and by the phone's event handler, so an event never sees a
        # half-made change (e.g. the ACK arriving before answer() has recorded the dialog id)
        self._lock = phone._lock
        self._state_cond = threading.Condition(self._lock)

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.phone.user}<->{self.remote} {self.state}>"

    # -- state ------------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """True until the call has ended."""
        return self.state != "terminated"

    def _set_state(self, state: str) -> None:
        with self._state_cond:
            self.state = state
            self._state_cond.notify_all()

    def wait_state(self, state: str, timeout: float = 5.0) -> None:
        """Wait until the call reaches state; AssertionError naming the state it is in instead."""
        with self._state_cond:
            ok = self._state_cond.wait_for(lambda: self.state == state or self.state == "terminated", timeout)
            if not ok or self.state != state:
                raise AssertionError(
                    f"{self.phone.name}: call to/from {self.remote} is {self.state!r}, expected {state!r}"
                    + (f" (ended: {self.end_reason})" if self.end_reason else "")
                )

    # -- control ----------------------------------------------------------------------------
    def ring(self) -> None:
        """Send 180 Ringing for an incoming call."""
        with self._lock:
            if self.direction != "incoming" or self.state not in ("ringing", "early"):
                return
            did = self.phone.engine.core.respond(self.invite_txn, 180, None, self.phone._contact_headers())
            if did:
                self._bind_dialog(did)

    def answer(self) -> None:
        """Answer an incoming call: 200 OK with an SDP answer; media starts at once."""
        with self._lock:
            if self.direction != "incoming":
                raise LocalProtocolError("only an incoming call can be answered")
            if self.state not in ("ringing", "early"):
                raise LocalProtocolError(f"cannot answer a call that is {self.state}")
            dev = self.phone.device
            offered = self.remote_sdp.payload_types if self.remote_sdp else []
            pt = sdp.choose_codec(offered, dev.codecs) if self.remote_sdp else dev.codecs[0]
            if pt is None:
                self.reject(488)
                raise LocalProtocolError(f"no common codec: offered {offered}, supported {dev.codecs}")
            self.payload_type = pt
            body = sdp.build(self.phone.host, self.media_port, [pt], ptime=dev.ptime, username=self.phone.user)
            headers = self.phone._contact_headers() + [("Content-Type", "application/sdp")]
            # the ACK can come back before respond() returns: be in "answering" before the 200 leaves
            self._set_state("answering")
            try:
                did = self.phone.engine.core.respond(self.invite_txn, 200, None, headers, body)
            except Exception:
                self._set_state("ringing")
                raise
            self._bind_dialog(did)
            self._start_media()

    def reject(self, status: int = 486, reason: Optional[str] = None) -> None:
        """Reject an incoming call with a final status (486 Busy Here by default)."""
        with self._lock:
            if self.direction != "incoming" or self.state not in ("ringing", "early"):
                raise LocalProtocolError(f"cannot reject a call that is {self.state}")
            self.phone.engine.core.respond(self.invite_txn, status, reason)
            self._ended(f"rejected with {status}", status)

    def hangup(self) -> None:
        """End the call: BYE when answered, CANCEL before an answer, 603 for an unanswered incoming call."""
        with self._lock:
            if self.state in ("terminated", "terminating"):
                return
            if self.state in ("confirmed", "answering") and self.dialog_id:
                txn = self.phone.engine.core.dialog_request(self.dialog_id, "BYE")
                self.phone._track(txn, "bye", self)
                self._set_state("terminating")
                self._stop_media()
            elif self.direction == "outgoing":
                try:
                    self.phone.engine.core.cancel(self.invite_txn)
                except (KeyError, EngineError) as exc:  # final response crossed our CANCEL
                    log.debug("cancel failed: %s", exc)
                self._set_state("terminating")
            else:
                self.reject(603, "Decline")

    def cancel(self) -> None:
        """CANCEL an outgoing call that has not been answered."""
        with self._lock:
            if self.direction != "outgoing" or self.state not in ("calling", "ringing", "early"):
                raise LocalProtocolError(f"cannot cancel a call that is {self.state}")
            self.phone.engine.core.cancel(self.invite_txn)
            self._set_state("terminating")

    # -- media ------------------------------------------------------------------------------
    def media_stats(self) -> dict[str, Any]:
        """Current RTP statistics of the call's stream (the last figures once the call ended)."""
        with self._lock:
            if self._final_stats is not None:
                return dict(self._final_stats)
            if self.media_id is None:
                return {}
            return self.phone.engine.media.stats(self.media_id)

    def _open_media(self) -> None:
        self.media_id, self.media_port = self.phone.engine.media.open(self.phone.host, 0)

    def _start_media(self) -> None:
        if self.media_id is None or self.remote_sdp is None or self.remote_sdp.port == 0:
            return
        dev = self.phone.device
        pt = self.payload_type if self.payload_type is not None else dev.codecs[0]
        self.phone.engine.media.start(
            self.media_id, self.remote_sdp.host, self.remote_sdp.port, payload_type=pt,
            source=dev.media_source, tone_hz=dev.tone_hz, ptime_ms=dev.ptime,
        )

    def _stop_media(self) -> None:
        if self.media_id is not None:
            try:
                self.phone.engine.media.stop(self.media_id)
            except KeyError:
                pass

    def _close_media(self) -> None:
        if self.media_id is None:
            return
        try:
            self._final_stats = self.phone.engine.media.stats(self.media_id)
            self.phone.engine.media.close_stream(self.media_id)
        except KeyError:
            pass
        self.media_id = None

    # -- bookkeeping ----------------------------------------------------------------------
    def _bind_dialog(self, dialog_id: int) -> None:
        if dialog_id and dialog_id != self.dialog_id:
            self.dialog_id = dialog_id
            self.phone._calls_by_dialog[dialog_id] = self

    def _ended(self, reason: str, status: int = 0) -> bool:
        """Mark the call terminated; False when it already was."""
        with self._lock:
            if self.state == "terminated":
                return False
            self.end_reason = reason
            self.end_status = status
            self._close_media()
            self._set_state("terminated")
            return True
