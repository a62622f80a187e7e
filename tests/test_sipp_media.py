"""Media interop with SIPp 3.6 (issue 6): SIPp's built-in ``uac_pcap`` scenario calls ``pysiptest phone
--media echo`` and plays the capture SIPp ships (``g711a.pcap``: 236 PCMA packets, then an RFC 4733 digit
from ``dtmf_2833_1.pcap``); the RTP the phone sends back to SIPp's media port is counted.

SIPp does not count the RTP it receives, and its media port is its own socket, so the test watches the
loopback interface with a packet socket (``AF_PACKET``, which needs CAP_NET_RAW; skipped without it) and a
classic BPF filter in the kernel that keeps only UDP to or from SIPp's media port.  No capture tool is
needed.
"""
from __future__ import annotations

import csv
import ctypes
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from pysiptest.sut._proc import ManagedProcess, free_port

SIPP_PCAP_DIR = Path("/usr/share/sip-tester")  # Debian sip-tester; the scenario names them "pcap/<file>"
REFERENCE = Path("/work/shared/corpus/rtp/reference.json")
HOST = "127.0.0.1"
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26

pytestmark = [
    pytest.mark.requires_binary("sipp"),
    pytest.mark.skipif(not (SIPP_PCAP_DIR / "g711a.pcap").is_file(),
                       reason="SIPp's pcap files are not installed (apt-get install sip-tester)"),
]


def pcap_udp_packets(path: Path) -> int:
    """Number of records in a classic pcap file (all of SIPp's are single UDP flows)."""
    data = path.read_bytes()
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<",
             b"\xa1\xb2\x3c\x4d": ">"}[magic]
    n, off = 0, 24
    while off + 16 <= len(data):
        incl = struct.unpack(order + "I", data[off + 8:off + 12])[0]
        off += 16 + incl
        n += 1
    return n


class PortWatch:
    """Counts IPv4 UDP packets on ``lo`` to and from one port, per (source port, destination port).

    A packet socket sees each loopback packet twice (outgoing, then incoming); only the incoming copy is
    counted.  The kernel filter (classic BPF) passes UDP with the port as source or destination, so the
    thread never sees other traffic on the interface.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.counts: Counter[tuple[int, int]] = Counter()
        self._stop = threading.Event()
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        except PermissionError:
            pytest.skip("a packet socket needs CAP_NET_RAW (run as root) to watch SIPp's media port")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._attach_filter(port)
        self.sock.bind(("lo", ETH_P_IP))
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, name="port-watch", daemon=True)
        self._thread.start()

    def _attach_filter(self, port: int) -> None:
        # offsets are from the IP header (SOCK_DGRAM: the link header is already removed)
        prog = [
            (0x30, 0, 0, 9),        # ldb [9]             IP protocol
            (0x15, 0, 8, 17),       # jeq #17             UDP, else drop
            (0x28, 0, 0, 6),        # ldh [6]             flags + fragment offset
            (0x45, 6, 0, 0x1FFF),   # jset #0x1fff        a later fragment: drop
            (0xB1, 0, 0, 0),        # ldxb 4*([0]&0xf)    X = IP header length
            (0x48, 0, 0, 0),        # ldh [x+0]           UDP source port
            (0x15, 2, 0, port),     # jeq #port           accept
            (0x48, 0, 0, 2),        # ldh [x+2]           UDP destination port
            (0x15, 0, 1, port),     # jeq #port           accept, else drop
            (0x06, 0, 0, 0x40000),  # ret #262144         accept
            (0x06, 0, 0, 0),        # ret #0              drop
        ]
        self._filter = (ctypes.c_uint8 * (8 * len(prog)))(
            *b"".join(struct.pack("HBBI", *ins) for ins in prog))  # kept alive while attached
        fprog = struct.pack("HL", len(prog), ctypes.addressof(self._filter))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING or len(data) < 28:
                continue
            ihl = (data[0] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", data[ihl:ihl + 4])
            self.counts[(sport, dport)] += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _media_ports_free(port: int) -> bool:
    """SIPp binds the audio port and the one two above it (video)."""
    for p in (port, port + 2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((HOST, p))
            except OSError:
                return False
    return True


def test_sipp_uac_pcap_gets_its_rtp_echoed_by_cli_phone(run_cli, tmp_path: Path) -> None:
    audio = pcap_udp_packets(SIPP_PCAP_DIR / "g711a.pcap")
    dtmf = pcap_udp_packets(SIPP_PCAP_DIR / "dtmf_2833_1.pcap")
    if REFERENCE.is_file():
        import json
        assert json.loads(REFERENCE.read_text())["g711a.pcap"]["packets"] == audio == 236
    sent_expected = audio + dtmf

    port = free_port(HOST, tcp=False)
    phone = run_cli("phone", "--listen", f"{HOST}:{port}", "--media", "echo", "--answer-after", "0")
    phone.wait_for(r"^phone pysiptest .* listening on ")

    media_port = next(p for p in (free_port(HOST, tcp=False) for _ in range(50)) if _media_ports_free(p))
    (tmp_path / "pcap").symlink_to(SIPP_PCAP_DIR)  # the scenario plays "pcap/g711a.pcap", relative to cwd
    stat, err, msgs = tmp_path / "sipp.csv", tmp_path / "sipp-errors.log", tmp_path / "sipp-msgs.log"
    argv = ["sipp", "-sn", "uac_pcap", "-i", HOST, "-p", str(free_port(HOST, tcp=False)),
            "-mi", HOST, "-mp", str(media_port), "-m", "1", "-timeout", "40s", "-timeout_error", "-nostdin",
            "-trace_stat", "-stf", str(stat), "-trace_err", "-error_file", str(err),
            "-trace_msg", "-message_file", str(msgs), f"{HOST}:{port}"]
    watch = PortWatch(media_port)
    sipp = ManagedProcess(argv, tmp_path / "sipp.log", cwd=tmp_path)
    try:
        rc = sipp.wait(45)
        time.sleep(0.3)  # the last echoes
    finally:
        sipp.stop(timeout=5)
        watch.stop()

    report = f"{sipp.log_tail(30)}\n--- errors ---\n{err.read_text() if err.exists() else ''}"
    assert rc == 0, f"SIPp exited with {rc}:\n{report}"
    with open(stat, newline="") as fh:
        row = list(csv.DictReader(fh, delimiter=";"))[-1]
    assert (int(row["SuccessfulCall(C)"]), int(row["FailedCall(C)"])) == (1, 0), report

    # the phone's media port, from its SDP answer in SIPp's message log
    text = msgs.read_text(errors="replace")
    answer = text[text.index("SIP/2.0 200"):]
    phone_rtp = int(answer.split("m=audio ", 1)[1].split()[0])
    sent = sum(n for (s, d), n in watch.counts.items() if s == media_port and d == phone_rtp)
    echoed = sum(n for (s, d), n in watch.counts.items() if s == phone_rtp and d == media_port)
    assert abs(sent - sent_expected) <= 3, f"SIPp sent {sent} RTP packets, expected {sent_expected}: {watch.counts}"
    assert echoed <= sent and sent - echoed <= 3, (
        f"{echoed} of {sent} RTP packets came back to SIPp's media port {media_port}: {watch.counts}")
