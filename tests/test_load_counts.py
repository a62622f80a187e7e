"""Fast-path counters without per-call events (``set_profile(summary="count")``, ``Phone(fast_summaries=False)``,
``fast_counts``): a load run's calls are counted in C, answered and not, and no call_summary event reaches
Python."""
from __future__ import annotations

import pytest

from pysiptest import Device, Engine, Phone
from pysiptest.load import run_load
from pysiptest.sut._proc import wait_until


class FastDesk(Device):
    """Answers at once on the fast path."""

    model = "CountFastDeskTest"
    ring_delay = 0.0
    auto_answer_after = 0.0
    fast_path = True


def test_counted_fast_calls_give_no_summary_events_and_exact_counts() -> None:
    with Engine(t1=0.1, t4=1.0) as callee_eng, Engine(t1=0.1, t4=1.0) as caller_eng:
        bob = Phone("bob", FastDesk(), engine=callee_eng, fast_summaries=False)
        assert bob.fast and bob.fast_counts() == (0, 0)
        res = run_load(caller_eng, "udp", ("127.0.0.1", bob.port), rate=300, calls=300)
        assert res.completed == 300 and res.failed == 0, res.describe()
        wait_until(lambda: bob.fast_counts() == (300, 300), 5, what="300 counted calls")
        assert bob.summaries == []  # nothing per call reached Python


def test_summary_mode_counts_too_and_bad_summary_value_is_refused() -> None:
    with Engine(t1=0.1, t4=1.0) as callee_eng, Engine(t1=0.1, t4=1.0) as caller_eng:
        bob = Phone("bob", FastDesk(), engine=callee_eng)
        res = run_load(caller_eng, "udp", ("127.0.0.1", bob.port), rate=200, calls=50)
        assert res.completed == 50
        bob.wait_summaries(50, timeout=5)
        assert bob.fast_counts() == (50, 50)
        with pytest.raises(ValueError, match="summary must be"):
            callee_eng.core.set_profile(bob.transport_id, summary="some")
        tid, _ = callee_eng.core.listen_udp("127.0.0.1")
        with pytest.raises(KeyError, match="no fast-path profile"):  # -ENOENT, like other unknown ids
            callee_eng.core.fast_counts(tid)
