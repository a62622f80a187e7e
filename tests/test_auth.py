"""Digest authentication: the corpus vectors through the binding, the public helper, the server helper
(round trip, stale nonces, replayed nonce counts, wrong answers), 401/407 to INVITE and to an in-dialog
BYE, and a phone registering with SHA-256 against Kamailio 5.6."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from fake_server import SDP, FakeServer
from pysiptest import Answered, CallEnded, Engine, Phone, _core, parse
from pysiptest.auth import Credentials, DigestServer, authorization, parse_challenges

VECTORS = json.loads((Path(__file__).parent / "data" / "digest_vectors.json").read_text())["vectors"]


def _cseq(m: Any) -> int:
    c = m.cseq() if callable(m.cseq) else m.cseq
    return int(c[0])


def _tag(value: str) -> str:
    return re.search(r";tag=([^;>]+)", value).group(1)


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_every_corpus_vector_through_the_binding(v: dict[str, Any]) -> None:
    got = _core.digest_response(v["algorithm"], v["username"], v["realm"], v["password"], v["method"], v["uri"],
                                v["nonce"], qop=v.get("qop"), cnonce=v.get("cnonce", ""),
                                body_hash=v.get("entity_body_hash"))
    assert got == v["expected_response"]
    assert _core.ha1(v["algorithm"].replace("-sess", ""), v["username"], v["realm"], v["password"]) == \
        (v["computed"]["HA1"] if "sess" not in v["algorithm"] else
         _core.ha1("MD5", v["username"], v["realm"], v["password"]))
    if "rfc_printed_response" in v:  # the published errata: the printed values must NOT come out
        assert got != v["rfc_printed_response"]
    if v.get("userhash"):
        uh = _core.userhash(v["algorithm"], v["username"], v["realm"])
        assert uh == v["expected_userhash"] != v["rfc_printed_userhash"]


def test_public_helper_answers_the_strongest_challenge() -> None:
    challenges = ['Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
                  'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"']
    value = authorization(challenges, "REGISTER", "sip:r", "alice", "pw", cnonce="c")
    cr = _core.parse_credentials(value)
    assert (cr["algorithm"], cr["nonce"], cr["nc"], cr["uri"]) == ("SHA-256", "n2", 1, "sip:r")
    assert cr["response"] == _core.digest_response("SHA-256", "alice", "r", "pw", "REGISTER", "sip:r", "n2",
                                                   qop="auth", cnonce="c")
    # several challenges in one header value, an unknown scheme and algorithm skipped
    one = 'Basic realm="x", Digest realm="r", nonce="a", algorithm=SHA-1, Digest realm="r", nonce="b"'
    assert [c["supported"] for c in parse_challenges(one)] == [False, False, True]
    assert _core.parse_credentials(authorization(one, "BYE", "sip:x", "u", "p"))["nonce"] == "b"
    with pytest.raises(ValueError, match="no supported digest challenge"):
        authorization('Digest realm="r", nonce="a", algorithm=SHA-1', "BYE", "sip:x", "u", "p")
    with pytest.raises(ValueError):
        authorization('Digest realm="r, nonce="a"', "BYE", "sip:x", "u", "p")


def test_auth_int_covers_the_body() -> None:
    ch = 'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth,auth-int"'
    a = authorization(ch, "INVITE", "sip:x", "u", "p", b"v=0\r\n", qop="auth-int", cnonce="c")
    b = authorization(ch, "INVITE", "sip:x", "u", "p", b"v=1\r\n", qop="auth-int", cnonce="c")
    assert "qop=auth-int" in a and a != b


def _request(method: str, auth_name: str, auth_value: str, body: bytes = b"") -> Any:
    return parse((f"{method} sip:fake.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1\r\n"
                  "From: <sip:alice@fake.example>;tag=1\r\nTo: <sip:alice@fake.example>\r\nCall-ID: c\r\n"
                  f"CSeq: 1 {method}\r\n{auth_name}: {auth_value}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                 + body)


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256",
                                       "SHA-512-256-sess"])
def test_digest_server_round_trip(algorithm: str) -> None:
    srv = DigestServer("fake.example", {"alice": "pw"}, algorithm)
    value = authorization(srv.challenge(), "REGISTER", "sip:fake.example", "alice", "pw")
    assert srv.check(_request("REGISTER", "Authorization", value)) == "alice"
    # the same nonce count again is a replay
    assert srv.check(_request("REGISTER", "Authorization", value)) is None


def test_digest_server_refuses_wrong_answers_in_constant_time_path() -> None:
    srv = DigestServer("fake.example", {"alice": "pw", "bob": "pw2"}, "SHA-256", check_nc=False)
    ch = srv.challenge()
    good = authorization(ch, "REGISTER", "sip:fake.example", "alice", "pw", cnonce="c")
    resp = _core.parse_credentials(good)["response"]
    # a response differing in its last digit only, and one of the wrong length: both refused
    last = resp[:-1] + ("0" if resp[-1] != "0" else "1")
    for bad in (good.replace(resp, last), good.replace(resp, resp[:-2])):
        assert srv.check(_request("REGISTER", "Authorization", bad)) is None
        assert _core.verify(bad, "REGISTER", "pw", "fake.example", srv._secret) == (False, False)
    assert srv.check(_request("REGISTER", "Authorization", good)) == "alice"
    wrong_pw = authorization(ch, "REGISTER", "sip:fake.example", "alice", "pw2")
    unknown = authorization(ch, "REGISTER", "sip:fake.example", "carol", "pw")
    other_method = good
    assert srv.check(_request("REGISTER", "Authorization", wrong_pw)) is None
    assert srv.check(_request("REGISTER", "Authorization", unknown)) is None
    assert srv.check(_request("INVITE", "Authorization", other_method)) is None
    assert srv.check(_request("REGISTER", "Authorization", "Digest garbage")) is None
    forged = DigestServer("fake.example", {"alice": "pw"}).challenge()  # another server's secret
    assert srv.check(_request("REGISTER", "Authorization",
                              authorization(forged, "REGISTER", "sip:x", "alice", "pw"))) is None
    # HA1 instead of the password
    ha1 = _core.ha1("SHA-256", "alice", "fake.example", "pw")
    assert _core.verify(good, "REGISTER", ha1, "fake.example", srv._secret, is_ha1=True) == (True, False)


def test_digest_server_says_stale_for_an_old_nonce_with_the_right_password() -> None:
    srv = DigestServer("fake.example", {"alice": "pw"}, "SHA-256", max_age=30)
    old = srv.challenge(now=time.time() - 100)
    right = authorization(old, "REGISTER", "sip:fake.example", "alice", "pw")
    wrong = authorization(old, "REGISTER", "sip:fake.example", "alice", "bad")
    assert srv.check(_request("REGISTER", "Authorization", right)) == "stale"
    assert srv.check(_request("REGISTER", "Authorization", wrong)) is None
    assert "stale=true" in srv.challenge(stale=True)
    assert parse_challenges(srv.challenge(stale=True))[0]["stale"] is True


def test_digest_server_userhash_auth_int_and_proxy() -> None:
    srv = DigestServer("fake.example", {"Jäsøn Doe": "pw"}, "SHA-512-256", qop="auth-int", userhash=True,
                       proxy=True)
    assert (srv.status, srv.challenge_name, srv.credentials_name) == (407, "Proxy-Authenticate",
                                                                      "Proxy-Authorization")
    value = authorization(srv.challenge(), "INVITE", "sip:x", "Jäsøn Doe", "pw", b"body")
    assert "userhash=true" in value and "Jäsøn" not in value
    assert srv.check(_request("INVITE", "Proxy-Authorization", value, b"body")) == "Jäsøn Doe"
    value2 = authorization(srv.challenge(), "INVITE", "sip:x", "Jäsøn Doe", "pw", b"body")
    assert srv.check(_request("INVITE", "Proxy-Authorization", value2, b"tampered")) is None


def test_binding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        _core.make_challenge("r", "SHA-1", b"0123456789")
    with pytest.raises(ValueError, match="secret"):
        _core.make_challenge("r", "SHA-256", b"short")
    with pytest.raises(ValueError, match="nc"):
        authorization('Digest realm="r", nonce="n"', "BYE", "sip:x", "u", "p", nc=0)
    with pytest.raises(TypeError):
        _core.authorization(42, "BYE", "sip:x", "u", "p")
    with pytest.raises(ValueError):
        authorization('Digest realm="r", nonce="n", qop="auth"', "BYE", "sip:x\r\nX: y", "u", "p")
    with pytest.raises(ValueError):
        DigestServer("r", {}, "SHA-1")


# -- phones answering 401/407 on INVITE and in-dialog BYE -----------------------------------------
def test_invite_answers_407_keeping_call_id_and_from_tag(engine: Engine) -> None:
    auth = DigestServer("fake.example", {"alice": "pw"}, proxy=True)

    def uas(srv: FakeServer, ev: Any, msg: Any) -> None:
        if auth.check(msg) is None:
            srv.respond(ev, 407, [auth.challenge_header()])
        else:
            srv.respond(ev, 486)

    srv = FakeServer(engine, uas)
    phone = Phone("alice", engine=engine, proxy=srv.addr, credentials=[Credentials("alice", "pw",
                                                                                   "fake.example")])
    call = phone.call("bob")
    ended = phone.expect(CallEnded, 5, call=call)
    assert ended.status == 486
    first, second = srv.wait_requests("INVITE", 2)
    assert second.call_id == first.call_id and _tag(second.header("From")) == _tag(first.header("From"))
    assert (_cseq(first), _cseq(second)) == (1, 2)
    assert second.header("Proxy-Authorization") and second.body == first.body


def test_invite_with_wrong_password_ends_with_the_challenge_status(engine: Engine) -> None:
    auth = DigestServer("fake.example", {"alice": "pw"})

    def uas(srv: FakeServer, ev: Any, msg: Any) -> None:
        srv.respond(ev, 401, [auth.challenge_header()])

    srv = FakeServer(engine, uas)
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="bad")
    call = phone.call("bob")
    assert phone.expect(CallEnded, 5, call=call).status == 401
    assert len(srv.wait_requests("INVITE", 2)) == 2


def test_in_dialog_bye_answers_401(engine: Engine) -> None:
    auth = DigestServer("fake.example", {"alice": "pw"})

    def uas(srv: FakeServer, ev: Any, msg: Any) -> None:
        if msg.method == "INVITE":
            srv.respond(ev, 200, [("Contact", f"<sip:bob@127.0.0.1:{srv.port}>"),
                                  ("Content-Type", "application/sdp")], SDP)
        elif msg.method == "BYE":
            if auth.check(msg) is None:
                srv.respond(ev, 401, [auth.challenge_header()])
            else:
                srv.respond(ev, 200)

    srv = FakeServer(engine, uas)
    phone = Phone("alice", engine=engine, proxy=srv.addr, password="pw")
    call = phone.call("bob")
    phone.expect(Answered, 5, call=call)
    call.hangup()
    ended = phone.expect(CallEnded, 5, call=call)
    assert (ended.reason, ended.status) == ("hung up", 200)
    first, second = srv.wait_requests("BYE", 2)
    assert _cseq(second) == _cseq(first) + 1 and second.header("Authorization")
    assert "uri=\"sip:bob@127.0.0.1:" in second.header("Authorization")


# -- Kamailio 5.6 with digest SHA-256 ---------------------------------------------------------------
@pytest.mark.requires_binary("kamailio")
def test_phone_registers_with_sha256_digest_against_kamailio(engine: Engine) -> None:
    from pysiptest.sut.kamailio import Kamailio

    kam = Kamailio(users={"alice": "s3cret"}, auth_algorithm="SHA-256")
    kam.start()
    try:
        good = Phone("alice", engine=engine, proxy=(kam.host, kam.port), password="s3cret")
        good.register(expires=60, timeout=3)
        challenge = next(e.message for _, e in good.history if getattr(e, "status", 0) == 401)
        assert "algorithm=SHA-256" in challenge.header("WWW-Authenticate")
        assert good.registered
        good.unregister(timeout=3)
        bad = Phone("alice", engine=engine, proxy=(kam.host, kam.port), password="wrong")
        with pytest.raises(AssertionError, match=r"could not register: (401|403)"):
            bad.register(timeout=3)
    finally:
        kam.stop()
