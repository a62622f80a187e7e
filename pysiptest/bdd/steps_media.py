"""Steps about what the phones hear: tones both ways (Goertzel detector of the media engine), DTMF by
RFC 4733 telephone-events and by INFO (application/dtmf-relay), codecs on the RTP stream."""
from __future__ import annotations

import time
from typing import Any, Optional

from behave import step

from pysiptest import eventpkg
from pysiptest.bdd._common import WAIT, active_call, codec_name, phone_of, since, wait_for
from pysiptest.call import Call
from pysiptest.events import InfoReceived, ResponseReceived

#: DTMF kinds a phrase may name
DTMF_KINDS = {"rfc 4733": "rfc4733", "rfc4733": "rfc4733", "rtp": "rfc4733", "info": "info", "sip info": "info"}
#: length of each RFC 4733 digit (ms); the engine sends the digits one after another
DTMF_MS = 100


def _tone_figures(call: Call, hz: float) -> str:
    """The detector's figures for hz on the call's received audio, for failure messages."""
    if call.media_id is None:
        return "no media stream"
    t = call.phone.engine.media.detect_tone(call.media_id, hz, 200)
    return (f"tone {t['tone_dbov']:.1f} dBov of {t['level_dbov']:.1f} dBov received (ratio {t['ratio']:.2f}, "
            f"silent={t['silent']})")


def check_hears(call: Call, listener: str, speaker: str, hz: float, timeout: float = WAIT) -> None:
    """The listener's received audio holds the speaker's tone at hz (Goertzel over the last 200 ms)."""
    wait_for(lambda: True if call.heard_tone(hz) else None, timeout,
             lambda: f"{listener} does not hear {speaker}'s {hz:g} Hz tone: {_tone_figures(call, hz)}")


@step("{a:Name} and {b:Name} hear each other")
def step_hear_each_other(context: Any, a: str, b: str) -> None:
    """Each phone sends its device's tone; each side's tone detector finds the other's tone in what it receives
    (and, when the two tones differ, not its own: the audio is not looped back).

    Example: ``Then Alice and Bob hear each other``
    """
    phones = {n: phone_of(context, n) for n in (a, b)}  # unknown names fail first, listing the known ones
    calls = {n: active_call(context, n) for n in phones}
    tones = {}
    for n, c in calls.items():
        c.wait_state("confirmed", timeout=WAIT)
        dev = phone_of(context, n).device
        if dev.media_source != "tone":
            raise AssertionError(f"{n}'s {dev.model} sends {dev.media_source!r}, not a tone: nothing to listen for")
        tones[n] = dev.tone_hz
    for listener, speaker in ((a, b), (b, a)):
        check_hears(calls[listener], listener, speaker, tones[speaker])
        if tones[listener] != tones[speaker]:
            assert not calls[listener].heard_tone(tones[listener]), (
                f"{listener} hears their own {tones[listener]:g} Hz tone: "
                f"{_tone_figures(calls[listener], tones[listener])}")


@step("{name:Name} hears a {hz:d} Hz tone")
def step_hears_tone(context: Any, name: str, hz: int) -> None:
    """The person's received audio holds a tone at that frequency (e.g. a voicemail greeting at 425 Hz).

    Example: ``Then Alice hears a 425 Hz tone``
    """
    call = active_call(context, name)
    call.wait_state("confirmed", timeout=WAIT)
    check_hears(call, name, "the peer", float(hz))


def _dtmf_kind(phone: Any, call: Call, kind: Optional[str]) -> str:
    if kind is not None:
        try:
            return DTMF_KINDS[kind.lower()]
        except KeyError:
            raise AssertionError(f"unknown DTMF kind {kind!r}; known: RFC 4733, INFO") from None
    mode = str(getattr(phone.device, "dtmf_mode", "") or "").lower().replace(" ", "")
    if mode in ("info", "rfc4733"):
        return mode
    return "rfc4733" if call.session is not None and call.session.dtmf_payload_type is not None else "info"


