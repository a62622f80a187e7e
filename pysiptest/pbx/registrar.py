"""The reference PBX's registrar: bindings of users to contacts (RFC 3261 section 10.3)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Optional


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
