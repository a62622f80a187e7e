"""Steps about presence: SUBSCRIBE/NOTIFY (RFC 6665) for the presence package with PIDF bodies (RFC 3863).

The watched person's phone serves its own presence (peer to peer through the server, as phones without a
presence server do): it accepts each SUBSCRIBE and sends NOTIFYs with a PIDF document whose note is the
person's status ("available", "busy", "away", ...); "offline" is basic status closed. A phone with a call up
says "busy" until its status is set.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from behave import step

from pysiptest import eventpkg
from pysiptest.bdd._common import WAIT, phone_of, wait_for
from pysiptest.subscription import IncomingSubscription, Subscription

log = logging.getLogger("pysiptest.bdd")

#: statuses whose PIDF basic status is closed; every other word is open with the word as note
CLOSED = {"offline", "unavailable", "closed"}


def _state(context: Any) -> dict[str, Any]:
    if getattr(context, "presence", None) is None:
        context.presence = {"status": {}, "served": {}, "watches": {}}
    return context.presence


def _document(context: Any, name: str) -> bytes:
    phone = phone_of(context, name)
    status = _state(context)["status"].get(name) or ("busy" if phone.active_calls else "available")
    return eventpkg.pidf(phone.aor, "closed" if status.lower() in CLOSED else "open", note=status)


def serve_presence(context: Any, name: str) -> None:
    """The person's phone accepts presence SUBSCRIBEs and answers them with its current status."""
    st = _state(context)
    if name in st["served"]:
        return
    phone = phone_of(context, name)
    served: list[IncomingSubscription] = []
    st["served"][name] = served
    previous = phone.on_subscribe

    def on_subscribe(sub: IncomingSubscription) -> None:
        if sub.event != "presence":
            if previous is not None:
                previous(sub)
            else:
                sub.reject(489, "Bad Event")
            return
        served.append(sub)
        sub.accept("active", _document(context, name), eventpkg.PIDF)

    phone.on_subscribe = on_subscribe


@step("{watcher:Name} watches {name:Name}'s presence")
def step_watch(context: Any, watcher: str, name: str) -> None:
    """SUBSCRIBE to the person's presence through the server; the person's phone accepts and NOTIFYs its
    status; the subscription must become active.

    Example: ``When Alice watches Bob's presence``
    """
    watcher_phone = phone_of(context, watcher)
    serve_presence(context, name)
    sub = watcher_phone.subscribe(phone_of(context, name).user, "presence", expires=300)
    _state(context)["watches"][(watcher, name)] = sub
    context.add_cleanup(_unsubscribe, sub)
    sub.wait_active(timeout=WAIT)


def _unsubscribe(sub: Subscription) -> None:
    """After the scenario: end the subscription (its refresh and expiry timers with it), best effort."""
    if sub.state == "terminated" or not sub.dialog_id:
        return
    try:
        sub.unsubscribe(timeout=1.0)
    except Exception as exc:  # the phone or its dialog is gone already
        log.debug("unsubscribe %s failed: %s", sub, exc)


@step("{name:Name} sets presence to {status:Word}")
def step_set_presence(context: Any, name: str, status: str) -> None:
    """The person's phone changes its presence status and NOTIFYs every watcher (available, busy, away, offline).

    Example: ``When Bob sets presence to busy``
    """
    st = _state(context)
    st["status"][name] = status
    for sub in st["served"].get(name, []):
        if sub.state not in ("init", "terminated"):
            sub.notify(_document(context, name))


def _statuses(sub: Subscription) -> list[str]:
    out = []
    for n in list(sub.notifies):
        try:
            p = eventpkg.parse_pidf(n.body)
        except ValueError:
            out.append("?")
            continue
        out.append(p.note or p.basic)
    return out


@step("{watcher:Name} sees {name:Name} as {status:Word}")
def step_sees(context: Any, watcher: str, name: str, status: str) -> None:
    """The watcher's latest presence NOTIFY about the person carries that status (PIDF note; basic closed for
    offline).

    Example: ``Then Alice sees Bob as busy``
    """
    sub = _state(context)["watches"].get((watcher, name))
    if sub is None:
        known = ", ".join(f"{w} watches {n}" for w, n in _state(context)["watches"]) or "none"
        raise AssertionError(f"{watcher} does not watch {name}'s presence (first: When {watcher} watches "
                             f"{name}'s presence); subscriptions: {known}")
    basic = "closed" if status.lower() in CLOSED else "open"

    def latest() -> Optional[bool]:
        if not sub.notifies:
            return None
        try:
            p = eventpkg.parse_pidf(sub.notifies[-1].body)
        except ValueError:
            return None
        return True if (p.note or "").lower() == status.lower() and p.basic == basic else None

    wait_for(latest, WAIT, lambda: f"{watcher} does not see {name} as {status}; statuses notified: "
             f"{_statuses(sub) or 'none'} (subscription {sub.state})")
