"""Steps about SIP requests beside the basic call: OPTIONS, INFO, UPDATE, re-INVITE and codecs, reliable
provisionals (PRACK, RFC 3262), session timers (RFC 4028) and digest challenges (RFC 3261 22, RFC 7616)."""
from __future__ import annotations

import time
from typing import Any, Optional

from behave import step

from pysiptest import sdp
from pysiptest.bdd._common import WAIT, active_call, codec_name, final_response, phone_of, ringing_call, since, \
    wait_for
from pysiptest.errors import EngineError
from pysiptest.events import InfoReceived, RequestReceived, ResponseReceived
from pysiptest.session_timer import enabled as timer_enabled


# -- OPTIONS --------------------------------------------------------------------------------------------
@step("{name:Name} pings the server")
def step_ping_server(context: Any, name: str) -> None:
    """Send OPTIONS to the server itself (Request-URI without a user) and expect 200.

    Example: ``When Alice pings the server``
    """
    phone = phone_of(context, name)
    phone.send_request("OPTIONS", f"sip:{context.sut.target}")
    ev = final_response(phone, "OPTIONS", name)
    assert ev.status == 200, f"the server answered {name}'s OPTIONS with {ev.status}"


@step("{name:Name} sends OPTIONS to {peer:Name}")
def step_options_to(context: Any, name: str, peer: str) -> None:
    """Send OPTIONS to another person's AOR through the server and expect 200 (from their phone).

    Example: ``When Alice sends OPTIONS to Bob``
    """
    phone = phone_of(context, name)
    phone.send_request("OPTIONS", phone_of(context, peer).user)
    ev = final_response(phone, "OPTIONS", name)
    assert ev.status == 200, f"{name}'s OPTIONS to {peer} was answered {ev.status}"


# -- INFO -----------------------------------------------------------------------------------------------
@step('{name:Name} sends INFO with "{text}"')
def step_send_info(context: Any, name: str, text: str) -> None:
    """Send INFO (RFC 6086) with a text/plain body in the person's call and expect a 2xx.

    Example: ``When Alice sends INFO with "volume=3"``
    """
    phone = phone_of(context, name)
    active_call(context, name).send_info(text, "text/plain")
    ev = final_response(phone, "INFO", name)
    assert 200 <= ev.status < 300, f"{name}'s INFO was answered {ev.status}"


@step('{name:Name} receives INFO with "{text}"')
def step_receives_info(context: Any, name: str, text: str) -> None:
    """The person's call received an INFO with exactly that body.

    Example: ``Then Bob receives INFO with "volume=3"``
    """
    phone = phone_of(context, name)

    def bodies() -> list[str]:
        return [(ev.body or b"").decode("utf-8", "replace") for ev in since(phone, 0, InfoReceived)]

    wait_for(lambda: True if text in bodies() else None, WAIT,
             lambda: f"{name} received no INFO with {text!r}; INFO bodies received: {bodies() or 'none'}")


# -- UPDATE and re-INVITE ---------------------------------------------------------------------------------
@step("{name:Name} updates the session")
def step_update(context: Any, name: str) -> None:
    """Send UPDATE (RFC 3311) with a new version of the person's SDP in the call and expect a 2xx with an answer.

    Example: ``When Alice updates the session``
    """
    call = active_call(context, name)
    status = call.update(True, timeout=WAIT)
    assert 200 <= status < 300, f"{name}'s UPDATE was answered {status}"


@step("{name:Name} updates the session without SDP")
def step_update_no_sdp(context: Any, name: str) -> None:
    """Send UPDATE without a body (a target or session refresh) and expect a 2xx.

    Example: ``When Bob updates the session without SDP``
    """
    status = active_call(context, name).update(None, timeout=WAIT)
    assert 200 <= status < 300, f"{name}'s UPDATE was answered {status}"


@step("{name:Name} sends a re-INVITE")
def step_reinvite(context: Any, name: str) -> None:
    """Send a re-INVITE with the next version of the person's SDP (same codecs) and expect a 2xx.

    Example: ``When Alice sends a re-INVITE``
    """
    call = active_call(context, name)
    status = call.reinvite(timeout=WAIT)
    assert 200 <= status < 300, f"{name}'s re-INVITE was answered {status}"


@step("{name:Name} receives a re-INVITE")
def step_receives_reinvite(context: Any, name: str) -> None:
    """The person's phone received an INVITE inside a call that was up (and answered it).

    Example: ``Then Bob receives a re-INVITE``
    """
    phone = phone_of(context, name)
    wait_for(lambda: True if any(ev.call is not None for ev in since(phone, 0, RequestReceived, method="INVITE"))
             else None, WAIT, lambda: f"{name} received no re-INVITE")


