"""Interop with baresip (Debian's ``baresip`` 1.0), run headless: plain RTP and SRTP (SDES) calls both ways
between a pysiptest phone and a real softphone, checked with figures from both ends.

baresip runs as a child process with a config directory of its own (``baresip -f DIR``): SIP on a free
127.0.0.1 UDP port, no registration (``;regint=0``), auto answer, no sound card (``ausine`` sends a sine
tone, ``aubridge`` is a player that needs no device), and the ``cons`` module as its command line, reached
by UDP datagrams (``/dial``, ``/hangup``). The ``sndfile`` filter writes what baresip decoded to a WAV file,
so the test can tell that baresip heard our tone (and thus decrypted our SRTP); its end-of-call table
(``rtp_stats yes``) gives the packets it received and the RTCP reports it read. It is stopped by PID.
"""
from __future__ import annotations

import re
import socket
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, Phone
from pysiptest.audio import dominant_tone
from pysiptest.sut._proc import ManagedProcess, free_port, wait_until

pytestmark = pytest.mark.requires_binary("baresip")

MODULES = Path("/usr/lib/baresip/modules")
NEEDED = ["cons", "g711", "ausine", "aubridge", "srtp", "sndfile", "account", "menu"]  # all in baresip-core
BARESIP_HZ = 1200   # what ausine sends
OUR_HZ = 440.0      # what our phone sends
SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"]
# baresip (libre) sends an RTCP APP "PING" to our RTCP port as the call starts (with SRTP, one in clear and
# one as SRTCP), alone, not in a compound packet that begins with SR or RR (RFC 3550 6.1): our engine counts
# each in rx_invalid
BARESIP_PINGS = 2


@dataclass(frozen=True)
class RtpTable:
    """baresip's end-of-call RTP figures (``rtp_stats yes``): packets sent and received, receive errors, and
    RTCP reports (``pkt.report``: the packet counts the last report sent / read stated)."""

    tx_packets: int
    rx_packets: int
    rx_errors: int
    reported_tx: Optional[int] = None
    reported_rx: Optional[int] = None


