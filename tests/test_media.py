"""The RTP media engine through its binding, _core.Media, on loopback.

Runs take one to two seconds of real time at 20 ms packets; tolerances are generous
(a loaded 2-core CI box) but each test fails if the behaviour it names breaks.
"""
from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest

from pysiptest import _core

LOOP = "127.0.0.1"


@pytest.fixture
def media() -> Iterator[_core.Media]:
    m = _core.Media()
    try:
        yield m
    finally:
        m.close()


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll cond until it holds or timeout seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def rtp(seq: int, ts: int = 0, pt: int = 0, ssrc: int = 0x11223344, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts, ssrc) + payload


def test_two_streams_each_receive_100_packets_in_2_seconds(media: _core.Media) -> None:
    a, pa = media.open(LOOP)
    b, pb = media.open(LOOP, 0)
    assert pa % 2 == 0 and pb % 2 == 0 and pa != pb
    t0 = time.monotonic()
    media.start(a, LOOP, pb, payload_type=8, source="silence")
    media.start(b, LOOP, pa, payload_type=0, source="tone", tone_hz=1000.0)
    time.sleep(2.0)
    media.stop(a)
    t1 = time.monotonic()
    media.stop(b)
    time.sleep(0.1)
    sa, sb = media.stats(a), media.stats(b)
    # absolute schedule: packet k leaves at start + k * 20 ms, so the count follows the wall clock
    assert abs(sa["tx_packets"] - (1 + (t1 - t0) / 0.020)) <= 2, (sa["tx_packets"], t1 - t0)
    for mine, other, pt in ((sa, sb, 0), (sb, sa, 8)):
        assert 95 <= mine["tx_packets"] <= 106, mine
        assert 95 <= mine["rx_packets"] <= 106, mine
        assert mine["rx_packets"] == other["tx_packets"]
        assert mine["rx_bytes"] == 160 * mine["rx_packets"]
        assert mine["tx_bytes"] == 160 * mine["tx_packets"]
        assert mine["rx_lost"] == 0 and mine["rx_duplicates"] == 0 and mine["rx_out_of_order"] == 0
        assert mine["rx_invalid"] == 0 and mine["tx_errors"] == 0
        assert mine["rx_payload_type"] == pt
        assert 0.0 <= mine["jitter_ms"] < 5.0, mine
        assert 19.0 <= mine["max_gap_ms"] < 100.0, mine
        assert 1900 <= mine["last_rx_ms"] - mine["first_rx_ms"] <= 2200
        assert mine["sending"] is False
    assert set(sa) == {
        "tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "rx_lost", "rx_out_of_order", "rx_duplicates",
        "rx_invalid", "jitter_ms", "max_gap_ms", "first_rx_ms", "last_rx_ms", "rx_ssrc", "rx_payload_type",
        "sending", "tx_errors", "tx_dropped", "tx_duplicated", "tx_reordered", "tx_dtmf_events", "rx_dtmf_events",
        "rx_auth_fail", "rx_replay", "rtcp_tx", "rtcp_rx", "peer_report", "peer_fraction_lost", "peer_cum_lost",
        "peer_jitter_ms", "rtt_ms", "pcap_loops",
    }


def test_stop_stops_sending_while_receiving_continues(media: _core.Media) -> None:
    a, pa = media.open(LOOP)
    b, pb = media.open(LOOP)
    media.start(a, LOOP, pb)
    media.start(b, LOOP, pa)
    time.sleep(0.4)
    media.stop(a)
    time.sleep(0.05)
    before_a, before_b = media.stats(a), media.stats(b)
    assert before_a["sending"] is False and before_b["sending"] is True
    time.sleep(0.6)
    after_a, after_b = media.stats(a), media.stats(b)
    assert after_a["tx_packets"] == before_a["tx_packets"]
    assert after_b["rx_packets"] == before_b["rx_packets"]
    assert after_a["rx_packets"] - before_a["rx_packets"] >= 20  # ~30 in 0.6 s
    # a restart resumes sending, with a marker-bit talkspurt and no loss seen by b
    media.start(a, LOOP, pb)
    time.sleep(0.3)
    assert media.stats(a)["tx_packets"] >= after_a["tx_packets"] + 10
    assert media.stats(b)["rx_lost"] == 0


