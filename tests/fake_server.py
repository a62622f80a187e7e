"""An in-process fake SIP server for tests: a listener on its own pysiptest Engine transport that answers
requests through a handler function and records every request it got (registrar, challenging UAS)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from pysiptest import Engine
from pysiptest.events import CoreEvent

#: handler(server, event, message) -> None; it answers with server.respond(...)
Handler = Callable[["FakeServer", CoreEvent, Any], None]

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class FakeServer:
    """Listens on 127.0.0.1; ``requests`` holds every request message received, in order."""

    def __init__(self, engine: Engine, handler: Handler) -> None:
        self.engine = engine
        self.handler = handler
        self.requests: list[Any] = []
        self._cond = threading.Condition()
        self.transport_id, self.port = engine.listen_udp("127.0.0.1", 0, self)
        self.addr = ("127.0.0.1", self.port)

    def _on_core_event(self, ev: CoreEvent) -> None:
        if ev.kind != "request" or ev.message is None:
            return
        with self._cond:
            self.requests.append(ev.message)
            self._cond.notify_all()
        if ev.message.method != "ACK":
            self.handler(self, ev, ev.message)

    def respond(self, ev: CoreEvent, status: int, headers: Optional[list[tuple[str, str]]] = None,
                body: bytes = b"") -> None:
        """Answer the request of ev."""
        self.engine.core.respond(ev.txn_id, status, None, headers or [], body)

    def wait_requests(self, method: str, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until ``count`` requests of ``method`` arrived; returns them."""
        def got() -> list[Any]:
            return [m for m in self.requests if m.method == method]
        with self._cond:
            if not self._cond.wait_for(lambda: len(got()) >= count, timeout):
                raise AssertionError(f"expected {count} {method}, got {len(got())}")
            return got()
