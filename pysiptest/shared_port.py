"""Many phones on one transport (one host and port): ``Phone(..., share_port=True)``.

The engine gives each transport's events to one listener; for a shared transport that listener is a
:class:`SharedPort`, which hands each event to the phone it belongs to:

* a request by the user part of its Request-URI (a phone's Contact carries its user, so in-dialog requests,
  ACK and CANCEL find it too), else of its To;
* a response by the user of its From (the phone sent the request, so From names it);
* an event without a message (timeout, transport error, dialog ended, cancelled) by the transaction or
  dialog id the phone keeps.

Users on one shared port must differ.  The fast path (``fast=True``) is per transport and is refused here.
"""
from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Optional

from pysiptest._uri import uri_user
from pysiptest.events import CoreEvent

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.engine import Engine
    from pysiptest.phone import Phone
    from pysiptest.transport import TlsConfig


class SharedPort:
    """The listener of one shared transport: routes its events to the phones on it."""

    def __init__(self, transport_id: int, port: int) -> None:
        self.transport_id = transport_id
        self.port = port
        self._by_user: dict[str, "Phone"] = {}
        self._lock = threading.Lock()
        #: events that matched no phone on the port (kept for failure reports)
        self.unrouted: list[CoreEvent] = []

    @property
    def phones(self) -> list["Phone"]:
        """The phones on this port."""
        with self._lock:
            return list(self._by_user.values())

    def add(self, phone: "Phone") -> None:
        """Put a phone on this port; ValueError when its user is taken here."""
        with self._lock:
            if phone.user in self._by_user:
                raise ValueError(f"user {phone.user!r} is on shared port {self.port} already")
            self._by_user[phone.user] = phone

    def _route(self, ev: CoreEvent) -> Optional["Phone"]:
        msg = ev.message
        with self._lock:
            if msg is not None:
                if msg.is_request:
                    p = self._by_user.get(uri_user(msg.uri or ""))
                    if p is None:
                        to = msg.nameaddr("To")
                        p = self._by_user.get(uri_user(to["uri"])) if to else None
                    return p
                fr = msg.nameaddr("From")
                return self._by_user.get(uri_user(fr["uri"])) if fr else None
            phones = list(self._by_user.values())
        for p in phones:  # rare events: a scan is fine
            if (ev.txn_id and (ev.txn_id in p._pending or ev.txn_id in p._calls_by_txn)) or \
                    (ev.dialog_id and ev.dialog_id in p._calls_by_dialog):
                return p
        return None

    def _on_core_event(self, ev: CoreEvent) -> None:
        phone = self._route(ev)
        if phone is None:
            if len(self.unrouted) < 1000:
                self.unrouted.append(ev)
            return
        phone._on_core_event(ev)


_ports: "weakref.WeakKeyDictionary[Engine, dict[tuple[str, str, int], SharedPort]]" = weakref.WeakKeyDictionary()
_ports_lock = threading.Lock()


def listen_shared(engine: "Engine", transport: str, host: str, port: int, phone: "Phone",
                  tls: Optional["TlsConfig"] = None) -> tuple[int, int]:
    """The (transport_id, port) of the shared transport at host:port, opened on first use (port 0: a new
    one on a free port); the phone is put on it."""
    with _ports_lock:
        table = _ports.setdefault(engine, {})
        sp = table.get((transport, host, port)) if port else None
        if sp is None:
            router = SharedPort(0, 0)
            tid, bound = engine.listen(transport, host, port, router, tls=tls)
            router.transport_id, router.port = tid, bound
            table[(transport, host, bound)] = sp = router
    sp.add(phone)
    return sp.transport_id, sp.port


def shared_port_of(engine: "Engine", transport: str, host: str, port: int) -> Optional[SharedPort]:
    """The SharedPort at host:port of this engine, or None."""
    with _ports_lock:
        return _ports.get(engine, {}).get((transport, host, port))
