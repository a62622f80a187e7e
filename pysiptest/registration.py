"""A phone's registration (RFC 3261 section 10): contacts, granted expiry, refresh, unregister.

One Registration per Phone.  ``register()`` sends a REGISTER with the phone's contact (or several), reads
the expiry the registrar granted (the ``expires`` parameter of our Contact in the 200, else the Expires
header, else what was asked) and schedules a refresh at ``refresh_fraction`` of it with
``Engine.call_later``.  ``unregister()`` sends Expires: 0 for our contacts, or ``Contact: *`` for all.
401/407 and 423 Interval Too Brief are handled by the phone's request retrier (``pysiptest._retry``), so
the outcome seen here is the final one.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from pysiptest.events import Registered, RegistrationFailed

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.events import CoreEvent
    from pysiptest.phone import Phone

log = logging.getLogger("pysiptest.phone")

_NAMEADDR = re.compile(r'\s*(?:"(?:[^"\\]|\\.)*"\s*|[^<"]*)<([^>]*)>(.*)$')


@dataclass
class RegisterAttempt:
    """One REGISTER in flight: what it asked for."""

    expires: int
    contacts: tuple[str, ...]
    wildcard: bool = False
    refresh: bool = False


def _uri_key(uri: str) -> str:
    """user@host:port of a SIP URI, lower-cased, without scheme and parameters (for matching contacts)."""
    u = uri.strip().split(";", 1)[0].split("?", 1)[0]
    u = re.sub(r"^sips?:", "", u, flags=re.I)
    return u.lower()


def granted_expires(msg: Any, contacts: Sequence[str], requested: int) -> int:
    """The expiry the registrar granted to our contacts in a 2xx (the smallest of ours), else Expires, else
    the requested value."""
    ours = {_uri_key(c) for c in contacts}
    found: list[int] = []
    for value in msg.headers_all("Contact"):
        m = _NAMEADDR.match(value)
        uri, params = (m.group(1), m.group(2)) if m else (value.split(";", 1)[0], ";" + value.split(";", 1)[1]
                                                           if ";" in value else "")
        if _uri_key(uri) not in ours:
            continue
        pm = re.search(r";\s*expires\s*=\s*(\d+)", params, flags=re.I)
        if pm:
            found.append(int(pm.group(1)))
    if found:
        return min(found)
    exp = msg.header("Expires")
    if exp is not None and exp.strip().isdigit():
        return int(exp.strip())
    return requested


class Registration:
    """Registration state of a phone: ``registered``, granted ``expires``, ``contacts``, ``refreshes``."""

    #: refresh when this fraction of the granted expiry has passed
    refresh_fraction = 0.8

    def __init__(self, phone: "Phone") -> None:
        self.phone = phone
        self.contacts: tuple[str, ...] = ()
        self.expires = 0
        self.registered = False
        self.refreshes = 0
        self.auto_refresh = True
        self._gen = 0
        self._cond = threading.Condition()

    # -- sending ------------------------------------------------------------------------------
    def send(self, expires: int, contacts: Sequence[str], wildcard: bool = False, refresh: bool = False) -> int:
        """Send one REGISTER (no waiting); returns its transaction id."""
        phone = self.phone
        host, port = phone._target()
        headers = [
            ("From", f"\"{phone.display_name}\" <{phone.aor}>;tag={phone._reg_tag}"),
            ("To", f"\"{phone.display_name}\" <{phone.aor}>"),
            ("Call-ID", phone._reg_call_id),
            ("CSeq", f"{phone._next_cseq()} REGISTER"),
        ]
        if wildcard:
            headers.append(("Contact", "*"))
        else:
            headers.extend(("Contact", f"<{c}>") for c in contacts)
        headers += [("Expires", str(expires)), ("User-Agent", phone.device.user_agent)]
        uri = f"sip:{phone.domain}"
        attempt = RegisterAttempt(expires, tuple(contacts), wildcard, refresh)
        with phone._lock:
            txn = phone.engine.core.request(phone.transport_id, host, port, "REGISTER", uri, headers)
            phone._track(txn, "register", attempt)
            phone._retry.remember(txn, "REGISTER", uri, headers, dest=(host, port))
        return txn

    def stop_refresh(self) -> None:
        """Cancel the scheduled refresh."""
        self._gen += 1

    # -- outcome (dispatcher thread, phone lock held) ----------------------------------------
    def on_final(self, ev: "CoreEvent", attempt: Any) -> None:
        """The final response to one of our REGISTERs (after any retries)."""
        phone = self.phone
        msg = ev.message
        if not isinstance(attempt, RegisterAttempt):
            attempt = RegisterAttempt(int(attempt), (phone.contact_uri,))
        if 200 <= ev.status < 300:
            granted = 0 if attempt.expires == 0 else granted_expires(msg, attempt.contacts, attempt.expires)
            self.expires = granted
            self.registered = granted > 0
            phone.registered = self.registered
            if granted > 0:
                self.contacts = attempt.contacts
                self._schedule(granted)
            else:
                self.stop_refresh()
            if attempt.refresh:
                with self._cond:
                    self.refreshes += 1
                    self._cond.notify_all()
            else:
                phone._post(Registered(granted))
        elif ev.status >= 300:
            if attempt.refresh:
                self.registered = phone.registered = False
            phone._post(RegistrationFailed(ev.status, (msg.reason if msg is not None else "") or ""))

    def _schedule(self, granted: int) -> None:
        self._gen += 1
        if not self.auto_refresh:
            return
        gen = self._gen
        self.phone.engine.call_later(max(0.5, granted * self.refresh_fraction), lambda: self._refresh(gen))

    def _refresh(self, gen: int) -> None:
        if gen != self._gen or not self.registered:
            return
        try:
            self.send(self.expires, self.contacts, refresh=True)
        except Exception as exc:  # the engine closed, the proxy went away
            log.info("%s: registration refresh not sent: %s", self.phone.name, exc)

    def wait_refresh(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` refreshes have succeeded in total; AssertionError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.refreshes >= count, timeout):
                raise AssertionError(f"{self.phone.name}: {self.refreshes} registration refreshes within "
                                     f"{timeout:g} s, expected {count}")

    @staticmethod
    def contact_list(phone: "Phone", contacts: Optional[Sequence[str]]) -> tuple[str, ...]:
        """The contacts to register: the phone's own unless others are given."""
        return tuple(contacts) if contacts else (phone.contact_uri,)
