"""Load runs: calls placed at a rate by the C signalling thread (the UAC side of the fast path).

``run_load`` starts ``_core.Engine.load_start`` on a transport, watches ``load_stats`` until every call has
ended, and returns a :class:`LoadResult` (call rate, successes, failures by reason, setup-time percentiles)
that prints itself and writes JSON or CSV.  No Python runs per call.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Union

from pysiptest import sdp
from pysiptest.engine import Engine
from pysiptest.events import CoreEvent
from pysiptest.transport import TlsConfig, check_transport


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one load run."""

    target: str
    transport: str
    rate_asked: float
    calls: int
    started: int
    answered: int
    completed: int
    failed: int
    retransmissions: int
    elapsed_s: float
    failures: dict[str, int] = field(default_factory=dict)
    setup_p50_ms: float = 0.0
    setup_p95_ms: float = 0.0
    setup_p99_ms: float = 0.0
    setup_max_ms: float = 0.0
    cpu_s: float = 0.0

    @property
    def call_rate(self) -> float:
        """Calls started per second over the run."""
        return self.started / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every call answered and ended, no failure."""
        return self.failed == 0 and self.completed == self.calls

    def to_dict(self) -> dict[str, Any]:
        """All figures as a dict (``call_rate`` included)."""
        d = asdict(self)
        d["call_rate"] = round(self.call_rate, 2)
        return d

    def to_json(self) -> str:
        """The figures as a JSON object."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_csv(self) -> str:
        """A header line and one row; failures as ``reason=count`` joined by ``;``."""
        d = self.to_dict()
        d["failures"] = ";".join(f"{k}={v}" for k, v in sorted(self.failures.items()))
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(d))
        w.writeheader()
        w.writerow(d)
        return out.getvalue()

    def describe(self) -> str:
        """A few lines for people."""
        fails = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        return (f"{self.started} calls to {self.target} over {self.transport.upper()} in {self.elapsed_s:.2f} s "
                f"({self.call_rate:.1f} calls/s, asked {self.rate_asked:g})\n"
                f"answered {self.answered}, completed {self.completed}, failed {self.failed} ({fails}), "
                f"retransmissions {self.retransmissions}\n"
                f"setup time ms: p50 {self.setup_p50_ms:.2f}  p95 {self.setup_p95_ms:.2f}  "
                f"p99 {self.setup_p99_ms:.2f}  max {self.setup_max_ms:.2f}")


class _Sink:
    """Listener of the load transport: keeps what the engine still reports (transport errors and the like)."""

    def __init__(self) -> None:
        self.events: list[CoreEvent] = []

    def _on_core_event(self, ev: CoreEvent) -> None:
        if len(self.events) < 1000:
            self.events.append(ev)


def _parse_target(target: Union[str, tuple[str, int]]) -> tuple[str, int]:
    if isinstance(target, tuple):
        host, port = target
    else:
        from pysiptest.sut import parse_target

        host, port = parse_target(target)
    if not 0 < int(port) < 65536:
        raise ValueError(f"target port {port} is out of range")
    return host, int(port)


def run_load(engine: Engine, transport: Union[str, int], target: Union[str, tuple[str, int]], rate: float,
             calls: int, concurrency: int = 0, hold: float = 0.0, *, host: str = "127.0.0.1", port: int = 0,
             user: str = "load", callee: str = "%n", timeout: Optional[float] = None,
             progress: Optional[Callable[[dict[str, Any]], None]] = None,
             progress_interval: float = 1.0, tls: Optional[TlsConfig] = None) -> LoadResult:
    """Place ``calls`` calls at ``rate`` calls/s (at most ``concurrency`` at once, 0 = no limit) to ``target``
    ("HOST:PORT" or (host, port)), each hung up ``hold`` seconds after the answer; wait for them all.

    ``transport`` is a transport id of ``engine`` or "udp"/"tcp"/"tls" (then one is opened on ``host``:``port``,
    for "tls" with the certificate settings ``tls``; without them the server is verified against the system store).
    ``callee`` is the Request-URI user ("%n" = the call number).  ``progress`` gets ``load_stats()`` every
    ``progress_interval`` seconds.  ``timeout`` (default: the run's length + hold + 40 s) bounds the wait.
    """
    if not (isinstance(rate, (int, float)) and 0 < rate <= 100000):
        raise ValueError(f"rate {rate!r} must be between 0 and 100000 calls/s")
    if not (isinstance(calls, int) and calls > 0):
        raise ValueError(f"calls {calls!r} must be a positive integer")
    if not (isinstance(concurrency, int) and concurrency >= 0):
        raise ValueError(f"concurrency {concurrency!r} must be >= 0 (0 = no limit)")
    if not 0 <= hold <= 86400:
        raise ValueError(f"hold {hold!r} must be 0..86400 seconds")
    dhost, dport = _parse_target(target)
    if isinstance(transport, str):
        kind = check_transport(transport)
        if tls is not None and kind != "tls":
            raise ValueError(f"TLS settings given for a {kind} load run")
        tid, bound = engine.listen(kind, host, port, _Sink(), tls=tls)
    else:
        kind, tid, bound = "udp", int(transport), port
    h = f"[{dhost}]" if ":" in dhost else dhost
    scheme = "sips" if kind == "tls" else "sip"
    params = ";transport=tcp" if kind == "tcp" else ""
    body = sdp.build(host, 9, [0], username=user)
    cpu0 = time.process_time()
    engine.core.load_start(tid, dhost, dport, f"{scheme}:{callee}@{h}:{dport}{params}", f"{scheme}:{user}@{host}",
                           rate=float(rate), calls=calls, concurrency=concurrency, hold=float(hold), body=body)
    limit = timeout if timeout is not None else calls / rate + hold + 40.0
    deadline = time.monotonic() + limit
    next_progress = time.monotonic() + progress_interval
    try:
        while True:
            st = engine.core.load_stats()
            if not st["running"] and st["active"] == 0:
                break
            now = time.monotonic()
            if now > deadline:
                engine.core.load_stop()
                raise TimeoutError(f"load run did not finish within {limit:g} s: {st}")
            if progress is not None and now >= next_progress:
                progress(st)
                next_progress = now + progress_interval
            time.sleep(0.05)
    except BaseException:
        engine.core.load_stop()
        raise
    cpu = time.process_time() - cpu0
    return LoadResult(
        target=f"{h}:{dport}", transport=kind, rate_asked=float(rate), calls=calls, started=st["started"],
        answered=st["answered"], completed=st["completed"], failed=st["failed"],
        retransmissions=st["retransmissions"], elapsed_s=st["elapsed"], failures=dict(st["failures"]),
        setup_p50_ms=st["setup_p50_ms"], setup_p95_ms=st["setup_p95_ms"], setup_p99_ms=st["setup_p99_ms"],
        setup_max_ms=st["setup_max_ms"], cpu_s=round(cpu, 3))
