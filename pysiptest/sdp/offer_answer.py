"""RFC 3264 offer/answer over the SDP model: build offers, answer them, and read what was agreed."""
from __future__ import annotations

import copy
import ipaddress
import os
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from pysiptest.sdp.model import (
    CRYPTO_SUITES,
    DIRECTIONS,
    STATIC_RTPMAP,
    Connection,
    Crypto,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
)

#: what the answerer does with each offered direction, given its own wish (RFC 3264 6.1)
_ANSWER_DIRECTION = {
    "sendrecv": {"sendrecv": "sendrecv", "sendonly": "sendonly", "recvonly": "recvonly", "inactive": "inactive"},
    "sendonly": {"sendrecv": "recvonly", "sendonly": "inactive", "recvonly": "recvonly", "inactive": "inactive"},
    "recvonly": {"sendrecv": "sendonly", "sendonly": "sendonly", "recvonly": "inactive", "inactive": "inactive"},
    "inactive": {d: "inactive" for d in DIRECTIONS},
}
TELEPHONE_EVENT = "TELEPHONE-EVENT/8000"


@dataclass
class Capabilities:
    """What a side can do: audio codecs (payload types of the static table or ``name/clock``), in order of
    preference; ptime; the direction it wants; telephone-events; SRTP suites it accepts (empty: plain RTP only,
    ``srtp_required``: refuse plain RTP)."""

    codecs: Sequence[Union[int, str]] = (0, 8)
    ptime: int = 20
    direction: str = "sendrecv"
    telephone_event: Optional[int] = 101
    srtp: Sequence[str] = ()
    srtp_required: bool = False
    media: Sequence[str] = ("audio",)

    def encodings(self) -> list[str]:
        """The codecs as upper-case ``NAME/clock`` strings."""
        out = []
        for c in self.codecs:
            enc = STATIC_RTPMAP.get(c) if isinstance(c, int) else c
            if enc is None:
                raise ValueError(f"payload type {c} is not static: name it as 'name/clock'")
            out.append(enc.upper())
        return out


def new_key(suite: str) -> bytes:
    """A fresh random master key + salt for an SRTP suite."""
    try:
        return os.urandom(CRYPTO_SUITES[suite])
    except KeyError:
        raise ValueError(f"unknown SRTP suite {suite!r}; known: {', '.join(CRYPTO_SUITES)}") from None


def _addrtype(host: str) -> str:
    return "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"


def _session(host: str, username: str, session_id: Optional[int]) -> SessionDescription:
    sid = str(session_id if session_id is not None else int(time.time() * 1000) % 10**10)
    at = _addrtype(host)
    return SessionDescription(origin=Origin(username, sid, sid, "IN", at, host), name="pysiptest",
                              connection=Connection("IN", at, host))


def make_offer(host: str, port: int, caps: Optional[Capabilities] = None, *, username: str = "pysiptest",
               session_id: Optional[int] = None, srtp_keys: Optional[dict[str, bytes]] = None) -> SessionDescription:
    """An offer with one audio stream: caps' codecs in order, telephone-event, ptime and direction; with
    ``caps.srtp`` an RTP/SAVP stream with one a=crypto line per suite (keys from srtp_keys or fresh)."""
    caps = caps or Capabilities()
    sd = _session(host, username, session_id)
    m = MediaDescription("audio", port, "RTP/SAVP" if caps.srtp else "RTP/AVP")
    dyn = 96
    for enc in caps.encodings():
        static = [pt for pt, e in STATIC_RTPMAP.items() if e.upper() == enc]
        pt = static[0] if static else dyn
        if not static:
            dyn += 1
        m.formats.append(str(pt))
        m.attributes.append(("rtpmap", f"{pt} {STATIC_RTPMAP.get(pt, enc)}"))
    if caps.telephone_event is not None:
        m.formats.append(str(caps.telephone_event))
        m.attributes += [("rtpmap", f"{caps.telephone_event} telephone-event/8000"),
                         ("fmtp", f"{caps.telephone_event} 0-16")]
    for tag, suite in enumerate(caps.srtp, 1):
        key = (srtp_keys or {}).get(suite) or new_key(suite)
        m.attributes.append(("crypto", str(Crypto.with_key(tag, suite, key))))
    m.attributes.append(("ptime", str(caps.ptime)))
    m.set_direction(caps.direction)
    sd.media.append(m)
    return sd


