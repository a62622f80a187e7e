"""Session timers (RFC 4028) through the reference PBX: the negotiation crosses both legs and so do refreshes.

Short intervals (Session-Expires 4 s) so that refreshes happen within the test.  Checked on the wire as the
phones see it: the B-leg INVITE, the 2xx relayed to the caller, the refresh UPDATE relayed to the callee.
"""
from __future__ import annotations

import time

from pysiptest import Answered, CallEnded, Device, RequestReceived, ResponseReceived, parse
from pysiptest.pbx import timers
from pysiptest.session_timer import parse_session_expires
from pysiptest.sut import ReferencePbxSut

SE = 4


class Timed(Device):
    supported = ["timer"]
    session_expires = SE
    min_se = 2
    ring_delay = None


class Untimed(Device):
    supported: list[str] = []
    ring_delay = None


def _answered(alice, bob, out):
    inc = bob.wait_for_call(3)
    inc.answer()
    alice.expect(Answered, 5, call=out)
    bob.expect(Answered, 5, call=inc)
    return inc


def test_timer_is_agreed_end_to_end_and_the_callers_refresh_reaches_the_callee(make_phone) -> None:
    alice, bob = make_phone("alice", Timed()), make_phone("bob", Timed())
    out = alice.call("bob")
    inc = bob.wait_for_call(3)
    b_invite = inc.request
    assert b_invite.call_id != out.call_id, "a B2BUA: the B leg is a dialog of its own"
    assert parse_session_expires(b_invite.header("Session-Expires")) == (SE, None)
    assert b_invite.header("Min-SE") == "2"
    assert "timer" in {t.strip() for t in b_invite.header("Supported").split(",")}
    inc.answer()
    ok = alice.expect(ResponseReceived, 5, status=200, method="INVITE").message
    assert parse_session_expires(ok.header("Session-Expires")) == (SE, "uac")
    assert "timer" in ok.header("Require")
    alice.expect(Answered, 5, call=out)
    bob.expect(Answered, 5, call=inc)
    assert out.session_timer is not None and out.session_timer.we_refresh
    assert inc.session_timer is not None and not inc.session_timer.we_refresh
    t0 = time.monotonic()
    upd = bob.expect(RequestReceived, SE, method="UPDATE").message  # Alice's refresh, relayed by the PBX
    waited = time.monotonic() - t0
    assert SE / 2 - 0.7 < waited < SE / 2 + 1.0, f"the refresh came {waited:.2f} s after the answer"
    assert parse_session_expires(upd.header("Session-Expires")) == (SE, "uac")
    assert upd.call_id == b_invite.call_id
    r = alice.expect(ResponseReceived, 3, method="UPDATE")
    assert r.status == 200 and parse_session_expires(r.message.header("Session-Expires")) == (SE, "uac")
    assert inc.session_timer.refreshes_received >= 1
    # Bob refreshes too (either side may): his UPDATE reaches Alice and her answer comes back to him
    inc.session_timer.refresh_now()
    assert alice.expect(RequestReceived, 3, method="UPDATE").message.call_id == out.call_id
    assert bob.expect(ResponseReceived, 3, method="UPDATE").status == 200
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_callee_without_timers_gets_the_caller_refreshing_and_the_session_outlives_the_interval(make_phone) -> None:
    alice, bob = make_phone("alice", Timed()), make_phone("bob", Untimed())
    out = alice.call("bob")
    inc = bob.wait_for_call(3)
    assert inc.request.header("Session-Expires") == str(SE), "the B leg still offers the interval"
    inc.answer()
    ok = alice.expect(ResponseReceived, 5, status=200, method="INVITE").message
    # RFC 4028 9: the UAS side (the PBX) names the caller as refresher when the callee does no timers
    assert parse_session_expires(ok.header("Session-Expires")) == (SE, "uac")
    alice.expect(Answered, 5, call=out)
    assert bob.expect(RequestReceived, SE, method="UPDATE")  # relayed; Bob answers 200 without a timer
    assert alice.expect(ResponseReceived, 3, method="UPDATE").status == 200
    time.sleep(SE + 0.5)  # a whole interval: refreshes keep the call up on both legs
    assert out.state == "confirmed" and inc.state == "confirmed"
    assert out.session_timer.refreshes_sent >= 2 and not out.session_timer.failed
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_reinvite_refresh_crosses_the_pbx_with_its_session_expires(make_phone) -> None:
    class ByReinvite(Timed):
        session_refresh_method = "INVITE"

    alice, bob = make_phone("alice", ByReinvite()), make_phone("bob", Timed())
    out = alice.call("bob")
    inc = _answered(alice, bob, out)
    reinv = bob.expect(RequestReceived, SE, method="INVITE").message  # Alice's re-INVITE refresh, relayed
    assert reinv.call_id == inc.request.call_id
    assert parse_session_expires(reinv.header("Session-Expires")) == (SE, "uac")
    oks = [alice.expect(ResponseReceived, 3, method="INVITE", status=200).message for _ in range(2)]
    assert [m.cseq[0] for m in oks] == [1, 2], "the first INVITE's 200, then the refresh's"
    ok = oks[1]
    assert parse_session_expires(ok.header("Session-Expires")) == (SE, "uac")
    assert out.state == "confirmed" and out.session_timer.refreshes_sent >= 1
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_callee_422_is_handled_by_the_pbx_with_the_callees_min_se(make_phone, pbx: ReferencePbxSut) -> None:
    class Strict(Timed):
        min_se = 6

    alice, bob = make_phone("alice", Timed()), make_phone("bob", Strict())
    out = alice.call("bob")
    inc = bob.wait_for_call(5)  # the first INVITE was refused 422 by Bob's phone; this is the PBX's second
    assert parse_session_expires(inc.request.header("Session-Expires"))[0] == 6
    assert inc.request.header("Min-SE") == "6"
    inc.answer()
    ok = alice.expect(ResponseReceived, 5, status=200, method="INVITE").message
    assert parse_session_expires(ok.header("Session-Expires")) == (6, "uac")
    assert not [e for e in alice.unexpected() if isinstance(e, ResponseReceived) and e.status == 422], \
        "the caller never saw the 422"
    br = pbx.pbx.calls[-1]
    assert "B 422" in br.history and br.timer.retried_422
    alice.expect(Answered, 5, call=out)
    assert out.session_timer.interval == 6
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_pbx_min_se_answers_a_short_interval_422_and_the_caller_asks_again(make_phone, pbx: ReferencePbxSut) -> None:
    pbx.pbx.min_se = 5
    alice, bob = make_phone("alice", Timed()), make_phone("bob", Timed())
    out = alice.call("bob")
    r422 = alice.expect(ResponseReceived, 3, status=422, method="INVITE").message
    assert r422.header("Min-SE") == "5"
    inc = bob.wait_for_call(5)  # Alice's phone asked again with Session-Expires 5
    assert parse_session_expires(inc.request.header("Session-Expires"))[0] == 5
    assert int(inc.request.header("Min-SE")) >= 5
    inc.answer()
    alice.expect(Answered, 5, call=out)
    assert out.session_timer.interval == 5
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def _req(extra: str) -> object:
    return parse(("INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
                  f"To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n").encode())


