"""One engine carrying thousands of emulated phones: 2,000 sharing one UDP port and 500 each on its own
port, all registered with the reference PBX (its own engine), then calls between phones of both kinds
through the PBX; bounded in time."""
from __future__ import annotations

import time

from pysiptest import Answered, CallEnded, Device, Engine, IncomingCall, Phone
from pysiptest.pbx import ReferencePBX
from pysiptest.shared_port import shared_port_of

HOST = "127.0.0.1"
SHARED, OWN = 2000, 500


class Desk(Device):
    """Answers at once."""

    model = "ScaleDeskTest"
    ring_delay = 0.0
    auto_answer_after = 0.0


def _register_all(phones: list[Phone], deadline: float) -> None:
    """Register every phone, one after the other, within the deadline."""
    for p in phones:
        assert time.monotonic() < deadline, "registrations took too long"
        p.register(timeout=10)


def test_one_engine_carries_2000_phones_on_a_shared_port_and_500_on_their_own() -> None:
    start = time.monotonic()
    deadline = start + 240
    with Engine(t1=0.2) as pbx_eng, Engine(t1=0.2) as eng:
        pbx = ReferencePBX(pbx_eng, HOST)
        proxy = (HOST, pbx.port)
        first = Phone("s0", Desk(), engine=eng, proxy=proxy, share_port=True)
        shared = [first] + [Phone(f"s{i}", Desk(), engine=eng, port=first.port, proxy=proxy, share_port=True)
                            for i in range(1, SHARED)]
        own = [Phone(f"o{i}", Desk(), engine=eng, proxy=proxy) for i in range(OWN)]
        assert {p.port for p in shared} == {first.port}
        assert len({p.port for p in own}) == OWN and first.port not in {p.port for p in own}
        counts = eng.core.counts()
        assert counts["transports"] == 1 + OWN
        sp = shared_port_of(eng, "udp", HOST, first.port)
        assert sp is not None and len(sp.phones) == SHARED

        _register_all(shared + own, deadline)
        assert len(pbx.registrar.users()) == SHARED + OWN
        assert all(p.registered for p in shared + own)
        bound = pbx.registrar.lookup("s1234")
        assert bound and f":{first.port}" in bound[0].contact

        # a shared-port phone calls a phone on its own port, and the other way round, through the PBX
        for caller, callee in ((shared[1234], own[321]), (own[7], shared[1999]), (shared[5], shared[6])):
            call = caller.call(callee.user)
            inc = callee.expect(IncomingCall, 5)
            assert inc.call is not None
            caller.expect(Answered, 5, call=call)
            call.hangup()
            assert caller.expect(CallEnded, 5, call=call).status == 200
            callee.expect(CallEnded, 5)
        # nothing went to a wrong phone or nowhere
        assert sp.unrouted == []
        assert all(not p.calls for p in shared + own if p not in (shared[1234], own[321], own[7], shared[1999],
                                                                    shared[5], shared[6]))
        assert eng.core.counts()["events_dropped"] == 0
    assert time.monotonic() - start < 240
