"""Who may place calls through the reference PBX: digest challenges for initial requests (RFC 3261 22.3).

A PBX with accounts and digest authentication challenges REGISTER with 401 (the registrar) and, by default,
the initial out-of-dialog INVITE, MESSAGE, SUBSCRIBE and REFER of its users with 407 Proxy-Authenticate, as
Asterisk or FreeSWITCH do: the phone sends the request again with Proxy-Authorization for its own account
(the From user).  Requests inside a dialog, ACK, CANCEL, PRACK, and NOTIFY/OPTIONS/INFO (keep-alives, MWI)
are not challenged.  Credentials for another account than the From user are refused with 403.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pysiptest._uri import uri_user
from pysiptest.auth import DigestServer
from pysiptest.events import CoreEvent

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.pbx.b2bua import ReferencePBX

#: the initial requests the PBX challenges
CHALLENGED_METHODS = frozenset({"INVITE", "MESSAGE", "SUBSCRIBE", "REFER"})


class RequestAuth:
    """Challenges initial requests with 407 and admits those with the From user's credentials."""

    def __init__(self, realm: str, users: dict[str, str], algorithm: str) -> None:
        self.server = DigestServer(realm, users, algorithm, proxy=True)
        #: requests challenged, and refused because the credentials named another user (figures for tests)
        self.challenged = 0
        self.refused = 0

    def admit(self, pbx: "ReferencePBX", ev: CoreEvent) -> bool:
        """True when the request may go on; otherwise it has been answered (407, or 403)."""
        msg = ev.message
        if ev.dialog_id or msg.method not in CHALLENGED_METHODS:
            return True
        who = self.server.check(msg)
        if who is None or who == "stale":
            self.challenged += 1
            pbx._respond(ev.txn_id, 407, None, [self.server.challenge_header(stale=who == "stale")])
            return False
        sender = uri_user((msg.nameaddr("From") or {}).get("uri", ""))
        if sender != who:
            self.refused += 1
            pbx._respond(ev.txn_id, 403, f"{who} may not send as {sender or 'anonymous'}")
            return False
        return True
