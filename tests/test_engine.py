"""The signalling engine (csrc/engine) on the wire, through pysiptest._core.Engine.

A raw UDP socket plays the peer wherever the exact bytes matter: it forges requests and responses and
records what the engine sends and when.  Timers are small (T1 = 50 ms, so Timer B = 64*T1 = 3.2 s).
"""
from __future__ import annotations

import random
import select
import socket
import time
from typing import Callable

import pytest

import pysiptest
from pysiptest import _core
from transport_util import Ev

EngineError = _core.EngineError
HOST = "127.0.0.1"
T1 = 0.05




class Peer:
    """A raw UDP socket on loopback that sends forged bytes and reads back what the engine sent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    def recv_raw(self, timeout: float = 1.0) -> bytes | None:
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None
        return self.sock.recv(65535)

    def recv(self, timeout: float = 1.0):
        data = self.recv_raw(timeout)
        return None if data is None else _core.parse(data, strict=False)  # observe whatever the engine sends

    def expect(self, pred: Callable[[object], bool], timeout: float = 1.0, what: str = "a message"):
        """The first received message for which pred is true; the others are skipped."""
        end = time.monotonic() + timeout
        seen = []
        while True:
            left = end - time.monotonic()
            m = self.recv(max(left, 0)) if left > 0 else None
            if m is None:
                raise AssertionError(f"peer did not receive {what} within {timeout}s; got {seen}")
            if pred(m):
                return m
            seen.append(_start_line(m))

    def collect(self, duration: float) -> list[tuple[float, object]]:
        """Every message received during duration seconds, with its arrival time."""
        out = []
        end = time.monotonic() + duration
        while (left := end - time.monotonic()) > 0:
            m = self.recv(left)
            if m is not None:
                out.append((time.monotonic(), m))
        return out

    def close(self) -> None:
        self.sock.close()


def _start_line(m) -> str:
    return f"{m.method} {m.uri}" if m.is_request else f"{m.status} {m.reason}"


def is_status(status: int, method: str | None = None) -> Callable[[object], bool]:
    return lambda m: not m.is_request and m.status == status and (method is None or m.cseq[1] == method)


def is_method(method: str) -> Callable[[object], bool]:
    return lambda m: m.is_request and m.method == method


class Eng:
    """_core.Engine with a backlog, so that events polled in one batch but not yet looked at are kept."""

    def __init__(self, **kw) -> None:
        self.core = _core.Engine(**kw)
        self.backlog: list[Ev] = []

    def __getattr__(self, name: str):
        return getattr(self.core, name)


def events(eng: Eng, timeout: float = 0.0) -> list[Ev]:
    if eng.backlog:
        out, eng.backlog = eng.backlog, []
        return out
    return [Ev(*t) for t in eng.core.poll(timeout=timeout)]


def wait_event(eng, kind: str, timeout: float = 2.0, pred: Callable[[Ev], bool] | None = None,
               others: list[Ev] | None = None) -> Ev:
    """The first event of this kind (and matching pred); events before it go to others."""
    end = time.monotonic() + timeout
    seen: list[Ev] = []
    while (left := end - time.monotonic()) > 0:
        batch = events(eng, left)
        for i, ev in enumerate(batch):
            if ev.kind == kind and (pred is None or pred(ev)):
                eng.backlog = batch[i + 1:] + eng.backlog
                if others is not None:
                    others.extend(seen)
                return ev
            seen.append(ev)
    raise AssertionError(f"no {kind} event within {timeout}s; got {[(e.kind, e.status, e.info) for e in seen]}")


def no_events(eng, duration: float, kinds: tuple[str, ...]) -> list[Ev]:
    """Poll for duration seconds and return the events of these kinds (expected to be none)."""
    end = time.monotonic() + duration
    bad = []
    while (left := end - time.monotonic()) > 0:
        bad += [ev for ev in events(eng, left) if ev.kind in kinds]
    return bad


def wait_counts(eng, key: str, value: int, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while True:
        c = eng.counts()
        if c[key] == value or time.monotonic() > end:
            return c
        time.sleep(0.02)


def sip_request(method: str, peer: Peer, eng_port: int, *, branch: str, call_id: str = "call-1",
                from_tag: str = "peer-tag", to_tag: str | None = None, cseq: int = 1, cseq_method: str | None = None,
                extra: str = "", body: bytes = b"", omit: tuple[str, ...] = ()) -> bytes:
    """A request from the raw peer to the engine's transport."""
    lines = [
        f"{method} sip:engine@{HOST}:{eng_port} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{peer.port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:peer@{HOST}>;tag={from_tag}",
        f"To: <sip:engine@{HOST}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        f"Contact: <sip:peer@{HOST}:{peer.port}>",
    ]
    lines = [ln for ln in lines if ln.split(":", 1)[0] not in omit]
    if extra:
        lines += extra.rstrip("\r\n").split("\r\n")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sip_response(req, status: int, reason: str, *, to_tag: str | None = None, extra: str = "") -> bytes:
    """A response from the raw peer to a request the engine sent (copies Via, From, To, Call-ID, CSeq)."""
    lines = [f"SIP/2.0 {status} {reason}"]
    for name, value in req.headers:
        low = name.lower()
        if low in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            lines.append(f"{name}: {value}")
        elif low in ("to", "t"):
            lines.append(f"{name}: {value}" + (f";tag={to_tag}" if to_tag and ";tag=" not in value else ""))
    if extra:
        lines += extra.rstrip("\r\n").split("\r\n")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def uac_headers(peer: Peer, eng_port: int, call_id: str, method: str = "INVITE", cseq: int = 1):
    return [
        ("From", f"<sip:engine@{HOST}>;tag=eng-tag"),
        ("To", f"<sip:peer@{HOST}:{peer.port}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:engine@{HOST}:{eng_port}>"),
    ]


@pytest.fixture
def engine():
    """An engine with small timers and one UDP transport: (engine, transport_id, port)."""
    eng = Eng(t1=T1, t2=4.0, t4=0.25, user_agent="pysiptest-tests")
    tid, port = eng.listen_udp(HOST, 0)
    try:
        yield eng, tid, port
    finally:
        eng.close()


@pytest.fixture
def peer():
    p = Peer()
    try:
        yield p
    finally:
        p.close()


def intervals(arrivals: list[float]) -> list[float]:
    return [b - a for a, b in zip(arrivals, arrivals[1:])]


