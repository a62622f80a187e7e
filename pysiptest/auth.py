"""Digest authentication (RFC 7616, RFC 8760) for phones and for servers written in Python.

The hashing, parsing and the constant-time comparison are in C (``csrc/sip/digest.c``); this module adds
credentials per realm, nonce counts and the server-side bookkeeping.

* :func:`authorization` answers a challenge, for users who craft their own requests.
* :class:`Credentials` / :class:`ClientAuth` are what a :class:`~pysiptest.Phone` uses to answer 401 and 407.
* :class:`DigestServer` challenges requests and checks the answers (the reference PBX's registrar, fake
  registrars in tests).
"""
from __future__ import annotations

import collections
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

from pysiptest import _core

__all__ = ["ALGORITHMS", "ClientAuth", "Credentials", "DigestServer", "authorization", "parse_challenges"]

#: the algorithms implemented, weakest first
ALGORITHMS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess")


def authorization(challenge: Union[str, Sequence[str]], method: str, uri: str, username: str, password: str,
                  body: bytes = b"", *, nc: int = 1, cnonce: Optional[str] = None, realm: Optional[str] = None,
                  qop: Optional[str] = None) -> str:
    """The Authorization (or Proxy-Authorization) header value answering ``challenge``.

    ``challenge`` is a WWW-Authenticate / Proxy-Authenticate value, or a list of them; of all the challenges
    in it, the supported one with the strongest algorithm is answered (only those of ``realm`` when given).
    ``body`` is hashed for qop=auth-int; ``qop="auth-int"`` prefers it when both are offered.  ``cnonce`` is
    random when not given.  ValueError when nothing can be answered.
    """
    return _core.authorization(challenge, method, uri, username, password, body, nc, cnonce, realm=realm, qop=qop)


def parse_challenges(value: str) -> list[dict[str, Any]]:
    """Every challenge of a WWW-/Proxy-Authenticate value as a dict (scheme, supported, realm, nonce, opaque,
    algorithm, qop, stale, userhash)."""
    return _core.parse_challenges(value)


@dataclass(frozen=True)
class Credentials:
    """A user name and password, for one realm (``realm=None``: any realm)."""

    user: str
    password: str
    realm: Optional[str] = None


class ClientAuth:
    """Answers challenges with the credentials of one phone: picks the credentials per realm, keeps a
    nonce count per nonce, and says whether the server only asked again because the nonce was stale."""

    def __init__(self, credentials: Iterable[Credentials] = ()) -> None:
        self.credentials = list(credentials)
        self._nc: "collections.OrderedDict[str, int]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.credentials)

    def for_realm(self, realm: str) -> Optional[Credentials]:
        """The credentials for this realm: an exact match first, then realm-less ones."""
        exact = [c for c in self.credentials if c.realm == realm]
        anyr = [c for c in self.credentials if c.realm is None]
        return (exact or anyr or [None])[0]

    def _next_nc(self, nonce: str) -> int:
        with self._lock:
            n = self._nc.pop(nonce, 0) + 1
            self._nc[nonce] = n
            while len(self._nc) > 256:
                self._nc.popitem(last=False)
            return n

    def answer(self, status: int, challenges: Sequence[str], method: str, uri: str,
               body: bytes = b"") -> tuple[list[tuple[str, str]], bool]:
        """Headers answering a 401 (WWW-Authenticate values) or 407 (Proxy-Authenticate values): one per
        realm we have credentials for.  Returns (headers, stale) where stale is True when every answered
        challenge said stale=true.  Empty headers when nothing can be answered."""
        name = "Proxy-Authorization" if status == 407 else "Authorization"
        realms: dict[str, bool] = {}
        for value in challenges:
            try:
                parsed = _core.parse_challenges(value)
            except ValueError:
                continue
            for ch in parsed:
                if ch.get("supported"):
                    realms[ch["realm"]] = realms.get(ch["realm"], True) and bool(ch["stale"])
        out: list[tuple[str, str]] = []
        stale = bool(realms)
        for realm, was_stale in realms.items():
            cred = self.for_realm(realm)
            if cred is None:
                continue
            nonce = _nonce_of(challenges, realm)
            nc = self._next_nc(f"{realm}\0{nonce}")
            try:
                out.append((name, _core.authorization(list(challenges), method, uri, cred.user, cred.password, body,
                                                      nc, realm=realm)))
            except ValueError:
                continue
            stale = stale and was_stale
        return out, stale and bool(out)


