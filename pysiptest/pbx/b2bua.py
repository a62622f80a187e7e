"""The reference PBX: a registrar and a back-to-back user agent on the pysiptest engine.

Why a B2BUA and not a proxy: a PBX owns both call legs (it answers, forwards
to voicemail, records, sends MWI, transfers), which is what Asterisk or
FreeSWITCH do and what the features test; Kamailio covers the proxy case.
Each call is two dialogs, the caller's (A) and the callee's (B), joined in
Python per call event; retransmissions, ACKs and 100 Trying stay in C.  SDP
passes through unchanged, so media flows directly between the phones.
"""
from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Optional

from pysiptest._uri import hostport as _hostport
from pysiptest._uri import uri_host
from pysiptest._uri import uri_user as _user_of
from pysiptest.engine import Engine
from pysiptest.events import CoreEvent
from pysiptest.pbx.registrar import Registrar

log = logging.getLogger("pysiptest.pbx")


@dataclass
class Bridge:
    """One call through the PBX: the A leg (caller to us) and the B leg (us to the callee)."""

    caller: str
    callee: str
    a_txn: int
    b_txn: int = 0
    a_dialog: int = 0
    b_dialog: int = 0
    answered: bool = False
    ended: bool = False
    history: list[str] = field(default_factory=list)


