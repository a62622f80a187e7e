"""PRACK (RFC 3262) against SIPp 3.6, both roles, with the project's own scenarios (tests/sipp/prack_*.xml).

SIPp as caller requires 100rel; the phone sends a reliable 183 with SDP and answers at once: SIPp PRACKs
200 ms later and, by its transactions, fails the call unless the PRACK's 200 comes before the INVITE's 200
(the held 2xx, RFC 3262 3).  SIPp as callee sends a reliable 180 and checks the phone's RAck.  20 calls each.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pysiptest import Answered, CallEnded, Device, Engine, Phone, RequestReceived, ResponseReceived
from pysiptest.sut._proc import free_port, wait_until
from test_sipp_interop import CALLS, _udp_port_taken, sipp  # noqa: F401 (sipp: fixture)

pytestmark = pytest.mark.requires_binary("sipp")

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "sipp"


class RelCallee(Device):
    supported = ["100rel"]
    reliable_provisionals = True
    ring_delay = None


class RelCaller(Device):
    supported = ["100rel"]
    require = ["100rel"]
    ring_delay = None


def test_sipp_uac_requiring_100rel_gets_the_200_only_after_its_prack(engine: Engine, sipp) -> None:
    bob = Phone("pysiptest", RelCallee(), engine=engine, host=HOST)
    uac = sipp(SCENARIOS / "prack_uac.xml", HOST, free_port(HOST, tcp=False), remote=f"{HOST}:{bob.port}",
               extra=("-s", "pysiptest", "-r", "10"))
    for i in range(CALLS):
        inc = bob.wait_for_call(10)
        assert inc.request.header("Require") == "100rel", f"call {i + 1}"
        inc.progress()   # reliable: the caller requires 100rel
        inc.answer()     # held by the engine until SIPp's PRACK
    uac.assert_all_calls_succeeded(uac.finish())
    wait_until(lambda: sum(isinstance(e, CallEnded) for _, e in bob.history) >= CALLS, 5,
               what=f"{CALLS} CallEnded events")
    pracks = [e for _, e in bob.history if isinstance(e, RequestReceived) and e.method == "PRACK"]
    assert len(pracks) == CALLS
    assert all(c.state == "terminated" and c.end_reason == "BYE received" for c in bob.calls)


def test_phone_requiring_100rel_pracks_sipps_reliable_180(engine: Engine, sipp) -> None:
    port = free_port(HOST, tcp=False)
    uas = sipp(SCENARIOS / "prack_uas.xml", HOST, port)
    wait_until(lambda: _udp_port_taken(HOST, port) or not uas.proc.alive(), 10, what="SIPp to listen")
    assert uas.proc.alive(), f"SIPp did not start:\n{uas.report()}"
    alice = Phone("alice", RelCaller(), engine=engine, host=HOST, proxy=(HOST, port))
    for i in range(CALLS):
        call = alice.call("service")
        r180 = alice.expect(ResponseReceived, 5, status=180)
        assert r180.message.header("RSeq") == "1", f"call {i + 1}"
        alice.expect(ResponseReceived, 5, status=200, method="PRACK")
        alice.expect(Answered, 5, call=call)
        call.hangup()
        ended = alice.expect(CallEnded, 5, call=call)
        assert (ended.reason, ended.status) == ("hung up", 200), f"call {i + 1}: {ended}"
    uas.assert_all_calls_succeeded(uas.finish())
    wait_until(lambda: engine.core.counts()["dialogs"] == 0, 5, what="all dialogs gone")
