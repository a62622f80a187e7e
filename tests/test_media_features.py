"""Media engine features through _core.Media on loopback: capture replay, RFC 4733 telephone-events,
Goertzel tone and silence checks, send-side impairments, RTCP reports and SRTP suites.

Each test checks numbers (counts, levels, rates) against what was configured or what the corpus
reference states; real time is kept short (ptime 5 ms where many packets are needed)."""
from __future__ import annotations

import json
import os
import time

import pytest

from pysiptest import _core
from test_media import media, wait_for  # noqa: F401 (media: fixture)

LOOP = "127.0.0.1"
CORPUS = "/work/shared/corpus/rtp"
REF = os.path.join(CORPUS, "reference.json")
needs_corpus = pytest.mark.skipif(not os.path.exists(REF), reason="corpus not present")




def pair(media: _core.Media) -> tuple[int, int, int, int]:
    a, pa = media.open(LOOP)
    b, pb = media.open(LOOP)
    return a, pa, b, pb


# ---- capture replay ---------------------------------------------------------------------------

@needs_corpus
def test_pcap_replay_of_g711a_yields_the_reference_packets_and_bytes(media: _core.Media) -> None:
    ref = json.load(open(REF))["g711a.pcap"]
    a, pa, b, pb = pair(media)
    media.start(b, "", 0, source="none")
    t0 = time.monotonic()
    media.start(a, LOOP, pb, source="pcap", pcap=os.path.join(CORPUS, "g711a.pcap"))
    assert wait_for(lambda: not media.stats(a)["sending"], timeout=ref["duration_s"] + 3)
    took = time.monotonic() - t0
    time.sleep(0.05)
    sa, sb = media.stats(a), media.stats(b)
    assert sa["tx_packets"] == ref["packets"] == sb["rx_packets"]
    assert sb["rx_bytes"] == ref["packets"] * ref["rtp"]["rtp_payload_bytes"]
    assert sb["rx_payload_type"] == ref["rtp"]["payload_type"]
    assert sb["rx_ssrc"] != int(ref["rtp"]["ssrc"], 16)  # rewritten
    assert sb["rx_lost"] == 0 and sb["rx_out_of_order"] == 0 and sb["rx_duplicates"] == 0
    # the recorded timing: the run lasts the capture's duration, gaps as recorded (25..35 ms)
    assert ref["duration_s"] - 0.1 <= took <= ref["duration_s"] + 1.0
    assert 29.0 < (sb["last_rx_ms"] - sb["first_rx_ms"]) / (sb["rx_packets"] - 1) < 31.0
    assert sb["max_gap_ms"] < 40.0
    # the recorded timestamps follow the recorded timing: receiver jitter stays near tshark's
    assert sb["jitter_ms"] < 3.0


@needs_corpus
def test_pcap_replay_loops_with_rising_sequence_and_timestamps(media: _core.Media) -> None:
    a, pa, b, pb = pair(media)
    media.start(b, "", 0, source="none")
    media.start(a, LOOP, pb, source="pcap", pcap=os.path.join(CORPUS, "dtmf_2833_5.pcap"), loop=True)
    assert wait_for(lambda: media.stats(a)["pcap_loops"] >= 2, timeout=3)
    media.stop(a)
    time.sleep(0.05)
    sb = media.stats(b)
    # 10 packets a round; each round a new event (new timestamp), the digit each time
    assert sb["rx_packets"] >= 20 and sb["rx_lost"] == 0 and sb["rx_duplicates"] == 0
    events = media.dtmf_events(b)
    assert len(events) >= 2 and all(e["digit"] == "5" for e in events)


def test_pcap_replay_rejects_a_missing_or_non_capture_file(media: _core.Media, tmp_path) -> None:
    a, pa, b, pb = pair(media)
    with pytest.raises(ValueError, match="cannot read capture"):
        media.start(a, LOOP, pb, source="pcap", pcap=str(tmp_path / "nope.pcap"))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    with pytest.raises(ValueError, match="capture"):
        media.start(a, LOOP, pb, source="pcap", pcap=str(junk))


# ---- RFC 4733 telephone-events ---------------------------------------------------------------

@needs_corpus
def test_dtmf_in_the_corpus_captures_is_detected() -> None:
    ref = json.load(open(REF))["dtmf_2833_*.pcap"]["files"]
    with _core.Media() as media:
        rxs = {}
        for name in sorted(ref):  # all captures at once, each to its own receiver
            rx, prx = media.open(LOOP)
            media.start(rx, "", 0, source="none")
            tx, _ = media.open(LOOP)
            media.start(tx, LOOP, prx, source="pcap", pcap=os.path.join(CORPUS, name))
            rxs[name] = rx
        assert wait_for(lambda: all(media.stats(rx)["rx_packets"] == 10 for rx in rxs.values()), timeout=3)
        time.sleep(0.05)
        for name, rx in rxs.items():
            (e,) = media.dtmf_events(rx)
            assert e["digit"] == "0123456789*#"[ref[name]["event_id"]] and e["event"] == ref[name]["event_id"]
            assert e["ended"] and e["volume"] == ref[name]["volume"] == 10 and e["duration_ms"] == 280.0
            assert media.stats(rx)["rx_packets"] == ref[name]["packets"] == 10


