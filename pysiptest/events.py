"""Events a Phone receives, as frozen dataclasses.

Steps and tests wait for them with ``phone.expect(EventType, timeout, **match)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest._core import Message
    from pysiptest.call import Call


class CoreEvent(NamedTuple):
    """One event as it comes from the C engine (a named tuple: made once per event, so it must be cheap)."""

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
        return tuple.__new__(cls, (kind, tid, txn, dlg, (host, port), status, msg, info))


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


# -- subscriptions, transfer, messages (pysiptest/subscription.py, transfer.py, services.py) ----------------
@dataclass(frozen=True)
class NotifyReceived(Event):
    """A NOTIFY arrived (and was answered 200). ``subscription`` is ours when it belongs to one, else None
    (an unsolicited NOTIFY); ``state`` is the Subscription-State value ("active", "pending", "terminated")."""

    event: str
    state: str
    body: bytes = field(repr=False)
    content_type: str = ""
    reason: str = ""
    message: Any = field(default=None, repr=False, compare=False)
    subscription: Any = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"NotifyReceived({self.event} {self.state})"


@dataclass(frozen=True)
class SubscriptionRequested(Event):
    """A SUBSCRIBE arrived for a package we serve; ``subscription`` (IncomingSubscription) waits for
    ``accept()`` or ``reject()`` (unless ``phone.on_subscribe`` took it)."""

    subscription: Any = field(repr=False)
    event: str = ""

    def describe(self) -> str:
        return f"SubscriptionRequested({self.event})"


@dataclass(frozen=True)
class SubscriptionEnded(Event):
    """A subscription (ours or one we serve) ended: terminated NOTIFY, refused or timed-out SUBSCRIBE."""

    subscription: Any = field(repr=False)
    reason: str = ""

    def describe(self) -> str:
        return f"SubscriptionEnded({self.reason})"


@dataclass(frozen=True)
class TransferRequested(Event):
    """A REFER arrived in ``call``: the phone places a call to ``target`` (with Replaces when attended)."""

    call: "Call" = field(repr=False)
    target: str = ""
    replaces: Optional[str] = None
    new_call: Optional["Call"] = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"TransferRequested({self.target}{' attended' if self.replaces else ''})"


@dataclass(frozen=True)
class TransferProgress(Event):
    """Progress of a transfer as the transferor sees it (the REFER's response, then each sipfrag NOTIFY) or
    as the transferee reports it; ``final`` once the outcome is known."""

    call: "Call" = field(repr=False)
    status: int = 0
    reason: str = ""
    final: bool = False

    def describe(self) -> str:
        return f"TransferProgress({self.status} {self.reason}{' final' if self.final else ''})"


@dataclass(frozen=True)
class CallReplaced(Event):
    """An INVITE with Replaces (RFC 3891) took the place of ``old``; ``new`` was answered, ``old`` BYEd."""

    old: "Call" = field(repr=False)
    new: "Call" = field(repr=False)

    def describe(self) -> str:
        return "CallReplaced"


@dataclass(frozen=True)
class MessageReceived(Event):
    """A MESSAGE (RFC 3428) arrived and was answered 200."""

    sender: str
    text: str
    content_type: str = ""
    message: Any = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"MessageReceived(from {self.sender})"


@dataclass(frozen=True)
class InfoReceived(Event):
    """An INFO (RFC 6086) arrived in ``call``; ``signal``/``duration`` for application/dtmf-relay."""

    call: Optional["Call"] = field(repr=False)
    content_type: str = ""
    body: bytes = field(default=b"", repr=False)
    signal: Optional[str] = None
    duration: Optional[int] = None
    message: Any = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"InfoReceived({self.content_type}{' ' + self.signal if self.signal else ''})"


@dataclass(frozen=True)
class Redirected(Event):
    """Our INVITE got a 3xx and went again to ``target`` (RFC 3261 8.1.3.4)."""

    call: "Call" = field(repr=False)
    status: int = 302
    target: str = ""

    def describe(self) -> str:
        return f"Redirected({self.status} -> {self.target})"


@dataclass(frozen=True)
class ForkDropped(Event):
    """Another branch of our forked INVITE answered too (To tag ``to_tag``): ACKed and ended with BYE."""

    call: "Call" = field(repr=False)
    to_tag: str = ""

    def describe(self) -> str:
        return f"ForkDropped({self.to_tag})"
