"""pysiptest: emulated SIP phones with a C core, driven from Behave and pytest.

The public API is re-exported here; everything else is private.
"""
from __future__ import annotations

from pysiptest._core import parse_uri
from pysiptest.message import CSeq, Headers, Message, NameAddr, Via, parse
from pysiptest.call import Call
from pysiptest.device import Device, find_device, known_devices
from pysiptest.engine import Engine, default_engine
from pysiptest.errors import EngineError, ExpectationError, LocalProtocolError, ParseError, PySipTestError
from pysiptest.events import (
    Answered,
    CallEnded,
    Event,
    IncomingCall,
    MalformedMessage,
    Registered,
    RegistrationFailed,
    RequestReceived,
    ResponseReceived,
    Ringing,
    TransportError,
)
from pysiptest.phone import Phone
from pysiptest.events import (
    CallReplaced,
    ForkDropped,
    InfoReceived,
    MessageReceived,
    NotifyReceived,
    Redirected,
    SubscriptionEnded,
    SubscriptionRequested,
    TransferProgress,
    TransferRequested,
)
from pysiptest.services import IncomingRequest
from pysiptest.subscription import IncomingSubscription, Publication, Subscription
from pysiptest.transfer import Transfer

__version__ = "0.1.0"

__all__ = [
    "Answered", "CSeq", "Call", "Headers", "NameAddr", "Via", "CallEnded", "Device", "Engine", "EngineError",
    "Event", "ExpectationError",
    "IncomingCall", "LocalProtocolError", "MalformedMessage", "Message", "ParseError", "Phone", "PySipTestError",
    "Registered", "RegistrationFailed", "RequestReceived", "ResponseReceived", "Ringing", "TransportError",
    "default_engine", "find_device", "known_devices", "parse", "parse_uri",
    "CallReplaced", "ForkDropped", "IncomingRequest", "IncomingSubscription", "InfoReceived", "MessageReceived",
    "NotifyReceived", "Publication", "Redirected", "Subscription", "SubscriptionEnded", "SubscriptionRequested",
    "Transfer", "TransferProgress", "TransferRequested",
]
