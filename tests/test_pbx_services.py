"""Reference PBX services: DND, forwarding, busy/no-answer to voicemail, MESSAGE relay, users file."""
from __future__ import annotations

from pathlib import Path

import pytest

from pysiptest import CallEnded, Engine, Phone, RequestReceived, ResponseReceived, find_device, parse
from pysiptest.pbx.users import load_users, parse_users
from pysiptest.sut import ReferencePbxSut
from pysiptest.voicemail import VoicemailService, mailbox_owner, message_summary, parse_message_summary


def test_dnd_without_voicemail_is_486(make_phone, pbx: ReferencePbxSut) -> None:
    alice, bob = make_phone("alice"), make_phone("bob", "Chipmunk5000")
    pbx.set_dnd("bob", True)
    call = alice.call("bob")
    call.wait_state("terminated", timeout=3)
    assert call.end_status == 486
    assert not bob.calls


def test_dnd_with_voicemail_goes_to_the_box_with_diversion(make_phone, pbx: ReferencePbxSut) -> None:
    alice, bob = make_phone("alice"), make_phone("bob", "Chipmunk5000")
    box = VoicemailService(make_phone("voicemail", "Voicemail")).start()
    try:
        pbx.set_dnd("bob", True)
        call = alice.call("bob")
        call.wait_state("confirmed", timeout=3)
        (vm_call,) = box.phone.calls
        assert "reason=do-not-disturb" in vm_call.request.header("Diversion")
        assert mailbox_owner(vm_call.request) == ("bob", "do-not-disturb")
        call.hangup()
        box.wait_for_message("bob", timeout=3)
        ev = bob.expect(RequestReceived, timeout=3, method="NOTIFY")
        assert parse_message_summary(ev.message.body)["messages-waiting"] == "yes"
    finally:
        box.stop()


def test_no_answer_goes_to_voicemail_after_the_timeout(make_phone, pbx: ReferencePbxSut) -> None:
    pbx.pbx.no_answer_timeout = 0.5
    alice, bob = make_phone("alice"), make_phone("bob", "Chipmunk5000")
    box = VoicemailService(make_phone("voicemail", "Voicemail")).start()
    try:
        call = alice.call("bob")
        bob.wait_for_call(timeout=3)
        call.wait_state("confirmed", timeout=4)
        bob.expect(CallEnded, timeout=3)  # the PBX cancelled Bob's ringing leg
        assert mailbox_owner(box.phone.calls[0].request) == ("bob", "no-answer")
    finally:
        box.stop()


def test_forwarding_rings_the_target(make_phone, pbx: ReferencePbxSut) -> None:
    alice, _bob, carol = make_phone("alice"), make_phone("bob"), make_phone("carol")
    pbx.set_forward("bob", "carol")
    alice.call("bob")
    incoming = carol.wait_for_call(timeout=3)
    assert "reason=unconditional" in incoming.request.header("Diversion")
    pbx.set_forward("bob", None)


def test_message_is_relayed_with_its_body(make_phone) -> None:
    alice, bob = make_phone("alice"), make_phone("bob")
    alice.send_message("bob", "hello bob")
    ev = bob.expect(RequestReceived, timeout=3, method="MESSAGE")
    assert ev.message.body == b"hello bob"
    assert alice.expect(ResponseReceived, timeout=3, method="MESSAGE").status == 200


def test_message_to_an_unknown_user_is_404(make_phone) -> None:
    alice = make_phone("alice")
    alice.send_message("nobody", "hello?")
    assert alice.expect(ResponseReceived, timeout=3, method="MESSAGE").status == 404


def test_users_file_limits_registration(tmp_path: Path, engine: Engine) -> None:
    f = tmp_path / "users.txt"
    f.write_text("# accounts\nalice:secret\nbob : pw2  # desk\n\n")
    assert load_users(f) == {"alice": "secret", "bob": "pw2"}
    with ReferencePbxSut(users=load_users(f)) as sut:
        ok = Phone("alice", find_device("Squirrel350")(), engine=engine, proxy=(sut.host, sut.port))
        ok.register(timeout=3)
        intruder = Phone("mallory", engine=engine, proxy=(sut.host, sut.port))
        with pytest.raises(AssertionError, match="403"):
            intruder.register(timeout=3)


def test_bad_users_line_names_the_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_users("alice:x\nno-colon-here\n")