class Baresip:
    """One headless baresip on free loopback ports with its own config directory; stopped by PID."""

    def __init__(self, workdir: Path, user: str = "bs", mediaenc: Optional[str] = None) -> None:
        self.workdir = workdir
        self.user = user
        self.sip_port = free_port("127.0.0.1")   # baresip listens on UDP and TCP
        self.cons_port = free_port("127.0.0.1")  # the cons module too
        for _ in range(10):
            if self.cons_port != self.sip_port:
                break
            self.cons_port = free_port("127.0.0.1")
        self.snd_dir = workdir / "snd"
        self.snd_dir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",   # else SDP carries the default route's address
            f"audio_source ausine,{BARESIP_HZ}",
            "audio_player aubridge,null",  # a player that needs no sound card
            "audio_alert aubridge,null",
            "ausrc_srate 48000",         # ausine makes 48 kHz stereo only; baresip resamples to 8 kHz
            "ausrc_channels 2",
            "rtp_stats yes",
            f"module_path {MODULES}",
            "module cons.so",
            f"cons_listen 127.0.0.1:{self.cons_port}",
            "module g711.so",
            "module ausine.so",
            "module aubridge.so",
            "module srtp.so",
            "module sndfile.so",
            f"snd_path {self.snd_dir}",
            "module_app account.so",
            "module_app menu.so",
            "",
        ]))
        params = ";regint=0;answermode=auto;audio_codecs=PCMU" + (f";mediaenc={mediaenc}" if mediaenc else "")
        (workdir / "accounts").write_text(f"<sip:{user}@127.0.0.1>{params}\n")
        (workdir / "contacts").write_text("")
        self.proc = ManagedProcess(["baresip", "-f", str(workdir)], workdir / "baresip.log")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        try:
            self.wait_for(r"^baresip is ready\.", 10)
        except BaseException:
            self.stop()
            raise

    @property
    def uri(self) -> str:
        """The SIP URI that reaches baresip's account."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def output(self) -> str:
        """Everything baresip printed so far."""
        return self.proc.output()

    def wait_for(self, pattern: str, timeout: float, count: int = 1) -> list[re.Match[str]]:
        """Wait until ``pattern`` (a regex, multi-line) matched ``count`` times; fails at once if baresip exits."""
        return self.proc.wait_for_output(pattern, timeout, count, name="baresip")

    def command(self, text: str, quiet: float = 0.3, timeout: float = 3.0) -> str:
        """Send one console command (``/dial sip:...``) through the ``cons`` module; returns its reply (what
        came back until ``quiet`` seconds passed with nothing more, at most ``timeout``)."""
        self._sock.sendto(text.encode() + b"\n", ("127.0.0.1", self.cons_port))
        reply = b""
        deadline = time.monotonic() + timeout
        self._sock.settimeout(quiet)
        while time.monotonic() < deadline:
            try:
                reply += self._sock.recv(65535)
            except socket.timeout:
                if reply:
                    break
        return reply.decode("utf-8", "replace")

    def rtp_tables(self) -> list[RtpTable]:
        """The RTP tables of the calls that ended so far, oldest first."""
        tables = []
        for m in re.finditer(r"^packets:\s+(\d+)\s+(\d+)\s*\n.*?^errors:\s+\d+\s+(\d+)\s*\n"
                             r"(?:pkt\.report:\s+(\d+)\s+(\d+))?", self.output(), re.MULTILINE | re.DOTALL):
            rep = (int(m[4]), int(m[5])) if m[4] else (None, None)
            tables.append(RtpTable(int(m[1]), int(m[2]), int(m[3]), *rep))
        return tables

    def wait_call_ended(self, count: int, timeout: float = 5.0) -> RtpTable:
        """Wait for the ``count``-th call end and its RTP table; returns that table."""
        self.wait_for(r"^errors:\s+\d+\s+\d+\s*$", timeout, count)
        return self.rtp_tables()[count - 1]

    def heard(self) -> float:
        """The dominant frequency in what baresip decoded in its last ended call (sndfile's ``-dec.wav``)."""
        files = sorted(self.snd_dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
        assert files, f"baresip wrote no decoded audio in {self.snd_dir}"
        with wave.open(str(files[-1]), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            return dominant_tone(w.readframes(w.getnframes())).hz

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, to this PID only."""
        self._sock.close()
        self.proc.stop(timeout=3)


StartBaresip = Callable[..., Baresip]


@pytest.fixture
def baresip(tmp_path: Path) -> Iterator[Callable[..., Baresip]]:
    """Factory: ``baresip(mediaenc="srtp-mand")`` starts one; every one started is stopped at teardown."""
    missing = [m for m in NEEDED if not (MODULES / f"{m}.so").exists()]
    if missing:
        pytest.skip(f"baresip modules missing in {MODULES}: {', '.join(missing)} (apt-get install baresip-core)")
    started: list[Baresip] = []

    def start(**kwargs: Any) -> Baresip:
        b = Baresip(tmp_path / f"baresip{len(started)}", **kwargs)
        started.append(b)
        return b

    try:
        yield start
    finally:
        for b in started:
            b.stop()


def _device(srtp: Optional[str] = None, rtcp_interval_ms: int = 5000) -> Device:
    dev = Device()
    dev.codecs, dev.tone_hz, dev.srtp, dev.rtcp_interval_ms = [0], OUR_HZ, srtp, rtcp_interval_ms
    return dev


def _wait_media(call: Any, packets: int = 25, timeout: float = 5.0) -> dict[str, Any]:
    wait_until(lambda: call.media_stats().get("rx_packets", 0) >= packets, timeout,
               what=f"{packets} RTP packets from baresip")
    time.sleep(0.25)  # a full Goertzel window of steady tone
    return call.media_stats()


def _check_baresip_received(table: RtpTable, our_stats: dict[str, Any]) -> None:
    # baresip counts what arrived until our BYE; our stream stops just after the BYE goes out (a command to the
    # media thread: a few packets on a loaded machine), so those few may come too late to count
    tx = our_stats["tx_packets"]
    assert tx - 8 <= table.rx_packets <= tx and table.rx_packets >= 25 and table.rx_errors == 0, (table, our_stats)


def test_phone_calls_baresip_plain_pcmu_and_each_side_hangs_up_in_turn(engine: Engine, baresip: StartBaresip) -> None:
    b = baresip()
    alice = Phone("alice", _device(), engine=engine)

    # 1: we hang up
    out = alice.call(b.uri)
    alice.expect(Answered, 5, call=out)
    assert out.remote_description.media[0].proto == "RTP/AVP"
    st = _wait_media(out)
    assert st["rx_payload_type"] == 0 and st["rx_lost"] == 0 and st["rx_invalid"] <= BARESIP_PINGS, st
    assert out.heard_tone(BARESIP_HZ) and not out.heard_tone(OUR_HZ)
    out.hangup()
    table = b.wait_call_ended(1)
    _check_baresip_received(table, out.media_stats())
    assert abs(b.heard() - OUR_HZ) <= 2, "baresip did not decode our tone"

    # 2: baresip hangs up
    out2 = alice.call(b.uri)
    alice.expect(Answered, 5, call=out2)
    st = _wait_media(out2)
    assert st["rx_payload_type"] == 0 and out2.heard_tone(BARESIP_HZ), st
    b.command("/hangup")
    ended = alice.expect(CallEnded, 5, call=out2)
    assert ended.reason == "BYE received", ended
    table = b.wait_call_ended(2)
    # baresip stops sending when it sends its BYE: what it sent is what we received, give or take one
    assert table.tx_packets - 2 <= out2.media_stats()["rx_packets"] <= table.tx_packets, table
    assert table.rx_packets >= 25 and table.rx_errors == 0, table


def test_baresip_calls_phone_and_phone_answers(engine: Engine, baresip: StartBaresip) -> None:
    b = baresip()
    bob = Phone("bob", _device(), engine=engine)
    b.command(f"/dial sip:bob@127.0.0.1:{bob.port}")
    inc = bob.wait_for_call(5)
    assert "sip:bs@127.0.0.1" in inc.remote, inc.remote
    inc.answer()
    bob.expect(Answered, 5, call=inc)
    st = _wait_media(inc)
    assert st["rx_payload_type"] == 0 and st["rx_lost"] == 0 and inc.heard_tone(BARESIP_HZ), st
    b.wait_for(r"Call established: sip:bob@127\.0\.0\.1", 2)
    inc.hangup()
    _check_baresip_received(b.wait_call_ended(1), inc.media_stats())
    assert abs(b.heard() - OUR_HZ) <= 2, "baresip did not decode our tone"


@pytest.mark.parametrize("suite", SUITES)
def test_srtp_with_baresip_decrypts_both_ways(engine: Engine, baresip: StartBaresip, suite: str) -> None:
    b = baresip(mediaenc="srtp-mand")
    alice = Phone("alice", _device(suite), engine=engine)
    out = alice.call(b.uri)
    alice.expect(Answered, 5, call=out)
    assert out.remote_description.media[0].proto == "RTP/SAVP"
    assert out.session is not None and out.session.srtp_suite == suite
    b.wait_for(rf"SRTP is Enabled \(cryptosuite={suite}\)", 3)
    st = _wait_media(out)
    assert st["rx_auth_fail"] == 0 and st["rx_invalid"] <= BARESIP_PINGS and st["rx_lost"] == 0, st
    time.sleep(0.3)
    st2 = out.media_stats()
    # every packet decrypted: 160 bytes of payload once the auth tag is removed. Counted from here: the one to
    # three packets baresip sends between its 200 and our stream's start (before we hold its key) are counted
    # by our not yet started stream as plain RTP, with the tag in the payload
    assert st2["rx_packets"] - st["rx_packets"] >= 10 and st2["rx_auth_fail"] == 0, st2
    assert st2["rx_bytes"] - st["rx_bytes"] == 160 * (st2["rx_packets"] - st["rx_packets"]), (st, st2)
    assert out.heard_tone(BARESIP_HZ) and not out.heard_tone(OUR_HZ)
    out.hangup()
    _check_baresip_received(b.wait_call_ended(1), out.media_stats())
    assert "failed to decrypt" not in b.output()
    assert abs(b.heard() - OUR_HZ) <= 2, "baresip did not decrypt and decode our tone"


def test_baresip_calls_with_srtp_and_srtcp_reports_are_read_both_ways(engine: Engine, baresip: StartBaresip) -> None:
    b = baresip(mediaenc="srtp-mand")
    bob = Phone("bob", _device("AES_CM_128_HMAC_SHA1_80", rtcp_interval_ms=1000), engine=engine)
    b.command(f"/dial sip:bob@127.0.0.1:{bob.port}")
    inc = bob.wait_for_call(5)
    offer = inc.request.body.decode()
    assert "RTP/SAVP" in offer and "a=crypto:" in offer, offer
    inc.answer()
    bob.expect(Answered, 5, call=inc)
    st = _wait_media(inc)
    assert st["rx_auth_fail"] == 0 and inc.heard_tone(BARESIP_HZ), st
    # baresip's first RTCP report comes about 5 s into the call (libre's interval)
    wait_until(lambda: inc.media_stats()["peer_report"], 9, what="an SRTCP report from baresip")
    st = inc.media_stats()
    assert st["rtcp_rx"] >= 1 and st["rtt_ms"] >= 0 and st["peer_cum_lost"] == 0 and st["rx_auth_fail"] == 0, st
    inc.hangup()
    table = b.wait_call_ended(1)
    _check_baresip_received(table, inc.media_stats())
    # pkt.report is filled from the RTCP reports baresip read: our SRTCP, every second, decrypted (the receive
    # column is the packet count of our last SR, some 4 s into the call)
    assert table.reported_tx is not None and table.reported_tx >= 150, table
    assert table.reported_rx is not None and 150 <= table.reported_rx <= inc.media_stats()["tx_packets"], table
    assert "failed to decrypt" not in b.output()


def test_wrong_srtp_key_shows_as_auth_failures_not_silence(engine: Engine, baresip: StartBaresip) -> None:
    b = baresip(mediaenc="srtp-mand")
    alice = Phone("alice", _device("AES_CM_128_HMAC_SHA1_80"), engine=engine)
    out = alice.call(b.uri)
    alice.expect(Answered, 5, call=out)
    before = _wait_media(out)
    assert before["rx_auth_fail"] == 0
    # tamper both keys as we hold them (every bit of each master key flipped): our stream restarts with them
    s = out.session
    assert s is not None and out.media_id is not None
    flip = lambda key: bytes(x ^ 0xFF for x in key[:16]) + key[16:]  # noqa: E731
    media = alice.engine.media
    media.stop(out.media_id)
    sent_ok = out.media_stats()["tx_packets"]  # the last packets with the right key
    media.start(out.media_id, s.remote_host, s.remote_port, payload_type=s.payload_type, source="tone",
                tone_hz=OUR_HZ, ptime_ms=s.ptime, srtp=s.srtp_suite, srtp_tx_key=flip(s.srtp_tx_key),
                srtp_rx_key=flip(s.srtp_rx_key))
    time.sleep(0.1)
    mid = out.media_stats()
    time.sleep(0.8)
    after = out.media_stats()
    # about 40 packets in 0.8 s: every one of them fails authentication, none is counted as received audio
    assert after["rx_auth_fail"] - mid["rx_auth_fail"] >= 25, (mid, after)
    assert after["rx_packets"] == mid["rx_packets"], (mid, after)
    # and baresip, whose key for what we send no longer matches, fails to authenticate it too
    b.wait_for(r"srtp: failed to decrypt RTP packet", 2)
    out.hangup()
    table = b.wait_call_ended(1)
    # baresip counted only what we sent before the tampering, though we sent some 40 more
    assert out.media_stats()["tx_packets"] >= sent_ok + 30 and table.rx_packets <= sent_ok, (sent_ok, table)
