"""Behave environment hooks: start the system under test, give each scenario fresh phones.

A project's ``features/environment.py`` re-exports these::

    from pysiptest.bdd.environment import *  # noqa: F401,F403

Userdata: ``-D sut=refpbx|kamailio|external`` and ``-D target=HOST:PORT``.  No target means the
reference PBX (or, with sut=kamailio, a Kamailio that pysiptest starts) on a free local port.
"""
from __future__ import annotations

import logging
from typing import Any

from pysiptest.engine import Engine
from pysiptest.sut import make_sut

__all__ = ["before_all", "after_all", "before_scenario", "after_scenario"]

log = logging.getLogger("pysiptest.bdd")


def before_all(context: Any) -> None:
    """Start the system under test and the phones' engine."""
    ud = context.config.userdata
    context.sut = make_sut(ud.get("sut", ""), ud.get("target", ""))
    context.sut.start()
    context.engine = Engine()


def before_scenario(context: Any, scenario: Any) -> None:
    """Fresh phone book for each scenario."""
    context.phones = {}
    context.last_phone = None
    context.calls = []


def after_scenario(context: Any, scenario: Any) -> None:
    """Hang up what is still up, unregister, and on failure print each phone's unconsumed events."""
    for name, phone in getattr(context, "phones", {}).items():
        if scenario.status == "failed":
            pending = phone.unexpected()
            if pending:
                print(f"  {name}: events not consumed: " + ", ".join(e.describe() for e in pending))
        phone.close()
        if phone.registered:
            try:
                phone.unregister(timeout=2)
            except Exception as exc:  # teardown is best effort
                log.debug("unregister %s failed: %s", name, exc)


def after_all(context: Any) -> None:
    """Stop the engine and the system under test."""
    engine = getattr(context, "engine", None)
    if engine is not None:
        engine.close()
    sut = getattr(context, "sut", None)
    if sut is not None:
        sut.stop()
