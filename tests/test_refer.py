"""REFER (RFC 3515): blind transfer with message/sipfrag progress, a failed transfer, norefersub (RFC 4488),
attended transfer with Replaces (RFC 3891), phone to phone and through the reference PBX."""
from __future__ import annotations

from urllib.parse import unquote

import pytest

from pysiptest import (
    Answered,
    CallEnded,
    CallReplaced,
    Engine,
    Phone,
    RequestReceived,
    ResponseReceived,
    TransferProgress,
    TransferRequested,
)
from pysiptest.sut._proc import wait_until


@pytest.fixture
def trio(engine: Engine):
    """carol; alice, who uses carol as her proxy; bob, who uses alice as his."""
    carol = Phone("carol", engine=engine)
    alice = Phone("alice", engine=engine, proxy=(carol.host, carol.port))
    bob = Phone("bob", engine=engine, proxy=(alice.host, alice.port))
    yield alice, bob, carol
    for p in (alice, bob, carol):
        p.close()


def _connect(caller: Phone, callee: Phone, target=None):
    out = caller.call(target or callee)
    inc = callee.wait_for_call(5)
    inc.answer()
    caller.expect(Answered, 5, call=out)
    callee.expect(Answered, 5, call=inc)
    return out, inc


def test_blind_transfer_reports_progress_and_the_transferor_hangs_up(trio) -> None:
    alice, bob, carol = trio
    b_call, a_call = _connect(bob, alice)
    xfer = b_call.transfer(carol)
    refer = alice.expect(RequestReceived, 5, method="REFER").message
    assert refer.header("Refer-To") == f"<{carol.aor}>" and refer.header("Referred-By") == f"<{bob.aor}>"
    assert refer.call_id == b_call.call_id  # inside the call's dialog
    req = alice.expect(TransferRequested, 5, call=a_call)
    assert req.target == carol.aor and req.replaces is None
    assert bob.expect(ResponseReceived, 5, method="REFER").status == 202
    c_call = carol.wait_for_call(5)
    invite = c_call.request
    assert invite.header("Referred-By") == f"<{bob.aor}>"
    first = bob.expect(RequestReceived, 5, method="NOTIFY").message
    assert first.header("Event").startswith("refer") and first.header("Content-Type").startswith("message/sipfrag")
    assert first.header("Subscription-State").startswith("active") and first.body == b"SIP/2.0 100 Trying\r\n"
    assert bob.expect(TransferProgress, 5, call=b_call).status == 100
    c_call.answer()
    assert alice.expect(Answered, 5, call=req.new_call)
    final = bob.expect(TransferProgress, 5, call=b_call, final=True)
    assert (final.status, final.reason) == (200, "OK")
    assert xfer.wait(5) == 200 and xfer.progress[-1] == (200, "OK")
    last = [e.message for _, e in bob.history if isinstance(e, RequestReceived) and e.method == "NOTIFY"][-1]
    assert last.header("Subscription-State").startswith("terminated") and last.body == b"SIP/2.0 200 OK\r\n"
    # the transferor leaves: the original call ends with BYE, the new one stays up
    assert bob.expect(CallEnded, 5, call=b_call).reason == "hung up"
    assert alice.expect(CallEnded, 5, call=a_call).reason == "BYE received"
    assert req.new_call.state == "confirmed" and c_call.state == "confirmed"
    assert alice.expect(TransferProgress, 5, call=a_call, final=True).status == 200
    wait_until(lambda: alice.engine.core.counts()["dialogs"] == 2, 5, what="only the alice-carol call left")


def test_failed_transfer_keeps_the_original_call(trio) -> None:
    alice, bob, carol = trio
    b_call, a_call = _connect(bob, alice)
    xfer = b_call.transfer(carol)
    c_call = carol.wait_for_call(5)
    c_call.reject(486)
    final = bob.expect(TransferProgress, 5, call=b_call, final=True)
    assert final.status == 486
    assert xfer.wait(5) == 486
    assert b_call.state == "confirmed" and a_call.state == "confirmed"
    b_call.hangup()
    alice.expect(CallEnded, 5, call=a_call)
    wait_until(lambda: alice.engine.core.counts()["dialogs"] == 0, 5, what="no dialog left")


def test_norefersub_transfer_sends_no_notify(trio) -> None:
    alice, bob, carol = trio
    b_call, a_call = _connect(bob, alice)
    xfer = b_call.transfer(carol, norefersub=True)
    refer = alice.expect(RequestReceived, 5, method="REFER").message
    assert refer.header("Refer-Sub") == "false" and "norefersub" in refer.header("Supported")
    resp = bob.expect(ResponseReceived, 5, method="REFER")
    assert resp.status == 202 and resp.message.header("Refer-Sub") == "false"
    assert xfer.wait(5) == 202
    c_call = carol.wait_for_call(5)
    c_call.answer()
    alice.expect(Answered, 5)
    assert not [e for _, e in bob.history if isinstance(e, RequestReceived) and e.method == "NOTIFY"]
    assert b_call.state == "confirmed"  # the transferor decides itself when to leave


def test_attended_transfer_replaces_the_consultation_call(trio) -> None:
    alice, bob, carol = trio
    b_a, a_b = _connect(bob, alice)
    bob.proxy = (carol.host, carol.port)  # the consultation call goes to carol directly
    b_c, c_b = _connect(bob, carol)
    xfer = b_a.attended_transfer(b_c)
    refer = alice.expect(RequestReceived, 5, method="REFER").message
    refer_to = refer.header("Refer-To")
    assert "?Replaces=" in refer_to
    info = bob.engine.core.dialog_info(b_c.dialog_id)
    assert unquote(refer_to.split("?Replaces=")[1].rstrip(">")) == (
        f"{b_c.call_id};to-tag={info['remote_tag']};from-tag={info['local_tag']}")
    replaced = carol.expect(CallReplaced, 5)
    assert replaced.old is c_b
    invite = replaced.new.request
    assert invite.header("Replaces").startswith(b_c.call_id) and invite.header("Referred-By") == f"<{bob.aor}>"
    assert carol.expect(CallEnded, 5, call=c_b).reason == "hung up"
    assert bob.expect(CallEnded, 5, call=b_c).reason == "BYE received"
    assert xfer.wait(5) == 200
    assert bob.expect(CallEnded, 5, call=b_a).reason == "hung up"
    assert alice.expect(CallEnded, 5, call=a_b).reason == "BYE received"
    assert replaced.new.state == "confirmed"
    wait_until(lambda: alice.engine.core.counts()["dialogs"] == 2, 5, what="only the alice-carol call left")


def test_replaces_for_an_unknown_dialog_gets_481(trio) -> None:
    alice, bob, carol = trio
    out = alice.call(carol, headers=[("Replaces", "nosuchcall;to-tag=a;from-tag=b")])
    assert alice.expect(CallEnded, 5, call=out).status == 481


def test_blind_transfer_through_the_pbx(make_phone) -> None:
    alice = make_phone("alice")
    bob = make_phone("bob")
    carol = make_phone("carol")
    b_call, a_call = _connect(bob, alice, "alice")
    xfer = b_call.transfer("carol")
    req = alice.expect(TransferRequested, 5, call=a_call)
    c_call = carol.wait_for_call(5)
    c_call.answer()
    alice.expect(Answered, 5, call=req.new_call)
    assert xfer.wait(5) == 200
    assert [s for s, _ in xfer.progress] == [100, 200]
    alice.expect(CallEnded, 5, call=a_call)