def _nonce_of(challenges: Sequence[str], realm: str) -> str:
    best = ""
    for value in challenges:
        try:
            for ch in _core.parse_challenges(value):
                if ch.get("supported") and ch["realm"] == realm:
                    best = best or ch["nonce"]
        except ValueError:
            continue
    return best


class DigestServer:
    """Server side of digest authentication for one realm.

    ``users`` maps user names to passwords.  :meth:`challenge` makes a WWW-Authenticate value (or
    Proxy-Authenticate with ``proxy=True``: then use :attr:`status` 407) whose nonce carries a timestamp
    protected by an HMAC with a per-server secret, so no nonce table is needed and an old nonce is told
    from a forged one.  :meth:`check` looks at a request and returns the authenticated user name, ``None``
    (no or wrong credentials: challenge again) or ``"stale"`` (right password, old nonce: challenge again with
    ``stale=True``).  Nonce counts are checked against replay: a (nonce, cnonce) pair must count up.

    Typical registrar use::

        auth = DigestServer("pbx.example", {"alice": "secret"})
        user = auth.check(msg)
        if user is None or user == "stale":
            respond(auth.status, headers=[auth.challenge_header(stale=user == "stale")])
    """

    def __init__(self, realm: str, users: dict[str, str], algorithm: str = "SHA-256", *, qop: Optional[str] = "auth",
                 proxy: bool = False, secret: Optional[bytes] = None, max_age: int = 300, userhash: bool = False,
                 check_nc: bool = True) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        self.realm = realm
        self.users = dict(users)
        self.algorithm = algorithm
        self.qop = qop
        self.proxy = proxy
        self.max_age = max_age
        self.userhash = userhash
        self.check_nc = check_nc
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._seen: "collections.OrderedDict[tuple[str, str], int]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.failures = 0

    @property
    def status(self) -> int:
        """401, or 407 for a proxy."""
        return 407 if self.proxy else 401

    @property
    def challenge_name(self) -> str:
        """WWW-Authenticate, or Proxy-Authenticate for a proxy."""
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_name(self) -> str:
        """Authorization, or Proxy-Authorization for a proxy."""
        return "Proxy-Authorization" if self.proxy else "Authorization"

    def challenge(self, stale: bool = False, now: Optional[float] = None) -> str:
        """A fresh challenge value."""
        return _core.make_challenge(self.realm, self.algorithm, self._secret, self.qop, stale,
                                    userhash=self.userhash, now=now)

    def challenge_header(self, stale: bool = False) -> tuple[str, str]:
        """(header name, challenge value), ready for a response's header list."""
        return self.challenge_name, self.challenge(stale)

    def check(self, message: Any, now: Optional[float] = None) -> Optional[str]:
        """The user a request authenticates as, ``None``, or ``"stale"``.  ``message`` is a parsed request
        (``method``, ``body``, ``headers_all``)."""
        values = message.headers_all(self.credentials_name)
        for value in values:
            user = self.check_header(value, message.method or "", bytes(message.body or b""), now=now)
            if user is not None:
                return user
        return None

    def check_header(self, value: str, method: str, body: bytes = b"", now: Optional[float] = None) -> Optional[str]:
        """Like :meth:`check` for one Authorization value."""
        try:
            cr = _core.parse_credentials(value)
        except ValueError:
            self.failures += 1
            return None
        if cr["realm"] != self.realm or cr["algorithm"] is None:
            return None
        user = cr["username"]
        if cr["userhash"]:
            user = next((u for u in self.users if _core.userhash(cr["algorithm"], u, self.realm) == user.lower()), "")
        password = self.users.get(user)
        if password is None:
            self.failures += 1
            return None
        ok, stale = _core.verify(value, method, password, self.realm, self._secret, body, username=user,
                                 max_age=self.max_age, now=now)
        if stale:
            return "stale"
        if not ok:
            self.failures += 1
            return None
        if self.check_nc and cr["nc"] is not None and not self._count_up(cr["nonce"], cr["cnonce"], cr["nc"]):
            self.failures += 1
            return None
        return user

    def _count_up(self, nonce: str, cnonce: str, nc: int) -> bool:
        with self._lock:
            key = (nonce, cnonce)
            last = self._seen.get(key, 0)
            if nc <= last:
                return False
            self._seen[key] = nc
            self._seen.move_to_end(key)
            while len(self._seen) > 10000:
                self._seen.popitem(last=False)
            return True
