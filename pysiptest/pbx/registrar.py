"""The reference PBX's registrar: bindings of users to contacts, and the handling of REGISTER (RFC 3261 10.3)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from pysiptest._uri import uri_user as _user_of
from pysiptest.events import CoreEvent

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.pbx.b2bua import ReferencePBX


@dataclass(frozen=True)
class Binding:
    """Where a registered user is reached."""

    user: str
    contact: str  # the Contact URI
    host: str     # where to send: the address the REGISTER came from
    port: int
    expires_at: float
    transport_id: int = 0  # the engine transport the REGISTER came on (0: the PBX's UDP transport)


class Registrar:
    """Thread-safe location service keyed by user name."""

    def __init__(self, max_expires: int = 3600, min_expires: int = 1) -> None:
        self.max_expires = max_expires
        self.min_expires = min_expires
        self._b: dict[str, dict[str, Binding]] = {}
        self._lock = threading.Lock()

    def update_granted(self, expires: int) -> int:
        """The expiry this registrar grants for a requested one (0 removes)."""
        return 0 if expires <= 0 else max(self.min_expires, min(expires, self.max_expires))

    def update(self, user: str, contact: Optional[str], host: str, port: int, expires: int,
               transport_id: int = 0) -> int:
        """Add, refresh or (expires 0) remove a binding; contact "*" with expires 0 removes all. Returns the expiry granted."""
        granted = self.update_granted(expires)
        with self._lock:
            cur = self._b.setdefault(user, {})
            if contact == "*" or contact is None:
                if granted == 0:
                    cur.clear()
            elif granted == 0:
                cur.pop(contact, None)
            else:
                cur[contact] = Binding(user, contact, host, port, time.monotonic() + granted, transport_id)
            if not cur:
                self._b.pop(user, None)
        return granted

    def lookup(self, user: str) -> list[Binding]:
        """Live bindings of a user, newest first."""
        now = time.monotonic()
        with self._lock:
            live = [b for b in self._b.get(user, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: -b.expires_at)

    def users(self) -> list[str]:
        """Users with at least one live binding."""
        with self._lock:
            names = list(self._b)
        return [u for u in names if self.lookup(u)]


def register(pbx: "ReferencePBX", ev: CoreEvent) -> None:
    """A REGISTER to the PBX (RFC 3261 10.3): check the account (403, 401 digest challenge), then add, refresh
    or remove its bindings (400 for bad Contacts, 423 below ``pbx.min_expires``) and list them in the 200."""
    msg = ev.message
    to = msg.nameaddr("To") or {}
    user = _user_of(to.get("uri", ""))
    if not user:
        pbx._respond(ev.txn_id, 400, "To must be a SIP URI with a user")
        return
    if pbx.users is not None and user not in pbx.users:
        pbx._respond(ev.txn_id, 403, f"Unknown User {user}")
        return
    if pbx.auth is not None:
        who = pbx.auth.check(msg)
        if who is None or who == "stale":
            pbx._respond(ev.txn_id, pbx.auth.status, None, [pbx.auth.challenge_header(stale=who == "stale")])
            return
        if who != user:
            pbx._respond(ev.txn_id, 403, f"{who} may not register {user}")
            return
    expires_hdr = msg.header("Expires")
    default = int(expires_hdr) if expires_hdr and expires_hdr.strip().isdigit() else 3600
    try:
        contacts = [(c.uri, int(c.param("expires")) if (c.param("expires") or "").isdigit() else default)
                    for c in msg.contacts]
    except (ValueError, TypeError) as exc:
        pbx._respond(ev.txn_id, 400, "Bad Contact")
        pbx.log.debug("REGISTER with a bad Contact: %s", exc)
        return
    if any(uri == "*" for uri, _ in contacts) and (len(contacts) > 1 or default != 0):
        pbx._respond(ev.txn_id, 400, "Contact * needs Expires 0 and no other Contact")  # RFC 3261 10.3 6
        return
    short = [e for uri, e in contacts if uri != "*" and 0 < e < pbx.min_expires]
    if short:  # RFC 3261 10.3 7: 423 Interval Too Brief
        pbx._respond(ev.txn_id, 423, None, [("Min-Expires", str(pbx.min_expires))])
        return
    for uri, exp in contacts:
        pbx.registrar.update(user, uri, ev.src[0], ev.src[1], exp, ev.transport_id)
    # the 200 lists every current binding with its remaining expiry (RFC 3261 10.3 8)
    now = time.monotonic()
    headers = [("Contact", f"<{b.contact}>;expires={max(1, int(b.expires_at - now + 0.5))}")
               for b in pbx.registrar.lookup(user)]
    if contacts:
        headers.append(("Expires", str(max((pbx.registrar.update_granted(e) for _, e in contacts), default=0))))
    pbx._respond(ev.txn_id, 200, None, headers)
