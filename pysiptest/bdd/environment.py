"""Behave environment hooks: start the system under test, give each scenario fresh phones.

A project's ``features/environment.py`` re-exports these::

    from pysiptest.bdd.environment import *  # noqa: F401,F403

Userdata: ``-D sut=refpbx|kamailio|external``, ``-D target=HOST:PORT`` and ``-D users=FILE`` (one
``name:password`` a line: the accounts the phones use, and with the reference PBX the accounts it
accepts). No target means the reference PBX (or, with sut=kamailio, a Kamailio that pysiptest starts) on a
free local port.

A scenario that mentions voicemail in a step (or is tagged ``@voicemail``) gets a voicemail box: a phone
of model ``Voicemail`` registered as user ``voicemail``, run by :class:`pysiptest.voicemail.VoicemailService`
(``context.voicemail``). Without one, the SUT has nowhere to forward calls to, so busy stays busy.
Server state a scenario changed through the SUT adapter (DND, forwarding) is put back after it.
Tags: ``@voicemail`` (start the box), ``@proxy`` (needs a proxy that passes headers through: skipped
against the reference PBX, a B2BUA).
"""
from __future__ import annotations

import logging
from typing import Any

from pysiptest.device import find_device
from pysiptest.engine import Engine
from pysiptest.pbx.users import load_users
from pysiptest.phone import Phone
from pysiptest.sut import ReferencePbxSut, make_sut
from pysiptest.voicemail import VoicemailService

__all__ = ["before_all", "after_all", "before_scenario", "after_scenario"]

log = logging.getLogger("pysiptest.bdd")

VOICEMAIL_USER = "voicemail"
_UNDO = {"set_dnd": lambda args: (args[0], False), "set_forward": lambda args: (args[0], None)}


def before_all(context: Any) -> None:
    """Start the system under test and the phones' engine."""
    ud = context.config.userdata
    context.users = load_users(ud["users"]) if ud.get("users") else {}
    context.sut = make_sut(ud.get("sut", ""), ud.get("target", ""))
    if isinstance(context.sut, ReferencePbxSut) and context.users:
        context.sut.users = dict(context.users, **{VOICEMAIL_USER: context.users.get(VOICEMAIL_USER, "")})
    context.sut.start()
    context.engine = Engine()


def _needs_voicemail(scenario: Any) -> bool:
    if "voicemail" in scenario.effective_tags:
        return True
    return any("voicemail" in step.name.lower() for step in scenario.all_steps)


def _start_voicemail(context: Any) -> VoicemailService:
    sut = context.sut
    phone = Phone(VOICEMAIL_USER, find_device("Voicemail")(), engine=context.engine, proxy=(sut.host, sut.port),
                  domain=sut.domain, display_name="Voicemail", name="voicemail")
    phone.register(timeout=5)
    return VoicemailService(phone).start()


def before_scenario(context: Any, scenario: Any) -> None:
    """Fresh phone book for each scenario; a voicemail box when the scenario mentions voicemail."""
    context.phones = {}
    context.last_phone = None
    context.calls = []
    context.sut_undo = []
    context.voicemail = None
    if "proxy" in scenario.effective_tags and isinstance(context.sut, ReferencePbxSut):
        scenario.skip("@proxy: the reference PBX is a B2BUA and does not pass the caller's headers through")
        return
    context.voicemail = _start_voicemail(context) if _needs_voicemail(scenario) else None


def after_scenario(context: Any, scenario: Any) -> None:
    """Hang up what is still up, unregister, undo SUT changes; on failure print each phone's unconsumed events."""
    phones = dict(getattr(context, "phones", {}))
    vm = getattr(context, "voicemail", None)
    if vm is not None:
        phones["voicemail"] = vm.phone
        vm.stop()
    for name, phone in phones.items():
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
    for method, args in reversed(getattr(context, "sut_undo", [])):
        try:
            getattr(context.sut, method)(*_UNDO[method](args))
        except Exception as exc:
            log.warning("could not undo %s%s on the SUT: %s", method, args, exc)
    context.voicemail = None


def after_all(context: Any) -> None:
    """Stop the engine and the system under test."""
    engine = getattr(context, "engine", None)
    if engine is not None:
        engine.close()
    sut = getattr(context, "sut", None)
    if sut is not None:
        sut.stop()
