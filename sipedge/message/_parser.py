# -*- test-case-name: sipedge.test.test_message_parser -*-
"""
Turning bytes into L{Request} and L{Response} values (RFC 3261 sections 7
and 18.3), for datagrams and for streams.

   generic-message  =  start-line *message-header CRLF [ message-body ]
   Request-Line     =  Method SP Request-URI SP SIP-Version CRLF
   Status-Line      =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
   message-header   =  field-name HCOLON field-value CRLF
   HCOLON           =  *( SP / HTAB ) ":" SWS

Only L{MessageParseError} ever leaves this module, whatever bytes arrive.
The header section is decoded as UTF-8 with C{surrogateescape}, so
serializing what was parsed gives back the same bytes even if they are not
UTF-8.
"""

from __future__ import annotations

import re

import attrs

from sipedge.error import MessageParseError
from sipedge.message._check import KNOWN_METHODS
from sipedge.message._headers import COMPACT_FORMS, Field, Headers, canonical_name, header_key
from sipedge.message._limits import DEFAULT_LIMITS, Limits
from sipedge.message._message import SIP_VERSION, Message, Request, Response

__all__ = [
    "KeepAlivePing",
    "KeepAlivePong",
    "StreamEvent",
    "StreamParser",
    "is_keepalive",
    "parse_datagram",
]

# Method = INVITEm / ... / extension-method;  extension-method = token
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT  ("SIP" is case-insensitive)
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+\Z")
# LWS = [*WSP CRLF] 1*WSP: a line that starts with SP or HTAB continues the
# previous one, and the fold is equivalent to a single SP (RFC 3261 7.3.1).
_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")
_DIGITS_RE = re.compile(r"[0-9]{1,10}\Z")

# The keys of the fields a proxy meets most, each mapped to itself: a
# parsed field shares these strings instead of holding two new ones.
_KNOWN_KEYS: dict[str, str] = {
    key: key
    for key in (
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "max-forwards",
        "content-type",
        "route",
        "record-route",
        "user-agent",
        "allow",
        "supported",
        "expires",
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "proxy-authenticate",
        "server",
        "require",
        "proxy-require",
        "accept",
        "subject",
        "event",
        "date",
    )
}
_COMPACT = {short: long.lower() for short, long in COMPACT_FORMS.items()}
# Their compact forms, lower-cased, to the same strings.
_KNOWN_KEYS.update(
    {short: _KNOWN_KEYS[key] for short, key in _COMPACT.items() if key in _KNOWN_KEYS}
)
# Their usual spellings (lower-case, canonical, compact), likewise: a
# lingering call holds a dozen parsed messages of fifteen fields each.
_SPELLINGS: dict[str, str] = {
    spelling: spelling
    for key in set(_KNOWN_KEYS.values())
    for spelling in (
        key,
        canonical_name(key),
        *(short for short, long in _COMPACT.items() if long == key),
        *(short.upper() for short, long in _COMPACT.items() if long == key),
    )
}


# Each usual spelling of those fields, exactly as written before the colon,
# to its key and the shared spelling: one look-up for most lines.
_FAST_NAMES: dict[str, tuple[str, str]] = {
    spelling: (_KNOWN_KEYS[spelling.lower()], spelling) for spelling in _SPELLINGS
}


def _error(
    reason: str, status: int = 400, message: Message | None = None
) -> MessageParseError:
    return MessageParseError(reason, status, message=message)


def _parse_head(head: bytes, limits: Limits) -> tuple[Message, list[str]]:
    """
    Parse a start line and header fields (no final empty line).

    @return: the message with an empty body, and the raw values of every
        Content-Length field (which are not kept in the headers).
    """
    text = head.decode("utf-8", "surrogateescape")
    if "\r\n " in text or "\r\n\t" in text:
        text = _FOLD_RE.sub(" ", text)
    lines = text.split("\r\n")
    try:
        return _parse_lines(text, lines, limits)
    except MessageParseError as e:
        # A request that does not parse is still answered with the status
        # its fault calls for (400, 414, 505, 513, ...), which needs its
        # Via, From, To, Call-ID and CSeq (RFC 3261 8.2.6.2): keep a
        # stand-in for it on the error.
        if e.message is not None or lines[0][:4].upper() == "SIP/":
            raise
        salvaged = _salvage(lines, limits)
        if salvaged is None:
            raise
        raise MessageParseError(e.reason, e.status_hint, e.headers, message=salvaged) from None