def test_mailbox_owner_sources() -> None:
    def inv(extra: str, ruri: str = "sip:voicemail@h", to: str = "<sip:voicemail@h>"):
        return parse((f"INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
                      f"To: {to}\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n").encode())

    assert mailbox_owner(inv("Diversion: <sip:bob@h>;reason=user-busy\r\n")) == ("bob", "user-busy")
    assert mailbox_owner(inv("History-Info: <sip:carol@h>;index=1\r\n"))[0] == "carol"
    assert mailbox_owner(inv("", ruri="sip:vm-dave@h")) == ("dave", "")
    assert mailbox_owner(inv("", to="<sip:erin@h>")) == ("erin", "")
    assert mailbox_owner(inv("")) == ("", "")
    assert message_summary(2, 1) == b"Messages-Waiting: yes\r\nVoice-Message: 2/1\r\n"


def test_cli_pbx_reads_the_users_file(tmp_path: Path, run_cli) -> None:
    f = tmp_path / "users.txt"
    f.write_text("alice:a\nbob:b\n")
    proc = run_cli("pbx", "--listen", "127.0.0.1:15391", "--users", str(f), "--no-answer", "3")
    proc.wait_for(r"2 users from")
    assert proc.stop() == 0


# ---- 100rel on both legs (RFC 3262) ------------------------------------------------------------------

import secrets  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from pysiptest import (  # noqa: E402
    Answered, Device, NotifyReceived, Ringing, SubscriptionEnded, SubscriptionRequested, eventpkg,
)
from pysiptest.sut._proc import wait_until  # noqa: E402


class _RelCaller(Device):
    supported = ["100rel"]
    require = ["100rel"]
    ring_delay = None


class _RelCallee(Device):
    supported = ["100rel"]
    reliable_provisionals = True
    ring_delay = None


def test_pbx_relays_a_reliable_180_and_pracks_the_callees(make_phone, pbx: ReferencePbxSut) -> None:
    alice, bob = make_phone("alice", _RelCaller()), make_phone("bob", _RelCallee())
    out = alice.call("bob")
    inc = bob.wait_for_call(3)
    assert "100rel" in inc.request.header("Supported"), "the B-leg INVITE offers 100rel"
    inc.ring()
    prack = bob.expect(RequestReceived, 3, method="PRACK")  # the PBX PRACKs Bob's reliable 180
    r = alice.expect(ResponseReceived, 3, status=180)
    assert r.message.header("Require") == "100rel" and int(r.message.header("RSeq")) > 0
    assert prack.message.header("RAck").endswith(" INVITE")
    alice.expect(ResponseReceived, 3, status=200, method="PRACK")  # the PBX answered Alice's PRACK
    alice.expect(Ringing, 3, call=out)
    time.sleep(1.5)  # the PRACK stopped the PBX's retransmissions: no second 180 reached Alice
    assert not [e for e in alice.unexpected() if isinstance(e, ResponseReceived) and e.status == 180]
    assert len([e for e in bob.unexpected() if isinstance(e, RequestReceived) and e.method == "PRACK"]) == 0
    inc.answer()
    alice.expect(Answered, 3, call=out)
    bob.expect(Answered, 3, call=inc)
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_pbx_holds_the_200_after_a_reliable_183_with_sdp_until_the_callers_prack(make_phone) -> None:
    class ManualPrack(_RelCaller):
        auto_prack = False

    alice, bob = make_phone("alice", ManualPrack()), make_phone("bob", _RelCallee())
    out = alice.call("bob")
    inc = bob.wait_for_call(3)
    inc.progress()  # reliable 183 with SDP; the PBX PRACKs it at once
    r = alice.expect(ResponseReceived, 3, status=183)
    assert r.message.header("RSeq") and r.message.body
    inc.answer()
    bob.expect(Answered, 3, call=inc)  # Bob's leg is up: the PBX got the 200 and ACKed it
    time.sleep(0.8)
    assert not [e for e in alice.unexpected() if isinstance(e, ResponseReceived) and e.method == "INVITE"
                and e.status == 200], "the PBX holds its 200 while its reliable 183 with SDP is not PRACKed"
    alice.engine.core.dialog_request(out.dialog_id, "PRACK",
                                     [("RAck", f"{r.message.header('RSeq')} {r.message.cseq[0]} INVITE")])
    alice.expect(ResponseReceived, 3, status=200, method="PRACK")
    ok = alice.expect(ResponseReceived, 3, status=200, method="INVITE")
    assert ok.message.nameaddr("To")["tag"] == r.message.nameaddr("To")["tag"]
    alice.expect(Answered, 3, call=out)
    out.hangup()
    bob.expect(CallEnded, 3, call=inc)