def assert_spacing(arrivals: list[float], expected: list[float]) -> None:
    """Each gap between datagrams close to the expected one (scheduling jitter tolerated)."""
    got = intervals(arrivals)
    assert len(got) == len(expected), f"gaps {got} vs expected {expected}"
    for g, x in zip(got, expected):
        assert x * 0.8 - 0.01 <= g <= x * 1.2 + 0.06, f"gaps {[round(v, 3) for v in got]} vs expected {expected}"


# ---- server transactions ----

def test_invite_server_sends_100_trying_before_user_responds(engine, peer):
    eng, _, port = engine
    peer.send(sip_request("INVITE", peer, port, branch="z9hG4bK-inv-100"), port)
    trying = peer.recv(0.5)  # nobody has polled or responded yet
    assert trying is not None, "no 100 Trying"
    assert trying.status == 100
    assert trying.cseq == (1, "INVITE")
    assert trying.via[0].branch == "z9hG4bK-inv-100"
    assert trying.nameaddr("To")["tag"] is None, "100 Trying must not carry a To tag"
    ev = wait_event(eng, "request")
    assert ev.message.method == "INVITE" and ev.txn_id != 0
    assert type(ev.message) is pysiptest.Message and ev.message.via[0].branch == "z9hG4bK-inv-100"
    assert (ev.src_host, ev.src_port) == (HOST, peer.port)


def test_non_invite_server_sends_no_100(engine, peer):
    eng, _, port = engine
    peer.send(sip_request("OPTIONS", peer, port, branch="z9hG4bK-opt-no100"), port)
    wait_event(eng, "request")
    assert peer.recv(0.2) is None, "a non-INVITE server transaction must wait for the user's response"


def test_retransmitted_invite_is_absorbed_and_last_response_resent(engine, peer):
    eng, _, port = engine
    inv = sip_request("INVITE", peer, port, branch="z9hG4bK-inv-rtx")
    peer.send(inv, port)
    assert peer.recv(0.5).status == 100
    ev = wait_event(eng, "request")
    peer.send(inv, port)  # before the user responded: the 100 again
    assert peer.expect(lambda m: True, what="a response").status == 100
    eng.respond(ev.txn_id, 180, headers=[("Contact", f"<sip:engine@{HOST}:{port}>")])
    ringing = peer.expect(is_status(180))
    peer.send(inv, port)  # now the 180 is the last response
    again = peer.expect(lambda m: True, what="the 180 again")
    assert bytes(again) == bytes(ringing)
    assert no_events(eng, 0.3, ("request",)) == [], "a retransmitted INVITE must not reach the user again"


def test_retransmitted_options_is_absorbed_and_final_response_resent(engine, peer):
    eng, _, port = engine
    opt = sip_request("OPTIONS", peer, port, branch="z9hG4bK-opt-rtx")
    peer.send(opt, port)
    ev = wait_event(eng, "request")
    eng.respond(ev.txn_id, 200, headers=[("Allow", "INVITE, ACK, BYE, OPTIONS")])
    ok = peer.expect(is_status(200))
    assert ok.header("Allow") == "INVITE, ACK, BYE, OPTIONS"
    assert ok.header("Server") == "pysiptest-tests"
    peer.send(opt, port)
    peer.send(opt, port)
    assert bytes(peer.expect(is_status(200))) == bytes(ok)
    assert bytes(peer.expect(is_status(200))) == bytes(ok)
    assert no_events(eng, 0.3, ("request",)) == []


# ---- client transaction timers ----

def watch_until_timeout(eng, peer, start: float, limit: float = 6.0) -> tuple[list[float], list[bytes], float, Ev]:
    """Record what the peer receives (arrival times from start) until the engine reports a timeout."""
    arrivals: list[float] = []
    datagrams: list[bytes] = []
    while time.monotonic() - start < limit:
        r, _, _ = select.select([peer.sock, eng.fileno()], [], [], 0.1)
        if peer.sock in r:
            datagrams.append(peer.sock.recv(65535))
            arrivals.append(time.monotonic() - start)
        for ev in events(eng):
            if ev.kind == "timeout":
                return arrivals, datagrams, time.monotonic() - start, ev
    raise AssertionError(f"no timeout event within {limit}s; {len(arrivals)} datagrams")


def _run_silent_peer(eng, tid, peer, method: str) -> tuple[list[float], float, Ev, list[bytes]]:
    start = time.monotonic()
    txn = eng.request(tid, HOST, peer.port, method, f"sip:peer@{HOST}:{peer.port}",
                      headers=uac_headers(peer, 0, f"silent-{method}", method))
    arrivals, datagrams, t_end, ev = watch_until_timeout(eng, peer, start)
    assert ev.txn_id == txn
    # nothing more once the transaction timed out
    assert peer.recv_raw(0.3) is None, "request sent after the transaction timed out"
    return arrivals, t_end, ev, datagrams


def test_client_invite_to_silent_peer_doubles_retransmissions_then_timer_b(engine, peer):
    eng, tid, _ = engine
    arrivals, t_end, ev, datagrams = _run_silent_peer(eng, tid, peer, "INVITE")
    # Timer A: T1, 2T1, 4T1 ... uncapped; sends at 0, 50, 150, 350, 750, 1550, 3150 ms; Timer B at 3200 ms
    assert len(arrivals) == 7, f"INVITE sent {len(arrivals)} times at {arrivals}"
    assert_spacing(arrivals, [T1 * 2 ** i for i in range(6)])
    assert len(set(datagrams)) == 1, "retransmissions must be byte-identical"
    assert ev.info == "Timer B"
    assert 64 * T1 - 0.1 <= t_end <= 64 * T1 + 0.5, f"Timer B fired at {t_end:.3f}s"
    c = wait_counts(eng, "transactions", 0, 1.0)
    assert c["transactions"] == 0, "the timed-out INVITE transaction leaked"
    assert c["retransmissions"] >= 6


