"""Small helpers for writing hosts and reading users in SIP URIs (private)."""
from __future__ import annotations

import ipaddress


def uri_host(host: str) -> str:
    """host as it is written in a SIP URI: an IPv6 literal goes in brackets (RFC 3261 section 25.1)."""
    if host.startswith("["):
        return host
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def hostport(host: str, port: int) -> str:
    """host:port with an IPv6 host in brackets."""
    return f"{uri_host(host)}:{port}"


def uri_user(uri: str) -> str:
    """The user part of a sip:/sips: URI ("" when there is none), without parameters."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0].split(";", 1)[0] if "@" in rest else ""
