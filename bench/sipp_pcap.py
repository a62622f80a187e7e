"""SIPp's pcap play, measured from the wire, for comparison with the media engine (bench_media.py).

N concurrent ``sipp -sn uac_pcap`` calls (SIPp's built-in scenario: it plays ``pcap/g711a.pcap``, 236 PCMA
packets over 4.7 s, with a thread per call) against ``pysiptest phone --media echo``.  A packet socket on
``lo`` (needs CAP_NET_RAW) with a kernel filter keeps the UDP that leaves SIPp's media ports; the kernel
timestamps each packet (SO_TIMESTAMPNS).  Packet k of a call should leave at the call's start plus the
capture's own offset of record k; the deviation is the difference, taken against the call's earliest packet
relative to that schedule (so a late first packet does not hide the rest), the same measure as the engine's
lateness.  SIPp's CPU comes from /proc (all its threads).
"""
from __future__ import annotations

import ctypes
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pysiptest.sut._proc import ManagedProcess, free_port, wait_until

HOST = "127.0.0.1"
SIPP_PCAP_DIR = Path("/usr/share/sip-tester")
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
PORT_STRIDE = 4  # SIPp's [auto_media_port]: call k plays from media_port + 4 * (k - 1)
ROOT = Path(__file__).resolve().parent.parent


def pcap_times(path: Path) -> list[float]:
    """Record times (s) of a classic pcap file; SIPp's g711a.pcap is one RTP flow."""
    data = path.read_bytes()
    order = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
             b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
    if data[:4] not in order:
        raise ValueError(f"{path}: not a classic pcap file")
    endian, unit = order[data[:4]]
    out: list[float] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl = struct.unpack(endian + "III", data[off:off + 12])
        out.append(sec + frac * unit)
        off += 16 + incl
    return out


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of pid, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SourceCapture:
    """Kernel-timestamped arrival times on ``lo`` of UDP from source ports lo..hi, per source port."""

    def __init__(self, lo: int, hi: int) -> None:
        self.times: dict[int, list[int]] = {}
        self.dropped = False
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        prog = [
            (0x30, 0, 0, 9),        # ldb [9]            IP protocol
            (0x15, 0, 7, 17),       # jeq #17            UDP, else drop
            (0x28, 0, 0, 6),        # ldh [6]            flags + fragment offset
            (0x45, 5, 0, 0x1FFF),   # jset #0x1fff       a later fragment: drop
            (0xB1, 0, 0, 0),        # ldxb 4*([0]&0xf)   X = IP header length
            (0x48, 0, 0, 0),        # ldh [x+0]          UDP source port
            (0x35, 0, 2, lo),       # port >= lo, else drop
            (0x25, 1, 0, hi),       # port > hi: drop
            (0x06, 0, 0, 0x40000),  # accept
            (0x06, 0, 0, 0),        # drop
        ]
        self._filter = (ctypes.c_uint8 * (8 * len(prog)))(*b"".join(struct.pack("HBBI", *i) for i in prog))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                             struct.pack("HL", len(prog), ctypes.addressof(self._filter)))
        self.sock.bind(("lo", ETH_P_IP))
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, name="sipp-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        cmsg_len = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, anc, _flags, addr = self.sock.recvmsg(64, cmsg_len)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING or len(data) < 24:
                continue
            ts = next((struct.unpack("qq", d[:16]) for lvl, typ, d in anc
                       if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS), None)
            if ts is None:
                continue
            ihl = (data[0] & 0x0F) * 4
            sport = struct.unpack("!H", data[ihl:ihl + 2])[0]
            self.times.setdefault(sport, []).append(ts[0] * 1_000_000_000 + ts[1])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def _ports_free(base: int, n: int, stride: int = PORT_STRIDE, extra: tuple[int, ...] = (0, 2)) -> bool:
    for k in range(n):
        for p in (base + stride * k + e for e in extra):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((HOST, p))
                except OSError:
                    return False
    return True


def free_port_range(n: int, stride: int = PORT_STRIDE, extra: tuple[int, ...] = (0, 2)) -> int | None:
    """An even base port below the ephemeral range with base + stride * k + e free for k < n, e in extra.

    Below the ephemeral range, where other sockets' ports (the echo phone's, the engines' own) come from, so
    a capture filter on the range sees the intended senders only."""
    eph_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    top = max(eph_lo, 10000 + stride * n + 4) - stride * n
    return next((b for b in (random.randrange(10000, top, 2) for _ in range(30)) if _ports_free(b, n, stride, extra)),
                None)