def test_client_non_invite_to_silent_peer_caps_at_t2_then_timer_f():
    eng = Eng(t1=T1, t2=0.4, t4=0.25)
    p = Peer()
    try:
        tid, _ = eng.listen_udp(HOST, 0)
        arrivals, t_end, ev, _ = _run_silent_peer(eng, tid, p, "OPTIONS")
        # Timer E: 50, 100, 200, 400, then capped at T2 = 400 ms; sends at 0 .. 3150 ms; Timer F at 3200 ms
        assert len(arrivals) == 11, f"OPTIONS sent {len(arrivals)} times at {arrivals}"
        assert_spacing(arrivals, [0.05, 0.1, 0.2] + [0.4] * 7)
        assert ev.info == "Timer F"
        assert 64 * T1 - 0.1 <= t_end <= 64 * T1 + 0.5, f"Timer F fired at {t_end:.3f}s"
        assert wait_counts(eng, "transactions", 0, 1.0)["transactions"] == 0
    finally:
        eng.close()
        p.close()


# ---- UAC: ACK for 2xx ----

def _uac_invite(eng, tid, port, peer, call_id: str, extra_hdrs=()) -> tuple[int, object]:
    txn = eng.request(tid, HOST, peer.port, "INVITE", f"sip:peer@{HOST}:{peer.port}",
                      headers=uac_headers(peer, port, call_id) + list(extra_hdrs), body=b"v=0\r\n")
    inv = peer.expect(is_method("INVITE"))
    return txn, inv


def test_uac_acks_2xx_to_contact_and_repeats_ack_for_retransmitted_2xx(engine, peer):
    eng, tid, port = engine
    txn, inv = _uac_invite(eng, tid, port, peer, "uac-ack")
    assert inv.body == b"v=0\r\n"
    assert inv.header("Max-Forwards") == "70"
    contact = f"sip:bob@{HOST}:{peer.port};transport=udp"
    ok = sip_response(inv, 200, "OK", to_tag="bob-tag", extra=f"Contact: <{contact}>")
    peer.send(ok, port)
    ack = peer.expect(lambda m: True, what="the ACK")
    assert ack.method == "ACK"
    assert ack.uri == contact, "the ACK for a 2xx goes to the remote target (Contact)"
    assert ack.cseq == (inv.cseq[0], "ACK")
    assert ack.nameaddr("To")["tag"] == "bob-tag"
    assert ack.nameaddr("From")["tag"] == "eng-tag"
    assert ack.header("Call-ID") == "uac-ack"
    assert ack.via[0].branch != inv.via[0].branch, "the ACK for a 2xx is a new transaction"
    ev = wait_event(eng, "response")
    assert ev.status == 200 and ev.txn_id == txn and ev.dialog_id != 0
    info = eng.dialog_info(ev.dialog_id)
    assert info["state"] == "confirmed" and info["is_uac"] and info["remote_tag"] == "bob-tag"
    assert info["remote_target"] == contact
    peer.send(ok, port)  # 2xx retransmitted: the same ACK, nothing new for the user
    ack2 = peer.expect(lambda m: True, what="the ACK again")
    assert bytes(ack2) == bytes(ack)
    assert no_events(eng, 0.3, ("response",)) == []


def test_uac_repeats_ack_for_2xx_retransmitted_after_the_transaction_ended(peer):
    eng = Eng(t1=0.01, t4=0.05)  # Timer M = 64*T1 = 0.64 s
    try:
        tid, port = eng.listen_udp(HOST, 0)
        _, inv = _uac_invite(eng, tid, port, peer, "uac-ack-late")
        ok = sip_response(inv, 200, "OK", to_tag="bob-tag", extra=f"Contact: <sip:bob@{HOST}:{peer.port}>")
        peer.send(ok, port)
        ack = peer.expect(is_method("ACK"))
        wait_event(eng, "response")
        assert wait_counts(eng, "transactions", 0, 2.0)["transactions"] == 0
        peer.send(ok, port)
        assert bytes(peer.expect(is_method("ACK"), what="the ACK again")) == bytes(ack)
        assert no_events(eng, 0.2, ("response",)) == []
    finally:
        eng.close()


def test_uac_acks_non_2xx_final_hop_by_hop_with_invite_branch(engine, peer):
    eng, tid, port = engine
    txn, inv = _uac_invite(eng, tid, port, peer, "uac-486")
    busy = sip_response(inv, 486, "Busy Here", to_tag="busy-tag")
    peer.send(busy, port)
    ack = peer.expect(is_method("ACK"))
    assert ack.via[0].branch == inv.via[0].branch
    assert ack.uri == inv.uri
    assert ack.cseq == (1, "ACK")
    assert ack.nameaddr("To")["tag"] == "busy-tag"
    ev = wait_event(eng, "response")
    assert ev.status == 486 and ev.txn_id == txn and ev.dialog_id == 0
    peer.send(busy, port)  # retransmitted final: ACK again, no new event
    peer.expect(is_method("ACK"))
    assert no_events(eng, 0.2, ("response",)) == []
    assert eng.counts()["dialogs"] == 0


# ---- UAS: our 2xx until the ACK ----

def _uas_answered(eng, port, peer, call_id: str, branch: str):
    peer.send(sip_request("INVITE", peer, port, branch=branch, call_id=call_id), port)
    ev = wait_event(eng, "request")
    did = eng.respond(ev.txn_id, 200, headers=[("Contact", f"<sip:engine@{HOST}:{port}>")])
    assert did != 0
    return ev, did


def test_uas_retransmits_2xx_until_ack_arrives(engine, peer):
    eng, _, port = engine
    ev, did = _uas_answered(eng, port, peer, "uas-2xx", "z9hG4bK-uas-2xx")
    got = [(t, m) for t, m in peer.collect(0.42) if not m.is_request and m.status == 200]
    # 2xx at 0, 50, 150, 350 ms
    assert len(got) == 4, f"{len(got)} copies of the 2xx in 420 ms"
    assert_spacing([t for t, _ in got], [0.05, 0.1, 0.2])
    ok = got[0][1]
    assert all(bytes(m) == bytes(ok) for _, m in got)
    to_tag = ok.nameaddr("To")["tag"]
    assert to_tag and ok.header("Contact") == f"<sip:engine@{HOST}:{port}>"
    ack = sip_request("ACK", peer, port, branch="z9hG4bK-uas-2xx-ack", call_id="uas-2xx", to_tag=to_tag)
    peer.send(ack, port)
    ack_ev = wait_event(eng, "request")
    assert ack_ev.message.method == "ACK" and ack_ev.dialog_id == did and ack_ev.txn_id == 0
    late = [m for _, m in peer.collect(1.0) if not m.is_request and m.status == 200]
    assert late == [], f"{len(late)} 2xx retransmissions after the ACK"
    assert eng.dialog_info(did)["state"] == "confirmed"


