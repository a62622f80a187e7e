"""Helpers of the transport tests: event waits on a bare ``_core.Engine`` and a throw-away PKI made with
the ``openssl`` command (a CA, a server/client certificate for the loopback addresses signed by it, and
an untrusted self-signed one)."""
from __future__ import annotations

import select
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import pytest

from pysiptest import _core

LOOPBACK = {"ipv4": "127.0.0.1", "ipv6": "::1"}


class Ev(NamedTuple):
    kind: str
    transport_id: int
    txn_id: int
    dialog_id: int
    src_host: str
    src_port: int
    status: int
    message: object
    info: str


@pytest.fixture
def core():
    """Bare ``_core.Engine`` objects (T1 100 ms unless given) made by the test, closed after it.  Test files
    use it with ``from transport_util import core``."""
    engines: list[_core.Engine] = []

    def make(**kw) -> _core.Engine:
        e = _core.Engine(t1=kw.pop("t1", 0.1), **kw)
        engines.append(e)
        return e

    try:
        yield make
    finally:
        for e in engines:
            e.close()


def recv_until(s: socket.socket, token: bytes, timeout: float = 2.0) -> bytes:
    """Read from s until token arrived, the peer closed, or timeout passed; what was read."""
    data = b""
    end = time.monotonic() + timeout
    while token not in data and time.monotonic() < end:
        r, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        chunk = s.recv(65535)
        if not chunk:
            break
        data += chunk
    return data


def loopback(family: str) -> str:
    """The loopback address of a family; skips when the host has none."""
    host = LOOPBACK[family]
    fam = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
    except OSError as exc:
        pytest.skip(f"no {family} loopback here ({host}: {exc.strerror})")
    return host


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_backlog: dict[int, list[Ev]] = {}  # events polled in a batch but not yet looked at, per engine


def wait_event(core, kind: str, timeout: float = 2.0, pred: Optional[Callable[[Ev], bool]] = None,
               seen: Optional[list[Ev]] = None) -> Ev:
    """The first event of this kind (matching pred) polled from core within timeout; others go to seen."""
    end = time.monotonic() + timeout
    skipped: list[Ev] = [] if seen is None else seen
    while (left := end - time.monotonic()) > 0:
        batch = _backlog.pop(id(core), None) or [Ev(*t) for t in core.poll(timeout=min(left, 0.1))]
        for i, ev in enumerate(batch):
            if ev.kind == kind and (pred is None or pred(ev)):
                if batch[i + 1:]:
                    _backlog[id(core)] = batch[i + 1:]
                return ev
            skipped.append(ev)
    raise AssertionError(f"no {kind} event within {timeout}s; got {[(e.kind, e.status, e.info) for e in skipped]}")


def ooo_headers(call_id: str, method: str = "OPTIONS", contact: Optional[str] = None) -> list[tuple[str, str]]:
    h = [("From", "<sip:a@example.test>;tag=a1"), ("To", "<sip:b@example.test>"), ("Call-ID", call_id),
         ("CSeq", f"1 {method}")]
    if contact:
        h.append(("Contact", f"<{contact}>"))
    return h


@dataclass(frozen=True)
class Pki:
    """Files of a test PKI."""

    ca: Path          # trusted CA certificate
    cert: Path        # certificate for 127.0.0.1, ::1 and sip.example.test, signed by ca
    key: Path
    rogue_cert: Path  # self-signed, not trusted by ca
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> Pki:
    """Make the PKI in directory d (EC keys: fast)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    d.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pysiptest test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    _openssl("req", *ec, "-keyout", "host.key", "-out", "host.csr", "-subj", "/CN=sip.example.test", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,IP:::1,DNS:sip.example.test\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "host.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    _openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2",
             "-subj", "/CN=rogue", "-addext", "subjectAltName=IP:127.0.0.1,IP:::1", cwd=d)
    return Pki(d / "ca.pem", d / "host.pem", d / "host.key", d / "rogue.pem", d / "rogue.key")
