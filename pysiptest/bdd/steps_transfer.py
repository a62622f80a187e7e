"""Steps about call transfer: blind (REFER, RFC 3515) and attended (REFER with Replaces, RFC 3891)."""
from __future__ import annotations

from typing import Any, Optional

from behave import step

from pysiptest.bdd._common import WAIT, call_between, phone_of, ringing_call, wait_for
from pysiptest.call import Call
from pysiptest.transfer import Transfer

#: how long a transfer may take to report its outcome (the new call is set up meanwhile)
TRANSFER_WAIT = 10.0


def _transfers(context: Any) -> dict[str, Transfer]:
    if not hasattr(context, "transfers") or context.transfers is None:
        context.transfers = {}
    return context.transfers


def _accepted(name: str, xfer: Transfer) -> None:
    """Wait for the REFER's final response and require a 2xx (202 Accepted)."""
    wait_for(lambda: xfer.status or None, WAIT, lambda: f"{name}'s REFER got no final response in {WAIT:g} s")
    assert 200 <= xfer.status < 300, f"{name}'s REFER was refused: {xfer.status}"


def _only_call(context: Any, name: str) -> Call:
    phone = phone_of(context, name)
    calls = [c for c in phone.active_calls if c.state == "confirmed"]
    if len(calls) != 1:
        raise AssertionError(f"{name} must have exactly one call up to transfer it; calls: {phone.calls} "
                             f"(name the person: \"{name} transfers Alice to Carol\")")
    return calls[0]


@step("{name:Name} transfers the call to {target:Name}")
def step_blind_transfer(context: Any, name: str, target: str) -> None:
    """Blind transfer: REFER the peer of the person's call to the target (Refer-To the target's AOR) and
    expect 202; the peer then calls the target, and the person's call ends once the target answers.

    Example: ``When Bob transfers the call to Carol``
    """
    user = phone_of(context, target).user
    xfer = _only_call(context, name).transfer(user)
    _transfers(context)[name] = xfer
    _accepted(name, xfer)


@step("{name:Name} transfers {peer:Name} to {target:Name}")
def step_blind_transfer_peer(context: Any, name: str, peer: str, target: str) -> None:
    """Blind transfer of the person's call with the peer to the target (when the person has several calls).

    Example: ``When Bob transfers Alice to Carol``
    """
    user = phone_of(context, target).user
    xfer = call_between(context, name, peer).transfer(user)
    _transfers(context)[name] = xfer
    _accepted(name, xfer)


@step("{name:Name} transfers {peer:Name} to {target:Name} after consulting")
def step_attended_transfer(context: Any, name: str, peer: str, target: str) -> None:
    """Attended transfer: the person's call with the target (the consultation; placed and answered here when
    there is none yet), then REFER the peer to the target with Replaces naming the consultation's dialog. The
    target's phone replaces the consultation by the peer's call; the transfer must report 200.

    Example: ``When Bob transfers Alice to Carol after consulting``
    """
    phone, _, target_phone = (phone_of(context, n) for n in (name, peer, target))
    original = call_between(context, name, peer)
    try:
        consult = call_between(context, name, target)
    except AssertionError:
        consult = phone.call(target_phone.user)
        context.calls.append((name, target, consult))
        incoming = ringing_call(context, target)
        incoming.answer()
        incoming.wait_state("confirmed", timeout=WAIT)
    consult.wait_state("confirmed", timeout=WAIT)
    xfer = original.attended_transfer(consult)
    _transfers(context)[name] = xfer
    _accepted(name, xfer)
    outcome = xfer.wait(TRANSFER_WAIT)
    assert 200 <= outcome < 300, f"{name}'s attended transfer of {peer} to {target} failed: {outcome} " \
                                 f"(progress {xfer.progress})"


@step("{name:Name}'s transfer succeeds")
def step_transfer_succeeds(context: Any, name: str) -> None:
    """The person's last transfer reported success (the final sipfrag NOTIFY says 200), and the transferred
    call has ended.

    Example: ``Then Bob's transfer succeeds``
    """
    xfer: Optional[Transfer] = _transfers(context).get(name)
    if xfer is None:
        raise AssertionError(f"{name} has transferred no call in this scenario; transfers by: "
                             f"{', '.join(_transfers(context)) or 'nobody'}")
    outcome = xfer.wait(TRANSFER_WAIT)
    assert 200 <= outcome < 300, f"{name}'s transfer to {xfer.target} failed: {outcome} (progress {xfer.progress})"
    xfer.call.wait_state("terminated", timeout=WAIT)


@step("{name:Name} has no call up")
def step_no_call(context: Any, name: str) -> None:
    """All of the person's calls have ended (e.g. after transferring them).

    Example: ``Then Bob has no call up``
    """
    phone = phone_of(context, name)
    wait_for(lambda: True if not phone.active_calls else None, WAIT,
             lambda: f"{name} still has calls up: {phone.active_calls}")