def _salvage(lines: list[str], limits: Limits) -> Request | None:
    """
    A stand-in for a request head that does not parse, for answering it:
    the first word of the start line as the method (C{None} if it is not a
    token), the rest up to the SIP version as the Request-URI, and the
    header field lines that split into a token name and a value (others,
    Content-Length, lines with a bare CR or LF, and lines or fields past
    the limits are left out). C{None} too without a Via: such a request
    cannot be answered.
    """
    method, _, rest = lines[0].partition(" ")
    if _TOKEN_RE.match(method) is None:
        return None
    uri = rest.strip(" \t")
    if uri[-len(SIP_VERSION):].upper() == SIP_VERSION:
        uri = uri[: -len(SIP_VERSION)].rstrip(" \t")
    fields: list[Field] = []
    for line in lines[1 : limits.max_header_fields + 1]:
        if len(line) > limits.max_line_length or "\r" in line or "\n" in line:
            continue
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        if not sep or _TOKEN_RE.match(name) is None:
            continue
        key = header_key(name)
        if key != "content-length":
            fields.append((key, name, value.strip(" \t")))
    if not any(field[0] == "via" for field in fields):
        return None
    return Request(method, uri or "*", Headers(tuple(fields)))


def _parse_lines(text: str, lines: list[str], limits: Limits) -> tuple[Message, list[str]]:
    """
    L{_parse_head} after the split into lines.

    The fast path: a field whose name is one of the usual spellings of a
    field a proxy meets (and no line is too long) takes one dict look-up;
    any other line goes through L{_field_line}, the rules of
    L{_parse_lines_reference}, so both give the same message or the same
    error for any input (a hypothesis test holds them to it).
    """
    _check_breaks(text, lines, limits)
    if max(map(len, lines)) > limits.max_line_length:
        return _parse_lines_reference(text, lines, limits)
    fields: list[Field] = []
    lengths: list[str] = []
    fast = _FAST_NAMES.get
    append = fields.append
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        known = fast(name)
        if known is not None and sep:
            key, name = known
            append((key, name, value.strip(" \t")))
        elif name == "Content-Length" and sep:
            lengths.append(value.strip(" \t"))
        else:
            _field_line(line, fields, lengths)
    return _start_line(lines[0], Headers(tuple(fields)), limits), lengths


def _check_breaks(text: str, lines: list[str], limits: Limits) -> None:
    # A bare CR or LF inside a line would let a sloppy parser downstream see
    # a line break we did not: refuse it (header smuggling).
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise _error("bare CR or LF in header section")
    if len(lines) - 1 > limits.max_header_fields:
        raise _error("too many header fields", 513)


def _field_line(line: str, fields: list[Field], lengths: list[str]) -> None:
    """One header field line (its length already checked) into C{fields} or C{lengths}."""
    name, sep, value = line.partition(":")
    if not sep:
        raise _error(f"header field line without a colon: {line[:40]!r}")
    name = name.rstrip(" \t")
    known = _KNOWN_KEYS.get(name.lower())
    if known is not None:
        key = known
        name = _SPELLINGS.get(name, name)
    else:
        if _TOKEN_RE.match(name) is None:
            raise _error(f"bad header field name {name[:40]!r}")
        key = header_key(name)
        if key == "content-length":
            lengths.append(value.strip(" \t"))
            return
    fields.append((key, name, value.strip(" \t")))


def _parse_lines_reference(
    text: str, lines: list[str], limits: Limits
) -> tuple[Message, list[str]]:
    """L{_parse_lines} one line at a time, every rule in order: the reference."""
    _check_breaks(text, lines, limits)
    fields: list[Field] = []
    lengths: list[str] = []
    max_line = limits.max_line_length
    for line in lines[1:]:
        if len(line) > max_line:
            raise _error("header field line too long", 513)
        _field_line(line, fields, lengths)
    return _start_line(lines[0], Headers(tuple(fields)), limits), lengths


def _start_line(line: str, headers: Headers, limits: Limits) -> Message:
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        version = parts[0]
        if version != SIP_VERSION:
            if _VERSION_RE.match(version) is None:
                raise _error("malformed SIP version in status line")
            if version.upper() != SIP_VERSION:
                raise _error(f"unsupported SIP version {version!r}", 505)
        if len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit() or not parts[1].isascii():
            raise _error("malformed status code")
        status = int(parts[1])
        if not 100 <= status <= 699:
            raise _error(f"status code {status} out of range")
        reason = parts[2] if len(parts) == 3 else ""
        return Response(status, reason, headers)
    parts = line.split(" ")
    if len(parts) != 3:
        raise _error("malformed request line")
    method, uri, version = parts
    # The usual methods and version are known to match the grammar.
    if method not in KNOWN_METHODS and _TOKEN_RE.match(method) is None:
        raise _error("malformed method in request line")
    if not uri:
        raise _error("empty Request-URI")
    if len(uri) > limits.max_uri_length:
        raise _error("Request-URI too long", 414)
    if version == SIP_VERSION:
        return Request(method, uri, headers)
    if _VERSION_RE.match(version) is None:
        raise _error("malformed SIP version in request line")
    if version.upper() != SIP_VERSION:
        # Keep the request so a server can answer 505 (RFC 3261 8.2.2).
        raise _error(f"unsupported SIP version {version!r}", 505, Request(method, uri, headers))
    return Request(method, uri, headers)