def test_pbx_pracked_180_then_486_reaches_the_caller_with_the_same_to_tag_and_is_acked(make_phone, pbx) -> None:
    """The seed's Kamailio case (a PRACKed 180, then 486) through the reference PBX, checked on the wire."""
    from test_prack import _LoopbackSniffer, pracked_180_then_486

    alice, bob = make_phone("alice", _RelCaller()), make_phone("bob", _RelCallee())
    try:
        sniffer = _LoopbackSniffer([alice.port, bob.port, pbx.port])
    except PermissionError:
        pytest.skip("capturing on loopback needs CAP_NET_RAW")
    try:
        pracked_180_then_486(alice, bob, sniffer, pbx.port)
        b_acks = [d for sp, dp, d in sniffer.packets if sp == pbx.port and dp == bob.port and d.startswith(b"ACK ")]
        assert len(b_acks) == 1, "the PBX ACKed Bob's 486 on the B leg"
    finally:
        sniffer.close()


# ---- SUBSCRIBE/NOTIFY through the PBX (RFC 6665) ------------------------------------------------------

def test_dialog_event_subscription_through_the_pbx_refresh_notify_and_unsubscribe(make_phone, pbx) -> None:
    alice, bob = make_phone("alice"), make_phone("bob")
    sub = alice.subscribe("bob", "dialog", expires=120)
    req = bob.expect(SubscriptionRequested, 5).subscription
    first = bob.expect(RequestReceived, 5, method="SUBSCRIBE").message
    assert first.call_id != sub.call_id, "a B2BUA: the PBX subscribes with its own dialog"
    assert first.header("Event") == "dialog" and first.header("Expires") == "120"
    req.accept("active", eventpkg.dialog_info(bob.aor, 0, [("d1", "abc", "early")]))
    ok = alice.expect(ResponseReceived, 5, method="SUBSCRIBE", status=200)
    assert ok.message.header("Contact") and ok.message.header("Expires") == "120"
    n = alice.expect(NotifyReceived, 5, event="dialog")
    assert n.subscription is sub and n.state == "active"
    assert eventpkg.parse_dialog_info(n.body) == (0, [("d1", "early")])
    assert n.message.call_id == sub.call_id, "the NOTIFY comes in Alice's own subscription dialog"
    sub.wait_active()
    req.notify(eventpkg.dialog_info(bob.aor, 1, [("d1", "abc", "confirmed")]))
    n2 = alice.expect(NotifyReceived, 5, event="dialog")
    assert eventpkg.parse_dialog_info(n2.body) == (1, [("d1", "confirmed")])
    assert sub.refresh(60) == 200
    refresh = bob.expect(RequestReceived, 5, method="SUBSCRIBE").message
    assert refresh.call_id == first.call_id and refresh.header("Expires") == "60"
    alice.expect(NotifyReceived, 5, event="dialog")
    assert sub.unsubscribe() == 200
    last = alice.expect(NotifyReceived, 5, event="dialog")
    assert last.state == "terminated"
    assert alice.expect(SubscriptionEnded, 5).subscription is sub
    assert bob.expect(SubscriptionEnded, 5).subscription is req
    wait_until(lambda: not pbx.pbx._by_dialog, 5, what="the PBX forgets both subscription dialogs")


def test_presence_subscription_reaches_a_tcp_phone_over_its_connection(make_phone, pbx) -> None:
    """Bob's Chipmunk5000 registers over TCP: the PBX's SUBSCRIBE goes on that transport (it went on UDP to his
    TCP port before, and the subscriber waited for a timeout)."""
    alice, bob = make_phone("alice"), make_phone("bob", "Chipmunk5000")
    (binding,) = pbx.pbx.registrar.lookup("bob")
    assert binding.transport_id == pbx.pbx.tcp_transport_id
    sub = alice.subscribe("bob", "presence", expires=60)
    req = bob.expect(SubscriptionRequested, 3).subscription
    first = bob.expect(RequestReceived, 3, method="SUBSCRIBE").message
    assert first.header("Via").startswith("SIP/2.0/TCP ")
    assert first.header("Contact") == f"<sip:pbx@{pbx.host}:{pbx.port};transport=tcp>"
    req.accept("active", eventpkg.pidf(bob.aor, "open"))
    assert alice.expect(ResponseReceived, 3, method="SUBSCRIBE").status == 200
    n = alice.expect(NotifyReceived, 3, event="presence")
    assert n.subscription is sub and eventpkg.parse_pidf(n.body).basic == "open"
    assert sub.unsubscribe() == 200


def test_presence_subscription_to_an_unregistered_user_is_404(make_phone) -> None:
    alice = make_phone("alice")
    alice.subscribe("nobody", "presence")
    assert alice.expect(ResponseReceived, 5, method="SUBSCRIBE").status == 404
    assert alice.expect(SubscriptionEnded, 5)