def test_echo_returns_what_it_gets(media: _core.Media) -> None:
    a, pa = media.open(LOOP)
    e1, pe1 = media.open(LOOP)  # echoes to each packet's source
    b, pb = media.open(LOOP)
    e2, pe2 = media.open(LOOP)  # echoes to a configured remote, c
    c, pc = media.open(LOOP)
    media.start(e1, "", 0, payload_type=8, source="echo")
    media.start(e2, LOOP, pc, payload_type=0, source="echo")
    media.start(c, "", 0, source="none")
    media.start(a, LOOP, pe1, payload_type=0, source="tone", tone_hz=440.0)
    media.start(b, LOOP, pe2, payload_type=0, ptime_ms=30)
    time.sleep(1.5)
    media.stop(a)
    media.stop(b)
    time.sleep(0.1)
    sa, se1, sb, se2, sc = (media.stats(i) for i in (a, e1, b, e2, c))
    assert 70 <= sa["tx_packets"] <= 80
    assert abs(se1["rx_packets"] - sa["tx_packets"]) <= 2
    assert abs(se1["tx_packets"] - se1["rx_packets"]) <= 2
    assert abs(sa["rx_packets"] - se1["tx_packets"]) <= 2 and sa["rx_packets"] >= 68
    assert sa["rx_bytes"] == 160 * sa["rx_packets"]  # the payload comes back as sent
    assert sa["rx_payload_type"] == 8 and sa["rx_lost"] == 0  # the echo's own header
    assert sa["rx_ssrc"] != se1["rx_ssrc"]  # a hears e1's SSRC, e1 heard a's
    assert 47 <= sb["tx_packets"] <= 54  # 30 ms packets
    assert sb["rx_packets"] == 0  # e2 does not echo to the source
    assert abs(sc["rx_packets"] - sb["tx_packets"]) <= 2 and sc["rx_bytes"] == 240 * sc["rx_packets"]
    assert sc["tx_packets"] == 0 and sc["rx_lost"] == 0
    assert se2["sending"] is True


def test_tone_source_sends_full_g711_payloads(media: _core.Media) -> None:
    a, pa = media.open(LOOP)
    r1, p1 = media.open(LOOP)
    b, pb = media.open(LOOP)
    r2, p2 = media.open(LOOP)
    media.start(a, LOOP, p1, payload_type=0, source="tone", tone_hz=1000.0, dbov=-3.5)
    media.start(b, LOOP, p2, payload_type=8, source="tone", tone_hz=425.0, ptime_ms=10)
    time.sleep(1.0)
    media.stop(a)
    media.stop(b)
    time.sleep(0.05)
    s1, s2 = media.stats(r1), media.stats(r2)
    assert 45 <= s1["rx_packets"] <= 55 and s1["rx_bytes"] == s1["rx_packets"] * 160
    assert 90 <= s2["rx_packets"] <= 106 and s2["rx_bytes"] == s2["rx_packets"] * 80
    assert s1["rx_payload_type"] == 0 and s2["rx_payload_type"] == 8


def test_receive_statistics_count_loss_reordering_duplicates_and_invalid(media: _core.Media) -> None:
    r, pr = media.open(LOOP)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for seq in (1, 2, 4, 3, 3, 6, 7):  # 5 lost, 3 late, one 3 twice
            s.sendto(rtp(seq, ts=160 * seq, pt=8), (LOOP, pr))
        s.sendto(b"\x80" * 11, (LOOP, pr))  # shorter than a header
        s.sendto(b"\x40" + bytes(30), (LOOP, pr))  # version 1
        s.sendto(b"\x8f" + bytes(30), (LOOP, pr))  # 15 CSRCs in 31 bytes
        s.sendto(b"\x90" + bytes(11) + b"\x00\x00\x00\x09" + bytes(8), (LOOP, pr))  # extension past the end
        s.sendto(b"\xa0" + bytes(18) + b"\x20", (LOOP, pr))  # padding longer than the packet
        s.sendto(b"\x80\xc8" + bytes(26), (LOOP, pr))  # an RTCP sender report
        assert wait_for(lambda: media.stats(r)["rx_invalid"] >= 6)
    st = media.stats(r)
    assert st["rx_packets"] == 7 and st["rx_bytes"] == 7 * 160
    assert st["rx_lost"] == 1 and st["rx_out_of_order"] == 1 and st["rx_duplicates"] == 1
    assert st["rx_invalid"] == 6
    assert st["rx_ssrc"] == 0x11223344 and st["rx_payload_type"] == 8


def test_closed_stream_is_unknown(media: _core.Media) -> None:
    a, _ = media.open(LOOP)
    b, _ = media.open(LOOP)
    assert media.stream_count() == 2
    media.close_stream(a)
    assert media.stream_count() == 1
    with pytest.raises(KeyError):
        media.stats(a)
    with pytest.raises(KeyError):
        media.stop(a)
    with pytest.raises(KeyError):
        media.close_stream(a)
    with pytest.raises(KeyError):
        media.start(a, LOOP, 4000)
    assert media.stats(b)["rx_payload_type"] == -1


