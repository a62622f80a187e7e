"""The project's own SIPp scenarios (``tests/sipp/``) against pysiptest, in both roles.

UAC scenarios: ``sipp -sf X.xml -m N`` calls an in-process pysiptest Phone (or the reference PBX where a
registrar is needed); each test asserts SIPp's exit status 0 and what the pysiptest side saw on the wire.
UAS scenarios (``uas_X.xml``): a pysiptest phone sends the request to SIPp, which answers; the test asserts
the phone's events and SIPp's exit status.  SIPp's message log (``-trace_msg``) is part of every failure
message.  Session timers use intervals of a few seconds (Min-SE lowered on our side), so the whole file runs
in well under a minute and a half.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import pytest

from pysiptest import (
    Answered,
    CallEnded,
    Device,
    Engine,
    IncomingCall,
    InfoReceived,
    MessageReceived,
    NotifyReceived,
    Phone,
    RequestReceived,
    ResponseReceived,
    Ringing,
    SubscriptionEnded,
    TransferProgress,
    TransferRequested,
)
from pysiptest.sut import ReferencePbxSut
from pysiptest.sut._proc import free_port, wait_until
from test_sipp_interop import Sipp, _udp_port_taken, sipp  # noqa: F401  (the sipp fixture)

HOST = "127.0.0.1"
SCENARIOS = Path(__file__).resolve().parent / "sipp"

pytestmark = pytest.mark.requires_binary("sipp")

StartSipp = Callable[..., Sipp]


# -- helpers ---------------------------------------------------------------------------------
def make_device(**attrs: Any) -> Device:
    """A generic Device with some profile attributes changed (as a CLI switch or a model would)."""
    dev = Device()
    for name, value in attrs.items():
        if not hasattr(dev, name):
            raise AttributeError(f"Device has no attribute {name!r}")
        setattr(dev, name, value)
    return dev


def sipp_messages(run: Sipp, direction: str = "received") -> list[str]:
    """The SIP messages SIPp ``received`` (or ``sent``), in order, from its -trace_msg log; a retransmission
    (the same bytes again, e.g. on a loaded machine) is listed once."""
    out: list[str] = []
    for block in re.split(r"^-{20,}.*$", run.messages(), flags=re.M):
        head, _, rest = block.strip().partition("\n")
        if re.match(rf"^\w+ message {direction}\b", head) and rest.strip() not in out:
            out.append(rest.strip())
    return out


def first_line(msg: str) -> str:
    return msg.splitlines()[0] if msg else ""


def header(msg: str, name: str) -> Optional[str]:
    """One header of a SIP message text (first occurrence), None when absent."""
    m = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", msg, flags=re.M | re.I)
    return m.group(1) if m else None


def responses(run: Sipp, cseq: str, status: str = "200") -> list[str]:
    """The responses SIPp received with this CSeq ("2 INVITE") and status code."""
    return [m for m in sipp_messages(run)
            if header(m, "CSeq") == cseq and first_line(m).startswith(f"SIP/2.0 {status}")]


def sdp_version(msg: str) -> int:
    """The o= session version of the SDP body of a message text."""
    m = re.search(r"^o=\S+ \S+ (\d+) ", msg, flags=re.M)
    assert m is not None, f"no o= line in:\n{msg}"
    return int(m.group(1))


def run_uac(sipp: StartSipp, scenario: str, phone_port: int, calls: int = 1, service: str = "pysiptest",
            extra: tuple[str, ...] = (), timeout: float = 20.0) -> Sipp:
    """Run a UAC scenario against HOST:phone_port to its end; asserts exit status 0 and every call counted."""
    run = sipp(SCENARIOS / f"{scenario}.xml", HOST, free_port(HOST, tcp=False), remote=f"{HOST}:{phone_port}",
               extra=("-s", service, *extra), calls=calls, timeout=f"{int(timeout)}s")
    run.assert_all_calls_succeeded(run.finish(timeout + 10), calls)
    return run


def start_uas(sipp: StartSipp, scenario: str, calls: int = 1, timeout: float = 20.0) -> tuple[Sipp, int]:
    """Start a UAS scenario on a free port and wait until SIPp listens; (run, port)."""
    port = free_port(HOST, tcp=False)
    run = sipp(SCENARIOS / f"{scenario}.xml", HOST, port, calls=calls, timeout=f"{int(timeout)}s")
    wait_until(lambda: _udp_port_taken(HOST, port) or not run.proc.alive(), 10, what="SIPp to listen")
    assert run.proc.alive(), f"SIPp did not start:\n{run.report()}"
    return run, port


def finish_uas(run: Sipp, calls: int = 1, timeout: float = 20.0) -> None:
    run.assert_all_calls_succeeded(run.finish(timeout), calls)


def requests_seen(phone: Phone, method: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
    """The messages of every RequestReceived(method) in the phone's history, once there are ``count``."""
    def found() -> list[Any]:
        return [e.message for _, e in phone.history if isinstance(e, RequestReceived) and e.method == method]
    wait_until(lambda: len(found()) >= count, timeout, what=f"{count} {method} requests at {phone.name}")
    return found()


