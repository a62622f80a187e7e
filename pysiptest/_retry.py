"""Resending a phone's request after 401/407 (digest authentication), 423 (Interval Too Brief) or 422
(Session Interval Too Small: an INVITE goes again with the Min-SE as its Session-Expires, RFC 4028 7.4).

A phone remembers each request it may have to send again (method, Request-URI, headers, body, dialog).
When the final response is 401 or 407 the request goes again with Authorization / Proxy-Authorization,
once per request, or again as long as the server only says ``stale=true``; a 423 to a REGISTER goes again
once with the Min-Expires value.  Out of dialog the request is rebuilt with CSeq + 1 and the same Call-ID
and From tag (RFC 3261 22.2); in a dialog the engine's ``dialog_request`` takes the next CSeq.  The engine
ACKs a non-2xx response to an INVITE itself.  The phone's bookkeeping (pending transactions, the call's
INVITE transaction) moves to the new transaction.  Runs on the dispatcher thread under the phone's lock.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.events import CoreEvent
    from pysiptest.phone import Phone

log = logging.getLogger("pysiptest.phone")

MAX_STALE_RETRIES = 3
_AUTH_NAMES = ("authorization", "proxy-authorization")


@dataclass
class OutRequest:
    """What is needed to send a request again."""

    method: str
    uri: Optional[str]
    headers: list[tuple[str, str]]
    body: bytes = b""
    dialog_id: int = 0
    dest: Optional[tuple[str, int]] = None
    auth_tries: int = 0
    interval_tries: int = 0
    min_expires: Optional[int] = None
    auth: dict[str, str] = field(default_factory=dict)  # header name -> value sent last


class RequestRetrier:
    """The requests of one phone that may be sent again, by transaction id."""

    def __init__(self, phone: "Phone") -> None:
        self.phone = phone
        self._reqs: dict[int, OutRequest] = {}

    def remember(self, txn: int, method: str, uri: Optional[str], headers: list[tuple[str, str]], body: bytes = b"",
                 dialog_id: int = 0, dest: Optional[tuple[str, int]] = None) -> None:
        """Keep what is needed to send request ``txn`` again."""
        self._reqs[txn] = OutRequest(method, uri, list(headers), bytes(body), dialog_id, dest)

    def forget(self, txn: int) -> None:
        """The transaction ended without a final response (timeout, transport error)."""
        self._reqs.pop(txn, None)

    def on_final(self, ev: "CoreEvent") -> bool:
        """A final response arrived for ``ev.txn_id``; True when the request was sent again (the response is
        then not the outcome)."""
        rec = self._reqs.pop(ev.txn_id, None)
        msg = ev.message
        if ev.status not in (401, 407, 422, 423) or msg is None:
            return False
        if rec is None:
            rec = self._implicit(ev)
            if rec is None:
                return False
        call = self.phone._calls_by_txn.get(ev.txn_id)
        if call is not None and call.state == "terminating":
            return False  # the user cancelled meanwhile
        try:
            if ev.status == 423:
                ok = self._min_expires(rec, msg)
            elif ev.status == 422:
                ok = self._min_se(rec, msg)
            else:
                ok = self._authorize(rec, ev.status, msg)
            if not ok:
                return False
            return self._resend(ev.txn_id, rec)
        except (ValueError, KeyError, RuntimeError) as exc:  # engine refused, dialog gone, bad challenge
            log.info("%s: not sending %s again after %d: %s", self.phone.name, rec.method, ev.status, exc)
            return False

    # -- internals ----------------------------------------------------------------------------
    def _implicit(self, ev: "CoreEvent") -> Optional[OutRequest]:
        """An in-dialog request sent without remember() (BYE, ...): what the response says is enough."""
        cseq = ev.message.cseq
        cseq = cseq() if callable(cseq) else cseq
        method = cseq[1] if cseq else ""
        if not ev.dialog_id or not method or method in ("INVITE", "ACK", "CANCEL") or ev.status == 423:
            return None
        return OutRequest(method, None, [], b"", ev.dialog_id)

    def _authorize(self, rec: OutRequest, status: int, msg: Any) -> bool:
        phone = self.phone
        if not phone.auth:
            return False
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        challenges = list(msg.headers_all(name))
        if not challenges:
            return False
        uri = rec.uri or phone.engine.core.dialog_info(rec.dialog_id)["remote_target"]
        headers, stale = phone.auth.answer(status, challenges, rec.method, uri, rec.body)
        if not headers:
            return False
        if rec.auth_tries >= 1 and not (stale and rec.auth_tries <= MAX_STALE_RETRIES):
            return False  # answered once already and the server still refuses: the password is wrong
        rec.auth_tries += 1
        for hname, value in headers:
            rec.auth[hname] = value
        return True

    def _min_expires(self, rec: OutRequest, msg: Any) -> bool:
        if rec.method != "REGISTER" or rec.interval_tries >= 1:
            return False
        value = msg.header("Min-Expires")
        if value is None or not value.strip().isdigit():
            return False
        minexp = int(value.strip())
        rec.interval_tries += 1
        rec.headers = [(n, str(minexp)) if n.lower() == "expires" else
                       (n, re.sub(r";expires=\d+", f";expires={minexp}", v)) if n.lower() in ("contact", "m") else
                       (n, v) for n, v in rec.headers]
        rec.min_expires = minexp
        return True

    def _min_se(self, rec: OutRequest, msg: Any) -> bool:
        """422 Session Interval Too Small (RFC 4028 7.4): ask again with the server's Min-SE, once."""
        if rec.method != "INVITE" or rec.interval_tries >= 1:
            return False
        value = (msg.header("Min-SE") or "").split(";")[0].strip()
        if not value.isdigit():
            return False
        minse = int(value)
        rec.interval_tries += 1
        rec.headers = [(n, v) for n, v in rec.headers if n.lower() not in ("session-expires", "x", "min-se")]
        rec.headers += [("Session-Expires", str(minse)), ("Min-SE", str(minse))]
        return True

    def _resend(self, old_txn: int, rec: OutRequest) -> bool:
        phone = self.phone
        core = phone.engine.core
        auth = [(n, v) for n, v in rec.auth.items()]
        if rec.dialog_id:
            new_txn = core.dialog_request(rec.dialog_id, rec.method, auth + [h for h in rec.headers
                                                                          if h[0].lower() not in _AUTH_NAMES],
                                          rec.body)
        else:
            headers = []
            for n, v in rec.headers:
                if n.lower() in _AUTH_NAMES:
                    continue
                if n.lower() == "cseq":
                    num = int(v.split()[0]) + 1
                    if rec.method == "REGISTER" or phone._cseq < num:
                        phone._cseq = max(phone._cseq, num)
                    v = f"{num} {rec.method}"
                headers.append((n, v))
            rec.headers = headers
            host, port = rec.dest or phone._target()
            new_txn = core.request(phone.transport_id, host, port, rec.method, rec.uri, headers + auth, rec.body)
        self._reqs[new_txn] = rec
        # move the phone's bookkeeping to the new transaction
        kind, obj = phone._pending.pop(old_txn, (None, None))
        if kind is not None:
            if kind == "register" and rec.min_expires is not None and hasattr(obj, "expires"):
                obj.expires = rec.min_expires
            phone._pending[new_txn] = (kind, obj)
        call = phone._calls_by_txn.pop(old_txn, None)
        if call is not None:
            phone._calls_by_txn[new_txn] = call
            if call.invite_txn == old_txn:
                call.invite_txn = new_txn
        log.debug("%s: %s sent again as transaction %d", phone.name, rec.method, new_txn)
        return True
