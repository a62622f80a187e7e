"""Steps about PBX services: DND, call forwarding, voicemail and message waiting, MESSAGE."""
from __future__ import annotations

from typing import Any, Optional

from behave import step, then

from pysiptest.bdd._common import WAIT, active_call, final_response, last_phone, phone_of, sut_control, wait_for
from pysiptest.bdd.steps_calls import check_talk
from pysiptest.events import RequestReceived
from pysiptest.voicemail import VoicemailService, parse_message_summary

#: how long a call may take to reach voicemail (the SUT's no-answer time plus the usual wait)
VOICEMAIL_WAIT = 15.0
_STATUSES = {"dnd": True, "do-not-disturb": True, "available": False, "online": False}


def voicemail_of(context: Any) -> VoicemailService:
    """The scenario's voicemail box (started by the environment when a step mentions voicemail)."""
    vm = getattr(context, "voicemail", None)
    if vm is None:
        raise AssertionError("no voicemail box in this scenario: mention voicemail in a step or tag it @voicemail")
    return vm


def _set_status(context: Any, user: str, status: str) -> None:
    key = status.lower()
    if key not in _STATUSES:
        raise AssertionError(f"unknown status {status!r}; known: DND, available")
    sut_control(context, "set_dnd", user, _STATUSES[key])


@step("Status is set to {status:Word}")
def step_status_last(context: Any, status: str) -> None:
    """Set the presence/DND status of the phone named last, through the SUT (DND or available).

    Example: ``And Status is set to DND``
    """
    _set_status(context, last_phone(context).user, status)


@step("{name:Name} sets status to {status:Word}")
def step_status_of(context: Any, name: str, status: str) -> None:
    """Set a person's status (DND or available) through the SUT.

    Example: ``Given Bob sets status to DND``
    """
    _set_status(context, phone_of(context, name).user, status)


@step("{name:Name} forwards calls to {target:Name}")
def step_forward(context: Any, name: str, target: str) -> None:
    """Unconditional call forwarding in the SUT from one person to another.

    Example: ``Given Bob forwards calls to Carol``
    """
    sut_control(context, "set_forward", phone_of(context, name).user, phone_of(context, target).user)


@step("{name:Name} stops forwarding calls")
def step_forward_off(context: Any, name: str) -> None:
    """Turn a person's call forwarding off.

    Example: ``When Bob stops forwarding calls``
    """
    sut_control(context, "set_forward", phone_of(context, name).user, None)


@step("{name:Name} talks to voicemail for {seconds:d} seconds")
def step_talks_to_voicemail(context: Any, name: str, seconds: int) -> None:
    """The person's call is answered by the voicemail box, and media flows both ways for N seconds (±10%).

    Example: ``Then Alice talks to voicemail for 10 seconds``
    """
    vm = voicemail_of(context)
    call = active_call(context, name)
    call.wait_state("confirmed", timeout=VOICEMAIL_WAIT)
    box_call = wait_for(lambda: vm.active_call, WAIT, lambda: f"{name}'s call is up but not with the voicemail box")
    check_talk({name: call, "voicemail": box_call}, seconds, phone_of(context, name).device.ptime)


def _mwi_notifies(context: Any, name: str) -> list[dict[str, str]]:
    phone = phone_of(context, name)
    out = []
    for _, ev in list(phone.history):
        if isinstance(ev, RequestReceived) and ev.method == "NOTIFY":
            event = (ev.message.header("Event") or "").split(";")[0].strip().lower()
            if event == "message-summary":
                out.append(parse_message_summary(ev.message.body or b""))
    return out


@step("{name:Name} has voicemail waiting")
def step_voicemail_waiting(context: Any, name: str) -> None:
    """The person's phone got an MWI NOTIFY (RFC 3842, Event: message-summary) saying Messages-Waiting: yes.

    Example: ``Then Bob has voicemail waiting``
    """
    def found() -> Optional[dict[str, str]]:
        for s in reversed(_mwi_notifies(context, name)):
            if s.get("messages-waiting", "").lower() == "yes":
                return s
        return None

    wait_for(found, WAIT, lambda: f"{name} got no message-summary NOTIFY with Messages-Waiting: yes within "
             f"{WAIT:g} s; summaries received: {_mwi_notifies(context, name) or 'none'}")


@step("{name:Name}'s mailbox holds {count:d} message(s)")
def step_mailbox_count(context: Any, name: str, count: int) -> None:
    """The voicemail box recorded that many messages (with media) for the person.

    Example: ``Then Bob's mailbox holds 1 message(s)``
    """
    msgs = voicemail_of(context).wait_for_message(phone_of(context, name).user, count, timeout=WAIT)
    assert len(msgs) == count, f"{name}'s mailbox holds {len(msgs)} messages, expected {count}"
    for m in msgs:
        assert m.rx_packets > 0, f"a message for {name} from {m.caller} recorded no media: {m}"


@step('{sender:Name} sends the message "{text}" to {receiver:Name}')
def step_send_message(context: Any, sender: str, text: str, receiver: str) -> None:
    """Send a MESSAGE (RFC 3428, text/plain) through the SUT and expect a 2xx for it.

    Example: ``When Alice sends the message "lunch?" to Bob``
    """
    phone = phone_of(context, sender)
    phone.send_message(phone_of(context, receiver).user, text)
    ev = final_response(phone, "MESSAGE", sender)  # past a 401/407 the phone answered with credentials
    assert 200 <= ev.status < 300, f"{sender}'s MESSAGE was answered {ev.status}"


@then('{name:Name} receives the message "{text}"')
def step_receives_message(context: Any, name: str, text: str) -> None:
    """The person's phone received a MESSAGE with exactly that text.

    Example: ``Then Bob receives the message "lunch?"``
    """
    ev = phone_of(context, name).expect(RequestReceived, timeout=WAIT, method="MESSAGE")
    body = (ev.message.body or b"").decode("utf-8", "replace")
    assert body == text, f"{name} received the message {body!r}, expected {text!r}"
