"""Device models differ on the wire: what each one sends, seen by a raw UDP socket standing in for the PBX
(phones made to use UDP there, whatever their model's transport), and through the reference PBX and
Kamailio for what needs a real server (Chipmunk5000 over TCP, DTMF the way each model sends it)."""
from __future__ import annotations

import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from typing import Optional

import pytest

from pysiptest import Engine, Phone, find_device, parse
from pysiptest.voicemail import VoicemailService


class RawPeer:
    """A bare UDP socket that sends hand-written SIP and returns what arrives, parsed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def recv(self, timeout: float = 3.0, want: Optional[str] = None):  # -> pysiptest.Message
        """The next message (a request of method want, or a response whose CSeq method is want)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            msg = parse(data)
            kind = msg.method if msg.method else f"{msg.status} {msg.cseq[1] if msg.cseq else ''}"
            if want is None or want == kind or (msg.method is None and want == str(msg.status)) or \
                    (msg.method is None and kind.startswith(want)):
                return msg
        raise AssertionError(f"nothing ({want or 'any message'}) arrived within {timeout} s")

    def send(self, port: int, text: str) -> None:
        head, sep, body = text.partition("\n\n")
        self.sock.sendto((head.replace("\n", "\r\n") + "\r\n\r\n" + body).encode(), ("127.0.0.1", port))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[RawPeer]:
    peer = RawPeer()
    try:
        yield peer
    finally:
        peer.close()


def invite(peer: RawPeer, to_port: int, body: str, extra: str = "", call_id: Optional[str] = None) -> str:
    """An INVITE from the raw peer to a phone listening on to_port."""
    body = body.replace("\n", "\r\n")
    return (f"INVITE sip:bob@127.0.0.1:{to_port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK{secrets.token_hex(6)}\n"
            f"From: <sip:alice@127.0.0.1>;tag={secrets.token_hex(4)}\n"
            f"To: <sip:bob@127.0.0.1>\n"
            f"Call-ID: {call_id or secrets.token_hex(8)}\n"
            f"CSeq: 1 INVITE\n"
            f"Contact: <sip:alice@127.0.0.1:{peer.port}>\n"
            f"Max-Forwards: 70\n{extra}"
            f"Content-Type: application/sdp\n"
            f"Content-Length: {len(body)}\n\n") + body


def sdp_offer(port: int, video: bool = False) -> str:
    s = ("v=0\no=peer 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
         f"m=audio {port} RTP/AVP 0 8\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=ptime:20\n")
    if video:
        s += f"m=video {port + 2} RTP/AVP 96\na=rtpmap:96 H264/90000\n"
    return s


def phone_for(engine: Engine, raw: RawPeer, model: str, user: str = "bob") -> Phone:
    """A phone of the model pointed at the raw peer, over UDP (the raw peer's transport)."""
    return Phone(user, find_device(model)(), engine=engine, proxy=("127.0.0.1", raw.port), transport="udp")


# -- what each model offers when it calls -----------------------------------------------------
@pytest.mark.parametrize("model, supported, absent, audio_fmts, video", [
    ("Squirrel350", ["100rel", "timer"], [], "0 8", False),
    ("Chipmunk5000", ["replaces"], ["100rel", "timer"], "8 0", False),
    ("OtterSoft", ["replaces"], ["100rel"], "0 8", True),
    ("HeronBase", [], ["100rel", "timer"], "8", False),
])
def test_outgoing_invite_carries_the_models_options_and_codecs(engine: Engine, raw: RawPeer, model: str,
                                                                supported: list[str], absent: list[str],
                                                                audio_fmts: str, video: bool) -> None:
    phone = phone_for(engine, raw, model, "alice")
    phone.call("bob")
    inv = raw.recv(want="INVITE")
    assert inv.header("User-Agent") == find_device(model).user_agent
    tags = [t.strip() for t in (inv.header("Supported") or "").split(",") if t.strip()]
    for t in supported:
        assert t in tags, f"{model} should send Supported: {t}, sent {tags}"
    for t in absent:
        assert t not in tags, f"{model} must not send Supported: {t}, sent {tags}"
    body = inv.body.decode()
    # session timers (RFC 4028): only the model with "timer" asks for an interval
    if "timer" in supported:
        assert inv.header("Session-Expires") == "1800" and inv.header("Min-SE") == "90"
    else:
        assert inv.header("Session-Expires") is None
    m_audio = next(line for line in body.splitlines() if line.startswith("m=audio"))
    # the audio codecs in the model's order; the default offer adds telephone-event (101, RFC 4733) after them
    assert m_audio.split(" ", 3)[3].removesuffix(" 101") == audio_fmts
    assert ("m=video" in body) is video


