"""Session timers (RFC 4028) across the reference PBX's two legs.

The B2BUA is the UAS of the caller's leg and the UAC of the callee's, and passes the negotiation through so
that the phones agree one timer end to end:

* the B-leg INVITE carries the caller's ``Session-Expires`` and ``Min-SE`` (raised to the PBX's own Min-SE)
  and ``Supported: timer`` when the caller offered it;
* a 422 from the callee is answered by the PBX itself: the B leg is INVITEd again, once, with the callee's
  Min-SE as its Session-Expires (RFC 4028 7.4); a second 422 goes back to the caller with the Min-SE;
* a caller asking for less than the PBX's ``min_se`` (when set) gets 422 with it (RFC 4028 8.1.1);
* the callee's 2xx ``Session-Expires`` (with its refresher) goes back to the caller with ``Require: timer``
  when the caller supports timers; when the callee does no timers, the PBX answers as the UAS of RFC 4028 9:
  the caller's interval with ``refresher=uac``, so the caller refreshes and the refreshes pass through;
* refreshes (re-INVITE, UPDATE) and their answers are relayed with ``Session-Expires``/``Min-SE``/
  ``Supported``/``Require`` (the PBX's in-dialog relay).  ``refresher=uac``/``uas`` keeps its meaning on the
  other leg because the PBX is the UAC there exactly when the phone was the UAC on its own leg;
* :class:`SessionGuard`: without a refresh for a whole interval the PBX hangs up both legs itself.

Pure functions over parsed messages, and a guard that is handed its scheduler: no I/O here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from pysiptest.session_timer import option_tags, parse_session_expires


@dataclass
class TimerOffer:
    """What the caller's INVITE asked for: the interval (None: no Session-Expires), its Min-SE, and whether
    it supports timers (``timer`` in Supported or Require)."""

    interval: Optional[int]
    min_se: int
    supported: bool
    #: the callee answered 422 once and was INVITEd again with a larger interval
    retried_422: bool = False


def offer_of(invite: Any) -> Optional[TimerOffer]:
    """The timer request of a caller's INVITE; None when it neither asks for nor supports timers."""
    se = parse_session_expires(invite.header("Session-Expires"))
    mse = parse_session_expires(invite.header("Min-SE"))
    supported = "timer" in (option_tags(invite, "Supported") | option_tags(invite, "Require"))
    if se is None and not supported:
        return None
    return TimerOffer(se[0] if se else None, mse[0] if mse else 0, supported)


def too_small(offer: Optional[TimerOffer], pbx_min_se: int) -> Optional[list[tuple[str, str]]]:
    """The headers of a 422 when the caller asks for less than the PBX's Min-SE (0: no minimum); else None."""
    if offer is None or offer.interval is None or pbx_min_se <= 0 or offer.interval >= pbx_min_se:
        return None
    return [("Min-SE", str(pbx_min_se))]


def b_leg_headers(offer: Optional[TimerOffer], pbx_min_se: int = 0) -> list[tuple[str, str]]:
    """Session-Expires and Min-SE for the B-leg INVITE (``Supported: timer`` is added with the other tags)."""
    if offer is None or offer.interval is None:
        return []
    min_se = max(offer.min_se, pbx_min_se)
    return [("Session-Expires", str(max(offer.interval, min_se))), ("Min-SE", str(min_se))] if min_se else \
        [("Session-Expires", str(offer.interval))]


def retry_after_422(offer: Optional[TimerOffer], response: Any) -> bool:
    """The callee refused the interval with 422: raise it to the callee's Min-SE for one more B-leg INVITE.
    False when the PBX does not try again (no timer asked, retried already, no usable Min-SE)."""
    if offer is None or offer.interval is None or offer.retried_422:
        return False
    mse = parse_session_expires(response.header("Min-SE"))
    if mse is None or mse[0] <= offer.interval:
        return False
    offer.retried_422 = True
    offer.interval = offer.min_se = mse[0]
    return True


def answer_headers(offer: Optional[TimerOffer], response: Any) -> list[tuple[str, str]]:
    """Session-Expires (and Require: timer) for the 2xx relayed to a caller that supports timers."""
    if offer is None or not offer.supported:
        return []
    se = parse_session_expires(response.header("Session-Expires"))
    if se is not None:
        return [("Session-Expires", f"{se[0]};refresher={se[1] or 'uac'}"), ("Require", "timer")]
    if offer.interval is None:
        return []
    return [("Session-Expires", f"{offer.interval};refresher=uac"), ("Require", "timer")]


def interval_of(msg: Any) -> Optional[int]:
    """The interval of a message's Session-Expires, None without a valid one."""
    se = parse_session_expires(msg.header("Session-Expires"))
    return se[0] if se else None


def agreed_interval(offer: Optional[TimerOffer], response: Any) -> Optional[int]:
    """The session interval a 2xx to the B-leg INVITE settles: the callee's Session-Expires, else the caller's
    (the PBX answered it with refresher=uac), else None (no timer on this call)."""
    se = parse_session_expires(response.header("Session-Expires"))
    if se is not None:
        return se[0]
    if offer is not None and offer.supported and offer.interval is not None:
        return offer.interval
    return None


class SessionGuard:
    """The PBX's own watch over a call with a session timer: when no refresh has crossed the PBX for a whole
    interval (the phones' refreshed side gives up earlier, at SE - min(32, SE/3)), both phones are gone or
    neither watches (a callee without timers), and the PBX ends both legs (RFC 4028 10, as the UA of each
    leg).  One ``Engine.call_later`` per interval; a newer refresh makes the pending one moot."""

    def __init__(self, call_later: Callable[[float, Callable[[], None]], None], interval: int,
                 on_expiry: Callable[[], None]) -> None:
        self._call_later = call_later
        self.interval = interval
        self._on_expiry = on_expiry
        self._gen = 0
        #: refreshes seen crossing the PBX (2xx to a re-INVITE or UPDATE in the call)
        self.refreshes = 0

    def start(self) -> None:
        """(Re)arm from now."""
        self._gen += 1
        gen = self._gen
        self._call_later(float(self.interval), lambda: self._fire(gen))

    def refreshed(self, interval: Optional[int]) -> None:
        """A refresh was answered 2xx (with the new interval, when its answer named one)."""
        self.refreshes += 1
        if interval:
            self.interval = interval
        self.start()

    def stop(self) -> None:
        """The call ended: forget the pending expiry."""
        self._gen += 1

    def _fire(self, gen: int) -> None:
        if gen == self._gen:
            self._on_expiry()
