"""Adapters for the system under test (SUT): start it, point phones at it, control it."""

from __future__ import annotations

from typing import Optional

from .base import SystemUnderTest
from .kamailio import Kamailio, KamailioError, KamailioRpcError, RunningKamailio
from .refpbx import ExternalSut, ReferencePbxSut

__all__ = ["SystemUnderTest", "Kamailio", "KamailioError", "KamailioRpcError", "RunningKamailio", "ReferencePbxSut", "ExternalSut",
           "parse_target", "make_sut"]


def parse_target(target: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or 'sip:host:port' to (host, port); ValueError with the expected form."""
    t = target.strip()
    if t.startswith(("sip:", "sips:")):
        t = t.split(":", 1)[1]
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_s = t.rpartition(":")
    if not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"target {target!r} must look like HOST:PORT (e.g. 127.0.0.1:5060 or [::1]:5060)")
    return host, int(port_s)


def make_sut(sut: str = "", target: str = "", users: Optional[dict[str, str]] = None) -> SystemUnderTest:
    """The adapter for behave's -D sut=... -D target=...: no sut and no target means the reference PBX;
    sut=kamailio without a target starts Kamailio; a target alone (or sut=external) is an external server.

    ``users`` (name to password) are the accounts of a server pysiptest starts: the reference PBX then
    challenges REGISTER with digest (SHA-256) and its users' initial INVITE, MESSAGE, SUBSCRIBE and REFER
    with 407, and refuses other users; Kamailio keeps them in its db_text database and challenges REGISTER, INVITE, MESSAGE and SUBSCRIBE. A server that runs already (a target
    is given) has its own accounts, and ``users`` are only what the phones answer challenges with.
    """
    kind = (sut or "").lower()
    if kind in ("", "refpbx", "pbx"):
        if target:
            host, port = parse_target(target)
            return ExternalSut(host, port) if kind == "" else ReferencePbxSut(host, port)
        return ReferencePbxSut(users=users, auth_algorithm="SHA-256" if users else None)
    if kind == "kamailio":
        if target:
            host, port = parse_target(target)
            return RunningKamailio(host, port)
        return Kamailio(users=users)
    if kind == "external":
        if not target:
            raise ValueError("sut=external needs -D target=HOST:PORT (the server to test)")
        host, port = parse_target(target)
        return ExternalSut(host, port)
    raise ValueError(f"unknown sut {sut!r}; known: refpbx, kamailio, external")
