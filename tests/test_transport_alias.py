"""Stream transports: connection reuse by Via ``;alias`` (RFC 5923) and the bound on accepted connections
(``listen_tcp/listen_tls(max_connections=N)``), on loopback with raw sockets as the peer so that every
byte and every connect is seen from the wire."""
from __future__ import annotations

import select
import socket
import time

import pytest

from pysiptest import _core
from pysiptest.sut._proc import wait_until
from transport_util import core, hostport, loopback, make_pki, ooo_headers, recv_until, wait_event  # noqa: F401 (core: fixture)

FAMILIES = ["ipv4", "ipv6"]


def _closed_by_peer(s: socket.socket, timeout: float = 2.0) -> bool:
    """True when the peer closed s (EOF or reset) within timeout."""
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        return False
    try:
        return s.recv(65535) == b""
    except ConnectionResetError:
        return True


def _options(host: str, port: int, call_id: str, via: str) -> bytes:
    return (f"OPTIONS sip:b@{hostport(host, port)};transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {via};branch=z9hG4bK{call_id}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def _listener(host: str) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.bind((host, 0))
    ls.listen(8)
    return ls


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("alias", [True, False])
def test_via_alias_makes_requests_to_the_peer_reuse_its_connection(family, alias, core) -> None:
    host = loopback(family)
    a = core()
    ta, pa = a.listen_tcp(host)
    ls = _listener(host)  # the peer's listening port, named in its Via sent-by
    peer_port = ls.getsockname()[1]
    s = socket.create_connection((host, pa), timeout=2)
    try:
        via = hostport(host, peer_port) + (";alias" if alias else "")
        s.sendall(_options(host, pa, "alias1", via))
        a.respond(wait_event(a, "request").txn_id, 200, None, [])
        assert b"SIP/2.0 200" in recv_until(s, b"\r\n\r\n")
        # a request from a to the Via's sent-by: on the accepted connection with alias, else a new connection
        a.request(ta, host, peer_port, "OPTIONS", f"sip:peer@{hostport(host, peer_port)}", ooo_headers("alias2"))
        got = recv_until(s, b"\r\n\r\n", timeout=1.0 if alias else 0.5)
        r, _, _ = select.select([ls], [], [], 0.5 if alias else 2.0)
        if alias:
            assert got.startswith(b"OPTIONS sip:peer@"), got[:80]
            assert not r, "a second connection was opened although the Via carried ;alias"
            assert a.counts()["connections"] == 1
        else:
            assert got == b""
            assert r, "without ;alias the request must open a connection to the sent-by port"
            c, _ = ls.accept()
            c.settimeout(2)
            try:
                assert recv_until(c, b"\r\n\r\n").startswith(b"OPTIONS sip:peer@")
                assert a.counts()["connections"] == 2
            finally:
                c.close()
    finally:
        s.close()
        ls.close()


def test_alias_connection_closing_ends_the_reuse(core) -> None:
    host = "127.0.0.1"
    a = core()
    ta, pa = a.listen_tcp(host)
    ls = _listener(host)
    peer_port = ls.getsockname()[1]
    s = socket.create_connection((host, pa), timeout=2)
    s.sendall(_options(host, pa, "alias3", f"{host}:{peer_port};alias"))
    a.respond(wait_event(a, "request").txn_id, 200, None, [])
    recv_until(s, b"\r\n\r\n")
    s.close()
    wait_until(lambda: a.counts()["connections"] == 0, 2, what="the closed connection to go")
    a.request(ta, host, peer_port, "OPTIONS", f"sip:peer@{host}:{peer_port}", ooo_headers("alias4"))
    r, _, _ = select.select([ls], [], [], 2.0)
    assert r, "after the aliased connection closed, a request must open a new connection"
    c, _ = ls.accept()
    c.close()
    ls.close()


def test_connection_limit_closes_the_least_recently_active_idle_connection(core) -> None:
    host = "127.0.0.1"
    a = core()
    _, pa = a.listen_tcp(host, max_connections=2)
    s1 = socket.create_connection((host, pa), timeout=2)
    s2 = socket.create_connection((host, pa), timeout=2)
    s3 = None
    try:
        wait_until(lambda: a.counts()["connections"] == 2, 2, what="two accepted connections")
        time.sleep(0.05)  # activity times are in ms: the ping must come later than s2's accept
        s1.sendall(b"\r\n\r\n")  # a keep-alive ping: s1 is now more recently active than s2
        assert recv_until(s1, b"\r\n", 2.0) == b"\r\n"
        time.sleep(0.05)
        s3 = socket.create_connection((host, pa), timeout=2)
        assert _closed_by_peer(s2), "the least recently active connection (s2) was not closed"
        ev = wait_event(a, "transport_error")
        assert "connection limit 2 reached" in ev.info and "closed the least recently active" in ev.info, ev.info
        assert a.counts()["conn_limit_hits"] == 1
        # s1 and s3 both work
        for s in (s1, s3):
            s.sendall(b"\r\n\r\n")
            assert recv_until(s, b"\r\n", 2.0) == b"\r\n"
        assert a.counts()["connections"] == 2
    finally:
        for s in (s1, s2, s3):
            if s is not None:
                s.close()


def test_connection_limit_refuses_when_every_connection_is_busy(core, tmp_path) -> None:
    """Connections still in their TLS handshake are busy: at the bound a new one is refused (closed at once)."""
    host = "127.0.0.1"
    pki = make_pki(tmp_path)
    a = core()
    _, pa = a.listen_tls(host, max_connections=2, cert=str(pki.cert), key=str(pki.key), ca_file=str(pki.ca))
    socks = [socket.create_connection((host, pa), timeout=2) for _ in range(2)]
    try:
        wait_until(lambda: a.counts()["connections"] == 2, 2, what="two accepted connections")
        s3 = socket.create_connection((host, pa), timeout=2)
        socks.append(s3)
        assert _closed_by_peer(s3), "the connection over the bound was not refused"
        ev = wait_event(a, "transport_error")
        assert "TLS connection limit 2 reached" in ev.info and "refused the connection" in ev.info, ev.info
        assert not _closed_by_peer(socks[0], 0.2) and not _closed_by_peer(socks[1], 0.2)
        assert a.counts()["connections"] == 2
        # one event for a run of hits, every hit counted
        s4 = socket.create_connection((host, pa), timeout=2)
        socks.append(s4)
        assert _closed_by_peer(s4)
        assert a.counts()["conn_limit_hits"] == 2
        assert [e for e in (tuple(x) for x in a.poll(timeout=0.2)) if e[0] == "transport_error"] == []
    finally:
        for s in socks:
            s.close()


def test_max_connections_out_of_range_is_a_clear_error(core) -> None:
    a = core()
    with pytest.raises(ValueError, match="max_connections"):
        a.listen_tcp("127.0.0.1", max_connections=-1)


def test_a_burst_of_requests_on_one_connection_gets_every_response(core) -> None:
    """One loop iteration may read thousands of requests from one connection; their responses, more than the
    1 MiB write queue holds, must all arrive (the batch is written out every 64 KiB, not only at the end)."""
    import threading

    host = "127.0.0.1"
    a = core()
    ta, pa = a.listen_tcp(host)
    a.set_profile(ta, auto_200=["OPTIONS"], summary=False)
    n = 8000
    burst = b"".join(_options(host, pa, f"burst{i}", f"{host}:5999") for i in range(n))
    s = socket.create_connection((host, pa), timeout=5)
    got = bytearray()
    done = threading.Event()

    def reader() -> None:
        end = time.monotonic() + 30
        while got.count(b"SIP/2.0 200") < n and time.monotonic() < end:
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                chunk = s.recv(262144)
                if not chunk:
                    break
                got.extend(chunk)
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        s.sendall(burst)
        done.wait(35)
        assert got.count(b"SIP/2.0 200") == n
        assert len(burst) > 1_000_000 and len(got) > 1_048_576  # more than one queue's worth each way
    finally:
        s.close()
        t.join(5)