def _accepts_proto(offer_m: MediaDescription, caps: Capabilities) -> bool:
    if offer_m.proto == "RTP/AVP":
        return not caps.srtp_required
    return offer_m.proto == "RTP/SAVP" and bool(caps.srtp)


def _reject(m: MediaDescription) -> MediaDescription:
    return MediaDescription(m.media, 0, m.proto, list(m.formats))


def make_answer(offer: SessionDescription, host: str, port: int, caps: Optional[Capabilities] = None, *,
                username: str = "pysiptest", session_id: Optional[int] = None) -> SessionDescription:
    """The answer to an offer (RFC 3264 6): one answer stream per offered stream, in the same order.

    The first offered audio stream we can use is accepted: the common codecs in the offer's order with the
    offer's payload type numbers, telephone-event when both sides have it, our ptime, the direction mapped
    from the offer's (sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive), and for RTP/SAVP
    the first offered a=crypto whose suite we accept, answered with its tag and a key of our own.  Every
    other stream (video, a second audio stream, no common codec, no usable crypto) is refused with port 0.
    """
    caps = caps or Capabilities()
    ours = caps.encodings()
    sd = _session(host, username, session_id)
    accepted = False
    for om in offer.media:
        if accepted or om.port == 0 or om.media not in caps.media or not _accepts_proto(om, caps):
            sd.media.append(_reject(om))
            continue
        common = [pt for pt in om.payload_types if om.encoding(pt) in ours]
        crypto: Optional[Crypto] = None
        if om.proto == "RTP/SAVP":
            for c in om.crypto:
                if c.suite in caps.srtp:
                    crypto = c
                    break
        if not common or (om.proto == "RTP/SAVP" and crypto is None):
            sd.media.append(_reject(om))
            continue
        am = MediaDescription(om.media, port, om.proto, [str(pt) for pt in common])
        rtpmap, fmtp = om.rtpmap, om.fmtp
        for pt in common:
            am.attributes.append(("rtpmap", f"{pt} {rtpmap[pt]}"))
            if pt in fmtp:
                am.attributes.append(("fmtp", f"{pt} {fmtp[pt]}"))
        te = next((pt for pt in om.payload_types if om.encoding(pt) == TELEPHONE_EVENT), None)
        if te is not None and caps.telephone_event is not None:
            am.formats.append(str(te))
            am.attributes.append(("rtpmap", f"{te} {rtpmap[te]}"))
            if te in fmtp:
                am.attributes.append(("fmtp", f"{te} {fmtp[te]}"))
        if crypto is not None:
            am.attributes.append(("crypto", str(Crypto.with_key(crypto.tag, crypto.suite, new_key(crypto.suite)))))
        am.attributes.append(("ptime", str(caps.ptime)))
        offered_dir = offer.direction_of(om)
        conn = offer.connection_for(om)
        if conn is not None and conn.is_hold_address and offered_dir == "sendrecv":
            offered_dir = "sendonly"  # RFC 2543 hold: c=0.0.0.0
        am.set_direction(_ANSWER_DIRECTION[offered_dir][caps.direction])
        sd.media.append(am)
        accepted = True
    return sd


def hold_offer(previous: SessionDescription, direction: str = "sendonly") -> SessionDescription:
    """A new offer from our previous description with the audio direction changed and the o= version
    increased (RFC 3264 8, 8.4): ``sendonly`` puts the call on hold, ``sendrecv`` resumes it."""
    sd = copy.deepcopy(previous)
    sd.origin.session_version = str(int(sd.origin.session_version) + 1)
    for m in sd.media:
        if m.port != 0:
            m.set_direction(direction)
    return sd


