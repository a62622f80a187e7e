"""Reliable provisional responses and PRACK (RFC 3262) in both roles.

Engine level: a raw UDP peer plays the other side where the exact bytes and timing matter (T1 = 50 ms).
Phone level: two pysiptest phones, directly and through Kamailio (the seed's case: a PRACKed 180 then 486
must reach the caller with the 180's To tag and be ACKed).
"""
from __future__ import annotations

import time
from typing import Optional

import pytest

from pysiptest import _core
from test_engine import (  # noqa: F401  (fixtures engine, peer)
    HOST, T1, Eng, assert_spacing, engine, is_method, is_status, no_events, peer, sip_request, sip_response,
    uac_headers, wait_event,
)

EngineError = _core.EngineError


def _incoming_invite(eng, peer, port, call_id: str, extra: str = "Supported: 100rel"):
    peer.send(sip_request("INVITE", peer, port, branch="z9hG4bK" + call_id, call_id=call_id, extra=extra), port)
    peer.expect(is_status(100), what="100 Trying")
    return wait_event(eng, "request", pred=lambda e: e.message.method == "INVITE")


def _prack(peer, port, prov, rseq: int, cseq: int, branch: str, call_id: str, method: str = "INVITE") -> bytes:
    return sip_request("PRACK", peer, port, branch=branch, call_id=call_id, to_tag=prov.nameaddr("To")["tag"],
                       cseq=cseq + 1, extra=f"RAck: {rseq} {cseq} {method}")


# ---- UAS role ----------------------------------------------------------------------------------

def test_reliable_180_has_require_and_rseq_and_is_retransmitted_until_prack(engine, peer):
    eng, _, port = engine
    inv = _incoming_invite(eng, peer, port, "rel-1")
    eng.respond(inv.txn_id, 180, reliable=True)
    arrivals = []
    first = None
    for _ in range(4):
        m = peer.expect(is_status(180), what="the reliable 180")
        arrivals.append(time.monotonic())
        first = first or m
        assert bytes(m) == bytes(first), "retransmissions are the same bytes"
    assert first.header("Require") == "100rel"
    rseq = int(first.header("RSeq"))
    assert 1 <= rseq < 2**31
    assert_spacing(arrivals, [T1, 2 * T1, 4 * T1])  # T1, doubling
    peer.send(_prack(peer, port, first, rseq, 1, "z9hG4bKpr1", "rel-1"), port)
    ok = peer.expect(is_status(200, "PRACK"), what="200 to the PRACK")
    assert ok.nameaddr("To")["tag"] == first.nameaddr("To")["tag"]
    ev = wait_event(eng, "request", pred=lambda e: e.message.method == "PRACK")
    assert ev.txn_id == 0 and ev.dialog_id == inv.dialog_id or ev.dialog_id != 0
    late = [m for _, m in peer.collect(0.5) if not m.is_request and m.status == 180]
    assert late == [], "no retransmission after the PRACK"


def test_second_reliable_provisional_waits_for_prack_and_increments_rseq(engine, peer):
    eng, _, port = engine
    inv = _incoming_invite(eng, peer, port, "rel-2")
    eng.respond(inv.txn_id, 180, reliable=True)
    p1 = peer.expect(is_status(180))
    with pytest.raises(EngineError, match="PRACK"):
        eng.respond(inv.txn_id, 183, reliable=True)
    r1 = int(p1.header("RSeq"))
    peer.send(_prack(peer, port, p1, r1, 1, "z9hG4bKpr2a", "rel-2"), port)
    peer.expect(is_status(200, "PRACK"))
    eng.respond(inv.txn_id, 183, reliable=True)
    p2 = peer.expect(is_status(183))
    assert int(p2.header("RSeq")) == r1 + 1