@step("{name:Name} switches the call to {codec:Codec}")
def step_switch_codec(context: Any, name: str, codec: int) -> None:
    """Send a re-INVITE offering only that codec and expect a 2xx whose answer agrees on it.

    Example: ``When Alice switches the call to PCMA``
    """
    call = active_call(context, name)
    status = call.reinvite([codec], timeout=WAIT)
    assert 200 <= status < 300, f"{name}'s re-INVITE offering {codec_name(codec)} was answered {status}"
    assert call.payload_type == codec, (f"{name}'s re-INVITE offered {codec_name(codec)} but the call agreed on "
                                        f"{codec_name(call.payload_type)}")


# -- codecs in SDP ----------------------------------------------------------------------------------------
@step("{name:Name}'s phone offers {codecs:Codecs}")
def step_offers_codecs(context: Any, name: str, codecs: list[int]) -> None:
    """The person's phone offers these codecs, in this order, in its next INVITEs (and accepts only these).

    Example: ``Given Alice's phone offers PCMU, PCMA and G722``
    """
    phone_of(context, name).device.codecs = list(codecs)  # this phone's profile only, not the model's


@step("{name:Name} receives an INVITE offering {codecs:Codecs}")
def step_invite_offers(context: Any, name: str, codecs: list[int]) -> None:
    """The person's phone received an INVITE whose SDP audio stream lists these payload types in this order
    (others may come between, such as telephone-event).

    Example: ``Then Bob receives an INVITE offering PCMU, PCMA and G722``
    """
    phone = phone_of(context, name)

    def offered() -> list[list[int]]:
        out = []
        for c in phone.calls:
            if c.direction == "incoming" and c.request is not None and c.request.body:
                try:
                    out.append(sdp.parse_audio(c.request.body).payload_types)
                except sdp.SdpError:
                    out.append([])
        return out

    def in_order(fmts: list[int]) -> bool:
        listed = [f for f in fmts if f in codecs]
        return listed == list(codecs)

    wait_for(lambda: True if any(in_order(f) for f in offered()) else None, WAIT,
             lambda: f"{name} received no INVITE offering {[codec_name(c) for c in codecs]}; offers: {offered()}")


# -- PRACK ------------------------------------------------------------------------------------------------
@step("{name:Name} answers with a reliable 180")
def step_reliable_180(context: Any, name: str) -> None:
    """Send 180 Ringing reliably (RFC 3262: Require: 100rel, RSeq; retransmitted until PRACKed); the call
    keeps ringing.

    Example: ``When Bob answers with a reliable 180``
    """
    call = ringing_call(context, name)
    for attempt in range(2):
        try:
            call.ring(reliable=True)
            return
        except EngineError as exc:  # the device's own reliable 180 is still waiting for its PRACK
            if attempt:
                raise AssertionError(f"{name} could not send a reliable 180: {exc}") from None
            time.sleep(0.5)


@step("{name:Name} receives a PRACK-able {code:d} with RSeq")
def step_prackable(context: Any, name: str, code: int) -> None:
    """The person's phone received that provisional response sent reliably: Require: 100rel and an RSeq.

    Example: ``Then Alice receives a PRACK-able 180 with RSeq``
    """
    phone = phone_of(context, name)

    def reliable() -> Optional[bool]:
        for ev in since(phone, 0, ResponseReceived, status=code):
            req = (ev.message.header("Require") or "").lower()
            rseq = (ev.message.header("RSeq") or "").strip()
            if "100rel" in req and rseq.isdigit():
                return True
        return None

    wait_for(reliable, WAIT, lambda: f"{name} received no {code} with Require: 100rel and RSeq; {code}s seen: " + (
        ", ".join(f"Require={ev.message.header('Require')} RSeq={ev.message.header('RSeq')}"
                  for ev in since(phone, 0, ResponseReceived, status=code)) or "none"))


@step("{name:Name}'s PRACK is answered")
def step_prack_answered(context: Any, name: str) -> None:
    """The person's phone PRACKed a reliable provisional (RAck) and got 200 for the PRACK.

    Example: ``Then Alice's PRACK is answered``
    """
    phone = phone_of(context, name)
    wait_for(lambda: True if any(200 <= ev.status < 300 for ev in since(phone, 0, ResponseReceived, method="PRACK"))
             else None, WAIT, lambda: f"{name} got no 2xx for a PRACK; PRACK responses: "
             f"{[ev.status for ev in since(phone, 0, ResponseReceived, method='PRACK')] or 'none'}")