# -- how fast each model rings ----------------------------------------------------------------
@pytest.mark.parametrize("model, low, high", [
    ("Chipmunk5000", 0.0, 0.15),
    ("Squirrel350", 0.15, 0.6),
    ("HeronBase", 0.9, 1.6),
])
def test_180_comes_after_the_models_ring_delay(engine: Engine, raw: RawPeer, model: str, low: float,
                                               high: float) -> None:
    phone = phone_for(engine, raw, model)
    t0 = time.monotonic()
    raw.send(phone.port, invite(raw, phone.port, sdp_offer(40000)))
    raw.recv(want="180")
    took = time.monotonic() - t0
    assert low <= took <= high, f"{model} sent 180 after {took:.2f} s, expected {low}-{high} s"


def test_voicemail_answers_without_ringing(engine: Engine, raw: RawPeer) -> None:
    phone = phone_for(engine, raw, "Voicemail", "voicemail")
    raw.send(phone.port, invite(raw, phone.port, sdp_offer(40000)))
    resp = raw.recv(timeout=3)
    while resp.status == 100:
        resp = raw.recv(timeout=3)
    assert resp.status == 200, f"the voicemail box should answer at once without 180, sent {resp.status}"


# -- the softphone refuses video in its answer ------------------------------------------------
# every answer keeps one m-line per offered stream (RFC 3264 6): the default answer refuses video with port 0 too
@pytest.mark.parametrize("model, video_line", [("OtterSoft", "m=video 0 "), ("Chipmunk5000", "m=video 0 ")])
def test_answer_to_a_video_offer(engine: Engine, raw: RawPeer, model: str, video_line: Optional[str]) -> None:
    phone = phone_for(engine, raw, model)
    raw.send(phone.port, invite(raw, phone.port, sdp_offer(40000, video=True)))
    phone.wait_for_call(timeout=3).answer()
    ok = raw.recv(want="200")
    body = ok.body.decode()
    audio = next(line for line in body.splitlines() if line.startswith("m=audio"))
    assert int(audio.split()[1]) > 0
    if video_line is None:
        assert "m=video" not in body
    else:
        assert video_line in body, f"{model} should refuse video with port 0:\n{body}"
        assert body.index("m=audio") < body.index("m=video"), "m-lines must keep the offer's order"


# -- the voicemail server records and sends MWI -----------------------------------------------
def test_voicemail_records_the_caller_and_notifies_the_owner(engine: Engine, raw: RawPeer) -> None:
    box = VoicemailService(phone_for(engine, raw, "Voicemail", "voicemail")).start()
    media_id, media_port = engine.media.open("127.0.0.1", 0)
    try:
        call_id = secrets.token_hex(8)
        raw.send(box.phone.port, invite(raw, box.phone.port, sdp_offer(media_port), call_id=call_id,
                                        extra="Diversion: <sip:bob@127.0.0.1>;reason=user-busy;counter=1\n"))
        ok = raw.recv(want="200")
        answer_port = int(next(line for line in ok.body.decode().splitlines() if line.startswith("m=audio")).split()[1])
        to = ok.header("To")
        from_ = ok.header("From")
        engine.media.start(media_id, "127.0.0.1", answer_port, payload_type=0, source="tone", tone_hz=440.0)
        raw.send(box.phone.port, f"ACK sip:voicemail@127.0.0.1:{box.phone.port} SIP/2.0\n"
                 f"Via: SIP/2.0/UDP 127.0.0.1:{raw.port};branch=z9hG4bK{secrets.token_hex(6)}\n"
                 f"From: {from_}\nTo: {to}\nCall-ID: {call_id}\nCSeq: 1 ACK\nMax-Forwards: 70\n"
                 f"Content-Length: 0\n\n")
        time.sleep(1.0)
        raw.send(box.phone.port, f"BYE sip:voicemail@127.0.0.1:{box.phone.port} SIP/2.0\n"
                 f"Via: SIP/2.0/UDP 127.0.0.1:{raw.port};branch=z9hG4bK{secrets.token_hex(6)}\n"
                 f"From: {from_}\nTo: {to}\nCall-ID: {call_id}\nCSeq: 2 BYE\nMax-Forwards: 70\n"
                 f"Content-Length: 0\n\n")
        notify = raw.recv(want="NOTIFY", timeout=5)
    finally:
        engine.media.close_stream(media_id)
    assert notify.uri.startswith("sip:bob@")
    assert notify.header("Event") == "message-summary"
    assert notify.header("Content-Type") == "application/simple-message-summary"
    assert b"Messages-Waiting: yes" in notify.body and b"Voice-Message: 1/0" in notify.body
    (msg,) = box.messages("bob")
    assert msg.caller == "alice" and msg.reason == "user-busy" and msg.payload_type == 0
    assert 40 <= msg.rx_packets <= 60, msg  # 1 s of 20 ms packets
    assert 0.8 <= msg.duration <= 1.2, msg
    # the box kept what it heard: about 1 s of the caller's 440 Hz tone
    assert 0.8 <= msg.audio_seconds <= 1.3 and msg.heard_tone(440.0), (msg.audio_seconds, msg.tone_hz)
    box.stop()