def test_dtmf_send_to_detect_loopback(media: _core.Media) -> None:
    a, pa, b, pb = pair(media)
    media.start(b, "", 0, source="none")
    media.start(a, LOOP, pb, source="silence", payload_type=0)
    media.send_dtmf(a, "19#*", duration_ms=100, volume=7)
    assert wait_for(lambda: media.stats(a)["tx_dtmf_events"] == 4, timeout=3)
    time.sleep(0.05)
    events = media.dtmf_events(b)
    assert [e["digit"] for e in events] == ["1", "9", "#", "*"]
    assert all(e["ended"] and e["volume"] == 7 and e["duration_ms"] == 100.0 for e in events)
    # per event: 5 updates of 20 ms + 2 more end packets; no audio lost around them
    sb = media.stats(b)
    assert sb["rx_dtmf_events"] == 4 and sb["rx_lost"] == 0 and sb["rx_payload_type"] == 0
    with pytest.raises(ValueError, match="not a DTMF digit"):
        media.send_dtmf(a, "12x")


# ---- tone and silence --------------------------------------------------------------------------

def test_tone_is_detected_at_its_frequency_only_and_silence_is_silent(media: _core.Media) -> None:
    a, pa, b, pb = pair(media)
    c, pc = media.open(LOOP)
    d, pd = media.open(LOOP)
    media.start(b, "", 0, source="none")
    media.start(d, "", 0, source="none")
    media.start(a, LOOP, pb, source="tone", tone_hz=440.0, payload_type=8, dbov=-10.0)
    media.start(c, LOOP, pd, source="silence", payload_type=0)
    time.sleep(0.5)
    t440 = media.detect_tone(b, 440.0, window_ms=200)
    t1000 = media.detect_tone(b, 1000.0, window_ms=200)
    assert t440["present"] and t440["ratio"] > 0.95 and abs(t440["tone_dbov"] - (-10.0)) < 1.0, t440
    assert not t1000["present"] and t1000["ratio"] < 0.01, t1000
    assert abs(t440["level_dbov"] - (-10.0)) < 1.0 and not t440["silent"]
    s = media.detect_tone(d, 440.0)
    assert s["silent"] and not s["present"] and s["level_dbov"] < -60.0, s
    assert s["window_ms"] == 200.0
    with pytest.raises(ValueError):
        media.detect_tone(b, 5000.0)


# ---- impairments -------------------------------------------------------------------------------

def run_impaired(media: _core.Media, seconds: float = 1.5, **impair) -> tuple[dict, dict]:
    a, pa, b, pb = pair(media)
    media.start(b, "", 0, source="none")
    media.start(a, LOOP, pb, source="silence", ptime_ms=5, **impair)
    time.sleep(seconds)
    media.stop(a)
    time.sleep(0.1)
    return media.stats(a), media.stats(b)


def test_loss_is_seen_by_the_receiver_at_the_configured_rate(media: _core.Media) -> None:
    sa, sb = run_impaired(media, loss=0.1, seed=7)
    sent = sa["tx_packets"] + sa["tx_dropped"]
    assert 250 <= sent <= 310
    assert abs(sa["tx_dropped"] / sent - 0.1) < 0.05, sa
    assert sb["rx_packets"] == sa["tx_packets"]
    # a loss at the very end is not seen: the receiver never learns of it
    assert sa["tx_dropped"] - 2 <= sb["rx_lost"] <= sa["tx_dropped"]
    assert sb["rx_duplicates"] == 0 and sb["rx_out_of_order"] == 0


def test_duplicates_and_reordering_are_counted(media: _core.Media) -> None:
    sa, sb = run_impaired(media, duplicate=0.05, reorder=0.05, seed=11)
    n = sa["tx_packets"] - sa["tx_duplicated"]
    assert abs(sa["tx_duplicated"] / n - 0.05) < 0.035 and abs(sa["tx_reordered"] / n - 0.05) < 0.035, sa
    assert sb["rx_duplicates"] == sa["tx_duplicated"]
    # a reordered packet is held 1 ms past the next one's slot: it arrives once, late
    assert sa["tx_reordered"] - 2 <= sb["rx_out_of_order"] <= sa["tx_reordered"], (sa, sb)
    assert sb["rx_lost"] == 0


def test_jitter_rises_with_the_configured_bound_and_repeats_with_the_seed(media: _core.Media) -> None:
    _, s0 = run_impaired(media, seconds=1.0)
    _, s4 = run_impaired(media, seconds=1.0, jitter="uniform", jitter_ms=4.0, seed=3)
    _, s12 = run_impaired(media, seconds=1.0, jitter="normal", jitter_ms=12.0, seed=3)
    assert s0["jitter_ms"] < 0.6, s0
    assert 0.6 < s4["jitter_ms"] < 3.0, s4
    assert s12["jitter_ms"] > s4["jitter_ms"] and s12["jitter_ms"] < 8.0, s12
    with pytest.raises(ValueError):
        run_impaired(media, seconds=0.0, loss=1.5)


