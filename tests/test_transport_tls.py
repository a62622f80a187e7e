"""TLS (RFC 3261 26.3.1, sips: URIs) in the engine through OpenSSL: phone-to-phone calls over IPv4 and
IPv6 with peer verification, a bad certificate named by OpenSSL's reason, the logged opt-out, client
certificates, SNI, and interop with ``openssl s_server``.  Certificates come from a throw-away PKI."""
from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, IncomingCall, Phone, _core
from pysiptest.sut._proc import free_port, wait_until
from pysiptest.transport import TlsConfig
from transport_util import Pki, core, hostport, loopback, make_pki, ooo_headers, wait_event  # noqa: F401 (core: fixture)

FAMILIES = ["ipv4", "ipv6"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls(pki: Pki, **kw) -> TlsConfig:
    return TlsConfig(cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca), **kw)


@pytest.mark.parametrize("family", FAMILIES)
def test_phone_calls_phone_over_tls_with_verified_certificates_and_sips_contact(family, pki) -> None:
    host = loopback(family)
    with Engine(t1=0.1) as eng:
        dev = Device()
        dev.auto_answer_after = 0  # type: ignore[misc]
        bob = Phone("bob", dev, engine=eng, host=host, transport="tls", tls=_tls(pki))
        alice = Phone("alice", engine=eng, host=host, transport="tls", tls=_tls(pki), proxy=(host, bob.port))
        assert alice.contact_uri == f"sips:alice@{hostport(host, alice.port)}"
        call = alice.call(bob)
        inc = bob.expect(IncomingCall, timeout=3)
        assert inc.call is not None
        alice.expect(Answered, timeout=3)
        call.hangup()
        alice.expect(CallEnded, timeout=3)
        bob.expect(CallEnded, timeout=3)
        c = eng.core.counts()
        assert c["retransmissions"] == 0 and c["connections"] >= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_untrusted_server_certificate_is_a_transport_error_naming_openssls_reason(family, pki, core) -> None:
    host = loopback(family)
    a, b = core(), core()
    ta, _ = a.listen_tls(host, cert=str(pki.cert), key=str(pki.key), ca_file=str(pki.ca))
    tb, pb = b.listen_tls(host, cert=str(pki.rogue_cert), key=str(pki.rogue_key), ca_file=str(pki.ca))
    t0 = time.monotonic()
    txn = a.request(ta, host, pb, "INVITE", f"sips:b@{hostport(host, pb)}", ooo_headers("rogue", "INVITE"))
    ev = wait_event(a, "transport_error", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.txn_id == txn and "certificate verify failed" in ev.info and "self-signed" in ev.info, ev
    assert a.counts()["transactions"] == 0 and a.counts()["connections"] == 0


def test_phone_call_to_untrusted_peer_ends_with_503_and_transport_error(pki) -> None:
    with Engine(t1=0.1) as eng:
        rogue = Phone("rogue", engine=eng, transport="tls",
                      tls=TlsConfig(cert=str(pki.rogue_cert), key=str(pki.rogue_key), ca=str(pki.ca)))
        alice = Phone("alice", engine=eng, transport="tls", tls=_tls(pki), proxy=("127.0.0.1", rogue.port))
        alice.call(rogue)
        ended = alice.expect(CallEnded, timeout=2)
        assert ended.status == 503 and "certificate verify failed" in ended.reason, ended


def test_verify_false_accepts_an_untrusted_peer_and_logs_a_warning(pki, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pysiptest.engine")
    with Engine(t1=0.1) as eng:
        dev = Device()
        dev.auto_answer_after = 0  # type: ignore[misc]
        rogue = Phone("rogue", dev, engine=eng, transport="tls",
                      tls=TlsConfig(cert=str(pki.rogue_cert), key=str(pki.rogue_key), verify=False))
        alice = Phone("alice", engine=eng, transport="tls", tls=_tls(pki, verify=False),
                      proxy=("127.0.0.1", rogue.port))
        call = alice.call(rogue)
        alice.expect(Answered, timeout=3)
        call.hangup()
        alice.expect(CallEnded, timeout=3)
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_server_requiring_client_certificate_refuses_a_client_without_one(pki, core) -> None:
    a, b, c = core(), core(), core()
    tb, pb = b.listen_tls("127.0.0.1", cert=str(pki.cert), key=str(pki.key), ca_file=str(pki.ca),
                          require_client_cert=True)
    ta, _ = a.listen_tls("127.0.0.1", ca_file=str(pki.ca))  # no certificate of its own
    a.request(ta, "127.0.0.1", pb, "OPTIONS", "sips:b@127.0.0.1", ooo_headers("nocert"))
    ev = wait_event(a, "transport_error", timeout=1.0)
    assert "certificate required" in ev.info or "handshake" in ev.info, ev
    # with a client certificate signed by the trusted CA the same request goes through
    tc, _ = c.listen_tls("127.0.0.1", cert=str(pki.cert), key=str(pki.key), ca_file=str(pki.ca))
    c.request(tc, "127.0.0.1", pb, "OPTIONS", "sips:b@127.0.0.1", ooo_headers("withcert"))
    req = wait_event(b, "request", pred=lambda e: e.message.header("Call-ID") == "withcert")
    b.respond(req.txn_id, 200, None, [])
    assert wait_event(c, "response").status == 200


def test_sni_names_the_server_and_its_certificate_name_is_verified(pki, core) -> None:
    """A Python ssl server records the SNI; the engine verifies the DNS name instead of the IP."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.cert), str(pki.key))
    names: list[str | None] = []
    ctx.sni_callback = lambda sock, name, c: names.append(name)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            s.settimeout(2)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            got.append(data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    a = core()
    ta, _ = a.listen_tls("127.0.0.1", ca_file=str(pki.ca), server_name="sip.example.test")
    a.request(ta, "127.0.0.1", port, "OPTIONS", "sips:b@sip.example.test", ooo_headers("sni"))
    t.join(3)
    srv.close()
    assert names == ["sip.example.test"]
    assert got and got[0].startswith(b"OPTIONS sips:b@sip.example.test SIP/2.0\r\n"), got


def test_wrong_server_name_fails_hostname_verification(pki, core) -> None:
    a, b = core(), core()
    tb, pb = b.listen_tls("127.0.0.1", cert=str(pki.cert), key=str(pki.key))
    ta, _ = a.listen_tls("127.0.0.1", ca_file=str(pki.ca), server_name="other.example.test")
    a.request(ta, "127.0.0.1", pb, "OPTIONS", "sips:b@other.example.test", ooo_headers("badname"))
    ev = wait_event(a, "transport_error", timeout=1.0)
    assert "certificate verify failed" in ev.info and "hostname mismatch" in ev.info, ev


@pytest.mark.requires_binary("openssl")
@pytest.mark.parametrize("family", FAMILIES)
def test_openssl_s_server_completes_the_handshake_and_receives_the_request(family, pki, core, tmp_path) -> None:
    host = loopback(family)
    port = free_port(host, udp=False)
    log = tmp_path / "s_server.log"
    # s_server ends at EOF on its stdin: give it a pipe that stays open
    out = open(log, "wb")
    proc = subprocess.Popen(["openssl", "s_server", "-accept", hostport(host, port), "-cert", str(pki.cert),
                             "-key", str(pki.key), "-naccept", "1"], stdin=subprocess.PIPE, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "ACCEPT" in log.read_text(errors="replace"), 5, what="s_server to listen")
        a = core()
        ta, _ = a.listen_tls(host, ca_file=str(pki.ca))
        a.request(ta, host, port, "OPTIONS", f"sips:b@{hostport(host, port)}", ooo_headers("s_server"))
        wait_until(lambda: "CSeq: 1 OPTIONS" in log.read_text(errors="replace"), 3,
                   what="the OPTIONS in s_server's output")
        text = log.read_text(errors="replace")
        assert f"OPTIONS sips:b@{hostport(host, port)} SIP/2.0" in text
        assert "Via: SIP/2.0/TLS " in text
        assert a.counts()["connections"] == 1
    finally:
        proc.kill()
        proc.wait(3)
        out.close()
