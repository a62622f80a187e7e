"""Squirrel350: a desk phone that rings quickly and offers PCMU then PCMA."""
from __future__ import annotations

from pysiptest.device import Device


class Squirrel350(Device):
    """A desk phone: UDP, PCMU first, 180 after 0.2 s, supports 100rel and session timers."""

    model = "Squirrel350"
    vendor = "Squirrel"
    user_agent = "Squirrel350/2.1.4"
    codecs = [0, 8]
    supported = ["100rel", "timer", "replaces"]
    ring_delay = 0.2
    register_expires = 600
    tone_hz = 440.0
