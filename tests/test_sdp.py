"""SDP model and RFC 3264 offer/answer: the RFC 4317 bodies, answers to its offers, malformed lines."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pysiptest import sdp

from sipcorpus import corpus_dir

ROOT = corpus_dir()
needs_corpus = pytest.mark.skipif(ROOT is None, reason="shared corpus not on this machine")


def _descriptions() -> list[dict]:
    if ROOT is None:
        return []
    return json.loads((ROOT / "sdp" / "rfc4317" / "index.json").read_text())["descriptions"]


def _body(name: str, kind: str = "printed") -> bytes:
    assert ROOT is not None
    return (ROOT / "sdp" / "rfc4317" / kind / f"{name}.sdp").read_bytes()


@needs_corpus
@pytest.mark.parametrize("desc", _descriptions(), ids=lambda d: d["name"])
@pytest.mark.parametrize("kind", ["printed", "s-space"])
def test_rfc4317_body_parses_and_round_trips(desc: dict, kind: str) -> None:
    body = _body(desc["name"], kind)
    sd = sdp.parse(body)
    assert sdp.serialize(sd) == body
    assert [m.lines()[0] for m in sd.media] == desc["m_lines"]
    assert sd.origin.session_version == desc["origin_version"]


@needs_corpus
def test_model_reads_rtpmap_direction_and_connection() -> None:
    sd = sdp.parse(_body("2.4-offer"))
    a1, a2 = sd.media
    assert a1.payload_types == [0, 97] and a1.encoding(97) == "ILBC/8000"
    assert sd.direction_of(a1) == "sendrecv" and sd.direction_of(a2) == "sendonly"
    assert sd.connection_for(a2).host == "host.atlanta.example.com"


# -- offer/answer ---------------------------------------------------------------------------
def _answer(offer: bytes, **caps: object) -> sdp.SessionDescription:
    ans = sdp.make_answer(sdp.parse(offer), "192.0.2.2", 40000, sdp.Capabilities(**caps), session_id=7)
    return sdp.parse(sdp.serialize(ans))  # what goes on the wire parses again


@needs_corpus
def test_answer_rejects_video_with_port_zero_and_keeps_offer_codec_order() -> None:
    # RFC 4317 2.2: audio accepted with the common codecs in the offer's order, video refused
    ans = _answer(_body("2.2-offer"), codecs=[8, 0])
    audio, video = ans.media
    assert (audio.port, audio.formats) == (40000, ["0", "8"])
    assert (video.media, video.port) == ("video", 0) and video.formats
    assert sdp.negotiated(ans, sdp.parse(_body("2.2-offer")), remote_is_answer=False, codecs=[8, 0]).payload_type == 0


@needs_corpus
def test_answer_codec_subset_keeps_offered_payload_numbers() -> None:
    ans = _answer(_body("2.1-offer"), codecs=["iLBC/8000"])
    assert ans.media[0].formats == ["97"] and ans.media[0].rtpmap[97] == "iLBC/8000"


@needs_corpus
def test_no_common_codec_rejects_the_stream() -> None:
    ans = _answer(_body("5.2-offer"), codecs=[0])  # iLBC only offered
    assert ans.media[0].port == 0


@needs_corpus
def test_second_audio_stream_is_refused_and_telephone_event_needs_support() -> None:
    # RFC 4317 2.6: audio PCMU, then iLBC + telephone-event; we take the first usable one only
    ans = _answer(_body("2.6-offer"), codecs=[0])
    assert ans.media[0].port == 40000 and ans.media[0].formats == ["0"]
    assert ans.media[1].port == 0


@pytest.mark.parametrize("offered,wanted,answered", [
    ("sendonly", "sendrecv", "recvonly"),
    ("recvonly", "sendrecv", "sendonly"),
    ("inactive", "sendrecv", "inactive"),
    ("sendrecv", "sendrecv", "sendrecv"),
    ("sendrecv", "recvonly", "recvonly"),
    ("sendonly", "sendonly", "inactive"),
])
def test_direction_mapping(offered: str, wanted: str, answered: str) -> None:
    offer = sdp.make_offer("192.0.2.1", 5000, sdp.Capabilities(direction=offered))
    ans = sdp.make_answer(offer, "192.0.2.2", 6000, sdp.Capabilities(direction=wanted))
    assert ans.direction_of(ans.media[0]) == answered


def test_hold_offer_stops_the_held_side_from_sending() -> None:
    offer = sdp.make_offer("192.0.2.1", 5000, session_id=1)
    held = sdp.hold_offer(offer)
    assert held.origin.session_version == "2" and held.direction_of(held.media[0]) == "sendonly"
    ans = sdp.make_answer(held, "192.0.2.2", 6000)
    them = sdp.negotiated(ans, held, remote_is_answer=False)
    us = sdp.negotiated(held, ans, remote_is_answer=True)
    assert (them.send, them.receive) == (False, True)
    assert (us.send, us.receive) == (True, False)
    resumed = sdp.hold_offer(held, "sendrecv")
    ans2 = sdp.make_answer(resumed, "192.0.2.2", 6000)
    assert sdp.negotiated(ans2, resumed, remote_is_answer=False).direction == "sendrecv"


def test_rfc2543_hold_address_counts_as_sendonly() -> None:
    offer = sdp.parse(b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")
    ans = sdp.make_answer(offer, "192.0.2.2", 6000)
    assert ans.direction_of(ans.media[0]) == "recvonly"


def test_telephone_event_negotiated_with_offerers_number() -> None:
    offer = sdp.make_offer("192.0.2.1", 5000, sdp.Capabilities(telephone_event=96))
    ans = sdp.make_answer(offer, "192.0.2.2", 6000, sdp.Capabilities(telephone_event=101))
    assert ans.media[0].formats == ["0", "8", "96"] and ans.media[0].fmtp[96] == "0-16"
    s = sdp.negotiated(offer, ans, remote_is_answer=True)
    assert (s.payload_type, s.dtmf_payload_type) == (0, 96)
    none = sdp.make_answer(offer, "192.0.2.2", 6000, sdp.Capabilities(telephone_event=None))
    assert none.media[0].formats == ["0", "8"]
    assert sdp.negotiated(offer, none, remote_is_answer=True).dtmf_payload_type is None


@pytest.mark.parametrize("suite", list(sdp.CRYPTO_SUITES))
def test_crypto_answer_picks_one_offered_suite_with_its_own_key(suite: str) -> None:
    offer = sdp.make_offer("192.0.2.1", 5000, sdp.Capabilities(srtp=list(sdp.CRYPTO_SUITES)))
    assert offer.media[0].proto == "RTP/SAVP" and len(offer.media[0].crypto) == 3
    ans = sdp.make_answer(offer, "192.0.2.2", 6000, sdp.Capabilities(srtp=[suite]))
    (c,) = ans.media[0].crypto
    offered = {x.suite: x for x in offer.media[0].crypto}
    assert c.suite == suite and c.tag == offered[suite].tag and c.key != offered[suite].key
    assert len(c.key) == sdp.CRYPTO_SUITES[suite]
    a = sdp.negotiated(offer, ans, remote_is_answer=True)
    b = sdp.negotiated(ans, offer, remote_is_answer=False)
    assert a.srtp_suite == b.srtp_suite == suite
    assert (a.srtp_tx_key, a.srtp_rx_key) == (b.srtp_rx_key, b.srtp_tx_key)


def test_savp_offer_without_srtp_support_is_rejected_and_avp_refused_when_required() -> None:
    offer = sdp.make_offer("192.0.2.1", 5000, sdp.Capabilities(srtp=["AES_CM_128_HMAC_SHA1_80"]))
    assert sdp.make_answer(offer, "192.0.2.2", 6000).media[0].port == 0
    plain = sdp.make_offer("192.0.2.1", 5000)
    caps = sdp.Capabilities(srtp=["AES_CM_128_HMAC_SHA1_80"], srtp_required=True)
    assert sdp.make_answer(plain, "192.0.2.2", 6000, caps).media[0].port == 0


# -- malformed ------------------------------------------------------------------------------
GOOD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"


@pytest.mark.parametrize("bad,line,why", [
    (GOOD.replace("m=audio 5000", "m=audio 5x00"), 6, "port"),
    (GOOD.replace("m=audio 5000", "m=audio 70000"), 6, "out of range"),
    (GOOD.replace("RTP/AVP 0", "RTP/AVP"), 6, "m= needs"),
    (GOOD.replace("o=- 1 1 IN IP4 192.0.2.1", "o=- 1 IN IP4 192.0.2.1"), 2, "o= needs"),
    (GOOD.replace("c=IN IP4 192.0.2.1", "c=IN IP4"), 4, "c= needs"),
    (GOOD.replace("t=0 0", "t=now"), 5, "t= needs"),
    (GOOD + "a=rtpmap:0 PCMU\r\n", 7, "rtpmap"),
    (GOOD + "a=ptime:fast\r\n", 7, "ptime"),
    (GOOD + "a=crypto:1 AES_CM_128_HMAC_SHA1_80\r\n", 7, "crypto"),
    (GOOD + "garbage\r\n", 7, "<type>=<value>"),
    (GOOD.replace("v=0\r\n", "v=1\r\n"), 1, "version"),
    (GOOD.replace("s=-\r\nc=", "c=IN IP4 192.0.2.1\r\ns=-\r\nc="), 4, "out of order"),
    (GOOD + "x=1\r\n", 7, "unknown line type"),
    (GOOD + "t=0 0\r\n", 7, "not allowed in a media section"),
])
def test_malformed_line_is_named(bad: str, line: int, why: str) -> None:
    with pytest.raises(sdp.SdpError) as ei:
        sdp.parse(bad.encode())
    assert f"line {line} " in str(ei.value) and why in str(ei.value)


def test_missing_connection_and_lines_are_reported() -> None:
    with pytest.raises(sdp.SdpError, match="no connection address"):
        sdp.parse(GOOD.replace("c=IN IP4 192.0.2.1\r\n", "").encode())
    with pytest.raises(sdp.SdpError, match="no t= line"):
        sdp.parse(GOOD.replace("t=0 0\r\n", "").encode())
    with pytest.raises(sdp.SdpError, match="not base64|needs 30 bytes"):
        sdp.Crypto(1, "AES_CM_128_HMAC_SHA1_80", "inline:abcd").key