def events(phone: Phone, kind: type, count: int = 0, timeout: float = 5.0) -> list[Any]:
    """The phone's events of a type so far; with ``count``, waits until there are that many (the phone posts
    an event after it answered the request, so SIPp may have ended just before)."""
    def found() -> list[Any]:
        return [e for _, e in phone.history if isinstance(e, kind)]
    if count:
        wait_until(lambda: len(found()) >= count, timeout, what=f"{count} {kind.__name__} events of {phone.name}")
    return found()


@pytest.fixture
def answering_phone(engine: Engine) -> Callable[..., Phone]:
    """Factory of a phone on HOST that answers at once (Device attributes may be overridden)."""
    def make(user: str = "pysiptest", **attrs: Any) -> Phone:
        attrs.setdefault("auto_answer_after", 0)
        return Phone(user, make_device(**attrs), engine=engine, host=HOST)
    return make


# == SIPp calls pysiptest (UAC scenarios) =====================================================
def test_options_is_answered_200_with_allow(sipp, answering_phone) -> None:
    phone = answering_phone()
    run = run_uac(sipp, "options", phone.port, calls=2)
    assert len(requests_seen(phone, "OPTIONS", 2)) == 2
    ok = [m for m in sipp_messages(run) if first_line(m) == "SIP/2.0 200 OK"]
    assert len(ok) == 2, run.report()
    assert "PRACK" in (header(ok[0], "Allow") or ""), ok[0]


def test_invite_ack_then_phone_hangs_up(sipp, answering_phone) -> None:
    phone = answering_phone()
    run = sipp(SCENARIOS / "invite.xml", HOST, free_port(HOST, tcp=False), remote=f"{HOST}:{phone.port}",
               extra=("-s", "pysiptest"), calls=1, timeout="20s")
    call = phone.wait_for_call(10)
    phone.expect(Answered, 10, call=call)  # the ACK arrived
    assert len(requests_seen(phone, "ACK")) == 1
    call.hangup()
    ended = phone.expect(CallEnded, 10, call=call)
    assert (ended.reason, ended.status) == ("hung up", 200), run.report()
    run.assert_all_calls_succeeded(run.finish(20), 1)
    bye = [m for m in sipp_messages(run) if first_line(m).startswith("BYE ")]
    assert len(bye) == 1 and header(bye[0], "Call-ID") == call.call_id, run.report()


def test_invite_bye_from_sipp_ends_the_call(sipp, answering_phone) -> None:
    phone = answering_phone()
    run = run_uac(sipp, "invite_bye", phone.port, calls=3)
    ended = events(phone, CallEnded, 3)
    assert [e.reason for e in ended] == ["BYE received"] * 3, run.report()
    assert [e.caller for e in events(phone, IncomingCall)] == ["sipp"] * 3
    assert len(events(phone, Answered)) == 3 and len(requests_seen(phone, "BYE", 3)) == 3
    wait_until(lambda: all(c.state == "terminated" for c in phone.calls), 5, what="every call ended")
    oks = [m for m in sipp_messages(run) if first_line(m) == "SIP/2.0 200 OK"]
    assert sorted(header(m, "CSeq") for m in oks) == ["1 INVITE"] * 3 + ["2 BYE"] * 3, run.report()


