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
