"""Steps about calls: calling, answering, rejecting, cancelling, talking, hold and resume."""
from __future__ import annotations

import time
from typing import Any

from behave import step, then

from pysiptest import sdp
from pysiptest.bdd._common import TALK_TOLERANCE, WAIT, active_call, phone_of, ringing_call, wait_for
from pysiptest.call import Call
from pysiptest.events import ResponseReceived


@step("{caller:Name} calls {callee:Name}")
def step_calls(context: Any, caller: str, callee: str) -> None:
    """Send an INVITE from the caller's phone to the callee's user, through the SUT.

    Example: ``When Alice calls Bob``
    """
    call = phone_of(context, caller).call(phone_of(context, callee).user)
    context.calls.append((caller, callee, call))


@step("{name:Name} answers the phone")
def step_answers(context: Any, name: str) -> None:
    """Wait for the phone to ring, answer (200 OK with SDP), wait until the call is confirmed on both sides.

    Example: ``Then Bob answers the phone``
    """
    call = ringing_call(context, name)
    call.answer()
    call.wait_state("confirmed", timeout=WAIT)
    for _, callee, c in context.calls:
        if callee == name and c.is_active:
            c.wait_state("confirmed", timeout=WAIT)


@step("{name:Name}'s phone rings")
def step_rings(context: Any, name: str) -> None:
    """Wait until an incoming call rings on the person's phone (it is left ringing).

    Example: ``Then Bob's phone rings``
    """
    ringing_call(context, name)


@step("{name:Name} hears ringback")
def step_ringback(context: Any, name: str) -> None:
    """The person's outgoing call got 180 or 183.

    Example: ``Then Alice hears ringback``
    """
    call = active_call(context, name)
    wait_for(lambda: True if call.state in ("ringing", "early") else None, WAIT,
             lambda: f"{name}'s call is {call.state}, expected ringing")


@step("{name:Name} does not answer")
def step_does_not_answer(context: Any, name: str) -> None:
    """The phone rings and nobody picks it up (the call is left to the SUT's no-answer handling).

    Example: ``When Bob does not answer``
    """
    ringing_call(context, name)


@step("{name:Name} rejects the call as busy")
def step_rejects_busy(context: Any, name: str) -> None:
    """Answer the ringing call with 486 Busy Here.

    Example: ``When Bob rejects the call as busy``
    """
    ringing_call(context, name).reject(486)


@step("{name:Name} rejects the call with {code:d}")
def step_rejects_with(context: Any, name: str, code: int) -> None:
    """Answer the ringing call with a final status of your choice.

    Example: ``When Bob rejects the call with 603``
    """
    ringing_call(context, name).reject(code)


@step("{name:Name} cancels the call")
def step_cancels(context: Any, name: str) -> None:
    """CANCEL the person's unanswered outgoing call and wait until it has ended (487).

    Example: ``When Alice cancels the call``
    """
    call = active_call(context, name)
    call.cancel()
    call.wait_state("terminated", timeout=WAIT)


@step("{name:Name} hangs up the phone")
def step_hangs_up(context: Any, name: str) -> None:
    """End the person's call (BYE when answered) and wait until it has ended.

    Example: ``Then Bob hangs up the phone``
    """
    call = active_call(context, name)
    call.hangup()
    call.wait_state("terminated", timeout=WAIT)


def check_talk(pairs: dict[str, Call], seconds: float, ptime: int, wait: float = WAIT) -> None:
    """Each call receives seconds*1000/ptime RTP packets (±TALK_TOLERANCE) over the next seconds."""
    for n, c in pairs.items():
        c.wait_state("confirmed", timeout=wait)
    before = {n: c.media_stats().get("rx_packets", 0) for n, c in pairs.items()}
    time.sleep(seconds)
    expected = int(seconds * 1000 // ptime)
    for n, c in pairs.items():
        st = c.media_stats()
        got = st.get("rx_packets", 0) - before[n]
        assert abs(got - expected) <= expected * TALK_TOLERANCE, (
            f"{n} received {got} RTP packets in {seconds:g} s, expected {expected} ±{TALK_TOLERANCE:.0%} "
            f"(lost {st.get('rx_lost')}, largest gap {st.get('max_gap_ms')} ms)")
        assert c.state == "confirmed", f"{n}'s call ended while talking: {c.end_reason}"


@step("{a:Name} and {b:Name} talk for {seconds:d} seconds")
def step_talk(context: Any, a: str, b: str, seconds: int) -> None:
    """Both calls stay up and each side receives its peer's RTP (N*50 packets ±10% at 20 ms).

    Example: ``And Alice and Bob talk for 10 seconds``
    """
    check_talk({n: active_call(context, n) for n in (a, b)}, seconds, phone_of(context, a).device.ptime)


def _reinvite(context: Any, name: str, direction: str) -> None:
    phone = phone_of(context, name)
    call = active_call(context, name)
    assert call.state == "confirmed" and call.dialog_id, f"{name}'s call is {call.state}, not established"
    pt = call.payload_type if call.payload_type is not None else phone.device.codecs[0]
    body = sdp.build(phone.host, call.media_port, [pt], ptime=phone.device.ptime, direction=direction,
                     username=phone.user)
    sent = time.time()
    phone.engine.core.dialog_request(call.dialog_id, "INVITE",
                                     phone._contact_headers() + [("Content-Type", "application/sdp")], body)

    def answered() -> Any:
        for t, ev in list(phone.history):
            if t >= sent and isinstance(ev, ResponseReceived) and ev.method == "INVITE" and ev.status >= 200:
                return ev
        return None

    ev = wait_for(answered, WAIT, lambda: f"{name}'s re-INVITE ({direction}) got no final response in {WAIT:g} s")
    assert 200 <= ev.status < 300, f"{name}'s re-INVITE ({direction}) was refused: {ev.status}"


@step("{name:Name} puts the call on hold")
def step_hold(context: Any, name: str) -> None:
    """Send a re-INVITE with a=sendonly on the person's call and expect 2xx.

    Example: ``When Alice puts the call on hold``
    """
    _reinvite(context, name, "sendonly")


@step("{name:Name} resumes the call")
def step_resume(context: Any, name: str) -> None:
    """Send a re-INVITE with a=sendrecv on the person's call and expect 2xx.

    Example: ``When Alice resumes the call``
    """
    _reinvite(context, name, "sendrecv")


@then("{name:Name}'s call ends")
def step_call_ends(context: Any, name: str) -> None:
    """The person's newest call ends within the wait time.

    Example: ``Then Bob's call ends``
    """
    phone = phone_of(context, name)
    assert phone.calls, f"{name} has had no call"
    phone.calls[-1].wait_state("terminated", timeout=WAIT)