def test_uas_2xx_without_ack_times_out_after_64_t1(engine, peer):
    eng, _, port = engine
    peer.send(sip_request("INVITE", peer, port, branch="z9hG4bK-uas-noack", call_id="uas-noack"), port)
    req = wait_event(eng, "request")
    assert peer.recv(0.5).status == 100
    start = time.monotonic()
    did = eng.respond(req.txn_id, 200, headers=[("Contact", f"<sip:engine@{HOST}:{port}>")])
    arrivals, datagrams, t_end, ev = watch_until_timeout(eng, peer, start)
    assert "no ACK" in ev.info and ev.dialog_id == did
    assert 64 * T1 - 0.1 <= t_end <= 64 * T1 + 0.5, f"gave up after {t_end:.3f}s"
    # the 2xx at 0, 50, 150, 350, 750, 1550, 3150 ms (T2 = 4 s is not reached)
    assert all(_core.parse(d).status == 200 for d in datagrams)
    assert len(arrivals) == 7, f"2xx sent {len(arrivals)} times at {arrivals}"
    assert_spacing(arrivals, [T1 * 2 ** i for i in range(6)])
    assert peer.recv_raw(0.4) is None, "2xx retransmitted after giving up"


def test_uas_error_final_after_180_ends_the_early_dialog(engine, peer):
    eng, _, port = engine
    peer.send(sip_request("INVITE", peer, port, branch="z9hG4bK-180-486", call_id="early-486"), port)
    ev = wait_event(eng, "request")
    did = eng.respond(ev.txn_id, 180, headers=[("Contact", f"<sip:engine@{HOST}:{port}>")])
    assert did and eng.dialog_info(did)["state"] == "early"
    assert eng.respond(ev.txn_id, 486) == 0
    peer.expect(is_status(486))
    assert eng.counts()["dialogs"] == 0, "a 486 after a 180 must end the early dialog"
    with pytest.raises(KeyError):
        eng.dialog_info(did)


def test_uas_200_after_180_confirms_the_same_dialog_with_record_route(engine, peer):
    eng, _, port = engine
    rr = f"<sip:{HOST}:5999;lr>"
    peer.send(sip_request("INVITE", peer, port, branch="z9hG4bK-180-200", call_id="early-200",
                          extra=f"Record-Route: {rr}"), port)
    ev = wait_event(eng, "request")
    contact = [("Contact", f"<sip:engine@{HOST}:{port}>")]
    did = eng.respond(ev.txn_id, 180, headers=contact)
    ringing = peer.expect(is_status(180))
    assert eng.respond(ev.txn_id, 200, headers=contact) == did
    ok = peer.expect(is_status(200))
    assert ok.nameaddr("To")["tag"] == ringing.nameaddr("To")["tag"]
    assert ok.header("Record-Route") == rr, "a dialog-creating 2xx copies Record-Route"
    assert ringing.header("Record-Route") == rr
    assert eng.dialog_info(did)["state"] == "confirmed"
    assert eng.counts()["dialogs"] == 1


# ---- CANCEL ----

def test_cancel_of_ringing_invite_gets_200_and_invite_487(engine, peer):
    eng, _, port = engine
    branch = "z9hG4bK-cancel-me"
    peer.send(sip_request("INVITE", peer, port, branch=branch, call_id="cancel-1"), port)
    inv_ev = wait_event(eng, "request")
    eng.respond(inv_ev.txn_id, 180, headers=[("Contact", f"<sip:engine@{HOST}:{port}>")])
    ringing = peer.expect(is_status(180))
    assert eng.counts()["dialogs"] == 1  # the early dialog
    peer.send(sip_request("CANCEL", peer, port, branch=branch, call_id="cancel-1"), port)
    ok = peer.expect(is_status(200), what="200 to the CANCEL")
    assert ok.cseq == (1, "CANCEL") and ok.via[0].branch == branch
    assert ok.nameaddr("To")["tag"] == ringing.nameaddr("To")["tag"], "RFC 3261 9.2: same To tag as the INVITE's"
    term = peer.expect(is_status(487), what="487 to the INVITE")
    assert term.cseq == (1, "INVITE") and term.via[0].branch == branch
    assert term.nameaddr("To")["tag"] == ringing.nameaddr("To")["tag"]
    ev = wait_event(eng, "cancelled")
    assert ev.txn_id == inv_ev.txn_id and ev.message.method == "CANCEL"
    with pytest.raises(EngineError, match="final"):
        eng.respond(inv_ev.txn_id, 200)
    assert eng.counts()["dialogs"] == 0, "the early dialog must end with the 487"
    # the 487 is retransmitted until its ACK; the ACK (same branch) stops it and Timer I ends the transaction
    peer.send(sip_request("ACK", peer, port, branch=branch, call_id="cancel-1",
                          to_tag=term.nameaddr("To")["tag"]), port)
    assert wait_counts(eng, "transactions", 0, 1.5)["transactions"] == 0
    assert [m.status for _, m in peer.collect(0.3) if not m.is_request] in ([], [487])
    assert no_events(eng, 0.1, ("request",)) == [], "the ACK for a 487 is absorbed by the transaction"


def test_uac_cancel_uses_invite_branch_and_cseq_number(engine, peer):
    eng, tid, port = engine
    txn, inv = _uac_invite(eng, tid, port, peer, "uac-cancel")
    peer.send(sip_response(inv, 180, "Ringing", to_tag="ring-tag"), port)
    wait_event(eng, "response", pred=lambda e: e.status == 180)
    ctxn = eng.cancel(txn)
    assert ctxn not in (0, txn)
    cancel = peer.expect(is_method("CANCEL"))
    assert cancel.uri == inv.uri
    assert cancel.via[0].branch == inv.via[0].branch
    assert cancel.cseq == (inv.cseq[0], "CANCEL")
    assert cancel.header("Call-ID") == inv.header("Call-ID")
    assert cancel.header("From") == inv.header("From")
    assert cancel.header("To") == inv.header("To"), "CANCEL's To is the INVITE's, without the 1xx tag"
    assert cancel.body == b""
    peer.send(sip_response(cancel, 200, "OK", to_tag="ring-tag"), port)
    peer.send(sip_response(inv, 487, "Request Terminated", to_tag="ring-tag"), port)
    ack = peer.expect(is_method("ACK"))
    assert ack.via[0].branch == inv.via[0].branch and ack.cseq == (1, "ACK")
    got = {}
    end = time.monotonic() + 2
    while len(got) < 2 and time.monotonic() < end:
        for ev in events(eng, 0.2):
            if ev.kind == "response":
                got[ev.txn_id] = ev.status
    assert got == {ctxn: 200, txn: 487}
    with pytest.raises(KeyError):
        eng.cancel(ctxn)  # not an INVITE client transaction
    assert eng.counts()["dialogs"] == 0, "the early dialog of the 180 must end with the 487"


