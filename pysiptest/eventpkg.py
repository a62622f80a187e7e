"""Bodies of the event packages and small SIP payloads a phone uses: presence (PIDF, RFC 3863), message-summary
(RFC 3842), dialog (RFC 4235, minimal), message/sipfrag (RFC 3420) and application/dtmf-relay (INFO)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

PIDF = "application/pidf+xml"
MESSAGE_SUMMARY = "application/simple-message-summary"
DIALOG_INFO = "application/dialog-info+xml"
SIPFRAG = "message/sipfrag;version=2.0"
DTMF_RELAY = "application/dtmf-relay"

#: Content-Type of the NOTIFY bodies of each package this module knows
CONTENT_TYPES = {"presence": PIDF, "message-summary": MESSAGE_SUMMARY, "dialog": DIALOG_INFO, "refer": SIPFRAG}

_PIDF_NS = "urn:ietf:params:xml:ns:pidf"
_DIALOG_NS = "urn:ietf:params:xml:ns:dialog-info"


# -- presence ---------------------------------------------------------------------------------
def pidf(entity: str, basic: str = "open", note: Optional[str] = None, tuple_id: str = "t1") -> bytes:
    """A minimal PIDF document: one tuple whose status is ``basic`` ("open" or "closed")."""
    if basic not in ("open", "closed"):
        raise ValueError(f"basic must be 'open' or 'closed', not {basic!r}")
    n = f"<note>{escape(note)}</note>" if note else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="{_PIDF_NS}" entity={quoteattr(entity)}>'
            f'<tuple id={quoteattr(tuple_id)}><status><basic>{basic}</basic></status>{n}</tuple></presence>\n'
            ).encode()


@dataclass(frozen=True)
class Presence:
    """What a PIDF document says: the entity and the basic status of its first tuple."""

    entity: str
    basic: str
    note: Optional[str] = None


def parse_pidf(body: bytes) -> Presence:
    """Parse a PIDF body; ValueError when it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not PIDF XML: {exc}") from None
    if root.tag != f"{{{_PIDF_NS}}}presence":
        raise ValueError(f"not a PIDF document: root {root.tag}")
    basic = root.find(f"{{{_PIDF_NS}}}tuple/{{{_PIDF_NS}}}status/{{{_PIDF_NS}}}basic")
    note = root.find(f"{{{_PIDF_NS}}}tuple/{{{_PIDF_NS}}}note")
    return Presence(root.get("entity", ""), (basic.text or "").strip() if basic is not None else "",
                    note.text if note is not None else None)


# -- message-summary (RFC 3842) ---------------------------------------------------------------
@dataclass(frozen=True)
class MessageSummary:
    """Message waiting: the flag, the account and the voice-message counts new/old (urgent new/old)."""

    waiting: bool
    new: int = 0
    old: int = 0
    urgent_new: int = 0
    urgent_old: int = 0
    account: Optional[str] = None


def message_summary(new: int = 0, old: int = 0, account: Optional[str] = None, urgent_new: int = 0,
                    urgent_old: int = 0) -> bytes:
    """An RFC 3842 body: ``Messages-Waiting`` yes when there are new messages, and the Voice-Message counts."""
    lines = [f"Messages-Waiting: {'yes' if new > 0 else 'no'}"]
    if account:
        lines.append(f"Message-Account: {account}")
    lines.append(f"Voice-Message: {new}/{old} ({urgent_new}/{urgent_old})")
    return ("\r\n".join(lines) + "\r\n").encode()


def parse_message_summary(body: bytes) -> MessageSummary:
    """Parse an RFC 3842 body (the voice-message line only); ValueError without Messages-Waiting."""
    text = body.decode("utf-8", "replace")
    m = re.search(r"^\s*Messages-Waiting\s*:\s*(yes|no)\s*$", text, re.I | re.M)
    if m is None:
        raise ValueError("no Messages-Waiting line")
    acc = re.search(r"^\s*Message-Account\s*:\s*(\S+)\s*$", text, re.I | re.M)
    vm = re.search(r"^\s*Voice-Message\s*:\s*(\d+)/(\d+)(?:\s*\((\d+)/(\d+)\))?", text, re.I | re.M)
    nums = [int(x) if x else 0 for x in vm.groups()] if vm else [0, 0, 0, 0]
    return MessageSummary(m.group(1).lower() == "yes", nums[0], nums[1], nums[2], nums[3],
                          acc.group(1) if acc else None)


# -- dialog event package (RFC 4235), minimal -------------------------------------------------
def dialog_info(entity: str, version: int, dialogs: "list[tuple[str, str, str]]" = (),  # type: ignore[assignment]
                state: str = "full") -> bytes:
    """A dialog-info document; ``dialogs`` holds (id, call-id, state) per dialog ("trying", "early",
    "confirmed", "terminated")."""
    items = "".join(f"<dialog id={quoteattr(i)} call-id={quoteattr(c)}><state>{escape(s)}</state></dialog>"
                    for i, c, s in dialogs)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<dialog-info xmlns="{_DIALOG_NS}" version="{version}" '
            f'state={quoteattr(state)} entity={quoteattr(entity)}>{items}</dialog-info>\n').encode()


def parse_dialog_info(body: bytes) -> tuple[int, list[tuple[str, str]]]:
    """The version and the (id, state) of each dialog of a dialog-info document."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not dialog-info XML: {exc}") from None
    out = []
    for d in root.findall(f"{{{_DIALOG_NS}}}dialog"):
        st = d.find(f"{{{_DIALOG_NS}}}state")
        out.append((d.get("id", ""), (st.text or "").strip() if st is not None else ""))
    return int(root.get("version", "0")), out


# -- message/sipfrag (RFC 3420) and dtmf-relay --------------------------------------------------
def sipfrag(status: int, reason: str) -> bytes:
    """A status-line sipfrag, as a REFER NOTIFY carries it: ``SIP/2.0 200 OK``."""
    return f"SIP/2.0 {status} {reason}\r\n".encode()


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """Status and reason of a sipfrag's status line; ValueError when it has none."""
    m = re.match(rb"\s*SIP/2\.0\s+(\d{3})\s*([^\r\n]*)", body)
    if m is None:
        raise ValueError(f"not a sipfrag status line: {body[:40]!r}")
    return int(m.group(1)), m.group(2).decode("utf-8", "replace").strip()


def dtmf_relay(signal: str, duration_ms: int = 160) -> bytes:
    """An application/dtmf-relay body (the de-facto INFO DTMF format)."""
    if len(signal) != 1 or signal not in "0123456789*#ABCD":
        raise ValueError(f"signal must be one DTMF digit, not {signal!r}")
    return f"Signal={signal}\r\nDuration={duration_ms}\r\n".encode()


def parse_dtmf_relay(body: bytes) -> tuple[Optional[str], Optional[int]]:
    """Signal and Duration of an application/dtmf-relay body (None where absent)."""
    text = body.decode("utf-8", "replace")
    s = re.search(r"^\s*Signal\s*=\s*(\S)", text, re.I | re.M)
    d = re.search(r"^\s*Duration\s*=\s*(\d+)", text, re.I | re.M)
    return (s.group(1) if s else None), (int(d.group(1)) if d else None)
