"""The reference PBX as a system under test (the default when no target is given)."""
from __future__ import annotations

from typing import Optional

from pysiptest._uri import uri_host
from pysiptest.engine import Engine
from pysiptest.pbx import ReferencePBX
from pysiptest.sut.base import SystemUnderTest


class ReferencePbxSut(SystemUnderTest):
    """Runs :class:`ReferencePBX` on its own Engine on a free local port."""

    name = "refpbx"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.domain = uri_host(host)
        self.engine: Optional[Engine] = None
        self.pbx: Optional[ReferencePBX] = None

    def start(self) -> None:
        """Start the PBX's engine and listen."""
        if self.pbx is not None:
            return
        self.engine = Engine(user_agent="pysiptest-pbx")
        self.pbx = ReferencePBX(self.engine, self.host, self.port)
        self.port = self.pbx.port

    def stop(self) -> None:
        """Stop the PBX's engine."""
        if self.engine is not None:
            self.engine.close()
        self.engine = None
        self.pbx = None


class ExternalSut(SystemUnderTest):
    """A SIP server that runs elsewhere: pysiptest only sends to it and cannot change its state."""

    name = "external"

    def __init__(self, host: str, port: int, domain: Optional[str] = None) -> None:
        self.host = host
        self.port = port
        self.domain = uri_host(domain or host)

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""
