"""``pysiptest load --transport tls`` with ``--cert/--key/--ca/--no-verify``: a load run over TLS against a
``pysiptest phone --fast --transport tls`` completes with the server verified against ``--ca``; an untrusted
server fails every call with the certificate problem as the reason unless ``--no-verify``; TLS options
without ``--transport tls`` are refused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pysiptest.sut._proc import free_port
from transport_util import Pki, make_pki

ROOT = Path(__file__).resolve().parent.parent
CALLS = 50


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_phone(run_cli, cert: Path, key: Path) -> int:
    port = free_port("127.0.0.1", udp=False)
    phone = run_cli("phone", "--fast", "--transport", "tls", "--listen", f"127.0.0.1:{port}",
                    "--cert", str(cert), "--key", str(key), "--no-verify")
    phone.wait_for(r"listening on 127\.0\.0\.1:\d+ over TLS")
    return port


def _load(port: int, out: Path, *tls_args: str) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    argv = [sys.executable, "-m", "pysiptest", "load", "--target", f"127.0.0.1:{port}", "--rate", "100",
            "--calls", str(CALLS), "--transport", "tls", "--json", str(out), "--quiet", *tls_args]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    return proc, json.loads(out.read_text()) if out.exists() else None


def test_cli_load_over_tls_verifies_the_server_with_ca_and_completes(run_cli, pki, tmp_path) -> None:
    port = _tls_phone(run_cli, pki.cert, pki.key)
    proc, res = _load(port, tmp_path / "ok.json", "--ca", str(pki.ca), "--cert", str(pki.cert),
                      "--key", str(pki.key))
    assert proc.returncode == 0 and res is not None, proc.stdout + proc.stderr
    assert res["transport"] == "tls" and res["completed"] == CALLS and res["failed"] == 0, res
    assert res["retransmissions"] == 0
    assert "over TLS" in proc.stdout


def test_cli_load_over_tls_to_an_untrusted_server_fails_naming_the_certificate(run_cli, pki, tmp_path) -> None:
    port = _tls_phone(run_cli, pki.rogue_cert, pki.rogue_key)
    proc, res = _load(port, tmp_path / "bad.json", "--ca", str(pki.ca))
    assert res is not None, proc.stdout + proc.stderr
    assert res["completed"] == 0 and res["failed"] == CALLS, res
    assert proc.returncode != 0
    # the reason names what went wrong with the certificate, not just "failed"
    assert res["failures"] == {"transport error: certificate verify failed": CALLS}, res["failures"]
    # the lab opt-out: the same server is accepted without verification
    proc, res = _load(port, tmp_path / "noverify.json", "--no-verify")
    assert proc.returncode == 0 and res is not None and res["completed"] == CALLS, proc.stdout + proc.stderr
    assert "verification is OFF" in proc.stderr


def test_cli_load_tls_options_need_transport_tls(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pysiptest", "load", "--target", "127.0.0.1:5060", "--rate", "1",
                           "--calls", "1", "--ca", "/nonexistent.pem"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode != 0 and "need --transport tls" in proc.stderr, proc.stderr
