# -*- test-case-name: sipedge.test.test_message_sdp -*-
"""
SDP session descriptions (RFC 8866): parse, inspect, rewrite, serialize.

A session description is kept as its lines, in order, each with its raw text
and its own line ending, so that for any body that parses::

    parse_sdp(body).to_bytes() == body

Typed views (L{Origin}, L{Connection}, L{Media}, L{Attribute}, L{RtpMap},
L{Fmtp}, L{Rtcp}, L{Crypto}, L{Direction}) parse a line's value on demand;
builders return new values with the lines they change in canonical form and
every other line untouched.

L{parse_sdp} checks the lines a media relay depends on (C{v=}, C{o=}, C{c=},
C{m=}); attribute views (C{a=rtcp}, C{a=crypto}, ...) are parsed when asked
for and raise L{MessageParseError} then if malformed. Builders given values
that cannot be written as valid SDP raise C{ValueError}.

The body is decoded as UTF-8 with C{surrogateescape}, so any octets survive a
round trip.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import attrs

from sipedge.error import MessageParseError

__all__ = [
    "Attribute",
    "Connection",
    "Crypto",
    "Direction",
    "Fmtp",
    "KeyParam",
    "Line",
    "Media",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SessionDescription",
    "parse_sdp",
]

_TYPE_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_EOLS = ("\r\n", "\n", "")
# RFC 8866 9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39
#                        / %x41-5A / %x5E-7E
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_PORT_RE = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_NUM5_RE = re.compile(r"[0-9]{1,5}")
_IP4_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
_MULTICAST_RE = re.compile(r"[0-9]{1,10}(?:/[0-9]{1,10})?")
_VERSION_RE = re.compile(r"[0-9]{1,64}")
_TAG_RE = re.compile(r"[0-9]{1,9}")
_PT_RE = re.compile(r"[0-9]{1,3}")
_CLOCK_RE = re.compile(r"[0-9]{1,10}")
_PTIME_RE = re.compile(r"([0-9]{1,9})(\.[0-9]{1,9})?")
_KEY_SALT_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LIFETIME_RE = re.compile(r"(?:2\^)?[0-9]+")
_MKI_RE = re.compile(r"([0-9]{1,128}):([0-9]{1,3})")
_WS = " \t"

_S = TypeVar("_S", bound="_Section")
_V = TypeVar("_V")


def _error(reason: str) -> MessageParseError:
    return MessageParseError(reason, status_hint=400)


def _show(text: str) -> str:
    """C{text} for an error reason: repr'd, cut at 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def _port(text: str, what: str) -> int:
    if _NUM5_RE.fullmatch(text) is None:
        raise _error(f"bad {what} {_show(text)}")
    port = int(text)
    if port > 65535:
        raise _error(f"{what} {port} out of range 0..65535")
    return port


def _is_hostname(text: str) -> bool:
    """
    True for a host name (RFC 8866 9 FQDN; RFC 1123 labels): dot-separated
    labels of letters, digits and inner hyphens, the last one not numeric.
    """
    if not text or len(text) > 255:
        return False
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    for label in labels:
        if len(label) > 63 or _LABEL_RE.fullmatch(label) is None:
            return False
    return not labels[-1].isdigit()


def _check_address(addrtype: str, address: str) -> None:
    """
    Check a unicast or multicast address (without C{/ttl/count}) of address
    type C{IP4} or C{IP6} (RFC 8866 5.7). IPv6 literals are not bracketed in
    SDP (RFC 5118 4.6).
    """
    if addrtype == "IP4":
        m = _IP4_RE.fullmatch(address)
        if m is not None:
            if all(int(octet) <= 255 for octet in m.groups()):
                return
            raise _error(f"bad IP4 address {_show(address)}")
        if _is_hostname(address):
            return
        raise _error(f"bad IP4 address or host name {_show(address)}")
    if address.startswith("["):
        raise _error(f"IP6 address must not be bracketed in SDP: {_show(address)}")
    if ":" in address:
        if "%" not in address and len(address) <= 45:
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                pass
            else:
                return
        raise _error(f"bad IP6 address {_show(address)}")
    if _is_hostname(address):
        return
    raise _error(f"bad IP6 address or host name {_show(address)}")


def _attr_name(value: str) -> str:
    """The name of the attribute in an C{a=} line's value."""
    return value.partition(":")[0].strip(_WS)


def _checked(view: _V, parse: Callable[[str], _V], text: str) -> str:
    """
    Return C{text}, the canonical form of C{view}, after checking it parses
    back to an equal value.

    @raise ValueError: if it does not, i.e. C{view} holds values that cannot
        be written as valid SDP.
    """
    try:
        again = parse(text)
    except MessageParseError as e:
        raise ValueError(f"{view!r} is not valid SDP ({e.reason})") from None
    if again != view:
        raise ValueError(f"{view!r} does not survive writing as {text!r}")
    return text


