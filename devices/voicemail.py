"""Voicemail: the voicemail server as a device (run by :class:`pysiptest.voicemail.VoicemailService`)."""
from __future__ import annotations

from pysiptest.device import Device


class Voicemail(Device):
    """A voicemail server: no 180, answers after 0.1 s, plays a 425 Hz greeting tone, PCMU/PCMA; keeps the
    audio each call brings (``record_audio``)."""

    model = "Voicemail"
    vendor = "pysiptest"
    user_agent = "pysiptest-voicemail/0.1"
    codecs = [0, 8]
    supported = ["replaces"]
    ring_delay = None
    auto_answer_after = 0.1
    register_expires = 3600
    media_source = "tone"
    tone_hz = 425.0
    record_audio = True
