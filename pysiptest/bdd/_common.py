"""Shared pieces of the step library: parameter types, lookups of phones and calls, bounded waits."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, TypeVar

import parse
from behave import register_type

from pysiptest.call import Call
from pysiptest.phone import Phone

#: seconds a step waits for something the network should do at once
WAIT = 5.0
#: tolerance of "talk for N seconds": each side receives N*1000/ptime packets within this fraction
TALK_TOLERANCE = 0.10

T = TypeVar("T")


@parse.with_pattern(r"[A-Z][A-Za-z0-9_-]*")
def _name(text: str) -> str:
    return text


@parse.with_pattern(r"[A-Za-z][A-Za-z0-9_.-]*")
def _word(text: str) -> str:
    return text


@parse.with_pattern(r"[A-Z]+")
def _method(text: str) -> str:
    return text


@parse.with_pattern(r"[A-Za-z][A-Za-z0-9-]*")
def _header(text: str) -> str:
    return text


#: Name: a person in the scenario (capitalised: Alice, Bob, Carol); Device: a model; Method: a SIP method
register_type(Name=_name, Device=_word, Word=_word, Method=_method, Header=_header)


def phone_of(context: Any, name: str) -> Phone:
    """The phone of a person named in the scenario; AssertionError listing the known ones."""
    phones = getattr(context, "phones", {})
    try:
        return phones[name]
    except KeyError:
        known = ", ".join(phones) or "none yet (start with: Given Alice uses Squirrel350 phone)"
        raise AssertionError(f"no phone for {name!r}; phones in this scenario: {known}") from None


def last_phone(context: Any) -> Phone:
    """The phone named last by a "uses ... phone" step (for phrases such as "Status is set to DND")."""
    if not getattr(context, "last_phone", None):
        raise AssertionError("no phone named yet: this step applies to the phone named last")
    return phone_of(context, context.last_phone)


def active_call(context: Any, name: str) -> Call:
    """The person's call that is still up (the newest one)."""
    phone = phone_of(context, name)
    calls = phone.active_calls
    if not calls:
        raise AssertionError(f"{name} has no call up; their calls: {phone.calls}")
    return calls[-1]


def wait_for(what: Callable[[], Optional[T]], timeout: float, describe: Callable[[], str]) -> T:
    """Poll what() every 20 ms until it returns something not None; AssertionError(describe()) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(describe())
        time.sleep(0.02)


def ringing_call(context: Any, name: str, timeout: float = WAIT) -> Call:
    """The person's newest incoming call that is still ringing, waiting for one to arrive."""
    from pysiptest.events import IncomingCall

    phone = phone_of(context, name)

    def find() -> Optional[Call]:
        for c in reversed(phone.calls):
            if c.direction == "incoming" and c.state in ("ringing", "early"):
                return c
        return None

    call = wait_for(find, timeout, lambda: f"{name}'s phone did not ring within {timeout:g} s; "
                    f"events: {', '.join(e.describe() for e in phone.unexpected()[-10:]) or 'none'}")
    try:  # the IncomingCall event is this step's to consume
        phone.expect(IncomingCall, timeout=0, call=call)
    except AssertionError:
        pass
    return call


def sut_control(context: Any, method: str, *args: Any) -> None:
    """Call a control method of the system under test; skip the scenario when it has none."""
    fn = getattr(context.sut, method)
    try:
        fn(*args)
    except NotImplementedError as exc:
        context.scenario.skip(str(exc))  # the remaining steps are skipped with this reason
        return
    context.sut_undo.append((method, args))