def _str_tuple(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _line_tuple(items: Iterable[Line]) -> tuple[Line, ...]:
    return tuple(items)


def _key_param_tuple(items: Iterable[KeyParam]) -> tuple[KeyParam, ...]:
    return tuple(items)


def _media_tuple(items: Iterable[MediaDescription]) -> tuple[MediaDescription, ...]:
    return tuple(items)


# --- lines -------------------------------------------------------------------


@attrs.frozen
class Line:
    """
    One C{<type>=<value>} line (RFC 8866 5): C{type} is one lower-case
    letter, C{value} the raw text after C{=} (trailing whitespace included),
    C{eol} the line ending used: C{"\\r\\n"}, C{"\\n"} (RFC 8866 5 asks
    parsers to accept it) or C{""} (only for the very last line).
    """

    type: str
    value: str
    eol: str = "\r\n"

    def __attrs_post_init__(self) -> None:
        if len(self.type) != 1 or self.type not in _TYPE_LETTERS:
            raise ValueError(f"SDP line type must be one lower-case letter: {self.type!r}")
        if "\r" in self.value or "\n" in self.value or "\0" in self.value:
            raise ValueError(f"CR, LF or NUL in SDP line value {self.value!r}")
        if self.eol not in _EOLS:
            raise ValueError(f"bad SDP line ending {self.eol!r}")

    @property
    def text(self) -> str:
        """The line without its line ending."""
        return f"{self.type}={self.value}"


# --- typed views of lines ----------------------------------------------------


@attrs.frozen
class Origin:
    """
    C{o=<username> <sess-id> <sess-version> <nettype> <addrtype>
    <unicast-address>} (RFC 8866 5.2). C{sess_id} and C{address} are kept as
    written; C{sess_version} is a number (RFC 3264 8 has it incremented on
    every change).
    """

    username: str
    sess_id: str
    sess_version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        """
        Parse an C{o=} value. A user name with spaces (not allowed, but
        sent) is taken as everything before the last five fields.

        @raise MessageParseError: on too few fields or a non-numeric
            sess-version.
        """
        fields = value.split()
        if len(fields) < 6:
            raise _error(f"o= needs 6 fields: {_show(value)}")
        sess_id, version, nettype, addrtype, address = fields[-5:]
        if _VERSION_RE.fullmatch(version) is None:
            raise _error(f"o= sess-version is not a number: {_show(version)}")
        return cls(" ".join(fields[:-5]), sess_id, int(version), nettype, addrtype, address)

    def to_value(self) -> str:
        """The canonical C{o=} value."""
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )

    def next_version(self) -> Origin:
        """
        This origin with sess-version incremented, as must be done when a
        changed description is sent in the same session (RFC 3264 8).
        """
        return attrs.evolve(self, sess_version=self.sess_version + 1)


@attrs.frozen
class Connection:
    """
    C{c=<nettype> <addrtype> <connection-address>} (RFC 8866 5.7).

    For nettype C{IN}, C{addrtype} is C{IP4} or C{IP6} and C{address} a
    dotted quad, an unbracketed IPv6 literal (RFC 5118 4.6) or a host name.
    C{ttl_count} is the raw text after the address's first C{/} (multicast
    C{ttl[/count]} for IP4, C{count} for IP6), or C{None}. Other network
    types are kept as written, unchecked.
    """

    nettype: str
    addrtype: str
    address: str
    ttl_count: str | None = None

    @classmethod
    def parse(cls, value: str) -> Connection:
        """
        Parse a C{c=} value (also the address part of C{a=rtcp}).

        @raise MessageParseError: on a wrong number of fields, an unknown
            address type for C{IN}, or a bad address.
        """
        fields = value.split()
        if len(fields) != 3:
            raise _error(f"c= needs 3 fields: {_show(value)}")
        nettype, addrtype, address = fields
        if nettype.upper() != "IN":
            if not _is_token(nettype) or not _is_token(addrtype):
                raise _error(f"bad c= network or address type: {_show(value)}")
            return cls(nettype, addrtype, address)
        kind = addrtype.upper()
        if kind not in ("IP4", "IP6"):
            raise _error(f"unknown c= address type {_show(addrtype)}")
        host, slash, ttl_count = address.partition("/")
        if slash and _MULTICAST_RE.fullmatch(ttl_count) is None:
            raise _error(f"bad c= multicast ttl/count {_show(address)}")
        _check_address(kind, host)
        return cls(nettype, addrtype, host, ttl_count if slash else None)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """
        C{IN IP6 address} if C{address} contains a colon, C{IN IP4 address}
        otherwise.

        @raise ValueError: if C{address} is not a valid address or host name.
        """
        conn = cls("IN", "IP6" if ":" in address else "IP4", address)
        _checked(conn, Connection.parse, conn.to_value())
        return conn

    def to_value(self) -> str:
        """The canonical C{c=} value."""
        suffix = "" if self.ttl_count is None else f"/{self.ttl_count}"
        return f"{self.nettype} {self.addrtype} {self.address}{suffix}"

    @property
    def is_unspecified(self) -> bool:
        """
        True for C{IN IP4 0.0.0.0} (the RFC 2543 hold address, RFC 3264 8.4)
        and the IPv6 unspecified address C{::}.
        """
        if self.nettype.upper() != "IN":
            return False
        if self.addrtype.upper() == "IP4":
            return self.address == "0.0.0.0"
        try:
            return ipaddress.IPv6Address(self.address).is_unspecified
        except ValueError:
            return False