# ---- RTCP --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mux", [False, True])
def test_rtcp_reports_give_round_trip_and_the_peers_loss(media: _core.Media, mux: bool) -> None:
    a, pa, b, pb = pair(media)
    media.start(b, LOOP, pa, source="silence", ptime_ms=10, rtcp_interval_ms=100, rtcp_mux=mux)
    media.start(a, LOOP, pb, source="silence", ptime_ms=10, rtcp_interval_ms=100, rtcp_mux=mux,
                loss=0.2, seed=5)
    assert wait_for(lambda: media.stats(a)["rtt_ms"] >= 0 and media.stats(b)["rtt_ms"] >= 0, timeout=3)
    fractions = []
    for _ in range(8):  # one report block per 100 ms, about ~10 packets each: average them
        time.sleep(0.1)
        fractions.append(media.stats(a)["peer_fraction_lost"])
    sa, sb = media.stats(a), media.stats(b)
    assert sa["rtcp_tx"] >= 5 and sb["rtcp_rx"] >= 5 and sa["rtcp_rx"] >= 5
    assert 0.0 <= sa["rtt_ms"] < 20.0 and 0.0 <= sb["rtt_ms"] < 20.0
    # b's reports tell a how much of a's stream b lost
    assert sa["peer_report"] and 0.08 <= sum(fractions) / len(fractions) <= 0.35, fractions
    assert sb["rx_lost"] - 15 <= sa["peer_cum_lost"] <= sb["rx_lost"] and sa["peer_cum_lost"] >= 5
    assert sb["peer_report"] and sb["peer_fraction_lost"] == 0.0
    assert sa["rx_invalid"] == 0 and sb["rx_invalid"] == 0


# ---- SRTP --------------------------------------------------------------------------------------

SUITES = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30, "AEAD_AES_128_GCM": 28}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_srtp_both_directions_decrypt_and_a_wrong_key_counts_auth_failures(media: _core.Media, suite: str) -> None:
    ka, kb = os.urandom(SUITES[suite]), os.urandom(SUITES[suite])
    a, pa, b, pb = pair(media)
    # keys first on both sides (receive only), so that no packet arrives before its key
    media.start(a, "", 0, source="none", srtp=suite, srtp_tx_key=ka, srtp_rx_key=kb)
    media.start(b, "", 0, source="none", srtp=suite, srtp_tx_key=kb, srtp_rx_key=ka)
    c, pc = media.open(LOOP)
    media.start(a, LOOP, pb, source="tone", tone_hz=1000.0, srtp=suite, srtp_tx_key=ka, srtp_rx_key=kb,
                rtcp_interval_ms=100, rtcp_mux=True)
    media.start(b, LOOP, pa, source="tone", tone_hz=440.0, srtp=suite, srtp_tx_key=kb, srtp_rx_key=ka,
                rtcp_interval_ms=100, rtcp_mux=True)
    # c has the wrong key for what b sends it
    media.start(c, "", 0, source="none", srtp=suite, srtp_tx_key=kb, srtp_rx_key=os.urandom(SUITES[suite]))
    d, pd = media.open(LOOP)
    media.start(d, LOOP, pc, source="silence", srtp=suite, srtp_tx_key=kb, srtp_rx_key=kb)
    time.sleep(0.6)
    sa, sb, sc = media.stats(a), media.stats(b), media.stats(c)
    for s in (sa, sb):
        assert s["rx_packets"] >= 20 and s["rx_auth_fail"] == 0 and s["rx_invalid"] == 0
        assert s["rx_bytes"] == 160 * s["rx_packets"]  # payload length after the tag is removed
        assert s["rtcp_rx"] >= 3 and s["rtt_ms"] >= 0  # SRTCP both ways
    assert media.detect_tone(a, 440.0)["present"] and media.detect_tone(b, 1000.0)["present"]
    assert sc["rx_packets"] == 0 and sc["rx_auth_fail"] >= 20, sc
    with pytest.raises(ValueError, match="bytes"):
        media.start(a, LOOP, pb, srtp=suite, srtp_tx_key=b"short", srtp_rx_key=b"short")


# ---- command line ------------------------------------------------------------------------------

def test_cli_media_option_parses_each_source() -> None:
    import argparse

    from pysiptest.cli import _media

    assert _media("echo") == ("echo", None) and _media("silence") == ("silence", None)
    assert _media("tone:1000") == ("tone", 1000.0)
    assert _media("pcap:/tmp/x.pcap") == ("pcap", "/tmp/x.pcap")
    for bad in ("tone:0", "tone:abc", "noise", "pcap:", "wav:a.wav"):
        with pytest.raises(argparse.ArgumentTypeError):
            _media(bad)
