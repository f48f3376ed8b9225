# -*- test-case-name: sipedge.test.test_glance -*-
"""
A glance at a raw datagram before the full parse: just enough to decide the
cheap cases of a flood (C{sipedge.security.Screen}) without building a
message.

L{glance} reads the start line, the first User-Agent value, and whether the
request claims to be inside a dialog (a To tag and a Route) with a few byte
searches and one regular expression over the header section. It never
raises. What it reports agrees with L{sipedge.message.parse_datagram}
wherever the full parser accepts the datagram, in the direction that keeps
a decision safe:

 - C{None} only for a datagram the full parser refuses (no request or
   status line it could read);
 - C{method} is the full parser's method, or C{None} for a response;
 - C{in_dialog} is true whenever the parsed request has a To tag and a
   Route (it may be true more often: a claim of a dialog only ever sends
   the datagram on to the full parse);
 - C{user_agent} is the parsed request's first User-Agent value, or
   C{None} (absent).

C{sipedge.test.test_glance} checks this with hypothesis against the parser.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["Glance", "glance"]

# Method = token (RFC 3261 25.1), as the full parser reads it.
_TOKEN = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# Folded lines (LWS): the full parser joins them with one space.
_FOLD = re.compile(rb"[ \t]*\r\n[ \t]+")


@attrs.frozen
class Glance:
    """
    What L{glance} saw.

    @ivar method: the request's method; C{None} for a response.
    @ivar in_dialog: the request has a To field that mentions a tag and a
        Route field: it may belong to a dialog (never false when it does).
    @ivar user_agent: the first User-Agent value (stripped), or C{None}.
    """

    method: str | None
    in_dialog: bool = False
    user_agent: str | None = None


_RESPONSE = Glance(None)


def glance(data: bytes) -> Glance | None:
    """
    A L{Glance} at C{data}, a datagram, or C{None} if it has no request or
    status line (the full parser refuses it).
    """
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    head = data[start:] if end < 0 else data[start:end]
    line_end = head.find(b"\r\n")
    first = head if line_end < 0 else head[:line_end]
    if first[:4].upper() == b"SIP/":
        return _RESPONSE
    parts = first.split(b" ")
    if len(parts) != 3 or _TOKEN.match(parts[0]) is None:
        return None
    method = parts[0].decode("ascii")
    if line_end < 0:
        return Glance(method)
    if b"\r\n " in head or b"\r\n\t" in head:
        head = _FOLD.sub(b" ", head)
    # Byte searches in the lower-cased header section: a few passes in C.
    lower = head.lower()
    value = _value(lower, b"\r\nuser-agent", line_end)
    user_agent = None
    if value is not None:
        # The original case, at the same place.
        user_agent = head[value[0] : value[1]].strip(b" \t").decode("utf-8", "surrogateescape")
    in_dialog = False
    if _value(lower, b"\r\nroute", line_end) is not None:
        for name in (b"\r\nto", b"\r\nt"):
            at = line_end
            while (found := _value(lower, name, at)) is not None:
                if b"tag" in lower[found[0] : found[1]]:
                    in_dialog = True
                    break
                at = found[1]
            if in_dialog:
                break
    return Glance(method, in_dialog, user_agent)


def _value(lower: bytes, name: bytes, start: int) -> tuple[int, int] | None:
    """
    Where the value of the first field called C{name} (with its leading
    CRLF, lower case) at or after C{start} lies, or C{None}.
    """
    at = lower.find(name, start)
    while at >= 0:
        colon = at + len(name)
        while lower[colon : colon + 1] in (b" ", b"\t"):
            colon += 1
        if lower[colon : colon + 1] == b":":
            end = lower.find(b"\r\n", colon)
            return colon + 1, len(lower) if end < 0 else end
        at = lower.find(name, at + 2)
    return None
