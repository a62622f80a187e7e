"""Transport choices of a phone or PBX: ``udp``, ``tcp`` or ``tls``, and the TLS settings.

The C engine does the work (``csrc/engine/engine_conn.c``); this module only names the options and
turns them into the keyword arguments of ``_core.Engine.listen_tls``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings of one listening transport (both roles: it accepts and opens connections).

    ``cert``/``key``: our certificate chain and key (PEM), needed to accept connections and sent as a
    client certificate when the server asks. ``ca``: a PEM file or a hashed directory of trusted CAs
    (None: the system store). ``verify=False`` turns peer verification off (lab use; logged as a
    warning). ``server_name``: SNI and the name checked in the server's certificate for connections we
    open; without it the certificate must name the peer's IP address. ``require_client_cert``: the
    server side refuses clients without a valid certificate.
    """

    cert: Optional[str] = None
    key: Optional[str] = None
    ca: Optional[str] = None
    verify: bool = True
    server_name: Optional[str] = None
    require_client_cert: bool = False

    def core_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``_core.Engine.listen_tls``."""
        kw: dict[str, Any] = {"cert": self.cert, "key": self.key, "server_name": self.server_name,
                              "verify": self.verify, "require_client_cert": self.require_client_cert}
        if self.ca:
            kw["ca_dir" if os.path.isdir(self.ca) else "ca_file"] = self.ca
        return kw


def check_transport(name: str) -> str:
    """The transport name in lower case; ValueError when it is not udp, tcp or tls."""
    t = name.lower()
    if t not in TRANSPORTS:
        raise ValueError(f"transport {name!r} is not one of {', '.join(TRANSPORTS)}")
    return t


def uri_params(transport: str) -> str:
    """The URI parameters that make a Contact reach us on this transport (RFC 3261 19.1.1)."""
    return ";transport=tcp" if transport == "tcp" else ""


def uri_scheme(transport: str) -> str:
    """``sips`` for TLS (RFC 5630), else ``sip``."""
    return "sips" if transport == "tls" else "sip"
