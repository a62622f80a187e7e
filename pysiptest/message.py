"""The SIP message API: :func:`parse`, :class:`Message` and its typed header views.

:class:`Message` subclasses the C type ``_core.Message`` (one buffer plus an index of header slices, parsed in
C); ``_core`` is told to create this class, so :func:`parse` and the engine's events both hand out
``pysiptest.Message``. Typed views (``via``, ``from_``, ``to``, ``cseq``, ``contact``) are parsed in C on first
use and cached on the message; they are small immutable values.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Union, overload

from pysiptest import _core

__all__ = ["CSeq", "Headers", "Message", "NameAddr", "Via", "parse"]

#: compact header forms (RFC 3261 7.3.3 and later RFCs) and their long names
COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to", "s": "subject",
    "t": "to", "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}
_LONG_TO_COMPACT = {v: k for k, v in COMPACT.items()}


def _key(name: str) -> str:
    """The comparison key of a header name: lower case, compact form expanded."""
    low = name.strip().lower()
    return COMPACT.get(low, low)


class CSeq(NamedTuple):
    """The CSeq header: sequence number and method (compares equal to ``(number, method)``)."""

    number: int
    method: str


@dataclass(frozen=True)
class Via:
    """One via-parm (an element of a Via header)."""

    transport: str
    host: str
    port: Optional[int]
    branch: Optional[str]
    received: Optional[str]
    rport: Union[None, bool, int]  #: None absent, True present without a value, else the value
    params: tuple[tuple[str, Optional[str]], ...]

    def param(self, name: str) -> Optional[str]:
        """Value of a parameter (case-insensitive name); None when absent or valueless."""
        return next((v for n, v in self.params if n.lower() == name.lower()), None)

    @classmethod
    def _of(cls, d: dict[str, Any]) -> Via:
        return cls(d["transport"], d["host"], d["port"], d["branch"], d["received"], d["rport"],
                   tuple(d["params"].items()))


@dataclass(frozen=True)
class NameAddr:
    """A name-addr or addr-spec: From, To, a Contact or Route element."""

    display: Optional[str]
    uri: str
    tag: Optional[str]
    params: tuple[tuple[str, Optional[str]], ...]

    def param(self, name: str) -> Optional[str]:
        """Value of a header parameter (case-insensitive name); None when absent or valueless."""
        return next((v for n, v in self.params if n.lower() == name.lower()), None)

    @classmethod
    def _of(cls, d: dict[str, Any]) -> NameAddr:
        return cls(d["display"], d["uri"], d["tag"], tuple(d["params"].items()))


class Headers(Sequence[tuple[str, str]]):
    """The header fields of a message in wire order: a sequence of ``(name, value)`` that is also an ordered,
    case-insensitive multimap in which compact and long names are the same header (``h["v"] == h["Via"]``)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Sequence[tuple[str, str]]) -> None:
        self._fields = tuple(fields)

    def __len__(self) -> int:
        return len(self._fields)

    @overload
    def __getitem__(self, key: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, key: slice) -> Sequence[tuple[str, str]]: ...
    @overload
    def __getitem__(self, key: str) -> str: ...

    def __getitem__(self, key: Any) -> Any:
        """An int or slice indexes the fields; a name gives the first value (KeyError when absent)."""
        if isinstance(key, str):
            k = _key(key)
            for n, v in self._fields:
                if _key(n) == k:
                    return v
            raise KeyError(key)
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            k = _key(key)
            return any(_key(n) == k for n, _ in self._fields)
        return key in self._fields

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """First value of the header, or default."""
        try:
            return self[name]
        except KeyError:
            return default

    def getall(self, name: str) -> list[str]:
        """Every field value of the header, in order (one per header line, not split at commas)."""
        k = _key(name)
        return [v for n, v in self._fields if _key(n) == k]

    def names(self) -> list[str]:
        """Header names as written, in order (with repeats)."""
        return [n for n, _ in self._fields]

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"


_MISSING = object()