def test_register_answers_the_401_digest_challenge_of_the_reference_pbx(sipp) -> None:
    sut = ReferencePbxSut(HOST, users={"sipp": "sipp-secret"}, auth_algorithm="MD5")
    sut.start()
    try:
        sipp_port = free_port(HOST, tcp=False)
        run = sipp(SCENARIOS / "register.xml", HOST, sipp_port, remote=f"{HOST}:{sut.port}", calls=1,
                   timeout="20s")
        run.assert_all_calls_succeeded(run.finish(30), 1)
        assert sut.pbx is not None
        bindings = sut.pbx.registrar.lookup("sipp")
    finally:
        sut.stop()
    assert [b.contact for b in bindings] == [f"sip:sipp@{HOST}:{sipp_port}"], run.report()
    got = sipp_messages(run)
    assert [first_line(m) for m in got] == ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"], run.report()
    challenge = header(got[0], "WWW-Authenticate") or ""
    assert challenge.startswith("Digest ") and "algorithm=MD5" in challenge and 'qop="auth"' in challenge, challenge
    sent = [m for m in sipp_messages(run, "sent") if first_line(m).startswith("REGISTER")]
    auth = header(sent[-1], "Authorization") or ""
    assert 'username="sipp"' in auth and "response=" in auth, run.report()
    assert "expires=120" in (header(got[1], "Contact") or "")


def test_cancel_gets_200_and_487_and_the_phone_sees_the_call_cancelled(sipp, answering_phone) -> None:
    phone = answering_phone(auto_answer_after=None)  # rings, never answers
    run = run_uac(sipp, "cancel", phone.port)
    call = events(phone, IncomingCall)[0].call
    ended = phone.expect(CallEnded, 5, call=call)
    assert (ended.status, ended.reason) == (487, "cancelled by the caller")
    assert len(requests_seen(phone, "CANCEL")) == 1
    finals = [(first_line(m), header(m, "CSeq")) for m in sipp_messages(run)
              if not first_line(m).startswith("SIP/2.0 1")]
    assert sorted(finals) == [("SIP/2.0 200 OK", "1 CANCEL"), ("SIP/2.0 487 Request Terminated", "1 INVITE")], \
        run.report()


def test_message_text_reaches_the_phone(sipp, answering_phone) -> None:
    phone = answering_phone()
    run_uac(sipp, "message", phone.port, calls=2)
    got = events(phone, MessageReceived, 2)
    # SIPp ends every body with CRLF; the phone reports the body as it came
    assert sorted(m.text for m in got) == ["hello from SIPp call 1\r\n", "hello from SIPp call 2\r\n"]
    assert all(m.content_type.startswith("text/plain") and m.sender.startswith("sip:sipp@") for m in got)


def test_info_dtmf_relay_is_decoded_in_the_call(sipp, answering_phone) -> None:
    phone = answering_phone()
    run_uac(sipp, "info", phone.port)
    [info] = events(phone, InfoReceived, 1)
    assert (info.signal, info.duration, info.content_type) == ("5", 160, "application/dtmf-relay")
    assert info.call is phone.calls[0]


def test_update_with_a_new_offer_switches_the_phone_to_pcma(sipp, answering_phone) -> None:
    phone = answering_phone(codecs=[0, 8])
    run = run_uac(sipp, "update", phone.port)
    assert len(requests_seen(phone, "UPDATE")) == 1
    call = phone.calls[0]
    assert call.session is not None and call.payload_type == 8, run.report()
    answers = [m for m in sipp_messages(run) if first_line(m) == "SIP/2.0 200 OK" and "\n\nv=0" in m]
    assert [header(m, "CSeq") for m in answers] == ["1 INVITE", "2 UPDATE"], run.report()
    assert re.search(r"^m=audio [1-9]\d* RTP/AVP 8\b", answers[1], flags=re.M), answers[1]
    versions = [sdp_version(m) for m in answers]
    assert versions[1] == versions[0] + 1, f"o= versions {versions}: RFC 3264 8 wants +1"


