"""Capabilities of issue 5 whose other role had no test: OPTIONS
between phones and through the PBX, the callee putting the caller on hold (inactive), a codec change by
re-INVITE, a phone redirecting a call (3xx as UAS), 401/407 to in-dialog re-INVITE and INFO, and digest
registration with every algorithm against the reference PBX's server side.  Each checks the wire.
The audit table of issue 5 (which capability is tested in which role, and where) is docs/issue5-audit.md."""
from __future__ import annotations

import time
from typing import Any

import pytest

from pysiptest import (
    Answered, CallEnded, Device, Engine, Phone, Redirected, RequestReceived, ResponseReceived,
)
from pysiptest.auth import ALGORITHMS, DigestServer
from pysiptest.sut import ReferencePbxSut
from pysiptest.sut._proc import wait_until
from fake_server import SDP, FakeServer


class Quiet(Device):
    ring_delay = 0.0
    auto_answer_after = None


@pytest.fixture
def pair(engine: Engine):
    bob = Phone("bob", Quiet(), engine=engine)
    alice = Phone("alice", Quiet(), engine=engine, proxy=(bob.host, bob.port))
    yield alice, bob
    for p in (alice, bob):
        p.close()


def _connect(alice: Phone, bob: Phone):
    out = alice.call(bob)
    inc = bob.wait_for_call(3)
    inc.answer()
    alice.expect(Answered, 3, call=out)
    bob.expect(Answered, 3, call=inc)
    return out, inc


# ---- OPTIONS ---------------------------------------------------------------------------------------

def test_options_phone_to_phone_is_answered_200_with_allow(pair) -> None:
    alice, bob = pair
    r = alice.options(bob, timeout=3)
    got = bob.expect(RequestReceived, 3, method="OPTIONS")
    assert got.message.header("Accept") == "application/sdp" and got.call is None
    assert r.status == 200 and r.message.cseq[0] == got.message.cseq[0]
    assert r.message.call_id == got.message.call_id
    allow = {m.strip() for m in r.message.header("Allow").split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "PRACK"} <= allow


def test_options_through_the_pbx_reaches_the_user_and_the_answer_comes_back(make_phone) -> None:
    alice, bob = make_phone("alice"), make_phone("bob")
    r = alice.options("bob", timeout=3)
    got = bob.expect(RequestReceived, 3, method="OPTIONS")
    assert got.message.uri.startswith("sip:bob@")
    assert r.status == 200 and "INVITE" in r.message.header("Allow")


# ---- re-INVITE: the callee holds (inactive) and resumes; codec change ---------------------------------

def test_callee_holds_with_inactive_and_resumes(pair) -> None:
    alice, bob = pair
    out, inc = _connect(alice, bob)
    wait_until(lambda: out.media_stats().get("rx_packets", 0) > 5, 3, what="media before the hold")
    inc.hold(direction="inactive")  # the callee is the UAC of this re-INVITE
    reinv = alice.expect(RequestReceived, 3, method="INVITE")
    assert reinv.call is out and b"a=inactive" in reinv.message.body
    ok = bob.expect(ResponseReceived, 3, method="INVITE", status=200)
    assert b"a=inactive" in ok.message.body, "the answer to inactive is inactive (RFC 3264 6.1)"
    assert inc.session.direction == "inactive" and out.session.direction == "inactive"
    time.sleep(0.3)  # packets in flight
    a_rx, b_rx = out.media_stats()["rx_packets"], inc.media_stats()["rx_packets"]
    time.sleep(0.5)
    assert out.media_stats()["rx_packets"] == a_rx and inc.media_stats()["rx_packets"] == b_rx, "silence both ways"
    inc.resume()
    assert inc.session.direction == out.session.direction == "sendrecv"
    wait_until(lambda: out.media_stats()["rx_packets"] > a_rx + 10 and inc.media_stats()["rx_packets"] > b_rx + 10,
               3, what="media both ways after resume")
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


@pytest.mark.parametrize("sender", ["caller", "callee"])
def test_reinvite_codec_change_moves_both_sides_to_pcma(pair, sender) -> None:
    alice, bob = pair
    out, inc = _connect(alice, bob)
    assert out.session.payload_type == inc.session.payload_type == 0
    me, other, my_call, other_call = (alice, bob, out, inc) if sender == "caller" else (bob, alice, inc, out)
    alice.clear_events()  # the 200 to the first INVITE
    assert my_call.reinvite(codecs=[8]) == 200
    offer = other.expect(RequestReceived, 3, method="INVITE").message
    assert offer.body and b"m=audio" in offer.body and b"RTP/AVP 8" in offer.body
    ans = me.expect(ResponseReceived, 3, method="INVITE", status=200).message
    assert b"RTP/AVP 8" in ans.body and b"PCMU" not in ans.body
    assert my_call.session.payload_type == other_call.session.payload_type == 8
    wait_until(lambda: out.media_stats().get("rx_payload_type") == 8 and inc.media_stats().get("rx_payload_type") == 8,
               3, what="PCMA (PT 8) received both ways")
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