def deviations(flows: dict[int, list[int]], offsets_us: list[float] | None, period_us: float = 0.0) -> list[float]:
    """Send-time deviations (us, sorted) of packets on the wire from their schedule, over every flow.

    Packet k of a flow (kernel timestamps, ns) is due at the flow's start plus offsets_us[k] (a capture's
    record times) or k * period_us; a flow's deviations are taken against its earliest packet relative to
    the schedule, so that a late first packet does not hide the rest."""
    devs: list[float] = []
    for times in flows.values():
        k = len(times) if offsets_us is None else min(len(times), len(offsets_us))
        if k == 0:
            continue
        rel = [(times[i] - times[0]) / 1e3 - (offsets_us[i] if offsets_us is not None else i * period_us)
               for i in range(k)]
        m = min(rel)
        devs.extend(r - m for r in rel)
    devs.sort()
    return devs


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run(n: int, timeout: float = 40.0) -> dict[str, object]:
    """N concurrent uac_pcap calls; deviation percentiles (us), packets, SIPp CPU % over the play."""
    if not (SIPP_PCAP_DIR / "g711a.pcap").is_file():
        return {"n": n, "error": "SIPp's pcap files are missing (apt-get install sip-tester)"}
    schedule = pcap_times(SIPP_PCAP_DIR / "g711a.pcap")
    # below the ephemeral range, where the echo phone's own media ports come from: SIPp's ports and the
    # phone's cannot meet, and the capture filter on SIPp's source ports sees SIPp's packets only
    base = free_port_range(n)
    if base is None:
        return {"n": n, "error": "no free media port range"}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="bench-sipp-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "pcap").symlink_to(SIPP_PCAP_DIR)  # uac_pcap plays "pcap/g711a.pcap", relative to cwd
        port = free_port(HOST, tcp=False)
        phone = ManagedProcess([sys.executable, "-m", "pysiptest", "phone", "--listen", f"{HOST}:{port}",
                                "--media", "echo", "--answer-after", "0"], tmpdir / "phone.log", env=env)
        sipp = None
        cap = None
        try:
            wait_until(lambda: "listening on" in phone.log_tail(5) or not phone.alive(), timeout=20)
            if not phone.alive():
                return {"n": n, "error": "the echo phone did not start: " + phone.log_tail(5)}
            cap = SourceCapture(base, base + PORT_STRIDE * (n - 1))
            argv = ["sipp", "-sn", "uac_pcap", "-i", HOST, "-p", str(free_port(HOST, tcp=False)), "-mi", HOST,
                    "-mp", str(base), "-m", str(n), "-l", str(n), "-r", str(n), "-rp", "1000",
                    "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin", f"{HOST}:{port}"]
            sipp = ManagedProcess(argv, tmpdir / "sipp.log", cwd=tmpdir)
            cpu = 0.0
            deadline = time.monotonic() + timeout + 5
            while sipp.alive() and time.monotonic() < deadline:
                c = proc_cpu(sipp.pid)
                if c is not None:
                    cpu = c
                time.sleep(0.1)
            rc = sipp.wait(1) if not sipp.alive() else None
            time.sleep(0.2)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if sipp is not None:
                sipp.stop(timeout=5)
            if cap is not None:
                cap.stop()
            phone.stop(timeout=5)
        assert cap is not None
    flows = {port: times for port, times in cap.times.items() if (port - base) % PORT_STRIDE == 0}
    packets = sum(len(v) for v in flows.values())
    first = min((v[0] for v in flows.values() if v), default=None)
    last = max((v[-1] for v in flows.values() if v), default=None)
    offsets = [(x - schedule[0]) * 1e6 for x in schedule]
    devs = deviations(flows, offsets)
    play = (last - first) / 1e9 if first is not None and last is not None and last > first else float("nan")
    return {
        "n": n, "rc": rc, "flows": len(flows), "packets": packets, "expected": n * len(schedule),
        "p50_us": percentile(devs, 0.5), "p99_us": percentile(devs, 0.99), "max_us": devs[-1] if devs else float("nan"),
        "cpu": cpu / play * 100 if play == play else float("nan"),
    }