@dataclass
class AudioSession:
    """What an offer/answer agreed for the audio stream, from one side's point of view."""

    remote_host: str
    remote_port: int
    payload_type: int
    ptime: int = 20
    dtmf_payload_type: Optional[int] = None
    #: may we send / does the peer send (our direction attribute as the answer settled it)
    send: bool = True
    receive: bool = True
    srtp_suite: Optional[str] = None
    srtp_tx_key: bytes = b""
    srtp_rx_key: bytes = b""
    formats: list[int] = field(default_factory=list)

    @property
    def direction(self) -> str:
        """Our direction: sendrecv, sendonly, recvonly or inactive."""
        return {(True, True): "sendrecv", (True, False): "sendonly", (False, True): "recvonly",
                (False, False): "inactive"}[(self.send, self.receive)]


#: direction attribute -> (its owner sends, its owner receives)
_SENDS_RECEIVES = {"sendrecv": (True, True), "sendonly": (True, False), "recvonly": (False, True),
                   "inactive": (False, False)}


def negotiated(local: SessionDescription, remote: SessionDescription, remote_is_answer: bool,
               codecs: Sequence[Union[int, str]] = (0, 8)) -> Optional[AudioSession]:
    """The audio session an offer/answer exchange agreed, seen from ``local``'s side; None when the audio
    stream was refused. ``codecs`` are ours, in order of preference, used to choose what we send among the
    formats the answer lists (RFC 3264 6.1: the answer's order is the answerer's preference)."""
    for lm, rm in zip(local.media, remote.media):
        if lm.media != "audio" or lm.port == 0 or rm.port == 0:
            continue
        answer = rm if remote_is_answer else lm
        ours = Capabilities(codecs=codecs).encodings()
        pt = next((p for p in answer.payload_types if answer.encoding(p) in ours), None)
        if pt is None:
            return None
        # we send with the remote side's payload numbers (RFC 3264 5.1)
        remote_pt = next((p for p in rm.payload_types if rm.encoding(p) == answer.encoding(pt)), pt)
        te = next((p for p in answer.payload_types if answer.encoding(p) == TELEPHONE_EVENT), None)
        rte = next((p for p in rm.payload_types if rm.encoding(p) == TELEPHONE_EVENT), None) if te is not None else None
        conn = remote.connection_for(rm)
        if conn is None:
            raise SdpError("the remote audio stream has no connection address")
        # the remote side's direction, seen from us
        rdir = remote.direction_of(rm)
        if conn.is_hold_address and rdir == "sendrecv":
            rdir = "sendonly"
        peer_sends, peer_receives = _SENDS_RECEIVES[rdir]
        ldir = local.direction_of(lm)
        we_send = _SENDS_RECEIVES[ldir][0] and peer_receives
        we_receive = _SENDS_RECEIVES[ldir][1] and peer_sends
        s = AudioSession(conn.host, rm.port, remote_pt, rm.ptime or answer.ptime or 20, rte,
                         send=we_send, receive=we_receive, formats=answer.payload_types)
        if answer.proto == "RTP/SAVP":
            rc = rm.crypto[0] if remote_is_answer and rm.crypto else None
            if remote_is_answer:
                lc = next((c for c in lm.crypto if rc is not None and c.tag == rc.tag), None)
            else:
                lc = lm.crypto[0] if lm.crypto else None
                rc = next((c for c in rm.crypto if lc is not None and c.tag == lc.tag), None)
            if lc is None or rc is None or lc.suite != rc.suite:
                raise SdpError("RTP/SAVP without matching a=crypto lines in offer and answer")
            s.srtp_suite, s.srtp_tx_key, s.srtp_rx_key = lc.suite, lc.key, rc.key
        return s
    return None
