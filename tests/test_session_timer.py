"""Session timers (RFC 4028) between two phones, with short intervals (Session-Expires 4 s, Min-SE 2 s).

The refresher refreshes at half the interval (UPDATE or re-INVITE, as its device says); the other side sees
each refresh; when the refresher stops, the other side sends BYE SE - min(32, SE/3) seconds after the last
refresh.  A Session-Expires below the callee's Min-SE gets 422, and the caller asks again with Min-SE.
"""
from __future__ import annotations

import time

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, Phone, RequestReceived, ResponseReceived
from pysiptest.session_timer import parse_session_expires

SE = 4


class Timed(Device):
    supported = ["timer"]
    session_expires = SE
    min_se = 2
    ring_delay = 0.0
    auto_answer_after = 0.05


@pytest.fixture
def eng():
    e = Engine()
    try:
        yield e
    finally:
        e.close()


def _call(eng, caller_dev: Device, callee_dev: Device):
    bob = Phone("bob", callee_dev, engine=eng)
    alice = Phone("alice", caller_dev, engine=eng, proxy=(bob.host, bob.port))
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    alice.expect(Answered, 5, call=out)
    bob.expect(Answered, 5, call=inc)
    return alice, bob, out, inc


def _refreshes(phone: Phone, method: str, count: int, timeout: float) -> list[float]:
    times = []
    end = time.monotonic() + timeout
    while len(times) < count:
        ev = phone.expect(RequestReceived, max(0.05, end - time.monotonic()), method=method)
        assert ev.message.header("Session-Expires"), "a refresh carries Session-Expires"
        times.append(time.monotonic())
    return times


def _expiry_bye(refresher: Phone, refreshed_call, last_refresh: float) -> float:
    ev = refresher.expect(RequestReceived, SE + 2, method="BYE")
    assert ev.call is not None
    assert refreshed_call.session_timer.expired
    return time.monotonic() - last_refresh


def test_caller_refreshes_by_update_and_callee_byes_when_refreshes_stop(eng):
    alice, bob, out, inc = _call(eng, Timed(), Timed())
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert parse_session_expires(ok.message.header("Session-Expires")) == (SE, "uac")
    assert "timer" in ok.message.header("Require")
    assert out.session_timer.we_refresh and not inc.session_timer.we_refresh
    start = time.monotonic()
    times = _refreshes(bob, "UPDATE", 2, 6)
    # at half the interval: ~2 s after the answer, then every ~2 s
    assert abs(times[0] - start - SE / 2) < 0.5 and abs(times[1] - times[0] - SE / 2) < 0.5
    alice.expect(ResponseReceived, 3, status=200, method="UPDATE")
    assert inc.session_timer.refreshes_received >= 2 and out.session_timer.refreshes_sent >= 2
    out.session_timer.stop_refreshing()
    last = times[-1]
    waited = _expiry_bye(alice, inc, last)
    assert abs(waited - (SE - min(32, SE / 3))) <= 0.5, f"BYE {waited:.2f} s after the last refresh"
    alice.expect(CallEnded, 3, call=out)
    assert inc.state in ("terminating", "terminated")


def test_callee_refreshes_by_reinvite_when_it_chooses_uas(eng):
    class Callee(Timed):
        session_refresher = "uas"
        session_refresh_method = "INVITE"

    class Caller(Timed):
        session_expires = SE  # no refresher parameter: the callee chooses

    alice, bob, out, inc = _call(eng, Caller(), Callee())
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert parse_session_expires(ok.message.header("Session-Expires")) == (SE, "uas")
    assert inc.session_timer.we_refresh and not out.session_timer.we_refresh
    times = _refreshes(alice, "INVITE", 2, 6)
    assert abs(times[1] - times[0] - SE / 2) < 0.5
    ev = bob.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert ev.message.body, "the re-INVITE refresh is answered with SDP"
    inc.session_timer.stop_refreshing()
    waited = _expiry_bye(bob, out, times[-1])
    assert abs(waited - (SE - min(32, SE / 3))) <= 0.5, f"BYE {waited:.2f} s after the last refresh"


def test_too_small_session_expires_gets_422_and_caller_retries_with_min_se(eng):
    class Strict(Timed):
        min_se = 5

    class Small(Timed):
        session_expires = 3

    alice, bob, out, inc = _call(eng, Small(), Strict())
    r422 = alice.expect(ResponseReceived, 3, status=422)
    assert r422.message.header("Min-SE") == "5"
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert parse_session_expires(ok.message.header("Session-Expires"))[0] == 5
    assert inc.request.header("Session-Expires") == "5"
    assert out.session_timer.interval == 5 and inc.session_timer.interval == 5
    out.hangup()


