"""Calls through the reference PBX whose media follows the SDP offer/answer: telephone-events both ways,
each SRTP suite end to end, hold by re-INVITE, and tones heard on each side."""
from __future__ import annotations

import time

import pytest

from pysiptest import Answered, find_device, sdp
from pysiptest.sut._proc import wait_until


def _connect(make_phone, alice_dev: str = "Squirrel350", bob_dev: str = "Chipmunk5000", srtp=None):
    a_dev, b_dev = find_device(alice_dev)(), find_device(bob_dev)()
    if srtp is not None:
        a_dev.srtp, b_dev.srtp = srtp
    alice = make_phone("alice", device=a_dev)
    bob = make_phone("bob", device=b_dev)
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    inc.answer()
    alice.expect(Answered, 5, call=out)
    bob.expect(Answered, 5, call=inc)
    return out, inc


def test_telephone_event_negotiated_and_dtmf_detected_both_ways(make_phone) -> None:
    out, inc = _connect(make_phone)
    assert out.session.dtmf_payload_type == inc.session.dtmf_payload_type == 101
    out.send_dtmf("123#")
    inc.send_dtmf("*9")
    wait_until(lambda: inc.dtmf_received() == "123#", 5, what="Bob receives 123#")
    wait_until(lambda: out.dtmf_received() == "*9", 5, what="Alice receives *9")
    wait_until(lambda: out.media_stats()["tx_dtmf_events"] == 4, 2, what="Alice's 4 events completed")
    assert out.media_stats()["rx_dtmf_events"] == 2 and inc.media_stats()["rx_dtmf_events"] == 4


def test_tones_heard_both_ways_and_rtcp_reports_exchanged(make_phone) -> None:
    out, inc = _connect(make_phone)  # Squirrel350 sends 440 Hz, Chipmunk5000 1000 Hz
    time.sleep(0.5)
    assert out.heard_tone(1000.0) and not out.heard_tone(440.0)
    assert inc.heard_tone(440.0) and not inc.heard_tone(1000.0)


@pytest.mark.parametrize("suite", list(sdp.CRYPTO_SUITES))
def test_srtp_suite_negotiated_end_to_end(make_phone, suite: str) -> None:
    # Alice offers every suite (hers first), Bob accepts only this one
    offered = [suite] + [s for s in sdp.CRYPTO_SUITES if s != suite]
    out, inc = _connect(make_phone, srtp=(offered, suite))
    assert out.remote_description.media[0].proto == "RTP/SAVP"
    assert out.session.srtp_suite == inc.session.srtp_suite == suite
    assert out.session.srtp_tx_key == inc.session.srtp_rx_key != out.session.srtp_rx_key
    time.sleep(1.0)
    assert out.heard_tone(1000.0) and inc.heard_tone(440.0)
    for call in (out, inc):
        st = call.media_stats()
        assert st["rx_packets"] >= 30 and st["rx_auth_fail"] == 0 and st["rx_lost"] == 0, st


def test_srtp_device_refuses_a_plain_rtp_offer(make_phone) -> None:
    b_dev = find_device("Chipmunk5000")()
    b_dev.srtp = "AES_CM_128_HMAC_SHA1_80"
    alice = make_phone("alice")
    bob = make_phone("bob", device=b_dev)
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    with pytest.raises(Exception, match="refused"):
        inc.answer()
    wait_until(lambda: out.state == "terminated", 5, what="Alice's call ends")
    assert out.end_status == 488


def test_hold_stops_the_far_side_sending_and_resume_restarts_it(make_phone) -> None:
    out, inc = _connect(make_phone)
    time.sleep(0.3)
    out.hold()
    assert inc.session.direction == "recvonly" and out.session.direction == "sendonly"
    time.sleep(0.2)  # packets in flight
    far_tx, near_rx = inc.media_stats()["tx_packets"], out.media_stats()["rx_packets"]
    time.sleep(0.5)
    assert inc.media_stats()["tx_packets"] == far_tx and out.media_stats()["rx_packets"] == near_rx
    assert inc.media_stats()["rx_packets"] > 0 and inc.heard_tone(440.0)  # Alice still sends
    assert not out.heard_tone(1000.0), "Bob stopped sending 0.7 s ago: Alice no longer hears his tone"
    assert out.phone.engine.media.detect_tone(out.media_id, 1000.0, 200)["silent"]
    out.resume()
    assert inc.session.direction == out.session.direction == "sendrecv"
    time.sleep(0.5)
    assert out.media_stats()["rx_packets"] >= near_rx + 15 and out.heard_tone(1000.0)


def _tone_wav(path, hz: float, seconds: float = 1.0, rate: int = 8000, channels: int = 1) -> None:
    import math
    import struct
    import wave

    n = int(rate * seconds)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) * channels
                      for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def test_wav_file_is_sent_as_pcmu_and_heard(make_phone, tmp_path) -> None:
    from pysiptest.wav import wav_to_pcap

    _tone_wav(tmp_path / "a.wav", 700.0)
    assert wav_to_pcap(tmp_path / "a.wav", tmp_path / "a.pcap") == 50
    a_dev = find_device("Squirrel350")()
    a_dev.media_source, a_dev.media_pcap, a_dev.codecs = "pcap", str(tmp_path / "a.pcap"), [0]
    alice = make_phone("alice", device=a_dev)
    bob = make_phone("bob", device="Chipmunk5000")
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    inc.answer()
    alice.expect(Answered, 5, call=out)
    time.sleep(0.6)
    assert inc.heard_tone(700.0) and not inc.heard_tone(440.0)
    assert inc.media_stats()["rx_payload_type"] == 0 and inc.media_stats()["rx_lost"] == 0


def test_wav_that_is_not_8khz_mono_is_refused(tmp_path) -> None:
    from pysiptest.wav import read_pcm

    _tone_wav(tmp_path / "s.wav", 440.0, 0.1, rate=16000, channels=2)
    with pytest.raises(ValueError, match="needs 8000 Hz 16-bit mono PCM, got 16000 Hz 16-bit 2 channel"):
        read_pcm(tmp_path / "s.wav")
    (tmp_path / "x.wav").write_bytes(b"RIFFjunk")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        read_pcm(tmp_path / "x.wav")
