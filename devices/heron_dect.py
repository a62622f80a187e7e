"""HeronBase: a DECT base station with handsets: slow to ring and slow to answer, A-law only."""
from __future__ import annotations

from pysiptest.device import Device


class HeronBase(Device):
    """A DECT base: rings the handsets after 1 s (180 late), and relays a handset's off-hook over the air, so
    its 200 OK leaves 0.8 s after the user answers; PCMA only, short registrations (120 s)."""

    model = "HeronBase"
    vendor = "Heron"
    user_agent = "Heron-DECT-Base/1.08"
    codecs = [8]
    supported = []
    ring_delay = 1.0
    answer_delay = 0.8
    register_expires = 120
    tone_hz = 800.0
