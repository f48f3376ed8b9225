# -*- test-case-name: sipedge.test.test_message_cut -*-
"""
Relaying a response from the bytes it came in (RFC 3261 16.7 item 3): the
proxy removes the topmost Via value, its own, and forwards the rest as it
is, so it need not serialize the message again.

L{cut_top_via} is held to the slow way by a hypothesis test: for any
datagram that parses as a response, C{parse_datagram(cut_top_via(data))}
equals C{parse_datagram(data).with_via_popped()} whenever it gives bytes,
and for the canonical wire form of a response (what L{serialize} writes)
the bytes are exactly C{serialize(response.with_via_popped())}. Everything
but the top Via field line stays as received: the other fields, their
spelling and order, Content-Length, the body.
"""

from __future__ import annotations

from sipedge.error import MessageParseError
from sipedge.message._lex import split_comma_list

__all__ = ["cut_top_via"]

_CRLF = b"\r\n"
_VIA_NAMES = (b"via", b"v")
_FOLDS = (b" ", b"\t")


def cut_top_via(data: bytes, body_length: int | None = None) -> bytes | None:
    """
    The response C{data} (one datagram, or one message cut from a stream)
    without its topmost Via value, or C{None} where the caller should take
    the slow way (parse, L{Response.with_via_popped}, L{serialize}).

    The top Via field line goes away whole when it holds one value; when it
    holds several (C{Via: a, b}), it becomes C{name: b} as the slow way
    writes it. Leading CRLFs are left out (the parser skips them).

    C{None} for: a request, a head without an empty line after it, a top
    Via field folded over several lines (RFC 3261 7.3.1) or a line before
    it without a colon, no Via field, a multi-value Via
    line that would grow or does not split (an open quote: the slow way
    raises L{MessageParseError}), or a C{body_length} past the end of
    C{data}.

    @param data: bytes that L{parse_datagram} accepts as a response (for
        others the result means nothing).
    @param body_length: the length of the parsed body, if known: the bytes
        past it (which the parser ignores) are left out too. Without it
        they are kept.
    """
    start = 0
    while data.startswith(_CRLF, start):
        start += 2
    if data[start : start + 4].upper() != b"SIP/":
        return None
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    if body_length is None:
        stop = len(data)
    else:
        stop = end + 4 + body_length
        if stop > len(data):
            return None
    # Each line starts after a CRLF; C{crlf} is the one before it. A line
    # that starts with SP or HTAB continues the one before (RFC 3261
    # 7.3.1), so its name is never the top Via's; another line without a
    # colon may be a name folded before its colon: the slow way decides.
    crlf = data.find(_CRLF, start, end)
    while crlf >= 0:
        first = crlf + 2
        line_end = data.find(_CRLF, first, end)
        if line_end < 0:
            line_end = end
        colon = data.find(b":", first, line_end)
        if colon >= 0:
            name = data[first:colon].rstrip(b" \t")
            if name.lower() in _VIA_NAMES:
                if data[line_end + 2 : line_end + 3] in _FOLDS:
                    return None  # the Via field goes on in the next line
                return _cut(data, start, crlf, name, colon, line_end, stop)
        elif data[first : first + 1] not in _FOLDS:
            return None
        crlf = line_end if line_end < end else -1
    return None


def _cut(
    data: bytes, start: int, crlf: int, name: bytes, colon: int, line_end: int, stop: int
) -> bytes | None:
    """C{data[start:stop]} with the Via line C{data[crlf + 2:line_end]} cut or shortened."""
    value = data[colon + 1 : line_end]
    if b"," in value:
        try:
            rest = split_comma_list(value.decode("utf-8", "surrogateescape").strip(" \t"))[1:]
        except MessageParseError:
            return None  # the slow way raises it
        if rest:
            line = name + b": " + ", ".join(rest).encode("utf-8", "surrogateescape")
            if len(line) > line_end - crlf - 2:
                return None
            return b"".join((data[start : crlf + 2], line, data[line_end:stop]))
    return data[start:crlf] + data[line_end:stop]
