"""Squirrel350: a desk phone that rings quickly, offers PCMU then PCMA, and does 100rel and session timers."""
from __future__ import annotations

from pysiptest.device import Device


class Squirrel350(Device):
    """A desk phone: SIP over UDP, PCMU first, 180 after 0.2 s, sent reliably (RFC 3262) when the caller
    supports 100rel; asks for session timers (RFC 4028, Session-Expires 1800 s, refreshed by UPDATE); keys
    pressed go as RFC 4733 telephone-events."""

    model = "Squirrel350"
    vendor = "Squirrel"
    user_agent = "Squirrel350/2.1.4"
    transport = "udp"
    codecs = [0, 8]
    supported = ["100rel", "timer", "replaces"]
    reliable_provisionals = True
    session_expires = 1800
    min_se = 90
    ring_delay = 0.2
    register_expires = 600
    tone_hz = 440.0
    dtmf_mode = "rfc4733"
