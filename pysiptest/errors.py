"""Exceptions of pysiptest."""
from __future__ import annotations

from pysiptest._core import EngineError, ParseError

__all__ = ["EngineError", "ParseError", "PySipTestError", "ExpectationError", "LocalProtocolError"]


class PySipTestError(Exception):
    """Base class of errors raised by the Python layer."""


class LocalProtocolError(PySipTestError):
    """The caller asked for something the protocol state does not allow (e.g. answering a finished call)."""


class ExpectationError(AssertionError):
    """A bounded wait ended without the expected event; the message lists what arrived instead."""
