# -*- test-case-name: sipedge.test.test_message_address -*-
"""
Addresses: the values of From, To, Contact, Route, Record-Route, Reply-To,
Refer-To, P-Asserted-Identity, Path, ... (RFC 3261 sections 20.10, 20.20,
20.30, 20.34, 20.39 and 25.1).

   from-spec   =  ( name-addr / addr-spec ) *( SEMI from-param )
   contact-param  =  (name-addr / addr-spec) *(SEMI contact-params)
   route-param =  name-addr *( SEMI rr-param )
   name-addr      =  [ display-name ] LAQUOT addr-spec RAQUOT
   addr-spec      =  SIP-URI / SIPS-URI / absoluteURI
   display-name   =  *(token LWS)/ quoted-string
   LAQUOT  =  SWS "<"; RAQUOT  =  ">" SWS

RFC 3261 20.10: in the addr-spec form (no angle brackets), everything after
the first C{;} is a header parameter, not a URI parameter, and a URI holding
a comma, question mark or semicolon must be written in angle brackets.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from sipedge.error import MessageParseError
from sipedge.message._lex import format_params, parse_params, split_comma_list, unquote
from sipedge.message._uri import parse_uri

# Field defaults typed Any: a compiled build (mypyc) checks the value of
# "x: T = attrs.field(default=...)" against T when the class body runs, and
# attrs.field returns its marker there; typed Any, the call is not checked
# (attrs and mypy see the same field).
_NO_PARAMS: Any = ()
_BRACKETED: Any = True

if TYPE_CHECKING:
    from sipedge.message._uri import URI

__all__ = [
    "QUOTED_STRING",
    "STAR",
    "NameAddress",
    "Star",
    "parse_contact",
    "parse_name_addr",
    "parse_name_addr_list",
    "quote_text",
]

Params = tuple[tuple[str, "str | None"], ...]

# LWS = [*WSP CRLF] 1*WSP (header values usually arrive unfolded).
_WS = "[ \\t\\r\\n]"
_WS_CHARS = " \t\r\n"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN + r"\Z")

# quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair    =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
# (UTF8-NONASCII is any non-ASCII code point here, lone surrogates from
# undecodable octets included.)
QUOTED_STRING = (
    r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]'
    r"|\r\n[ \t]"
    r"|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"
    r'"'
)

# name-addr *( SEMI param ):
#   [ display-name ] LAQUOT addr-spec RAQUOT *( SEMI generic-param )
# display-name = *(token LWS) / quoted-string; the LWS before "<" may be
# missing (RFC 4475 lwsdisp). Whitespace inside the brackets is
# rejected afterwards (RFC 4475 badaspec).
_NAME_ADDR_RE = re.compile(
    rf"{_WS}*(?:({QUOTED_STRING})|({_TOKEN}(?:{_WS}+{_TOKEN})*))?"
    rf"{_WS}*<([^<>]*)>{_WS}*(;.*)?\Z",
    re.S,
)

# The common shape of *( SEMI generic-param ): no LWS, no quoted-string.
# generic-param = token [ EQUAL gen-value ]; gen-value = token / host /
# quoted-string
_SIMPLE_PARAMS_RE = re.compile(
    r"(?:;[A-Za-z0-9\-.!%*_+`'~]+"
    r"(?:=(?:[A-Za-z0-9\-.!%*_+`'~]+|\[[0-9A-Fa-f:.]+\]))?)+\Z"
)

# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
# delta-seconds = 1*DIGIT
_DIGITS_RE = re.compile(r"[0-9]+\Z")

# A URI must be in angle brackets if it holds one of these (RFC 3261 20.10).
_NEEDS_BRACKETS_RE = re.compile(r"[;?,\s<>\"]")

_MAX_DELTA_SECONDS = 2**32 - 1


class Star(enum.Enum):
    """The type of L{STAR}."""

    STAR = "*"

    def __str__(self) -> str:
        return "*"


#: The wildcard Contact C{*} (RFC 3261 10.2.2, 20.10).
STAR: Literal[Star.STAR] = Star.STAR


def _parse_header_params(text: str) -> Params:
    """C{*( SEMI generic-param )} after an address; C{text} starts with C{;}."""
    if _SIMPLE_PARAMS_RE.match(text) is not None:
        params = tuple(
            [
                (name, value if eq else None)
                for name, eq, value in [p.partition("=") for p in text[1:].split(";")]
            ]
        )
    else:
        params = parse_params(text)
    for name, value in params:
        # tag-param = "tag" EQUAL token (RFC 3261 25.1)
        if (name == "tag" or name.lower() == "tag") and (
            value is None or _TOKEN_RE.match(value) is None
        ):
            raise MessageParseError(f"bad tag parameter {value!r}")
    return params


def quote_text(text: str) -> str:
    """
    Make a C{quoted-string} of C{text} (RFC 3261 25.1), escaping C{"},
    C{\\} and the control characters a quoted-pair may hold, so that it
    matches L{QUOTED_STRING} and unquotes to C{text}.

    @raise MessageParseError: if C{text} holds CR or LF, which no
        quoted-string can carry.
    """
    if "\r" in text or "\n" in text:
        raise MessageParseError("CR or LF in a quoted-string")
    out = []
    for c in text:
        if c == '"' or c == "\\" or (c < " " and c != "\t") or c == "\x7f":
            out.append("\\")
        out.append(c)
    return '"' + "".join(out) + '"'


def _replace_param(params: Params, name: str, value: str | None) -> Params:
    """C{params} with the first C{name} replaced (later ones dropped) or appended."""
    lname = name.lower()
    out: list[tuple[str, str | None]] = []
    done = False
    for pname, pvalue in params:
        if pname.lower() == lname:
            if not done:
                out.append((name, value))
                done = True
        else:
            out.append((pname, pvalue))
    if not done:
        out.append((name, value))
    return tuple(out)


def _to_params(params: Iterable[tuple[str, str | None]]) -> Params:
    return params if type(params) is tuple else tuple(params)


@attrs.frozen(kw_only=True)
class NameAddress:
    """
    An address with its header parameters: C{"Alice" <sip:a@b>;tag=x}.

    @ivar display_name: the display name as written: a quoted-string with
        its quotes (C{'"Alice"'}), tokens (C{"Bob Smith"}), or C{None}.
    @ivar uri: the parsed URI (L{SipURI}, L{TelURI} or L{AbsoluteURI}).
    @ivar params: the header parameters after the address (C{tag},
        C{expires}, C{q}, ...) as raw C{(name, value)} pairs in order; a
        flag has the value C{None}.
    @ivar bracketed: whether the address was written in angle brackets. It
        is presentation only, not compared: C{str()} adds brackets whenever
        they are needed.
    """

    display_name: str | None = None
    uri: URI
    params: Params = attrs.field(default=_NO_PARAMS, converter=_to_params)
    bracketed: bool = attrs.field(default=_BRACKETED, eq=False)

    def __str__(self) -> str:
        uri = str(self.uri)
        params = format_params(self.params) if self.params else ""
        display = self.display_name
        if display is not None:
            return f"{display} <{uri}>{params}"
        if self.bracketed or _NEEDS_BRACKETS_RE.search(uri) is not None:
            return f"<{uri}>{params}"
        return uri + params

    @property
    def unquoted_display_name(self) -> str | None:
        """The display name with quotes and quoted-pairs resolved, or C{None}."""
        if self.display_name is None:
            return None
        return unquote(self.display_name)

    def param(self, name: str) -> str | None:
        """
        The value of the first header parameter C{name} (case-insensitive),
        unquoted; C{""} for a flag, C{None} if absent.
        """
        lname = name.lower()
        for pname, value in self.params:
            if pname.lower() == lname:
                return "" if value is None else unquote(value)
        return None

    def has_param(self, name: str) -> bool:
        """True if a header parameter C{name} (case-insensitive) is present."""
        return self.param(name) is not None

    @property
    def tag(self) -> str | None:
        """The C{tag} parameter (RFC 3261 19.3), or C{None}."""
        for pname, value in self.params:
            if pname == "tag" or pname.lower() == "tag":
                return "" if value is None else unquote(value)
        return None

    @property
    def expires(self) -> int | None:
        """
        The C{expires} parameter of a Contact (RFC 3261 20.10), or C{None}.

        @raise MessageParseError: if it is not C{delta-seconds} up to
            2**32-1 (RFC 4475 scalar02).
        """
        value = self.param("expires")
        if value is None:
            return None
        if _DIGITS_RE.match(value) is None:
            raise MessageParseError(f"bad expires parameter {value[:40]!r}")
        digits = value.lstrip("0") or "0"
        if len(digits) > 10 or int(digits) > _MAX_DELTA_SECONDS:
            raise MessageParseError(f"expires parameter too large: {value[:40]!r}")
        return int(digits)

    @property
    def q(self) -> float | None:
        """
        The C{q} parameter of a Contact (RFC 3261 20.10), or C{None}.

        @raise MessageParseError: if it is not a C{qvalue} (0 to 1, at most
            three decimals).
        """
        value = self.param("q")
        if value is None:
            return None
        if _QVALUE_RE.match(value) is None:
            raise MessageParseError(f"bad q parameter {value[:40]!r}")
        return float(value)

    def with_param(self, name: str, value: str | None = None) -> NameAddress:
        """
        A copy with header parameter C{name} set to the raw C{value}
        (C{None} for a flag), replacing the first one of that name
        (case-insensitive) in place, or appended.
        """
        return attrs.evolve(self, params=_replace_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddress:
        """A copy without any header parameter C{name} (case-insensitive)."""
        lname = name.lower()
        return attrs.evolve(self, params=tuple(p for p in self.params if p[0].lower() != lname))

    def with_tag(self, tag: str) -> NameAddress:
        """A copy with C{;tag=tag} (RFC 3261 8.2.6.2, 19.3)."""
        return self.with_param("tag", tag)

    def without_tag(self) -> NameAddress:
        """A copy without a tag."""
        return self.without_param("tag")

    def with_uri(self, uri: URI) -> NameAddress:
        """A copy with another URI."""
        return attrs.evolve(self, uri=uri)

    def with_display_name(self, name: str | None) -> NameAddress:
        """
        A copy with the display name C{name} (plain text; it is quoted and
        escaped), or without one if C{name} is C{None}.

        @raise MessageParseError: if C{name} holds CR or LF.
        """
        return attrs.evolve(self, display_name=None if name is None else quote_text(name))


def _addr_spec(text: str) -> NameAddress:
    """
    Parse the addr-spec form: C{addr-spec *( SEMI generic-param )}, where
    the first C{;} starts the header parameters (RFC 3261 20.10).
    """
    uri_text, semi, rest = text.partition(";")
    uri_text = uri_text.rstrip(_WS_CHARS)
    if not uri_text:
        raise MessageParseError(f"empty address in {text[:80]!r}")
    c = uri_text[0]
    if c == '"':
        raise MessageParseError(f"unterminated or malformed display name in {text[:80]!r}")
    if c == "<" or "<" in uri_text or ">" in uri_text:
        raise MessageParseError(f"malformed name-addr {text[:80]!r}")
    if "," in uri_text or "?" in uri_text:
        # RFC 3261 20.10; RFC 4475 regbadct
        raise MessageParseError(
            f"an addr-spec with ',' or '?' must be in angle brackets: {text[:80]!r}"
        )
    for ws in _WS_CHARS:
        if ws in uri_text:
            raise MessageParseError(f"malformed address {text[:80]!r}")
    uri = parse_uri(uri_text)
    params = _parse_header_params(";" + rest) if semi else ()
    return NameAddress(display_name=None, uri=uri, params=params, bracketed=False)


def parse_name_addr(text: str) -> NameAddress:
    """
    Parse one C{( name-addr / addr-spec ) *( SEMI generic-param )}: a From,
    To or Reply-To value, or one element of a Contact or Route list.

    @raise MessageParseError: if C{text} is not exactly one address.
    """
    m = _NAME_ADDR_RE.match(text)
    if m is None:
        return _addr_spec(text.strip(_WS_CHARS))
    # Optional groups are None: typed so, a compiled build (mypyc) checks it.
    quoted: str | None
    tokens: str | None
    params: str | None
    quoted, tokens, uri_text, params = m.groups()
    if not uri_text or uri_text[0] in _WS_CHARS or uri_text[-1] in _WS_CHARS:
        # RFC 4475 badaspec: no LWS inside the angle brackets
        raise MessageParseError(f"whitespace or nothing inside '<>' in {text[:80]!r}")
    return NameAddress(
        display_name=quoted if tokens is None else tokens,
        uri=parse_uri(uri_text),
        params=() if params is None else _parse_header_params(params),
        bracketed=True,
    )


def parse_name_addr_list(text: str, *, brackets_required: bool = False) -> tuple[NameAddress, ...]:
    """
    Parse a comma-separated list of addresses (Contact, Route,
    Record-Route, Path, ...).

    @param brackets_required: reject the addr-spec form, as Route and
        Record-Route require (C{route-param = name-addr *( SEMI rr-param )}).
    @raise MessageParseError: on a malformed or empty element.
    """
    out = []
    for part in split_comma_list(text):
        if not part:
            raise MessageParseError("empty element in address list")
        address = parse_name_addr(part)
        if brackets_required and not address.bracketed:
            raise MessageParseError(f"address not in angle brackets: {part[:80]!r}")
        out.append(address)
    return tuple(out)


def parse_contact(text: str) -> Star | tuple[NameAddress, ...]:
    """
    Parse a Contact value (RFC 3261 20.10):
    C{STAR / (contact-param *(COMMA contact-param))}.

    @return: L{STAR} for the wildcard, else the addresses.
    @raise MessageParseError: on a malformed element, or a C{*} that is not
        alone.
    """
    stripped = text.strip(_WS_CHARS)
    if stripped == "*":
        return STAR
    if "*" in stripped and any(part == "*" for part in split_comma_list(stripped)):
        raise MessageParseError("wildcard Contact '*' must stand alone")
    return parse_name_addr_list(stripped)