def test_stream_on_a_free_port_holds_the_rtcp_port_from_the_open(media: _core.Media) -> None:
    # the SDP offer names port P, and the peer sends RTCP to P + 1 from its answer on (baresip at once): P + 1
    # must be ours before anything else can take it, and read before the stream starts
    a, pa = media.open(LOOP)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OSError):
            s.bind((LOOP, pa + 1))
        s.sendto(b"\x80\xc9\x00\x01" + struct.pack("!I", 0x1234), (LOOP, pa + 1))  # an empty RR
        assert wait_for(lambda: media.stats(a)["rtcp_rx"] == 1)
    media.close_stream(a)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOP, pa + 1))  # freed with the stream


def test_bad_arguments_raise(media: _core.Media) -> None:
    a, _ = media.open(LOOP)
    with pytest.raises(ValueError, match="numeric"):
        media.open("localhost")
    with pytest.raises(ValueError):
        media.open(LOOP, 70000)
    with pytest.raises(ValueError):
        media.open(LOOP, -1)
    with pytest.raises(ValueError):
        media.open("x" * 200)
    with pytest.raises(ValueError):
        media.open("127.0.0.1\0")
    with pytest.raises(TypeError):
        media.open(1)
    with pytest.raises(TypeError):
        media.open(LOOP, "5000")
    with pytest.raises(ValueError, match="source"):
        media.start(a, LOOP, 4000, source="noise")
    with pytest.raises(TypeError):
        media.start(a, LOOP, 4000, source=1)
    with pytest.raises(ValueError):
        media.start(a, LOOP, 4000, payload_type=200)
    with pytest.raises(ValueError, match="payload type"):
        media.start(a, LOOP, 4000, payload_type=18)  # silence needs G.711
    with pytest.raises(ValueError):
        media.start(a, LOOP, 4000, ptime_ms=0)
    with pytest.raises(ValueError, match="tone"):
        media.start(a, LOOP, 4000, source="tone", tone_hz=0.0)
    with pytest.raises(ValueError, match="tone"):
        media.start(a, LOOP, 4000, source="tone", tone_hz=float("nan"))
    with pytest.raises(ValueError, match="tone"):
        media.start(a, LOOP, 4000, source="tone", tone_hz=440.0, dbov=3.0)
    with pytest.raises(ValueError, match="remote port 0"):
        media.start(a, LOOP, 0)
    with pytest.raises(ValueError, match="IPv6"):
        media.start(a, "::1", 4000)
    with pytest.raises(ValueError):
        media.start(a, "example.com", 4000)
    with pytest.raises(TypeError):
        media.start(a, 5, 4000)
    with pytest.raises(TypeError):
        media.start(a, LOOP, 4000, dbov="loud")
    with pytest.raises(TypeError):
        media.start("a", LOOP, 4000)
    with pytest.raises(TypeError):
        media.stats(None)
    with pytest.raises(TypeError):
        media.start(a, LOOP)
    for bad_id in (-1, 2**40, 987654):
        with pytest.raises(KeyError):
            media.stats(bad_id)
        with pytest.raises(KeyError):
            media.start(bad_id, LOOP, 4000)
    with pytest.raises(TypeError):
        _core.Media(1)
    assert media.stats(a)["sending"] is False  # nothing above started it


def test_ipv6_streams(media: _core.Media) -> None:
    try:
        a, pa = media.open("::1")
    except _core.EngineError:
        pytest.skip("no IPv6 loopback")
    b, pb = media.open("::1")
    media.start(a, "::1", pb, payload_type=8)
    time.sleep(0.3)
    media.stop(a)
    time.sleep(0.05)
    sa, sb = media.stats(a), media.stats(b)
    assert sa["tx_packets"] >= 10 and sb["rx_packets"] == sa["tx_packets"] and sb["rx_payload_type"] == 8


def test_close_is_idempotent_and_ends_the_engine() -> None:
    with _core.Media() as m:
        a, _ = m.open(LOOP)
        b, pb = m.open(LOOP)
        m.start(a, LOOP, pb)
    m.close()
    with pytest.raises(_core.EngineError, match="closed"):
        m.open(LOOP)
    with pytest.raises(_core.EngineError):
        m.stats(a)
    with pytest.raises(_core.EngineError):
        m.stop(a)
    assert isinstance(_core.EngineError("x"), RuntimeError)
    # engines are independent, and one left to the garbage collector is freed with its streams
    n = _core.Media()
    n.open(LOOP)
    del n


