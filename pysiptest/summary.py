"""Call summaries: what the C fast path reports for a call Python never saw message by message."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallSummary:
    """One fast-path call at its end.

    ``direction`` is "in" or "out"; ``status`` the final status of the INVITE (200, 487 when cancelled, ...);
    ``setup_ms`` from the INVITE to the ACK (incoming) or the 2xx (outgoing); ``talk_ms`` from then to the end;
    ``reason`` how it ended: "BYE received", "BYE sent", "CANCEL received", "Timer B", "no ACK", ...
    """

    call_id: str
    direction: str
    status: int
    setup_ms: int
    talk_ms: int
    reason: str

    @classmethod
    def from_info(cls, status: int, info: str) -> "CallSummary":
        """Parse the ``info`` of a ``call_summary`` engine event: "<in|out> <setup> <talk> <Call-ID> <reason>"."""
        parts = info.split(" ", 4)
        if len(parts) < 5:
            raise ValueError(f"malformed call summary {info!r}")
        direction, setup, talk, call_id, reason = parts
        return cls(call_id, direction, status, int(setup), int(talk), reason)