def press(context: Any, name: str, digits: str, kind: Optional[str] = None) -> None:
    """Send the digits on the person's call, by RFC 4733 or by INFO (one INFO per digit, each answered 2xx)."""
    phone = phone_of(context, name)
    call = active_call(context, name)
    call.wait_state("confirmed", timeout=WAIT)
    how = _dtmf_kind(phone, call, kind)
    if how == "rfc4733":
        call.send_dtmf(digits, DTMF_MS)
        return
    for d in digits:
        call.send_info(eventpkg.dtmf_relay(d, DTMF_MS), eventpkg.DTMF_RELAY)
        ev = phone.expect(ResponseReceived, timeout=WAIT, method="INFO")
        assert 200 <= ev.status < 300, f"{name}'s INFO for DTMF {d!r} was answered {ev.status}"


@step("{name:Name} presses {digits:Digits}")
def step_presses(context: Any, name: str, digits: str) -> None:
    """Press keys during the call, the way the device sends DTMF (its ``dtmf_mode``; else RFC 4733 when
    telephone-event was agreed in SDP, INFO otherwise).

    Example: ``When Alice presses 1234``
    """
    press(context, name, digits)


@step("{name:Name} presses {digits:Digits} by {kind}")
def step_presses_by(context: Any, name: str, digits: str, kind: str) -> None:
    """Press keys, sent as RFC 4733 telephone-events on the RTP stream or as SIP INFO (application/dtmf-relay).

    Example: ``When Bob presses 5# by INFO``
    """
    press(context, name, digits, kind)


def _received(call: Call, t0: float, kind: Optional[str]) -> dict[str, str]:
    got = {}
    if kind in (None, "rfc4733"):
        got["rfc4733"] = call.dtmf_received()
    if kind in (None, "info"):
        got["info"] = "".join(ev.signal or "?" for ev in since(call.phone, t0, InfoReceived)
                              if ev.call is call and ev.signal is not None)
    return got


def check_dtmf(context: Any, name: str, digits: str, kind: Optional[str] = None) -> None:
    """The person's call received exactly these digits last (RFC 4733 events, or INFO signals)."""
    call = active_call(context, name)
    how = None if kind is None else DTMF_KINDS.get(kind.lower())
    if kind is not None and how is None:
        raise AssertionError(f"unknown DTMF kind {kind!r}; known: RFC 4733, INFO")
    t0 = 0.0  # the whole call: INFO events are matched to this call
    timeout = WAIT + len(digits) * 2 * DTMF_MS / 1000

    def found() -> Optional[bool]:
        return True if any(v.endswith(digits) for v in _received(call, t0, how).values()) else None

    wait_for(found, timeout, lambda: f"{name} did not receive DTMF {digits}"
             + (f" by {kind}" if kind else "") + f"; received: {_received(call, t0, how)}")


@step("{name:Name} receives DTMF {digits:Digits}")
def step_receives_dtmf(context: Any, name: str, digits: str) -> None:
    """The person's call received these digits, by RFC 4733 or INFO, in this order (the last ones received).

    Example: ``Then Bob receives DTMF 1234``
    """
    check_dtmf(context, name, digits)


@step("{name:Name} receives DTMF {digits:Digits} by {kind}")
def step_receives_dtmf_by(context: Any, name: str, digits: str, kind: str) -> None:
    """The person's call received these digits the named way (RFC 4733 or INFO).

    Example: ``Then Alice receives DTMF 5# by INFO``
    """
    check_dtmf(context, name, digits, kind)


@step("{a:Name} and {b:Name} use {codec:Codec}")
def step_use_codec(context: Any, a: str, b: str, codec: int) -> None:
    """Both calls agreed on that codec in SDP, and each side receives RTP with its payload type.

    Example: ``Then Alice and Bob use PCMA``
    """
    for n in (a, b):
        call = active_call(context, n)
        call.wait_state("confirmed", timeout=WAIT)
        assert call.payload_type == codec, (
            f"{n}'s call agreed on {codec_name(call.payload_type)}, expected {codec_name(codec)}")
        t_end = time.monotonic() + WAIT

        def rx_pt() -> Optional[bool]:
            st = call.media_stats()
            return True if st.get("rx_packets", 0) > 0 and st.get("rx_payload_type") == codec else None

        wait_for(rx_pt, max(0.1, t_end - time.monotonic()),
                 lambda: f"{n} receives no RTP with payload type {codec} ({codec_name(codec)}): "
                 f"last payload type {call.media_stats().get('rx_payload_type')}, "
                 f"{call.media_stats().get('rx_packets')} packets")
