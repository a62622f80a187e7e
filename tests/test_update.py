"""UPDATE (RFC 3311) in early and confirmed dialogs, sent by either side, with and without an SDP offer."""
from __future__ import annotations

import pytest

from pysiptest import Answered, Device, Engine, Phone, RequestReceived, ResponseReceived, Ringing, sdp


class Quiet(Device):
    """Rings at once (unreliable 180) and answers only when told."""

    ring_delay = 0.0


@pytest.fixture
def pair():
    eng = Engine()
    try:
        bob = Phone("bob", Quiet(), engine=eng)
        alice = Phone("alice", Quiet(), engine=eng, proxy=(bob.host, bob.port))
        yield alice, bob
    finally:
        eng.close()


def _ringing(alice, bob):
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    alice.expect(Ringing, 3, call=out)
    return out, inc


def test_update_without_sdp_in_early_dialog_from_caller(pair):
    alice, bob = pair
    out, inc = _ringing(alice, bob)
    assert out.state == "ringing" and out.dialog_id
    assert out.update() == 200
    got = bob.expect(RequestReceived, 3, method="UPDATE")
    assert got.call is inc and got.message.body == b""
    r = alice.expect(ResponseReceived, 3, method="UPDATE")
    assert r.status == 200 and r.message.body == b""
    assert (out.state, inc.state) == ("ringing", "ringing")


def test_update_with_offer_in_early_dialog_gets_an_answer(pair):
    alice, bob = pair
    out, inc = _ringing(alice, bob)
    offer = alice.device.offer_sdp(alice.host, out.media_port, alice.user)
    assert out.update(sdp=offer) == 200
    got = bob.expect(RequestReceived, 3, method="UPDATE")
    assert got.message.body == offer
    r = alice.expect(ResponseReceived, 3, method="UPDATE")
    answer = sdp.parse(r.message.body)
    assert answer.media[0].port == inc.media_port
    assert out.session is not None and out.session.remote_port == inc.media_port


def test_callee_sends_update_in_early_dialog(pair):
    alice, bob = pair
    out, inc = _ringing(alice, bob)
    assert inc.dialog_id
    assert inc.update() == 200
    assert alice.expect(RequestReceived, 3, method="UPDATE").call is out
    bob.expect(ResponseReceived, 3, method="UPDATE", status=200)


@pytest.mark.parametrize("sender", ["caller", "callee"])
def test_update_with_offer_in_confirmed_dialog_moves_media(pair, sender):
    alice, bob = pair
    out, inc = _ringing(alice, bob)
    inc.answer()
    alice.expect(Answered, 3, call=out)
    bob.expect(Answered, 3, call=inc)
    me, peer_phone, my_call, peer_call = ((alice, bob, out, inc) if sender == "caller" else (bob, alice, inc, out))
    version = int(my_call.local_description.origin.session_version)
    assert my_call.update(sdp=True) == 200
    got = peer_phone.expect(RequestReceived, 3, method="UPDATE")
    assert got.call is peer_call and got.message.body
    r = me.expect(ResponseReceived, 3, method="UPDATE", status=200)
    assert r.message.header("Content-Type") == "application/sdp"
    assert int(my_call.local_description.origin.session_version) == version + 1
    assert my_call.session is not None and my_call.state == "confirmed" and peer_call.state == "confirmed"
    out.hangup()
