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