class Message(_core.Message):
    """An immutable SIP message: request or response, as parsed from bytes or built by :meth:`request` and
    :meth:`response`. Header access is case-insensitive and treats compact forms as their long names."""

    __slots__ = ("_cache",)

    def _cached(self, key: str, make: Any) -> Any:
        try:
            cache = self._cache
        except AttributeError:
            cache = self._cache = {}
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            value = cache[key] = make()
        return value

    @property
    def headers(self) -> Headers:  # type: ignore[override]
        """All header fields (see :class:`Headers`)."""
        return self._cached("headers", lambda: Headers(_core.Message.headers.__get__(self)))  # type: ignore[attr-defined]

    @property
    def via(self) -> tuple[Via, ...]:  # type: ignore[override]
        """Every Via element, counted across all Via headers, top first."""
        def make() -> tuple[Via, ...]:
            out = []
            while (d := _core.Message.via(self, len(out))) is not None:
                out.append(Via._of(d))
            return tuple(out)
        return self._cached("via", make)

    def _nameaddr(self, name: str) -> Optional[NameAddr]:
        return self._cached(name, lambda: (lambda d: None if d is None else NameAddr._of(d))(self.nameaddr(name)))

    @property
    def from_(self) -> Optional[NameAddr]:
        """The From header, or None."""
        return self._nameaddr("From")

    @property
    def to(self) -> Optional[NameAddr]:
        """The To header, or None."""
        return self._nameaddr("To")

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """Every Contact element; ``Contact: *`` gives one NameAddr whose uri is ``"*"``."""
        return self._cached("contacts", lambda: tuple(
            NameAddr._of(_core.parse_nameaddr(v)) for v in self.headers_all("Contact")))

    @property
    def contact(self) -> Optional[NameAddr]:
        """The first Contact element, or None."""
        c = self.contacts
        return c[0] if c else None

    @property
    def cseq(self) -> Optional[CSeq]:  # type: ignore[override]
        """The CSeq header as ``CSeq(number, method)``, or None."""
        def make() -> Optional[CSeq]:
            t = _core.Message.cseq(self)
            return None if t is None else CSeq(*t)
        return self._cached("cseq", make)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _core.Message) and bytes(self) == bytes(other)

    def __hash__(self) -> int:
        return hash(bytes(self))

    # ---- building ----

    @classmethod
    def request(cls, method: str, uri: str, headers: Union[Mapping[str, Any], Sequence[tuple[str, Any]], None] = None,
                body: Union[bytes, str] = b"") -> Message:
        """Build a request: ``method uri SIP/2.0``, the headers in the order given (a mapping or a sequence of
        pairs; a list value repeats the header), Content-Length set from the body. Missing Max-Forwards (70),
        Call-ID and CSeq (1 method) are added; From, To and Via are the caller's. Raises ParseError when the
        result is not a valid message (for example when Via, From or To is missing)."""
        for what, text in (("method", method), ("uri", uri)):
            if not isinstance(text, str) or not text or any(c.isspace() for c in text):
                raise ValueError(f"{what} must be a non-empty str without whitespace, not {text!r}")
        fields = _fields(headers)
        have = {_key(n) for n, _ in fields}
        if "max-forwards" not in have:
            fields.append(("Max-Forwards", "70"))
        if "call-id" not in have:
            fields.append(("Call-ID", secrets.token_hex(12)))
        if "cseq" not in have:
            fields.append(("CSeq", f"1 {method}"))
        return _build(f"{method} {uri} SIP/2.0", fields, body)

    def response(self, status: int, reason: Optional[str] = None, headers: Union[Mapping[str, Any],
                 Sequence[tuple[str, Any]], None] = None, body: Union[bytes, str] = b"",
                 to_tag: Optional[str] = None) -> Message:
        """A response to this request per RFC 3261 8.2.6: the Via headers in order, From, Call-ID and CSeq
        copied, To copied with a tag added when the request had none (``to_tag``, else a random one; none on
        100 Trying, which also copies Timestamp), then ``headers`` and the body."""
        if not self.is_request:
            raise ValueError("response() needs a request")
        if not isinstance(status, int) or not 100 <= status <= 699:
            raise ValueError(f"status must be an int in 100..699, not {status!r}")
        if self.method == "ACK":
            raise ValueError("an ACK gets no response (RFC 3261 17.2.1)")
        reason = reason if reason is not None else reason_phrase(status)
        fields: list[tuple[str, str]] = []
        for n, v in self.headers:
            k = _key(n)
            if k in ("via", "from", "call-id", "cseq") or (k == "timestamp" and status == 100):
                fields.append((n, v))
            elif k == "to":
                if status != 100 and (self.to is None or self.to.tag is None):
                    v = f"{v};tag={to_tag or secrets.token_hex(6)}"
                fields.append((n, v))
        fields += _fields(headers)
        return _build(f"SIP/2.0 {status} {reason}", fields, body)


def _fields(headers: Union[Mapping[str, Any], Sequence[tuple[str, Any]], None]) -> list[tuple[str, str]]:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    out: list[tuple[str, str]] = []
    for name, value in items:
        if not isinstance(name, str) or not name or any(c in name for c in ": \t\r\n"):
            raise ValueError(f"bad header name {name!r}")
        for v in value if isinstance(value, (list, tuple)) else [value]:
            text = str(v)
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name} value must not contain a line break")
            out.append((name, text))
    return out


def _build(start: str, fields: list[tuple[str, str]], body: Union[bytes, str]) -> Message:
    data = body.encode() if isinstance(body, str) else bytes(body)
    fields = [(n, v) for n, v in fields if _key(n) != "content-length"]
    fields.append(("Content-Length", str(len(data))))
    head = start + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields) + "\r\n"
    msg = _core.parse(head.encode("utf-8", "surrogateescape") + data)
    assert isinstance(msg, Message)
    return msg


def parse(data: Union[bytes, bytearray, memoryview], max_size: int = 0, max_headers: int = 0, *,
          strict: bool = True) -> Message:
    """Parse one SIP message (datagram semantics: bytes past Content-Length are ignored).

    ``max_size`` and ``max_headers`` bound the input (0 means the defaults, 65535 bytes and 256 fields).
    ``strict=False`` only indexes the message, skipping the RFC 3261 header checks (mandatory headers,
    single-valued headers, CSeq/method agreement...). Raises :class:`pysiptest.ParseError` with ``.offset`` and
    ``.reason``."""
    msg = _core.parse(data, max_size, max_headers, strict=strict)
    assert isinstance(msg, Message)
    return msg


def reason_phrase(status: int) -> str:
    """The reason phrase of a SIP status code (RFC 3261 section 21 and extensions), from the C core's table
    that the engine uses too; a class name such as "Client Error" for a code it does not know."""
    return _core.reason_phrase(status)

_core._set_message_class(Message)