def test_reinvite_on_hold_is_answered_recvonly(sipp, answering_phone) -> None:
    phone = answering_phone()
    run = run_uac(sipp, "reinvite", phone.port)
    call = phone.calls[0]
    assert len(requests_seen(phone, "INVITE")) == 1  # the re-INVITE (the first INVITE is an IncomingCall)
    [ok] = responses(run, "2 INVITE")
    assert "a=recvonly" in ok, ok
    assert call.session is not None and not call.session.send  # held: we only receive


def test_prack_reliable_180_carries_rseq_and_the_prack_rack_matches(sipp, answering_phone) -> None:
    phone = answering_phone(auto_answer_after=None, supported=["100rel"])
    run = sipp(SCENARIOS / "prack.xml", HOST, free_port(HOST, tcp=False), remote=f"{HOST}:{phone.port}",
               extra=("-s", "pysiptest"), calls=1, timeout="20s")
    call = phone.wait_for_call(10)
    prack = phone.expect(RequestReceived, 10, method="PRACK")
    call.answer()
    run.assert_all_calls_succeeded(run.finish(20), 1)
    [ringing] = [m for m in sipp_messages(run) if first_line(m).startswith("SIP/2.0 180")]
    rseq = int(header(ringing, "RSeq") or "0")
    assert 1 <= rseq < 2**31 and "100rel" in (header(ringing, "Require") or ""), ringing
    assert prack.message.header("RAck").split() == [str(rseq), "1", "INVITE"]
    assert len([m for m in sipp_messages(run) if first_line(m).startswith("SIP/2.0 180")]) == 1  # PRACKed: no resend
    assert events(phone, CallEnded, 1)[0].reason == "BYE received"


def _timestamps(run: Sipp) -> list[tuple[float, str, str]]:
    """(time, "sent"/"received", first line) of every message in SIPp's log."""
    out = []
    for m in re.finditer(r"^-{20,} (\S+ \S+)\s*\n\w+ message (sent|received)[^\n]*\n\s*\n([^\n]*)", run.messages(),
                         flags=re.M):
        stamp = time.mktime(time.strptime(m.group(1).split(".")[0], "%Y-%m-%d %H:%M:%S"))
        out.append((stamp + float("0." + m.group(1).split(".")[1]), m.group(2), m.group(3).strip()))
    return out


def _gap(run: Sipp, first: str, then: str) -> float:
    """Seconds from the first message whose first line starts with ``first`` to the next one with ``then``."""
    stamps = _timestamps(run)
    t0 = next(t for t, _, line in stamps if line.startswith(first))
    t1 = next(t for t, _, line in stamps if line.startswith(then) and t >= t0)
    return t1 - t0


def test_session_timer_phone_as_refresher_updates_at_half_the_interval(sipp, answering_phone) -> None:
    phone = answering_phone(supported=["timer"], min_se=2)
    run = run_uac(sipp, "session_timer", phone.port)
    st = phone.calls[0].session_timer
    assert st is not None and (st.interval, st.we_refresh) == (4, True) and st.refreshes_sent >= 1
    [ok] = responses(run, "1 INVITE")
    assert header(ok, "Session-Expires") == "4;refresher=uas" and header(ok, "Require") == "timer", ok
    [update] = [m for m in sipp_messages(run) if first_line(m).startswith("UPDATE ")]
    assert header(update, "Session-Expires") == "4;refresher=uac", update
    assert 1.5 <= _gap(run, "ACK ", "UPDATE ") <= 3.5, _timestamps(run)