def test_timer_helpers_on_messages() -> None:
    assert timers.offer_of(_req("")) is None
    offer = timers.offer_of(_req("Session-Expires: 90\r\nMin-SE: 60\r\nSupported: 100rel, timer\r\n"))
    assert offer is not None and (offer.interval, offer.min_se, offer.supported) == (90, 60, True)
    assert timers.b_leg_headers(offer, 120) == [("Session-Expires", "120"), ("Min-SE", "120")]
    assert timers.too_small(offer, 120) == [("Min-SE", "120")] and timers.too_small(offer, 0) is None
    assert timers.answer_headers(offer, _req("")) == [("Session-Expires", "90;refresher=uac"), ("Require", "timer")]
    assert timers.answer_headers(offer, _req("Session-Expires: 100;refresher=uas\r\n"))[0] == \
        ("Session-Expires", "100;refresher=uas")
    assert timers.retry_after_422(offer, _req("Min-SE: 50\r\n")) is False, "a smaller Min-SE is no reason"
    assert timers.retry_after_422(offer, _req("Min-SE: 300\r\n")) and offer.interval == 300
    assert timers.retry_after_422(offer, _req("Min-SE: 600\r\n")) is False, "only once"
    no_timer = timers.offer_of(_req("Session-Expires: 90\r\n"))
    assert no_timer is not None and not no_timer.supported and timers.answer_headers(no_timer, _req("")) == []


def test_pbx_ends_both_legs_when_no_refresh_crosses_it_for_the_interval(make_phone, pbx: ReferencePbxSut) -> None:
    """The callee does no timers, so only the PBX watches the session: once the caller stops refreshing, the
    PBX BYEs both legs a whole interval after the last refresh it relayed."""
    alice, bob = make_phone("alice", Timed()), make_phone("bob", Untimed())
    out = alice.call("bob")
    inc = _answered(alice, bob, out)
    assert bob.expect(RequestReceived, SE, method="UPDATE")
    alice.expect(ResponseReceived, 3, method="UPDATE", status=200)
    last = time.monotonic()
    out.session_timer.stop_refreshing()
    br = pbx.pbx.calls[-1]
    assert br.guard is not None and br.guard.refreshes >= 1 and br.guard.interval == SE
    assert bob.expect(CallEnded, SE + 3, call=inc).reason == "BYE received"
    waited = time.monotonic() - last
    assert alice.expect(CallEnded, 3, call=out).reason == "BYE received", "the PBX, not Alice, ended the call"
    assert SE - 0.5 <= waited <= SE + 2.0, f"the PBX hung up {waited:.2f} s after the last refresh"
    assert br.ended and any(h.startswith("session expired") for h in br.history)


def test_refreshes_keep_the_guard_quiet(make_phone, pbx: ReferencePbxSut) -> None:
    alice, bob = make_phone("alice", Timed()), make_phone("bob", Timed())
    out = alice.call("bob")
    inc = _answered(alice, bob, out)
    time.sleep(SE * 1.5)
    br = pbx.pbx.calls[-1]
    assert out.state == inc.state == "confirmed" and not br.ended
    assert br.guard is not None and br.guard.refreshes >= 2
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)