def test_prack_matching_nothing_gets_481(engine, peer):
    eng, _, port = engine
    inv = _incoming_invite(eng, peer, port, "rel-3")
    eng.respond(inv.txn_id, 180, reliable=True)
    p1 = peer.expect(is_status(180))
    rseq = int(p1.header("RSeq"))
    peer.send(_prack(peer, port, p1, rseq + 7, 1, "z9hG4bKpr3", "rel-3"), port)
    peer.expect(is_status(481, "PRACK"), what="481 to a PRACK with a wrong RSeq")
    # the provisional is still unacknowledged: it keeps coming
    peer.expect(is_status(180), what="the 180 again")


def test_reliable_provisional_refused_when_invite_lacks_100rel(engine, peer):
    eng, _, port = engine
    inv = _incoming_invite(eng, peer, port, "rel-4", extra="")
    with pytest.raises(EngineError, match="100rel"):
        eng.respond(inv.txn_id, 180, reliable=True)
    eng.respond(inv.txn_id, 180)  # an unreliable one is fine
    m = peer.expect(is_status(180))
    assert m.header("RSeq") is None


def test_unacknowledged_reliable_provisional_gives_up_at_64_t1_with_504(peer):
    eng = Eng(t1=0.01, t2=4.0, t4=0.05)  # 64*T1 = 0.64 s
    try:
        _, port = eng.listen_udp(HOST, 0)
        inv = _incoming_invite(eng, peer, port, "rel-5")
        t0 = time.monotonic()
        eng.respond(inv.txn_id, 180, reliable=True)
        ev = wait_event(eng, "timeout", timeout=3.0)
        assert "PRACK" in ev.info and ev.txn_id == inv.txn_id
        assert 0.5 <= time.monotonic() - t0 <= 1.5
        peer.expect(is_status(504), timeout=1.0, what="504 to the INVITE")
    finally:
        eng.close()


def test_final_response_stops_reliable_retransmissions(engine, peer):
    eng, _, port = engine
    inv = _incoming_invite(eng, peer, port, "rel-6")
    eng.respond(inv.txn_id, 180, reliable=True)
    peer.expect(is_status(180))
    eng.respond(inv.txn_id, 486)
    peer.expect(is_status(486))
    got = [m.status for _, m in peer.collect(0.6) if not m.is_request]
    assert 180 not in got


SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_HDRS = [("Contact", f"<sip:engine@{HOST}>"), ("Content-Type", "application/sdp")]


def _reliable_183_with_sdp(eng, peer, port, call_id: str):
    inv = _incoming_invite(eng, peer, port, call_id)
    eng.respond(inv.txn_id, 183, None, SDP_HDRS, SDP, reliable=True)
    p = peer.expect(is_status(183), what="the reliable 183 with SDP")
    assert p.body == SDP and p.header("RSeq")
    return inv, p


def test_2xx_waits_for_the_prack_of_a_reliable_183_with_sdp_then_follows_the_prack_200(engine, peer):
    """RFC 3262 3: no 2xx while a reliable provisional with an offer/answer is unacknowledged."""
    eng, _, port = engine
    inv, p = _reliable_183_with_sdp(eng, peer, port, "hold-1")
    did = eng.respond(inv.txn_id, 200, None, SDP_HDRS, SDP)
    assert did != 0, "the held 2xx still names the early dialog"
    seen = peer.collect(0.6)  # ~ 3 retransmissions of the 183 at T1 = 50 ms, and no 200
    assert [m.status for _, m in seen if not m.is_request and m.status >= 200] == [], "the 200 waited"
    assert len([m for _, m in seen if not m.is_request and m.status == 183]) >= 2, "the 183 kept coming"
    rseq = int(p.header("RSeq"))
    peer.send(_prack(peer, port, p, rseq, 1, "z9hG4bKhold1", "hold-1"), port)
    got = []
    end = time.monotonic() + 2.0
    while len(got) < 2 and time.monotonic() < end:
        m = peer.recv(0.5)
        if m is not None and not m.is_request and m.status == 200:
            got.append(m)
    assert [m.cseq[1] for m in got] == ["PRACK", "INVITE"], "200 to the PRACK, then the held 200 to the INVITE"
    ok = got[1]
    assert ok.nameaddr("To")["tag"] == p.nameaddr("To")["tag"] and ok.body == SDP
    assert ok.header("RSeq") is None
    # the 2xx is retransmitted like any other until the ACK (RFC 3261 13.3.1.4)
    assert bytes(peer.expect(is_status(200, "INVITE"), what="the 200 again")) == bytes(ok)


