"""The pysiptest step library: phrases about people and phones.

A project's step module pulls it in with one line::

    from pysiptest.bdd.steps import *  # noqa: F401,F403

Steps stay thin: parse the phrase, call the library, assert. They live in small modules by topic
(phones and registration, calls, services such as DND and voicemail, transfer, media and DTMF, signalling
such as OPTIONS/INFO/UPDATE/PRACK/session timers, presence, per-scenario servers, assertions); importing this module
registers them all. ``python -m pysiptest.bdd.docs`` lists every phrase with an example (docs/steps.md).
"""
from __future__ import annotations

from pysiptest.bdd import (  # noqa: F401  (importing registers the steps)
    steps_assert,
    steps_calls,
    steps_media,
    steps_network,
    steps_phones,
    steps_presence,
    steps_services,
    steps_signalling,
    steps_transfer,
)
from pysiptest.bdd._common import TALK_TOLERANCE, WAIT, active_call, last_phone, phone_of

__all__ = ["TALK_TOLERANCE", "WAIT", "active_call", "last_phone", "phone_of"]
