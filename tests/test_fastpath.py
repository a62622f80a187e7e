"""The C fast path on the answering side: a phone hands its device's routine behaviour to the signalling
thread (engine_fast.c); calls that need no Python decision give one CallSummary each and no other event."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from pysiptest import Device, Engine, IncomingCall, Phone, _core
from pysiptest.summary import CallSummary
from pysiptest.sut._proc import ManagedProcess, free_port, wait_until


class FastDesk(Device):
    """Rings at once, answers at once, on the fast path."""

    model = "FastDeskTest"
    ring_delay = 0.0
    auto_answer_after = 0.0
    fast_path = True


class FastHangup(FastDesk):
    """Answers and hangs up 0.2 s later by itself."""

    model = "FastHangupTest"
    hold_time = 0.2


def _events(phone: Phone) -> list[object]:
    return phone.unexpected()


@pytest.mark.requires_binary("sipp")
def test_fast_phone_answers_200_sipp_calls_without_python_request_events(tmp_path: Path) -> None:
    with Engine() as eng:
        phone = Phone("bob", FastDesk(), engine=eng)
        seen: list[str] = []
        orig = phone._on_core_event

        def spy(ev):  # count what crosses into Python for this phone
            seen.append(ev.kind)
            orig(ev)

        phone._on_core_event = spy  # type: ignore[method-assign]
        stat = tmp_path / "uac.csv"
        uac = ManagedProcess(["sipp", "-sn", "uac", "-i", "127.0.0.1", "-p", str(free_port(tcp=False)),
                              "-m", "200", "-r", "100", "-timeout", "30s", "-timeout_error", "-nostdin",
                              "-trace_stat", "-stf", str(stat), f"127.0.0.1:{phone.port}"],
                             tmp_path / "sipp.log", cwd=tmp_path)
        try:
            rc = uac.wait(40)
        finally:
            uac.stop()
        rows = list(csv.DictReader(open(stat, newline=""), delimiter=";"))
        assert rc == 0, uac.log_tail(30)
        assert rows[-1]["SuccessfulCall(C)"] == "200" and rows[-1]["FailedCall(C)"] == "0"
        sums = phone.wait_summaries(200, timeout=10)
        assert set(seen) == {"call_summary"} and len(seen) == 200
        assert not _events(phone)  # no IncomingCall, no RequestReceived
        assert all(s.direction == "in" and s.status == 200 and s.reason == "BYE received" for s in sums)
        assert len({s.call_id for s in sums}) == 200
        wait_until(lambda: eng.core.counts()["dialogs"] == 0, 5)


def test_summary_of_a_call_hung_up_by_the_fast_path_carries_status_and_durations() -> None:
    with Engine() as eng:
        bob = Phone("bob", FastHangup(), engine=eng)
        alice = Phone("alice", engine=eng, proxy=("127.0.0.1", bob.port))
        call = alice.call("bob")
        call.wait_state("confirmed", timeout=5)
        call.wait_state("terminated", timeout=5)
        (s,) = bob.wait_summaries(1, timeout=5)
        assert isinstance(s, CallSummary)
        assert (s.direction, s.status, s.reason, s.call_id) == ("in", 200, "BYE sent", call.call_id)
        assert 150 <= s.talk_ms <= 1000, s
        assert 0 <= s.setup_ms < 500, s
        assert call.end_reason == "BYE received"


def test_cancelled_fast_call_is_summarised_with_487() -> None:
    class SlowAnswer(FastDesk):
        model = "FastSlowAnswerTest"
        auto_answer_after = 5.0

    with Engine() as eng:
        bob = Phone("bob", SlowAnswer(), engine=eng)
        alice = Phone("alice", engine=eng, proxy=("127.0.0.1", bob.port))
        call = alice.call("bob")
        call.wait_state("ringing", timeout=5)
        call.cancel()
        call.wait_state("terminated", timeout=5)
        (s,) = bob.wait_summaries(1, timeout=5)
        assert (s.status, s.reason, s.talk_ms) == (487, "CANCEL received", 0)


def test_fast_path_rings_but_leaves_the_answer_to_python_when_the_device_does_not_auto_answer() -> None:
    class RingOnly(FastDesk):
        model = "FastRingOnlyTest"
        auto_answer_after = None

    with Engine() as eng:
        bob = Phone("bob", RingOnly(), engine=eng)
        alice = Phone("alice", engine=eng, proxy=("127.0.0.1", bob.port))
        call = alice.call("bob")
        call.wait_state("ringing", timeout=5)
        incoming = bob.expect(IncomingCall, timeout=5).call
        incoming.answer()
        call.wait_state("confirmed", timeout=5)
        call.hangup()
        call.wait_state("terminated", timeout=5)
        assert bob.summaries == []


def test_fast_path_answers_options_outside_calls_with_200() -> None:
    with Engine() as eng:
        bob = Phone("bob", FastDesk(), engine=eng)
        alice = Phone("alice", engine=eng, proxy=("127.0.0.1", bob.port))
        from pysiptest import ResponseReceived
        alice.send_request("OPTIONS", "bob")
        ev = alice.expect(ResponseReceived, timeout=5)
        assert ev.status == 200
        time.sleep(0.1)
        assert bob.unexpected() == []


def test_set_profile_rejects_bad_arguments() -> None:
    eng = _core.Engine()
    try:
        tid, _ = eng.listen_udp("127.0.0.1", 0)
        with pytest.raises(ValueError):
            eng.set_profile(tid, ring_delay=-1.0)
        with pytest.raises(ValueError):
            eng.set_profile(tid, auto_200=["REGISTER"])
        with pytest.raises(ValueError):
            eng.set_profile(tid, headers=[("Via", "x")])
        with pytest.raises(KeyError):
            eng.set_profile(tid + 1000, answer_delay=0)
        eng.set_profile(tid, answer_delay=0)
        eng.set_profile(tid, clear=True)
    finally:
        eng.close()