def test_2xx_after_a_reliable_180_without_sdp_is_not_held(engine, peer):
    eng, _, port = engine
    inv = _incoming_invite(eng, peer, port, "hold-2")
    eng.respond(inv.txn_id, 180, reliable=True)
    peer.expect(is_status(180))
    eng.respond(inv.txn_id, 200, None, SDP_HDRS, SDP)
    ok = peer.expect(is_status(200, "INVITE"), what="the 200 at once (no SDP in the 180)")
    assert ok.body == SDP


def test_second_2xx_while_one_is_held_is_refused_and_cancel_drops_the_held_2xx(engine, peer):
    eng, _, port = engine
    inv, p = _reliable_183_with_sdp(eng, peer, port, "hold-3")
    eng.respond(inv.txn_id, 200, None, SDP_HDRS, SDP)
    with pytest.raises(EngineError, match="waiting for the PRACK"):
        eng.respond(inv.txn_id, 200, None, SDP_HDRS, SDP)
    cancel = sip_request("CANCEL", peer, port, branch="z9hG4bKhold-3", call_id="hold-3")
    peer.send(cancel, port)
    peer.expect(is_status(200, "CANCEL"), what="200 to the CANCEL")
    peer.expect(is_status(487, "INVITE"), what="487: the held 200 never left, the INVITE can be cancelled")
    rseq = int(p.header("RSeq"))
    peer.send(_prack(peer, port, p, rseq, 1, "z9hG4bKhold3p", "hold-3"), port)
    late = [m for _, m in peer.collect(0.5) if not m.is_request and m.status == 200 and m.cseq[1] == "INVITE"]
    assert late == [], "no 200 to the INVITE after the 487"


def test_held_2xx_without_prack_ends_with_504_after_64_t1(peer):
    eng = Eng(t1=0.01, t2=4.0, t4=0.05)
    try:
        _, port = eng.listen_udp(HOST, 0)
        inv, _ = _reliable_183_with_sdp(eng, peer, port, "hold-4")
        eng.respond(inv.txn_id, 200, None, SDP_HDRS, SDP)
        ev = wait_event(eng, "timeout", timeout=3.0)
        assert "held" in ev.info and ev.txn_id == inv.txn_id
        m = peer.expect(lambda m: not m.is_request and m.status >= 200, timeout=1.0, what="the final response")
        assert m.status == 504
    finally:
        eng.close()


# ---- UAC role ----------------------------------------------------------------------------------

def _uac(eng, tid, port, peer, call_id: str):
    txn = eng.request(tid, HOST, peer.port, "INVITE", f"sip:peer@{HOST}:{peer.port}",
                      headers=uac_headers(peer, port, call_id) + [("Supported", "100rel")], body=b"v=0\r\n")
    return txn, peer.expect(is_method("INVITE"))


def test_uac_pracks_reliable_provisional_once_and_drops_retransmissions(engine, peer):
    eng, tid, port = engine
    txn, inv = _uac(eng, tid, port, peer, "uac-rel-1")
    r = sip_response(inv, 180, "Ringing", to_tag="bob",
                     extra=f"Require: 100rel\r\nRSeq: 4711\r\nContact: <sip:bob@{HOST}:{peer.port}>")
    peer.send(r, port)
    pr = peer.expect(is_method("PRACK"), what="the PRACK")
    assert pr.header("RAck") == f"4711 {inv.cseq[0]} INVITE"
    assert pr.cseq == (inv.cseq[0] + 1, "PRACK")
    assert pr.nameaddr("To")["tag"] == "bob"
    assert pr.uri == f"sip:bob@{HOST}:{peer.port}", "the PRACK goes to the 180's Contact"
    ev = wait_event(eng, "response", pred=lambda e: e.status == 180)
    assert ev.txn_id == txn and ev.dialog_id
    peer.send(r, port)  # retransmitted: not PRACKed again, not reported again
    peer.send(sip_response(pr, 200, "OK"), port)
    later = [m for _, m in peer.collect(0.3) if m.is_request and m.method == "PRACK"]
    assert later == [] or all(bytes(m) == bytes(pr) for m in later)
    assert [e for e in no_events(eng, 0.2, ("response",)) if e.status == 180] == []
    # the next reliable provisional (RSeq + 1) is reported and PRACKed
    peer.send(sip_response(inv, 183, "Session Progress", to_tag="bob", extra="Require: 100rel\r\nRSeq: 4712"), port)
    pr2 = peer.expect(lambda m: m.is_request and m.method == "PRACK" and m.header("RAck").startswith("4712"))
    assert pr2.cseq[0] == pr.cseq[0] + 1
    wait_event(eng, "response", pred=lambda e: e.status == 183)


