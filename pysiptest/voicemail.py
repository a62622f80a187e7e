"""A voicemail service on an emulated phone: answers, records, and sends message-waiting NOTIFYs.

The box is an ordinary :class:`~pysiptest.phone.Phone` (device model ``Voicemail``, see
``devices/voicemail.py``) registered with the system under test as user ``voicemail``. The PBX or proxy
forwards a call to it when the callee has DND on, is busy or does not answer, and says whose mailbox the
call is for in one of (first found wins):

- ``Diversion: <sip:bob@domain>;reason=user-busy`` (RFC 5806; what the reference PBX and the Kamailio
  config in this repository add),
- ``History-Info`` (RFC 7044): the first entry's user,
- a Request-URI user of the form ``vm-bob`` or ``voicemail+bob``,
- the To user, when it is not the box's own user.

Each call becomes a :class:`VoiceMessage` in the owner's mailbox once it ends: the media engine's receive
figures (packets, bytes, loss, duration from the first to the last packet), the audio itself (decoded G.711,
8 kHz 16-bit PCM: the box's device has ``record_audio``, and the service reads the engine's received-audio
ring every 0.2 s while the call is up) and the strongest tone in it (:func:`pysiptest.audio.dominant_tone`),
so a test can assert that the caller's tone was recorded. :meth:`VoicemailService.save` writes each
message as a WAV file and the figures as JSON. After each new message the box sends the owner an unsolicited NOTIFY (RFC 3842:
``Event: message-summary``, ``application/simple-message-summary``) through the system under test.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from pysiptest import wav
from pysiptest._uri import uri_user
from pysiptest.audio import dominant_tone
from pysiptest.call import Call
from pysiptest.errors import ExpectationError
from pysiptest.events import CallEnded, IncomingCall
from pysiptest.phone import Phone

__all__ = ["VoiceMessage", "VoicemailService", "mailbox_owner", "message_summary", "parse_message_summary"]

log = logging.getLogger("pysiptest.voicemail")

_URI_IN_ANGLES = re.compile(r"<([^>]+)>")
_VM_PREFIXES = ("vm-", "voicemail+")


@dataclass(frozen=True)
class VoiceMessage:
    """One recorded message: who left it for whom, and what the media engine received."""

    owner: str
    caller: str
    reason: str            # the Diversion reason ("do-not-disturb", "user-busy", "no-answer", ...) or ""
    started: float         # wall-clock time the call was answered (time.time())
    duration: float        # seconds of received media, first to last packet (0 if none arrived)
    rx_packets: int
    rx_bytes: int
    rx_lost: int
    payload_type: int      # -1 when nothing arrived
    #: what was recorded: 8 kHz 16-bit little-endian PCM (decoded G.711; empty when nothing arrived)
    audio: bytes = field(default=b"", repr=False)
    #: the strongest tone in the recording (Hz, 0.0 if none) and the share of the power it holds (0..1)
    tone_hz: float = 0.0
    tone_ratio: float = 0.0

    @property
    def audio_seconds(self) -> float:
        """Length of the recorded audio in seconds."""
        return len(self.audio) / 16000.0

    def heard_tone(self, hz: float, tolerance: float = 5.0) -> bool:
        """True when the recording is mostly a tone within ``tolerance`` Hz of hz."""
        return abs(self.tone_hz - hz) <= tolerance and self.tone_ratio >= 0.5

    def save_wav(self, path: Path) -> Path:
        """Write the recording as an 8 kHz 16-bit mono WAV file."""
        return wav.write_pcm(path, self.audio)


def _first_uri(value: str) -> str:
    m = _URI_IN_ANGLES.search(value)
    return (m.group(1) if m else value.split(";", 1)[0]).strip()


def _param(value: str, name: str) -> str:
    for part in value.split(">", 1)[-1].split(";"):
        k, _, v = part.partition("=")
        if k.strip().lower() == name:
            return v.strip().strip('"')
    return ""


def mailbox_owner(invite: Any, box_user: str = "voicemail") -> tuple[str, str]:
    """(owner user, reason) for an INVITE that reached the voicemail box; ("", "") when unknown."""
    div = invite.header("Diversion")
    if div:
        user = uri_user(_first_uri(div.split(",")[0]))
        if user:
            return user, _param(div.split(",")[0], "reason")
    hi = invite.header("History-Info")
    if hi:
        user = uri_user(_first_uri(hi.split(",")[0]))
        if user and user != box_user:
            return user, "history-info"
    ruser = uri_user(invite.uri or "")
    for prefix in _VM_PREFIXES:
        if ruser.startswith(prefix) and len(ruser) > len(prefix):
            return ruser[len(prefix):], ""
    to = invite.nameaddr("To") or {}
    tuser = uri_user(to.get("uri", ""))
    if tuser and tuser != box_user:
        return tuser, ""
    return "", ""


def message_summary(new: int, old: int = 0, account: Optional[str] = None) -> bytes:
    """An application/simple-message-summary body (RFC 3842 section 5)."""
    lines = [f"Messages-Waiting: {'yes' if new else 'no'}"]
    if account:
        lines.append(f"Message-Account: {account}")
    lines.append(f"Voice-Message: {new}/{old}")
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_message_summary(body: bytes) -> dict[str, str]:
    """The header-like fields of a message-summary body, names lower-cased."""
    out: dict[str, str] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


class VoicemailService:
    """Runs the mailboxes on one Phone: records every call it answers and notifies the owners.

    The phone's device should answer by itself (``auto_answer_after``); the service only watches its
    events on a thread of its own. ``mailboxes`` maps an owner's user name to their messages.
    """

    def __init__(self, phone: Phone, domain: Optional[str] = None) -> None:
        self.phone = phone
        self.domain = domain or phone.domain
        self.mailboxes: dict[str, list[VoiceMessage]] = {}
        self.notified: list[tuple[str, int]] = []  # (owner, NOTIFY transaction id)
        self._calls: dict[int, tuple[str, str, float]] = {}  # id(call) -> (owner, reason, answered at)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "VoicemailService":
        """Start watching the phone's calls."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"voicemail-{self.phone.user}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; calls still up are hung up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self.phone.close()

    def __enter__(self) -> "VoicemailService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries ------------------------------------------------------------------------------
    def messages(self, owner: str) -> list[VoiceMessage]:
        """The messages in a mailbox (empty when there are none)."""
        with self._lock:
            return list(self.mailboxes.get(owner, []))

    def wait_for_message(self, owner: str, count: int = 1, timeout: float = 5.0) -> list[VoiceMessage]:
        """Wait until the owner's mailbox holds at least count messages; AssertionError if not."""
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.mailboxes.get(owner, [])) >= count, timeout)
            if not ok:
                have = {k: len(v) for k, v in self.mailboxes.items()} or "no messages at all"
                raise AssertionError(f"mailbox {owner!r} has {len(self.mailboxes.get(owner, []))} message(s) "
                                     f"after {timeout:g} s, expected {count}; mailboxes: {have}")
            return list(self.mailboxes[owner])

    @property
    def active_call(self) -> Optional[Call]:
        """The newest call the box is in, if any."""
        calls = self.phone.active_calls
        return calls[-1] if calls else None

    def save(self, folder: Path) -> list[Path]:
        """Write each mailbox as ``<owner>.json`` (the figures of each message, with the name of its WAV file)
        and each message as ``<owner>-<n>.wav``; returns the files."""
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        with self._lock:
            boxes = {owner: list(msgs) for owner, msgs in self.mailboxes.items()}
        for owner, msgs in boxes.items():
            figures = []
            for n, m in enumerate(msgs, 1):
                wav_path = m.save_wav(folder / f"{owner}-{n}.wav")
                out.append(wav_path)
                d = asdict(m)
                d.pop("audio")
                figures.append(dict(d, wav=wav_path.name, audio_seconds=m.audio_seconds))
            path = folder / f"{owner}.json"
            path.write_text(json.dumps(figures, indent=2))
            out.append(path)
        return out

    # -- MWI ----------------------------------------------------------------------------------
    def notify(self, owner: str) -> int:
        """Send the owner an unsolicited message-summary NOTIFY (RFC 3842) with the current count."""
        new = len(self.messages(owner))
        account = f"sip:{self.phone.user}@{self.domain}"
        body = message_summary(new, 0, account)
        txn = self.phone.send_request(
            "NOTIFY", owner,
            headers=[("Event", "message-summary"), ("Subscription-State", "active;expires=3600"),
                     ("Contact", f"<{self.phone.contact_uri}>")],
            body=body, content_type="application/simple-message-summary")
        with self._lock:
            self.notified.append((owner, txn))
        log.info("MWI NOTIFY to %s: %d new", owner, new)
        return txn

    # -- the watcher thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._record()
            try:
                ev = self.phone.expect((IncomingCall, CallEnded), timeout=0.2)
            except ExpectationError:
                continue
            try:
                if isinstance(ev, IncomingCall):
                    self._incoming(ev.call)
                else:
                    self._ended(ev.call)
            except Exception:  # the watcher must survive one bad call
                log.exception("voicemail failed on %s", ev.describe())

    def _record(self) -> None:
        """Copy the audio the box's calls received since the last time out of the media engine (its ring
        holds 1 s; this runs every 0.2 s at most)."""
        for call in self.phone.active_calls:
            try:
                call._pull_audio()
            except Exception as exc:  # a call that just ended: its audio was taken when it closed
                log.debug("voicemail: reading audio failed: %s", exc)

    def _incoming(self, call: Call) -> None:
        owner, reason = mailbox_owner(call.request, self.phone.user) if call.request is not None else ("", "")
        if not owner:
            log.warning("voicemail: no mailbox owner in the INVITE from %s; rejecting", call.remote)
            try:
                call.reject(404, "No Such Mailbox")
            except Exception as exc:
                log.debug("reject failed: %s", exc)
            return
        with self._lock:
            self._calls[id(call)] = (owner, reason, time.time())

    def _ended(self, call: Call) -> None:
        with self._lock:
            entry = self._calls.pop(id(call), None)
        if entry is None or call.end_status not in (0, 200) or not call.dialog_id:
            return  # never answered (cancelled or rejected): no message
        owner, reason, started = entry
        st = call.media_stats()
        pkts = int(st.get("rx_packets", 0))
        first, last = int(st.get("first_rx_ms", 0)), int(st.get("last_rx_ms", 0))
        duration = (last - first + self.phone.device.ptime) / 1000.0 if pkts else 0.0
        audio = call.recorded_audio()
        tone = dominant_tone(audio)
        msg = VoiceMessage(owner=owner, caller=uri_user(call.remote) or call.remote, reason=reason,
                           started=started, duration=duration, rx_packets=pkts,
                           rx_bytes=int(st.get("rx_bytes", 0)), rx_lost=int(st.get("rx_lost", 0)),
                           payload_type=int(st.get("rx_payload_type", -1)), audio=audio,
                           tone_hz=tone.hz, tone_ratio=tone.ratio)
        with self._changed:
            self.mailboxes.setdefault(owner, []).append(msg)
            self._changed.notify_all()
        self.notify(owner)
