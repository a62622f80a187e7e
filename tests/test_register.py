"""REGISTER through an in-process fake registrar: digest (DigestServer), granted expiry and refresh,
several contacts, unregister (Expires: 0 and Contact: *), 423 Interval Too Brief with Min-Expires."""
from __future__ import annotations

import re
import time
from typing import Any, Optional

import pytest

from fake_server import FakeServer
from pysiptest import Engine, Phone, RegistrationFailed
from pysiptest.auth import DigestServer


def _cseq(m: Any) -> int:
    c = m.cseq() if callable(m.cseq) else m.cseq
    return int(c[0])


def _tag(value: str) -> str:
    return re.search(r";tag=([^;>]+)", value).group(1)


def registrar(auth: Optional[DigestServer] = None, min_expires: int = 0, grant: Optional[int] = None):
    """A handler: optional digest, 423 below min_expires, 200 with every contact and its granted expiry."""
    def handle(srv: FakeServer, ev: Any, msg: Any) -> None:
        if msg.method != "REGISTER":
            srv.respond(ev, 405)
            return
        if auth is not None:
            user = auth.check(msg)
            if user is None or user == "stale":
                srv.respond(ev, auth.status, [auth.challenge_header(stale=user == "stale")])
                return
        exp = int(msg.header("Expires") or 3600)
        if 0 < exp < min_expires:
            srv.respond(ev, 423, [("Min-Expires", str(min_expires))])
            return
        given = exp if grant is None else min(exp, grant)
        contacts = [c for c in msg.headers_all("Contact") if c != "*"]
        srv.respond(ev, 200, [("Contact", f"{c};expires={given}") for c in contacts] + [("Expires", str(given))])
    return handle


def test_register_answers_a_sha256_challenge_with_a_fresh_cseq_and_same_call_id(engine: Engine) -> None:
    auth = DigestServer("fake.example", {"alice": "pw"}, "SHA-256")
    srv = FakeServer(engine, registrar(auth))
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="pw")
    assert phone.register(expires=60, timeout=3).expires == 60
    first, second = srv.wait_requests("REGISTER", 2)
    assert first.header("Authorization") is None
    assert second.call_id == first.call_id
    assert _cseq(second) == _cseq(first) + 1
    assert _tag(second.header("From")) == _tag(first.header("From"))
    assert "algorithm=SHA-256" in second.header("Authorization")
    assert phone.registered


def test_wrong_password_fails_after_one_retry(engine: Engine) -> None:
    srv = FakeServer(engine, registrar(DigestServer("fake.example", {"alice": "pw"})))
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="nope")
    with pytest.raises(AssertionError, match="401"):
        phone.register(timeout=3)
    assert len(srv.wait_requests("REGISTER", 2)) == 2  # asked once, answered once, no loop


def test_no_credentials_means_the_401_is_the_outcome(engine: Engine) -> None:
    srv = FakeServer(engine, registrar(DigestServer("fake.example", {"alice": "pw"})))
    phone = Phone("alice", engine=engine, proxy=srv.addr)
    with pytest.raises(AssertionError, match="401"):
        phone.register(timeout=3)


class OldNonceFirst(DigestServer):
    """Its first nonce is 100 s old: the right answer to it is stale."""

    issued = 0

    def challenge(self, stale: bool = False, now: Optional[float] = None) -> str:
        self.issued += 1
        return super().challenge(stale, now=time.time() - 100 if self.issued == 1 else now)


def test_stale_nonce_is_retried_without_failing(engine: Engine) -> None:
    auth = OldNonceFirst("fake.example", {"alice": "pw"}, "MD5", max_age=30)
    srv = FakeServer(engine, registrar(auth))
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="pw")
    phone.register(timeout=3)
    msgs = srv.wait_requests("REGISTER", 3)
    assert [_cseq(m) for m in msgs] == [1, 2, 3]
    assert auth.issued == 2


def test_423_is_retried_with_min_expires_and_that_is_the_granted_expiry(engine: Engine) -> None:
    srv = FakeServer(engine, registrar(min_expires=120))
    phone = Phone("alice", engine=engine, proxy=srv.addr)
    assert phone.register(expires=30, timeout=3).expires == 120
    first, second = srv.wait_requests("REGISTER", 2)
    assert (first.header("Expires"), second.header("Expires")) == ("30", "120")
    assert _cseq(second) == _cseq(first) + 1
    assert phone.registration.expires == 120


def test_granted_expiry_comes_from_our_contact_and_refresh_happens_before_it(engine: Engine) -> None:
    srv = FakeServer(engine, registrar(grant=2))
    phone = Phone("alice", engine=engine, proxy=srv.addr)
    assert phone.register(expires=3600, timeout=3).expires == 2
    phone.registration.wait_refresh(1, timeout=4)  # at 0.8 * 2 s
    regs = srv.wait_requests("REGISTER", 2)
    assert regs[1].call_id == regs[0].call_id and _cseq(regs[1]) > _cseq(regs[0])
    assert regs[1].header("Expires") == "2"
    phone.unregister(timeout=3)
    n = len(srv.wait_requests("REGISTER", 3))
    assert not phone.registered
    time.sleep(2.0)  # no refresh after unregister
    assert len([m for m in srv.requests if m.method == "REGISTER"]) == n


def test_several_contacts_and_unregister_all_with_star(engine: Engine) -> None:
    srv = FakeServer(engine, registrar())
    phone = Phone("alice", engine=engine, proxy=srv.addr)
    contacts = [phone.contact_uri, "sip:alice@127.0.0.1:5999"]
    phone.register(expires=300, contacts=contacts, timeout=3)
    reg = srv.wait_requests("REGISTER", 1)[0]
    assert reg.headers_all("Contact") == [f"<{c}>" for c in contacts]
    phone.unregister(all_contacts=True, timeout=3)
    unreg = srv.wait_requests("REGISTER", 2)[1]
    assert unreg.headers_all("Contact") == ["*"] and unreg.header("Expires") == "0"
    assert not phone.registered


def test_unregister_sends_expires_zero_for_our_contact(engine: Engine) -> None:
    srv = FakeServer(engine, registrar())
    phone = Phone("alice", engine=engine, proxy=srv.addr)
    phone.register(expires=300, timeout=3)
    phone.unregister(timeout=3)
    unreg = srv.wait_requests("REGISTER", 2)[1]
    assert unreg.header("Expires") == "0"
    assert re.fullmatch(r"<sip:alice@127\.0\.0\.1:\d+>", unreg.header("Contact"))


def test_refresh_failure_is_reported(engine: Engine) -> None:
    answers = iter([200, 403])

    def handle(srv: FakeServer, ev: Any, msg: Any) -> None:
        status = next(answers, 403)
        srv.respond(ev, status, [("Contact", msg.header("Contact") + ";expires=1")] if status == 200 else [])

    srv = FakeServer(engine, handle)
    phone = Phone("alice", engine=engine, proxy=srv.addr)
    phone.register(expires=1, timeout=3)
    ev = phone.expect(RegistrationFailed, timeout=4)
    assert ev.status == 403 and not phone.registered
