"""SDP (RFC 8866) and the RFC 3264 offer/answer model.

``parse``/``serialize`` and the model (``SessionDescription``, ``MediaDescription``, ``Crypto``) live in
``model.py``; ``make_offer``, ``make_answer``, ``hold_offer`` and ``negotiated`` in ``offer_answer.py``.
The small helpers below (``build``, ``parse_audio``, ``choose_codec``) are the one-audio-stream shortcuts
the engine's fast path and older callers use.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from pysiptest.sdp.model import (
    CRYPTO_SUITES,
    DIRECTIONS,
    Connection,
    Crypto,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    parse,
    serialize,
)
from pysiptest.sdp.offer_answer import (
    AudioSession,
    Capabilities,
    hold_offer,
    make_answer,
    make_offer,
    negotiated,
    new_key,
)

__all__ = [
    "CRYPTO_SUITES", "DIRECTIONS", "AudioOffer", "AudioSession", "Capabilities", "Connection", "Crypto",
    "MediaDescription", "Origin", "SdpError", "SessionDescription", "build", "choose_codec", "hold_offer",
    "make_answer", "make_offer", "negotiated", "new_key", "parse", "parse_audio", "serialize",
]

RTPMAP = {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000"}


@dataclass(frozen=True)
class AudioOffer:
    """The audio part of a session description."""

    host: str
    port: int
    payload_types: list[int] = field(default_factory=list)
    ptime: int = 20
    direction: str = "sendrecv"


def build(host: str, port: int, payload_types: list[int], ptime: int = 20, session_id: int | None = None,
          direction: str = "sendrecv", username: str = "pysiptest") -> bytes:
    """Build an SDP body for one audio stream at host:port offering payload_types in order."""
    if not payload_types:
        raise ValueError("at least one payload type is needed")
    ver = "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"
    sid = session_id if session_id is not None else int(time.time() * 1000) % 10**10
    lines = [
        "v=0",
        f"o={username} {sid} {sid} IN {ver} {host}",
        "s=pysiptest",
        f"c=IN {ver} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in payload_types)}",
    ]
    for pt in payload_types:
        if pt in RTPMAP:
            lines.append(f"a=rtpmap:{pt} {RTPMAP[pt]}")
    lines.append(f"a=ptime:{ptime}")
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_audio(body: bytes) -> AudioOffer:
    """The connection address, port and payload types of the first audio stream of an SDP body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError(f"SDP is not UTF-8 text: {exc}") from None
    session_host = None
    media_host = None
    port = None
    pts: list[int] = []
    ptime = 20
    direction = "sendrecv"
    in_audio = False
    seen_media = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"SDP line {n} is not of the form x=...: {line[:40]!r}")
        key, val = line[0], line[2:]
        if key == "m":
            parts = val.split()
            if len(parts) < 4:
                raise SdpError(f"SDP line {n}: m= needs media, port, proto and formats: {line[:60]!r}")
            if in_audio or (seen_media and port is not None):
                break
            seen_media = True
            if parts[0] == "audio" and port is None:
                try:
                    port = int(parts[1].split("/")[0])
                    pts = [int(p) for p in parts[3:] if p.isdigit()]
                except ValueError:
                    raise SdpError(f"SDP line {n}: bad port in {line[:60]!r}") from None
                if not 0 <= port <= 65535:
                    raise SdpError(f"SDP line {n}: port {port} out of range")
                in_audio = True
            continue
        if key == "c":
            parts = val.split()
            if len(parts) < 3:
                raise SdpError(f"SDP line {n}: c= needs nettype, addrtype and address: {line[:60]!r}")
            addr = parts[2].split("/")[0]
            if in_audio:
                media_host = addr
            elif not seen_media:
                session_host = addr
        elif key == "a" and in_audio:
            if val.startswith("ptime:"):
                try:
                    ptime = int(val[6:].strip())
                except ValueError:
                    raise SdpError(f"SDP line {n}: bad ptime {val!r}") from None
            elif val in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = val
    host = media_host or session_host
    if port is None:
        raise SdpError("SDP has no audio stream (m=audio line)")
    if host is None:
        raise SdpError("SDP has no connection address (c= line)")
    return AudioOffer(host=host, port=port, payload_types=pts, ptime=ptime, direction=direction)


def choose_codec(offered: list[int], supported: list[int]) -> int | None:
    """The first of our supported audio payload types that the offer lists (telephone-event excluded)."""
    for pt in supported:
        if pt in offered and pt != 101:
            return pt
    return None
