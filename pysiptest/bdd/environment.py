"""Behave environment hooks: start the system under test, give each scenario fresh phones.

A project's ``features/environment.py`` re-exports these::

    from pysiptest.bdd.environment import *  # noqa: F401,F403

Userdata: ``-D sut=refpbx|kamailio|external``, ``-D target=HOST:PORT`` and ``-D users=FILE`` (one
``name:password`` a line, ``#`` comments: the accounts the phones register and call with, answering digest
challenges with these passwords; a server pysiptest starts itself also gets them as its accounts, plus one
for the voicemail box). No target means the reference PBX (or, with sut=kamailio, a Kamailio that
pysiptest starts) on a free local port. ``sut=external`` (or a target without sut) is any server at
``target`` that pysiptest does not control: steps that need control (DND, forwarding) skip their scenario
with the reason, and a voicemail box that cannot register there skips the scenarios that need it.

A scenario that mentions voicemail in a step (or is tagged ``@voicemail``) gets a voicemail box: a phone
of model ``Voicemail`` registered as user ``voicemail``, run by :class:`pysiptest.voicemail.VoicemailService`
(``context.voicemail``). Without one, the SUT has nowhere to forward calls to, so busy stays busy.
Server state a scenario changed through the SUT adapter (DND, forwarding) is put back after it.
Tags: ``@voicemail`` (start the box), ``@proxy`` (needs a proxy that passes headers through: skipped
against the reference PBX, a B2BUA), ``@not-<sut>`` / ``@<sut>-only`` (skipped against that system under
test / against every other one; ``<sut>`` is refpbx, kamailio or external; the reason shown is the
scenario's description, else the feature's).

When a scenario fails, the report shows the SIP ladder of every phone in it (time, direction and peer,
start line, CSeq, short Call-ID of each message sent and received, from the engine's message trace) and
the events no step consumed. ``-D trace=N`` keeps the last N messages (default 4096; 0 switches the trace
off, and the ladder with it).
"""
from __future__ import annotations

import logging
import secrets
import sys
import time
from typing import Any, Optional

from pysiptest.device import find_device
from pysiptest.engine import Engine
from pysiptest.pbx.users import load_users
from pysiptest.phone import Phone
from pysiptest.sut import ExternalSut, ReferencePbxSut, make_sut
from pysiptest import trace
from pysiptest.voicemail import VoicemailService

__all__ = ["before_all", "after_all", "before_scenario", "after_scenario"]

log = logging.getLogger("pysiptest.bdd")

VOICEMAIL_USER = "voicemail"
_UNDO = {"set_dnd": lambda args: (args[0], False), "set_forward": lambda args: (args[0], None)}


def before_all(context: Any) -> None:
    """Start the system under test and the phones' engine."""
    ud = context.config.userdata
    raw = str(ud.get("trace", trace.DEFAULT_CAPACITY)).strip()
    if not raw.isdigit() or int(raw) > 65536:
        raise ValueError(f"-D trace={raw!r}: give the number of SIP messages to keep, 0..65536 (0: no ladder)")
    capacity = int(raw)
    context.users = load_users(ud["users"]) if ud.get("users") else {}
    # the voicemail box's account: from the users file, else one made up for a server we start ourselves
    context.voicemail_password = context.users.get(VOICEMAIL_USER) or (secrets.token_hex(8) if context.users else None)
    server_users = dict(context.users, **{VOICEMAIL_USER: context.voicemail_password}) if context.users else None
    context.sut = make_sut(ud.get("sut", ""), ud.get("target", ""), users=server_users)
    context.sut.start()
    context.engine = Engine()
    if capacity:
        trace.enable(context.engine, capacity)


def _needs_voicemail(scenario: Any) -> bool:
    if "voicemail" in scenario.effective_tags:
        return True
    return any("voicemail" in step.name.lower() for step in scenario.all_steps)