def _content_length(values: list[str], message: Message) -> int:
    """The one Content-Length (RFC 3261 20.14); several agreeing copies pass."""
    first = values[0]
    for other in values[1:]:
        if other != first:
            raise _error("conflicting Content-Length header fields", message=message)
    if _DIGITS_RE.match(first) is None:
        raise _error(f"malformed Content-Length {first[:20]!r}", message=message)
    return int(first)


def parse_datagram(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """
    Parse one message from a datagram (RFC 3261 18.3).

    Bytes past Content-Length are ignored; a Content-Length larger than what
    arrived is an error; with no Content-Length the body is the rest of the
    datagram. CRLFs before the start line are skipped (RFC 3261 7.5).

    @raise MessageParseError: if C{data} is not a valid message.
    """
    if len(data) > limits.max_message_size:
        raise _error("message too large", 513)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        # No empty line: tolerate a datagram that ends right after its
        # last header field (the RFC 4475 appendix has such files).
        if not data.endswith(b"\r\n") or len(data) - start < 4:
            raise _error("no empty line after the header section")
        end = len(data) - 2
        body_start = len(data)
    else:
        body_start = end + 4
    message, lengths = _parse_head(data[start:end], limits)
    available = len(data) - body_start
    if lengths:
        length = _content_length(lengths, message)
        if length > available:
            raise _error(
                f"Content-Length {length} larger than the {available} octets received",
                message=message,
            )
    else:
        length = available
    if length > limits.max_body_size:
        raise _error("body too large", 413, message)
    if length:
        return message.with_body(data[body_start : body_start + length])
    return message


def is_keepalive(data: bytes) -> bool:
    """
    True for a datagram that carries only CRLFs: a keep-alive (RFC 5626
    3.5.1 uses CRLFCRLF on streams; phones send it over UDP too).
    """
    return not data.strip(b"\r\n")


@attrs.frozen
class KeepAlivePing:
    """A double CRLF between messages on a stream: answer with one CRLF."""


@attrs.frozen
class KeepAlivePong:
    """A single CRLF between messages on a stream (RFC 5626 3.5.1)."""


StreamEvent = Request | Response | KeepAlivePing | KeepAlivePong

_PING = KeepAlivePing()
_PONG = KeepAlivePong()


class StreamParser:
    """
    A sans-IO framer for stream transports (TCP, TLS, WebSocket bodies).

    Feed it bytes as they arrive, in any chunks; it hands back whole
    messages, framed by Content-Length (mandatory on streams, RFC 3261
    18.3), and keep-alives. It never buffers more than
    C{limits.max_message_size} bytes. After an error the stream cannot be
    re-synchronised: L{feed} raises it (after returning the messages that
    came before it in the same chunk, so check L{error} after each call),
    every later L{feed} raises it again, and the connection should close.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scanned = 0  # where to resume the search for CRLFCRLF
        self._pending: tuple[Message, int, int] | None = None
        self._error: MessageParseError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned event."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[StreamEvent]:
        """
        Add C{data} and return every event it completes, in order.

        @raise MessageParseError: if the stream is broken; the error's
            C{message} is set when a request's head parsed, so it can be
            answered before the connection closes.
        """
        if self._error is not None:
            raise self._error
        self._buffer += data
        events: list[StreamEvent] = []
        try:
            while self._next(events):
                pass
        except MessageParseError as e:
            self._error = e
            self._buffer.clear()
            if not events:
                raise
            # Hand over the messages that came before the fault first; the
            # error is in L{error} now and raised by the next call.
        return events

    @property
    def error(self) -> MessageParseError | None:
        """The error that broke the stream, or C{None} while it is sound."""
        return self._error

    def _next(self, events: list[StreamEvent]) -> bool:
        buf = self._buffer
        limits = self._limits
        if self._pending is None:
            if buf[:2] == b"\r\n":
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    events.append(_PING)
                    return True
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    return False  # may still become a ping
                del buf[:2]
                events.append(_PONG)
                return True
            end = buf.find(b"\r\n\r\n", self._scanned)
            if end < 0:
                if len(buf) > limits.max_message_size:
                    raise _error("header section too large", 513)
                self._scanned = max(0, len(buf) - 3)
                return False
            message, lengths = _parse_head(bytes(buf[:end]), limits)
            if not lengths:
                raise _error("missing Content-Length on a stream", message=message)
            length = _content_length(lengths, message)
            if length > limits.max_body_size:
                raise _error("body too large", 413, message)
            total = end + 4 + length
            if total > limits.max_message_size:
                raise _error("message too large", 513, message)
            self._pending = (message, end + 4, total)
        message, body_start, total = self._pending
        if len(buf) < total:
            return False
        if total > body_start:
            message = message.with_body(bytes(buf[body_start:total]))
        del buf[:total]
        self._pending = None
        self._scanned = 0
        events.append(message)
        return True
