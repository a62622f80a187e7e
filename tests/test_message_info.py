"""MESSAGE (RFC 3428), INFO (RFC 6086, application/dtmf-relay), PUBLISH (RFC 3903) with SIP-ETag and
SIP-If-Match against a small handler, and the default answers to requests a phone does not serve."""
from __future__ import annotations

import itertools

import pytest

from pysiptest import (
    Engine,
    IncomingRequest,
    InfoReceived,
    MessageReceived,
    Phone,
    RequestReceived,
    ResponseReceived,
    eventpkg,
)
from test_refer import _connect


@pytest.fixture
def pair(engine: Engine):
    bob = Phone("bob", engine=engine)
    alice = Phone("alice", engine=engine, proxy=(bob.host, bob.port))
    yield alice, bob
    alice.close()
    bob.close()


def test_message_phone_to_phone(pair) -> None:
    alice, bob = pair
    alice.send_message(bob, "héllo bob")
    m = bob.expect(MessageReceived, 5)
    assert m.text == "héllo bob" and m.sender == alice.aor
    assert m.content_type == "text/plain;charset=UTF-8" and m.message.header("Content-Length") == str(len("héllo bob".encode()))
    assert alice.expect(ResponseReceived, 5, method="MESSAGE").status == 200


def test_message_through_the_pbx(make_phone) -> None:
    alice = make_phone("alice")
    bob = make_phone("bob")
    alice.send_message("bob", "via the pbx")
    m = bob.expect(MessageReceived, 5)
    assert m.text == "via the pbx" and m.sender.startswith("sip:alice@")
    assert alice.expect(ResponseReceived, 5, method="MESSAGE").status == 200


@pytest.mark.parametrize("through_pbx", [False, True])
def test_info_dtmf_relay_both_directions(through_pbx: bool, pair, make_phone) -> None:
    if through_pbx:
        alice, bob = make_phone("alice"), make_phone("bob")
        a_call, b_call = _connect(alice, bob, "bob")
    else:
        alice, bob = pair
        a_call, b_call = _connect(alice, bob)
    a_call.send_info(eventpkg.dtmf_relay("5", 250))
    info = bob.expect(InfoReceived, 5, call=b_call)
    assert (info.content_type, info.signal, info.duration) == ("application/dtmf-relay", "5", 250)
    assert info.message.call_id == (b_call.call_id if not through_pbx else info.message.call_id)
    assert alice.expect(ResponseReceived, 5, method="INFO").status == 200
    b_call.send_info("Signal=#\r\nDuration=100\r\n")
    assert alice.expect(InfoReceived, 5, call=a_call).signal == "#"
    b_call.send_info(b"<xml/>", content_type="application/media_control+xml")
    other = alice.expect(InfoReceived, 5, call=a_call)
    assert other.content_type == "application/media_control+xml" and other.signal is None and other.body == b"<xml/>"


class EventStateCompositor:
    """A minimal PUBLISH handler (RFC 3903 section 6): new ETag per accepted PUBLISH, 412 for an unknown
    SIP-If-Match, 489 for an event it does not know."""

    def __init__(self) -> None:
        self.state: dict[str, bytes] = {}
        self.seen: list = []
        self._n = itertools.count(1)

    def __call__(self, req: IncomingRequest) -> None:
        msg = req.message
        self.seen.append(msg)
        if msg.header("Event") != "presence":
            req.respond(489, "Bad Event")
            return
        match = msg.header("SIP-If-Match")
        if match is not None and match not in self.state:
            req.respond(412, "Conditional Request Failed")
            return
        if match is None and not msg.body:
            req.respond(400, "Missing body")
            return
        body = msg.body or self.state.pop(match)
        if match is not None:
            self.state.pop(match, None)
        if msg.header("Expires") == "0":
            req.respond(200, None, [("Expires", "0")])
            return
        etag = f"etag{next(self._n)}"
        self.state[etag] = body
        req.respond(200, None, [("SIP-ETag", etag), ("Expires", msg.header("Expires") or "3600")])


def test_publish_with_etag_refresh_modify_and_remove(pair) -> None:
    alice, bob = pair
    esc = EventStateCompositor()
    bob.request_handlers["PUBLISH"] = esc
    pub = alice.publish("presence", eventpkg.pidf(alice.aor, "open"), expires=120)
    first = esc.seen[-1]
    assert first.header("Event") == "presence" and first.header("Content-Type") == "application/pidf+xml"
    assert first.header("SIP-If-Match") is None and first.header("Expires") == "120"
    assert pub.etag == "etag1" and pub.expires == 120
    assert pub.refresh() == 200
    refresh = esc.seen[-1]
    assert refresh.header("SIP-If-Match") == "etag1" and refresh.body == b"" and refresh.call_id == first.call_id
    assert pub.etag == "etag2" and eventpkg.parse_pidf(esc.state["etag2"]).basic == "open"
    assert pub.modify(eventpkg.pidf(alice.aor, "closed")) == 200
    assert esc.seen[-1].header("SIP-If-Match") == "etag2" and pub.etag == "etag3"
    assert eventpkg.parse_pidf(esc.state["etag3"]).basic == "closed"
    assert pub.remove() == 200
    assert esc.seen[-1].header("Expires") == "0" and esc.state == {} and pub.removed
    # a stale ETag: 412, and the phone forgets it
    pub.etag = "gone"
    assert pub.refresh() == 412 and pub.etag is None
    with pytest.raises(AssertionError):
        alice.publish("weather", b"sunny", content_type="text/plain")


def test_unserved_requests_get_405_or_501_with_allow_and_are_recorded(pair) -> None:
    alice, bob = pair
    alice.send_request("PUBLISH", bob, [("Event", "presence")], b"x", "text/plain")
    r = alice.expect(ResponseReceived, 5, method="PUBLISH")
    assert r.status == 405 and "SUBSCRIBE" in r.message.header("Allow") and "REFER" in r.message.header("Allow")
    assert bob.expect(RequestReceived, 5, method="PUBLISH")
    alice.send_request("FROBNICATE", bob)
    r = alice.expect(ResponseReceived, 5, method="FROBNICATE")
    assert r.status == 501 and "INVITE" in r.message.header("Allow")
    assert bob.expect(RequestReceived, 5, method="FROBNICATE")
    alice.send_request("REFER", bob, [("Refer-To", "<sip:x@127.0.0.1>")])
    assert alice.expect(ResponseReceived, 5, method="REFER").status == 403
