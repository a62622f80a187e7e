"""Sequential and concurrent calls phone-to-phone through the reference PBX, on one machine.

Each call: INVITE, 100, 180, 200, ACK, BYE, 200 on both legs of the B2BUA (Python decides per call event).
Prints call setup rate and setup time percentiles.

    .venv/bin/python bench/bench_calls.py [CALLS] [CONCURRENCY]
"""
from __future__ import annotations

import statistics
import sys
import time

from pysiptest import Answered, Device, Engine, Phone
from pysiptest.sut import ReferencePbxSut


class Fast(Device):
    """Answers at once, no ring delay, silence."""

    model = "BenchFast"
    ring_delay = None
    auto_answer_after = 0.0
    media_source = "silence"


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    conc = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with ReferencePbxSut() as pbx, Engine() as eng:
        callers = [Phone(f"a{i}", Fast(), engine=eng, proxy=(pbx.host, pbx.port)) for i in range(conc)]
        callees = [Phone(f"b{i}", Fast(), engine=eng, proxy=(pbx.host, pbx.port)) for i in range(conc)]
        for p in callers + callees:
            p.register()
        setup: list[float] = []
        t0 = time.perf_counter()
        done = 0
        while done < calls:
            batch = min(conc, calls - done)
            started = [(time.perf_counter(), callers[i].call(callees[i].user)) for i in range(batch)]
            for i, (ts, c) in enumerate(started):
                callers[i].expect(Answered, timeout=10, call=c)
                setup.append(time.perf_counter() - ts)
            for _, c in started:
                c.hangup()
            for _, c in started:
                c.wait_state("terminated", timeout=10)
            done += batch
        dt = time.perf_counter() - t0
    q = statistics.quantiles(setup, n=100)
    print(f"calls: {calls} through the reference PBX, {conc} at a time, in {dt:.2f} s = {calls / dt:.1f} calls/s")
    print(f"setup time (INVITE to Answered): p50 {q[49]*1000:.1f} ms, p99 {q[98]*1000:.1f} ms, max {max(setup)*1000:.1f} ms")


if __name__ == "__main__":
    main()
