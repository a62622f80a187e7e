"""The SIP message API (pysiptest.parse, Message, typed views, builders) and its conformance to the shared
corpus: every RFC 4475 torture message and every message of the call flows in flows/*/*.yaml.

The corpus is found at ../shared/corpus or $PYSIPTEST_CORPUS (see its MANIFEST.md); corpus tests skip
without it.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

import pysiptest
from pysiptest import CSeq, Message, NameAddr, ParseError, Via, _core, parse
from sipcorpus import corpus_dir, flow_messages, rfc4475_verdicts

CORPUS = corpus_dir()
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="shared corpus not found (set PYSIPTEST_CORPUS)")
VERDICTS = rfc4475_verdicts(CORPUS) if CORPUS else {}


def _rfc4475(name: str) -> bytes:
    return Path(VERDICTS[name + ".dat"]["path"]).read_bytes()


def _files(category: str) -> list[str]:
    return sorted(Path(n).stem for n, v in VERDICTS.items() if Path(v["path"]).parent.name == category)


SIPP_INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001\r\n"
    b"To: service <sip:service@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-4242@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: sip:sipp@127.0.0.1:5061\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: Performance Test\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n"
)

KAMAILIO_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1a2b.0;rport=5060;received=192.0.2.7, "
    b"SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKxyz\r\n"
    b"v: SIP/2.0/UDP 10.0.0.9:5080;rport;branch=z9hG4bKlast\r\n"
    b"Record-Route: <sip:10.0.0.1;lr;r2=on>, <sip:10.0.0.2;transport=tcp;lr;r2=on>\r\n"
    b"Record-Route: <sip:proxy.example.com;lr>\r\n"
    b'From: "Alice \\"A\\" Smith" <sip:alice@example.com>;tag=abc\r\n'
    b"To: <sip:bob@example.com>;tag=as1f2e3d\r\n"
    b"Call-ID: kam-42@10.0.0.9\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
    b"l: 0\r\n"
    b"\r\n"
)


# ---- RFC 4475 valid messages ----

# name -> (method or status, Request-URI, Call-ID, CSeq, top Via branch, body length)
VALID_EXPECTED = {
    "wsinv": ("INVITE", "sip:vivekg@chair-dnrc.example.com;unknownparam", "wsinv.ndaksdj@192.0.2.1",
              (9, "INVITE"), "390skdjuw", 150),
    "intmeth": ("!interesting-Method0123456789_*+`.%indeed'~",
                "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
                "(doesn't-it)@example.com",
                "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
                (139122385, "!interesting-Method0123456789_*+`.%indeed'~"), "z9hG4bK-.!%66*_+`'~", 0),
    "esc01": ("INVITE", "sip:sips%3Auser%40example.com@example.net", "esc01.239409asdfakjkn23onasd0-3234",
              (234234, "INVITE"), "z9hG4bKkdjuw", 150),
    "escnull": ("REGISTER", "sip:example.com", "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
                (14398234, "REGISTER"), "z9hG4bKkdjuw", 0),
    "esc02": ("RE%47IST%45R", "sip:registrar.example.com", "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
              (29344, "RE%47IST%45R"), "z9hG4bK209%fzsnel234", 0),
    "lwsdisp": ("OPTIONS", "sip:user@example.com", "lwsdisp.1234abcd@funky.example.com", (60, "OPTIONS"),
                "z9hG4bKkdjuw", 0),
    "longreq": ("INVITE", "sip:user@example.com",
                "longreq.one" + "really" * 20 + "longcallid", (3882340, "INVITE"), None, 150),
    "dblreq": ("REGISTER", "sip:example.com", "dblreq.0ha0isndaksdj99sdfafnl3lk233412", (8, "REGISTER"),
               "z9hG4bKkdjuw23492", 0),
    "semiuri": ("OPTIONS", "sip:user;par=u%40example.net@example.com", "semiuri.0ha0isndaksdj", (8, "OPTIONS"),
                "z9hG4bKkdjuw", 0),
    "transports": ("OPTIONS", "sip:user@example.com", "transports.kijh4akdnaqjkwendsasfdj", (60, "OPTIONS"),
                   "z9hG4bKkdjuw", 0),
    "mpart01": ("MESSAGE", "sip:kumiko@example.org", "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
                (1, "MESSAGE"), "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-", 553),
    "unreason": (200, None, "unreason.1234ksdfak3j2erwedfsASdf", (35, "INVITE"), "z9hG4bK1324923", 154),
    "noreason": (100, None, "noreason.asndj203insdf99223ndf", (35, "INVITE"), "z9hG4bK2398ndaoe", 0),
}



@needs_corpus
def test_every_valid_file_has_expectations() -> None:
    assert set(_files("valid")) == set(VALID_EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(VALID_EXPECTED))
def test_rfc4475_valid_message_parses_with_rfc_values(name: str) -> None:
    start, uri, call_id, cseq, branch, body_len = VALID_EXPECTED[name]
    data = _rfc4475(name)
    msg = parse(data)
    assert isinstance(msg, Message)
    if isinstance(start, int):
        assert not msg.is_request and msg.status == start
        assert msg.method is None and msg.uri is None
    else:
        assert msg.is_request and msg.method == start and msg.uri == uri
        assert msg.status is None and msg.reason is None
        assert pysiptest.parse_uri(msg.uri)["scheme"] == "sip"
    assert msg.call_id == call_id
    assert msg.cseq == cseq and msg.cseq.number == cseq[0] and msg.cseq.method == cseq[1]
    assert msg.via[0].branch == branch
    assert len(msg.body) == body_len and msg.content_length == body_len
    assert msg.from_ is not None and msg.from_.uri and msg.to is not None and msg.to.uri
    assert all("z9hG4bK magic cookie" in w for w in msg.warnings), msg.warnings
    again = parse(bytes(msg))  # the serializer round-trips what the parser accepted
    assert bytes(again) == bytes(msg) and list(again.headers) == list(msg.headers) and again.body == msg.body


@needs_corpus
def test_wsinv_folding_lws_and_compact_forms() -> None:
    msg = parse(_rfc4475("wsinv"))
    assert msg.headers["content-length"] == "150" and msg.headers["l"] == "150"
    assert msg.header("Subject") == "" and msg.header("s") == ""
    assert [v.transport for v in msg.via] == ["UDP", "TCP", "UDP"]
    assert msg.via[1].host == "spindle.example.com" and msg.via[2].branch == "z9hG4bK30239"
    assert len(msg.via) == 3 and len(msg.headers_all("v")) == 3
    assert msg.from_.display == 'J Rosenberg \\"' and msg.from_.tag == "98asjd8"
    assert msg.to.tag == "1918181833n"
    assert msg.contact.display == 'Quoted string ""'
    assert msg.contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert msg.contact.param("Q") == "0.33"
    assert msg.header("NewFangledHeader") == "newfangled value   continued newfangled value"
    assert msg.headers["UnknownHeaderWithUnusualValue"] == ";;,,;;,;"


@needs_corpus
def test_dblreq_trailing_octets_are_not_part_of_the_message() -> None:
    data = _rfc4475("dblreq")
    msg = parse(data)
    assert msg.method == "REGISTER" and bytes(msg).endswith(b"\r\n\r\n")
    assert len(bytes(msg)) < len(data) and b"INVITE" not in bytes(msg)


@needs_corpus
def test_intmeth_keeps_control_bytes_in_display_name() -> None:
    msg = parse(_rfc4475("intmeth"))
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    value = msg.header("extensionHeader-!.%*+_`'~")
    assert value.encode("utf-8", "surrogateescape") == b"\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb"


@needs_corpus
def test_esc_and_semiuri_uris_keep_escapes() -> None:
    assert parse(_rfc4475("esc01")).to.uri == "sip:%75se%72@example.com"
    assert pysiptest.parse_uri(parse(_rfc4475("semiuri")).uri)["user"] == "user;par=u%40example.net"
    assert parse(_rfc4475("escnull")).to.uri == "sip:null-%00-null@example.com"
    assert parse(_rfc4475("unreason")).reason.encode("utf-8", "surrogateescape").startswith(b"= 2**3 * 5**2 ")
    assert parse(_rfc4475("noreason")).reason == ""


@needs_corpus
def test_longreq_counts_vias_across_headers_and_compact_forms() -> None:
    msg = parse(_rfc4475("longreq"))
    assert len(msg.via) == 34 and len(msg.headers_all("v")) == 34
    assert msg.via[33].received == "192.0.2.5" and msg.via[0].host == "sip33.example.com"


@needs_corpus
def test_mpart01_body_is_exact_bytes() -> None:
    data = _rfc4475("mpart01")
    msg = parse(data)
    assert msg.body == data[-553:] and msg.via[0].rport is True
    assert msg.header("Content-Type").startswith("multipart/mixed;boundary=")


@needs_corpus
def test_transports_unknown_transport_types() -> None:
    msg = parse(_rfc4475("transports"))
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


# ---- RFC 4475 invalid messages: rejected with what and where, or accepted and marked ----

INVALID_REASON = {
    "badinv01": "Via has an empty parameter",
    "clerr": "Content-Length 9999 exceeds",
    "ncl": "negative",
    "scalar02": "2**31",
    "scalarlg": "2**31",
    "quotbal": "unterminated quoted string",
    "ltgtruri": "Request-URI: URI does not start with a scheme",
    "lwsruri": "Request-URI contains whitespace",
    "lwsstart": "Request-URI contains whitespace",
    "trws": "Request-URI contains whitespace",
    "escruri": "Request-URI must not carry '?' headers",
    "regbadct": "Contact: a URI with '?' headers must be enclosed in <>",
    "badaspec": "To: whitespace inside <>",
    "baddn": "From: unquoted display name has a non-token character 0x2c",
    "badvers": 'unsupported SIP version "SIP/7.0"',
    "mismatch01": 'CSeq method "INVITE" does not match the request method "OPTIONS"',
    "mismatch02": 'CSeq method "INVITE" does not match the request method "NEWMETHOD"',
    "bigcode": "not 3 digits",
}
# RFC 4475 3.1.2.12: an element that does not use Date may ignore its bad time zone
MARKED = {"baddate": "Date is not in GMT"}
# where each rejection points: the text found at the error offset
INVALID_AT = {"mismatch01": b"INVITE", "badvers": b"SIP/7.0", "escruri": b"?Route=", "ltgtruri": b"<sip:",
              "baddn": b", Alexander", "quotbal": b'"Mr. J. User'}


@needs_corpus
def test_every_invalid_file_has_a_verdict() -> None:
    assert set(_files("invalid")) == set(INVALID_REASON) | set(MARKED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(INVALID_REASON))
def test_rfc4475_invalid_message_is_rejected_with_what_and_where(name: str) -> None:
    data = _rfc4475(name)
    with pytest.raises(ParseError) as ei:
        parse(data)
    err = ei.value
    assert INVALID_REASON[name] in err.reason, err.reason
    assert isinstance(err, ValueError) and f"(at byte {err.offset})" in str(err)
    assert 0 <= err.offset <= len(data)
    if name in INVALID_AT:
        assert data[err.offset:].startswith(INVALID_AT[name]), data[err.offset:err.offset + 20]


@needs_corpus
@pytest.mark.parametrize("name", sorted(MARKED))
def test_rfc4475_tolerated_message_is_accepted_and_marked(name: str) -> None:
    data = _rfc4475(name)
    msg = parse(data)
    assert len(msg.warnings) == 1 and MARKED[name] in msg.warnings[0]
    offset = int(msg.warnings[0].rsplit("at byte ", 1)[1].rstrip(")"))
    assert data[offset:].startswith(b"Fri, 01 Jan 2010 16:00:00 EST")


APP_LAYER_REJECTED = {
    "insuf": "mandatory header From is missing",
    "multi01": "CSeq appears more than once",
    "mcl01": "Content-Length appears twice with different values",
}


@needs_corpus
@pytest.mark.parametrize("name", _files("application-layer") + _files("transaction-layer") + _files("backward-compat"))
def test_rfc4475_other_sections(name: str) -> None:
    data = _rfc4475(name)
    if name in APP_LAYER_REJECTED:
        with pytest.raises(ParseError, match=APP_LAYER_REJECTED[name]):
            parse(data)
        return
    msg = parse(data)  # well-formed: the decision belongs to the application, not the parser
    assert msg.cseq is not None and msg.call_id and msg.via
    assert parse(bytes(msg)).headers == msg.headers or list(parse(bytes(msg)).headers) == list(msg.headers)


@needs_corpus
def test_rfc4475_application_layer_values() -> None:
    assert parse(_rfc4475("unkscm")).uri == "nobodyKnowsThisScheme:totallyopaquecontent"
    assert pysiptest.parse_uri(parse(_rfc4475("novelsc")).uri)["scheme"] == "soap.beep"
    assert parse(_rfc4475("unksm2")).to.uri.startswith("isbn:")
    bext = parse(_rfc4475("bext01"))
    assert bext.headers_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert bext.headers_all("Proxy-Require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert parse(_rfc4475("invut")).header("Content-Type") == "application/unknownformat"
    assert parse(_rfc4475("regaut01")).header("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert [v.host for v in parse(_rfc4475("bcast")).via][-1] == "255.255.255.255"
    assert parse(_rfc4475("zeromf")).header("Max-Forwards") == "0"
    c1, c2 = parse(_rfc4475("cparam01")).contact, parse(_rfc4475("cparam02")).contact
    assert c1.param("unknownparam") is None and ("unknownparam", None) in c1.params and "unknownparam" not in c1.uri
    assert c2.uri.endswith(";unknownparam") and c2.params == ()
    assert "?Route=" in parse(_rfc4475("regescrt")).contact.uri
    bb = parse(_rfc4475("badbranch"))
    assert bb.via[0].branch == "z9hG4bK" and bb.warnings == []
    inv = parse(_rfc4475("inv2543"))
    assert inv.via[0].branch is None and any("z9hG4bK" in w for w in inv.warnings)


@needs_corpus
def test_unreferenced_test_dat_is_rejected() -> None:
    with pytest.raises(ParseError, match="start line"):
        parse(_rfc4475("test"))


# ---- call flows (RFC 3665, 3515, 3327, 4916, 5626) ----

FLOWS = list(flow_messages(CORPUS)) if CORPUS else []
# RFC 5626's examples print only the headers the section is about: no Via
NO_VIA = "rfc5626/"


@needs_corpus
def test_flows_are_all_found() -> None:
    assert len(FLOWS) == 253


@needs_corpus
@pytest.mark.parametrize("mid,data", FLOWS, ids=[m for m, _ in FLOWS])
def test_flow_message_parses(mid: str, data: bytes) -> None:
    if mid.startswith(NO_VIA) and b"\nVia:" not in data:
        with pytest.raises(ParseError, match="mandatory header Via is missing"):
            parse(data)
        msg = parse(data, strict=False)
    else:
        msg = parse(data)
        assert msg.via[0].branch.startswith("z9hG4bK")
    assert msg.cseq is not None and msg.call_id
    assert msg.from_.tag, "every flow message has a From tag"
    if msg.content_length is not None:
        assert len(msg.body) == msg.content_length == int(msg.header("Content-Length"))
    if not msg.is_request:
        assert 100 <= msg.status <= 699
    assert bytes(parse(bytes(msg), strict=False)) == bytes(msg)


# ---- the API ----


def test_sipp_invite() -> None:
    msg = parse(SIPP_INVITE)
    assert type(msg) is Message and isinstance(msg, _core.Message)
    assert msg.is_request and msg.method == "INVITE" and msg.uri == "sip:service@127.0.0.1:5060"
    assert msg.call_id == "1-4242@127.0.0.1" and msg.body == b"v=0\r\n" and msg.content_length == 5
    assert msg.cseq == CSeq(1, "INVITE") == (1, "INVITE")
    assert msg.via == (Via("UDP", "127.0.0.1", 5061, "z9hG4bK-4242-1-0", None, True,
                           (("branch", "z9hG4bK-4242-1-0"), ("rport", None))),)
    assert msg.from_ == NameAddr("sipp", "sip:sipp@127.0.0.1:5061", "4242SIPpTag001", (("tag", "4242SIPpTag001"),))
    assert msg.to.tag is None and msg.contact.uri == "sip:sipp@127.0.0.1:5061"
    assert msg.headers[0] == ("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport")
    assert len(msg.headers) == 10 and bytes(msg) == SIPP_INVITE
    assert repr(msg) == "<Message INVITE sip:service@127.0.0.1:5060>"
    assert msg.via is msg.via and msg.cseq is msg.cseq, "views are parsed once and cached"


def test_kamailio_response() -> None:
    msg = parse(KAMAILIO_200)
    assert not msg.is_request and msg.status == 200 and msg.reason == "OK"
    assert msg.content_length == 0 and msg.body == b""
    assert msg.via[0].rport == 5060 and msg.via[0].received == "192.0.2.7"
    assert msg.via[1].host == "2001:db8::1" and msg.via[1].port == 5070
    assert msg.via[2].rport is True and len(msg.via) == 3
    assert msg.headers_all("Record-Route") == [
        "<sip:10.0.0.1;lr;r2=on>", "<sip:10.0.0.2;transport=tcp;lr;r2=on>", "<sip:proxy.example.com;lr>"]
    assert msg.from_.display == 'Alice "A" Smith' and msg.to.tag == "as1f2e3d"
    assert msg.header("X-Missing") is None and msg.headers_all("X-Missing") == [] and msg.contact is None
    assert repr(msg) == "<Message 200 OK>"


def test_headers_is_an_ordered_case_insensitive_multimap_with_compact_names() -> None:
    msg = parse(b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\n"
                b"t: <sip:a@b>\r\ni: x\r\nCSeq: 1 OPTIONS\r\nX-Foo: 1\r\nx-foo: 2\r\nVia: SIP/2.0/TCP g\r\nl: 0\r\n\r\n")
    h = msg.headers
    assert h["Via"] == h["v"] == h["VIA"] == "SIP/2.0/UDP h;branch=z9hG4bK1"
    assert h.getall("via") == ["SIP/2.0/UDP h;branch=z9hG4bK1", "SIP/2.0/TCP g"]
    assert h.getall("X-FOO") == ["1", "2"] and h.get("Nope") is None and "call-id" in h and "i" in h
    assert h["Content-Length"] == "0" and msg.header("content-length") == "0"
    assert h.names()[:2] == ["v", "f"] and h[1] == ("f", "<sip:a@b>;tag=1") and len(h) == 9
    with pytest.raises(KeyError):
        h["Nope"]
    assert [n for n, _ in h][-1] == "l"
    assert msg.header("CALL-ID") == "x" and msg.call_id == "x"


def test_list_split_never_inside_quotes_or_angles() -> None:
    msg = parse(b'OPTIONS sip:a@b SIP/2.0\r\nContact: "Doe, J" <sip:j@x;a=1,2>;q=0.5, <sip:k@y>\r\n\r\n',
                strict=False)
    assert msg.headers_all("m") == ['"Doe, J" <sip:j@x;a=1,2>;q=0.5', "<sip:k@y>"]
    assert [c.uri for c in msg.contacts] == ["sip:j@x;a=1,2", "sip:k@y"] and msg.contact.display == "Doe, J"


def test_request_builder_and_round_trip() -> None:
    req = Message.request("INVITE", "sip:bob@example.com", headers=[
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc"), ("From", '"Al" <sip:al@example.com>;tag=f1'),
        ("To", "<sip:bob@example.com>"), ("Contact", "<sip:al@192.0.2.1>"), ("Route", ["<sip:p1;lr>", "<sip:p2;lr>"]),
        ("Content-Type", "application/sdp")], body="v=0\r\n")
    assert type(req) is Message and req.method == "INVITE" and req.cseq == (1, "INVITE")
    assert req.header("Max-Forwards") == "70" and req.call_id and req.content_length == 5 and req.body == b"v=0\r\n"
    assert req.headers_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert parse(bytes(req)) == req
    with pytest.raises(ParseError, match="mandatory header Via"):
        Message.request("OPTIONS", "sip:x@y", headers={"From": "<sip:a@b>;tag=1", "To": "<sip:x@y>"})
    for bad in ({"X\r\nInjected": "1"}, {"X": "a\r\nInjected: 1"}):
        with pytest.raises(ValueError):
            Message.request("OPTIONS", "sip:x@y", headers=bad)
    with pytest.raises(ValueError):
        Message.request("OPTIONS", "sip:x@y z")


def test_response_follows_rfc3261_8_2_6() -> None:
    req = parse(SIPP_INVITE.replace(b"Subject:", b"Timestamp: 54\r\nSubject:"))
    trying = req.response(100)
    assert trying.status == 100 and trying.reason == "Trying" and trying.to.tag is None
    assert trying.header("Timestamp") == "54", "8.2.6.1: 100 copies Timestamp"
    ok = req.response(200, "Fine", headers={"Contact": "<sip:b@h>"}, to_tag="t9")
    assert ok.status == 200 and ok.reason == "Fine" and ok.to.tag == "t9" and ok.to.uri == req.to.uri
    assert ok.via == req.via and ok.from_ == req.from_ and ok.call_id == req.call_id and ok.cseq == req.cseq
    assert ok.header("Timestamp") is None and ok.header("Subject") is None and ok.contact.uri == "sip:b@h"
    assert req.response(486).to.tag, "a tag is added when the request had none"
    tagged = parse(bytes(ok).replace(b"SIP/2.0 200 Fine", b"BYE sip:b@h SIP/2.0").replace(b"INVITE", b"BYE"))
    assert tagged.response(200).to.tag == "t9", "an existing To tag is kept"
    with pytest.raises(ValueError):
        ok.response(200)
    with pytest.raises(ValueError):
        req.response(700)


def test_parse_uri_forms() -> None:
    assert pysiptest.parse_uri("sip:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=hi&x") == {
        "scheme": "sip", "user": "alice", "password": "pw", "host": "2001:db8::1", "port": 5061,
        "params": {"transport": "tls", "lr": None}, "headers": {"subject": "hi", "x": None}}
    tel = pysiptest.parse_uri("tel:+1-212-555-1212;phone-context=example.com")
    assert tel["scheme"] == "tel" and tel["user"] == "+1-212-555-1212" and tel["host"] is None
    for bad in ("", "nocolon", "sip:", "sip:h:0", "sip:h:65536", "sip:[::1", "sip:a b@h", "<sip:a@b>"):
        with pytest.raises(ParseError):
            pysiptest.parse_uri(bad)


def test_limits_are_configurable() -> None:
    with pytest.raises(ParseError, match="exceeds the limit"):
        parse(SIPP_INVITE, max_size=100)
    with pytest.raises(ParseError, match="more than 3 header"):
        parse(SIPP_INVITE, max_headers=3)
    assert parse(SIPP_INVITE, max_size=len(SIPP_INVITE), max_headers=10).method == "INVITE"
    with pytest.raises(ParseError):
        parse(b"MESSAGE sip:a@b SIP/2.0\r\n\r\n" + b"x" * 70000)


def test_argument_errors() -> None:
    with pytest.raises(TypeError):
        parse("INVITE sip:a@b SIP/2.0\r\n\r\n")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse(SIPP_INVITE, max_size=-1)
    msg = parse(SIPP_INVITE)
    with pytest.raises(TypeError):
        msg.header(b"Via")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        msg.header("")
    with pytest.raises(TypeError):
        Message()
    with pytest.raises(AttributeError):
        msg.method = "BYE"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        msg.via = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        msg.via[0].branch = "x"  # type: ignore[misc]
    assert issubclass(ParseError, ValueError)


def test_bytearray_and_memoryview_accepted() -> None:
    assert parse(bytearray(SIPP_INVITE)).call_id == "1-4242@127.0.0.1"
    assert parse(memoryview(KAMAILIO_200)).status == 200


@pytest.mark.parametrize("data", [SIPP_INVITE, KAMAILIO_200])
def test_every_truncation_raises_parse_error_or_parses(data: bytes) -> None:
    for n in range(len(data)):
        try:
            msg = parse(data[:n])
        except ParseError as e:
            assert e.reason and 0 <= e.offset <= n
            continue
        assert bytes(msg) == data[:n]


def test_truncated_body_reports_content_length() -> None:
    with pytest.raises(ParseError, match="Content-Length 5 exceeds the 2 body bytes present"):
        parse(SIPP_INVITE[:-3])


def test_garbage_raises_parse_error() -> None:
    rng = random.Random(4475)
    for data in (b"", b"\r\n", b"\x00" * 50, b"hello world\r\n\r\n", b"SIP/2.0 999 X\r\n\r\n",
                 b"INVITE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n"):
        with pytest.raises(ParseError):
            parse(data)
    for _ in range(2000):
        n = rng.randrange(0, 300)
        prefix = rng.choice([b"", b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 180 Ringing\r\n"])
        data = prefix + bytes(rng.choice(b"\r\n :;,<>\"\\@[]/Vv=0123456789\x00\xff") for _ in range(n))
        for strict in (True, False):
            try:
                msg = parse(data, strict=strict)
            except ParseError:
                continue
            for view in ("cseq", "via", "from_", "to", "contact", "headers"):
                try:
                    getattr(msg, view)
                except ParseError:
                    pass


# ---- RFC 4028 section 13 header blocks and RFC 3262 header examples ----


@needs_corpus
def test_rfc4028_session_timer_requests_parse_with_their_intervals() -> None:
    import json
    data = json.loads((CORPUS / "flows" / "rfc4028" / "section13-excerpts.json").read_text())
    msgs = {k: v for k, v in data["messages"].items() if isinstance(v, str) and v.startswith("INVITE ")}
    assert {"msg1_original_and_corrected", "msg4_original", "msg4_corrected_erratum_1681"} <= set(msgs)
    parsed = {}
    for key, block in msgs.items():
        body = b"x" * 142 if "Content-Length: 142" in block else b""  # the erratum omits the SDP bodies
        msg = parse(block.encode() + b"\r\n" + body)
        assert msg.cseq.method == "INVITE" and msg.header("Supported") == "timer"
        parsed[key] = msg
    assert parsed["msg1_original_and_corrected"].header("Session-Expires") == "50"
    assert parsed["msg4_original"].header("Min-SE") == "3600"
    # erratum 1681: the retry after a 422 to an initial INVITE uses a new From tag
    assert parsed["msg4_original"].from_.tag == parsed["msg1_original_and_corrected"].from_.tag
    assert parsed["msg4_corrected_erratum_1681"].from_.tag != parsed["msg4_original"].from_.tag
    assert parsed["msg4_corrected_erratum_1681"].cseq.number == parsed["msg1_original_and_corrected"].cseq.number + 1


@needs_corpus
def test_rfc3262_rseq_and_rack_headers() -> None:
    import json
    ex = json.loads((CORPUS / "flows" / "rfc3262" / "rfc3262-examples.json").read_text())["header_examples"]
    prov = parse(b"SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
                 b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nRequire: 100rel\r\n"
                 + ex["RSeq"].encode() + b"\r\nContent-Length: 0\r\n\r\n")
    assert prov.header("rseq") == "988789"
    prack = Message.request("PRACK", "sip:c@d", headers=[
        ("Via", "SIP/2.0/UDP h;branch=z9hG4bK2"), ("From", "<sip:a@b>;tag=1"), ("To", "<sip:c@d>;tag=2"),
        ("Call-ID", "x"), ("CSeq", "2 PRACK"), tuple(ex["RAck"].split(": ", 1))])
    assert prack.header("RAck").split() == ["776656", "1", "INVITE"]


def test_reason_phrases_come_from_the_core_table_and_reach_responses() -> None:
    from pysiptest.message import reason_phrase

    assert reason_phrase(420) == "Bad Extension"
    assert reason_phrase(423) == "Interval Too Brief"
    assert reason_phrase(498) == "Client Error"  # unknown: its class
    with pytest.raises(ValueError):
        reason_phrase(99)
    req = Message.request("INVITE", "sip:bob@127.0.0.1", headers=[
        ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr1"), ("From", "<sip:a@127.0.0.1>;tag=1"),
        ("To", "<sip:bob@127.0.0.1>")])
    assert bytes(req.response(422)).startswith(b"SIP/2.0 422 Session Interval Too Small\r\n")
