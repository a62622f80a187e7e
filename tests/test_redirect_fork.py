"""3xx redirects followed (RFC 3261 8.1.3.4: new INVITE to the Contact, same Call-ID and From tag, CSeq + 1)
and forking (two 2xx with different To tags: both ACKed, the second dialog ended with BYE)."""
from __future__ import annotations

import socket

import pytest

from pysiptest import (
    Answered,
    CallEnded,
    Engine,
    ForkDropped,
    IncomingRequest,
    Phone,
    Redirected,
    ResponseReceived,
)
from pysiptest.sut._proc import wait_until


@pytest.fixture
def trio(engine: Engine):
    """carol; bob, a redirect server; alice, who uses bob as her proxy."""
    carol = Phone("carol", engine=engine)
    bob = Phone("bob", engine=engine)
    alice = Phone("alice", engine=engine, proxy=(bob.host, bob.port))
    yield alice, bob, carol
    for p in (alice, bob, carol):
        p.close()


def test_302_is_followed_to_the_best_contact(trio) -> None:
    alice, bob, carol = trio
    bob.request_handlers["INVITE"] = lambda r: r.respond(302, None, [
        ("Contact", f"<sip:nobody@127.0.0.1:9>;q=0.1, <{carol.contact_uri}>;q=0.9")])
    out = alice.call("carol")
    first = alice.expect(ResponseReceived, 5, method="INVITE", status=302)
    red = alice.expect(Redirected, 5, call=out)
    assert (red.status, red.target) == (302, carol.contact_uri)
    inc = carol.wait_for_call(5)
    invite = inc.request
    assert invite.uri == carol.contact_uri
    assert invite.call_id == out.call_id == first.message.call_id
    assert invite.from_.tag == first.message.from_.tag
    assert invite.cseq.number == first.message.cseq.number + 1
    assert invite.to.uri == first.message.to.uri and invite.to.tag is None
    inc.answer()
    alice.expect(Answered, 5, call=out)
    out.hangup()
    carol.expect(CallEnded, 5, call=inc)


def test_redirect_loop_stops_and_the_call_fails_with_the_3xx(trio) -> None:
    alice, bob, _ = trio
    seen: list[IncomingRequest] = []

    def redirect_to_self(r: IncomingRequest) -> None:
        seen.append(r)
        r.respond(301, None, [("Contact", f"<sip:again{len(seen)}@{bob.host}:{bob.port}>")])
    bob.request_handlers["INVITE"] = redirect_to_self
    out = alice.call("carol")
    ended = alice.expect(CallEnded, 5, call=out)
    assert ended.status == 301
    assert len(seen) == alice.max_redirects + 1  # the first INVITE and max_redirects redirections
    cseqs = [r.message.cseq.number for r in seen]
    assert cseqs == list(range(cseqs[0], cseqs[0] + len(seen)))


def _headers(data: bytes) -> dict[str, str]:
    lines = data.decode().split("\r\n\r\n")[0].split("\r\n")
    return {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip() for ln in lines[1:] if ":" in ln}


def test_two_2xx_from_forks_are_both_acked_and_the_second_gets_bye(engine: Engine) -> None:
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    uas.settimeout(5)
    port = uas.getsockname()[1]
    alice = Phone("alice", engine=engine, proxy=("127.0.0.1", port))
    try:
        out = alice.call("bob")
        data, addr = uas.recvfrom(65535)
        assert data.startswith(b"INVITE ")
        h = _headers(data)
        sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {port + 1} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

        def ok(tag: str) -> bytes:
            return (f"SIP/2.0 200 OK\r\nVia: {h['via']}\r\nFrom: {h['from']}\r\nTo: {h['to']};tag={tag}\r\n"
                    f"Call-ID: {h['call-id']}\r\nCSeq: {h['cseq']}\r\nContact: <sip:{tag}@127.0.0.1:{port}>\r\n"
                    f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()
        uas.sendto(ok("forkA"), addr)
        uas.sendto(ok("forkB"), addr)
        got = []
        while len(got) < 3:
            msg, _ = uas.recvfrom(65535)
            got.append((msg.split(b" ", 1)[0].decode(), _headers(msg)))
        acks = [g for g in got if g[0] == "ACK"]
        byes = [g for g in got if g[0] == "BYE"]
        assert sorted(a[1]["to"].rsplit("tag=", 1)[1] for a in acks) == ["forkA", "forkB"]
        assert len(byes) == 1 and byes[0][1]["to"].endswith("tag=forkB")
        bye = byes[0][1]
        uas.sendto((f"SIP/2.0 200 OK\r\nVia: {bye['via']}\r\nFrom: {bye['from']}\r\nTo: {bye['to']}\r\n"
                    f"Call-ID: {bye['call-id']}\r\nCSeq: {bye['cseq']}\r\nContent-Length: 0\r\n\r\n").encode(), addr)
        alice.expect(Answered, 5, call=out)
        assert alice.expect(ForkDropped, 5, call=out).to_tag == "forkB"
        assert out.state == "confirmed"
        assert engine.core.dialog_info(out.dialog_id)["remote_tag"] == "forkA"
        wait_until(lambda: engine.core.counts()["dialogs"] == 1, 5, what="the dropped fork's dialog gone")
        out.hangup()
        msg, _ = uas.recvfrom(65535)
        assert msg.startswith(b"BYE sip:forkA@")
    finally:
        alice.close()
        uas.close()
