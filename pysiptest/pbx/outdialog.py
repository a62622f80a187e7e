"""Out-of-dialog MESSAGE, NOTIFY, INFO and OPTIONS for a registered user, through the reference PBX.

Each becomes a new request from the PBX (its own From tag and Call-ID, the sender's user and display name in
From) to the user's newest binding, on the transport its REGISTER came on; the final response goes back to
the sender through the PBX's response relay.  Runs on the PBX's dispatcher under its lock.
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from pysiptest._uri import uri_user as _user_of
from pysiptest.events import CoreEvent

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.pbx.b2bua import ReferencePBX


def relay_out_of_dialog(pbx: "ReferencePBX", ev: CoreEvent) -> None:
    """MESSAGE, NOTIFY, INFO, OPTIONS for a registered user: a new request from us to their phone."""
    msg = ev.message
    user = _user_of(msg.uri or "")
    bindings = pbx.registrar.lookup(user) if user else []
    if not bindings:
        pbx._respond(ev.txn_id, 404, f"User {user or '?'} Not Registered")
        return
    b = bindings[0]
    from_na = msg.nameaddr("From") or {}
    sender = _user_of(from_na.get("uri", "")) or "anonymous"
    display = from_na.get("display") or sender
    headers = [
        ("From", f"\"{display}\" <sip:{sender}@{pbx.domain}>;tag={secrets.token_hex(6)}"),
        ("To", f"<sip:{user}@{pbx.domain}>"),
        ("Call-ID", secrets.token_hex(10)),
        ("CSeq", f"1 {msg.method}"),
        *pbx._copied_headers(msg),
    ]
    try:
        txn = pbx.engine.core.request(b.transport_id or pbx.transport_id, b.host, b.port, msg.method,
                                      b.contact, headers, msg.body or b"")
    except Exception as exc:
        pbx.log.warning("cannot relay %s to %s: %s", msg.method, user, exc)
        pbx._respond(ev.txn_id, 480, "Temporarily Unavailable")
        return
    pbx._relays[txn] = ev.txn_id
    pbx._relay_tp[ev.txn_id] = ev.transport_id