def test_200_concurrent_streams_keep_time_on_one_thread(media: _core.Media) -> None:
    streams = [media.open(LOOP) for _ in range(200)]
    ports = [p for _, p in streams]
    assert len(set(ports)) == 200 and all(p % 2 == 0 for p in ports)
    pairs = list(zip(streams[0::2], streams[1::2]))
    for (a, pa), (b, pb) in pairs:
        media.start(a, LOOP, pb)
        media.start(b, LOOP, pa, payload_type=8, source="tone", tone_hz=800.0)
    assert media.stream_count() == 200
    time.sleep(2.0)
    for sid, _ in streams:
        media.stop(sid)
    time.sleep(0.2)
    stats = [media.stats(sid) for sid, _ in streams]
    rx = [s["rx_packets"] for s in stats]
    jitter = [s["jitter_ms"] for s in stats]
    assert min(rx) >= 90 and max(rx) <= 112, (min(rx), max(rx))
    assert all(s["rx_lost"] == 0 and s["rx_invalid"] == 0 and s["tx_errors"] == 0 for s in stats)
    assert max(jitter) < 5.0, max(jitter)
    print(f"200 streams: rx {min(rx)}..{max(rx)}, jitter max {max(jitter):.3f} ms "
          f"mean {sum(jitter) / len(jitter):.3f} ms, max gap {max(s['max_gap_ms'] for s in stats):.1f} ms")


def test_a_burst_on_one_socket_is_read_whole_beside_a_steady_stream(media: _core.Media) -> None:
    # A stream socket read one packet at a time while it holds one must still drain a burst: 120 packets at
    # once on one socket (about 120 KB of kernel buffer with the skb overhead: within the default 208 KB),
    # while another socket gets one packet a turn.
    burst_id, burst_port = media.open(LOOP)
    steady_id, steady_port = media.open(LOOP)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for seq in range(5):  # steady first: the sockets settle into one-packet reads
            tx.sendto(rtp(seq, ts=seq * 160), (LOOP, steady_port))
            tx.sendto(rtp(seq, ts=seq * 160, ssrc=7), (LOOP, burst_port))
            time.sleep(0.02)
        for seq in range(5, 125):
            tx.sendto(rtp(seq, ts=seq * 160, ssrc=7), (LOOP, burst_port))
        for seq in range(5, 10):
            tx.sendto(rtp(seq, ts=seq * 160), (LOOP, steady_port))
            time.sleep(0.005)
    assert wait_for(lambda: media.stats(burst_id)["rx_packets"] == 125 and media.stats(steady_id)["rx_packets"] == 10), (
        media.stats(burst_id), media.stats(steady_id))
    st = media.stats(burst_id)
    assert (st["rx_lost"], st["rx_out_of_order"], st["rx_duplicates"]) == (0, 0, 0), st


def test_set_realtime_puts_the_media_thread_under_sched_fifo() -> None:
    import os

    def media_tids() -> set[int]:
        out = set()
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    if f.read().strip() == "pysip-media":
                        out.add(int(tid))
            except OSError:
                continue
        return out

    before = media_tids()
    with _core.Media() as m:
        (tid,) = media_tids() - before
        with pytest.raises(ValueError, match="priority"):
            m.set_realtime(100)
        if os.geteuid() != 0:
            with pytest.raises(PermissionError):
                m.set_realtime(5)
            return
        m.set_realtime(5)
        assert os.sched_getscheduler(tid) == os.SCHED_FIFO and os.sched_getparam(tid).sched_priority == 5
        m.set_realtime(0)
        assert os.sched_getscheduler(tid) == os.SCHED_OTHER
    with pytest.raises(_core.EngineError, match="closed"):
        m.set_realtime(1)


def test_a_real_time_policy_inherited_from_the_creating_thread_is_kept() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("SCHED_FIFO needs root")
    before = {int(t) for t in os.listdir("/proc/self/task")}
    old = os.sched_getscheduler(0), os.sched_getparam(0)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(3))
    try:
        m = _core.Media()  # its thread inherits SCHED_FIFO 3 from this one
    finally:
        os.sched_setscheduler(0, old[0], old[1])
    with m:
        tids = [int(t) for t in os.listdir("/proc/self/task") if int(t) not in before]
        media = [t for t in tids if open(f"/proc/self/task/{t}/comm").read().strip() == "pysip-media"]
        assert len(media) == 1
        assert os.sched_getscheduler(media[0]) == os.SCHED_FIFO and os.sched_getparam(media[0]).sched_priority == 3
