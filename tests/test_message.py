"""The SIP message parser as Python sees it: pysiptest._core.parse, Message and parse_uri.

The RFC 4475 torture messages come from the shared corpus (see its MANIFEST.md,
section 1); the tests skip when the corpus is not present.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pysiptest import _core

ParseError = _core.ParseError


def _corpus_dir() -> Path | None:
    here = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    if (here / "rfc4475").is_dir():
        return here
    env = os.environ.get("PYSIPTEST_CORPUS")
    if env and (Path(env) / "rfc4475").is_dir():
        return Path(env)
    return None


CORPUS = _corpus_dir()
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="shared corpus not found (set PYSIPTEST_CORPUS)")


def _rfc4475(name: str) -> bytes:
    assert CORPUS is not None
    matches = list((CORPUS / "rfc4475").glob(f"*/{name}.dat"))
    assert len(matches) == 1, name
    return matches[0].read_bytes()


def _files(category: str) -> list[str]:
    if CORPUS is None:
        return []
    return sorted(p.stem for p in (CORPUS / "rfc4475" / category).glob("*.dat"))


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
    m = _rfc4475(name)
    msg = _core.parse(m)
    if isinstance(start, int):
        assert not msg.is_request
        assert msg.status == start
        assert msg.method is None and msg.uri is None
    else:
        assert msg.is_request
        assert msg.method == start
        assert msg.uri == uri
        assert msg.status is None and msg.reason is None
        assert _core.parse_uri(msg.uri)["scheme"] == "sip"
    assert msg.call_id == call_id
    assert msg.cseq() == cseq
    top = msg.via()
    assert top is not None
    assert top["branch"] == branch
    assert len(msg.body) == body_len
    assert msg.content_length == body_len
    for hname in ("From", "To"):
        if msg.header(hname) is not None:
            na = msg.nameaddr(hname)
            assert na is not None and na["uri"]


@needs_corpus
def test_wsinv_folding_and_lws() -> None:
    msg = _core.parse(_rfc4475("wsinv"))
    assert msg.header("content-length") == "150"
    assert msg.header("Subject") == ""
    assert msg.header("s") == ""
    vias = msg.headers_all("Via")
    assert len(vias) == 3
    assert [msg.via(i)["transport"] for i in range(3)] == ["UDP", "TCP", "UDP"]
    assert msg.via(1)["host"] == "spindle.example.com"
    assert msg.via(2)["branch"] == "z9hG4bK30239"
    assert msg.via(3) is None
    frm = msg.nameaddr("From")
    assert frm["display"] == 'J Rosenberg \\"'
    assert frm["tag"] == "98asjd8"
    assert msg.nameaddr("To")["tag"] == "1918181833n"
    contact = msg.nameaddr("Contact")
    assert contact["display"] == 'Quoted string ""'
    assert contact["params"] == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.header("NewFangledHeader") == "newfangled value   continued newfangled value"


@needs_corpus
def test_dblreq_trailing_octets_are_not_part_of_the_message() -> None:
    data = _rfc4475("dblreq")
    msg = _core.parse(data)
    assert msg.method == "REGISTER"
    assert bytes(msg).endswith(b"\r\n\r\n")
    assert len(bytes(msg)) < len(data)
    assert b"INVITE" not in bytes(msg)


@needs_corpus
def test_intmeth_keeps_control_bytes_in_display_name() -> None:
    msg = _core.parse(_rfc4475("intmeth"))
    to = msg.nameaddr("To")
    assert to["display"] == "BEL:\x07 NUL:\x00 DEL:\x7f"
    value = msg.header("extensionHeader-!.%*+_`'~")
    assert value.encode("utf-8", "surrogateescape") == b"\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb"


@needs_corpus
def test_longreq_counts_vias_across_headers_and_compact_forms() -> None:
    msg = _core.parse(_rfc4475("longreq"))
    vias = msg.headers_all("v")
    assert len(vias) == 34
    assert msg.via(33)["received"] == "192.0.2.5"
    assert msg.via(0)["host"] == "sip33.example.com"


@needs_corpus
def test_mpart01_body_is_exact_bytes() -> None:
    data = _rfc4475("mpart01")
    msg = _core.parse(data)
    assert msg.body == data[-553:]
    assert msg.via()["rport"] is True


# ---- RFC 4475 invalid messages ----

REJECTED_BY_PARSE = {
    "clerr": "Content-Length 9999 exceeds",
    "ncl": "negative",
    "bigcode": "not 3 digits",
    "lwsruri": "Request-URI contains whitespace",
    "lwsstart": "Request-URI contains whitespace",
    "trws": "Request-URI contains whitespace",
}


@needs_corpus
@pytest.mark.parametrize("name", _files("invalid"))
def test_rfc4475_invalid_message_is_rejected_or_parsed_without_crash(name: str) -> None:
    data = _rfc4475(name)
    if name in REJECTED_BY_PARSE:
        with pytest.raises(ParseError) as ei:
            _core.parse(data)
        assert REJECTED_BY_PARSE[name] in ei.value.reason
        assert isinstance(ei.value.offset, int) and 0 <= ei.value.offset <= len(data)
        return
    msg = _core.parse(data)
    # the typed views either work or raise ParseError, never anything else
    for view in (msg.cseq, msg.via, lambda: msg.nameaddr("From"), lambda: msg.nameaddr("To"),
                 lambda: msg.nameaddr("Contact")):
        try:
            view()
        except ParseError:
            pass


@needs_corpus
def test_scalar02_cseq_overflow_raises() -> None:
    msg = _core.parse(_rfc4475("scalar02"))
    with pytest.raises(ParseError, match=r"2\*\*31"):
        msg.cseq()


@needs_corpus
def test_scalarlg_response_cseq_overflow_raises() -> None:
    msg = _core.parse(_rfc4475("scalarlg"))
    with pytest.raises(ParseError):
        msg.cseq()


@needs_corpus
def test_quotbal_unterminated_display_name_raises() -> None:
    msg = _core.parse(_rfc4475("quotbal"))
    with pytest.raises(ParseError, match="unterminated"):
        msg.nameaddr("To")


@needs_corpus
def test_baddn_unquoted_display_with_comma_raises() -> None:
    msg = _core.parse(_rfc4475("baddn"))  # also: no blank line after the headers
    assert msg.body == b""
    with pytest.raises(ParseError, match="non-token"):
        msg.nameaddr("From")


@needs_corpus
def test_badvers_exposes_the_version() -> None:
    msg = _core.parse(_rfc4475("badvers"))
    assert msg.version == "SIP/7.0"


@needs_corpus
def test_ltgtruri_request_uri_is_not_a_uri() -> None:
    msg = _core.parse(_rfc4475("ltgtruri"))
    with pytest.raises(ParseError):
        _core.parse_uri(msg.uri)


@needs_corpus
def test_mcl01_multiple_differing_content_lengths_rejected() -> None:
    with pytest.raises(ParseError, match="different values"):
        _core.parse(_rfc4475("mcl01"))


# ---- typical traffic ----


def test_sipp_invite() -> None:
    msg = _core.parse(SIPP_INVITE)
    assert msg.is_request and msg.method == "INVITE"
    assert msg.uri == "sip:service@127.0.0.1:5060"
    assert msg.call_id == "1-4242@127.0.0.1"
    assert msg.body == b"v=0\r\n"
    assert msg.content_length == 5
    assert msg.cseq() == (1, "INVITE")
    via = msg.via()
    assert via == {"transport": "UDP", "host": "127.0.0.1", "port": 5061, "branch": "z9hG4bK-4242-1-0",
                   "received": None, "rport": True, "params": {"branch": "z9hG4bK-4242-1-0", "rport": None}}
    assert msg.nameaddr("f") == {"display": "sipp", "uri": "sip:sipp@127.0.0.1:5061", "tag": "4242SIPpTag001",
                                 "params": {"tag": "4242SIPpTag001"}}
    assert msg.nameaddr("Contact")["uri"] == "sip:sipp@127.0.0.1:5061"
    assert msg.headers[0] == ("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport")
    assert len(msg.headers) == 10
    assert bytes(msg) == SIPP_INVITE
    assert repr(msg) == "<Message INVITE sip:service@127.0.0.1:5060>"


def test_kamailio_response() -> None:
    msg = _core.parse(KAMAILIO_200)
    assert not msg.is_request
    assert msg.status == 200 and msg.reason == "OK"
    assert msg.content_length == 0 and msg.body == b""
    assert msg.via(0)["rport"] == 5060
    assert msg.via(0)["received"] == "192.0.2.7"
    assert msg.via(1)["host"] == "2001:db8::1" and msg.via(1)["port"] == 5070
    assert msg.via(2)["rport"] is True
    assert msg.via(3) is None
    assert msg.headers_all("Record-Route") == [
        "<sip:10.0.0.1;lr;r2=on>", "<sip:10.0.0.2;transport=tcp;lr;r2=on>", "<sip:proxy.example.com;lr>"]
    assert msg.nameaddr("Record-Route")["uri"] == "sip:10.0.0.1;lr;r2=on"
    assert msg.nameaddr("From")["display"] == 'Alice "A" Smith'
    assert msg.nameaddr("To")["tag"] == "as1f2e3d"
    assert msg.headers_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert msg.header("Content-Length") == "0"
    assert msg.header("X-Missing") is None
    assert msg.headers_all("X-Missing") == []
    assert msg.nameaddr("X-Missing") is None
    assert repr(msg) == "<Message 200 OK>"


def test_header_lookup_is_case_insensitive_and_compact_equivalent() -> None:
    msg = _core.parse(b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h\r\ni: x\r\nX-Foo: 1\r\nx-foo: 2\r\nl: 0\r\n\r\n")
    assert msg.header("Via") == "SIP/2.0/UDP h"
    assert msg.header("CALL-ID") == "x" and msg.call_id == "x"
    assert msg.header("x-FOO") == "1"
    assert msg.headers_all("X-Foo") == ["1", "2"]
    assert msg.header("Content-Length") == "0"


def test_list_split_never_inside_quotes_or_angles() -> None:
    msg = _core.parse(b'OPTIONS sip:a@b SIP/2.0\r\nContact: "Doe, J" <sip:j@x;a=1,2>;q=0.5, <sip:k@y>\r\n\r\n')
    assert msg.headers_all("m") == ['"Doe, J" <sip:j@x;a=1,2>;q=0.5', "<sip:k@y>"]
    assert msg.nameaddr("Contact")["display"] == "Doe, J"


def test_missing_content_length_body_runs_to_end() -> None:
    msg = _core.parse(b"MESSAGE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\nhello")
    assert msg.body == b"hello"
    assert msg.content_length is None
    assert msg.cseq() is None
    assert msg.via() is None


def test_parse_uri_forms() -> None:
    assert _core.parse_uri("sip:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=hi&x") == {
        "scheme": "sip", "user": "alice", "password": "pw", "host": "2001:db8::1", "port": 5061,
        "params": {"transport": "tls", "lr": None}, "headers": {"subject": "hi", "x": None}}
    tel = _core.parse_uri("tel:+1-212-555-1212;phone-context=example.com")
    assert tel["scheme"] == "tel" and tel["user"] == "+1-212-555-1212" and tel["host"] is None
    assert tel["params"] == {"phone-context": "example.com"}
    sips = _core.parse_uri("sips:example.com")
    assert sips["user"] is None and sips["port"] is None and sips["host"] == "example.com"
    for bad in ("", "nocolon", "sip:", "sip:h:0", "sip:h:65536", "sip:[::1", "sip:a b@h", "<sip:a@b>"):
        with pytest.raises(ParseError):
            _core.parse_uri(bad)


def test_limits() -> None:
    with pytest.raises(ParseError, match="exceeds the limit"):
        _core.parse(SIPP_INVITE, max_size=100)
    with pytest.raises(ParseError, match="more than 3 header"):
        _core.parse(SIPP_INVITE, max_headers=3)
    assert _core.parse(SIPP_INVITE, max_size=len(SIPP_INVITE), max_headers=10).method == "INVITE"
    with pytest.raises(ParseError):
        _core.parse(b"MESSAGE sip:a@b SIP/2.0\r\n\r\n" + b"x" * 70000)


def test_argument_errors() -> None:
    with pytest.raises(TypeError):
        _core.parse("INVITE sip:a@b SIP/2.0\r\n\r\n")  # str, not bytes
    with pytest.raises(ValueError):
        _core.parse(SIPP_INVITE, max_size=-1)
    msg = _core.parse(SIPP_INVITE)
    with pytest.raises(TypeError):
        msg.header(b"Via")
    with pytest.raises(ValueError):
        msg.header("")
    with pytest.raises(ValueError):
        msg.via(-1)
    with pytest.raises(TypeError):
        msg.via("0")
    with pytest.raises(TypeError):
        _core.parse_uri(b"sip:a@b")
    with pytest.raises(TypeError):
        _core.Message()
    with pytest.raises(AttributeError):
        msg.method = "BYE"  # type: ignore[misc]
    assert isinstance(ParseError("x"), ValueError)


def test_bytearray_and_memoryview_accepted() -> None:
    assert _core.parse(bytearray(SIPP_INVITE)).call_id == "1-4242@127.0.0.1"
    assert _core.parse(memoryview(KAMAILIO_200)).status == 200


@pytest.mark.parametrize("data", [SIPP_INVITE, KAMAILIO_200])
def test_every_truncation_raises_parse_error_or_parses(data: bytes) -> None:
    for n in range(len(data)):
        try:
            msg = _core.parse(data[:n])
        except ParseError as e:
            assert e.reason and 0 <= e.offset <= n
            continue
        bytes(msg)
        msg.headers


def test_truncated_body_reports_content_length() -> None:
    with pytest.raises(ParseError, match="Content-Length 5 exceeds the 2 body bytes present"):
        _core.parse(SIPP_INVITE[:-3])


def test_garbage_raises_parse_error() -> None:
    rng = random.Random(4475)
    for data in (b"", b"\r\n", b"\x00" * 50, b"hello world\r\n\r\n", b"SIP/2.0 999 X\r\n\r\n",
                 b"INVITE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n"):
        with pytest.raises(ParseError):
            _core.parse(data)
    for _ in range(2000):
        n = rng.randrange(0, 300)
        prefix = rng.choice([b"", b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 180 Ringing\r\n"])
        data = prefix + bytes(rng.choice(b"\r\n :;,<>\"\\@[]/Vv=0123456789\x00\xff") for _ in range(n))
        try:
            msg = _core.parse(data)
        except ParseError:
            continue
        for view in (msg.cseq, msg.via, lambda: msg.nameaddr("v"), lambda: msg.headers_all("v")):
            try:
                view()
            except ParseError:
                pass