def test_uac_pracks_a_reliable_provisional_to_a_reinvite(engine, peer):
    """RFC 3262 applies to every INVITE: a reliable 183 to our re-INVITE is PRACKed inside the dialog."""
    eng, tid, port = engine
    _, inv = _uac(eng, tid, port, peer, "uac-rel-re")
    peer.send(sip_response(inv, 200, "OK", to_tag="bob", extra=f"Contact: <sip:bob@{HOST}:{peer.port}>"), port)
    peer.expect(is_method("ACK"))
    did = wait_event(eng, "response", pred=lambda e: e.status == 200).dialog_id
    txn = eng.dialog_request(did, "INVITE", headers=[("Contact", f"<sip:engine@{HOST}:{port}>"),
                                                     ("Supported", "100rel")], body=b"v=0\r\n")
    reinv = peer.expect(is_method("INVITE"))
    assert reinv.cseq[0] == 2
    p = sip_response(reinv, 183, "Session Progress", extra="Require: 100rel\r\nRSeq: 77")
    peer.send(p, port)
    pr = peer.expect(is_method("PRACK"), what="the PRACK of the re-INVITE's 183")
    assert pr.header("RAck") == "77 2 INVITE" and pr.cseq == (3, "PRACK")
    assert pr.nameaddr("To")["tag"] == "bob" and pr.uri == f"sip:bob@{HOST}:{peer.port}"
    ev = wait_event(eng, "response", pred=lambda e: e.status == 183)
    assert ev.txn_id == txn and ev.dialog_id == did
    peer.send(p, port)  # a retransmission: no second PRACK
    peer.send(sip_response(pr, 200, "OK"), port)
    assert [m for _, m in peer.collect(0.3) if m.is_request and m.method == "PRACK" and bytes(m) != bytes(pr)] == []
    peer.send(sip_response(reinv, 200, "OK", extra=f"Contact: <sip:bob@{HOST}:{peer.port}>"), port)
    ack = peer.expect(is_method("ACK"))
    assert ack.cseq == (2, "ACK")


def test_uac_ignores_out_of_order_rseq(engine, peer):
    eng, tid, port = engine
    _, inv = _uac(eng, tid, port, peer, "uac-rel-2")
    peer.send(sip_response(inv, 180, "Ringing", to_tag="bob", extra="Require: 100rel\r\nRSeq: 10"), port)
    peer.expect(is_method("PRACK"))
    wait_event(eng, "response", pred=lambda e: e.status == 180)
    peer.send(sip_response(inv, 183, "Session Progress", to_tag="bob", extra="Require: 100rel\r\nRSeq: 12"), port)
    pracks = [m for _, m in peer.collect(0.3) if m.is_request and m.method == "PRACK"]
    assert [m.header("RAck") for m in pracks if not m.header("RAck").startswith("10 ")] == []
    assert [e for e in no_events(eng, 0.1, ("response",)) if e.status == 183] == []


