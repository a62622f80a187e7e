"""HeronBase: a DECT base station with handsets: slow to ring, A-law only."""
from __future__ import annotations

from pysiptest.device import Device


class HeronBase(Device):
    """A DECT base: rings the handsets after 1 s (180 late), PCMA only, short registrations (120 s)."""

    model = "HeronBase"
    vendor = "Heron"
    user_agent = "Heron-DECT-Base/1.08"
    codecs = [8]
    supported = []
    ring_delay = 1.0
    register_expires = 120
    tone_hz = 800.0
