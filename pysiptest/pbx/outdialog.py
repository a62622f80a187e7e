"""Out-of-dialog MESSAGE, NOTIFY, INFO and OPTIONS for a registered user, through the reference PBX.

Each becomes a new request from the PBX (its own From tag and Call-ID, the sender's user and display name in
From) to the user's newest binding, on the transport its REGISTER came on; the final response goes back to
the sender through the PBX's response relay.  Runs on the PBX's dispatcher under its lock.
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, NamedTuple, Optional

from pysiptest._uri import uri_user as _user_of
from pysiptest.events import CoreEvent
from pysiptest.pbx.registrar import Binding

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.pbx.b2bua import ReferencePBX


class NewLeg(NamedTuple):
    """A request the PBX sent on behalf of a user's request: its transaction and what it was sent with."""

    txn: int
    binding: Binding
    sender: str
    user: str
    call_id: str


def send_new_leg(pbx: "ReferencePBX", ev: CoreEvent, contact: bool = False) -> Optional[NewLeg]:
    """Send the request of ``ev`` to the registered user its Request-URI names as a new request of the PBX
    (fresh From tag and Call-ID, the sender's user and display name in From, a PBX Contact when ``contact``),
    to the user's newest binding on the transport its REGISTER came on, and note it for the response relay.
    When the user is not registered (404) or the request cannot be sent (480) the sender is answered and
    None is returned."""
    msg = ev.message
    user = _user_of(msg.uri or "")
    bindings = pbx.registrar.lookup(user) if user else []
    if not bindings:
        pbx._respond(ev.txn_id, 404, f"User {user or '?'} Not Registered")
        return None
    b = bindings[0]
    from_na = msg.nameaddr("From") or {}
    sender = _user_of(from_na.get("uri", "")) or "anonymous"
    display = from_na.get("display") or sender
    call_id = secrets.token_hex(10)
    headers = [
        ("From", f"\"{display}\" <sip:{sender}@{pbx.domain}>;tag={secrets.token_hex(6)}"),
        ("To", f"<sip:{user}@{pbx.domain}>"),
        ("Call-ID", call_id),
        ("CSeq", f"1 {msg.method}"),
        *([("Contact", f"<{pbx._contact_on(b.transport_id)}>")] if contact else []),
        *pbx._copied_headers(msg),
    ]
    try:
        txn = pbx.engine.core.request(b.transport_id or pbx.transport_id, b.host, b.port, msg.method,
                                      b.contact, headers, msg.body or b"")
    except Exception as exc:
        pbx.log.warning("cannot relay %s to %s: %s", msg.method, user, exc)
        pbx._respond(ev.txn_id, 480, "Temporarily Unavailable")
        return None
    pbx._relays[txn] = ev.txn_id
    pbx._relay_tp[ev.txn_id] = ev.transport_id
    return NewLeg(txn, b, sender, user, call_id)


def relay_out_of_dialog(pbx: "ReferencePBX", ev: CoreEvent) -> None:
    """MESSAGE, NOTIFY, INFO, OPTIONS for a registered user: a new request from us to their phone."""
    send_new_leg(pbx, ev)
