"""The SDP model (RFC 8866): parse a body into a SessionDescription and write it back.

Lines keep the order RFC 8866 section 5 prescribes, so a well-formed body is written back byte for
byte (CRLF line ends).  Attributes stay an ordered list of (name, value); rtpmap, fmtp, ptime,
direction and crypto are read from it by properties.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Optional

from pysiptest.errors import PySipTestError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
#: static RTP/AVP payload types (RFC 3551 table 4) we may meet without an rtpmap
STATIC_RTPMAP = {0: "PCMU/8000", 3: "GSM/8000", 4: "G723/8000", 8: "PCMA/8000", 9: "G722/8000",
                 18: "G729/8000", 13: "CN/8000", 31: "H261/90000", 32: "MPV/90000", 34: "H263/90000"}
#: SDES suites (RFC 4568, RFC 7714) and their master key + salt length in bytes
CRYPTO_SUITES = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30, "AEAD_AES_128_GCM": 28}

_SESSION_ORDER = "vosiuepcbtrzka"
_MEDIA_ORDER = "micbka"


class SdpError(PySipTestError, ValueError):
    """Malformed SDP; the message names the line."""


@dataclass
class Origin:
    """The o= line."""

    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} {self.nettype} {self.addrtype} "
                f"{self.address}")


@dataclass
class Connection:
    """A c= line: ``IN IP4 192.0.2.1`` (a multicast TTL/count suffix stays in ``address``)."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    @property
    def host(self) -> str:
        """The address without a /ttl or /count suffix."""
        return self.address.split("/")[0]

    @property
    def is_hold_address(self) -> bool:
        """0.0.0.0: the RFC 2543 way of putting a call on hold (RFC 3264 8.4)."""
        return self.host in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Crypto:
    """An a=crypto line (RFC 4568 9.1): tag, suite, key parameters and session parameters."""

    tag: int
    suite: str
    key_params: str
    session_params: tuple[str, ...] = ()

    @property
    def key(self) -> bytes:
        """The master key + salt of the first ``inline:`` key (base64 decoded); SdpError when unusable."""
        first = self.key_params.split(";")[0]
        if not first.startswith("inline:"):
            raise SdpError(f"crypto {self.tag}: only inline keys are supported: {first[:40]!r}")
        b64 = first[7:].split("|")[0]
        try:
            key = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise SdpError(f"crypto {self.tag}: key is not base64: {b64[:40]!r}") from None
        want = CRYPTO_SUITES.get(self.suite)
        if want is not None and len(key) != want:
            raise SdpError(f"crypto {self.tag}: {self.suite} needs {want} bytes of key and salt, got {len(key)}")
        return key

    @classmethod
    def with_key(cls, tag: int, suite: str, key: bytes) -> "Crypto":
        """A crypto line carrying key inline."""
        return cls(tag, suite, "inline:" + base64.b64encode(key).decode())

    def __str__(self) -> str:
        return " ".join([str(self.tag), self.suite, self.key_params, *self.session_params])


@dataclass
class MediaDescription:
    """One m= section: ``m=<media> <port>[/<count>] <proto> <formats>`` and the lines under it."""

    media: str = "audio"
    port: int = 0
    proto: str = "RTP/AVP"
    formats: list[str] = field(default_factory=list)
    port_count: Optional[int] = None
    info: Optional[str] = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[str] = field(default_factory=list)
    key: Optional[str] = None
    attributes: list[tuple[str, Optional[str]]] = field(default_factory=list)

    # -- attribute views ------------------------------------------------------------------
    def attr(self, name: str) -> Optional[str]:
        """The value of the first attribute called name ('' for a flag), None when absent."""
        for k, v in self.attributes:
            if k == name:
                return v if v is not None else ""
        return None

    def attrs(self, name: str) -> list[str]:
        """The values of every attribute called name."""
        return [v or "" for k, v in self.attributes if k == name]

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload type numbers (formats that are not numbers are skipped)."""
        return [int(f) for f in self.formats if f.isdigit()]

    @property
    def rtpmap(self) -> dict[int, str]:
        """Payload type -> ``encoding/clock[/channels]``, from a=rtpmap or the static table."""
        out = {pt: STATIC_RTPMAP[pt] for pt in self.payload_types if pt in STATIC_RTPMAP}
        for v in self.attrs("rtpmap"):
            pt, _, enc = v.partition(" ")
            if pt.isdigit():
                out[int(pt)] = enc.strip()
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        """Payload type -> format parameters."""
        out = {}
        for v in self.attrs("fmtp"):
            pt, _, params = v.partition(" ")
            if pt.isdigit():
                out[int(pt)] = params.strip()
        return out

    @property
    def ptime(self) -> Optional[int]:
        """a=ptime in ms, None when absent."""
        v = self.attr("ptime")
        return int(float(v)) if v else None

    @property
    def direction(self) -> Optional[str]:
        """The stream's own direction attribute, None when it has none (then the session's applies)."""
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                return k
        return None

    @property
    def crypto(self) -> list[Crypto]:
        """The a=crypto lines, in order."""
        out = []
        for v in self.attrs("crypto"):
            parts = v.split()
            out.append(Crypto(int(parts[0]), parts[1], parts[2], tuple(parts[3:])))
        return out

    def encoding(self, pt: int) -> Optional[str]:
        """``PCMU/8000`` style name of a payload type, upper-cased encoding, None when unknown."""
        enc = self.rtpmap.get(pt)
        if enc is None:
            return None
        name, _, rest = enc.partition("/")
        return f"{name.upper()}/{rest}" if rest else name.upper()

    def set_direction(self, direction: str) -> None:
        """Replace the direction attribute (or add one)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.attributes = [(k, v) for k, v in self.attributes if k not in DIRECTIONS] + [(direction, None)]

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is refused or disabled (RFC 3264 6, 8.2)."""
        return self.port == 0

    def lines(self) -> list[str]:
        """The section's lines, m= first."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        if self.info is not None:
            out.append(f"i={self.info}")
        out += [f"c={c}" for c in self.connections]
        out += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return out