def test_uac_without_auto_prack_reports_but_does_not_prack(engine, peer):
    eng, tid, port = engine
    eng.set_auto_prack(tid, False)
    _, inv = _uac(eng, tid, port, peer, "uac-rel-3")
    peer.send(sip_response(inv, 180, "Ringing", to_tag="bob", extra="Require: 100rel\r\nRSeq: 1"), port)
    ev = wait_event(eng, "response", pred=lambda e: e.status == 180)
    assert [m for _, m in peer.collect(0.3) if m.is_request and m.method == "PRACK"] == []
    # the user PRACKs by hand inside the early dialog
    eng.dialog_request(ev.dialog_id, "PRACK", [("RAck", f"1 {inv.cseq[0]} INVITE")])
    assert peer.expect(is_method("PRACK")).header("RAck") == f"1 {inv.cseq[0]} INVITE"


# ---- phones ------------------------------------------------------------------------------------

import shutil  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402

from pysiptest import (  # noqa: E402
    Answered, CallEnded, Device, Engine, IncomingCall, Phone, RequestReceived, ResponseReceived, Ringing,
)


class ReliableCaller(Device):
    """Requires 100rel in its INVITEs (Supported and Require)."""

    supported = ["100rel"]
    require = ["100rel"]
    ring_delay = None


class ReliableCallee(Device):
    """Sends its provisionals reliably when the caller offers 100rel; rings only when told."""

    supported = ["100rel"]
    reliable_provisionals = True
    ring_delay = None


@pytest.fixture
def pengine():
    eng = Engine()
    try:
        yield eng
    finally:
        eng.close()


def _direct_pair(pengine):
    bob = Phone("bob", ReliableCallee(), engine=pengine)
    alice = Phone("alice", ReliableCaller(), engine=pengine, proxy=(bob.host, bob.port))
    return alice, bob


def test_phone_to_phone_reliable_180_is_pracked_and_reported_once(pengine):
    alice, bob = _direct_pair(pengine)
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    assert {"100rel"} <= {t.strip() for t in inc.request.header("Require").split(",")}
    inc.ring()  # the device decides: reliable
    r = alice.expect(ResponseReceived, 3, status=180)
    assert r.message.header("Require") == "100rel" and r.message.header("RSeq")
    prack = bob.expect(RequestReceived, 3, method="PRACK")
    assert prack.call is inc
    assert prack.message.header("RAck") == f"{r.message.header('RSeq')} {out_cseq(r)} INVITE"
    alice.expect(ResponseReceived, 3, status=200, method="PRACK")
    alice.expect(Ringing, 3, call=out)
    time.sleep(1.2)  # past a few T1: the PRACK stopped the retransmissions, no second Ringing
    assert not [e for e in alice.unexpected() if isinstance(e, Ringing)]
    inc.answer()
    alice.expect(Answered, 3, call=out)
    bob.expect(Answered, 3, call=inc)
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def out_cseq(r) -> int:
    return r.message.cseq[0]


def test_callee_without_100rel_refuses_a_required_100rel_with_420(pengine):
    bob = Phone("bob", Device(), engine=pengine)
    alice = Phone("alice", ReliableCaller(), engine=pengine, proxy=(bob.host, bob.port))
    out = alice.call(bob)
    ended = alice.expect(CallEnded, 3, call=out)
    assert ended.status == 420
    r = alice.expect(ResponseReceived, 3, status=420)
    assert r.message.header("Unsupported") == "100rel"


def test_caller_with_auto_prack_off_gets_the_180_and_no_prack_goes(pengine):
    class ManualPrack(ReliableCaller):
        auto_prack = False

    bob = Phone("bob", ReliableCallee(), engine=pengine)
    alice = Phone("alice", ManualPrack(), engine=pengine, proxy=(bob.host, bob.port))
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    inc.ring()
    alice.expect(Ringing, 3, call=out)
    time.sleep(0.5)
    assert not [e for e in bob.unexpected() if isinstance(e, RequestReceived) and e.method == "PRACK"]
    out.cancel()
    bob.expect(CallEnded, 3, call=inc)