# -- session timers -----------------------------------------------------------------------------------------
@step("the call uses a session timer of {seconds:d} seconds")
def step_session_timer(context: Any, seconds: int) -> None:
    """The phones named so far that do session timers ask for (and accept) that Session-Expires in their next
    calls (RFC 4028; Min-SE lowered to it when needed).

    Example: ``Given the call uses a session timer of 4 seconds``
    """
    phones = [p for p in context.phones.values() if timer_enabled(p.device)]
    if not phones:
        raise AssertionError("no phone in this scenario does session timers (\"timer\" in its device's Supported); "
                             f"phones: {', '.join(f'{n} ({p.device.model})' for n, p in context.phones.items())}")
    for p in phones:  # this phone's profile only, not the model's
        p.device.session_expires = seconds
        p.device.min_se = min(p.device.min_se, seconds)


def _session_timer(context: Any, name: str) -> Any:
    call = active_call(context, name)
    call.wait_state("confirmed", timeout=WAIT)
    st = call.session_timer
    if st is None:
        raise AssertionError(f"{name}'s call runs no session timer (no Session-Expires agreed; "
                             f"device {call.phone.device.model}, Supported {call.phone.device.supported})")
    return st


def _check_refresh(context: Any, name: str, since_t: float, sent_before: int, timeout: float) -> None:
    """The person sent a refresh (UPDATE or re-INVITE with Session-Expires) after since_t, another phone
    received it, and it was answered 2xx."""
    st = _session_timer(context, name)
    phone = phone_of(context, name)
    others = [p for n, p in context.phones.items() if n != name]

    def refreshed() -> Optional[bool]:
        if st.refreshes_sent <= sent_before:
            return None
        got = [ev for p in others for m in ("UPDATE", "INVITE") for ev in since(p, since_t, RequestReceived, method=m)
               if ev.message.header("Session-Expires")]
        answered = [ev for m in ("UPDATE", "INVITE") for ev in since(phone, since_t, ResponseReceived, method=m)
                    if 200 <= ev.status < 300]
        return True if got and answered else None

    wait_for(refreshed, timeout, lambda: f"{name} did not refresh the session within {timeout:g} s "
             f"(timer {st}, refreshes sent {st.refreshes_sent - sent_before})")


@step("{name:Name} refreshes the session")
def step_refresh(context: Any, name: str) -> None:
    """Send a session refresh at once (UPDATE or re-INVITE as the device does, with Session-Expires) and
    expect the peer to receive it and answer 2xx.

    Example: ``When Alice refreshes the session``
    """
    st = _session_timer(context, name)
    t0, before = time.time(), st.refreshes_sent
    st.refresh_now()
    _check_refresh(context, name, t0, before, WAIT)


@step("the session is refreshed by {name:Name} within {seconds:d} seconds")
def step_refreshed_within(context: Any, name: str, seconds: int) -> None:
    """The person's phone refreshes the session by itself (at half the interval) within that time.

    Example: ``Then the session is refreshed by Alice within 3 seconds``
    """
    st = _session_timer(context, name)
    _check_refresh(context, name, time.time(), st.refreshes_sent, float(seconds))


# -- digest challenges ----------------------------------------------------------------------------------------
@step("{name:Name} is challenged for {method:Method} and authenticates")
def step_challenged(context: Any, name: str, method: str) -> None:
    """The person's request of that method was challenged (401 or 407) and, sent again with credentials,
    accepted (a 2xx, or for INVITE any response above 100 that is not a challenge).

    Example: ``Then Alice is challenged for REGISTER and authenticates``
    """
    phone = phone_of(context, name)

    def outcome() -> Optional[tuple[int, int]]:
        evs = since(phone, 0, ResponseReceived, method=method)
        challenges = [i for i, ev in enumerate(evs) if ev.status in (401, 407)]
        if not challenges:
            return None
        ok = [ev.status for ev in evs[challenges[0] + 1:] if ev.status not in (401, 407) and (
            200 <= ev.status < 300 or (method == "INVITE" and 100 < ev.status < 300))]
        return (evs[challenges[0]].status, ok[0]) if ok else None

    wait_for(outcome, WAIT, lambda: f"{name}'s {method} was not challenged and then accepted; responses: "
             f"{[ev.status for ev in since(phone, 0, ResponseReceived, method=method)] or 'none'}")