@dataclass
class SessionDescription:
    """A whole session description: session-level lines and its media sections."""

    origin: Origin = field(default_factory=Origin)
    name: str = "pysiptest"
    version: int = 0
    info: Optional[str] = None
    uri: Optional[str] = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Optional[Connection] = None
    bandwidths: list[str] = field(default_factory=list)
    #: t= lines, each with its r= lines
    times: list[tuple[str, list[str]]] = field(default_factory=lambda: [("0 0", [])])
    zone: Optional[str] = None
    key: Optional[str] = None
    attributes: list[tuple[str, Optional[str]]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def attr(self, name: str) -> Optional[str]:
        """The value of the first session-level attribute called name ('' for a flag), None when absent."""
        for k, v in self.attributes:
            if k == name:
                return v if v is not None else ""
        return None

    def connection_for(self, m: MediaDescription) -> Optional[Connection]:
        """The connection a stream uses: its own c= line, else the session's."""
        return m.connections[0] if m.connections else self.connection

    def direction_of(self, m: MediaDescription) -> str:
        """A stream's direction: its attribute, else the session's, else sendrecv (RFC 8866 6.7)."""
        if m.direction is not None:
            return m.direction
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                return k
        return "sendrecv"

    def first(self, media: str = "audio") -> Optional[MediaDescription]:
        """The first stream of a media type that is not rejected, None when there is none."""
        for m in self.media:
            if m.media == media and m.port != 0:
                return m
        return None

    def lines(self) -> list[str]:
        """Every line of the description, in RFC 8866 order."""
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.name}"]
        if self.info is not None:
            out.append(f"i={self.info}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        for t, repeats in self.times:
            out.append(f"t={t}")
            out += [f"r={r}" for r in repeats]
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            out += m.lines()
        return out


def serialize(sd: SessionDescription) -> bytes:
    """The SDP body of a description, CRLF line ends."""
    return ("\r\n".join(sd.lines()) + "\r\n").encode()


# -- parsing ------------------------------------------------------------------------------
def _fail(n: int, line: str, why: str) -> SdpError:
    return SdpError(f"SDP line {n} ({line[:60]!r}): {why}")


def _connection(n: int, line: str, val: str) -> Connection:
    parts = val.split()
    if len(parts) != 3:
        raise _fail(n, line, "c= needs <nettype> <addrtype> <address>")
    if parts[1] not in ("IP4", "IP6") and parts[0] == "IN":
        raise _fail(n, line, f"address type {parts[1]!r} is not IP4 or IP6")
    return Connection(*parts)


def _media(n: int, line: str, val: str) -> MediaDescription:
    parts = val.split()
    if len(parts) < 4:
        raise _fail(n, line, "m= needs <media> <port> <proto> <fmt> ...")
    port_s, _, count_s = parts[1].partition("/")
    if not port_s.isdigit() or (count_s and not count_s.isdigit()):
        raise _fail(n, line, f"port {parts[1]!r} is not a number")
    port = int(port_s)
    if port > 65535:
        raise _fail(n, line, f"port {port} is out of range")
    m = MediaDescription(parts[0], port, parts[2], parts[3:], int(count_s) if count_s else None)
    if "RTP/" in m.proto and not all(f.isdigit() and int(f) <= 127 for f in m.formats):
        raise _fail(n, line, "RTP formats must be payload type numbers 0..127")
    return m


def _attribute(n: int, line: str, val: str) -> tuple[str, Optional[str]]:
    name, colon, value = val.partition(":")
    if not name or any(c.isspace() for c in name):
        raise _fail(n, line, "a= needs an attribute name")
    if name == "rtpmap":
        pt, _, enc = value.partition(" ")
        if not pt.isdigit() or int(pt) > 127 or "/" not in enc:
            raise _fail(n, line, "rtpmap needs <payload type> <encoding>/<clock rate>")
        clock = enc.split("/")[1]
        if not clock.isdigit():
            raise _fail(n, line, f"rtpmap clock rate {clock!r} is not a number")
    elif name == "fmtp" and not value.partition(" ")[0].isdigit() and value.partition(" ")[0] != "*":
        raise _fail(n, line, "fmtp needs <format> <parameters>")
    elif name == "ptime":
        try:
            if float(value) <= 0:
                raise ValueError
        except ValueError:
            raise _fail(n, line, f"ptime {value!r} is not a positive number") from None
    elif name == "crypto":
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit() or len(parts[0]) > 9:
            raise _fail(n, line, "crypto needs <tag> <crypto-suite> <key-params>")
    elif name in DIRECTIONS and colon:
        raise _fail(n, line, f"{name} takes no value")
    return name, value if colon else None


def parse(body: bytes | str) -> SessionDescription:
    """Parse an SDP body; SdpError naming the line when it is malformed (RFC 8866 grammar and line order)."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not UTF-8 text: {exc}") from None
    else:
        text = body
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    sd = SessionDescription(times=[])
    cur: Optional[MediaDescription] = None
    order = _SESSION_ORDER
    pos = 0  # index in order of the last line type seen, to check the order
    seen: set[str] = set()
    for n, raw in enumerate(raw_lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise _fail(n, line, "not of the form <type>=<value>")
        key, val = line[0], line[2:]
        if n == 1 and key != "v":
            raise _fail(n, line, "the first line must be v=")
        if key == "m":
            cur = _media(n, line, val)
            sd.media.append(cur)
            order, pos = _MEDIA_ORDER, 0
            continue
        if key not in order:
            where = "a media section" if cur is not None else "the session part"
            raise _fail(n, line, f"{key}= is not allowed in {where}" if key in _SESSION_ORDER + "m"
                        else f"unknown line type {key}=")
        idx = order.index(key)
        repeatable = key in "epcbtraz" if cur is None else key in "cba"
        t_again = cur is None and key == "t" and order[pos] in "tr"
        if not t_again and (idx < pos or (idx == pos and not repeatable and n > 1)):
            raise _fail(n, line, f"{key}= is out of order or repeated (RFC 8866 5)")
        if key == "r" and not sd.times:
            raise _fail(n, line, "r= must follow a t= line")
        pos = idx
        seen.add(key)
        if cur is not None:
            if key == "i":
                cur.info = val
            elif key == "c":
                cur.connections.append(_connection(n, line, val))
            elif key == "b":
                cur.bandwidths.append(val)
            elif key == "k":
                cur.key = val
            else:
                cur.attributes.append(_attribute(n, line, val))
            continue
        if key == "v":
            if val != "0":
                raise _fail(n, line, "only SDP version 0 exists")
            sd.version = 0
        elif key == "o":
            parts = val.split()
            if len(parts) != 6:
                raise _fail(n, line, "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>")
            if not parts[1].isdigit() or not parts[2].isdigit():
                raise _fail(n, line, "o= session id and version must be numbers")
            sd.origin = Origin(*parts)
        elif key == "s":
            sd.name = val
        elif key == "i":
            sd.info = val
        elif key == "u":
            sd.uri = val
        elif key == "e":
            sd.emails.append(val)
        elif key == "p":
            sd.phones.append(val)
        elif key == "c":
            if sd.connection is not None:
                raise _fail(n, line, "more than one session-level c= line")
            sd.connection = _connection(n, line, val)
        elif key == "b":
            sd.bandwidths.append(val)
        elif key == "t":
            parts = val.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise _fail(n, line, "t= needs <start-time> <stop-time> as numbers")
            sd.times.append((val, []))
        elif key == "r":
            sd.times[-1][1].append(val)
        elif key == "z":
            sd.zone = val
        elif key == "k":
            sd.key = val
        else:
            sd.attributes.append(_attribute(n, line, val))
    if not raw_lines:
        raise SdpError("SDP is empty")
    for need in "ost":
        if need not in seen:
            raise SdpError(f"SDP has no {need}= line")
    for i, m in enumerate(sd.media, 1):
        if m.port != 0 and sd.connection_for(m) is None:
            raise SdpError(f"SDP media section {i} (m={m.media}) has no connection address (c= line)")
    return sd
