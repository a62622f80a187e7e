"""The pysiptest step library: phrases about people and phones.

A project's step module pulls it in with one line::

    from pysiptest.bdd.steps import *  # noqa: F401,F403

Steps stay thin: parse the phrase, call the library, assert. They live in small modules by topic
(phones and registration, calls, services such as DND and voicemail, assertions); importing this module
registers them all. ``python -m pysiptest.bdd.docs`` lists every phrase with an example (docs/steps.md).
"""
from __future__ import annotations

from pysiptest.bdd import steps_assert, steps_calls, steps_phones, steps_services  # noqa: F401  (registers)
from pysiptest.bdd._common import TALK_TOLERANCE, WAIT, active_call, last_phone, phone_of

__all__ = ["TALK_TOLERANCE", "WAIT", "active_call", "last_phone", "phone_of"]
