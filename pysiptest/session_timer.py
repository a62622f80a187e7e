"""Session timers (RFC 4028) for a Call, in both roles.

A phone whose device lists ``timer`` in ``supported`` asks for ``device.session_expires`` seconds in its
INVITE (``Session-Expires``, ``Min-SE``), refuses a smaller interval than ``device.min_se`` with 422 and, as
the UAS, puts the negotiated ``Session-Expires`` (with the refresher) in its 200.  Once the call is up the
refresher sends a refresh (UPDATE or re-INVITE, ``device.session_refresh_method``) at half the interval; the
other side sends BYE when no refresh arrived for SE - min(32, SE/3) seconds (RFC 4028 10).  A refresh that
is answered 408 or 481, or gets no final response (the transaction times out, or a re-INVITE stays unanswered
until the session would expire), ends the call: the refresher sends BYE (RFC 4028 10) and the call's
``end_reason`` says which refresh failed and how.  Both run on the Python dispatcher with
``Engine.call_later``: one timer per call and interval, never per packet (moving them onto the engine's
timer heap, as the fast path does for its calls, would save one dispatcher wake-up per refresh only).
Runs under the phone's lock (commands and events).
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from pysiptest.call import Call
    from pysiptest.device import Device

log = logging.getLogger("pysiptest.session_timer")

REFRESHERS = ("uac", "uas")


def option_tags(msg: Any, name: str) -> set[str]:
    """The option tags of every Supported / Require header of msg, lower case."""
    if msg is None:
        return set()
    return {t.strip().lower() for v in msg.headers_all(name) for t in v.split(",") if t.strip()}


def parse_session_expires(value: Optional[str]) -> Optional[tuple[int, Optional[str]]]:
    """``"1800;refresher=uac"`` -> (1800, "uac"); None when absent or malformed."""
    if not value:
        return None
    parts = [p.strip() for p in value.split(";")]
    if not parts[0].isdigit() or int(parts[0]) <= 0:
        return None
    refresher = None
    for p in parts[1:]:
        name, _, val = p.partition("=")
        if name.strip().lower() == "refresher" and val.strip().lower() in REFRESHERS:
            refresher = val.strip().lower()
    return int(parts[0]), refresher


def _min_se(msg: Any) -> Optional[int]:
    v = parse_session_expires(msg.header("Min-SE")) if msg is not None else None
    return v[0] if v else None


def enabled(device: "Device") -> bool:
    """The device does session timers (``timer`` in its Supported)."""
    return "timer" in device.supported


def invite_headers(device: "Device") -> list[tuple[str, str]]:
    """What our initial INVITE carries (Supported: timer comes with the phone's other option tags)."""
    if not enabled(device) or not device.session_expires:
        return []
    return [("Session-Expires", str(max(device.session_expires, device.min_se))),
            ("Min-SE", str(device.min_se))]


def too_small(device: "Device", invite: Any) -> Optional[list[tuple[str, str]]]:
    """Headers of a 422 when the INVITE asks for less than our Min-SE (RFC 4028 8.1.1); None when fine."""
    if not enabled(device):
        return None
    se = parse_session_expires(invite.header("Session-Expires"))
    if se is not None and se[0] < device.min_se:
        return [("Min-SE", str(device.min_se))]
    return None


def answer_headers(device: "Device", invite: Any) -> tuple[list[tuple[str, str]], Optional[tuple[int, str]]]:
    """UAS: the headers of our 2xx and (interval, refresher) of the session, or ([], None) without a timer."""
    if not enabled(device):
        return [], None
    se = parse_session_expires(invite.header("Session-Expires"))
    uac_timer = "timer" in option_tags(invite, "Supported")
    if se is None:
        if not device.session_expires:
            return [], None
        interval, refresher = max(device.session_expires, device.min_se, _min_se(invite) or 0), None
    else:
        interval, refresher = se
    if refresher is None:
        refresher = device.session_refresher if uac_timer else "uas"
    hdrs = [("Session-Expires", f"{interval};refresher={refresher}")]
    if uac_timer:
        hdrs.append(("Require", "timer"))
    return hdrs, (interval, refresher)


class SessionTimer:
    """The running session timer of one call: who refreshes, the interval, the next deadline."""

    def __init__(self, call: "Call", interval: int, we_refresh: bool) -> None:
        self.call = call
        self.interval = interval
        self.we_refresh = we_refresh
        self.refreshing = True  # tests stop it to see the other side end the call
        self.refreshes_sent = 0
        self.refreshes_received = 0
        self.last_refresh = time.monotonic()
        self.expired = False
        #: the status (408 for a timeout) of the refresh that failed and ended the call, 0 if none
        self.failed = 0
        self._gen = 0
        self._refresh_seq = 0  # the refresh awaiting its final response (guard against a silent peer)

    def __repr__(self) -> str:
        return f"<SessionTimer {self.interval}s {'refresher' if self.we_refresh else 'refreshed'}>"

    @property
    def expiry_delay(self) -> float:
        """Seconds without a refresh after which the refreshed side sends BYE (RFC 4028 10)."""
        return self.interval - min(32.0, self.interval / 3.0)

    def start(self) -> None:
        """(Re)arm the timer from now."""
        self._gen += 1
        gen = self._gen
        self.last_refresh = time.monotonic()
        engine = self.call.phone.engine
        if self.we_refresh:
            engine.call_later(self.interval / 2.0, lambda: self._fire_refresh(gen))
        else:
            engine.call_later(self.expiry_delay, lambda: self._fire_expiry(gen))

    def stop(self) -> None:
        """Forget the pending timer (call ended, or refreshes stopped on purpose)."""
        self._gen += 1

    def refresh_now(self) -> None:
        """Send a session refresh at once, as the refresher does at SE/2 (either side may, RFC 4028 10);
        the timer restarts when it is answered."""
        self._fire_refresh(self._gen)

    def stop_refreshing(self) -> None:
        """The refresher stops sending refreshes (to test the other side's expiry)."""
        self.refreshing = False
        self.stop()

    # -- dispatcher callbacks ------------------------------------------------------------------
    def _fire_refresh(self, gen: int) -> None:
        call = self.call
        with call._lock:
            if gen != self._gen or not self.refreshing or call.state != "confirmed" or not call.dialog_id:
                return
            try:
                call._send_session_refresh(self)
                self.refreshes_sent += 1
            except Exception as exc:  # dialog gone, engine closed
                log.info("%s: session refresh not sent: %s", call.phone.name, exc)
                return
            # a re-INVITE answered 100 and then nothing never times out in the transaction (RFC 3261 17.1.1.2):
            # the session would expire half an interval after this refresh, so give up on it then
            self._refresh_seq += 1
            seq = self._refresh_seq
            call.phone.engine.call_later(self.interval / 2.0, lambda: self._fire_refresh_guard(seq))

    def _fire_refresh_guard(self, seq: int) -> None:
        with self.call._lock:
            if seq == self._refresh_seq:
                self.on_refresh_failed(408, "no final response before the session expired")

    def _fire_expiry(self, gen: int) -> None:
        call = self.call
        with call._lock:
            if gen != self._gen or call.state != "confirmed":
                return
            log.info("%s: no session refresh for %.1f s: BYE", call.phone.name, self.expiry_delay)
            self.expired = True
            call.hangup(reason=f"session expired: no refresh for {self.expiry_delay:.1f} s")

    def on_refresh_failed(self, status: int, why: str) -> None:
        """Our refresh failed (408, 481 or a timeout): BYE, and the call ends with that reason (RFC 4028 10)."""
        call = self.call
        self._refresh_seq += 1
        self.stop()
        if call.state not in ("confirmed", "answering") or self.failed:
            return
        self.failed = status
        method = call.phone.device.session_refresh_method.upper()
        log.info("%s: session refresh (%s) failed: %s: BYE", call.phone.name, method, why)
        call.hangup(reason=f"session refresh ({method}) failed: {why}", status=status)

    def on_refresh_answered(self, status: int, msg: Any) -> None:
        """Our refresh got a final response: a 2xx sets the new interval and who refreshes next; 408 and 481
        end the call with BYE; other failures leave the session to expire (RFC 4028 10)."""
        self._refresh_seq += 1  # answered: the guard has nothing to do
        if status in (408, 481):
            reason = getattr(msg, "reason", "") if msg is not None else ""
            self.on_refresh_failed(status, f"{status} {reason}".strip())
            return
        if not 200 <= status < 300:
            log.info("%s: session refresh answered %d", self.call.phone.name, status)
            return
        se = parse_session_expires(msg.header("Session-Expires")) if msg is not None else None
        if se is not None:
            self.interval = se[0]
            self.we_refresh = se[1] != "uas"  # we were the UAC of the refresh
        self.start()

    def on_refresh_received(self, msg: Any) -> list[tuple[str, str]]:
        """A refresh (re-INVITE/UPDATE) from the peer: re-arm and return the headers of our 2xx."""
        self.refreshes_received += 1
        se = parse_session_expires(msg.header("Session-Expires"))
        if se is not None:
            self.interval = se[0]
            refresher = se[1] or "uac"
            self.we_refresh = refresher == "uas"  # we are the UAS of the refresh
        else:
            refresher = "uas" if self.we_refresh else "uac"
        self.start()
        hdrs = [("Session-Expires", f"{self.interval};refresher={refresher}")]
        if "timer" in option_tags(msg, "Supported"):
            hdrs.append(("Require", "timer"))
        return hdrs

    def refresh_headers(self) -> list[tuple[str, str]]:
        """Headers of the refresh we send: we stay the refresher (refresher=uac of this request)."""
        return [("Session-Expires", f"{self.interval};refresher=uac"), ("Supported", "timer")]


def start_uac(call: "Call", response: Any) -> Optional[SessionTimer]:
    """Caller: the 2xx to our INVITE decides (RFC 4028 7.2); None when it has no Session-Expires."""
    if not enabled(call.phone.device):
        return None
    se = parse_session_expires(response.header("Session-Expires")) if response is not None else None
    if se is None:
        return None
    st = SessionTimer(call, se[0], se[1] != "uas")
    st.start()
    return st


def start_uas(call: "Call", negotiated: Optional[tuple[int, str]]) -> Optional[SessionTimer]:
    """Callee: the interval and refresher put in our 2xx."""
    if negotiated is None:
        return None
    st = SessionTimer(call, negotiated[0], negotiated[1] == "uas")
    st.start()
    return st