def test_seed_uac_with_timer_phone_refreshes_by_reinvite(sipp, answering_phone) -> None:
    phone = answering_phone(supported=["timer"], min_se=2, session_refresh_method="INVITE")
    run = run_uac(sipp, "uac_with_timer", phone.port)
    st = phone.calls[0].session_timer
    assert st is not None and (st.interval, st.we_refresh, st.refreshes_sent) == (6, True, 1)
    [reinvite] = [m for m in sipp_messages(run) if first_line(m).startswith("INVITE ")]
    assert header(reinvite, "Session-Expires") == "6;refresher=uac", reinvite
    assert sdp_version(reinvite) == sdp_version(responses(run, "1 INVITE")[0]) + 1, reinvite  # RFC 3264 8
    assert 2.5 <= _gap(run, "ACK ", "INVITE ") <= 4.5, _timestamps(run)


def test_subscribe_notify_phone_as_notifier(sipp, answering_phone) -> None:
    from pysiptest.subscription import default_body

    phone = answering_phone()
    served = []

    def accept(sub: Any) -> None:
        served.append(sub)
        sub.accept("active", body=default_body(phone, "presence"))
    phone.on_subscribe = accept
    run = run_uac(sipp, "subscribe_notify", phone.port)
    wait_until(lambda: served and served[0].state == "terminated", 5, what="the subscription to end")
    assert len(served) == 1 and served[0].end_reason == "timeout"
    notifies = [m for m in sipp_messages(run) if first_line(m).startswith("NOTIFY ")]
    states = [header(m, "Subscription-State") or "" for m in notifies]
    assert len(states) == 2 and states[1] == "terminated;reason=timeout", run.report()
    left = re.fullmatch(r"active;expires=(\d+)", states[0])
    assert left and 55 <= int(left.group(1)) <= 60, states  # what is left of the 60 s granted
    assert header(notifies[0], "Content-Type") == "application/pidf+xml" and "<basic>open</basic>" in notifies[0]
    assert [header(m, "Event") for m in notifies] == ["presence", "presence"]


def test_refer_transferee_calls_the_target_and_reports_sipfrag_progress(sipp, answering_phone) -> None:
    carol = answering_phone("carol")
    bob = answering_phone()  # no proxy: the new call goes to the Refer-To URI's own address
    target = f"sip:carol@{HOST}:{carol.port}"
    run = run_uac(sipp, "refer", bob.port, extra=("-key", "refer_to", target))
    req = bob.expect(TransferRequested, 5)
    assert req.target == target
    carol.expect(Answered, 5)
    notifies = [m for m in sipp_messages(run) if first_line(m).startswith("NOTIFY ")]
    frags = [m.split("\n\n", 1)[1].strip().splitlines()[0] for m in notifies]
    assert frags[0] == "SIP/2.0 100 Trying" and frags[-1] == "SIP/2.0 200 OK", run.report()
    assert (header(notifies[-1], "Subscription-State") or "").startswith("terminated"), notifies[-1]
    assert {header(m, "Event") for m in notifies} == {"refer;id=2"}
    assert {header(m, "Content-Type") for m in notifies} == {"message/sipfrag;version=2.0"}
    assert [(e.status, e.final) for e in events(bob, TransferProgress)][-1] == (200, True)
    assert events(bob, CallEnded, 1)[0].reason == "BYE received"  # SIPp hung up after the final NOTIFY
    carol.calls[0].hangup()


def test_proxy_mode_invite_bye_through_the_reference_pbx_to_a_registered_phone(sipp, engine: Engine) -> None:
    sut = ReferencePbxSut(HOST)
    sut.start()
    try:
        bob = Phone("bob", make_device(auto_answer_after=0), engine=engine, host=HOST, proxy=(HOST, sut.port))
        bob.register(timeout=5)
        run = run_uac(sipp, "proxy_invite_bye", sut.port, service="bob", calls=2)
        assert sut.pbx is not None
        bridges = list(sut.pbx.calls)
    finally:
        sut.stop()
    assert [(b.caller, b.callee, b.answered) for b in bridges] == [("sipp", "bob", True)] * 2
    assert [e.reason for e in events(bob, CallEnded, 2)] == ["BYE received"] * 2
    assert [e.caller for e in events(bob, IncomingCall)] == ["sipp"] * 2
    oks = [m for m in sipp_messages(run) if first_line(m) == "SIP/2.0 200 OK" and header(m, "CSeq") == "1 INVITE"]
    assert all((header(m, "Contact") or "").startswith("<sip:pbx@") for m in oks), run.report()


