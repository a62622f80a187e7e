"""Device profiles: how a phone model behaves on the wire.

A profile is data first (class attributes the engine can act on) and
behaviour second (hooks a subclass may override: ``incoming_call_status``
to refuse calls, ``offer_sdp``/``answer_sdp`` to shape the session
description, e.g. a softphone that offers video and answers audio only).  Concrete models live in a
project's ``devices/`` folder, one module per model; each subclass of
:class:`Device` registers itself under its ``model`` name, and
:func:`find_device` looks a name up ("Squirrel350", "squirrel 350").
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterable, Optional, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest import sdp

_REGISTRY: dict[str, type["Device"]] = {}


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


class Device:
    """Base class of device profiles; the defaults describe a plain, quick desk phone."""

    model: ClassVar[str] = "Generic"
    vendor: ClassVar[str] = "pysiptest"
    user_agent: ClassVar[str] = "pysiptest/0.1"
    #: audio payload types in order of preference (0 PCMU, 8 PCMA)
    codecs: ClassVar[list[int]] = [0, 8]
    ptime: ClassVar[int] = 20
    transport: ClassVar[str] = "udp"
    #: option tags put in Supported
    supported: ClassVar[list[str]] = []
    #: option tags put in Require of our INVITEs (e.g. ["100rel"]: provisionals must be sent reliably)
    require: ClassVar[list[str]] = []
    #: send 180/183 reliably (RFC 3262) whenever the caller offers 100rel (needs "100rel" in supported);
    #: a caller that requires 100rel always gets reliable provisionals
    reliable_provisionals: ClassVar[bool] = False
    #: PRACK the peer's reliable provisionals by ourselves (in C); False leaves PRACK to the user
    auto_prack: ClassVar[bool] = True
    #: session timers (RFC 4028, with "timer" in supported): interval asked for in our INVITE (None: none
    #: asked, but a caller's is honoured), the smallest we accept (Min-SE; 422 below it), who refreshes when
    #: we choose ("uac" or "uas") and how ("UPDATE" or "INVITE")
    session_expires: ClassVar[Optional[int]] = None
    min_se: ClassVar[int] = 90
    session_refresher: ClassVar[str] = "uac"
    session_refresh_method: ClassVar[str] = "UPDATE"
    #: seconds from an incoming INVITE to our 180 Ringing (None: no 180)
    ring_delay: ClassVar[Optional[float]] = 0.0
    #: seconds from the INVITE to answering by itself (None: wait for the user)
    auto_answer_after: ClassVar[Optional[float]] = None
    #: seconds from the user answering (``Call.answer()``) to the 200 OK leaving (e.g. a DECT base)
    answer_delay: ClassVar[float] = 0.0
    #: keep the audio each call receives (``Call.recorded_audio()``, decoded G.711), at most this many seconds
    record_audio: ClassVar[bool] = False
    record_max_seconds: ClassVar[int] = 300
    #: REGISTER expiry asked for, in seconds
    register_expires: ClassVar[int] = 3600
    #: what the phone sends while a call is up: "tone", "silence", "echo" or "pcap" (media_pcap)
    media_source: ClassVar[str] = "tone"
    #: hand the routine behaviour (180 after ring_delay, 200 after auto_answer_after, 200 to BYE/OPTIONS/NOTIFY/INFO,
    #: BYE after hold_time) to the C fast path: such calls give only a summary (``phone.summaries``), no media
    fast_path: ClassVar[bool] = False
    #: seconds from the answer to our BYE for calls on the fast path (None: wait for the caller's BYE)
    hold_time: ClassVar[Optional[float]] = None
    tone_hz: ClassVar[float] = 440.0
    media_pcap: ClassVar[str] = ""  # media_source "pcap": the capture replayed (looping)
    #: SRTP suite(s) offered and accepted (RFC 4568 SDES: "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
    #: "AEAD_AES_128_GCM"); None: plain RTP/AVP. A device with SRTP refuses plain RTP offers.
    srtp: ClassVar[Union[str, Sequence[str], None]] = None
    #: RFC 4733 telephone-event payload type offered (None: no telephone-events, DTMF cannot be sent)
    dtmf_payload_type: ClassVar[Optional[int]] = 101
    #: how the phone sends the keys its user presses: "rfc4733" (telephone-events on RTP), "info" (SIP INFO,
    #: application/dtmf-relay) or "auto" (RFC 4733 when telephone-event was agreed in SDP, else INFO)
    dtmf_mode: ClassVar[str] = "auto"
    #: RTCP sender/receiver report interval in ms (0: no RTCP)
    rtcp_interval_ms: ClassVar[int] = 5000

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            _REGISTRY[_norm(cls.model)] = cls

    # -- hooks ----------------------------------------------------------------------------
    def incoming_call_status(self, caller: str) -> Optional[int]:
        """A final status to reject an incoming call with at once (e.g. 486 when busy), or None to ring."""
        return None

    def capabilities(self, codecs: Optional[Sequence[int]] = None) -> "sdp.Capabilities":
        """What this model offers and accepts in SDP (codecs, ptime, telephone-event, SRTP suites)."""
        from pysiptest import sdp

        suites = [self.srtp] if isinstance(self.srtp, str) else list(self.srtp or ())
        return sdp.Capabilities(codecs=list(self.codecs if codecs is None else codecs), ptime=self.ptime,
                                telephone_event=self.dtmf_payload_type, srtp=suites, srtp_required=bool(suites))

    def offer_sdp(self, host: str, port: int, username: str) -> bytes:
        """The SDP offer of an outgoing call (default: one audio stream with this model's codecs,
        telephone-event, and RTP/SAVP with one a=crypto line per suite when ``srtp`` is set)."""
        from pysiptest import sdp

        return sdp.serialize(sdp.make_offer(host, port, self.capabilities(), username=username))

    def answer_sdp(self, host: str, port: int, payload_type: int, offer: bytes, username: str) -> bytes:
        """The SDP answer to an incoming offer (RFC 3264): audio with the chosen payload type, telephone-event
        and crypto when offered and supported, every other stream refused with port 0."""
        from pysiptest import sdp

        if not offer:
            return sdp.build(host, port, [payload_type], ptime=self.ptime, username=username)
        caps = self.capabilities([payload_type])
        return sdp.serialize(sdp.make_answer(sdp.parse(offer), host, port, caps, username=username))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.vendor} {self.model}>"


_REGISTRY[_norm(Device.model)] = Device


def default_device_paths() -> list[Path]:
    """Folders searched for device modules: $PYSIPTEST_DEVICES (os.pathsep-separated), then ./devices."""
    paths = [Path(p) for p in os.environ.get("PYSIPTEST_DEVICES", "").split(os.pathsep) if p]
    paths.append(Path.cwd() / "devices")
    return paths


def load_devices(paths: Optional[Iterable[Path]] = None) -> None:
    """Import every module in the given device folders so that their models register."""
    for folder in paths if paths is not None else default_device_paths():
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.py")):
            if f.name.startswith("_"):
                continue
            modname = f"pysiptest_devices.{f.stem}"
            if modname in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(modname, f)
            if spec is None or spec.loader is None:
                continue
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)


def known_devices() -> list[str]:
    """Model names that can be found, sorted."""
    load_devices()
    return sorted({cls.model for cls in _REGISTRY.values()})


def find_device(name: str) -> type[Device]:
    """The Device class for a model name; KeyError listing the known models when there is none."""
    key = _norm(name)
    if key not in _REGISTRY:
        load_devices()
    try:
        return _REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown device {name!r}; known devices: {', '.join(known_devices())}") from None
