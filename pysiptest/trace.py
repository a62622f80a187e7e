"""SIP ladders for failure reports, from the engine's message trace.

The C engine can keep a bounded ring with one summary per SIP message it sends or receives (time,
transport, direction, peer, start line, Call-ID, CSeq; ``_core.Engine.set_trace``). It is off unless
switched on with :func:`enable`; then each message costs a scan of its header section in C and nothing in
Python. :func:`ladder` reads the entries of one phone (its transport) and :func:`format_ladder` draws them
as lines such as::

    17:20:01.123  alice  ->  127.0.0.1:5060    INVITE sip:bob@127.0.0.1 SIP/2.0    1 INVITE      [3f2a9c01]
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.engine import Engine
    from pysiptest.phone import Phone

__all__ = ["TraceEntry", "enable", "ladder", "format_ladder", "DEFAULT_CAPACITY"]

#: entries kept per engine when the behave environment switches the trace on
DEFAULT_CAPACITY = 4096


@dataclass(frozen=True)
class TraceEntry:
    """One SIP message as the engine sent (``outgoing``) or received it."""

    time: float            # wall clock, seconds since the epoch
    transport_id: int
    outgoing: bool
    peer: tuple[str, int]  # where it went, or where it came from
    first_line: str        # start line, truncated to 99 characters
    call_id: str
    cseq: str
    length: int            # bytes on the wire

    @property
    def call_id_short(self) -> str:
        """The first 8 characters of the Call-ID (enough to tell the calls of one scenario apart)."""
        return self.call_id[:8]

    def describe(self, who: str = "") -> str:
        """One ladder line: time, who, direction and peer, start line, CSeq, short Call-ID."""
        clock = time.strftime("%H:%M:%S", time.localtime(self.time)) + f".{int(self.time * 1000) % 1000:03d}"
        host, port = self.peer
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        arrow = "->" if self.outgoing else "<-"
        return f"{clock}  {who}  {arrow} {peer:<21} {self.first_line:<48} {self.cseq:<12} [{self.call_id_short}]"


def enable(engine: "Engine", capacity: int = DEFAULT_CAPACITY) -> None:
    """Keep the last ``capacity`` messages of every transport of this engine (0 switches the trace off)."""
    engine.core.set_trace(capacity)


def ladder(phone: "Phone", since: float = 0.0) -> list[TraceEntry]:
    """The messages the phone sent and received since ``since`` (time.time()), oldest first; empty while the
    trace is off or the engine is closed."""
    try:
        raw = phone.engine.core.trace(phone.transport_id)
    except Exception:  # a closed engine has no trace left to show
        return []
    out = [TraceEntry(t, tid, bool(outgoing), (host, port), line, cid, cseq, n)
           for (t, tid, outgoing, host, port, line, cid, cseq, n) in raw]
    return [e for e in out if e.time >= since]


def format_ladder(entries: Iterable[tuple[str, TraceEntry]], limit: Optional[int] = 200) -> str:
    """Lines for (who, entry) pairs in time order; at most ``limit`` newest lines (None: all)."""
    rows = sorted(entries, key=lambda we: we[1].time)
    skipped = 0
    if limit is not None and len(rows) > limit:
        skipped = len(rows) - limit
        rows = rows[-limit:]
    width = max((len(w) for w, _ in rows), default=0)
    lines = [e.describe(w.ljust(width)) for w, e in rows]
    if skipped:
        lines.insert(0, f"... {skipped} earlier message(s) not shown")
    return "\n".join(lines)
