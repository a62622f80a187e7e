"""The reference PBX challenges REGISTER with digest authentication when asked to."""
from __future__ import annotations

import time

import pytest

from pysiptest import Engine, Phone, find_device
from pysiptest.sut import ReferencePbxSut

USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256"])
def test_register_with_the_right_password_succeeds_after_a_challenge(algorithm: str) -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm=algorithm) as pbx, Engine() as eng:
        alice = Phone("alice", find_device("Squirrel350")(), engine=eng, proxy=(pbx.host, pbx.port),
                      password="wonderland")
        reg = alice.register(timeout=5)
        assert reg.expires > 0
        assert pbx.pbx is not None and pbx.pbx.registrar.lookup("alice")


def test_register_with_a_wrong_password_fails_with_401() -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm="SHA-256") as pbx, Engine() as eng:
        alice = Phone("alice", find_device("Squirrel350")(), engine=eng, proxy=(pbx.host, pbx.port), password="nope")
        with pytest.raises(AssertionError, match="401"):
            alice.register(timeout=5)
        assert pbx.pbx is not None and not pbx.pbx.registrar.lookup("alice")


def test_register_without_credentials_is_refused() -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm="SHA-256") as pbx, Engine() as eng:
        bob = Phone("bob", find_device("Chipmunk5000")(), engine=eng, proxy=(pbx.host, pbx.port))
        with pytest.raises(AssertionError, match="401"):
            bob.register(timeout=5)


def test_auth_without_users_is_a_clear_error() -> None:
    with Engine() as eng:
        from pysiptest.pbx import ReferencePBX

        with pytest.raises(ValueError, match="users"):
            ReferencePBX(eng, auth_algorithm="SHA-256")


# ---- initial requests of the users are challenged with 407 (RFC 3261 22.3) ------------------------------

from pysiptest import Answered, CallEnded, RequestReceived, ResponseReceived  # noqa: E402
from pysiptest.auth import Credentials  # noqa: E402


def _phone(eng: Engine, pbx: ReferencePbxSut, user: str, password: str, model: str = "Squirrel350") -> Phone:
    p = Phone(user, find_device(model)(), engine=eng, proxy=(pbx.host, pbx.port), password=password)
    p.register(timeout=5)
    return p


def test_invite_is_challenged_407_and_goes_through_with_proxy_authorization() -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm="SHA-256") as pbx, Engine() as eng:
        alice, bob = _phone(eng, pbx, "alice", "wonderland"), _phone(eng, pbx, "bob", "builder", "Chipmunk5000")
        out = alice.call("bob")
        r407 = alice.expect(ResponseReceived, 5, method="INVITE", status=407).message
        challenge = r407.header("Proxy-Authenticate")
        assert challenge.startswith("Digest ") and "algorithm=SHA-256" in challenge
        inc = bob.wait_for_call(5)
        assert inc.request.header("Proxy-Authorization") is None, "credentials stay on the A leg"
        inc.answer()
        alice.expect(Answered, 5, call=out)
        assert pbx.pbx is not None and pbx.pbx.request_auth is not None
        assert pbx.pbx.request_auth.challenged == 1
        # requests inside the call are not challenged: Bob's BYE is answered 200 at once
        inc.hangup()
        alice.expect(CallEnded, 5, call=out)
        assert bob.expect(ResponseReceived, 5, method="BYE").status == 200


def test_message_is_challenged_and_a_wrong_password_never_reaches_the_target() -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm="MD5") as pbx, Engine() as eng:
        alice, bob = _phone(eng, pbx, "alice", "wonderland"), _phone(eng, pbx, "bob", "builder")
        alice.send_message("bob", "hi")
        assert alice.expect(ResponseReceived, 5, method="MESSAGE", status=407)
        assert alice.expect(ResponseReceived, 5, method="MESSAGE").status == 200
        assert bob.expect(RequestReceived, 5, method="MESSAGE").message.body == b"hi"
        alice.auth.credentials = [Credentials("alice", "wrong")]
        alice.send_message("bob", "forged")
        statuses = [alice.expect(ResponseReceived, 5, method="MESSAGE").status for _ in range(2)]
        assert statuses == [407, 407], "challenged, then the wrong answer is challenged again and given up"
        time.sleep(0.3)
        assert not [e for e in bob.unexpected() if isinstance(e, RequestReceived) and e.method == "MESSAGE"]


def test_credentials_of_another_user_are_refused_403() -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm="SHA-256") as pbx, Engine() as eng:
        bob = _phone(eng, pbx, "bob", "builder")
        # bob sends as mallory (no account) and answers the challenge with his own name and password
        mallory = Phone("mallory", find_device("Squirrel350")(), engine=eng, proxy=(pbx.host, pbx.port))
        mallory.auth.credentials = [Credentials("bob", "builder")]
        mallory.send_message("bob", "hi")
        assert mallory.expect(ResponseReceived, 5, method="MESSAGE", status=407)
        r = mallory.expect(ResponseReceived, 5, method="MESSAGE")
        assert r.status == 403 and "bob may not send as mallory" in r.message.reason
        assert pbx.pbx is not None and pbx.pbx.request_auth is not None and pbx.pbx.request_auth.refused == 1
        time.sleep(0.3)
        assert not [e for e in bob.unexpected() if isinstance(e, RequestReceived) and e.method == "MESSAGE"]


def test_challenge_requests_false_trusts_registered_users_calls() -> None:
    with ReferencePbxSut(users=USERS, auth_algorithm="SHA-256", challenge_requests=False) as pbx, Engine() as eng:
        alice, bob = _phone(eng, pbx, "alice", "wonderland"), _phone(eng, pbx, "bob", "builder")
        out = alice.call("bob")
        bob.wait_for_call(5).answer()
        alice.expect(Answered, 5, call=out)
        assert not [e for e in alice.unexpected() if isinstance(e, ResponseReceived) and e.status == 407]
        assert pbx.pbx is not None and pbx.pbx.request_auth is None


def test_challenge_requests_without_digest_is_a_clear_error() -> None:
    with Engine() as eng:
        from pysiptest.pbx import ReferencePBX

        with pytest.raises(ValueError, match="digest"):
            ReferencePBX(eng, users=USERS, challenge_requests=True)

