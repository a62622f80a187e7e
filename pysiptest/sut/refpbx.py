"""The reference PBX as a system under test (the default when no target is given)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from pysiptest._uri import uri_host
from pysiptest.engine import Engine
from pysiptest.pbx import ReferencePBX
from pysiptest.sut.base import SystemUnderTest
from pysiptest.transport import TlsConfig


class ReferencePbxSut(SystemUnderTest):
    """Runs :class:`ReferencePBX` on its own Engine on a free local port.

    ``tls_cert``/``tls_key`` (PEM files) add a TLS listener on ``tls_port`` (None: a free one, known after
    :meth:`start`); ``tls_ca`` is the CA file the phones' certificates are checked against when the PBX
    connects to them (None: the system store). ``challenge_requests=False`` leaves the users' INVITE,
    MESSAGE, SUBSCRIBE and REFER unchallenged under digest authentication (REGISTER only).
    """

    name = "refpbx"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, users: Optional[dict[str, str]] = None,
                 no_answer_timeout: float = 5.0, auth_algorithm: Optional[str] = None,
                 tls_cert: Union[str, Path, None] = None, tls_key: Union[str, Path, None] = None,
                 tls_port: Optional[int] = None, challenge_requests: Optional[bool] = None,
                 tls_ca: Union[str, Path, None] = None) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("the reference PBX's TLS listener needs both tls_cert and tls_key")
        self.host = host
        self.port = port
        self.users = users
        self.auth_algorithm = auth_algorithm
        self.no_answer_timeout = no_answer_timeout
        self.challenge_requests = challenge_requests
        self.tls_cert = str(tls_cert) if tls_cert is not None else None
        self.tls_key = str(tls_key) if tls_key is not None else None
        self.tls_port = tls_port or 0
        self.tls_ca = str(tls_ca) if tls_ca is not None else None
        self.domain = uri_host(host)
        self.engine: Optional[Engine] = None
        self.pbx: Optional[ReferencePBX] = None

    def start(self) -> None:
        """Start the PBX's engine and listen."""
        if self.pbx is not None:
            return
        self.engine = Engine(user_agent="pysiptest-pbx")
        tls = TlsConfig(cert=self.tls_cert, key=self.tls_key, ca=self.tls_ca) if self.tls_cert else None
        try:
            self.pbx = ReferencePBX(self.engine, self.host, self.port, users=self.users,
                                    auth_algorithm=self.auth_algorithm, no_answer_timeout=self.no_answer_timeout,
                                    challenge_requests=self.challenge_requests, tls=tls, tls_port=self.tls_port)
        except Exception:
            self.engine.close()
            self.engine = None
            raise
        self.port = self.pbx.port
        self.tls_port = self.pbx.tls_port

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