# ---- 481 ----

def test_request_in_unknown_dialog_gets_481(engine, peer):
    eng, _, port = engine
    peer.send(sip_request("BYE", peer, port, branch="z9hG4bK-bye-481", call_id="nope", to_tag="unknown"), port)
    resp = peer.expect(lambda m: True, what="481")
    assert resp.status == 481 and resp.cseq == (1, "BYE")
    assert resp.via[0].branch == "z9hG4bK-bye-481"
    assert no_events(eng, 0.2, ("request",)) == []


def test_cancel_for_unknown_transaction_gets_481(engine, peer):
    eng, _, port = engine
    peer.send(sip_request("CANCEL", peer, port, branch="z9hG4bK-no-such-invite"), port)
    resp = peer.expect(lambda m: True, what="481")
    assert resp.status == 481 and resp.cseq == (1, "CANCEL")
    assert no_events(eng, 0.2, ("request", "cancelled")) == []


# ---- in-dialog requests ----

def test_bye_follows_record_route_increments_cseq_and_ends_dialog(engine, peer):
    eng, tid, port = engine
    proxy = Peer()
    try:
        _, inv = _uac_invite(eng, tid, port, peer, "rr-call")
        rr = f"<sip:{HOST}:{proxy.port};lr>"
        contact = f"sip:bob@{HOST}:{peer.port}"
        peer.send(sip_response(inv, 200, "OK", to_tag="bob-rr", extra=f"Record-Route: {rr}\r\nContact: <{contact}>"),
                  port)
        ack = proxy.expect(is_method("ACK"), what="the ACK via the proxy")
        assert ack.uri == contact and ack.header("Route") == rr
        did = wait_event(eng, "response").dialog_id
        assert did

        info_txn = eng.dialog_request(did, "INFO", headers=[("Content-Type", "application/dtmf-relay")],
                                      body=b"Signal=5\r\n")
        info = proxy.expect(is_method("INFO"), what="INFO via the proxy")
        assert info.cseq == (inv.cseq[0] + 1, "INFO")
        assert info.body == b"Signal=5\r\n"
        proxy.send(sip_response(info, 200, "OK"), port)
        assert wait_event(eng, "response").txn_id == info_txn

        bye_txn = eng.dialog_request(did, "BYE")
        bye = proxy.expect(is_method("BYE"), what="BYE via the proxy (Record-Route)")
        assert bye.uri == contact, "the Request-URI of an in-dialog request is the remote target"
        assert bye.header("Route") == rr
        assert bye.cseq == (inv.cseq[0] + 2, "BYE")
        assert bye.nameaddr("To")["tag"] == "bob-rr" and bye.nameaddr("From")["tag"] == "eng-tag"
        assert bye.header("Call-ID") == "rr-call"
        assert peer.recv_raw(0.1) is None, "the BYE must not bypass the route set"
        proxy.send(sip_response(bye, 200, "OK"), port)
        rest: list[Ev] = []
        ended = wait_event(eng, "dialog_ended", others=rest)
        assert ended.dialog_id == did
        assert [(e.kind, e.txn_id, e.status) for e in rest] == [("response", bye_txn, 200)]
        assert eng.counts()["dialogs"] == 0
        with pytest.raises(KeyError):
            eng.dialog_info(did)
        with pytest.raises(KeyError, match="no dialog"):
            eng.dialog_request(did, "BYE")
    finally:
        proxy.close()


def test_incoming_bye_answered_200_ends_dialog(engine, peer):
    eng, _, port = engine
    _, did = _uas_answered(eng, port, peer, "uas-bye", "z9hG4bK-uas-bye")
    ok = peer.expect(is_status(200))
    tag = ok.nameaddr("To")["tag"]
    peer.send(sip_request("ACK", peer, port, branch="z9hG4bK-uas-bye-ack", call_id="uas-bye", to_tag=tag), port)
    peer.send(sip_request("BYE", peer, port, branch="z9hG4bK-uas-bye-bye", call_id="uas-bye", to_tag=tag, cseq=2),
              port)
    bye = wait_event(eng, "request", pred=lambda e: e.message.method == "BYE")
    assert bye.dialog_id == did and bye.txn_id
    assert eng.respond(bye.txn_id, 200) == did
    assert peer.expect(is_status(200, "BYE")).nameaddr("To")["tag"] == tag
    assert wait_event(eng, "dialog_ended").dialog_id == did
    assert eng.counts()["dialogs"] == 0
    # a late in-dialog request now gets 481
    peer.send(sip_request("INFO", peer, port, branch="z9hG4bK-uas-bye-late", call_id="uas-bye", to_tag=tag, cseq=3),
              port)
    assert peer.expect(lambda m: not m.is_request and m.cseq[1] == "INFO").status == 481


def test_in_dialog_request_with_old_cseq_gets_500(engine, peer):
    eng, _, port = engine
    _, did = _uas_answered(eng, port, peer, "uas-cseq", "z9hG4bK-uas-cseq")
    tag = peer.expect(is_status(200)).nameaddr("To")["tag"]
    peer.send(sip_request("ACK", peer, port, branch="z9hG4bK-uas-cseq-ack", call_id="uas-cseq", to_tag=tag), port)
    peer.send(sip_request("INFO", peer, port, branch="z9hG4bK-uas-cseq-i5", call_id="uas-cseq", to_tag=tag, cseq=5),
              port)
    wait_event(eng, "request", pred=lambda e: e.message.method == "INFO")
    peer.send(sip_request("INFO", peer, port, branch="z9hG4bK-uas-cseq-i4", call_id="uas-cseq", to_tag=tag, cseq=4),
              port)
    assert peer.expect(lambda m: not m.is_request and m.cseq == (4, "INFO")).status == 500
    assert no_events(eng, 0.2, ("request",)) == []