@attrs.frozen
class Media:
    """
    C{m=<media> <port>[/<number of ports>] <proto> <fmt> ...}
    (RFC 8866 5.14). C{proto} is e.g. C{RTP/AVP}, C{RTP/SAVP}, C{RTP/SAVPF},
    C{UDP/TLS/RTP/SAVP}; a port of 0 rejects the stream (RFC 3264 6).
    """

    media_type: str
    port: int
    proto: str
    formats: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    port_count: int | None = None

    @classmethod
    def parse(cls, value: str) -> Media:
        """
        Parse an C{m=} value. An empty format list is accepted.

        @raise MessageParseError: on missing fields, a bad media type or
            proto, or a port outside 0..65535.
        """
        fields = value.split()
        if len(fields) < 3:
            raise _error(f"m= needs media, port and proto: {_show(value)}")
        media_type, port_text, proto = fields[:3]
        if not _is_token(media_type):
            raise _error(f"bad m= media type {_show(media_type)}")
        m = _PORT_RE.fullmatch(port_text)
        if m is None:
            raise _error(f"bad m= port {_show(port_text)}")
        port = int(m.group(1))
        if port > 65535:
            raise _error(f"m= port {port} out of range 0..65535")
        count = None if m.group(2) is None else int(m.group(2))
        if count == 0:
            raise _error(f"bad m= number of ports {_show(port_text)}")
        if _PROTO_RE.fullmatch(proto) is None:
            raise _error(f"bad m= proto {_show(proto)}")
        return cls(media_type, port, proto, tuple(fields[3:]), count)

    def to_value(self) -> str:
        """The canonical C{m=} value."""
        count = "" if self.port_count is None else f"/{self.port_count}"
        formats = "".join(f" {fmt}" for fmt in self.formats)
        return f"{self.media_type} {self.port}{count} {self.proto}{formats}"


@attrs.frozen
class Attribute:
    """
    C{a=<name>} or C{a=<name>:<value>} (RFC 8866 5.13); C{value} is C{None}
    for a property attribute. The view strips surrounding whitespace.
    """

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        """Split an C{a=} value at its first colon. Never raises."""
        name, colon, value = text.partition(":")
        return cls(name.strip(_WS), value.strip(_WS) if colon else None)

    def to_value(self) -> str:
        """The canonical C{a=} value."""
        return self.name if self.value is None else f"{self.name}:{self.value}"


@attrs.frozen
class RtpMap:
    """
    C{a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding
    parameters>]} (RFC 8866 6.6).
    """

    payload_type: int
    encoding_name: str
    clock_rate: int
    encoding_params: str | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        """@raise MessageParseError: if C{value} is not an rtpmap value."""
        fields = value.split(None, 1)
        if len(fields) != 2 or _PT_RE.fullmatch(fields[0]) is None:
            raise _error(f"bad a=rtpmap {_show(value)}")
        parts = fields[1].strip().split("/")
        if len(parts) not in (2, 3) or not _is_token(parts[0]):
            raise _error(f"bad a=rtpmap encoding {_show(value)}")
        if _CLOCK_RE.fullmatch(parts[1]) is None:
            raise _error(f"bad a=rtpmap clock rate {_show(value)}")
        if len(parts) == 3 and not _is_token(parts[2]):
            raise _error(f"bad a=rtpmap encoding parameters {_show(value)}")
        payload_type = int(fields[0])
        if payload_type > 127:
            raise _error(f"a=rtpmap payload type {payload_type} out of range")
        params = parts[2] if len(parts) == 3 else None
        return cls(payload_type, parts[0], int(parts[1]), params)

    def to_value(self) -> str:
        """The canonical value after C{a=rtpmap:}."""
        params = "" if self.encoding_params is None else f"/{self.encoding_params}"
        return f"{self.payload_type} {self.encoding_name}/{self.clock_rate}{params}"

    def to_attribute(self) -> Attribute:
        """This rtpmap as an L{Attribute}."""
        return Attribute("rtpmap", self.to_value())


@attrs.frozen
class Fmtp:
    """
    C{a=fmtp:<format> <format specific parameters>} (RFC 8866 6.15); the
    parameters are kept raw.
    """

    format: str
    params: str = ""

    @classmethod
    def parse(cls, value: str) -> Fmtp:
        """@raise MessageParseError: if there is no format."""
        fields = value.strip().split(None, 1)
        if not fields:
            raise _error("empty a=fmtp")
        return cls(fields[0], fields[1].strip() if len(fields) == 2 else "")

    def to_value(self) -> str:
        """The canonical value after C{a=fmtp:}."""
        return f"{self.format} {self.params}" if self.params else self.format

    def to_attribute(self) -> Attribute:
        """This fmtp as an L{Attribute}."""
        return Attribute("fmtp", self.to_value())


