"""Chipmunk5000: a conference phone that prefers A-law, talks SIP over TCP and sends DTMF by INFO."""
from __future__ import annotations

from pysiptest.device import Device


class Chipmunk5000(Device):
    """A conference phone: SIP over TCP, PCMA first, 180 at once, no 100rel (it never sends or asks for
    reliable provisionals), keys pressed sent as SIP INFO (application/dtmf-relay, RFC 6086); it still
    offers and understands RFC 4733 telephone-events when a test asks for them explicitly."""

    model = "Chipmunk5000"
    vendor = "Chipmunk"
    user_agent = "Chipmunk5000/7.0"
    transport = "tcp"
    codecs = [8, 0]
    supported = ["replaces"]
    ring_delay = 0.0
    register_expires = 3600
    tone_hz = 1000.0
    dtmf_mode = "info"