def test_presence_notify_before_the_2xx_is_relayed_after_answering_the_subscriber(make_phone, pbx) -> None:
    """A raw notifier (carol) sends its NOTIFY before its 200: the PBX answers Alice 200 first, then relays."""
    alice = make_phone("alice")
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)
    port = srv.getsockname()[1]
    dest = (pbx.host, pbx.port)

    def head(text: str) -> dict[str, str]:
        return {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in text.split("\r\n")[1:] if ":" in ln}

    try:
        reg = (f"REGISTER sip:{pbx.host}:{pbx.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKr1\r\n"
               f"From: <sip:carol@{pbx.host}>;tag=c1\r\nTo: <sip:carol@{pbx.host}>\r\nCall-ID: reg-carol\r\n"
               f"CSeq: 1 REGISTER\r\nContact: <sip:carol@127.0.0.1:{port}>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n")
        srv.sendto(reg.encode(), dest)
        assert srv.recvfrom(65535)[0].startswith(b"SIP/2.0 200 ")
        sub = alice.subscribe("carol", "presence", expires=60)
        text = srv.recvfrom(65535)[0].decode()
        assert text.startswith("SUBSCRIBE sip:carol@127.0.0.1")
        h = head(text)
        tag = secrets.token_hex(4)
        contact = h["contact"].strip("<>")
        body = eventpkg.pidf(f"sip:carol@{pbx.host}", "open").decode()
        notify = (f"NOTIFY {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKn1\r\n"
                  f"From: {h['to']};tag={tag}\r\nTo: {h['from']}\r\nCall-ID: {h['call-id']}\r\n"
                  f"CSeq: 1 NOTIFY\r\nContact: <sip:carol@127.0.0.1:{port}>\r\nEvent: presence\r\n"
                  f"Subscription-State: active;expires=60\r\nContent-Type: application/pidf+xml\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}")
        srv.sendto(notify.encode(), dest)
        answer = srv.recvfrom(65535)[0]
        assert answer.startswith(b"SIP/2.0 200 "), answer[:60]
        ok = alice.expect(ResponseReceived, 5, method="SUBSCRIBE")
        assert ok.status == 200
        n = alice.expect(NotifyReceived, 5, event="presence")
        assert n.subscription is sub and eventpkg.parse_pidf(n.body).basic == "open"
        sub.wait_active()
        # the late 200 from carol is absorbed; the subscription keeps working in both dialogs
        ok2 = (f"SIP/2.0 200 OK\r\nVia: {h['via']}\r\nFrom: {h['from']}\r\nTo: {h['to']};tag={tag}\r\n"
               f"Call-ID: {h['call-id']}\r\nCSeq: {h['cseq']}\r\nExpires: 60\r\n"
               f"Contact: <sip:carol@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n")
        srv.sendto(ok2.encode(), dest)
        sub._send(0)  # unsubscribe inside Alice's dialog: relayed into the PBX's dialog with carol
        text = srv.recvfrom(65535)[0].decode()
        assert text.startswith("SUBSCRIBE ") and f";tag={tag}" in head(text)["to"]
        assert head(text)["expires"] == "0" and head(text)["call-id"] == h["call-id"]
    finally:
        srv.close()


# ---- the PBX as registrar (RFC 3261 10.3) ---------------------------------------------------------------

def test_pbx_registrar_keeps_several_contacts_lists_them_and_clears_them_with_star(make_phone, pbx) -> None:
    alice = make_phone("alice", register=False)
    other = "sip:alice@127.0.0.1:5999"
    reg = alice.register(expires=300, contacts=[alice.contact_uri, other], timeout=3)
    ok = alice.expect(ResponseReceived, 3, method="REGISTER", status=200).message
    listed = {c.uri: int(c.param("expires")) for c in ok.contacts}
    assert set(listed) == {alice.contact_uri, other} and all(290 <= e <= 300 for e in listed.values())
    assert {b.contact for b in pbx.pbx.registrar.lookup("alice")} == {alice.contact_uri, other}
    assert reg is not None
    alice.unregister(all_contacts=True, timeout=3)
    ok = alice.expect(ResponseReceived, 3, method="REGISTER", status=200).message
    assert ok.contacts == () and ok.header("Expires") == "0"
    assert pbx.pbx.registrar.lookup("alice") == []


def test_pbx_registrar_answers_423_below_min_expires_and_the_phone_retries(make_phone, pbx) -> None:
    pbx.pbx.min_expires = 120
    alice = make_phone("alice", register=False)
    alice.register(expires=60, timeout=3)
    r423 = alice.expect(ResponseReceived, 3, method="REGISTER", status=423).message
    assert r423.header("Min-Expires") == "120"
    ok = alice.expect(ResponseReceived, 3, method="REGISTER", status=200).message
    assert ok.contact.param("expires") == "120"
    (b,) = pbx.pbx.registrar.lookup("alice")
    assert 110 < b.expires_at - time.monotonic() <= 120
