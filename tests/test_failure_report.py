"""Failure reports: the engine's message trace, the SIP ladder, and what behave shows for a failed scenario."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pysiptest import trace
from pysiptest.engine import Engine
from pysiptest.phone import Phone

ROOT = Path(__file__).resolve().parents[1]


def _call_and_hang_up(engine: Engine) -> tuple[Phone, Phone]:
    alice = Phone("alice", engine=engine)
    bob = Phone("bob", engine=engine)
    alice.proxy = ("127.0.0.1", bob.port)
    call = alice.call("bob")
    incoming = bob.wait_for_call(timeout=5)
    incoming.answer()
    call.wait_state("confirmed", timeout=5)
    call.hangup()
    incoming.wait_state("terminated", timeout=5)
    return alice, bob


def test_trace_is_off_by_default_and_records_nothing() -> None:
    with Engine() as engine:
        alice, _ = _call_and_hang_up(engine)
        assert trace.ladder(alice) == []
        assert engine.core.trace() == []


def test_trace_shows_what_the_engine_sent_by_itself() -> None:
    """The ladder holds the messages Python asked for (INVITE, 200, BYE) and those the engine made (100 Trying,
    ACK, 200 to BYE), each on the phone that sent or received it, with its CSeq and Call-ID."""
    with Engine() as engine:
        trace.enable(engine, 64)
        alice, bob = _call_and_hang_up(engine)
        time.sleep(0.2)  # the 200 to BYE goes out on the signalling thread
        a = [(e.outgoing, e.first_line.split(" SIP/2.0")[0] if e.outgoing else e.first_line, e.cseq)
             for e in trace.ladder(alice)]
        b = trace.ladder(bob)
        assert a[0] == (True, f"INVITE sip:bob@127.0.0.1", "1 INVITE")
        assert (False, "SIP/2.0 100 Trying", "1 INVITE") in a
        assert (False, "SIP/2.0 200 OK", "1 INVITE") in a
        assert (True, f"ACK sip:bob@127.0.0.1:{bob.port}", "1 ACK") in a
        assert (True, f"BYE sip:bob@127.0.0.1:{bob.port}", "2 BYE") in a
        assert (False, "SIP/2.0 200 OK", "2 BYE") in a
        sent_by_bob = [e.first_line for e in b if e.outgoing]
        assert sent_by_bob[:1] == ["SIP/2.0 100 Trying"] and "SIP/2.0 200 OK" in sent_by_bob
        assert {e.call_id for e in b} == {alice.calls[0].call_id}
        assert all(e.peer == ("127.0.0.1", alice.port) for e in b)
        assert all(e.length > 100 for e in b)
        text = trace.format_ladder([("alice", e) for e in trace.ladder(alice)])
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3}  alice  -> 127\.0\.0\.1:\d+ +INVITE sip:bob@127\.0\.0\.1 SIP/2\.0 +"
                         r"1 INVITE +\[" + alice.calls[0].call_id[:8] + r"\]", text), text


def test_expect_timeout_shows_the_phones_ladder_when_the_trace_is_on() -> None:
    from pysiptest.errors import ExpectationError
    from pysiptest.events import CallEnded

    with Engine() as engine:
        alice, _ = _call_and_hang_up(engine)
        with pytest.raises(ExpectationError) as plain:
            alice.expect(CallEnded, timeout=0.05, status=999)
        assert "last SIP messages" not in str(plain.value)  # trace off: no ladder
    with Engine() as engine:
        trace.enable(engine, 64)
        alice, _ = _call_and_hang_up(engine)
        with pytest.raises(ExpectationError) as err:
            alice.expect(CallEnded, timeout=0.05, status=999)
        text = str(err.value)
        assert "last SIP messages of alice:" in text
        assert re.search(r"alice  -> 127\.0\.0\.1:\d+ +INVITE sip:bob@127\.0\.0\.1 SIP/2\.0 +1 INVITE", text), text
        assert re.search(r"alice  <- 127\.0\.0\.1:\d+ +SIP/2\.0 200 OK +2 BYE", text), text


def test_trace_keeps_only_the_newest_entries() -> None:
    with Engine() as engine:
        trace.enable(engine, 4)
        alice, bob = _call_and_hang_up(engine)
        time.sleep(0.2)
        everything = engine.core.trace()
        assert len(everything) == 4
        assert everything[-1][5].startswith("SIP/2.0 200 OK") and everything[-1][7] == "2 BYE"
        assert [t[0] for t in everything] == sorted(t[0] for t in everything)
        trace.enable(engine, 0)
        assert engine.core.trace() == []
        with pytest.raises(ValueError):
            engine.core.set_trace(1 << 20)


FAILING = """\
Feature: A failing call

  Scenario: Bob never answers
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Alice receives BYE
"""


@pytest.mark.skipif(not Path(sys.executable).with_name("behave").exists(), reason="behave is not installed")
def test_failed_scenario_report_shows_ladder_and_unconsumed_events(tmp_path: Path) -> None:
    feat = tmp_path / "features"
    (feat / "steps").mkdir(parents=True)
    shutil.copy(ROOT / "environment.py", feat / "environment.py")
    shutil.copy(ROOT / "steps" / "pysiptest_steps.py", feat / "steps" / "pysiptest_steps.py")
    (feat / "fail.feature").write_text(FAILING)
    behave = Path(sys.executable).with_name("behave")
    proc = subprocess.run([str(behave), "--junit", "--junit-directory", str(tmp_path / "junit"), str(feat)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode != 0, out
    assert "SIP ladder" in out, out
    # through the reference PBX (a B2BUA): Alice's leg and Bob's leg, each with its own Call-ID
    alice_invite = re.search(r"  Alice  -> \S+ +INVITE sip:bob@\S+ SIP/2\.0 +1 INVITE +\[(\w+)\]", out)
    bob_invite = re.search(r"  Bob    <- \S+ +INVITE sip:bob@\S+ SIP/2\.0 +1 INVITE +\[(\w+)\]", out)
    assert alice_invite and bob_invite, out
    assert alice_invite.group(1) != bob_invite.group(1)
    assert re.search(r"  Bob    -> \S+ +SIP/2\.0 180 Ringing +1 INVITE +\[" + bob_invite.group(1), out), out
    assert re.search(r"  Alice  <- \S+ +SIP/2\.0 180 Ringing +1 INVITE +\[" + alice_invite.group(1), out), out
    assert re.search(r"Bob: events not consumed: .*IncomingCall\(from alice\)", out), out
    assert re.search(r"Alice: events not consumed: .*Ringing\(180\)", out), out
    junit = "".join(p.read_text() for p in (tmp_path / "junit").glob("*.xml"))
    assert "SIP ladder" in junit and "INVITE sip:bob@" in junit
