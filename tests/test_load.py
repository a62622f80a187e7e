"""Load runs from the C fast path (pysiptest/load.py, engine_fast.c): pysiptest against pysiptest, against a
rejecting peer, and argument checks."""
from __future__ import annotations

import json
import time

import pytest

from pysiptest import Device, Engine, Phone, _core
from pysiptest.load import LoadResult, run_load
from pysiptest.sut._proc import wait_until


class FastDesk(Device):
    """Answers at once on the fast path."""

    model = "LoadFastDeskTest"
    ring_delay = 0.0
    auto_answer_after = 0.0
    fast_path = True


class Busy(Device):
    """Refuses every call with 486 (Python decides)."""

    model = "LoadBusyTest"

    def incoming_call_status(self, caller: str):
        return 486


def _settled(eng: Engine) -> bool:
    c = eng.core.counts()
    return c["transactions"] == 0 and c["dialogs"] == 0


def test_500_calls_at_200_cps_all_answered_without_retransmissions_and_tables_empty_after() -> None:
    # short T1 so that the RFC 6026 / Timer J and K lingering of finished transactions ends within seconds
    with Engine(t1=0.1, t4=1.0) as callee_eng, Engine(t1=0.1, t4=1.0) as caller_eng:
        bob = Phone("bob", FastDesk(), engine=callee_eng)
        res = run_load(caller_eng, "udp", ("127.0.0.1", bob.port), rate=200, calls=500, concurrency=100)
        assert isinstance(res, LoadResult)
        assert res.ok and res.started == res.answered == res.completed == 500, res.describe()
        assert res.failed == 0 and res.failures == {}
        assert res.retransmissions == 0
        assert 150 <= res.call_rate <= 260, res.describe()
        assert 0 < res.setup_p50_ms <= res.setup_p95_ms <= res.setup_p99_ms <= res.setup_max_ms
        sums = bob.wait_summaries(500, timeout=10)
        assert all(s.status == 200 and s.reason == "BYE received" for s in sums)
        assert callee_eng.core.counts()["retransmissions"] == 0
        wait_until(lambda: _settled(callee_eng) and _settled(caller_eng), 15)
        d = json.loads(res.to_json())
        assert d["completed"] == 500 and d["call_rate"] > 0
        assert res.to_csv().splitlines()[0].startswith("target,")


def test_load_over_tcp_completes() -> None:
    with Engine() as callee_eng, Engine() as caller_eng:
        bob = Phone("bob", FastDesk(), engine=callee_eng, transport="tcp")
        res = run_load(caller_eng, "tcp", ("127.0.0.1", bob.port), rate=200, calls=200, concurrency=50)
        assert res.ok and res.retransmissions == 0, res.describe()


def test_load_against_a_rejecting_peer_reports_failures_by_status() -> None:
    with Engine() as callee_eng, Engine() as caller_eng:
        bob = Phone("bob", Busy(), engine=callee_eng)
        res = run_load(caller_eng, "udp", f"127.0.0.1:{bob.port}", rate=100, calls=50)
        assert not res.ok
        assert res.started == 50 and res.answered == 0 and res.failed == 50
        assert res.failures == {"486 Busy Here": 50}, res.failures


def test_load_to_a_silent_peer_fails_by_timer_b() -> None:
    with Engine(t1=0.02) as eng:
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        try:
            res = run_load(eng, "udp", s.getsockname(), rate=50, calls=5, timeout=10)
        finally:
            s.close()
        assert res.failures == {"Timer B": 5}, res.failures
        assert res.retransmissions > 0


def test_bad_arguments_raise() -> None:
    with Engine() as eng:
        for kw in ({"rate": 0}, {"rate": -5}, {"calls": 0}, {"concurrency": -1}, {"hold": -1.0}):
            args = {"rate": 10, "calls": 1, "concurrency": 0, "hold": 0.0, **kw}
            with pytest.raises(ValueError):
                run_load(eng, "udp", "127.0.0.1:5060", **args)
        with pytest.raises(ValueError):
            run_load(eng, "sctp", "127.0.0.1:5060", 10, 1)
    core = _core.Engine()
    try:
        tid, _ = core.listen_udp("127.0.0.1", 0)
        with pytest.raises(KeyError):
            core.load_stats()
        with pytest.raises(ValueError):
            core.load_start(tid, "example.com", 5060, "sip:x@h", "sip:y@h", rate=1)
        with pytest.raises(ValueError):
            core.load_start(tid, "127.0.0.1", 5060, "sip:x@h", "sip:y@h", rate=0)
        with pytest.raises(ValueError):
            core.load_start(tid, "127.0.0.1", 5060, "sip:x y@h", "sip:y@h", rate=1)
        with pytest.raises(KeyError):
            core.load_start(tid + 99, "127.0.0.1", 5060, "sip:x@h", "sip:y@h", rate=1)
        # 100 calls at 1 cps keep the load under way (a lone call to a closed port ends at once by ICMP)
        core.load_start(tid, "127.0.0.1", 9, "sip:%n@h", "sip:y@h", rate=1, calls=100)
        with pytest.raises(Exception, match="under way"):
            core.load_start(tid, "127.0.0.1", 9, "sip:%n@h", "sip:y@h", rate=1, calls=1)
        core.load_stop()
    finally:
        core.close()
