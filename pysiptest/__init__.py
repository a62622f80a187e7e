"""pysiptest: emulated SIP phones with a C core, driven from Behave and pytest.

The public API is re-exported here; everything else is private.
"""
from __future__ import annotations

from pysiptest._core import Message, parse, parse_uri
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

__version__ = "0.1.0"

__all__ = [
    "Answered", "Call", "CallEnded", "Device", "Engine", "EngineError", "Event", "ExpectationError",
    "IncomingCall", "LocalProtocolError", "MalformedMessage", "Message", "ParseError", "Phone", "PySipTestError",
    "Registered", "RegistrationFailed", "RequestReceived", "ResponseReceived", "Ringing", "TransportError",
    "default_engine", "find_device", "known_devices", "parse", "parse_uri",
]
