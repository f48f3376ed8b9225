# -*- test-case-name: sipedge.test.test_message_sdp -*-
"""
The methods shared by session-level sections and media descriptions, and
L{MediaDescription} (RFC 8866 5.14).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator
from typing import TypeVar

import attrs

from sipedge.message._sdp_crypto import Crypto
from sipedge.message._sdp_grammar import (
    _NO_VALIDATOR,
    _PTIME_RE,
    _attr_name,
    _checked,
    _error,
    _is_token,
    _show,
)
from sipedge.message._sdp_lines import (
    _DIRECTIONS,
    Attribute,
    Connection,
    Direction,
    Fmtp,
    Line,
    Media,
    Rtcp,
    RtpMap,
    _line_tuple,
)

__all__ = [
    "MediaDescription",
]


_S = TypeVar("_S", bound="_Section")
_T = TypeVar("_T")


# --- sections ----------------------------------------------------------------


def _fix_eols(lines: list[Line], eol: str) -> None:
    """Give every line but the last a line ending (only the last may lack one)."""
    for i in range(len(lines) - 1):
        if not lines[i].eol:
            lines[i] = attrs.evolve(lines[i], eol=eol)


def _interpreted(cls: type[_T]) -> type[_T]:
    """
    Keep a class an ordinary Python class in a compiled build (as
    C{_message._Views}): mypyc compiles an undecorated class to a native
    one, which the attrs classes that inherit from L{_Section} cannot
    subclass. A no-op in the pure-Python build.
    """
    return cls


def _is_line(type: str) -> Callable[[Line], bool]:
    """A predicate: the line is of C{type}."""

    def match(line: Line) -> bool:
        return line.type == type

    return match


def _is_attribute(names: Container[str]) -> Callable[[Line], bool]:
    """A predicate: the line is an attribute with a name in C{names}."""

    def match(line: Line) -> bool:
        return line.type == "a" and _attr_name(line.value) in names

    return match


def _no_line(line: Line) -> bool:
    return False


# The methods of _Section take their predicates from the functions above,
# not from lambdas: mypyc 2.4 crashes (an internal error) compiling a
# lambda that uses a local variable in a method of an interpreted class.
@_interpreted
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
            return self._replaced(_no_line, new)
        return self._replaced(_is_attribute((name,)), new)

    def without_attributes(self: _S, *names: str) -> _S:
        """This section without any attribute called one of C{names}."""
        wanted = frozenset(names)
        return self._replaced(_is_attribute(wanted), ())

    def with_direction(self: _S, direction: Direction | None) -> _S:
        """
        This section with its direction attributes replaced by C{direction}
        (RFC 3264 5.1, 8.4), or removed if it is C{None}.
        """
        new = () if direction is None else [("a", direction.value)]
        return self._replaced(_is_attribute(_DIRECTIONS), new)


@attrs.frozen
class MediaDescription(_Section):
    """
    A media description (RFC 8866 5.14): its C{m=} line and the C{i=},
    C{c=}, C{b=}, C{k=}, C{a=} (and any unknown) lines after it, in order.
    """

    lines: tuple[Line, ...] = attrs.field(converter=_line_tuple, validator=_NO_VALIDATOR)

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
        return self._replaced(_is_line("c"), new, _after_m_and_i)

    def with_crypto(self, crypto: Iterable[Crypto]) -> MediaDescription:
        """
        This media description with its C{a=crypto} lines replaced by
        C{crypto}, in order (RFC 4568 4); an empty iterable removes them.

        @raise ValueError: if one of them is not a valid crypto value.
        """
        new = [("a", "crypto:" + _checked(c, Crypto.parse, c.to_value())) for c in crypto]
        return self._replaced(_is_attribute(("crypto",)), new)

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
