# -*- test-case-name: sipedge.test.test_message_lex -*-
"""
Lexical helpers shared by the header-value parsers (RFC 3261 section 25.1).

   token       =  1*(alphanum / "-" / "." / "!" / "%" / "*"
                  / "_" / "+" / "`" / "'" / "~" )
   quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
   qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
   quoted-pair    =  "\\" (%x00-09 / %x0B-0C / %x0E-7F)
   generic-param  =  token [ EQUAL gen-value ]
   gen-value      =  token / host / quoted-string

Everything here works on C{str} (header sections are decoded as UTF-8 with
C{surrogateescape}) and raises only L{MessageParseError}.
"""

from __future__ import annotations

import re

from sipedge.error import MessageParseError

__all__ = [
    "TOKEN_CHARS",
    "format_params",
    "is_token",
    "param_value",
    "parse_params",
    "quote",
    "split_comma_list",
    "unquote",
]

TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# gen-value is token / host / quoted-string; host adds "[" ":" "]" for IPv6.
_GEN_VALUE_RE = re.compile(r"(?:[A-Za-z0-9\-.!%*_+`'~]+|\[[0-9A-Fa-f:.]+\])\Z")

Params = tuple[tuple[str, "str | None"], ...]


def is_token(text: str) -> bool:
    """True if C{text} is a non-empty RFC 3261 token."""
    return _TOKEN_RE.match(text) is not None


def split_comma_list(value: str) -> list[str]:
    """
    Split a header value at the commas that separate its elements.

    Commas inside a quoted-string or inside C{<...>} do not separate. Each
    element is stripped of surrounding whitespace; empty elements are kept
    (as C{""}) so a caller can reject them.

    @raise MessageParseError: on an unterminated quoted-string or an
        unbalanced C{<}.
    """
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",")]
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    in_angle = False
    while i < n:
        c = value[i]
        if c == '"':
            i = _skip_quoted(value, i)
            continue
        if c == "<":
            if in_angle:
                raise MessageParseError("nested '<' in header value")
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    if in_angle:
        raise MessageParseError("unbalanced '<' in header value")
    parts.append(value[start:].strip())
    return parts


def _skip_quoted(text: str, i: int) -> int:
    """
    Given C{text[i] == '"'}, return the index just past the closing quote.

    @raise MessageParseError: if the quoted-string never closes.
    """
    n = len(text)
    j = i + 1
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        j += 1
    raise MessageParseError("unterminated quoted-string")


def unquote(text: str) -> str:
    """
    Return the content of a quoted-string with quoted-pairs resolved, or
    C{text} unchanged if it is not quoted.
    """
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out = []
        i = 0
        while i < len(inner):
            c = inner[i]
            if c == "\\" and i + 1 < len(inner):
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(c)
                i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """Make a quoted-string of C{text}, escaping C{"} and C{\\}."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str, *, allow_empty_value: bool = False) -> Params:
    """
    Parse C{*( SEMI generic-param )}; C{text} starts at the first C{;} (or
    is empty).

    Names keep their case; values keep their raw form (a quoted value keeps
    its quotes, so formatting gives back the same text). A parameter with no
    C{=} has the value C{None}.

    @raise MessageParseError: on an empty parameter (C{;;}), a name that is
        not a token, or a value that is neither a token, a host nor a
        quoted-string.
    """
    text = text.strip()
    if not text:
        return ()
    if text[0] != ";":
        raise MessageParseError(f"expected ';' before parameters: {text!r}")
    result: list[tuple[str, str | None]] = []
    i = 1
    n = len(text)
    while True:
        # find the end of this parameter: next ';' outside quotes
        j = i
        while j < n and text[j] != ";":
            if text[j] == '"':
                j = _skip_quoted(text, j)
            else:
                j += 1
        item = text[i:j]
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name or not is_token(name):
            raise MessageParseError(f"bad parameter {item!r}")
        if eq:
            value = value.strip()
            if not value:
                if not allow_empty_value:
                    raise MessageParseError(f"empty value for parameter {name!r}")
            elif value[0] == '"':
                if _skip_quoted(value, 0) != len(value):
                    raise MessageParseError(f"bad quoted value for parameter {name!r}")
            elif _GEN_VALUE_RE.match(value) is None:
                raise MessageParseError(f"bad value for parameter {name!r}: {value!r}")
            result.append((name, value))
        else:
            result.append((name, None))
        if j >= n:
            break
        i = j + 1
    return tuple(result)


def format_params(params: Params) -> str:
    """The inverse of L{parse_params}: C{;name=value;flag}."""
    return "".join(
        [f";{name}" if value is None else f";{name}={value}" for name, value in params]
    )


def param_value(params: Params, name: str) -> str | None:
    """
    The unquoted value of the first parameter called C{name} (compared
    case-insensitively), C{""} for a flag parameter, C{None} if absent.
    """
    lname = name.lower()
    for pname, value in params:
        if pname.lower() == lname:
            return "" if value is None else unquote(value)
    return None
