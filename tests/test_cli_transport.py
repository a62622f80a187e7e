"""``pysiptest phone --transport tcp|tls`` (with ``--cert/--key/--ca``) and ``pysiptest load --transport``
through the command line, on the wire: an in-process phone calls the command's phone over TCP or TLS
(IPv4 and IPv6 listen addresses), certificates are checked, and the C fast path of the command answers
a load run over the same transport."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pysiptest import Answered, CallEnded, Engine, Phone
from pysiptest.sut._proc import free_port
from pysiptest.transport import TlsConfig
from transport_util import Pki, hostport, loopback, make_pki

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_args(pki: Pki) -> list[str]:
    return ["--cert", str(pki.cert), "--key", str(pki.key), "--ca", str(pki.ca)]


def _call_and_hang_up(engine: Engine, host: str, port: int, transport: str, tls=None) -> Phone:
    alice = Phone("alice", engine=engine, host=host, transport=transport, tls=tls, proxy=(host, port))
    call = alice.call("bob")
    alice.expect(Answered, 5, call=call)
    call.hangup()
    ended = alice.expect(CallEnded, 5, call=call)
    assert ended.status == 200
    return alice


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_phone_command_over_tcp_answers_a_call_on_a_tcp_connection(family, run_cli) -> None:
    host = loopback(family)
    port = free_port(host, udp=False, tcp=True)
    cli = run_cli("phone", "--listen", hostport(host, port), "--transport", "tcp", "--user", "bob")
    cli.wait_for(rf"^phone bob \(.*\) listening on {re.escape(hostport(host, port))} over TCP$")
    with Engine(t1=0.2) as eng:
        alice = _call_and_hang_up(eng, host, port, "tcp")
        counts = eng.core.counts()
        # the command listens on TCP only: the call can only have gone over the connection alice opened
        assert counts["connections"] == 1 and counts["retransmissions"] == 0
        assert alice.contact_uri.endswith(";transport=tcp")
    cli.wait_for(r"IncomingCall\(from alice\)")
    cli.wait_for(r"CallEnded\(BYE received\)")


def test_phone_command_over_tls_answers_a_caller_that_verifies_its_certificate(pki, run_cli) -> None:
    host = "127.0.0.1"
    port = free_port(host, udp=False, tcp=True)
    cli = run_cli("phone", "--listen", f"{host}:{port}", "--transport", "tls", "--user", "bob", *_tls_args(pki))
    cli.wait_for(rf"listening on {host}:{port} over TLS$")
    with Engine(t1=0.2) as eng:
        tls = TlsConfig(cert=str(pki.cert), key=str(pki.key), ca=str(pki.ca))
        alice = _call_and_hang_up(eng, host, port, "tls", tls)
        assert alice.contact_uri.startswith("sips:")
        assert eng.core.counts()["connections"] == 1
    cli.wait_for(r"CallEnded\(BYE received\)")


def test_phone_command_over_tls_is_refused_by_a_caller_that_does_not_trust_it(pki, run_cli) -> None:
    host = "127.0.0.1"
    port = free_port(host, udp=False, tcp=True)
    # the command presents the self-signed rogue certificate; the caller trusts only the test CA
    cli = run_cli("phone", "--listen", f"{host}:{port}", "--transport", "tls", "--cert", str(pki.rogue_cert),
                  "--key", str(pki.rogue_key), "--ca", str(pki.ca))
    cli.wait_for(r"over TLS$")
    with Engine(t1=0.2) as eng:
        alice = Phone("alice", engine=eng, transport="tls", tls=TlsConfig(cert=str(pki.cert), key=str(pki.key),
                                                                           ca=str(pki.ca)), proxy=(host, port))
        alice.call("bob")
        ended = alice.expect(CallEnded, 3)
        assert ended.status == 503 and "certificate verify failed" in ended.reason, ended


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "pysiptest", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=env)


def test_certificate_options_without_tls_are_one_clear_line(pki) -> None:
    r = _run("phone", "--listen", f"127.0.0.1:{free_port()}", "--transport", "tcp", "--cert", str(pki.cert))
    assert r.returncode != 0
    assert "--cert, --key, --ca and --no-verify need --transport tls" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_load_command_calls_fast_phone_command_over_the_transport(transport, pki, run_cli, tmp_path) -> None:
    host = "127.0.0.1"
    port = free_port(host, udp=False, tcp=True)
    tls = _tls_args(pki) if transport == "tls" else []
    cli = run_cli("phone", "--listen", f"{host}:{port}", "--transport", transport, "--fast", *tls)
    cli.wait_for(r"listening on ")
    out = tmp_path / "load.json"
    r = _run("load", "--target", f"{host}:{port}", "--transport", transport, "--rate", "200", "--calls", "300",
             "--json", str(out), "--quiet", *tls)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(out.read_text())
    assert d["completed"] == 300 and d["failed"] == 0, d
    cli.wait_for(r"calls ended", timeout=5)