# ---- 3xx: a phone redirects -------------------------------------------------------------------------

def test_phone_redirects_with_302_and_the_caller_follows_to_the_contact(engine: Engine) -> None:
    carol = Phone("carol", Quiet(), engine=engine)
    bob = Phone("bob", Quiet(), engine=engine)
    alice = Phone("alice", Quiet(), engine=engine, proxy=(bob.host, bob.port))
    try:
        out = alice.call(bob)
        inc = bob.wait_for_call(3)
        inc.reject(302, "Moved Temporarily", [("Contact", f"<{carol.contact_uri}>")])  # the phone as UAS
        r = alice.expect(ResponseReceived, 3, method="INVITE", status=302)
        assert r.message.header("Contact") == f"<{carol.contact_uri}>"
        assert alice.expect(Redirected, 3, call=out).target == carol.contact_uri
        assert (inc.state, inc.end_status) == ("terminated", 302)
        inc2 = carol.wait_for_call(3)
        assert inc2.request.uri == carol.contact_uri and inc2.request.call_id == out.call_id
        inc2.answer()
        alice.expect(Answered, 3, call=out)
        out.hangup()
        carol.expect(CallEnded, 3, call=inc2)
    finally:
        for p in (alice, bob, carol):
            p.close()


# ---- 401/407 to in-dialog requests other than BYE --------------------------------------------------------

def _challenging_uas(auth: DigestServer, methods: tuple[str, ...]):
    def uas(srv: FakeServer, ev: Any, msg: Any) -> None:
        first_invite = msg.method == "INVITE" and ";tag=" not in (msg.header("To") or "")
        if msg.method in methods and not first_invite and auth.check(msg) is None:
            srv.respond(ev, auth.status, [auth.challenge_header()])
        elif msg.method == "INVITE":
            srv.respond(ev, 200, [("Contact", f"<sip:bob@127.0.0.1:{srv.port}>"),
                                  ("Content-Type", "application/sdp")], SDP)
        else:
            srv.respond(ev, 200)
    return uas


def test_in_dialog_reinvite_answers_407_with_credentials(engine: Engine) -> None:
    auth = DigestServer("fake.example", {"alice": "pw"}, proxy=True)
    srv = FakeServer(engine, _challenging_uas(auth, ("INVITE",)))
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="pw")
    call = phone.call("bob")
    phone.expect(Answered, 5, call=call)
    call.hold()  # raises unless the re-INVITE finally got a 2xx
    assert phone.expect(ResponseReceived, 3, method="INVITE", status=407)
    invites = srv.wait_requests("INVITE", 3)
    first, second = invites[1], invites[2]
    assert second.call_id == first.call_id and second.cseq[0] == first.cseq[0] + 1
    assert second.header("Proxy-Authorization") and second.body == first.body
    assert len(srv.wait_requests("ACK", 2)) == 2, "both 2xx ACKed (the 407 is ACKed inside its transaction)"
    assert call.session.direction == "sendonly"
    call.hangup()
    phone.expect(CallEnded, 5, call=call)


def test_in_dialog_info_answers_401_with_credentials(engine: Engine) -> None:
    auth = DigestServer("fake.example", {"alice": "pw"})
    srv = FakeServer(engine, _challenging_uas(auth, ("INFO",)))
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="pw")
    call = phone.call("bob")
    phone.expect(Answered, 5, call=call)
    call.send_info("Signal=5\r\nDuration=100\r\n")
    assert phone.expect(ResponseReceived, 3, method="INFO", status=401)
    assert phone.expect(ResponseReceived, 3, method="INFO", status=200)
    first, second = srv.wait_requests("INFO", 2)
    assert second.cseq[0] == first.cseq[0] + 1 and 'uri="sip:bob@127.0.0.1:' in second.header("Authorization")
    call.hangup()


# ---- digest: every algorithm, phone (client) against the reference PBX (server) ----------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_register_with_each_digest_algorithm_against_the_pbx(engine: Engine, algorithm: str) -> None:
    with ReferencePbxSut(users={"alice": "s3cret"}, auth_algorithm=algorithm) as sut:
        phone = Phone("alice", engine=engine, proxy=(sut.host, sut.port), password="s3cret")
        phone.register(timeout=3)
        challenge = phone.expect(ResponseReceived, 3, method="REGISTER", status=401).message
        assert f"algorithm={algorithm}" in challenge.header("WWW-Authenticate")
        assert sut.pbx.registrar.lookup("alice")
