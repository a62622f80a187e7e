"""The pysiptest step library: phrases about people and phones.

A project's step module pulls it in with one line::

    from pysiptest.bdd.steps import *  # noqa: F401,F403

Steps stay thin: parse the phrase, call the library, assert.
"""
from __future__ import annotations

import time
from typing import Any

from behave import given, then, when

from pysiptest.call import Call
from pysiptest.device import find_device
from pysiptest.events import RequestReceived
from pysiptest.phone import Phone

#: tolerance of "talk for N seconds": each side receives N*50 packets within this fraction
TALK_TOLERANCE = 0.10
WAIT = 5.0


def phone_of(context: Any, name: str) -> Phone:
    """The phone of a person named in the scenario; AssertionError listing the known ones."""
    try:
        return context.phones[name]
    except KeyError:
        known = ", ".join(context.phones) or "none yet"
        raise AssertionError(f"no phone for {name!r}; phones in this scenario: {known}") from None


def active_call(context: Any, name: str) -> Call:
    """The person's call that is still up (the newest one)."""
    phone = phone_of(context, name)
    calls = phone.active_calls
    if not calls:
        raise AssertionError(f"{name} has no call; their calls: {phone.calls}")
    return calls[-1]


@given("{name} uses {device} phone")
def step_uses_phone(context: Any, name: str, device: str) -> None:
    try:
        cls = find_device(device)
    except KeyError as exc:
        raise AssertionError(str(exc.args[0])) from None
    sut = context.sut
    user = name.lower()
    phone = Phone(user, cls(), engine=context.engine, proxy=(sut.host, sut.port), domain=sut.domain,
                  display_name=name, name=name)
    phone.register(timeout=WAIT)
    context.phones[name] = phone
    context.last_phone = name


@when("{caller} calls {callee}")
def step_calls(context: Any, caller: str, callee: str) -> None:
    call = phone_of(context, caller).call(phone_of(context, callee).user)
    context.calls.append((caller, callee, call))


@then("{name} answers the phone")
def step_answers(context: Any, name: str) -> None:
    phone = phone_of(context, name)
    call = phone.wait_for_call(timeout=WAIT)
    call.answer()
    call.wait_state("confirmed", timeout=WAIT)
    for caller, callee, c in context.calls:
        if callee == name and c.is_active:
            c.wait_state("confirmed", timeout=WAIT)


@then("{a} and {b} talk for {seconds:d} seconds")
def step_talk(context: Any, a: str, b: str, seconds: int) -> None:
    calls = {n: active_call(context, n) for n in (a, b)}
    for n, c in calls.items():
        if c.state != "confirmed":
            raise AssertionError(f"{n}'s call is {c.state}, not talking")
    before = {n: c.media_stats().get("rx_packets", 0) for n, c in calls.items()}
    time.sleep(seconds)
    expected = seconds * 1000 // phone_of(context, a).device.ptime
    for n, c in calls.items():
        st = c.media_stats()
        got = st.get("rx_packets", 0) - before[n]
        assert abs(got - expected) <= expected * TALK_TOLERANCE, (
            f"{n} received {got} RTP packets in {seconds} s, expected {expected} ±{TALK_TOLERANCE:.0%} "
            f"(lost {st.get('rx_lost')}, largest gap {st.get('max_gap_ms')} ms)")
        assert c.state == "confirmed", f"{n}'s call ended while talking: {c.end_reason}"


@then("{name} hangs up the phone")
def step_hangs_up(context: Any, name: str) -> None:
    call = active_call(context, name)
    call.hangup()
    call.wait_state("terminated", timeout=WAIT)


@then("{name} receives {method:w}")
def step_receives(context: Any, name: str, method: str) -> None:
    phone_of(context, name).expect(RequestReceived, timeout=WAIT, method=method.upper())
