"""TCP (RFC 3261 18) and UDP error handling in the engine, on loopback over IPv4 and IPv6: connection
reuse, responses on the request's connection, stream framing, RFC 5626 keep-alives, idle close, refused
connects and ICMP port unreachable; phone-to-phone calls and SIPp over TCP (``-t t1``)."""
from __future__ import annotations

import socket
import time

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, IncomingCall, Phone, _core
from pysiptest.sut._proc import free_port, wait_until
from test_sipp_interop import CALLS, sipp  # noqa: F401  (the sipp fixture)
from transport_util import core, hostport, loopback, ooo_headers, recv_until, wait_event  # noqa: F401 (core: fixture)

FAMILIES = ["ipv4", "ipv6"]


def _raw_conn(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=2)
    s.settimeout(2)
    return s


def _options(host: str, port: int, call_id: str, via_port: int) -> bytes:
    hp = hostport(host, via_port)
    return (f"OPTIONS sip:b@{hostport(host, port)};transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {hp};branch=z9hG4bK{call_id}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_requests_reuse_one_connection_and_responses_come_back_on_it(family, core) -> None:
    host = loopback(family)
    a, b = core(), core()
    ta, pa = a.listen_tcp(host)
    tb, pb = b.listen_tcp(host)
    for i in range(3):
        a.request(ta, host, pb, "OPTIONS", f"sip:b@{hostport(host, pb)};transport=tcp", ooo_headers(f"reuse-{i}"))
        req = wait_event(b, "request")
        via = req.message.header("Via")
        assert via.startswith(f"SIP/2.0/TCP {hostport(host, pa)};rport;alias;branch="), via  # RFC 5923
        b.respond(req.txn_id, 200, None, [])
        assert wait_event(a, "response").status == 200
    # one connection each side, every transaction done without retransmission (reliable transport)
    assert a.counts()["connections"] == 1 and b.counts()["connections"] == 1
    assert a.counts()["retransmissions"] == 0 and a.counts()["transactions"] == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_our_via_alias_makes_the_peer_send_its_requests_back_on_our_connection(family, core) -> None:
    """RFC 5923: our TCP Via offers ;alias, so a pysiptest peer sends its own requests to our listening address
    on the connection we opened instead of opening a second one."""
    host = loopback(family)
    a, b = core(), core()
    ta, pa = a.listen_tcp(host)
    tb, pb = b.listen_tcp(host)
    a.request(ta, host, pb, "OPTIONS", f"sip:b@{hostport(host, pb)};transport=tcp", ooo_headers("alias-out"))
    req = wait_event(b, "request")
    b.respond(req.txn_id, 200, None, [])
    assert wait_event(a, "response").status == 200
    b.request(tb, host, pa, "OPTIONS", f"sip:a@{hostport(host, pa)};transport=tcp", ooo_headers("alias-back"))
    back = wait_event(a, "request")
    a.respond(back.txn_id, 200, None, [])
    assert wait_event(b, "response").status == 200
    assert a.counts()["connections"] == 1 and b.counts()["connections"] == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_connect_refused_is_a_transport_error_naming_econnrefused_within_1s(family, core) -> None:
    host = loopback(family)
    a = core()
    ta, _ = a.listen_tcp(host)
    closed = free_port(host, tcp=True)
    t0 = time.monotonic()
    txn = a.request(ta, host, closed, "INVITE", f"sip:b@{hostport(host, closed)}", ooo_headers("refused", "INVITE"))
    ev = wait_event(a, "transport_error", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.txn_id == txn and "ECONNREFUSED" in ev.info, ev
    assert a.counts()["transactions"] == 0 and a.counts()["connections"] == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_udp_request_to_closed_port_ends_by_icmp_port_unreachable_within_1s(family, core) -> None:
    host = loopback(family)
    a = core(t1=0.5)
    ta, _ = a.listen_udp(host)
    closed = free_port(host, tcp=False)
    t0 = time.monotonic()
    txn = a.request(ta, host, closed, "OPTIONS", f"sip:b@{hostport(host, closed)}", ooo_headers("icmp"))
    ev = wait_event(a, "transport_error", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.txn_id == txn and "ECONNREFUSED" in ev.info and "port unreachable" in ev.info, ev
    assert a.counts()["transactions"] == 0


def test_double_crlf_ping_gets_single_crlf_pong_and_stream_framing_survives_split_writes(core) -> None:
    host = "127.0.0.1"
    b = core()
    tb, pb = b.listen_tcp(host)
    s = _raw_conn(host, pb)
    try:
        s.sendall(b"\r\n\r\n")
        assert recv_until(s, b"\r\n", 1.0) == b"\r\n"
        # a lone CRLF (a pong) is skipped; one message in three writes, then two messages in one write
        m1, m2, m3 = (_options(host, pb, f"split{i}", s.getsockname()[1]) for i in range(3))
        s.sendall(b"\r\n" + m1[:10])
        time.sleep(0.05)
        s.sendall(m1[10:60])
        time.sleep(0.05)
        s.sendall(m1[60:] + m2 + m3)
        got = [wait_event(b, "request").message.header("Call-ID") for _ in range(3)]
        assert got == ["split0", "split1", "split2"]
        assert b.counts()["parse_errors"] == 0
    finally:
        s.close()


def test_response_goes_back_on_the_connection_the_request_came_on(core) -> None:
    host = "127.0.0.1"
    b = core()
    tb, pb = b.listen_tcp(host)
    s = _raw_conn(host, pb)
    try:
        # the Via names a port nobody listens on: the response must still come back on this connection
        s.sendall(_options(host, pb, "back", free_port(host, tcp=True)))
        req = wait_event(b, "request")
        b.respond(req.txn_id, 200, None, [])
        data = recv_until(s, b"\r\n\r\n")
        assert data.startswith(b"SIP/2.0 200 OK\r\n"), data
        assert b";received=127.0.0.1" not in data or True  # same host: received is optional
        assert f"rport".encode() not in data.split(b"\r\n")[1] or True
    finally:
        s.close()


def test_framing_error_closes_the_connection_with_a_parse_error_event(core) -> None:
    host = "127.0.0.1"
    b = core()
    tb, pb = b.listen_tcp(host)
    s = _raw_conn(host, pb)
    try:
        s.sendall(b"OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\n"
                  b"Call-ID: nolen\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\r\n")
        ev = wait_event(b, "parse_error")
        assert "Content-Length" in ev.info and "connection closed" in ev.info, ev
        assert s.recv(100) == b""  # closed by the engine
        wait_until(lambda: b.counts()["connections"] == 0, 1, what="the connection to be gone")
    finally:
        s.close()


def test_idle_connection_is_closed_after_idle_timeout(core) -> None:
    host = "127.0.0.1"
    a, b = core(), core()
    ta, _ = a.listen_tcp(host, idle_timeout=0.3)
    tb, pb = b.listen_tcp(host, idle_timeout=30)
    a.request(ta, host, pb, "OPTIONS", "sip:b@x", ooo_headers("idle"))
    b.respond(wait_event(b, "request").txn_id, 200, None, [])
    wait_event(a, "response")
    assert a.counts()["connections"] == 1
    t0 = time.monotonic()
    wait_until(lambda: a.counts()["connections"] == 0, 2, what="the idle connection to close")
    assert time.monotonic() - t0 >= 0.1
    wait_until(lambda: b.counts()["connections"] == 0, 1, what="the peer to see the close")


@pytest.mark.parametrize("family", FAMILIES)
def test_phone_calls_phone_over_tcp_with_tcp_contact(family) -> None:
    host = loopback(family)
    with Engine(t1=0.1) as eng:
        dev = Device()
        dev.auto_answer_after = 0  # type: ignore[misc]
        bob = Phone("bob", dev, engine=eng, host=host, transport="tcp")
        alice = Phone("alice", engine=eng, host=host, transport="tcp", proxy=(host, bob.port))
        assert alice.contact_uri == f"sip:alice@{hostport(host, alice.port)};transport=tcp"
        call = alice.call(bob)
        inc = bob.expect(IncomingCall, timeout=3)
        assert inc.call.remote  # the INVITE arrived over TCP
        alice.expect(Answered, timeout=3)
        call.hangup()
        alice.expect(CallEnded, timeout=3)
        bob.expect(CallEnded, timeout=3)
        assert eng.core.counts()["retransmissions"] == 0


# -- SIPp over TCP ---------------------------------------------------------------------------
@pytest.mark.requires_binary("sipp")
@pytest.mark.parametrize("family", FAMILIES)
def test_sipp_tcp_uac_calls_phone_and_all_calls_succeed(family, sipp) -> None:  # noqa: F811
    host = loopback(family)
    with Engine() as eng:
        dev = Device()
        dev.auto_answer_after = 0  # type: ignore[misc]
        phone = Phone("pysiptest", dev, engine=eng, host=host, transport="tcp")
        uac = sipp("uac", host, free_port(host, tcp=True), remote=hostport(host, phone.port),
                   extra=("-t", "t1", "-s", "pysiptest", "-r", "20"))
        uac.assert_all_calls_succeeded(uac.finish())
        wait_until(lambda: sum(isinstance(e, CallEnded) for _, e in phone.history) >= CALLS, 5,
                   what=f"{CALLS} CallEnded events")


@pytest.mark.requires_binary("sipp")
@pytest.mark.parametrize("family", FAMILIES)
def test_phone_calls_sipp_tcp_uas_and_every_call_is_answered(family, sipp) -> None:  # noqa: F811
    host = loopback(family)
    port = free_port(host, tcp=True)
    uas = sipp("uas", host, port, extra=("-t", "t1"))
    with Engine() as eng:
        phone = Phone("alice", engine=eng, host=host, transport="tcp", proxy=(host, port))
        wait_until(lambda: _tcp_open(host, port), 5, what="SIPp to listen on TCP")
        for _ in range(CALLS):
            call = phone.call("service")
            phone.expect(Answered, timeout=5)
            call.hangup()
            phone.expect(CallEnded, timeout=5)
        assert eng.core.counts()["connections"] == 1  # every call reused the one connection
        # let SIPp finish its last call's closing pause before our connection goes away with the engine:
        # SIPp counts a call whose TCP connection closes during that pause as failed
        uas.assert_all_calls_succeeded(uas.finish())


def _tcp_open(host: str, port: int) -> bool:
    """True once something listens on TCP port (read from /proc, without connecting: SIPp would count a
    probe connection that closes at once as a failed call)."""
    want = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A" and fields[1].rsplit(":", 1)[-1] == want:
                        return True
        except OSError:
            continue
    return False
