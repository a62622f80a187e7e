"""Events a Phone receives, as frozen dataclasses.

Steps and tests wait for them with ``phone.expect(EventType, timeout, **match)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest._core import Message
    from pysiptest.call import Call


@dataclass(frozen=True)
class CoreEvent:
    """One event as it comes from the C engine."""

    kind: str
    transport_id: int
    txn_id: int
    dialog_id: int
    src: tuple[str, int]
    status: int
    message: Optional["Message"]
    info: str

    @classmethod
    def from_tuple(cls, t: tuple[Any, ...]) -> "CoreEvent":
        kind, tid, txn, dlg, host, port, status, msg, info = t
        return cls(kind, tid, txn, dlg, (host, port), status, msg, info)


@dataclass(frozen=True)
class Event:
    """Base of all phone events."""

    def describe(self) -> str:
        """One line for failure reports."""
        return type(self).__name__


@dataclass(frozen=True)
class RequestReceived(Event):
    """A request arrived (BYE, ACK, INFO, MESSAGE, ...). ``call`` is set when it belongs to a call."""

    method: str
    message: "Message" = field(repr=False)
    call: Optional["Call"] = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"RequestReceived({self.method})"


@dataclass(frozen=True)
class ResponseReceived(Event):
    """A response to one of our requests arrived."""

    status: int
    method: str
    message: "Message" = field(repr=False)
    call: Optional["Call"] = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"ResponseReceived({self.status} {self.method})"


@dataclass(frozen=True)
class IncomingCall(Event):
    """A new INVITE arrived; ``call`` can be answered or rejected."""

    call: "Call" = field(repr=False)
    caller: str = ""

    def describe(self) -> str:
        return f"IncomingCall(from {self.caller})"


@dataclass(frozen=True)
class Ringing(Event):
    """Our outgoing call got a provisional response above 100."""

    call: "Call" = field(repr=False)
    status: int = 180

    def describe(self) -> str:
        return f"Ringing({self.status})"


@dataclass(frozen=True)
class Answered(Event):
    """A call was answered (2xx received, or for incoming calls our 200 was ACKed)."""

    call: "Call" = field(repr=False)

    def describe(self) -> str:
        return "Answered"


@dataclass(frozen=True)
class CallEnded(Event):
    """A call ended; ``reason`` says how (e.g. "BYE received", "486 Busy Here", "Timer B")."""

    call: "Call" = field(repr=False)
    reason: str = ""
    status: int = 0

    def describe(self) -> str:
        return f"CallEnded({self.reason})"


@dataclass(frozen=True)
class Registered(Event):
    """A REGISTER succeeded."""

    expires: int

    def describe(self) -> str:
        return f"Registered(expires={self.expires})"


@dataclass(frozen=True)
class RegistrationFailed(Event):
    """A REGISTER failed with a final response or a timeout."""

    status: int
    reason: str

    def describe(self) -> str:
        return f"RegistrationFailed({self.status} {self.reason})"


@dataclass(frozen=True)
class TransportError(Event):
    """Sending failed, or the peer did not answer (transaction timeout)."""

    reason: str

    def describe(self) -> str:
        return f"TransportError({self.reason})"


@dataclass(frozen=True)
class MalformedMessage(Event):
    """A datagram that is not a valid SIP message arrived."""

    reason: str
    src: tuple[str, int] = ("", 0)

    def describe(self) -> str:
        return f"MalformedMessage({self.reason})"
