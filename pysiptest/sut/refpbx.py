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

    def __init__(self, host: str = "127.0.0.1", port: int = 0, users: Optional[dict[str, str]] = None,
                 no_answer_timeout: float = 5.0, auth_algorithm: Optional[str] = None) -> None:
        self.host = host
        self.port = port
        self.users = users
        self.auth_algorithm = auth_algorithm
        self.no_answer_timeout = no_answer_timeout
        self.domain = uri_host(host)
        self.engine: Optional[Engine] = None
        self.pbx: Optional[ReferencePBX] = None

    def start(self) -> None:
        """Start the PBX's engine and listen."""
        if self.pbx is not None:
            return
        self.engine = Engine(user_agent="pysiptest-pbx")
        self.pbx = ReferencePBX(self.engine, self.host, self.port, users=self.users, auth_algorithm=self.auth_algorithm,
                                no_answer_timeout=self.no_answer_timeout)
        self.port = self.pbx.port

    def _running(self) -> ReferencePBX:
        if self.pbx is None:
            raise RuntimeError("the reference PBX is not started")
        return self.pbx

    def set_dnd(self, user: str, enabled: bool) -> None:
        """Turn Do Not Disturb on or off for user in the PBX."""
        self._running().set_dnd(user, enabled)

    def set_forward(self, user: str, target: Optional[str]) -> None:
        """Forward every call for user to target (None: off)."""
        self._running().set_forward(user, target)

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

    def set_dnd(self, user: str, enabled: bool) -> None:
        """Not possible: the server is not ours to control (NotImplementedError saying so)."""
        raise NotImplementedError(f"the external server at {self.target} is not controlled by pysiptest "
                                  "(sut=external): DND cannot be set through it")

    def set_forward(self, user: str, target: Optional[str]) -> None:
        """Not possible: the server is not ours to control (NotImplementedError saying so)."""
        raise NotImplementedError(f"the external server at {self.target} is not controlled by pysiptest "
                                  "(sut=external): call forwarding cannot be set through it")