def test_callee_without_timer_support_runs_no_session_timer(eng):
    class Plain(Device):
        ring_delay = 0.0
        auto_answer_after = 0.05

    alice, bob, out, inc = _call(eng, Timed(), Plain())
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert ok.message.header("Session-Expires") is None
    assert out.session_timer is None and inc.session_timer is None
    out.hangup()


# ---- a failed refresh ends the call (RFC 4028 10) ------------------------------------------------------

def _refused_refresh(eng, refresher_dev: Device, refreshed_dev: Device, callee_refreshes: bool, method: str,
                     answer):
    """A call whose refresher's refresh (``method``) the other phone answers with ``answer(IncomingRequest)``
    (which may send nothing).  The refreshed side's own expiry timer is stopped, so the BYE seen is the
    refresher's.  Returns (refresher phone, its call, the other phone, its call, when the refresh arrived)."""
    caller, callee = (refreshed_dev, refresher_dev) if callee_refreshes else (refresher_dev, refreshed_dev)
    alice, bob, out, inc = _call(eng, caller, callee)
    me, my_call, peer, peer_call = (bob, inc, alice, out) if callee_refreshes else (alice, out, bob, inc)
    assert my_call.session_timer.we_refresh
    peer_call.session_timer.stop()
    peer.request_handlers[method] = answer
    ev = peer.expect(RequestReceived, SE, method=method)
    assert ev.message.header("Session-Expires"), "it is a session refresh"
    return me, my_call, peer, peer_call, time.monotonic()


def _assert_refresher_byes(me, my_call, peer, peer_call, status: int, words: str, within: float) -> float:
    bye = peer.expect(RequestReceived, within, method="BYE")
    assert bye.call is peer_call
    ended = me.expect(CallEnded, 3, call=my_call)
    assert ended.status == status and words in ended.reason and "session refresh" in ended.reason
    assert my_call.end_reason == ended.reason and my_call.end_status == status
    assert my_call.session_timer.failed == status and my_call.state == "terminated"
    peer.expect(CallEnded, 3, call=peer_call)
    return time.monotonic()


def test_update_refresh_answered_481_makes_the_refresher_send_bye(eng):
    me, mine, peer, theirs, t = _refused_refresh(eng, Timed(), Timed(), False, "UPDATE",
                                                 lambda r: r.respond(481))
    done = _assert_refresher_byes(me, mine, peer, theirs, 481, "481", 2)
    assert done - t < 1.5, "BYE right after the 481"


def test_reinvite_refresh_answered_408_makes_the_callee_refresher_send_bye(eng):
    class Callee(Timed):
        session_refresher = "uas"
        session_refresh_method = "INVITE"

    me, mine, peer, theirs, t = _refused_refresh(eng, Callee(), Timed(), True, "INVITE",
                                                 lambda r: r.respond(408))
    assert me is not peer and mine.direction == "incoming"
    done = _assert_refresher_byes(me, mine, peer, theirs, 408, "408", 2)
    assert done - t < 1.5


@pytest.fixture
def fast_eng():
    e = Engine(t1=0.02)  # Timer F = 64*T1 = 1.28 s
    try:
        yield e
    finally:
        e.close()


def test_unanswered_update_refresh_times_out_and_the_refresher_sends_bye(fast_eng):
    me, mine, peer, theirs, t = _refused_refresh(fast_eng, Timed(), Timed(), False, "UPDATE", lambda r: None)
    done = _assert_refresher_byes(me, mine, peer, theirs, 408, "timed out", 4)
    assert 1.0 < done - t < 2.5, f"BYE {done - t:.2f} s after the refresh: at Timer F (1.28 s)"


def test_unanswered_reinvite_refresh_gives_up_before_the_session_expires_and_sends_bye(eng):
    class Caller(Timed):
        session_refresh_method = "INVITE"

    # the engine answers the re-INVITE 100 Trying, so its transaction never times out: the refresher's guard
    # gives up SE/2 after the refresh, when the session would expire
    me, mine, peer, theirs, t = _refused_refresh(eng, Caller(), Timed(), False, "INVITE", lambda r: None)
    done = _assert_refresher_byes(me, mine, peer, theirs, 408, "no final response", SE)
    assert SE / 2 - 0.3 < done - t < SE / 2 + 1.0, f"BYE {done - t:.2f} s after the refresh"
