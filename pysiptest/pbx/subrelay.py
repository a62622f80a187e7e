"""SUBSCRIBE/NOTIFY through the reference PBX (RFC 6665), as a B2BUA.

The PBX serves no event package itself: a SUBSCRIBE from one user to a registered user (``presence``,
``dialog``, ``message-summary``, ...) becomes a new SUBSCRIBE from the PBX to the target's contact (B side),
and the target's answer goes back to the subscriber (A side).  Each side is its own subscription dialog in
the engine (created by the 2xx, or on the B side by a NOTIFY that comes first); the pair is kept as a
:class:`~pysiptest.pbx.b2bua.Bridge` in the PBX's dialog table, so refreshes, unsubscribes and NOTIFYs
inside either dialog are relayed to the other by the PBX's in-dialog relay, and the responses come back.
When the notifier's first NOTIFY overtakes its 2xx, the subscriber's SUBSCRIBE is answered 200 at once (a
NOTIFY means the subscription was accepted, RFC 6665 4.1.2.4) and the NOTIFY is relayed after it.
Runs on the PBX's dispatcher under its lock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pysiptest.events import CoreEvent
from pysiptest.pbx.outdialog import send_new_leg

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.pbx.b2bua import Bridge, ReferencePBX


class SubscriptionRelay:
    """The SUBSCRIBEs the PBX relays and waits on (B-side transaction and Call-ID to the pair)."""

    def __init__(self, pbx: "ReferencePBX") -> None:
        self.pbx = pbx
        self._pending: dict[int, "Bridge"] = {}        # our SUBSCRIBE's txn -> the pair
        self._by_call_id: dict[str, "Bridge"] = {}     # our SUBSCRIBE's Call-ID -> the pair (early NOTIFY)
        #: subscriptions relayed so far (for tests and the CLI's figures)
        self.relayed = 0

    def subscribe(self, ev: CoreEvent) -> None:
        """An out-of-dialog SUBSCRIBE for a user: send ours to their registered contact."""
        from pysiptest.pbx.b2bua import Bridge

        pbx = self.pbx
        msg = ev.message
        leg = send_new_leg(pbx, ev, contact=True)
        if leg is None:
            return
        txn, b, call_id = leg.txn, leg.binding, leg.call_id
        br = Bridge(caller=leg.sender, callee=leg.user, a_txn=ev.txn_id, b_txn=txn, target=leg.user,
                    a_transport=ev.transport_id, b_transport=b.transport_id or pbx.transport_id)
        br.history.append(f"SUBSCRIBE {msg.header('Event') or ''} relayed")
        self._pending[txn] = br
        self._by_call_id[call_id] = br
        self.relayed += 1

    def on_final(self, ev: CoreEvent, a_dialog: int) -> None:
        """The final response to our SUBSCRIBE was relayed (``a_dialog``: the dialog it made on the A side)."""
        br = self._pending.pop(ev.txn_id, None)
        if br is None:
            return
        self._forget_call_id(br)
        if 200 <= ev.status < 300 and ev.dialog_id and a_dialog and not br.a_dialog:
            self._pair(br, a_dialog, ev.dialog_id)

    def on_timeout(self, txn: int) -> None:
        """Our SUBSCRIBE got no answer (the PBX answers the subscriber 408)."""
        br = self._pending.pop(txn, None)
        if br is not None:
            self._forget_call_id(br)

    def early_notify(self, ev: CoreEvent) -> Optional["Bridge"]:
        """A NOTIFY in a B-side dialog the engine made from it, before the 2xx to our SUBSCRIBE: answer the
        subscriber's SUBSCRIBE 200 now and pair the dialogs; the pair, or None when it is not ours."""
        msg = ev.message
        br = self._by_call_id.get(msg.call_id or "")
        if br is None or not ev.dialog_id:
            return None
        pbx = self.pbx
        did = pbx._respond(br.a_txn, 200, None, [("Contact", f"<{pbx._contact_on(br.a_transport)}>")]
                           + [(n, v) for n, v in pbx._copied_headers(msg) if n == "Expires"])
        if not did:
            return None
        self._forget_call_id(br)
        br.history.append("NOTIFY before the 2xx: subscriber answered 200")
        self._pair(br, did, ev.dialog_id)
        return br

    def _pair(self, br: "Bridge", a_dialog: int, b_dialog: int) -> None:
        br.a_dialog, br.b_dialog, br.answered = a_dialog, b_dialog, True
        self.pbx._by_dialog[a_dialog] = (br, "A")
        self.pbx._by_dialog[b_dialog] = (br, "B")

    def _forget_call_id(self, br: "Bridge") -> None:
        for cid, other in list(self._by_call_id.items()):
            if other is br:
                del self._by_call_id[cid]
