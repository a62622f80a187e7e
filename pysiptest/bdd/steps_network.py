"""Steps that give a scenario its own server: the same kind of system under test as the run's (reference PBX
or Kamailio), started for this scenario with digest authentication, on IPv6, or with a TLS listener (both
serve TLS with a certificate from a throw-away CA), and stopped after it. Phones named afterwards use it.
Against a server pysiptest does not run (sut=external) these scenarios are skipped with the reason."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

from behave import step

from pysiptest.bdd._common import replace_sut
from pysiptest.sut import Kamailio, ReferencePbxSut
from pysiptest.transport import TlsConfig

#: digest algorithm the scenario's server challenges with unless the phrase names one
DEFAULT_ALGORITHM = "SHA-256"


def _variant(context: Any, what: str, host: Optional[str] = None, users: Optional[dict[str, str]] = None,
             algorithm: Optional[str] = None, tls: Optional[tuple[Path, Path, Path]] = None) -> Optional[Any]:
    """A started server like the run's SUT with these settings, or None after skipping the scenario; ``tls`` is
    (certificate, key, the CA that signed the phones' certificates)."""
    sut = context.sut
    if isinstance(sut, ReferencePbxSut):
        new: Any = ReferencePbxSut(host or sut.host, users=users, auth_algorithm=algorithm,
                                   no_answer_timeout=sut.no_answer_timeout,
                                   tls_cert=tls[0] if tls else None, tls_key=tls[1] if tls else None,
                                   tls_ca=tls[2] if tls else None)
    elif isinstance(sut, Kamailio):
        new = Kamailio(host or sut.host, users=users, auth_algorithm=algorithm or DEFAULT_ALGORITHM,
                       tls_cert=tls[0] if tls else None, tls_key=tls[1] if tls else None)
    else:
        context.scenario.skip(f"{what}: {type(sut).__name__} is not started by pysiptest, so it cannot be "
                              "started with other settings for this scenario")
        return None
    new.start()
    replace_sut(context, new, users)
    return new


def _table_users(context: Any) -> dict[str, str]:
    if context.table is None:
        raise AssertionError("list the accounts in a table with the columns user and password")
    missing = {"user", "password"} - set(context.table.headings)
    if missing:
        raise AssertionError(f"the accounts table needs the columns user and password; it has "
                             f"{', '.join(context.table.headings)}")
    return {row["user"]: row["password"] for row in context.table}


@step("the server requires digest authentication")
def step_server_auth(context: Any) -> None:
    """This scenario's server challenges with digest authentication (SHA-256) and knows the accounts of the
    table (columns user, password); phones named afterwards answer challenges with their user's password.

    Example: ``Given the server requires digest authentication`` (with a table | user | password |)
    """
    _variant(context, "digest authentication", users=_table_users(context), algorithm=DEFAULT_ALGORITHM)


@step("the server requires digest authentication with {algorithm:Word}")
def step_server_auth_alg(context: Any, algorithm: str) -> None:
    """As above, with the digest algorithm named (MD5, SHA-256, SHA-512-256).

    Example: ``Given the server requires digest authentication with MD5`` (with a table | user | password |)
    """
    _variant(context, f"digest authentication ({algorithm})", users=_table_users(context), algorithm=algorithm)


@step("the server listens on IPv6")
def step_server_ipv6(context: Any) -> None:
    """This scenario's server listens on ::1, and the phones named afterwards on ::1 too (SIP and RTP).

    Example: ``Given the server listens on IPv6``
    """
    if _variant(context, "IPv6", host="::1") is not None:
        context.phone_net = {"host": "::1"}


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 and ::1 signed by it (EC keys, made by the openssl
    command): (ca, cert, key)."""
    if shutil.which("openssl") is None:
        raise AssertionError("TLS scenarios need the openssl command (apt-get install openssl)")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pysiptest scenario CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", *ec, "-keyout", "host.key", "-out", "host.csr", "-subj", "/CN=localhost")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "host.pem",
        "-days", "2", "-extfile", "ext.cnf")
    return folder / "ca.pem", folder / "host.pem", folder / "host.key"


@step("the server listens on TLS")
def step_server_tls(context: Any) -> None:
    """This scenario's server has a TLS listener with a certificate from a throw-away CA; phones named
    afterwards register and call over TLS (sips: Contacts) and verify the server against that CA.

    Example: ``Given the server listens on TLS``
    """
    folder = Path(tempfile.mkdtemp(prefix="pysiptest-tls-"))
    context.add_cleanup(shutil.rmtree, folder, ignore_errors=True)
    ca, cert, key = make_pki(folder)
    sut = _variant(context, "TLS", tls=(cert, key, ca))
    if sut is not None:
        context.phone_net = {"transport": "tls", "proxy": (sut.host, sut.tls_port),
                             "tls": TlsConfig(cert=str(cert), key=str(key), ca=str(ca))}
