"""SUBSCRIBE/NOTIFY (RFC 6665) phone to phone, both roles: message-summary (RFC 3842), presence (PIDF), dialog;
refresh, unsubscribe, notifier-side termination, 489 for an unknown package, the dialog created by a NOTIFY
that arrives before the 2xx, and no dialog left behind."""
from __future__ import annotations

import secrets
import socket
import time

import pytest

from pysiptest import (
    Engine,
    NotifyReceived,
    Phone,
    RequestReceived,
    ResponseReceived,
    SubscriptionEnded,
    SubscriptionRequested,
    eventpkg,
)
from pysiptest.sut._proc import wait_until


def _dialogs(engine: Engine) -> int:
    return engine.core.counts()["dialogs"]


@pytest.fixture
def pair(engine: Engine):
    """bob (notifier) and alice, who uses bob as her proxy."""
    bob = Phone("bob", engine=engine)
    alice = Phone("alice", engine=engine, proxy=(bob.host, bob.port))
    yield alice, bob
    alice.close()
    bob.close()


def test_message_summary_subscription_refresh_and_unsubscribe(pair, engine: Engine) -> None:
    alice, bob = pair
    sub = alice.subscribe(bob, "message-summary", expires=120)
    req = bob.expect(SubscriptionRequested, 5, event="message-summary").subscription
    sreq = bob.expect(RequestReceived, 5, method="SUBSCRIBE").message
    assert sreq.header("Event") == "message-summary" and sreq.header("Expires") == "120"
    assert sreq.header("Accept") == "application/simple-message-summary"
    assert sreq.contact is not None and sreq.to.tag is None
    req.accept("active", eventpkg.message_summary(2, 1, bob.aor))
    resp = alice.expect(ResponseReceived, 5, method="SUBSCRIBE")
    assert resp.status == 200 and resp.message.header("Expires") == "120" and resp.message.to.tag
    n = alice.expect(NotifyReceived, 5, event="message-summary")
    assert n.state == "active" and n.subscription is sub
    assert n.content_type == "application/simple-message-summary"
    assert n.message.header("Subscription-State").startswith("active;expires=")
    assert n.message.header("Event") == "message-summary"
    summary = eventpkg.parse_message_summary(n.body)
    assert (summary.waiting, summary.new, summary.old) == (True, 2, 1)
    sub.wait_active()
    assert sub.dialog_id and _dialogs(engine) == 2  # one dialog seen from each side

    # a new message: the notifier tells the subscriber
    req.notify(eventpkg.message_summary(0, 3, bob.aor))
    n2 = alice.expect(NotifyReceived, 5)
    assert eventpkg.parse_message_summary(n2.body).waiting is False
    # refresh inside the dialog: same Call-ID and tags, CSeq up, answered 200 and followed by a NOTIFY
    assert sub.refresh(60) == 200
    refresh = bob.expect(RequestReceived, 5, method="SUBSCRIBE").message
    assert refresh.call_id == sreq.call_id and refresh.to.tag == resp.message.to.tag
    assert refresh.cseq.number > sreq.cseq.number and refresh.header("Expires") == "60"
    assert alice.expect(NotifyReceived, 5).state == "active"
    # unsubscribe: Expires 0 and a terminated NOTIFY; both ends forget the dialog
    assert sub.unsubscribe() == 200
    last = alice.expect(NotifyReceived, 5)
    assert last.state == "terminated" and last.reason == "timeout"
    assert alice.expect(SubscriptionEnded, 5).subscription is sub and sub.state == "terminated"
    assert bob.expect(SubscriptionEnded, 5).subscription is req
    wait_until(lambda: _dialogs(engine) == 0, 5, what="subscription dialogs gone")


def test_presence_with_on_subscribe_handler_and_notifier_termination(pair, engine: Engine) -> None:
    alice, bob = pair
    served = []

    def on_subscribe(s) -> None:
        served.append(s)
        s.accept("active", eventpkg.pidf(bob.aor, "closed", note="in a meeting"))
    bob.on_subscribe = on_subscribe
    sub = alice.subscribe(bob.aor, "presence", expires=300)
    n = alice.expect(NotifyReceived, 5, event="presence")
    assert n.content_type == "application/pidf+xml"
    p = eventpkg.parse_pidf(n.body)
    assert (p.entity, p.basic, p.note) == (bob.aor, "closed", "in a meeting")
    served[0].notify(eventpkg.pidf(bob.aor, "open"))
    assert eventpkg.parse_pidf(alice.expect(NotifyReceived, 5).body).basic == "open"
    served[0].terminate("deactivated")
    end = alice.expect(NotifyReceived, 5)
    assert end.state == "terminated" and end.reason == "deactivated"
    assert end.message.header("Subscription-State") == "terminated;reason=deactivated"
    assert alice.expect(SubscriptionEnded, 5).reason == "deactivated"
    wait_until(lambda: _dialogs(engine) == 0, 5, what="subscription dialogs gone")
    with pytest.raises(Exception):
        sub.refresh()


