# -*- test-case-name: sipedge.test.test_message_sdp -*-
"""
Typed views of single SDP lines (RFC 8866 5): L{Line}, L{Origin},
L{Connection}, L{Media}, L{Attribute}, L{RtpMap}, L{Fmtp}, L{Rtcp} and
the media L{Direction}.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable

import attrs

from sipedge.message._sdp_grammar import (
    _CLOCK_RE,
    _EOLS,
    _MULTICAST_RE,
    _NO_ITEMS,
    _PORT_RE,
    _PROTO_RE,
    _PT_RE,
    _TYPE_LETTERS,
    _VERSION_RE,
    _WS,
    _check_address,
    _checked,
    _error,
    _is_token,
    _port,
    _show,
    _str_tuple,
)

__all__ = [
    "Attribute",
    "Connection",
    "Direction",
    "Fmtp",
    "Line",
    "Media",
    "Origin",
    "Rtcp",
    "RtpMap",
]


def _line_tuple(items: Iterable[Line]) -> tuple[Line, ...]:
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
    formats: tuple[str, ...] = attrs.field(default=_NO_ITEMS, converter=_str_tuple)
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