# -- 100rel and session timers when called ----------------------------------------------------
@pytest.mark.parametrize("model, reliable", [("Squirrel350", True), ("Chipmunk5000", False),
                                             ("HeronBase", False)])
def test_180_is_reliable_only_from_the_100rel_model(engine: Engine, raw: RawPeer, model: str,
                                                    reliable: bool) -> None:
    """The caller supports 100rel: Squirrel350 sends its 180 reliably (Require: 100rel, RSeq, RFC 3262) and
    retransmits it until PRACKed; the others send a plain 180."""
    phone = phone_for(engine, raw, model)
    raw.send(phone.port, invite(raw, phone.port, sdp_offer(40000), extra="Supported: 100rel, timer\n"))
    first = raw.recv(want="180", timeout=3)
    require = [t.strip() for t in (first.header("Require") or "").split(",") if t.strip()]
    if reliable:
        assert "100rel" in require and first.header("RSeq") is not None and int(first.header("RSeq")) >= 1
        again = raw.recv(want="180", timeout=2)  # not PRACKed: sent again after T1
        assert again.header("RSeq") == first.header("RSeq")
    else:
        assert "100rel" not in require and first.header("RSeq") is None
        with pytest.raises(AssertionError, match="nothing"):
            raw.recv(want="180", timeout=1.2)  # an unreliable 180 is never retransmitted


@pytest.mark.parametrize("model, timer", [("Squirrel350", True), ("Chipmunk5000", False)])
def test_200_takes_up_the_callers_session_timer_only_on_the_timer_model(engine: Engine, raw: RawPeer, model: str,
                                                                        timer: bool) -> None:
    phone = phone_for(engine, raw, model)
    raw.send(phone.port, invite(raw, phone.port, sdp_offer(40000),
                                extra="Supported: timer\nSession-Expires: 600\nMin-SE: 90\n"))
    phone.wait_for_call(timeout=3).answer()
    ok = raw.recv(want="200", timeout=3)
    if timer:
        assert ok.header("Session-Expires").replace(" ", "").startswith("600;refresher=")
        assert "timer" in (ok.header("Require") or "")
    else:
        assert ok.header("Session-Expires") is None and "timer" not in (ok.header("Require") or "")


# -- the DECT base answers slowly -------------------------------------------------------------
@pytest.mark.parametrize("model, low, high", [("HeronBase", 0.75, 1.5), ("Chipmunk5000", 0.0, 0.3)])
def test_200_leaves_after_the_models_answer_delay(engine: Engine, raw: RawPeer, model: str, low: float,
                                                  high: float) -> None:
    phone = phone_for(engine, raw, model)
    raw.send(phone.port, invite(raw, phone.port, sdp_offer(40000)))
    call = phone.wait_for_call(timeout=3)
    raw.recv(want="180", timeout=3)
    t0 = time.monotonic()
    call.answer()
    raw.recv(want="200", timeout=3)
    took = time.monotonic() - t0
    assert low <= took <= high, f"{model} sent 200 {took:.2f} s after the user answered, expected {low}-{high} s"


# -- Chipmunk5000 talks SIP over TCP, through the reference PBX and Kamailio --------------------
def _top_via_transport(msg) -> str:  # noqa: ANN001 - a pysiptest Message
    return msg.header("Via").split()[0].rsplit("/", 1)[-1].upper()