def test_dialog_package_and_pending_state(pair) -> None:
    alice, bob = pair
    sub = alice.subscribe(bob, "dialog", expires=60)
    req = bob.expect(SubscriptionRequested, 5).subscription
    req.accept("pending", eventpkg.dialog_info(bob.aor, 0, [("d1", "abc", "confirmed")]))
    n = alice.expect(NotifyReceived, 5, event="dialog")
    assert n.state == "pending" and sub.state == "pending"
    version, dialogs = eventpkg.parse_dialog_info(n.body)
    assert version == 0 and dialogs == [("d1", "confirmed")]
    req.notify(state="active")
    sub.wait_active()


def test_unknown_event_package_gets_489_with_allow_events(pair) -> None:
    alice, bob = pair
    sub = alice.subscribe(bob, "weather")
    resp = alice.expect(ResponseReceived, 5, method="SUBSCRIBE")
    assert resp.status == 489 and "presence" in resp.message.header("Allow-Events")
    assert alice.expect(SubscriptionEnded, 5).subscription is sub and sub.state == "terminated"


def test_notify_before_the_2xx_creates_the_dialog(engine: Engine) -> None:
    """A raw notifier sends the NOTIFY first and the 200 after it (RFC 6665 4.1.2.4): the subscriber's engine
    makes the dialog from the NOTIFY, answers it 200 (not 481) and later in-dialog requests use its tags."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)
    alice = Phone("alice", engine=engine, proxy=srv.getsockname())
    try:
        sub = alice.subscribe("sip:mwi@127.0.0.1", "message-summary", expires=60)
        data, addr = srv.recvfrom(65535)
        text = data.decode()
        head = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in text.split("\r\n")[1:] if ":" in ln}
        tag = secrets.token_hex(4)
        port = srv.getsockname()[1]
        body = eventpkg.message_summary(1, 0).decode()
        notify = (f"NOTIFY {alice.contact_uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKn1\r\n"
                  f"From: <sip:mwi@127.0.0.1>;tag={tag}\r\nTo: {head['from']}\r\nCall-ID: {head['call-id']}\r\n"
                  f"CSeq: 1 NOTIFY\r\nContact: <sip:mwi@127.0.0.1:{port}>\r\nEvent: message-summary\r\n"
                  f"Subscription-State: active;expires=60\r\nContent-Type: application/simple-message-summary\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}")
        srv.sendto(notify.encode(), addr)
        answer, _ = srv.recvfrom(65535)
        assert answer.startswith(b"SIP/2.0 200 ")
        n = alice.expect(NotifyReceived, 5)
        assert n.subscription is sub and eventpkg.parse_message_summary(n.body).new == 1
        ok = (f"SIP/2.0 200 OK\r\nVia: {head['via']}\r\nFrom: {head['from']}\r\nTo: {head['to']};tag={tag}\r\n"
              f"Call-ID: {head['call-id']}\r\nCSeq: {head['cseq']}\r\nExpires: 60\r\n"
              f"Contact: <sip:mwi@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n")
        srv.sendto(ok.encode(), addr)
        alice.expect(ResponseReceived, 5, method="SUBSCRIBE", status=200)
        assert _dialogs(engine) == 1
        # the unsubscribe goes inside that dialog: our From tag, the notifier's tag in To
        wait_until(lambda: sub.dialog_id != 0, 5, what="subscription bound to the dialog")
        sub._send(0)
        refresh, _ = srv.recvfrom(65535)
        assert refresh.startswith(f"SUBSCRIBE sip:mwi@127.0.0.1:{port} SIP/2.0".encode())
        assert f";tag={tag}".encode() in refresh and b"Expires: 0" in refresh
    finally:
        alice.close()
        srv.close()


def test_subscription_through_the_pbx_is_refused_by_a_phone_for_refer_package(make_phone) -> None:
    """Out-of-dialog NOTIFY relayed by the reference PBX reaches the phone as an unsolicited NotifyReceived."""
    alice = make_phone("alice")
    bob = make_phone("bob")
    body = eventpkg.message_summary(4, 0)
    alice.send_request("NOTIFY", "bob", [("Event", "message-summary"), ("Subscription-State", "active")],
                       body, "application/simple-message-summary")
    n = bob.expect(NotifyReceived, 5, event="message-summary")
    assert n.subscription is None and eventpkg.parse_message_summary(n.body).new == 4
    assert alice.expect(ResponseReceived, 5, method="NOTIFY").status == 200
    time.sleep(0)


def test_subscriber_refreshes_by_itself_and_notifier_expires_an_abandoned_subscription(pair, engine) -> None:
    alice, bob = pair
    sub = alice.subscribe(bob, "presence", expires=2)
    req = bob.expect(SubscriptionRequested, 5).subscription
    req.accept()
    sub.wait_active()
    first = bob.expect(RequestReceived, 5, method="SUBSCRIBE").message
    # 80 % of 2 s later the subscriber refreshes inside the dialog
    refresh = bob.expect(RequestReceived, 4, method="SUBSCRIBE").message
    assert refresh.call_id == first.call_id and refresh.to.tag and refresh.header("Expires") == "2"
    # then it stops refreshing: the notifier ends the subscription when it expires
    sub.auto_refresh = False
    sub._timer_gen += 1
    end = alice.expect(NotifyReceived, 5, state="terminated")
    assert end.reason == "timeout" and end.subscription is sub
    assert bob.expect(SubscriptionEnded, 5).subscription is req
    wait_until(lambda: _dialogs(engine) == 0, 5, what="subscription dialogs gone")
