"""Phones calling each other through the reference PBX: answer, hang up, reject, cancel, unknown users,
media both ways, bounded waits that say what they saw, and no dialog left behind."""
from __future__ import annotations

import time

import pytest

from pysiptest import (
    Answered,
    CallEnded,
    Engine,
    ExpectationError,
    IncomingCall,
    RequestReceived,
    Ringing,
    find_device,
)
from pysiptest.sut import ReferencePbxSut
from pysiptest.sut._proc import wait_until


def _dialogs(engine: Engine) -> int:
    return engine.core.counts()["dialogs"]


@pytest.mark.parametrize("who_hangs_up", ["caller", "callee"])
def test_answered_call_carries_media_both_ways_and_either_side_can_hang_up(who_hangs_up: str, make_phone) -> None:
    alice = make_phone("alice", device="Squirrel350")
    bob = make_phone("bob", device="Chipmunk5000")
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    assert inc.direction == "incoming" and inc.remote.startswith("sip:alice@")
    assert alice.expect(Ringing, 5, call=out).status == 180
    assert inc.state == "ringing" and out.state == "ringing"

    inc.answer()
    alice.expect(Answered, 5, call=out)
    bob.expect(Answered, 5, call=inc)  # our 200 was ACKed
    assert (out.state, inc.state) == ("confirmed", "confirmed")
    # Chipmunk5000 prefers PCMA and answers with it; both directions then use payload type 8
    assert out.payload_type == inc.payload_type == 8

    time.sleep(1.0)
    for side, call in (("alice", out), ("bob", inc)):
        st = call.media_stats()
        assert st["tx_packets"] > 0 and st["rx_packets"] >= 20, f"{side}: {st}"
        assert st["rx_lost"] == 0, f"{side}: {st}"
        assert st["rx_payload_type"] == 8, f"{side}: {st}"

    hanger, hung = (alice, bob) if who_hangs_up == "caller" else (bob, alice)
    hanger_call, hung_call = (out, inc) if who_hangs_up == "caller" else (inc, out)
    hanger_call.hangup()
    ended = hanger.expect(CallEnded, 5, call=hanger_call)
    assert (ended.reason, ended.status) == ("hung up", 200)
    hung.expect(RequestReceived, 5, method="BYE", call=hung_call)
    assert hung.expect(CallEnded, 5, call=hung_call).reason == "BYE received"
    assert (out.state, inc.state) == ("terminated", "terminated")
    assert out.media_stats()["rx_packets"] >= 20  # figures are kept once the call ended


def test_reject_with_486_ends_the_callers_call_with_486(make_phone) -> None:
    alice = make_phone("alice")
    bob = make_phone("bob")
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    inc.reject(486)
    ended = alice.expect(CallEnded, 5, call=out)
    assert ended.status == 486 and ended.reason.startswith("486")
    assert out.state == "terminated" and out.end_status == 486
    assert inc.state == "terminated" and inc.end_status == 486
    assert not [e for e in alice.unexpected() if isinstance(e, Answered)]


def test_cancel_while_ringing_ends_caller_with_487_and_callee_with_cancelled(make_phone) -> None:
    alice = make_phone("alice")
    bob = make_phone("bob")
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    alice.expect(Ringing, 5, call=out)
    out.cancel()
    ended = alice.expect(CallEnded, 5, call=out)
    assert ended.status == 487 and ended.reason == "cancelled"
    callee_end = bob.expect(CallEnded, 5, call=inc)
    assert "cancelled" in callee_end.reason and callee_end.status == 487
    assert (out.state, inc.state) == ("terminated", "terminated")


def test_calling_an_unregistered_user_yields_404(make_phone) -> None:
    alice = make_phone("alice")
    out = alice.call("nobody")
    ended = alice.expect(CallEnded, 5, call=out)
    assert ended.status == 404
    assert out.state == "terminated"


def test_unknown_device_name_raises_key_error_listing_known_devices(make_phone) -> None:
    with pytest.raises(KeyError) as info:
        find_device("Nope")
    text = str(info.value)
    assert "'Nope'" in text and "Squirrel350" in text and "Chipmunk5000" in text
    with pytest.raises(KeyError, match="Squirrel350"):
        make_phone("alice", device="Nope")
    assert find_device("squirrel 350").model == "Squirrel350"  # names are matched loosely


def test_expect_timeout_raises_expectation_error_naming_what_was_pending(make_phone) -> None:
    alice = make_phone("alice")  # the 200 to its REGISTER stays pending
    start = time.monotonic()
    with pytest.raises(ExpectationError) as info:
        alice.expect(IncomingCall, timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 2
    text = str(info.value)
    assert "alice expected IncomingCall within 0.3 s" in text
    assert "ResponseReceived(200 REGISTER)" in text
    assert isinstance(info.value, AssertionError)

    with pytest.raises(ExpectationError, match=r"expected CallEnded, status=486 within 0.1 s"):
        alice.expect(CallEnded, timeout=0.1, status=486)

    alice.clear_events()
    with pytest.raises(ExpectationError, match="pending events: nothing"):
        alice.expect((Ringing, Answered), timeout=0.1)


def test_dialog_counts_return_to_zero_after_answered_calls(make_phone, engine: Engine,
                                                           pbx: ReferencePbxSut) -> None:
    alice = make_phone("alice")
    bob = make_phone("bob")
    assert _dialogs(engine) == 0 and _dialogs(pbx.engine) == 0
    for hang_up_by in ("caller", "callee"):
        out = alice.call("bob")
        inc = bob.wait_for_call(5)
        inc.answer()
        alice.expect(Answered, 5, call=out)
        bob.expect(Answered, 5, call=inc)
        # while it is up: a dialog at each phone, and two (the A and B legs) at the PBX
        assert _dialogs(engine) == 2 and _dialogs(pbx.engine) == 2
        (out if hang_up_by == "caller" else inc).hangup()
        bob.expect(CallEnded, 5, call=inc)
        alice.expect(CallEnded, 5, call=out)
        wait_until(lambda: _dialogs(engine) == 0, 5, what="the phones' dialogs to go")
        wait_until(lambda: _dialogs(pbx.engine) == 0, 5, what="the PBX's dialogs to go")
    assert not alice.active_calls and not bob.active_calls


# the early dialog a 180 made must go with the final 486, or with the 487 after a CANCEL (callee and PBX A leg)
@pytest.mark.parametrize("ending", ["rejected", "cancelled"])
def test_dialog_counts_return_to_zero_after_unanswered_calls(ending: str, make_phone, engine: Engine,
                                                             pbx: ReferencePbxSut) -> None:
    alice = make_phone("alice")
    bob = make_phone("bob")
    out = alice.call("bob")
    inc = bob.wait_for_call(5)
    alice.expect(Ringing, 5, call=out)  # the 180: early dialogs exist now
    if ending == "rejected":
        inc.reject(486)
    else:
        out.cancel()
        bob.expect(CallEnded, 5, call=inc)
    alice.expect(CallEnded, 5, call=out)
    wait_until(lambda: _dialogs(engine) == 0, 2, what=f"the phones' dialogs to go ({engine.core.counts()})")
    wait_until(lambda: _dialogs(pbx.engine) == 0, 2, what=f"the PBX's dialogs to go ({pbx.engine.core.counts()})")
