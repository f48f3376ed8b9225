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

from collections.abc import Callable, Iterable

import attrs

from sipedge.error import MessageParseError
from sipedge.message._sdp_grammar import (
    _NO_ITEMS,
    _NO_VALIDATOR,
    _TYPE_LETTERS,
    _WS,
    _checked,
    _error,
    _show,
)
from sipedge.message._sdp_lines import (
    Connection,
    Direction,
    Line,
    Media,
    Origin,
    _line_tuple,
)
from sipedge.message._sdp_section import MediaDescription, _Section

__all__ = [
    "SessionDescription",
    "parse_sdp",
]


def _media_tuple(items: Iterable[MediaDescription]) -> tuple[MediaDescription, ...]:
    return tuple(items)



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

    lines: tuple[Line, ...] = attrs.field(converter=_line_tuple, validator=_NO_VALIDATOR)
    media: tuple[MediaDescription, ...] = attrs.field(default=_NO_ITEMS, converter=_media_tuple)
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
