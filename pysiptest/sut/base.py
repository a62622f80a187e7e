"""The system-under-test adapter interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

__all__ = ["SystemUnderTest"]


class SystemUnderTest(ABC):
    """A SIP system that tests run against: where to send, and how to control it.

    Concrete adapters (the reference PBX, Kamailio, a plain external target)
    set ``name``, ``host``, ``port`` and ``domain``, and implement
    ``start()``/``stop()``. Steps that change server state ("Bob sets DND")
    go through methods such as :meth:`set_dnd`; an adapter that cannot do
    it raises ``NotImplementedError``.
    """

    name: str
    host: str
    port: int
    domain: str
    transport: str = "udp"
    #: the TLS listener, when the adapter was given a certificate (reference PBX, Kamailio)
    tls_cert: str | Path | None = None
    tls_port: int = 0

    @abstractmethod
    def start(self) -> None:
        """Start (or connect to) the system and return once it is ready."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the system; safe to call more than once."""

    @property
    def target(self) -> str:
        """``host:port`` to send requests to (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @property
    def tls(self) -> bool:
        """True when the system serves TLS too (a certificate and key were given)."""
        return self.tls_cert is not None

    @property
    def tls_target(self) -> str:
        """``host:port`` of the TLS listener (IPv6 hosts in brackets); RuntimeError without one."""
        if not self.tls:
            raise RuntimeError(f"{type(self).__name__} has no TLS listener: give tls_cert and tls_key")
        return self.target.rsplit(":", 1)[0] + f":{self.tls_port}"

    def set_dnd(self, user: str, enabled: bool) -> None:
        """Turn Do Not Disturb on or off for ``user`` on the server."""
        raise NotImplementedError(
            f"{type(self).__name__} ({getattr(self, 'name', '?')}) cannot set DND: "
            "this system under test has no control interface for it")

    def set_forward(self, user: str, target: str | None) -> None:
        """Forward every call for ``user`` to the user ``target`` (None turns it off)."""
        raise NotImplementedError(
            f"{type(self).__name__} ({getattr(self, 'name', '?')}) cannot set call forwarding: "
            "this system under test has no control interface for it")

    def __enter__(self) -> SystemUnderTest:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        try:
            where = self.target
        except AttributeError:
            where = "?"
        return f"<{type(self).__name__} {getattr(self, 'name', '?')} at {where}>"
