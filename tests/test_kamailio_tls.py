"""TLS interop with Kamailio 5.6's TLS listener (tls.so, Debian ``kamailio-tls-modules``): pysiptest phones
register over TLS with peer verification against a self-signed certificate, call each other through
Kamailio (sips: Contacts; Kamailio opens its own TLS connection to the callee), and a phone that trusts
the wrong CA fails with a transport error naming OpenSSL's verification result."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, IncomingCall, Phone, TransportError
from pysiptest.sut.kamailio import Kamailio
from pysiptest.transport import TlsConfig

TLS_MODULE = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so")

pytestmark = [
    pytest.mark.requires_binary("kamailio", "openssl"),
    pytest.mark.skipif(not any(Path(d, "tls.so").is_file() for d in (
        TLS_MODULE.parent, "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules")),
        reason="Kamailio's tls module is not installed (apt-get install kamailio-tls-modules)"),
]


def _self_signed(d: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1 (subjectAltName IP) and its key."""
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("kamailio-tls")
    return {"server": _self_signed(d, "kamailio"), "wrong": _self_signed(d, "someone-else")}


@pytest.fixture(scope="module")
def kamailio(certs) -> Iterator[Kamailio]:
    cert, key = certs["server"]
    kam = Kamailio(tls_cert=cert, tls_key=key)
    kam.start()
    try:
        yield kam
    finally:
        kam.stop()


def _phone(user: str, eng: Engine, kam: Kamailio, ca: Path, cert: tuple[Path, Path],
           device: Device | None = None) -> Phone:
    """A TLS phone whose proxy is Kamailio's TLS port; it verifies Kamailio against ``ca`` and serves
    ``cert`` to Kamailio's connections to its Contact."""
    tls = TlsConfig(cert=str(cert[0]), key=str(cert[1]), ca=str(ca))
    return Phone(user, device, engine=eng, transport="tls", tls=tls, proxy=(kam.host, kam.tls_port))


def test_default_config_has_no_tls_listener() -> None:
    kam = Kamailio()
    kam.workdir = Path("/nonexistent")
    if shutil.which(kam.binary) is None:
        pytest.skip("kamailio is not installed")
    argv = kam.command()
    assert not kam.tls and "WITH_TLS" not in argv and not any(a.startswith("TLS_") for a in argv)


def test_phones_register_and_call_each_other_through_kamailio_over_tls(kamailio, certs) -> None:
    server_cert = certs["server"][0]
    assert (kamailio.workdir / "tls.cfg").is_file()
    with Engine(t1=0.1) as eng:
        dev = Device()
        dev.auto_answer_after = 0  # type: ignore[misc]
        bob = _phone("bob", eng, kamailio, server_cert, certs["server"], dev)
        alice = _phone("alice", eng, kamailio, server_cert, certs["server"])
        assert alice.contact_uri.startswith("sips:alice@127.0.0.1:")
        alice.register(expires=60, timeout=5)
        bob.register(expires=60, timeout=5)
        assert alice.registered and bob.registered

        call = alice.call("bob")
        inc = bob.expect(IncomingCall, timeout=5)
        assert inc.call is not None
        alice.expect(Answered, timeout=5)
        # the INVITE reached bob through Kamailio (its Via on top), over TLS, with alice's sips: Contact
        invite = inc.call.request
        assert invite.header("Via").startswith(f"SIP/2.0/TLS {kamailio.host}:{kamailio.tls_port}"), invite
        assert "sips:alice@" in invite.header("Contact")
        call.hangup()
        alice.expect(CallEnded, timeout=5)
        bob.expect(CallEnded, timeout=5)
        counts = eng.core.counts()
        assert counts["connections"] >= 2, counts  # to Kamailio, and Kamailio's own to the callee
        assert counts["retransmissions"] == 0
        alice.unregister(timeout=5)
        bob.unregister(timeout=5)


def test_phone_trusting_the_wrong_ca_fails_with_a_certificate_transport_error(kamailio, certs) -> None:
    with Engine(t1=0.1) as eng:
        mallory = _phone("mallory", eng, kamailio, certs["wrong"][0], certs["wrong"])
        with pytest.raises(AssertionError, match="could not register: 503 .*certificate verify failed"):
            mallory.register(expires=60, timeout=3)
        err = mallory.expect(TransportError, timeout=1)
        assert "certificate verify failed" in err.reason and "self-signed" in err.reason, err
        assert not mallory.registered
    # Kamailio is unharmed: a phone with the right CA still registers
    with Engine(t1=0.1) as eng:
        carol = _phone("carol", eng, kamailio, certs["server"][0], certs["server"])
        carol.register(expires=60, timeout=5)
        carol.unregister(timeout=5)