@attrs.frozen
class Rtcp:
    """
    C{a=rtcp:<port> [<nettype> <addrtype> <connection-address>]}
    (RFC 3605 2.1): where RTCP goes when it is not on the RTP port + 1.
    """

    port: int
    connection: Connection | None = None

    @classmethod
    def parse(cls, value: str) -> Rtcp:
        """@raise MessageParseError: on a bad port or address."""
        fields = value.split(None, 1)
        if not fields:
            raise _error("empty a=rtcp")
        port = _port(fields[0], "a=rtcp port")
        if len(fields) == 1:
            return cls(port)
        return cls(port, Connection.parse(fields[1]))

    def to_value(self) -> str:
        """The canonical value after C{a=rtcp:}."""
        if self.connection is None:
            return str(self.port)
        return f"{self.port} {self.connection.to_value()}"

    def to_attribute(self) -> Attribute:
        """This rtcp attribute as an L{Attribute}."""
        return Attribute("rtcp", self.to_value())


@attrs.frozen
class KeyParam:
    """
    One SDES key parameter, C{inline:<key||salt>["|"lifetime]["|"MKI:length]}
    (RFC 4568 6.1, 9.2). C{key_salt} is the base64 text as written,
    C{lifetime} raw (C{2^20}, C{1048576}) or C{None}, C{mki}
    C{(value, length)} or C{None}.
    """

    key_salt: str
    lifetime: str | None = None
    mki: tuple[int, int] | None = None

    @classmethod
    def parse(cls, text: str) -> KeyParam:
        """@raise MessageParseError: on another key method or bad fields."""
        method, colon, info = text.partition(":")
        if not colon or method.lower() != "inline":
            raise _error(f"unsupported a=crypto key method {_show(text)}")
        parts = info.split("|")
        if len(parts) > 3 or _KEY_SALT_RE.fullmatch(parts[0]) is None:
            raise _error(f"bad a=crypto key-info {_show(text)}")
        lifetime = None
        mki = None
        rest = parts[1:]
        if rest and ":" not in rest[0]:
            lifetime = rest.pop(0)
            if _LIFETIME_RE.fullmatch(lifetime) is None:
                raise _error(f"bad a=crypto lifetime {_show(text)}")
        if rest:
            m = _MKI_RE.fullmatch(rest.pop(0))
            if m is None or rest:
                raise _error(f"bad a=crypto MKI {_show(text)}")
            mki = (int(m.group(1)), int(m.group(2)))
        return cls(parts[0], lifetime, mki)

    @classmethod
    def from_bytes(
        cls,
        key_salt: bytes,
        lifetime: str | None = None,
        mki: tuple[int, int] | None = None,
    ) -> KeyParam:
        """A key parameter for the concatenated master key and salt."""
        return cls(base64.b64encode(key_salt).decode("ascii"), lifetime, mki)

    def key_salt_bytes(self) -> bytes:
        """
        The decoded master key and salt (missing base64 padding tolerated).

        @raise MessageParseError: if C{key_salt} is not valid base64.
        """
        text = self.key_salt.rstrip("=")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _error(f"bad a=crypto base64 key {_show(self.key_salt)}") from None

    def to_text(self) -> str:
        """The canonical C{inline:...} text."""
        text = f"inline:{self.key_salt}"
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki[0]}:{self.mki[1]}"
        return text


@attrs.frozen
class Crypto:
    """
    C{a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]}
    (RFC 4568 4, 9.1): C{key_params} holds one or more L{KeyParam}s
    (separated by C{;}), C{session_params} the raw text after them or
    C{None}.
    """

    tag: int
    suite: str
    key_params: tuple[KeyParam, ...] = attrs.field(converter=_key_param_tuple)
    session_params: str | None = None

    @classmethod
    def parse(cls, value: str) -> Crypto:
        """@raise MessageParseError: if C{value} is not a crypto value."""
        fields = value.split(None, 3)
        if len(fields) < 3:
            raise _error(f"a=crypto needs tag, suite and key-params: {_show(value)}")
        tag, suite, key_params = fields[:3]
        if _TAG_RE.fullmatch(tag) is None:
            raise _error(f"bad a=crypto tag {_show(tag)}")
        if not _is_token(suite):
            raise _error(f"bad a=crypto suite {_show(suite)}")
        params = tuple(KeyParam.parse(kp) for kp in key_params.split(";"))
        session = fields[3].strip() if len(fields) == 4 else None
        return cls(int(tag), suite, params, session or None)

    def to_value(self) -> str:
        """The canonical value after C{a=crypto:}."""
        keys = ";".join(kp.to_text() for kp in self.key_params)
        session = f" {self.session_params}" if self.session_params else ""
        return f"{self.tag} {self.suite} {keys}{session}"

    def to_attribute(self) -> Attribute:
        """This crypto attribute as an L{Attribute}."""
        return Attribute("crypto", self.to_value())


