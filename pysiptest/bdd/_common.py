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


# -- parameter types of the signalling, media and transfer steps ------------------------------------------
#: codec names a phrase may use, with their static payload types (RFC 3551); a number is taken as it is
CODECS = {"PCMU": 0, "GSM": 3, "G723": 4, "PCMA": 8, "G722": 9, "G728": 15, "G729": 18}


@parse.with_pattern(r"[0-9*#A-D]+")
def _digits(text: str) -> str:
    return text


@parse.with_pattern(r"[A-Za-z0-9]+")
def _codec(text: str) -> int:
    return codec_pt(text)


@parse.with_pattern(r"[A-Za-z0-9]+(?:(?:, | and |, and )[A-Za-z0-9]+)*")
def _codec_list(text: str) -> list[int]:
    return [codec_pt(c) for c in text.replace(", and ", ", ").replace(" and ", ", ").split(", ")]


def codec_pt(name: str) -> int:
    """The payload type of a codec name (PCMU, PCMA, G722, ...) or number; AssertionError listing the names."""
    if name.isdigit() and int(name) < 128:
        return int(name)
    try:
        return CODECS[name.upper()]
    except KeyError:
        raise AssertionError(f"unknown codec {name!r}; known: {', '.join(CODECS)} or a payload type number") \
            from None


def codec_name(pt: Optional[int]) -> str:
    """PCMU for 0, ... (the number when the payload type has no name here)."""
    return next((n for n, p in CODECS.items() if p == pt), str(pt))


#: Digits: DTMF keys (0-9 * # A-D); Codec: a codec name or payload type; Codecs: "PCMU, PCMA and G722"
register_type(Digits=_digits, Codec=_codec, Codecs=_codec_list)


def call_between(context: Any, name: str, peer: str) -> Call:
    """The person's newest call that is up with the peer (matched by the peer's SIP user in the remote URI)."""
    from pysiptest._uri import uri_user

    phone = phone_of(context, name)
    user = phone_of(context, peer).user
    for c in reversed(phone.active_calls):
        if uri_user(c.remote) == user:
            return c
    raise AssertionError(f"{name} has no call up with {peer}; {name}'s calls: {phone.calls}")


def since(phone: Phone, t0: float, kind: type, **match: Any) -> list[Any]:
    """Events of that type in the phone's history since t0 (time.time()) whose attributes equal match."""
    return [ev for t, ev in list(phone.history) if t >= t0 and isinstance(ev, kind)
            and all(getattr(ev, k, None) == v for k, v in match.items())]


# -- the network the scenario's phones use ----------------------------------------------------------------
def phone_network(context: Any) -> dict[str, Any]:
    """Keyword arguments of a new Phone for this scenario: the SUT as proxy, and the address family and
    transport a step such as "the server listens on IPv6" or "... on TLS" chose (default: UDP, the SUT's
    family, loopback)."""
    sut = context.sut
    net = dict(getattr(context, "phone_net", None) or {})
    net.setdefault("proxy", (sut.host.strip("[]"), sut.port))
    if ":" in net["proxy"][0]:
        net.setdefault("host", "::1")
    return net


def replace_sut(context: Any, sut: Any, users: Optional[dict[str, str]] = None) -> None:
    """Make ``sut`` (started) the system under test of this scenario only; it is stopped after the scenario,
    once its phones have unregistered. ``users`` are the accounts the phones use (name: password)."""
    context.sut = sut  # set in the scenario layer: behave restores the run's SUT after the scenario
    if users is not None:
        context.users = dict(users)
    context.add_cleanup(sut.stop)


def final_response(phone: Phone, method: str, name: str, timeout: float = WAIT) -> Any:
    """The next final response (a ResponseReceived, consumed) to the phone's request of that method, past the
    401/407 challenges the phone answered on the way; AssertionError when none comes in time."""
    from pysiptest.events import ResponseReceived

    deadline = time.monotonic() + timeout
    challenge = None
    while True:
        try:
            ev = phone.expect(ResponseReceived, timeout=max(0.0, deadline - time.monotonic()), method=method)
        except AssertionError:
            if challenge is not None:
                return challenge  # challenged and not sent again: that is the outcome
            raise
        if ev.status in (401, 407) and phone.auth.credentials:
            challenge = ev  # answered with credentials (the request went again), unless nothing follows
        elif ev.status >= 200:
            return ev
