"""Replaces (RFC 3891) through the reference PBX, a B2BUA.

A phone names a dialog by ``call-id;to-tag=T;from-tag=F`` where T is the tag of the UA that is to match it
(its local tag) and F the other end's.  Through a B2BUA, the dialog the transferor names is one of the PBX's
legs (the transferor's own dialog with the PBX), which the target's phone never saw.  The PBX therefore
rewrites a Replaces that names one of its legs (the PBX's local tag is T) into the other leg of that call,
as the PBX sends it toward the other phone: ``other-call-id;to-tag=<that phone's tag>;from-tag=<PBX's tag>``.
It does so in the ``Refer-To`` of a relayed REFER (``?Replaces=`` header of the URI) and in the ``Replaces``
of an INVITE it receives; a value already naming the far leg (the PBX's tag is F), or a dialog the PBX does
not know, passes unchanged.  ``early-only`` and other parameters are kept.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional
from urllib.parse import quote, unquote

#: (dialog id of a leg, dialog id of the other leg of the same call)
LegPairs = Iterable[tuple[int, int]]
#: engine dialog id -> {"call_id", "local_tag", "remote_tag"} (KeyError for a dialog that is gone)
DialogInfo = Callable[[int], dict]


def _split(value: str) -> tuple[str, dict[str, str], list[str]]:
    cid, _, rest = value.partition(";")
    params: dict[str, str] = {}
    order: list[str] = []
    for p in rest.split(";"):
        if p.strip():
            k, _, v = p.strip().partition("=")
            params[k.strip().lower()] = v.strip()
            order.append(k.strip().lower())
    return cid.strip(), params, order


def translate(value: str, legs: LegPairs, info: DialogInfo) -> Optional[str]:
    """The Replaces value to send on the other leg, or None when ``value`` names none of the PBX's legs."""
    cid, params, order = _split(value)
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not cid or to_tag is None or from_tag is None:
        return None
    for leg, other in legs:
        try:
            d = info(leg)
        except (KeyError, ValueError):
            continue
        if d["call_id"] != cid or d["local_tag"] != to_tag or d["remote_tag"] != from_tag:
            continue
        try:
            o = info(other)
        except (KeyError, ValueError):
            return None
        params["to-tag"], params["from-tag"] = o["remote_tag"], o["local_tag"]
        extra = "".join(f";{k}={params[k]}" if params[k] else f";{k}" for k in order
                        if k not in ("to-tag", "from-tag"))
        return f"{o['call_id']};to-tag={params['to-tag']};from-tag={params['from-tag']}{extra}"
    return None


def translate_refer_to(refer_to: str, legs: LegPairs, info: DialogInfo) -> Optional[str]:
    """The Refer-To value with its ``?Replaces=`` URI header translated, or None when there is nothing to do."""
    lt = refer_to.find("<")
    gt = refer_to.rfind(">")
    uri = refer_to[lt + 1:gt] if 0 <= lt < gt else refer_to.strip()
    base, q, headers = uri.partition("?")
    if not q:
        return None
    parts = headers.split("&")
    changed = False
    for i, h in enumerate(parts):
        name, _, val = h.partition("=")
        if name.lower() != "replaces":
            continue
        new = translate(unquote(val), legs, info)
        if new is not None:
            parts[i] = f"{name}={quote(new, safe='')}"
            changed = True
    if not changed:
        return None
    new_uri = f"{base}?{'&'.join(parts)}"
    return refer_to[:lt + 1] + new_uri + refer_to[gt:] if 0 <= lt < gt else new_uri