# == pysiptest calls SIPp (UAS scenarios) =====================================================
def calling_phone(engine: Engine, sipp_port: int, **attrs: Any) -> Phone:
    """A phone whose proxy is the SIPp UAS."""
    return Phone("alice", make_device(**attrs), engine=engine, host=HOST, proxy=(HOST, sipp_port))


def _call_up(phone: Phone, run: Sipp) -> Any:
    call = phone.call("sipp")
    try:
        phone.expect(Answered, 10, call=call)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.report()}") from None
    return call


def _hang_up(phone: Phone, call: Any, run: Sipp) -> None:
    call.hangup()
    ended = phone.expect(CallEnded, 10, call=call)
    assert (ended.reason, ended.status) == ("hung up", 200), run.report()


def test_uas_invite_bye_answers_our_call_and_our_bye(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_invite_bye", calls=2)
    phone = calling_phone(engine, port)
    for _ in range(2):
        call = _call_up(phone, run)
        assert call.payload_type == 0 and call.remote_sdp is not None
        _hang_up(phone, call, run)
    finish_uas(run, calls=2)
    assert [e.status for e in events(phone, Ringing)] == [180, 180]


def test_uas_prack_our_prack_acknowledges_the_reliable_180(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_prack")
    phone = calling_phone(engine, port, supported=["100rel"], require=["100rel"])
    call = _call_up(phone, run)
    _hang_up(phone, call, run)
    finish_uas(run)
    [invite] = [m for m in sipp_messages(run) if first_line(m).startswith("INVITE ")]
    assert "100rel" in (header(invite, "Require") or "") and "100rel" in (header(invite, "Supported") or "")
    [prack] = [m for m in sipp_messages(run) if first_line(m).startswith("PRACK ")]
    assert header(prack, "RAck") == f"4711 {header(invite, 'CSeq')}", prack
    ringing = [e for _, e in phone.history if isinstance(e, ResponseReceived) and e.status == 180]
    assert [r.message.header("RSeq") for r in ringing] == ["4711"]
    assert [r.status for r in events(phone, ResponseReceived) if r.method == "PRACK"] == [200]


def test_uas_update_our_offer_is_answered_with_pcma(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_update")
    phone = calling_phone(engine, port, codecs=[0, 8])
    call = _call_up(phone, run)
    assert call.payload_type == 0
    assert call.update(True, timeout=5) == 200
    assert call.payload_type == 8, run.report()  # media follows SIPp's answer
    _hang_up(phone, call, run)
    finish_uas(run)
    sent = sipp_messages(run)
    [invite] = [m for m in sent if first_line(m).startswith("INVITE ")]
    [update] = [m for m in sent if first_line(m).startswith("UPDATE ")]
    version = [sdp_version(invite), sdp_version(update)]
    assert version[1] == version[0] + 1, version


def test_uas_info_our_dtmf_relay_is_accepted(sipp, engine: Engine) -> None:
    from pysiptest import eventpkg

    run, port = start_uas(sipp, "uas_info")
    phone = calling_phone(engine, port)
    call = _call_up(phone, run)
    call.send_info(eventpkg.dtmf_relay("7"))
    resp = phone.expect(ResponseReceived, 5, method="INFO")
    assert resp.status == 200
    _hang_up(phone, call, run)
    finish_uas(run)
    [info] = [m for m in sipp_messages(run) if first_line(m).startswith("INFO ")]
    assert header(info, "Content-Type") == "application/dtmf-relay" and "Signal=7" in info, info


def test_uas_message_our_message_is_accepted(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_message")
    phone = calling_phone(engine, port)
    phone.send_message("sipp", "hello SIPp")
    resp = phone.expect(ResponseReceived, 5, method="MESSAGE")
    assert resp.status == 200
    finish_uas(run)
    [message] = sipp_messages(run)
    assert message.split("\n\n", 1)[1] == "hello SIPp", message


def test_uas_reinvite_hold_is_answered_recvonly(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_reinvite")
    phone = calling_phone(engine, port)
    call = _call_up(phone, run)
    call.hold(timeout=5)
    assert call.session is not None and call.session.direction == "sendonly" and not call.session.receive
    _hang_up(phone, call, run)
    finish_uas(run)


def test_uas_subscribe_notify_sipp_as_notifier(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_subscribe_notify")
    phone = calling_phone(engine, port)
    sub = phone.subscribe("sipp", "presence", expires=60)
    try:
        sub.wait_active(5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.report()}") from None
    first = phone.expect(NotifyReceived, 5)
    assert (first.event, first.state, first.content_type) == ("presence", "active", "application/pidf+xml")
    assert b"<basic>open</basic>" in first.body and sub.expires == 60
    assert sub.unsubscribe(5) == 200
    sub.wait_state("terminated", 5)
    ended = phone.expect(SubscriptionEnded, 5)
    assert ended.reason == "timeout"
    finish_uas(run)
    assert [n.state for n in sub.notifies] == ["active", "terminated"]


def test_uas_refer_transfer_completes_on_the_final_sipfrag(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_refer")
    phone = calling_phone(engine, port)
    call = _call_up(phone, run)
    xfer = call.transfer(f"sip:carol@{HOST}:5999")
    assert xfer.wait(10) == 200, run.report()
    assert xfer.status == 202 and xfer.progress == [(100, "Trying"), (200, "OK")]
    ended = phone.expect(CallEnded, 10, call=call)  # the transferor hangs up on success
    assert (ended.reason, ended.status) == ("hung up", 200)
    finish_uas(run)
    [refer] = [m for m in sipp_messages(run) if first_line(m).startswith("REFER ")]
    assert header(refer, "Refer-To") == f"<sip:carol@{HOST}:5999>" and header(refer, "Referred-By")


def test_uas_session_timer_caller_refreshes_by_update(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_session_timer")
    phone = calling_phone(engine, port, supported=["timer"], session_expires=4, min_se=2)
    call = _call_up(phone, run)
    st = call.session_timer
    assert st is not None and (st.interval, st.we_refresh) == (4, True)
    wait_until(lambda: st.refreshes_sent >= 1 and any(
        isinstance(e, ResponseReceived) and e.method == "UPDATE" and e.status == 200 for _, e in phone.history),
        5, what="the UPDATE refresh answered")
    _hang_up(phone, call, run)
    finish_uas(run)
    [invite] = [m for m in sipp_messages(run) if first_line(m).startswith("INVITE ")]
    assert (header(invite, "Session-Expires"), header(invite, "Min-SE")) == ("4", "2"), invite
    assert 1.5 <= _gap(run, "ACK ", "UPDATE ") <= 3.5, _timestamps(run)


def test_seed_uas_with_timer_caller_refreshes_by_reinvite(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_with_timer")
    phone = calling_phone(engine, port, supported=["timer"], session_expires=4, min_se=2,
                          session_refresh_method="INVITE")
    call = _call_up(phone, run)
    st = call.session_timer
    assert st is not None
    wait_until(lambda: st.refreshes_sent >= 1 and [
        e.status for e in events(phone, ResponseReceived) if (e.message.header("CSeq") or "") == "2 INVITE"] == [200],
        5, what="the re-INVITE refresh answered")
    _hang_up(phone, call, run)
    finish_uas(run)
    invites = [m for m in sipp_messages(run) if first_line(m).startswith("INVITE ")]
    assert len(invites) == 2 and header(invites[1], "Session-Expires") == "4;refresher=uac", run.report()
    assert 1.5 <= _gap(run, "ACK ", "INVITE ") <= 3.5, _timestamps(run)


def test_session_timer_expiry_phone_byes_when_sipp_does_not_refresh(sipp, answering_phone) -> None:
    phone = answering_phone(supported=["timer"], min_se=2)
    run = run_uac(sipp, "session_timer_expiry", phone.port)
    call = phone.calls[0]
    st = call.session_timer
    assert st is not None and (st.interval, st.we_refresh, st.expired) == (3, False, True)
    # our BYE, answered 200, with the reason the session timer gave (RFC 4028 10)
    assert [(e.reason, e.status) for e in events(phone, CallEnded, 1)] == [("session expired: no refresh for 2.0 s", 200)]
    assert 1.6 <= _gap(run, "ACK ", "BYE ") <= 3.0, _timestamps(run)  # SE - min(32, SE/3) = 2 s


def test_uas_cancel_our_cancel_gets_200_and_the_invite_487(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_cancel")
    phone = calling_phone(engine, port)
    call = phone.call("sipp")
    phone.expect(Ringing, 10, call=call)
    call.cancel()
    ended = phone.expect(CallEnded, 10, call=call)
    assert (ended.status, ended.reason) == (487, "cancelled"), run.report()
    finish_uas(run)
    got = sipp_messages(run)
    cancel = [m for m in got if first_line(m).startswith("CANCEL ")]
    ack = [m for m in got if first_line(m).startswith("ACK ")]
    assert len(cancel) == 1 and header(cancel[0], "CSeq") == "1 CANCEL", run.report()
    assert len(ack) == 1 and header(ack[0], "CSeq") == "1 ACK", run.report()
    via = [header(m, "Via") for m in got]
    assert via[0] == header(cancel[0], "Via") == header(ack[0], "Via"), via  # same branch (RFC 3261 9.1, 17.1.1.3)


def test_uas_register_phone_answers_sipp_digest_challenge(sipp, engine: Engine) -> None:
    run, port = start_uas(sipp, "uas_register", calls=2)
    phone = Phone("alice", make_device(register_expires=120), engine=engine, host=HOST, proxy=(HOST, port),
                  password="alice-secret")
    reg = phone.register(timeout=5)
    assert reg.expires == 120 and phone.registration.registered
    # the same with a wrong password: SIPp's verifyauth refuses it, so the check above can fail
    wrong = Phone("alice", make_device(register_expires=120), engine=engine, host=HOST, proxy=(HOST, port),
                  password="not-the-password")
    with pytest.raises(AssertionError, match="403"):
        wrong.register(timeout=5)
    finish_uas(run, calls=2)
    got = sipp_messages(run)
    assert [first_line(m).split()[0] for m in got] == ["REGISTER"] * 4, run.report()
    auth = header(got[1], "Authorization") or ""
    assert 'username="alice"' in auth and 'realm="sipp.test"' in auth and "qop=auth" in auth, auth


def test_session_timer_sipp_refreshes_and_the_phone_keeps_the_call(sipp, answering_phone) -> None:
    phone = answering_phone(supported=["timer"], min_se=2)
    run = run_uac(sipp, "session_timer_refresh", phone.port)
    call = phone.calls[0]
    st = call.session_timer
    assert st is not None and (st.interval, st.we_refresh, st.refreshes_received, st.expired) == (3, False, 2, False)
    assert [e.reason for e in events(phone, CallEnded, 1)] == ["BYE received"], run.report()
    oks = [m for m in sipp_messages(run) if header(m, "CSeq") in ("2 UPDATE", "3 UPDATE")]
    assert [header(m, "Session-Expires") for m in oks] == ["3;refresher=uac"] * 2, run.report()
    assert _gap(run, "ACK ", "BYE ") >= 3.4  # longer than the 2 s the phone waits without a refresh


def test_late_offer_invite_media_follows_the_answer_in_the_ack(sipp, answering_phone) -> None:
    phone = answering_phone(codecs=[0, 8])
    run = run_uac(sipp, "invite_late_offer", phone.port)
    call = phone.calls[0]
    [ok] = responses(run, "1 INVITE")
    assert re.search(r"^m=audio [1-9]\d* RTP/AVP 0 8", ok, flags=re.M), ok  # our offer, in the 200
    assert call.session is not None and call.payload_type == 8, "the SDP answer in the ACK was not used"
    assert call.media_stats().get("tx_packets", 0) > 0, call.media_stats()  # media went to SIPp's address
