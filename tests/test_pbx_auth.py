"""The reference PBX challenges REGISTER with digest authentication when asked to."""
from __future__ import annotations

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
