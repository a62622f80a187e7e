"""Chipmunk5000: a conference phone that prefers A-law."""
from __future__ import annotations

from pysiptest.device import Device


class Chipmunk5000(Device):
    """A conference phone: PCMA first, 180 at once, DTMF by INFO (later), no 100rel."""

    model = "Chipmunk5000"
    vendor = "Chipmunk"
    user_agent = "Chipmunk5000/7.0"
    codecs = [8, 0]
    supported = ["replaces"]
    ring_delay = 0.0
    register_expires = 3600
    tone_hz = 1000.0
