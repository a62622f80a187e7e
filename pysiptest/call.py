"""A call: one INVITE dialog and its media, seen from one phone."""
from __future__ import annotations

import copy
import logging
import threading
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from pysiptest import sdp, session_timer
from pysiptest.errors import EngineError, LocalProtocolError
from pysiptest.sdp import serialize as _serialize_sdp

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
        #: our last SDP and the peer's (full model), and what they agreed for audio (None: no audio agreed)
        self.local_description: Optional[sdp.SessionDescription] = None
        self.remote_description: Optional[sdp.SessionDescription] = None
        self.session: Optional[sdp.AudioSession] = None
        self._local_offer = b""  # the body of our INVITE
        self._early_answer = b""  # incoming: the SDP answer sent in a 183 (early media); outgoing: received
        self._reinvite_answered = threading.Event()
        self._reinvite_status = 0
        #: UPDATE (RFC 3311): the final status of our last one and its response
        self._update_answered = threading.Event()
        self.update_status = 0
        #: the running RFC 4028 session timer (pysiptest.session_timer), None without one
        self.session_timer: Optional[session_timer.SessionTimer] = None
        self._session_negotiated: Optional[tuple[int, str]] = None
        self.end_reason = ""
        self.end_status = 0
        self._hangup_cause: Optional[tuple[str, int]] = None  # why we hung up, when not the user's choice
        self._final_stats: Optional[dict[str, Any]] = None
        # received audio kept for a device with record_audio: 16-bit PCM, and the number of the next sample
        self._audio = bytearray()
        self._audio_next = 0
        #: the INVITE that started an incoming call (Request-URI, Diversion, ... for the application)
        self.request: Any = None
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
    def ring(self, reliable: Optional[bool] = None) -> None:
        """Send 180 Ringing for an incoming call.

        ``reliable`` sends it reliably (RFC 3262: Require: 100rel, RSeq, retransmitted until PRACKed); None
        does so when the caller requires 100rel, or offers it and the device sends reliable provisionals."""
        with self._lock:
            if self.direction != "incoming" or self.state not in ("ringing", "early"):
                return
            if reliable is None:
                reliable = self._wants_reliable()
            did = self.phone.engine.core.respond(self.invite_txn, 180, None, self.phone._contact_headers(),
                                                 reliable=reliable)
            if did:
                self._bind_dialog(did)

    def progress(self, early_media: bool = True, reliable: Optional[bool] = None) -> None:
        """Send 183 Session Progress for an incoming call; with ``early_media`` it carries our SDP answer and
        media starts at once (early media).  The 200 of :meth:`answer` then repeats the same answer.
        ``reliable`` as for :meth:`ring`; a reliable 183 with SDP holds the 200 until its PRACK (RFC 3262 3)."""
        with self._lock:
            if self.direction != "incoming" or self.state not in ("ringing", "early"):
                raise LocalProtocolError(f"cannot send 183 on a call that is {self.state}")
            if reliable is None:
                reliable = self._wants_reliable()
            headers = self.phone._contact_headers()
            body = b""
            if early_media:
                body = self._early_answer or self._make_answer()
                self._early_answer = body
                headers.append(("Content-Type", "application/sdp"))
            did = self.phone.engine.core.respond(self.invite_txn, 183, None, headers, body, reliable=reliable)
            if did:
                self._bind_dialog(did)
            self._set_state("early")
            if early_media:
                self._start_media()

    def _make_answer(self) -> bytes:
        """Our SDP answer to the INVITE's offer (or an offer when it had none); 488 and LocalProtocolError when
        nothing can be agreed.  Records both descriptions."""
        dev = self.phone.device
        offered = self.remote_sdp.payload_types if self.remote_sdp else []
        pt = sdp.choose_codec(offered, dev.codecs) if self.remote_sdp else dev.codecs[0]
        if pt is None:
            self.reject(488)
            raise LocalProtocolError(f"no common codec: offered {offered}, supported {dev.codecs}")
        self.payload_type = pt
        offer = self.request.body if self.request is not None and self.request.body else b""
        if offer:
            body = dev.answer_sdp(self.phone.host, self.media_port, pt, offer, self.phone.user)
        else:  # late offer (RFC 3261 13.2.1): our full offer goes in the 200, the answer comes in the ACK
            body = dev.offer_sdp(self.phone.host, self.media_port, self.phone.user)
            self._local_offer = body
        if offer and not self._negotiate(body, offer, remote_is_answer=False):
            self.reject(488)
            raise LocalProtocolError("the offer's audio stream was refused (codec, RTP/SAVP or crypto)")
        return body

    def _wants_reliable(self) -> bool:
        """Whether our provisionals go reliably by default (RFC 3262 3)."""
        req = self.request
        if req is None:
            return False
        if "100rel" in session_timer.option_tags(req, "Require"):
            return True
        dev = self.phone.device
        return (dev.reliable_provisionals and "100rel" in dev.supported
                and "100rel" in session_timer.option_tags(req, "Supported"))

    def answer(self) -> None:
        """Answer an incoming call: 200 OK with an SDP answer; media starts at once. A device with
        ``answer_delay`` (a DECT base relaying the handset's off-hook) sends the 200 that much later."""
        delay = self.phone.device.answer_delay
        if delay > 0:
            with self._lock:
                if self.direction != "incoming" or self.state not in ("ringing", "early"):
                    raise LocalProtocolError(f"cannot answer a {self.direction} call that is {self.state}")
            self.phone.engine.call_later(delay, self._answer_late)
            return
        self._answer()

    def _answer_late(self) -> None:
        """Dispatcher: the delayed answer, unless the call ended (or was answered) meanwhile."""
        if self.state in ("ringing", "early"):
            self._answer()

    def _answer(self) -> None:
        with self._lock:
            if self.direction != "incoming":
                raise LocalProtocolError("only an incoming call can be answered")
            if self.state not in ("ringing", "early"):
                raise LocalProtocolError(f"cannot answer a call that is {self.state}")
            dev = self.phone.device
            body = self._early_answer or self._make_answer()  # after early media, the same answer again
            headers = self.phone._contact_headers() + [("Content-Type", "application/sdp")]
            st_hdrs, self._session_negotiated = session_timer.answer_headers(dev, self.request)
            headers += st_hdrs
            # the ACK can come back before respond() returns: be in "answering" before the 200 leaves
            self._set_state("answering")
            try:
                did = self.phone.engine.core.respond(self.invite_txn, 200, None, headers, body)
            except Exception:
                self._set_state("ringing")
                raise
            self._bind_dialog(did)
            if self._early_answer:
                self._stop_media()  # early media: same stream, restarted for the answered call
            self._start_media()
            self.session_timer = session_timer.start_uas(self, self._session_negotiated)

    def reject(self, status: int = 486, reason: Optional[str] = None,
               headers: Sequence[tuple[str, str]] = ()) -> None:
        """Reject an incoming call with a final status (486 Busy Here by default) and extra ``headers``."""
        with self._lock:
            if self.direction != "incoming" or self.state not in ("ringing", "early"):
                raise LocalProtocolError(f"cannot reject a call that is {self.state}")
            self.phone.engine.core.respond(self.invite_txn, status, reason, list(headers))
            self._ended(f"rejected with {status}", status)

    def hangup(self, reason: Optional[str] = None, status: int = 0) -> None:
        """End the call: BYE when answered, CANCEL before an answer, 603 for an unanswered incoming call.
        ``reason`` and ``status`` (default "hung up" and the BYE's final status) become the call's
        ``end_reason``/``end_status`` and those of its CallEnded event."""
        with self._lock:
            if self.state in ("terminated", "terminating"):
                return
            if reason:
                self._hangup_cause = (reason, status)
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

    def hold(self, timeout: float = 5.0, direction: str = "sendonly") -> None:
        """Put the call on hold: a re-INVITE with our audio ``sendonly`` (RFC 3264 8.4), or ``inactive``;
        the peer stops sending."""
        if direction not in ("sendonly", "inactive"):
            raise ValueError(f"hold direction must be 'sendonly' or 'inactive', not {direction!r}")
        self._reoffer(direction, timeout)

    def resume(self, timeout: float = 5.0) -> None:
        """Take the call off hold: a re-INVITE with our audio ``sendrecv``."""
        self._reoffer("sendrecv", timeout)

    def reinvite(self, codecs: Optional[Sequence[int]] = None, timeout: float = 5.0) -> int:
        """Send a re-INVITE whose offer is our last description again (next o= version) or, with ``codecs``
        (payload types, e.g. ``[8]`` for a codec change), a new offer of those codecs; wait for the final
        status and return it.  Media follows the answer (RFC 3264 8)."""
        with self._lock:
            if self.local_description is None:
                raise LocalProtocolError(f"cannot send a re-INVITE on a call that is {self.state}")
            if codecs is None:
                offer = self._next_version()
            else:
                offer = sdp.make_offer(self.phone.host, self.media_port, self.phone.device.capabilities(codecs),
                                       username=self.phone.user)
                offer.origin = copy.deepcopy(self.local_description.origin)
                offer.origin.session_version = str(int(offer.origin.session_version) + 1)
        return self._send_reinvite(offer, f"codecs {list(codecs)}" if codecs else "new version", timeout)

    def _reoffer(self, direction: str, timeout: float) -> None:
        with self._lock:
            if self.local_description is None:
                raise LocalProtocolError(f"cannot send a re-INVITE on a call that is {self.state}")
            offer = sdp.hold_offer(self.local_description, direction)
        status = self._send_reinvite(offer, direction, timeout)
        if not 200 <= status < 300:
            raise AssertionError(f"{self.phone.name}: re-INVITE ({direction}) was refused: {status}")

    def _send_reinvite(self, offer: "sdp.SessionDescription", what: str, timeout: float) -> int:
        with self._lock:
            if self.state != "confirmed" or not self.dialog_id:
                raise LocalProtocolError(f"cannot send a re-INVITE on a call that is {self.state}")
            self._reinvite_answered = threading.Event()
            self._reinvite_status = 0
            hdrs = self.phone._contact_headers() + [("Content-Type", "application/sdp")]
            body = sdp.serialize(offer)
            txn = self.phone.engine.core.dialog_request(self.dialog_id, "INVITE", hdrs, body)
            self.phone._track(txn, "reinvite", (self, offer))
            # a 401/407 in the dialog is answered with credentials (pysiptest/_retry.py)
            self.phone._retry.remember(txn, "INVITE", None, hdrs, body, dialog_id=self.dialog_id)
            done = self._reinvite_answered
        if not done.wait(timeout):
            raise AssertionError(f"{self.phone.name}: re-INVITE ({what}) got no final response in {timeout:g} s")
        return self._reinvite_status

    def update(self, sdp: Union[bytes, bool, None] = None, timeout: float = 5.0,  # noqa: F811
               headers: Sequence[tuple[str, str]] = ()) -> int:
        """Send UPDATE (RFC 3311) in an early or confirmed dialog and wait for its final response.

        ``sdp`` (bytes, or True for a new version of our last description) is an offer whose answer
        the peer puts in its 200; media follows the answer.  Returns the final status;
        AssertionError when none arrives in time."""
        with self._lock:
            if self.state not in ("ringing", "early", "answering", "confirmed") or not self.dialog_id:
                raise LocalProtocolError(f"cannot send UPDATE on a call that is {self.state} (no dialog yet)")
            if sdp is True:
                if self.local_description is None:
                    raise LocalProtocolError("no previous SDP of ours to offer again")
                sdp = _serialize_sdp(self._next_version())
            hdrs = self.phone._contact_headers() + list(headers)
            body = bytes(sdp or b"")
            if body:
                hdrs.append(("Content-Type", "application/sdp"))
            self._update_answered = threading.Event()
            self.update_status = 0
            txn = self.phone.engine.core.dialog_request(self.dialog_id, "UPDATE", hdrs, body)
            self.phone._track(txn, "update", (self, body))
            done = self._update_answered
        if not done.wait(timeout):
            raise AssertionError(f"{self.phone.name}: UPDATE got no final response in {timeout:g} s")
        return self.update_status

    def _next_version(self) -> "sdp.SessionDescription":
        """Our last description again with the o= version increased (RFC 3264 8)."""
        assert self.local_description is not None
        sd = copy.deepcopy(self.local_description)
        sd.origin.session_version = str(int(sd.origin.session_version) + 1)
        return sd

    def _on_update_final(self, offer: bytes, status: int, body: bytes) -> None:
        """Dispatcher: the final response to our UPDATE; with an offer, media follows the answer."""
        if 200 <= status < 300 and offer and body:
            try:
                self._negotiate(offer, body, remote_is_answer=True)
                self._restart_media()
            except sdp.SdpError as exc:
                log.warning("%s: bad SDP in the answer to an UPDATE: %s", self.phone.name, exc)
        self.update_status = status
        self._update_answered.set()

    def _answer_update(self, offer: bytes) -> bytes:
        """Dispatcher: our SDP answer to the peer's UPDATE (same rules as a re-INVITE)."""
        if self.local_description is None and self.direction == "incoming" and self.state in ("ringing", "early"):
            # early dialog before our answer: answer with our codecs, no previous version to follow
            dev = self.phone.device
            body = dev.answer_sdp(self.phone.host, self.media_port,
                                  self.payload_type if self.payload_type is not None else dev.codecs[0], offer,
                                  self.phone.user)
            self._negotiate(body, offer, remote_is_answer=False)
            return body
        return self._answer_reinvite(offer)

    def _send_session_refresh(self, st: "session_timer.SessionTimer") -> None:
        """Session timer: refresh by UPDATE (no SDP) or re-INVITE (our SDP, next version); under the lock."""
        core = self.phone.engine.core
        hdrs = self.phone._contact_headers() + st.refresh_headers()
        if self.phone.device.session_refresh_method.upper() == "INVITE" and self.local_description is not None:
            offer = self._next_version()
            txn = core.dialog_request(self.dialog_id, "INVITE", hdrs + [("Content-Type", "application/sdp")],
                                      sdp.serialize(offer))
            self.phone._track(txn, "refresh", (self, st, offer))
        else:
            txn = core.dialog_request(self.dialog_id, "UPDATE", hdrs)
            self.phone._track(txn, "refresh", (self, st, None))

    def _on_refresh_final(self, st: "session_timer.SessionTimer", offer: Optional["sdp.SessionDescription"],
                          status: int, msg: Any) -> None:
        """Dispatcher: the final response to our session refresh."""
        if offer is not None and 200 <= status < 300 and msg is not None and msg.body:
            try:
                self._negotiate(sdp.serialize(offer), msg.body, remote_is_answer=True)
            except sdp.SdpError as exc:
                log.warning("%s: bad SDP in the answer to a session refresh: %s", self.phone.name, exc)
        st.on_refresh_answered(status, msg)

    def _on_reinvite_final(self, offer: "sdp.SessionDescription", status: int, body: bytes) -> None:
        """Dispatcher: the final response to our re-INVITE; media follows the new answer."""
        if 200 <= status < 300 and body:
            try:
                self._negotiate(sdp.serialize(offer), body, remote_is_answer=True)
                self._restart_media()
            except sdp.SdpError as exc:
                log.warning("%s: bad SDP in the answer to a re-INVITE: %s", self.phone.name, exc)
        self._reinvite_status = status
        self._reinvite_answered.set()

    def _answer_reinvite(self, offer: bytes) -> bytes:
        """Dispatcher: our answer to the peer's re-INVITE (RFC 3264 8); media follows it."""
        dev = self.phone.device
        pt = self.payload_type if self.payload_type is not None else dev.codecs[0]
        offered = sdp.parse(offer)
        formats = [f for m in offered.media if m.media == "audio" and m.port for f in m.formats]
        # keep the codec in use when it is offered again; a codec change offers others: any of ours will do
        caps = dev.capabilities([pt]) if str(pt) in formats else dev.capabilities()
        ans = sdp.make_answer(offered, self.phone.host, self.media_port, caps, username=self.phone.user)
        if self.local_description is not None:  # same session, next version (RFC 3264 8)
            ans.origin = self.local_description.origin
            ans.origin.session_version = str(int(ans.origin.session_version) + 1)
        body = sdp.serialize(ans)
        if self._negotiate(body, offer, remote_is_answer=False):
            self._restart_media()
        return body

    def _on_ack_answer(self, body: bytes) -> None:
        """Dispatcher, late offer: the SDP answer in the ACK to the offer in our 200; media starts with it."""
        if self.session is not None or not self._local_offer or self.direction != "incoming":
            return
        try:
            if self._negotiate(self._local_offer, body, remote_is_answer=True):
                self._start_media()
        except sdp.SdpError as exc:
            log.warning("%s: bad SDP answer in the ACK: %s", self.phone.name, exc)

    def _negotiate(self, local: bytes, remote: bytes, remote_is_answer: bool) -> bool:
        """Record both descriptions and what they agreed; False when no audio stream was agreed."""
        self.local_description = sdp.parse(local)
        self.remote_description = sdp.parse(remote)
        s = sdp.negotiated(self.local_description, self.remote_description, remote_is_answer,
                           codecs=self.phone.device.codecs)
        self.session = s
        if s is not None:
            self.payload_type = s.payload_type
            self.remote_sdp = sdp.AudioOffer(s.remote_host, s.remote_port, s.formats, s.ptime, s.direction)
        return s is not None

    # -- transfer and INFO ---------------------------------------------------------------------
    def transfer(self, target: Any, norefersub: bool = False, hangup_on_success: bool = True) -> Any:
        """Blind transfer (RFC 3515): REFER the peer to ``target`` (user, URI or Phone). The returned Transfer
        collects the peer's sipfrag NOTIFYs (TransferProgress events); on a final 2xx this call is hung up.
        ``norefersub`` asks for no NOTIFYs (RFC 4488 Refer-Sub: false)."""
        from pysiptest.transfer import send_refer
        return send_refer(self, self.phone._uri_for(target), norefersub, hangup_on_success)

    def attended_transfer(self, other_call: "Call", norefersub: bool = False, hangup_on_success: bool = True) -> Any:
        """Attended transfer: REFER the peer of this call to the peer of ``other_call`` with Replaces
        (RFC 3891) naming ``other_call``'s dialog, which the target then ends with BYE."""
        from pysiptest.transfer import attended_refer_to, send_refer
        return send_refer(self, attended_refer_to(other_call), norefersub, hangup_on_success)

    def send_info(self, body: Any, content_type: str = "application/dtmf-relay") -> int:
        """Send INFO (RFC 6086) with ``body`` (str or bytes) in this call's dialog; returns the transaction id
        (its response arrives as ResponseReceived). ``pysiptest.eventpkg.dtmf_relay("5")`` makes a DTMF body."""
        with self._lock:
            if self.state not in ("confirmed", "early", "ringing", "answering") or not self.dialog_id:
                raise LocalProtocolError(f"cannot send INFO on a call that is {self.state}")
            data = body.encode() if isinstance(body, str) else bytes(body)
            hdrs = [("Content-Type", content_type)] if data else []
            return self.phone.engine.core.dialog_request(self.dialog_id, "INFO", hdrs, data)

    # -- media ------------------------------------------------------------------------------
    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Send digits as RFC 4733 telephone-events on the call's RTP stream (negotiated payload type)."""
        with self._lock:
            if self.media_id is None or self.session is None or self.state != "confirmed":
                raise LocalProtocolError(f"cannot send DTMF on a call that is {self.state} without media")
            if self.session.dtmf_payload_type is None:
                raise LocalProtocolError("the peer did not accept telephone-event in SDP")
            self.phone.engine.media.send_dtmf(self.media_id, digits, duration_ms)

    def dtmf_received(self) -> str:
        """The digits received as RFC 4733 telephone-events so far (the newest ones the engine keeps)."""
        with self._lock:
            if self.media_id is None:
                return ""
            return "".join(e["digit"] for e in self.phone.engine.media.dtmf_events(self.media_id))

    def heard_tone(self, hz: float, window_ms: int = 200) -> bool:
        """True when the last window_ms of received audio holds a tone at hz (Goertzel, in C)."""
        with self._lock:
            if self.media_id is None:
                return False
            return bool(self.phone.engine.media.detect_tone(self.media_id, hz, window_ms)["present"])

    def recorded_audio(self) -> bytes:
        """The audio received so far (the whole call once it ended) as 8 kHz 16-bit little-endian PCM decoded
        from G.711, for a device with ``record_audio`` (the voicemail box); empty for other devices. The
        engine keeps the newest 1.024 s: samples lost between two reads are kept as silence."""
        self._pull_audio()
        with self._lock:
            return bytes(self._audio)

    def _pull_audio(self) -> None:
        """Copy the samples received since the last read out of the media engine; to lose none, call it at
        least once a second while the call is up (the voicemail service does; the end of the call does)."""
        with self._lock:
            dev = self.phone.device
            if self.media_id is None or not dev.record_audio:
                return
            try:
                _, first, pcm = self.phone.engine.media.samples(self.media_id, self._audio_next)
            except (KeyError, EngineError):  # the stream or the media engine is gone: nothing more to read
                return
            room = 2 * 8000 * dev.record_max_seconds - len(self._audio)
            gap = bytes(2 * (first - self._audio_next)) if first > self._audio_next else b""
            self._audio.extend((gap + pcm)[:max(0, room)])
            self._audio_next = first + len(pcm) // 2

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
        s = self.session
        extra: dict[str, Any] = {"rtcp_interval_ms": dev.rtcp_interval_ms}
        if dev.media_source == "pcap":
            extra.update(pcap=dev.media_pcap, loop=True)
        source = dev.media_source
        if s is not None:
            if s.dtmf_payload_type is not None:
                extra["dtmf_pt"] = s.dtmf_payload_type
            if s.srtp_suite:
                extra.update(srtp=s.srtp_suite, srtp_tx_key=s.srtp_tx_key, srtp_rx_key=s.srtp_rx_key)
            if not s.send:  # on hold (or held): receive only
                source = "none"
                extra.pop("pcap", None), extra.pop("loop", None)
        self.phone.engine.media.start(
            self.media_id, self.remote_sdp.host, self.remote_sdp.port, payload_type=pt,
            source=source, tone_hz=dev.tone_hz, ptime_ms=s.ptime if s is not None else dev.ptime, **extra,
        )

    def _restart_media(self) -> None:
        if self.media_id is not None and self.state in ("confirmed", "answering"):
            self._stop_media()
            self._start_media()

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
            self._pull_audio()
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
