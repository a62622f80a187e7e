"""Attended transfer through the reference PBX: Replaces (RFC 3891) is translated from the transferor's leg
to the target's leg of the consultation call, in the relayed REFER and in an INVITE that names a PBX leg."""
from __future__ import annotations

from urllib.parse import quote, unquote

from pysiptest import Answered, CallEnded, CallReplaced, RequestReceived, ResponseReceived
from pysiptest.pbx import replaces


def _connect(caller, callee, callee_user: str):
    out = caller.call(callee_user)
    inc = callee.wait_for_call(5)
    inc.answer()
    caller.expect(Answered, 5, call=out)
    callee.expect(Answered, 5, call=inc)
    return out, inc


def _replaces_of(refer_to: str) -> str:
    return unquote(refer_to.split("?Replaces=", 1)[1].split("&", 1)[0].rstrip(">"))


def test_attended_transfer_through_the_pbx_names_carols_own_dialog(make_phone, pbx) -> None:
    alice, bob, carol = make_phone("alice"), make_phone("bob", "Chipmunk5000"), make_phone("carol")
    a_b, b_a = _connect(alice, bob, "bob")
    b_c, c_b = _connect(bob, carol, "carol")
    assert b_c.call_id != c_b.call_id, "a B2BUA: Bob's and Carol's dialogs of the consultation differ"
    xfer = b_a.attended_transfer(b_c)
    refer = alice.expect(RequestReceived, 5, method="REFER").message
    carol_info = carol.engine.core.dialog_info(c_b.dialog_id)
    # the PBX rewrote Bob's Replaces (his dialog with the PBX) into the PBX's dialog with Carol
    assert _replaces_of(refer.header("Refer-To")) == (
        f"{c_b.call_id};to-tag={carol_info['local_tag']};from-tag={carol_info['remote_tag']}")
    replaced = carol.expect(CallReplaced, 5)
    assert replaced.old is c_b
    assert replaced.new.request.header("Replaces").startswith(c_b.call_id + ";")
    assert carol.expect(CallEnded, 5, call=c_b).reason == "hung up"
    assert bob.expect(CallEnded, 5, call=b_c).reason == "BYE received"  # the PBX relayed Carol's BYE
    assert xfer.wait(10) == 200
    assert bob.expect(CallEnded, 5, call=b_a).reason == "hung up"
    assert alice.expect(CallEnded, 5, call=a_b).reason == "BYE received"
    assert replaced.new.state == "confirmed"
    new_call = [c for c in alice.calls if c is not a_b and c.state == "confirmed"]
    assert len(new_call) == 1 and replaced.new.state == "confirmed"
    new_call[0].hangup()
    carol.expect(CallEnded, 5, call=replaced.new)


def test_invite_with_replaces_naming_a_pbx_leg_reaches_the_other_leg(make_phone) -> None:
    """Alice builds the Replaces herself from her own dialog with the PBX (as if Bob's REFER had named it): the
    PBX maps it to its dialog with Carol, so Carol's call is replaced."""
    alice, carol, dave = make_phone("alice"), make_phone("carol"), make_phone("dave")
    d_c, c_d = _connect(dave, carol, "carol")
    info = dave.engine.core.dialog_info(d_c.dialog_id)
    c_info = carol.engine.core.dialog_info(c_d.dialog_id)
    value = f"{d_c.call_id};to-tag={info['remote_tag']};from-tag={info['local_tag']}"
    out = alice.call("carol", headers=[("Replaces", value)])
    replaced = carol.expect(CallReplaced, 5)
    assert replaced.old is c_d
    assert replaced.new.request.header("Replaces") == (
        f"{c_d.call_id};to-tag={c_info['local_tag']};from-tag={c_info['remote_tag']}") and c_d.call_id != d_c.call_id
    alice.expect(Answered, 5, call=out)
    dave.expect(CallEnded, 5, call=d_c)
    out.hangup()


def test_replaces_of_an_unknown_dialog_passes_unchanged_and_gets_481(make_phone) -> None:
    alice, _carol = make_phone("alice"), make_phone("carol")
    out = alice.call("carol", headers=[("Replaces", "nosuchcall;to-tag=a;from-tag=b")])
    assert alice.expect(CallEnded, 5, call=out).status == 481
    assert alice.expect(ResponseReceived, 5, method="INVITE", status=481)


def test_translate_maps_a_leg_to_the_other_and_keeps_parameters() -> None:
    dialogs = {1: {"call_id": "bob-pbx", "local_tag": "p1", "remote_tag": "b1"},
               2: {"call_id": "pbx-carol", "local_tag": "p2", "remote_tag": "c2"}}
    legs = [(1, 2), (2, 1)]
    info = dialogs.__getitem__
    assert replaces.translate("bob-pbx;to-tag=p1;from-tag=b1;early-only", legs, info) == \
        "pbx-carol;to-tag=c2;from-tag=p2;early-only"
    assert replaces.translate("pbx-carol;to-tag=c2;from-tag=p2", legs, info) is None, "already the far leg"
    assert replaces.translate("bob-pbx;to-tag=b1;from-tag=p1", legs, info) is None, "tags the wrong way round"
    assert replaces.translate("garbage", legs, info) is None
    refer_to = f"<sip:carol@h?Replaces={quote('bob-pbx;to-tag=p1;from-tag=b1', safe='')}>"
    new = replaces.translate_refer_to(refer_to, legs, info)
    assert new is not None and new.startswith("<sip:carol@h?Replaces=") and new.endswith(">")
    assert _replaces_of(new) == "pbx-carol;to-tag=c2;from-tag=p2"
    assert replaces.translate_refer_to("<sip:carol@h>", legs, info) is None
    assert replaces.translate("bob-pbx;to-tag=p1;from-tag=b1", [(1, 3)], info) is None, "the other leg is gone"