def _tcp_call(engine: Engine, host: str, port: int) -> tuple[Phone, Phone]:
    """Alice (Squirrel350, UDP) calls Bob (Chipmunk5000, TCP) through the server at host:port; media both ways."""
    from pysiptest import Answered, RequestReceived, ResponseReceived

    alice = Phone("alice", find_device("Squirrel350")(), engine=engine, proxy=(host, port))
    bob = Phone("bob", find_device("Chipmunk5000")(), engine=engine, proxy=(host, port))
    assert (alice.transport, bob.transport) == ("udp", "tcp")
    assert bob.contact_uri.endswith(";transport=tcp")
    alice.register(timeout=5)
    bob.register(timeout=5)
    reg_ok = [e for e in bob.history if isinstance(e[1], ResponseReceived) and e[1].method == "REGISTER"][-1][1]
    assert _top_via_transport(reg_ok.message) == "TCP"  # our REGISTER went over TCP and so came its 200
    call = alice.call(bob)
    incoming = bob.wait_for_call(timeout=5)
    assert _top_via_transport(incoming.request) == "TCP", incoming.request.header("Via")
    incoming.answer()
    alice.expect(Answered, 5, call=call)
    time.sleep(0.5)
    assert incoming.media_stats()["rx_packets"] > 10 and call.media_stats()["rx_packets"] > 10
    call.hangup()
    bye = bob.expect(RequestReceived, 5, method="BYE").message
    assert _top_via_transport(bye) == "TCP"
    # and Bob calls out over TCP: the answer to his INVITE comes back with his TCP Via on top
    out = bob.call(alice)
    alice.wait_for_call(timeout=5).answer()
    bob.expect(Answered, 5, call=out)
    ok = [e for _, e in bob.history if isinstance(e, ResponseReceived) and e.method == "INVITE" and e.status == 200]
    assert ok and _top_via_transport(ok[-1].message) == "TCP"
    out.hangup()
    alice.expect(RequestReceived, 5, method="BYE")
    return alice, bob


def test_chipmunk_registers_and_is_called_over_tcp_through_the_reference_pbx(engine: Engine) -> None:
    from pysiptest.sut import ReferencePbxSut

    with ReferencePbxSut() as pbx:
        assert pbx.pbx is not None and pbx.pbx.tcp_transport_id is not None
        _tcp_call(engine, pbx.host, pbx.port)
        (binding,) = pbx.pbx.registrar.lookup("bob")
        assert binding.transport_id == pbx.pbx.tcp_transport_id and binding.contact.endswith(";transport=tcp")
        (a_binding,) = pbx.pbx.registrar.lookup("alice")
        assert a_binding.transport_id == pbx.pbx.transport_id


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio is not installed")
def test_chipmunk_registers_and_is_called_over_tcp_through_kamailio(engine: Engine) -> None:
    from pysiptest.sut import Kamailio

    with Kamailio() as kam:
        _tcp_call(engine, kam.host, kam.port)


# -- DTMF the way each model sends it ---------------------------------------------------------
def test_chipmunk_presses_keys_as_info_and_squirrel_as_rfc4733(engine: Engine) -> None:
    """The step library's "presses" sends keys the device's way (``dtmf_mode``): Chipmunk5000's become INFO
    requests with application/dtmf-relay bodies, Squirrel350's RFC 4733 telephone-events with no INFO."""
    from types import SimpleNamespace

    from pysiptest import Answered, InfoReceived, RequestReceived
    from pysiptest.bdd.steps_media import press
    from pysiptest.sut import ReferencePbxSut

    with ReferencePbxSut() as pbx:
        alice = Phone("alice", find_device("Squirrel350")(), engine=engine, proxy=(pbx.host, pbx.port))
        bob = Phone("bob", find_device("Chipmunk5000")(), engine=engine, proxy=(pbx.host, pbx.port))
        alice.register(timeout=5)
        bob.register(timeout=5)
        call = alice.call(bob)
        incoming = bob.wait_for_call(timeout=5)
        incoming.answer()
        alice.expect(Answered, 5, call=call)
        ctx = SimpleNamespace(phones={"Alice": alice, "Bob": bob})
        press(ctx, "Bob", "7#")
        infos = [alice.expect(InfoReceived, 5) for _ in range(2)]
        assert [i.signal for i in infos] == ["7", "#"]
        assert all(i.content_type.startswith("application/dtmf-relay") for i in infos)
        assert call.dtmf_received() == ""  # nothing came as telephone-events
        press(ctx, "Alice", "42")
        deadline = time.monotonic() + 5
        while incoming.dtmf_received() != "42" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert incoming.dtmf_received() == "42"
        assert not [e for _, e in bob.history if isinstance(e, RequestReceived) and e.method == "INFO"]
        call.hangup()