class ReferencePBX:
    """Registrar plus call routing between registered users, on one UDP transport."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, domain: Optional[str] = None) -> None:
        self.engine = engine
        self.host = host
        self.registrar = Registrar()
        self.transport_id, self.port = engine.listen_udp(host, port, self)
        self.domain = uri_host(domain or host)
        self.calls: list[Bridge] = []
        self._by_a_txn: dict[int, Bridge] = {}
        self._by_b_txn: dict[int, Bridge] = {}
        self._by_dialog: dict[int, tuple[Bridge, str]] = {}
        self._lock = threading.RLock()

    @property
    def contact(self) -> str:
        """The PBX's own Contact URI."""
        return f"sip:pbx@{_hostport(self.host, self.port)}"

    # -- dispatch (dispatcher thread) -------------------------------------------------------
    def _on_core_event(self, ev: CoreEvent) -> None:
        with self._lock:
            try:
                if ev.kind == "request":
                    self._on_request(ev)
                elif ev.kind == "response":
                    self._on_response(ev)
                elif ev.kind == "cancelled":
                    self._on_cancelled(ev)
                elif ev.kind == "timeout":
                    self._on_timeout(ev)
                elif ev.kind == "dialog_ended":
                    self._by_dialog.pop(ev.dialog_id, None)
            except Exception:
                log.exception("PBX failed on %s event", ev.kind)

    def _respond(self, txn: int, status: int, reason: Optional[str] = None, headers: list[tuple[str, str]] = (),
                 body: bytes = b"") -> int:
        try:
            return self.engine.core.respond(txn, status, reason, list(headers), body)
        except (KeyError, ValueError) as exc:
            log.debug("respond %d on %d failed: %s", status, txn, exc)
            return 0

    def _on_request(self, ev: CoreEvent) -> None:
        msg = ev.message
        method = msg.method
        if method == "REGISTER":
            self._register(ev)
        elif method == "INVITE" and not ev.dialog_id:
            self._invite(ev)
        elif method == "ACK":
            return  # the B leg's ACK is sent by the engine when the callee's 2xx arrives
        elif method == "BYE":
            self._bye(ev)
        elif method == "OPTIONS":
            self._respond(ev.txn_id, 200, None, [("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER")])
        elif ev.dialog_id:
            self._relay_in_dialog(ev)
        else:
            self._respond(ev.txn_id, 405, None, [("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER")])

    # -- registrar --------------------------------------------------------------------------
    def _register(self, ev: CoreEvent) -> None:
        msg = ev.message
        to = msg.nameaddr("To") or {}
        user = _user_of(to.get("uri", ""))
        if not user:
            self._respond(ev.txn_id, 400, "To must be a SIP URI with a user")
            return
        expires_hdr = msg.header("Expires")
        contact_raw = msg.header("Contact")
        contact = None
        expires = int(expires_hdr) if expires_hdr and expires_hdr.strip().isdigit() else 3600
        if contact_raw is not None and contact_raw.strip() == "*":
            contact = "*"
        elif contact_raw is not None:
            na = msg.nameaddr("Contact") or {}
            contact = na.get("uri")
            params = na.get("params") or ""
            for p in params.split(";"):
                k, _, v = p.partition("=")
                if k.strip().lower() == "expires" and v.strip().isdigit():
                    expires = int(v.strip())
        if contact is None:  # a query: list the bindings
            headers = [("Contact", f"<{b.contact}>;expires=60") for b in self.registrar.lookup(user)]
            self._respond(ev.txn_id, 200, None, headers)
            return
        granted = self.registrar.update(user, contact, ev.src[0], ev.src[1], expires)
        headers = [("Expires", str(granted))]
        if contact != "*" and granted:
            headers.insert(0, ("Contact", f"<{contact}>;expires={granted}"))
        self._respond(ev.txn_id, 200, None, headers)

    # -- calls ------------------------------------------------------------------------------
    def _invite(self, ev: CoreEvent) -> None:
        msg = ev.message
        caller_na = msg.nameaddr("From") or {}
        caller = _user_of(caller_na.get("uri", "")) or "anonymous"
        callee = _user_of(msg.uri or "")
        bindings = self.registrar.lookup(callee) if callee else []
        if not bindings:
            self._respond(ev.txn_id, 404, f"User {callee or '?'} Not Registered")
            return
        b = bindings[0]
        br = Bridge(caller=caller, callee=callee, a_txn=ev.txn_id)
        display = caller_na.get("display") or caller
        headers = [
            ("From", f"\"{display}\" <sip:{caller}@{self.domain}>;tag={secrets.token_hex(6)}"),
            ("To", f"<sip:{callee}@{self.domain}>"),
            ("Call-ID", secrets.token_hex(10)),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<{self.contact}>"),
        ]
        ctype = msg.header("Content-Type")
        if msg.body and ctype:
            headers.append(("Content-Type", ctype))
        try:
            br.b_txn = self.engine.core.request(self.transport_id, b.host, b.port, "INVITE", b.contact, headers,
                                                msg.body or b"")
        except Exception as exc:
            log.warning("cannot call %s at %s: %s", callee, b.contact, exc)
            self._respond(ev.txn_id, 480, "Temporarily Unavailable")
            return
        self.calls.append(br)
        self._by_a_txn[br.a_txn] = br
        self._by_b_txn[br.b_txn] = br

    def _on_response(self, ev: CoreEvent) -> None:
        br = self._by_b_txn.get(ev.txn_id)
        msg = ev.message
        cseq = msg.cseq()
        method = cseq[1] if cseq else ""
        if br is None or method != "INVITE":
            return
        br.history.append(f"B {ev.status}")
        if ev.status == 100:
            return
        headers = [("Contact", f"<{self.contact}>")]
        ctype = msg.header("Content-Type")
        body = msg.body or b""
        if body and ctype:
            headers.append(("Content-Type", ctype))
        if ev.dialog_id and not br.b_dialog:
            br.b_dialog = ev.dialog_id
            self._by_dialog[ev.dialog_id] = (br, "B")
        if br.ended:
            # the caller went away (CANCEL) and the callee answered anyway: hang the B leg up
            if 200 <= ev.status < 300 and ev.dialog_id:
                self._safe_bye(ev.dialog_id)
            return
        did = self._respond(br.a_txn, ev.status, msg.reason, headers, body)
        if did and not br.a_dialog:
            br.a_dialog = did
            self._by_dialog[did] = (br, "A")
        if 200 <= ev.status < 300:
            br.answered = True
            self._by_b_txn.pop(ev.txn_id, None)
            self._by_a_txn.pop(br.a_txn, None)
        elif ev.status >= 300:
            br.ended = True
            self._by_b_txn.pop(ev.txn_id, None)
            self._by_a_txn.pop(br.a_txn, None)

    def _on_cancelled(self, ev: CoreEvent) -> None:
        br = self._by_a_txn.pop(ev.txn_id, None)
        if br is None:
            return
        br.ended = True
        br.history.append("A CANCEL")
        try:
            self.engine.core.cancel(br.b_txn)
        except Exception as exc:
            log.debug("cancel of B leg failed: %s", exc)

    def _on_timeout(self, ev: CoreEvent) -> None:
        br = self._by_b_txn.pop(ev.txn_id, None)
        if br is not None and not br.ended:
            br.ended = True
            self._respond(br.a_txn, 408, "Request Timeout")

    def _safe_bye(self, dialog_id: int) -> None:
        try:
            self.engine.core.dialog_request(dialog_id, "BYE")
        except (KeyError, ValueError) as exc:
            log.debug("BYE on dialog %d failed: %s", dialog_id, exc)

    def _bye(self, ev: CoreEvent) -> None:
        entry = self._by_dialog.pop(ev.dialog_id, None)
        self._respond(ev.txn_id, 200 if entry else 481)
        if entry is None:
            return
        br, side = entry
        br.ended = True
        br.history.append(f"{side} BYE")
        other = br.b_dialog if side == "A" else br.a_dialog
        if other:
            self._by_dialog.pop(other, None)
            self._safe_bye(other)

    def _relay_in_dialog(self, ev: CoreEvent) -> None:
        """Requests inside a call other than BYE (INFO, re-INVITE, ...): answered locally in this first cut."""
        msg = ev.message
        if msg.method == "INVITE":
            entry = self._by_dialog.get(ev.dialog_id)
            if entry is not None:
                self._respond(ev.txn_id, 488, "Not Acceptable Here")
                return
        self._respond(ev.txn_id, 200)
