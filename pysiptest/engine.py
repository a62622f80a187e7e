"""The Python Engine: owns the C signalling engine and media engine, and routes their events.

One dispatcher thread per Engine takes events from the C queue in batches
(``_core.Engine.poll`` releases the GIL while it waits) and hands each to the
listener registered for its transport (a Phone, the reference PBX).  The same
thread runs callbacks scheduled with :meth:`Engine.call_later` (ring delays,
answer delays, registration refresh): per call, never per packet.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, Optional, Protocol

from pysiptest import _core
from pysiptest.events import CoreEvent
from pysiptest.transport import TlsConfig, check_transport

log = logging.getLogger("pysiptest.engine")


class EventListener(Protocol):
    """Something that owns a transport and takes its events."""

    def _on_core_event(self, ev: CoreEvent) -> None: ...


class Engine:
    """SIP signalling and RTP media for any number of phones; a context manager.

    ``t1``, ``t2`` and ``t4`` are the RFC 3261 timers in seconds.
    """

    def __init__(self, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0, user_agent: str = "pysiptest") -> None:
        self.core = _core.Engine(t1=t1, t2=t2, t4=t4, user_agent=user_agent)
        self.media = _core.Media()
        self._listeners: dict[int, EventListener] = {}
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._closed = False
        self.unrouted: list[CoreEvent] = []
        self._thread = threading.Thread(target=self._run, name="pysiptest-dispatch", daemon=True)
        self._thread.start()

    # -- transports and listeners -------------------------------------------------------
    def listen_udp(self, host: str, port: int, listener: EventListener) -> tuple[int, int]:
        """Open a UDP transport whose events go to listener; returns (transport_id, bound_port)."""
        tid, bound = self.core.listen_udp(host, port)
        with self._lock:
            self._listeners[tid] = listener
        return tid, bound

    def listen_tcp(self, host: str, port: int, listener: EventListener, idle_timeout: float = 60.0) -> tuple[int, int]:
        """Open a TCP transport (connections are opened per destination and reused); (transport_id, port)."""
        tid, bound = self.core.listen_tcp(host, port, idle_timeout)
        with self._lock:
            self._listeners[tid] = listener
        return tid, bound

    def listen_tls(self, host: str, port: int, listener: EventListener, tls: Optional["TlsConfig"] = None,
                   idle_timeout: float = 60.0) -> tuple[int, int]:
        """Open a TLS transport with these settings (default: verify peers against the system store)."""
        cfg = tls or TlsConfig()
        if not cfg.verify:
            log.warning("TLS peer verification is OFF for %s:%s (verify=False): lab use only", host, port)
        tid, bound = self.core.listen_tls(host, port, idle_timeout, **cfg.core_kwargs())
        with self._lock:
            self._listeners[tid] = listener
        return tid, bound

    def listen(self, transport: str, host: str, port: int, listener: EventListener,
               tls: Optional["TlsConfig"] = None) -> tuple[int, int]:
        """Open a transport of this kind ("udp", "tcp", "tls"); returns (transport_id, bound_port)."""
        kind = check_transport(transport)
        if kind == "tcp":
            return self.listen_tcp(host, port, listener)
        if kind == "tls":
            return self.listen_tls(host, port, listener, tls)
        return self.listen_udp(host, port, listener)

    # -- scheduling ---------------------------------------------------------------------
    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run fn on the dispatcher thread after delay seconds."""
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
        # the dispatcher polls with a short timeout, so a new earlier timer is picked up within 20 ms

    def _next_timeout(self) -> float:
        with self._lock:
            if not self._timers:
                return 0.2
            return min(0.2, max(0.0, self._timers[0][0] - time.monotonic()))

    def _run_due(self) -> None:
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > time.monotonic():
                    return
                _, _, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception:  # a failing callback must not kill the dispatcher
                log.exception("scheduled callback failed")

    def _run(self) -> None:
        while not self._closed:
            try:
                batch = self.core.poll(timeout=min(self._next_timeout(), 0.02) if self._timers else 0.2)
            except _core.EngineError:
                return
            for t in batch:
                ev = CoreEvent.from_tuple(t)
                with self._lock:
                    listener = self._listeners.get(ev.transport_id)
                if listener is None:
                    self.unrouted.append(ev)
                    continue
                try:
                    listener._on_core_event(ev)
                except Exception:
                    log.exception("listener failed on %s event", ev.kind)
            self._run_due()

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the dispatcher, the signalling and the media threads."""
        if self._closed:
            return
        self._closed = True
        self._thread.join(timeout=2)
        self.core.close()
        self.media.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: Optional[Engine] = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The process-wide default Engine, created on first use."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Engine()
        return _default