def test_reinvite_2xx_is_acked_and_refreshes_the_remote_target(engine, peer):
    eng, tid, port = engine
    moved = Peer()
    try:
        _, inv = _uac_invite(eng, tid, port, peer, "reinvite")
        peer.send(sip_response(inv, 200, "OK", to_tag="re-tag", extra=f"Contact: <sip:bob@{HOST}:{peer.port}>"), port)
        peer.expect(is_method("ACK"))
        did = wait_event(eng, "response").dialog_id
        txn = eng.dialog_request(did, "INVITE", headers=[("Contact", f"<sip:engine@{HOST}:{port}>")], body=b"v=0\r\n")
        reinv = peer.expect(is_method("INVITE"))
        assert reinv.cseq == (2, "INVITE") and reinv.nameaddr("To")["tag"] == "re-tag"
        new_target = f"sip:bob@{HOST}:{moved.port}"
        ok = sip_response(reinv, 200, "OK", extra=f"Contact: <{new_target}>")
        peer.send(ok, port)
        ack = moved.expect(is_method("ACK"), what="the ACK at the refreshed target")
        assert ack.uri == new_target and ack.cseq == (2, "ACK")
        ev = wait_event(eng, "response")
        assert ev.txn_id == txn and ev.dialog_id == did
        assert eng.dialog_info(did)["remote_target"] == new_target
        peer.send(ok, port)  # retransmitted 2xx to the re-INVITE: same ACK, no event
        assert bytes(moved.expect(is_method("ACK"))) == bytes(ack)
        assert no_events(eng, 0.2, ("response",)) == []
        eng.dialog_request(did, "BYE")
        bye = moved.expect(is_method("BYE"), what="BYE at the refreshed target")
        assert bye.cseq == (3, "BYE")
    finally:
        moved.close()


def test_forked_2xx_from_two_uas_creates_two_dialogs_each_acked(engine, peer):
    eng, tid, port = engine
    other = Peer()
    try:
        _, inv = _uac_invite(eng, tid, port, peer, "forked")
        peer.send(sip_response(inv, 200, "OK", to_tag="fork-a", extra=f"Contact: <sip:a@{HOST}:{peer.port}>"), port)
        peer.send(sip_response(inv, 200, "OK", to_tag="fork-b", extra=f"Contact: <sip:b@{HOST}:{other.port}>"), port)
        assert peer.expect(is_method("ACK")).nameaddr("To")["tag"] == "fork-a"
        assert other.expect(is_method("ACK")).nameaddr("To")["tag"] == "fork-b"
        dids = {wait_event(eng, "response").dialog_id, wait_event(eng, "response").dialog_id}
        assert len(dids) == 2 and 0 not in dids
        assert eng.counts()["dialogs"] == 2
    finally:
        other.close()


def test_bye_without_answer_ends_the_dialog_after_timer_f(peer):
    eng = Eng(t1=0.01, t4=0.05)  # Timer F = 0.64 s
    try:
        tid, port = eng.listen_udp(HOST)
        _, inv = _uac_invite(eng, tid, port, peer, "bye-timeout")
        peer.send(sip_response(inv, 200, "OK", to_tag="gone", extra=f"Contact: <sip:b@{HOST}:{peer.port}>"), port)
        did = wait_event(eng, "response").dialog_id
        bye = eng.dialog_request(did, "BYE")
        rest: list[Ev] = []
        ended = wait_event(eng, "dialog_ended", timeout=3, others=rest)
        assert ended.dialog_id == did
        assert [(e.kind, e.txn_id, e.info) for e in rest] == [("timeout", bye, "Timer F")]
        assert eng.counts()["dialogs"] == 0, "a BYE that timed out must end the dialog (RFC 3261 15.1.1)"
    finally:
        eng.close()


def test_transport_error_ends_the_client_transaction(engine, peer):
    eng, tid, port = engine
    # a broadcast destination without SO_BROADCAST: sendto fails with EACCES
    txn = eng.request(tid, "255.255.255.255", 5060, "MESSAGE", "sip:peer@255.255.255.255",
                      headers=uac_headers(peer, port, "no-send", "MESSAGE"))
    ev = wait_event(eng, "transport_error")
    assert ev.txn_id == txn and "send failed" in ev.info
    assert wait_counts(eng, "transactions", 0, 0.5)["transactions"] == 0, \
        "a client transaction whose request cannot be sent ends at once (RFC 3261 17.1.4)"
    assert no_events(eng, 0.3, ("transport_error", "timeout")) == []


def test_responses_go_to_via_port_without_rport_and_to_source_with_rport(engine, peer):
    eng, _, port = engine
    other = Peer()
    try:
        # without rport: to the source address with the Via's port (RFC 3261 18.2.2)
        req = sip_request("OPTIONS", peer, port, branch="z9hG4bK-via-port").replace(
            f"{HOST}:{peer.port};branch=z9hG4bK-via-port;rport".encode(),
            f"{HOST}:{other.port};branch=z9hG4bK-via-port".encode())
        peer.send(req, port)
        eng.respond(wait_event(eng, "request").txn_id, 200)
        via = other.expect(is_status(200)).via[0]
        assert via.branch == "z9hG4bK-via-port" and via.received is None and via.rport is None
        assert peer.recv_raw(0.1) is None
        # with rport: back to the source port (RFC 3581), whatever the Via says
        req = sip_request("OPTIONS", peer, port, branch="z9hG4bK-rport").replace(
            f"{HOST}:{peer.port};".encode(), f"{HOST}:{other.port};".encode())
        peer.send(req, port)
        eng.respond(wait_event(eng, "request").txn_id, 200)
        resp = peer.expect(is_status(200))
        via = resp.via[0]
        assert via.rport == peer.port and via.received == HOST, "RFC 3581: rport and received filled in"
        assert via.branch == "z9hG4bK-rport" and via.port == other.port
        assert other.recv_raw(0.1) is None
    finally:
        other.close()