def _udp_port_filter(ports: list[int]) -> bytes:
    """A classic BPF program: IPv4 UDP (unfragmented) with a source or destination port in ``ports``.  The kernel
    drops everything else, so the loopback traffic of other tests (RTP) cannot overflow the socket."""
    n = len(ports)
    drop, accept = 9 + 2 * n, 10 + 2 * n
    prog = [(0x28, 0, 0, 12), (0x15, 0, drop - 2, 0x800),           # ethertype IPv4
            (0x30, 0, 0, 23), (0x15, 0, drop - 4, 17),              # protocol UDP
            (0x28, 0, 0, 20), (0x45, drop - 6, 0, 0x1FFF),          # not a fragment
            (0xB1, 0, 0, 14), (0x48, 0, 0, 14)]                     # X = IP header length; A = source port
    prog += [(0x15, accept - (8 + i) - 1, 0, p) for i, p in enumerate(ports)]
    prog += [(0x48, 0, 0, 16)]                                      # A = destination port
    prog += [(0x15, accept - (9 + n + i) - 1, 0, p) for i, p in enumerate(ports)]
    prog += [(0x06, 0, 0, 0), (0x06, 0, 0, 262144)]
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


class _LoopbackSniffer:
    """UDP datagrams on the loopback interface (AF_PACKET; needs CAP_NET_RAW), as (sport, dport, data); with
    ``ports``, only those from or to these ports (filtered in the kernel)."""

    def __init__(self, ports: Optional[list[int]] = None) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
        if ports:
            import ctypes

            code = _udp_port_filter(ports)
            self._filter = ctypes.create_string_buffer(code, len(code))  # kept alive with the socket

            class _Prog(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

            prog = _Prog(len(code) // 8, ctypes.addressof(self._filter))
            self.sock.setsockopt(socket.SOL_SOCKET, 26, bytes(prog))  # SO_ATTACH_FILTER
            # anything queued before the filter was attached is read and thrown away below by port
        self._ports = set(ports or ())
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self.packets: list[tuple[int, int, bytes]] = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # loopback shows each packet twice
            ip = frame[14:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
            if self._ports and sport not in self._ports and dport not in self._ports:
                continue
            self.packets.append((sport, dport, bytes(ip[ihl + 8:])))

    def close(self) -> None:
        self._stop = True
        self._t.join(1)
        self.sock.close()


def pracked_180_then_486(alice: Phone, bob: Phone, sniffer: "_LoopbackSniffer", server_port: int) -> None:
    """The seed's case (003) driven and checked on the wire through a server on server_port: INVITE with
    100rel, reliable 180, PRACK and its 200, then 486 from the callee, which reaches the caller with the To tag
    of the PRACKed 180 and is ACKed once (so the server does not send it again)."""
    from pysiptest import parse

    out = alice.call("bob")
    inc = bob.wait_for_call(3)
    inc.ring()
    r180 = alice.expect(ResponseReceived, 3, status=180)
    assert r180.message.header("RSeq") and r180.message.header("Require") == "100rel"
    bob.expect(RequestReceived, 3, method="PRACK")
    alice.expect(ResponseReceived, 3, status=200, method="PRACK")
    inc.reject(486)
    ended = alice.expect(CallEnded, 3, call=out)
    assert ended.status == 486
    r486 = alice.expect(ResponseReceived, 3, status=486)
    tag = r180.message.nameaddr("To")["tag"]
    assert r486.message.nameaddr("To")["tag"] == tag, "the 486 keeps the To tag of the PRACKed 180"
    time.sleep(0.8)
    acks = [parse(d) for sp, dp, d in sniffer.packets if sp == alice.port and dp == server_port
            and d.startswith(b"ACK ")]
    seen = [(sp, dp, d.split(b"\r\n", 1)[0]) for sp, dp, d in sniffer.packets if alice.port in (sp, dp)]
    assert len(acks) == 1, f"the caller ACKed the 486 once; alice {alice.port}, server {server_port}: {seen}"
    assert acks[0].nameaddr("To")["tag"] == tag and acks[0].cseq[0] == r486.message.cseq[0]
    finals = [d for sp, dp, d in sniffer.packets if sp == server_port and dp == alice.port
              and d.startswith(b"SIP/2.0 486")]
    assert len(finals) == 1, "the server got the ACK: it does not send the 486 again"


@pytest.mark.requires_binary("kamailio")
def test_kamailio_pracked_180_then_486_reaches_caller_with_same_to_tag_and_is_acked(pengine):
    """The seed's case (003) through Kamailio."""
    from pysiptest.sut import Kamailio

    sniffer = None
    try:
        with Kamailio() as kam:
            proxy = (kam.host, kam.port)
            bob = Phone("bob", ReliableCallee(), engine=pengine, proxy=proxy)
            alice = Phone("alice", ReliableCaller(), engine=pengine, proxy=proxy)
            try:
                sniffer = _LoopbackSniffer([alice.port, kam.port])
            except PermissionError:
                pytest.skip("capturing on loopback needs CAP_NET_RAW")
            bob.register(timeout=3)
            alice.register(timeout=3)
            pracked_180_then_486(alice, bob, sniffer, kam.port)
    finally:
        if sniffer is not None:
            sniffer.close()


# ---- early media and the held 2xx, phone to phone ----------------------------------------------------

def _packets(call, key: str) -> int:
    return int(call.media_stats().get(key, 0))


def test_phone_early_media_183_with_sdp_starts_media_before_the_answer(pengine):
    """Unreliable 183 with SDP (no 100rel): both sides send RTP in the early dialog; the 200 repeats the answer."""
    from pysiptest.sut._proc import wait_until

    class Plain(Device):
        ring_delay = None

    bob = Phone("bob", Plain(), engine=pengine)
    alice = Phone("alice", Plain(), engine=pengine, proxy=(bob.host, bob.port))
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    inc.progress()
    r = alice.expect(ResponseReceived, 3, status=183)
    assert r.message.header("Content-Type") == "application/sdp" and r.message.body
    assert r.message.header("RSeq") is None
    alice.expect(Ringing, 3, call=out)
    assert out.state == "early" and inc.state == "early"
    wait_until(lambda: _packets(out, "rx_packets") > 5 and _packets(inc, "rx_packets") > 5, 3,
               what="RTP both ways before the answer")
    assert out.heard_tone(440.0)
    inc.answer()
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert ok.message.body == r.message.body, "the 200 repeats the early answer"
    alice.expect(Answered, 3, call=out)
    before = _packets(out, "rx_packets")
    wait_until(lambda: _packets(out, "rx_packets") > before + 5, 3, what="RTP after the answer")
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_phone_reliable_183_with_sdp_holds_the_200_until_the_prack(pengine):
    """The UAS answers at once after a reliable 183 with SDP; the 200 leaves only after the PRACK's 200.
    The caller PRACKs by hand (auto_prack off) so that the wait is visible on the wire."""

    class ManualPrack(ReliableCaller):
        auto_prack = False

    bob = Phone("bob", ReliableCallee(), engine=pengine)
    alice = Phone("alice", ManualPrack(), engine=pengine, proxy=(bob.host, bob.port))
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    inc.progress()
    r = alice.expect(ResponseReceived, 3, status=183)
    assert r.message.header("Require") == "100rel" and r.message.body
    inc.answer()  # held by the engine
    time.sleep(0.8)
    assert not [e for e in alice.unexpected() if isinstance(e, ResponseReceived) and e.status == 200], \
        "no 200 before the PRACK"
    assert out.state == "early"
    rack = f"{r.message.header('RSeq')} {r.message.cseq[0]} INVITE"
    pengine.core.dialog_request(out.dialog_id, "PRACK", [("RAck", rack)])
    got = alice.expect(ResponseReceived, 3, status=200, method="PRACK")
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert ok.message.body == r.message.body
    assert ok.message.nameaddr("To")["tag"] == r.message.nameaddr("To")["tag"] == got.message.nameaddr("To")["tag"]
    alice.expect(Answered, 3, call=out)
    bob.expect(Answered, 3, call=inc)
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)