def _start_voicemail(context: Any, scenario: Any) -> Optional[VoicemailService]:
    sut = context.sut
    phone = Phone(VOICEMAIL_USER, find_device("Voicemail")(), engine=context.engine, proxy=(sut.host, sut.port),
                  domain=sut.domain, display_name="Voicemail", name="voicemail",
                  password=getattr(context, "voicemail_password", None))
    try:
        phone.register(timeout=5)
    except AssertionError as exc:
        if not isinstance(sut, ExternalSut):
            raise
        # a server we do not control may have no account for the box: that is its set-up, not a failure
        scenario.skip(f"the voicemail box could not register with {sut.target} ({exc}); give it an account "
                      f"with a '{VOICEMAIL_USER}:PASSWORD' line in -D users=FILE")
        return None
    return VoicemailService(phone).start()


def _sut_skip_reason(scenario: Any, sut: str) -> str:
    """Why the scenario does not run against this SUT (``@not-<sut>``, ``@<other>-only``), or ""."""
    for tag in scenario.effective_tags:
        excluded = tag == f"not-{sut}" or (tag.endswith("-only") and tag[:-len("-only")] != sut)
        if excluded:
            why = " ".join(line.strip() for line in scenario.description or scenario.feature.description)
            return f"@{tag} ({sut}): {why or 'not for this system under test'}"
    return ""


def before_scenario(context: Any, scenario: Any) -> None:
    """Fresh phone book for each scenario; a voicemail box when the scenario mentions voicemail."""
    context.phones = {}
    context.last_phone = None
    context.calls = []
    context.sut_undo = []
    context.voicemail = None
    context.scenario_started = time.time()
    if "proxy" in scenario.effective_tags and isinstance(context.sut, ReferencePbxSut):
        scenario.skip("@proxy: the reference PBX is a B2BUA and does not pass the caller's headers through")
        return
    reason = _sut_skip_reason(scenario, getattr(context.sut, "name", ""))
    if reason:
        scenario.skip(reason)
        return
    context.voicemail = _start_voicemail(context, scenario) if _needs_voicemail(scenario) else None


def after_scenario(context: Any, scenario: Any) -> None:
    """Hang up what is still up, unregister, undo SUT changes; on failure print each phone's unconsumed events."""
    phones = dict(getattr(context, "phones", {}))
    vm = getattr(context, "voicemail", None)
    if vm is not None:
        phones["voicemail"] = vm.phone
    reason = getattr(scenario, "skip_reason", None)
    if scenario.status == "skipped" and reason and sys.__stdout__ is not None:
        # behave's formatters do not print why a scenario was skipped; the terminal gets it past the capture
        sys.__stdout__.write(f"  Skipped: {reason}\n")
        sys.__stdout__.flush()
    if scenario.status == "failed":  # the ladder as it was when the scenario failed, before the clean-up below
        report = failure_report(phones, getattr(context, "scenario_started", 0.0))
        if report:
            _show(context, report)
    if vm is not None:
        vm.stop()
    for name, phone in phones.items():
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


def failure_report(phones: dict[str, Phone], since: float = 0.0) -> str:
    """The SIP ladder of these phones since ``since`` (time.time()) and each phone's unconsumed events."""
    entries = [(name, e) for name, phone in phones.items() for e in trace.ladder(phone, since)]
    parts = []
    if entries:
        parts.append("SIP ladder (-> sent, <- received):\n" + trace.format_ladder(entries))
    for name, phone in phones.items():
        pending = phone.unexpected()
        if pending:
            parts.append(f"{name}: events not consumed: " + ", ".join(e.describe() for e in pending))
    return "\n".join(parts)


def _show(context: Any, report: str) -> None:
    """Put the report where the reader of a failed run looks: behave shows what after_scenario prints under
    the failed scenario, and the failed step's error message (what JUnit reports carry) gets it too."""
    failed = next((s for s in reversed(getattr(context.scenario, "steps", [])) if s.status == "failed"), None)
    if failed is not None and isinstance(getattr(failed, "error_message", None), str):
        failed.error_message += "\n" + report
    print(report)


def after_all(context: Any) -> None:
    """Stop the engine and the system under test."""
    engine = getattr(context, "engine", None)
    if engine is not None:
        engine.close()
    sut = getattr(context, "sut", None)
    if sut is not None:
        sut.stop()