class Direction(enum.Enum):
    """The media direction attributes (RFC 8866 6.7, RFC 3264 5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def reverse(self) -> Direction:
        """
        The direction seen from the other side: sendonly and recvonly swap
        (what an answer mirrors, RFC 3264 6.1).
        """
        return _REVERSE[self]


_REVERSE = {
    Direction.SENDRECV: Direction.SENDRECV,
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}
_DIRECTIONS = {d.value: d for d in Direction}


# --- sections ----------------------------------------------------------------


def _fix_eols(lines: list[Line], eol: str) -> None:
    """Give every line but the last a line ending (only the last may lack one)."""
    for i in range(len(lines) - 1):
        if not lines[i].eol:
            lines[i] = attrs.evolve(lines[i], eol=eol)


class _Section:
    """Methods shared by the session-level section and media descriptions."""

    lines: tuple[Line, ...]

    def _eol(self) -> str:
        """The line ending for new lines: the first one used here."""
        for line in self.lines:
            if line.eol:
                return line.eol
        return "\r\n"

    def _replaced(
        self: _S,
        match: Callable[[Line], bool],
        new: Iterable[tuple[str, str]],
        position: Callable[[list[Line]], int] | None = None,
    ) -> _S:
        """
        Drop the lines that C{match} and put C{new} (type, value) lines
        where the first of them was, else at C{position(kept)} or the end.
        """
        eol = self._eol()
        kept: list[Line] = []
        at = None
        for line in self.lines:
            if match(line):
                if at is None:
                    at = len(kept)
            else:
                kept.append(line)
        if at is None:
            at = len(kept) if position is None else position(kept)
        kept[at:at] = [Line(t, v, eol) for t, v in new]
        _fix_eols(kept, eol)
        return attrs.evolve(self, lines=tuple(kept))  # type: ignore[misc]

    def _values(self, type: str) -> Iterator[str]:
        return (line.value for line in self.lines if line.type == type)

    def _attribute_values(self, name: str) -> Iterator[str | None]:
        for line in self.lines:
            if line.type == "a" and _attr_name(line.value) == name:
                yield Attribute.parse(line.value).value

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        """The C{a=} lines (RFC 8866 5.13), in order."""
        return tuple(Attribute.parse(v) for v in self._values("a"))

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called C{name} (case-sensitive), or C{None}."""
        for value in self._attribute_values(name):
            return Attribute(name, value)
        return None

    def attribute_values(self, name: str) -> tuple[str | None, ...]:
        """The values of every attribute called C{name}, in order."""
        return tuple(self._attribute_values(name))

    def has_attribute(self, name: str) -> bool:
        """True if an attribute called C{name} is present."""
        return self.attribute(name) is not None

    @property
    def direction(self) -> Direction | None:
        """
        The first direction attribute of this section (RFC 8866 6.7), or
        C{None} if there is none.
        """
        for line in self.lines:
            if line.type == "a":
                found = _DIRECTIONS.get(_attr_name(line.value))
                if found is not None:
                    return found
        return None

    def with_attribute(
        self: _S,
        attribute: Attribute | str,
        value: str | None = None,
        *,
        replace: bool = True,
    ) -> _S:
        """
        Add an attribute, given as an L{Attribute} or a name and value.
        With C{replace} (the default) every attribute of that name is
        removed and the new one put where the first was (else at the end);
        without, it is appended.

        @raise ValueError: on a name that is not a token (RFC 8866 9) or a
            value with CR, LF or NUL.
        """
        if isinstance(attribute, str):
            attribute = Attribute(attribute, value)
        elif value is not None:
            raise ValueError("give the value in the Attribute, not separately")
        name = attribute.name
        if not _is_token(name) or ":" in name:
            raise ValueError(f"bad SDP attribute name {name!r}")
        new = [("a", attribute.to_value())]
        if not replace:
            return self._replaced(lambda line: False, new)
        return self._replaced(lambda line: line.type == "a" and _attr_name(line.value) == name, new)

    def without_attributes(self: _S, *names: str) -> _S:
        """This section without any attribute called one of C{names}."""
        wanted = frozenset(names)
        return self._replaced(
            lambda line: line.type == "a" and _attr_name(line.value) in wanted, ()
        )

    def with_direction(self: _S, direction: Direction | None) -> _S:
        """
        This section with its direction attributes replaced by C{direction}
        (RFC 3264 5.1, 8.4), or removed if it is C{None}.
        """
        new = () if direction is None else [("a", direction.value)]
        return self._replaced(
            lambda line: line.type == "a" and _attr_name(line.value) in _DIRECTIONS,
            new,
        )


