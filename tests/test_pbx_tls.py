"""The reference PBX with a TLS listener (RFC 3261 26.3.1): phones register and call over TLS, the PBX calls
them back over their connection with a ``sips:`` Contact, and a TLS phone can call a UDP phone through it."""
from __future__ import annotations

from pathlib import Path

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, Phone, RequestReceived, ResponseReceived
from pysiptest.sut import ReferencePbxSut
from pysiptest.sut._proc import wait_until
from pysiptest.transport import TlsConfig
from transport_util import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_pbx(pki: Pki):
    with ReferencePbxSut(tls_cert=pki.cert, tls_key=pki.key, tls_ca=pki.ca) as sut:
        yield sut


def _tls_phone(eng: Engine, pbx: ReferencePbxSut, pki: Pki, user: str) -> Phone:
    dev = Device()
    dev.ring_delay = None  # type: ignore[misc]
    p = Phone(user, dev, engine=eng, transport="tls", proxy=(pbx.host, pbx.tls_port),
              tls=TlsConfig(cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca)))
    p.register(timeout=5)
    return p


def test_call_between_two_tls_phones_goes_over_tls_with_sips_contacts(tls_pbx: ReferencePbxSut, pki: Pki) -> None:
    pbx = tls_pbx.pbx
    assert pbx is not None and pbx.tls_transport_id is not None and tls_pbx.tls_port not in (0, tls_pbx.port)
    with Engine() as eng:
        alice, bob = _tls_phone(eng, tls_pbx, pki, "alice"), _tls_phone(eng, tls_pbx, pki, "bob")
        (binding,) = pbx.registrar.lookup("bob")
        assert binding.transport_id == pbx.tls_transport_id and binding.contact.startswith("sips:bob@")
        out = alice.call("bob")
        inc = bob.wait_for_call(5)
        req = inc.request
        assert req.header("Via").startswith("SIP/2.0/TLS ")
        assert req.header("Contact") == f"<sips:pbx@{tls_pbx.tls_target}>"
        inc.answer()
        ok = alice.expect(Answered, 5, call=out)
        assert ok is not None
        bob.expect(Answered, 5, call=inc)
        inc.hangup()  # the BYE crosses the PBX over TLS on both legs
        bye = alice.expect(RequestReceived, 5, method="BYE").message
        assert bye.header("Via").startswith("SIP/2.0/TLS ")
        alice.expect(CallEnded, 5, call=out)


def test_tls_phone_calls_a_udp_phone_and_each_leg_gets_its_own_contact(tls_pbx: ReferencePbxSut, pki: Pki) -> None:
    with Engine() as eng:
        alice = _tls_phone(eng, tls_pbx, pki, "alice")
        dev = Device()
        dev.ring_delay = None  # type: ignore[misc]
        carol = Phone("carol", dev, engine=eng, proxy=(tls_pbx.host, tls_pbx.port))
        carol.register(timeout=5)
        out = alice.call("carol")
        inc = carol.wait_for_call(5)
        assert inc.request.header("Via").startswith("SIP/2.0/UDP ")
        assert inc.request.header("Contact") == f"<sip:pbx@{tls_pbx.host}:{tls_pbx.port}>"
        inc.answer()
        ok = alice.expect(ResponseReceived, 5, method="INVITE", status=200).message
        assert ok.header("Contact") == f"<sips:pbx@{tls_pbx.tls_target}>", "Alice's leg is TLS: sips: Contact"
        alice.expect(Answered, 5, call=out)
        out.hangup()
        carol.expect(CallEnded, 5, call=inc)


def test_tls_needs_certificate_and_key(engine: Engine) -> None:
    from pysiptest.pbx import ReferencePBX

    with pytest.raises(ValueError, match="certificate and a key"):
        ReferencePBX(engine, tls=TlsConfig())
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        ReferencePbxSut(tls_cert="x.pem")


def test_cli_pbx_listens_on_tls(run_cli, pki: Pki, tmp_path: Path) -> None:
    from pysiptest.sut._proc import free_port

    port, tls_port = free_port(), free_port()
    proc = run_cli("pbx", "--listen", f"127.0.0.1:{port}", "--tls", f"127.0.0.1:{tls_port}",
                   "--cert", str(pki.cert), "--key", str(pki.key), "--ca", str(pki.ca))
    proc.wait_for(rf"TLS on 127\.0\.0\.1:{tls_port}")
    with Engine() as eng:
        p = Phone("alice", engine=eng, transport="tls", proxy=("127.0.0.1", tls_port),
                  tls=TlsConfig(cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca)))
        assert p.register(timeout=5).expires > 0
    assert proc.stop() == 0


def test_cli_pbx_tls_without_a_key_is_a_one_line_error(run_cli, pki: Pki) -> None:
    proc = run_cli("pbx", "--listen", "127.0.0.1:15393", "--tls", "127.0.0.1:15394", "--cert", str(pki.cert))
    proc.wait_for(r"error: --tls HOST:PORT needs --cert and --key")
    wait_until(lambda: not proc.proc.alive(), 10, what="the command exits")
    assert proc.stop() == 2
