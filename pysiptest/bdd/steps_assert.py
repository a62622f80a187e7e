"""Assertions about what a phone received: requests, headers, response codes, call outcomes."""
from __future__ import annotations

from typing import Any, Optional

from behave import step

from pysiptest.bdd._common import WAIT, phone_of, wait_for
from pysiptest.events import RequestReceived, ResponseReceived


@step("{name:Name} receives a {code:d} response")
def step_receives_response(context: Any, name: str, code: int) -> None:
    """The person's phone received a response with that status (to any of its requests).

    Example: ``Then Alice receives a 486 response``
    """
    phone = phone_of(context, name)

    def found() -> Optional[bool]:
        return True if any(isinstance(ev, ResponseReceived) and ev.status == code for _, ev in list(phone.history)) \
            else None

    wait_for(found, WAIT, lambda: f"{name} received no {code} response; responses: " + (", ".join(
        f"{ev.status} {ev.method}" for _, ev in phone.history if isinstance(ev, ResponseReceived)) or "none"))


@step("the call fails with {code:d}")
def step_call_fails(context: Any, code: int) -> None:
    """The scenario's newest call ended with that final status.

    Example: ``Then the call fails with 486``
    """
    if not context.calls:
        raise AssertionError("no call was made in this scenario")
    caller, callee, call = context.calls[-1]
    call.wait_state("terminated", timeout=WAIT)
    assert call.end_status == code, f"{caller}'s call to {callee} ended with {call.end_status} ({call.end_reason}), " \
                                    f"expected {code}"


def _received(context: Any, name: str, method: str) -> list[Any]:
    """Messages of requests of that method the phone received (incoming INVITEs included)."""
    phone = phone_of(context, name)
    msgs = [ev.message for _, ev in list(phone.history) if isinstance(ev, RequestReceived) and ev.method == method]
    if method == "INVITE":
        msgs = [c.request for c in phone.calls if c.direction == "incoming" and c.request is not None] + msgs
    return msgs


@step("{name:Name} receives {method:Method}")
def step_receives(context: Any, name: str, method: str) -> None:
    """The person's phone received a request of that method (BYE, CANCEL, INVITE, MESSAGE, NOTIFY, ...).

    Example: ``Then Alice receives BYE``
    """
    if method == "INVITE":
        wait_for(lambda: True if _received(context, name, method) else None, WAIT,
                 lambda: f"{name} received no INVITE")
        return
    phone_of(context, name).expect(RequestReceived, timeout=WAIT, method=method)


@step("{name:Name} receives an {method:Method} with header {header:Header} containing {value}")
def step_receives_with_header(context: Any, name: str, method: str, header: str, value: str) -> None:
    """The person's phone received that request with a header whose value contains the text (case-insensitive).

    Example: ``Then Bob receives an INVITE with header Supported containing 100rel``
    """
    def found() -> Optional[bool]:
        for m in _received(context, name, method):
            v = m.header(header)
            if v is not None and value.lower() in v.lower():
                return True
        return None

    def describe() -> str:
        seen = [m.header(header) for m in _received(context, name, method)]
        return (f"{name} received no {method} whose {header} contains {value!r}; "
                f"{header} values seen: {seen or 'no ' + method + ' at all'}")

    wait_for(found, WAIT, describe)


@step("{name:Name} receives an {method:Method} with {text} in the body")
def step_receives_with_body(context: Any, name: str, method: str, text: str) -> None:
    """The person's phone received that request with the text in its body (e.g. an SDP attribute).

    Example: ``Then Bob receives an INVITE with a=sendonly in the body``
    """
    def found() -> Optional[bool]:
        for m in _received(context, name, method):
            if text.encode() in (m.body or b""):
                return True
        return None

    wait_for(found, WAIT, lambda: f"{name} received no {method} with {text!r} in its body")