@attrs.frozen
class MediaDescription(_Section):
    """
    A media description (RFC 8866 5.14): its C{m=} line and the C{i=},
    C{c=}, C{b=}, C{k=}, C{a=} (and any unknown) lines after it, in order.
    """

    lines: tuple[Line, ...] = attrs.field(converter=_line_tuple)

    def __attrs_post_init__(self) -> None:
        if not self.lines or self.lines[0].type != "m":
            raise ValueError("a media description starts with an m= line")
        if any(line.type in "mv" for line in self.lines[1:]):
            raise ValueError("a media description has one m= line and no v= line")

    @property
    def media(self) -> Media:
        """The C{m=} line (RFC 8866 5.14)."""
        return Media.parse(self.lines[0].value)

    @property
    def media_type(self) -> str:
        """C{audio}, C{video}, C{application}, ..."""
        return self.media.media_type

    @property
    def port(self) -> int:
        """The transport port; 0 for a rejected stream (RFC 3264 6)."""
        return self.media.port

    @property
    def port_count(self) -> int | None:
        """The number of ports after C{/}, or C{None}."""
        return self.media.port_count

    @property
    def proto(self) -> str:
        """The transport protocol, e.g. C{RTP/AVP} or C{RTP/SAVP}."""
        return self.media.proto

    @property
    def formats(self) -> tuple[str, ...]:
        """The media formats (RTP payload types for RTP)."""
        return self.media.formats

    @property
    def connection(self) -> Connection | None:
        """The first media-level C{c=} line (RFC 8866 5.7), or C{None}."""
        for value in self._values("c"):
            return Connection.parse(value)
        return None

    @property
    def connections(self) -> tuple[Connection, ...]:
        """Every media-level C{c=} line (there may be several, RFC 8866 5.7)."""
        return tuple(Connection.parse(v) for v in self._values("c"))

    @property
    def rtpmaps(self) -> tuple[RtpMap, ...]:
        """The C{a=rtpmap} attributes (RFC 8866 6.6)."""
        return tuple(RtpMap.parse(v or "") for v in self._attribute_values("rtpmap"))

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The C{a=rtpmap} for C{payload_type}, or C{None}."""
        for rtpmap in self.rtpmaps:
            if rtpmap.payload_type == payload_type:
                return rtpmap
        return None

    @property
    def fmtps(self) -> tuple[Fmtp, ...]:
        """The C{a=fmtp} attributes (RFC 8866 6.15)."""
        return tuple(Fmtp.parse(v or "") for v in self._attribute_values("fmtp"))

    @property
    def rtcp(self) -> Rtcp | None:
        """The C{a=rtcp} attribute (RFC 3605 2.1), or C{None}."""
        for value in self._attribute_values("rtcp"):
            return Rtcp.parse(value or "")
        return None

    @property
    def rtcp_mux(self) -> bool:
        """True if C{a=rtcp-mux} (RFC 5761 5.1.1) is present."""
        return self.has_attribute("rtcp-mux")

    @property
    def crypto(self) -> tuple[Crypto, ...]:
        """The C{a=crypto} attributes (RFC 4568 4), in order."""
        return tuple(Crypto.parse(v or "") for v in self._attribute_values("crypto"))

    @property
    def ptime(self) -> float | None:
        """
        The C{a=ptime} packet time in milliseconds (RFC 8866 6.4): an C{int}
        when written without a fraction, else a C{float}; C{None} if absent.
        """
        for value in self._attribute_values("ptime"):
            text = value or ""
            m = _PTIME_RE.fullmatch(text)
            if m is None:
                raise _error(f"bad a=ptime {_show(text)}")
            return float(m.group(0)) if m.group(2) else int(m.group(1))
        return None

    def with_media(self, media: Media) -> MediaDescription:
        """
        This media description with its C{m=} line replaced by C{media}.

        @raise ValueError: if C{media} cannot be written as a valid C{m=}.
        """
        text = _checked(media, Media.parse, media.to_value())
        first = attrs.evolve(self.lines[0], value=text)
        return attrs.evolve(self, lines=(first, *self.lines[1:]))

    def with_port(self, port: int, port_count: int | None = None) -> MediaDescription:
        """
        This media description with C{port} (and C{port_count}, C{None} for
        none) on its C{m=} line.

        @raise ValueError: if C{port} is outside 0..65535.
        """
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} out of range 0..65535")
        media = attrs.evolve(self.media, port=port, port_count=port_count)
        return self.with_media(media)

    def with_proto(self, proto: str) -> MediaDescription:
        """This media description with C{proto} (e.g. C{RTP/SAVP}) on its C{m=}."""
        return self.with_media(attrs.evolve(self.media, proto=proto))

    def with_connection(self, connection: Connection | None) -> MediaDescription:
        """
        This media description with its C{c=} lines replaced by
        C{connection} (placed after C{m=} and C{i=}, RFC 8866 5), or removed
        if it is C{None}.

        @raise ValueError: if C{connection} is not a valid C{c=} value.
        """
        new = []
        if connection is not None:
            text = _checked(connection, Connection.parse, connection.to_value())
            new.append(("c", text))
        return self._replaced(lambda line: line.type == "c", new, _after_m_and_i)

    def with_crypto(self, crypto: Iterable[Crypto]) -> MediaDescription:
        """
        This media description with its C{a=crypto} lines replaced by
        C{crypto}, in order (RFC 4568 4); an empty iterable removes them.

        @raise ValueError: if one of them is not a valid crypto value.
        """
        new = [("a", "crypto:" + _checked(c, Crypto.parse, c.to_value())) for c in crypto]
        return self._replaced(
            lambda line: line.type == "a" and _attr_name(line.value) == "crypto", new
        )

    def with_rtcp(self, rtcp: Rtcp | None) -> MediaDescription:
        """
        This media description with its C{a=rtcp} replaced by C{rtcp}
        (RFC 3605 2.1), or removed if it is C{None}.

        @raise ValueError: if C{rtcp} is not a valid rtcp value.
        """
        if rtcp is None:
            return self.without_attributes("rtcp")
        _checked(rtcp, Rtcp.parse, rtcp.to_value())
        return self.with_attribute(rtcp.to_attribute())

    def with_rtcp_mux(self, enabled: bool) -> MediaDescription:
        """This media description with or without C{a=rtcp-mux} (RFC 5761 5.1.1)."""
        if not enabled:
            return self.without_attributes("rtcp-mux")
        if self.rtcp_mux:
            return self
        return self.with_attribute("rtcp-mux")


def _after_m_and_i(lines: list[Line]) -> int:
    """Where a media-level C{c=} goes: after C{m=} and C{i=} (RFC 8866 5)."""
    at = 1
    while at < len(lines) and lines[at].type == "i":
        at += 1
    return at


def _before_session_tail(lines: list[Line]) -> int:
    """
    Where a session-level C{c=} goes: before the first C{b= t= r= z= k= a=}
    line (RFC 8866 5 order C{v o s i u e p c b t r z k a}).
    """
    for at in range(1, len(lines)):
        if lines[at].type in "btrzka":
            return at
    return len(lines)


@attrs.frozen
class SessionDescription(_Section):
    """
    A session description (RFC 8866 5): the session-level C{lines}
    (starting with C{v=}), the L{MediaDescription}s, and C{trailer}, the
    empty lines some senders put after the last line (kept for the round
    trip).
    """

    lines: tuple[Line, ...] = attrs.field(converter=_line_tuple)
    media: tuple[MediaDescription, ...] = attrs.field(default=(), converter=_media_tuple)
    trailer: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.lines or self.lines[0].type != "v":
            raise ValueError("a session description starts with a v= line")
        if any(line.type in "mv" for line in self.lines[1:]):
            raise ValueError("session-level lines hold no m= and one v= line")
        if self.trailer.replace("\r\n", "").replace("\n", ""):
            raise ValueError(f"trailer must be empty lines only: {self.trailer!r}")

    def to_bytes(self) -> bytes:
        """
        Serialize: lines as kept, with their line endings (exactly the parsed
        bytes if nothing was changed).
        """
        out: list[str] = []
        default = self._eol()
        missing = False
        for section in (self, *self.media):
            for line in section.lines:
                if missing:
                    out.append(default)
                out += (line.type, "=", line.value, line.eol)
                missing = not line.eol
        if missing and self.trailer:
            out.append(default)
        out.append(self.trailer)
        return "".join(out).encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @property
    def origin(self) -> Origin | None:
        """The C{o=} line (RFC 8866 5.2), or C{None} if missing."""
        for value in self._values("o"):
            return Origin.parse(value)
        return None

    @property
    def session_name(self) -> str | None:
        """The C{s=} text (RFC 8866 5.3), or C{None} if missing."""
        for value in self._values("s"):
            return value
        return None

    @property
    def connection(self) -> Connection | None:
        """The session-level C{c=} line (RFC 8866 5.7), or C{None}."""
        for value in self._values("c"):
            return Connection.parse(value)
        return None

    def _media(self, m: int | MediaDescription) -> MediaDescription:
        return self.media[m] if isinstance(m, int) else m

    def media_connection(self, m: int | MediaDescription) -> Connection | None:
        """
        The connection a media description uses: its own C{c=}, else the
        session-level one, else C{None} (RFC 8866 5.7). C{m} is an index
        into C{media} or a media description.
        """
        conn = self._media(m).connection
        return self.connection if conn is None else conn

    def media_direction(self, m: int | MediaDescription) -> Direction:
        """
        The direction of a media description: its own attribute, else the
        session-level one, else C{sendrecv} (RFC 8866 6.7, RFC 3264 5.1).
        """
        direction = self._media(m).direction
        if direction is None:
            direction = self.direction
        return Direction.SENDRECV if direction is None else direction

    def is_on_hold(self, m: int | MediaDescription) -> bool:
        """
        True if a media description puts the stream on hold: its direction
        is sendonly or inactive (RFC 3264 8.4), or it uses the RFC 2543 hold
        address C{c=IN IP4 0.0.0.0} without ICE (ICE and trickle ICE
        offers use 0.0.0.0 as a placeholder, RFC 8840 4.1.1).
        """
        media = self._media(m)
        if self.media_direction(media) in (Direction.SENDONLY, Direction.INACTIVE):
            return True
        conn = self.media_connection(media)
        if conn is None or conn.addrtype.upper() != "IP4" or not conn.is_unspecified:
            return False
        ice = ("ice-ufrag", "candidate")
        return not any(s.has_attribute(n) for s in (media, self) for n in ice)

    def with_media(self, index: int, media: MediaDescription) -> SessionDescription:
        """This description with C{self.media[index]} replaced by C{media}."""
        new = list(self.media)
        new[index] = media
        eol = self._eol()
        # only the very last line of the document may lack a line ending
        for i in range(len(new) if self.trailer else len(new) - 1):
            last = new[i].lines[-1]
            if not last.eol:
                lines = (*new[i].lines[:-1], attrs.evolve(last, eol=eol))
                new[i] = attrs.evolve(new[i], lines=lines)
        return attrs.evolve(self, media=tuple(new))

    def with_origin(self, origin: Origin) -> SessionDescription:
        """
        This description with its C{o=} line replaced by C{origin} (or
        added after C{v=}).

        @raise ValueError: if C{origin} is not a valid C{o=} value.
        """
        text = _checked(origin, Origin.parse, origin.to_value())
        return self._replaced(lambda line: line.type == "o", [("o", text)], lambda _: 1)

    def with_connection(self, connection: Connection | None) -> SessionDescription:
        """
        This description with its session-level C{c=} replaced by
        C{connection} (or added in RFC 8866 5 order), or removed if C{None}.

        @raise ValueError: if C{connection} is not a valid C{c=} value.
        """
        new = []
        if connection is not None:
            text = _checked(connection, Connection.parse, connection.to_value())
            new.append(("c", text))
        return self._replaced(lambda line: line.type == "c", new, _before_session_tail)

    def _replaced(
        self,
        match: Callable[[Line], bool],
        new: Iterable[tuple[str, str]],
        position: Callable[[list[Line]], int] | None = None,
    ) -> SessionDescription:
        result = _Section._replaced(self, match, new, position)
        if (self.media or self.trailer) and not result.lines[-1].eol:
            # only the very last line of the document may lack a line ending
            last = attrs.evolve(result.lines[-1], eol=result._eol())
            result = attrs.evolve(result, lines=(*result.lines[:-1], last))
        return result


# --- parsing -----------------------------------------------------------------


def parse_sdp(body: bytes) -> SessionDescription:
    """
    Parse an SDP body (RFC 8866 5).

    Lines end with CRLF or a bare LF (RFC 8866 5); the last may lack one, and
    empty lines at the end are kept in C{trailer}. C{v=0} must come first;
    every line must be C{<type>=<value>} with a lower-case letter type
    (unknown types are kept). C{o=}, C{c=} and C{m=} lines are checked; other
    lines, the order of session-level lines and missing C{s=}/C{t=} are not.

    @raise MessageParseError: with a reason if C{body} is not acceptable.
    """
    text = bytes(body).decode("utf-8", "surrogateescape")
    if "\0" in text:
        raise _error("NUL in SDP body")
    if text.count("\r") != text.count("\r\n"):
        raise _error("CR not followed by LF in SDP body")
    pieces = text.split("\n")
    if not pieces[-1]:
        pieces.pop()
        last_eol = None
    else:
        last_eol = len(pieces) - 1
    trailer: list[str] = []
    while pieces and pieces[-1] in ("", "\r"):
        trailer.append("\r\n" if pieces.pop() else "\n")
    if not pieces:
        raise _error("empty SDP body")
    session: list[Line] = []
    media: list[MediaDescription] = []
    current = session
    for index, piece in enumerate(pieces):
        if piece[-1:] == "\r":
            piece = piece[:-1]
            eol = "\r\n"
        else:
            eol = "" if index == last_eol else "\n"
        kind = piece[:1]
        if piece[1:2] != "=" or kind not in _TYPE_LETTERS:
            if not piece:
                raise _error(f"SDP line {index + 1} is empty")
            raise _error(f"SDP line {index + 1} is not <type>=<value>: {_show(piece)}")
        value = piece[2:]
        if index == 0:
            if kind != "v":
                raise _error("SDP must start with v=0 (RFC 8866 5.1)")
            if value.rstrip(_WS) != "0":
                raise _error(f"unsupported SDP version {_show(value)}")
        elif kind in "mcov":
            try:
                if kind == "m":
                    Media.parse(value)
                    if current is not session:
                        media.append(MediaDescription(tuple(current)))
                    current = []
                elif kind == "c":
                    Connection.parse(value)
                elif kind == "o":
                    if current is session:
                        Origin.parse(value)
                else:
                    raise _error("more than one v= line")
            except MessageParseError as e:
                raise _error(f"SDP line {index + 1}: {e.reason}") from None
        current.append(Line(kind, value, eol))
    if current is not session:
        media.append(MediaDescription(tuple(current)))
    trailer.reverse()
    return SessionDescription(tuple(session), tuple(media), "".join(trailer))