def test_response_keeps_every_via_and_marks_received_for_a_foreign_sent_by(engine, peer):
    eng, _, port = engine
    req = sip_request("OPTIONS", peer, port, branch="z9hG4bK-multi").replace(
        f"Via: SIP/2.0/UDP {HOST}:{peer.port};branch=z9hG4bK-multi;rport\r\n".encode(),
        (f"Via: SIP/2.0/UDP 192.0.2.9:{peer.port} ; branch=z9hG4bK-multi ; received=10.9.9.9 ;rport,"
         f" SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-second\r\n"
         f"Via: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-third\r\n").encode())
    peer.send(req, port)
    eng.respond(wait_event(eng, "request").txn_id, 200)
    resp = peer.expect(is_status(200))
    top = resp.via[0]
    assert (top.host, top.branch, top.received, top.rport) == \
        ("192.0.2.9", "z9hG4bK-multi", HOST, peer.port)
    assert [resp.via[i].branch for i in (1, 2)] == ["z9hG4bK-second", "z9hG4bK-third"]
    assert len(resp.via) == 3
    vias = [v for n, v in resp.headers if n.lower() in ("via", "v")]
    assert vias[1:] == ["SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-third"]
    assert vias[0].endswith(", SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-second")


# ---- malformed input ----

_RNG = random.Random(4475)
MALFORMED = {
    "garbage": b"hello, this is not SIP at all\r\n\r\n",
    "binary": bytes(range(256)) * 4,
    "random": _RNG.randbytes(512).replace(b"\r", b"").replace(b"\n", b""),
    "truncated_invite": b"INVITE sip:engine@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKtr\r\nFr",
    "content_length_too_large": (b"OPTIONS sip:engine@127.0.0.1 SIP/2.0\r\n"
                                 b"Via: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKcl\r\n"
                                 b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: cl\r\nCSeq: 1 OPTIONS\r\n"
                                 b"Content-Length: 5000\r\n\r\nshort"),
    "no_via": (b"OPTIONS sip:engine@127.0.0.1 SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
               b"Call-ID: nv\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
    "response_garbage_status": b"SIP/2.0 abc OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_datagram_gives_parse_error_and_engine_keeps_working(engine, peer, name):
    eng, _, port = engine
    peer.send(MALFORMED[name], port)
    ev = wait_event(eng, "parse_error")
    assert ev.info and (ev.src_host, ev.src_port) == (HOST, peer.port)
    assert eng.counts()["parse_errors"] >= 1
    peer.send(sip_request("OPTIONS", peer, port, branch=f"z9hG4bK-after-{name}"), port)
    req = wait_event(eng, "request")
    eng.respond(req.txn_id, 200)
    assert peer.expect(lambda m: True).status == 200


def test_many_malformed_datagrams_then_a_call_still_works(engine, peer):
    eng, _, port = engine
    junk = [MALFORMED[k] for k in sorted(MALFORMED)] * 20
    for i in range(200):
        junk.append(_RNG.randbytes(i % 300 + 1))
    for d in junk:
        peer.send(d, port)
    peer.send(sip_request("INVITE", peer, port, branch="z9hG4bK-after-junk"), port)
    assert peer.expect(is_status(100), timeout=3).via[0].branch == "z9hG4bK-after-junk"
    wait_event(eng, "request", timeout=3)
    assert eng.counts()["parse_errors"] >= 140


@pytest.mark.parametrize("missing", ["Call-ID", "CSeq"])
def test_request_missing_mandatory_header_gets_400(engine, peer, missing):
    eng, _, port = engine
    peer.send(sip_request("OPTIONS", peer, port, branch=f"z9hG4bK-miss-{missing}", omit=(missing,)), port)
    resp = peer.expect(lambda m: True, what="400")
    assert resp.status == 400
    assert resp.via[0].branch == f"z9hG4bK-miss-{missing}"
    assert wait_event(eng, "parse_error").info
    assert no_events(eng, 0.2, ("request",)) == []


# ---- argument checking ----

def test_bad_arguments_raise_with_messages(engine, peer):
    eng, tid, port = engine
    with pytest.raises(ValueError, match="numeric"):
        eng.listen_udp("localhost-not-an-ip")
    with pytest.raises(ValueError, match="wildcard"):
        eng.listen_udp("0.0.0.0")
    with pytest.raises(ValueError, match="70000"):
        eng.listen_udp(HOST, 70000)
    with pytest.raises(ValueError, match="NUL"):
        eng.listen_udp("127.0.0.1\0")
    hdrs = uac_headers(peer, port, "bad-args", "OPTIONS")
    uri = f"sip:peer@{HOST}"
    with pytest.raises(ValueError, match="port 0"):
        eng.request(tid, HOST, 0, "OPTIONS", uri, headers=hdrs)
    with pytest.raises(ValueError, match="70000"):
        eng.request(tid, HOST, 70000, "OPTIONS", uri, headers=hdrs)
    with pytest.raises(ValueError, match="numeric"):
        eng.request(tid, "example.com", 5060, "OPTIONS", uri, headers=hdrs)
    with pytest.raises(ValueError, match="address family"):
        eng.request(tid, "::1", 5060, "OPTIONS", uri, headers=hdrs)
    with pytest.raises(KeyError, match="transport"):
        eng.request(tid + 999, HOST, peer.port, "OPTIONS", uri, headers=hdrs)
    with pytest.raises(ValueError, match="CR or LF"):
        eng.request(tid, HOST, peer.port, "OPTIONS", uri, headers=hdrs + [("X-Evil", "a\r\nVia: injected")])
    with pytest.raises(ValueError, match="token"):
        eng.request(tid, HOST, peer.port, "OPTIONS", uri, headers=hdrs + [("Bad Name", "x")])
    with pytest.raises(ValueError, match="set by the engine"):
        eng.request(tid, HOST, peer.port, "OPTIONS", uri, headers=hdrs + [("Content-Length", "0")])
    with pytest.raises(ValueError, match="token"):
        eng.request(tid, HOST, peer.port, "OPT IONS", uri, headers=hdrs)
    with pytest.raises(ValueError, match="exceeds"):
        eng.request(tid, HOST, peer.port, "MESSAGE", uri, headers=uac_headers(peer, port, "big", "MESSAGE"),
                    body=b"x" * 70000)
    with pytest.raises(ValueError, match="Request-URI"):
        eng.request(tid, HOST, peer.port, "OPTIONS", "sip:a b", headers=hdrs)
    with pytest.raises(ValueError, match="CSeq"):
        eng.request(tid, HOST, peer.port, "OPTIONS", uri, headers=hdrs[:3] + [("CSeq", "1 INVITE")])
    with pytest.raises(TypeError, match="tuple"):
        eng.request(tid, HOST, peer.port, "OPTIONS", uri, headers=["From: x"])
    with pytest.raises(TypeError):
        eng.request(tid, HOST, peer.port, "OPTIONS", uri, headers=hdrs, body="not bytes")
    with pytest.raises(KeyError, match="server transaction"):
        eng.respond(424242, 200)
    with pytest.raises(KeyError, match="dialog"):
        eng.dialog_request(424242, "BYE")
    with pytest.raises(KeyError):
        eng.dialog_info(424242)
    with pytest.raises(KeyError, match="INVITE client transaction"):
        eng.cancel(424242)
    with pytest.raises(KeyError, match="transport"):
        eng.send_raw(tid + 999, HOST, peer.port, b"x")
    with pytest.raises(ValueError, match="port"):
        eng.send_raw(tid, HOST, 0, b"x")
    # nothing malformed went out
    assert peer.recv_raw(0.1) is None

    peer.send(sip_request("OPTIONS", peer, port, branch="z9hG4bK-bad-args"), port)
    ev = wait_event(eng, "request")
    for status in (99, 700, -1):
        with pytest.raises(ValueError, match="between 100 and 699"):
            eng.respond(ev.txn_id, status)
    with pytest.raises(ValueError, match="one line"):
        eng.respond(ev.txn_id, 200, "OK\r\nX: y")
    with pytest.raises(ValueError, match="CR or LF"):
        eng.respond(ev.txn_id, 200, headers=[("X-A", "b\nc")])
    eng.respond(ev.txn_id, 200)
    with pytest.raises(EngineError, match="final response 200"):
        eng.respond(ev.txn_id, 486)
    assert peer.expect(lambda m: True).status == 200
    assert peer.recv_raw(0.1) is None, "a second final response went out"
    with pytest.raises(ValueError):
        _core.Engine(t1=0)
    with pytest.raises(ValueError):
        _core.Engine(t1=1.0, t2=0.5)
    with pytest.raises(ValueError):
        _core.Engine(max_events=-1)


def test_close_twice_is_fine_and_calls_after_close_raise():
    eng = Eng(t1=T1)
    tid, _ = eng.listen_udp(HOST)
    eng.close()
    eng.close()
    for call in (lambda: eng.poll(0), eng.counts, lambda: eng.listen_udp(HOST),
                 lambda: eng.request(tid, HOST, 5060, "OPTIONS", "sip:x@127.0.0.1"),
                 lambda: eng.respond(1, 200), lambda: eng.dialog_request(1, "BYE"), lambda: eng.cancel(1),
                 lambda: eng.send_raw(tid, HOST, 5060, b"x"), lambda: eng.dialog_info(1), eng.fileno):
        with pytest.raises(EngineError, match="closed"):
            call()
    with _core.Engine(t1=T1) as e2:
        e2.listen_udp(HOST)
    with pytest.raises(EngineError):
        e2.counts()


def test_close_with_pending_transactions_and_events_frees_them(peer):
    eng = Eng(t1=T1)
    tid, port = eng.listen_udp(HOST)
    for i in range(20):
        eng.request(tid, HOST, peer.port, "INVITE", f"sip:p@{HOST}", headers=uac_headers(peer, port, f"pend-{i}"))
        peer.send(sip_request("INVITE", peer, port, branch=f"z9hG4bK-pend-{i}", call_id=f"in-{i}"), port)
    c = wait_counts(eng, "transactions", 40, 2.0)
    assert c["transactions"] == 40 and c["pending_events"] > 0
    eng.close()


# ---- load ----

def test_event_queue_bound_drops_and_counts():
    eng = Eng(t1=T1, max_events=10)
    p = Peer()
    try:
        tid, port = eng.listen_udp(HOST)
        for i in range(50):
            p.send(sip_request("OPTIONS", p, port, branch=f"z9hG4bK-q-{i}", call_id=f"q-{i}"), port)
        end = time.monotonic() + 3
        while eng.counts()["rx_messages"] < 50 and time.monotonic() < end:
            time.sleep(0.01)
        c = eng.counts()
        assert c["rx_messages"] == 50
        assert c["pending_events"] == 10
        assert c["events_dropped"] == 40
        evs = events(eng)
        assert len(evs) == 10 and all(e.kind == "request" for e in evs)
        for ev in evs:  # the queue works again once drained
            eng.respond(ev.txn_id, 200)
        assert len([m for _, m in p.collect(0.3) if not m.is_request]) == 10
        p.send(sip_request("OPTIONS", p, port, branch="z9hG4bK-q-after", call_id="q-after"), port)
        assert wait_event(eng, "request").message.header("Call-ID") == "q-after"
    finally:
        eng.close()
        p.close()


def test_500_options_between_two_transports_all_answered():
    eng = Eng()  # default T1: no retransmissions expected while the test keeps up
    try:
        a_tid, a_port = eng.listen_udp(HOST)
        b_tid, b_port = eng.listen_udp(HOST)
        n = 500
        start = time.monotonic()
        sent = set()
        for i in range(n):
            sent.add(eng.request(a_tid, HOST, b_port, "OPTIONS", f"sip:b@{HOST}:{b_port}",
                                 headers=[("From", f"<sip:a@{HOST}>;tag=a{i}"), ("To", f"<sip:b@{HOST}>"),
                                          ("Call-ID", f"load-{i}"), ("CSeq", "1 OPTIONS")]))
        assert len(sent) == n
        answered: dict[int, int] = {}
        requests = 0
        end = time.monotonic() + 20
        while len(answered) < n and time.monotonic() < end:
            for ev in events(eng, 0.5):
                if ev.kind == "request":
                    assert ev.transport_id == b_tid
                    requests += 1
                    eng.respond(ev.txn_id, 200)
                elif ev.kind == "response":
                    assert ev.transport_id == a_tid
                    answered[ev.txn_id] = ev.status
                else:
                    pytest.fail(f"unexpected event {ev.kind}: {ev.info}")
        elapsed = time.monotonic() - start
        print(f"\n500 OPTIONS transactions answered in {elapsed * 1000:.0f} ms "
              f"({n / elapsed:.0f} transactions/s), retransmissions {eng.counts()['retransmissions']}")
        assert requests == n
        assert set(answered) == sent and set(answered.values()) == {200}
    finally:
        eng.close()
