# -*- test-case-name: sipedge.test.test_message_uri -*-
"""
SIP, SIPS, tel and other URIs (RFC 3261 sections 19.1 and 25.1, RFC 3966,
RFC 5118).

A parsed URI keeps every component in its I{raw, escaped} form, as written,
and remembers the text it was parsed from, so C{str(parse_uri(text)) ==
text} for any valid C{text}: a proxy forwards URIs byte for byte. Values
made or changed with the C{with_*} builders (or C{attrs.evolve}) are
formatted from their components instead.

C{==} compares components as written; L{SipURI.equivalent} and
L{TelURI.equivalent} implement the comparison rules of RFC 3261 section
19.1.4 and RFC 3966 section 4.

Only the standard library and attrs are used, and the only exception raised
is L{MessageParseError}.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote as _urllib_unquote

import attrs

from sipedge.error import MessageParseError

__all__ = [
    "URI",
    "AbsoluteURI",
    "SipURI",
    "TelURI",
    "escape_header",
    "escape_param",
    "escape_user",
    "parse_sip_uri",
    "parse_uri",
    "unescape",
]

Params = tuple[tuple[str, "str | None"], ...]
Headers = tuple[tuple[str, str], ...]

# --------------------------------------------------------------------------
# ABNF (RFC 3261 section 25.1).  Every character class is spelt out in ASCII:
# no \d, \w or re.IGNORECASE, which would let non-ASCII digits and letters
# (e.g. U+212A KELVIN SIGN) in.
# --------------------------------------------------------------------------

#   alphanum  =  ALPHA / DIGIT
#   mark      =  "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
#   unreserved  =  alphanum / mark
#   escaped     =  "%" HEXDIG HEXDIG
# ("%" is in the classes below; escapes are checked by _BAD_ESCAPE_RE.)
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"

#   user             =  1*( unreserved / escaped / user-unreserved )
#   user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# plus "#", which RFC 2806 telephone-subscriber allows and which phones send
# unescaped (e.g. "sip:*21#@example.com").
_USER_CHARS = _UNRESERVED + r"%&=+$,;?/#"

#   password         =  *( unreserved / escaped /
#                       "&" / "=" / "+" / "$" / "," )
_PASSWORD_CHARS = _UNRESERVED + r"%&=+$,"

#   paramchar         =  param-unreserved / unreserved / escaped
#   param-unreserved  =  "[" / "]" / "/" / ":" / "&" / "+" / "$"
_PARAM_CHARS = _UNRESERVED + r"%\[\]/:&+$"

#   hname           =  1*( hnv-unreserved / unreserved / escaped )
#   hvalue          =  *( hnv-unreserved / unreserved / escaped )
#   hnv-unreserved  =  "[" / "]" / "/" / "?" / ":" / "+" / "$"
_HEADER_CHARS = _UNRESERVED + r"%\[\]/?:+$"

#   IPv4address    =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
_IPV4 = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"

#   hostname         =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel      =  alphanum
#                       / alphanum *( alphanum / "-" ) alphanum
#   toplabel         =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
_HOSTNAME = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)

#   IPv6reference  =  "[" IPv6address "]"
# (the address itself is checked by _is_ipv6_address)
_IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]+\]"

#   host             =  hostname / IPv4address / IPv6reference
_HOST = rf"(?:{_IPV6_REFERENCE}|{_IPV4}|{_HOSTNAME})"

#   SIP-URI          =  "sip:" [ userinfo ] hostport
#                       uri-parameters [ headers ]
#   SIPS-URI         =  "sips:" [ userinfo ] hostport
#                       uri-parameters [ headers ]
#   userinfo         =  ( user / telephone-subscriber ) [ ":" password ] "@"
#   hostport         =  host [ ":" port ]
#   port             =  1*DIGIT
#   uri-parameters   =  *( ";" uri-parameter)
#   uri-parameter    =  transport-param / user-param / method-param
#                       / ttl-param / maddr-param / lr-param / other-param
#   other-param      =  pname [ "=" pvalue ]
#   pname            =  1*paramchar
#   pvalue           =  1*paramchar
#   headers          =  "?" header *( "&" header )
#   header           =  hname "=" hvalue
# transport-param, user-param and method-param take a token, which may hold
# "`" (not a paramchar): pvalue allows it here and _split_params checks the
# parameter name.  Every other uri-parameter is also an other-param.
_SIP_URI_RE = re.compile(
    rf"""
    ([Ss][Ii][Pp][Ss]?):
    (?:([{_USER_CHARS}]+)(?::([{_PASSWORD_CHARS}]*))?@)?
    ({_HOST})
    (?::([0-9]+))?
    ((?:;[{_PARAM_CHARS}]+(?:=[{_PARAM_CHARS}`]+)?)*)
    (?:\?([{_HEADER_CHARS}]+=[{_HEADER_CHARS}]*(?:&[{_HEADER_CHARS}]+=[{_HEADER_CHARS}]*)*))?
    """,
    re.VERBOSE,
)

#   escaped     =  "%" HEXDIG HEXDIG
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")

_IPV4_RE = re.compile(_IPV4)
_HOST_RE = re.compile(_HOST)
_PARAM_RE = re.compile(rf"[{_PARAM_CHARS}]+")

_PARAMS_OR_HEADERS_RE = re.compile(r"[;?]")

#   hex4           =  1*4HEXDIG
_HEX4_RE = re.compile(r"[0-9A-Fa-f]{1,4}")

#   ttl              =  1*3DIGIT ; 0 to 255
_TTL_RE = re.compile(r"[0-9]{1,3}")

# The parameters that must be in both URIs or in neither (RFC 3261 19.1.4).
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")

# Parameters whose value is a token (which may hold "`").
_TOKEN_PARAMS = frozenset(("transport", "user", "method"))

#   reserved    =  ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+"
#                  / "$" / ","
_RESERVED = frozenset(";/?:@&=+$,")

# For comparison (RFC 3261 19.1.4): "Characters other than those in the
# 'reserved' set are equivalent to their 'encoding'."  Escapes of ASCII
# characters outside the reserved set are decoded; every other escape is
# kept, with upper-case hex digits.
_CANONICAL_ESCAPES = {
    f"%{b:02X}": (chr(b) if b < 0x80 and chr(b) not in _RESERVED else f"%{b:02X}")
    for b in range(256)
}

# --------------------------------------------------------------------------
# RFC 3966 (tel URIs)
# --------------------------------------------------------------------------

#   visual-separator     = "-" / "." / "(" / ")"
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")

#   global-number-digits = "+" *phonedigit DIGIT *phonedigit
#   phonedigit           = DIGIT / [ visual-separator ]
_GLOBAL_NUMBER_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")

#   local-number-digits  =
#      *phonedigit-hex (HEXDIG / "*" / "#")*phonedigit-hex
#   phonedigit-hex       = HEXDIG / "*" / "#" / [ visual-separator ]
_LOCAL_NUMBER_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")

#   parameter            = ";" pname ["=" pvalue ]
#   pname                = 1*( alphanum / "-" )
#   pvalue               = 1*paramchar
_TEL_PNAME_RE = re.compile(r"[A-Za-z0-9\-]+")

#   isdn-subaddress      = ";isub=" 1*uric
#   uric = reserved / unreserved / escaped        (RFC 2396; ";" separates)
_URIC_RE = re.compile(rf"[{_UNRESERVED}%/?:@&=+$,]+")

#   context              = ";phone-context=" descriptor
#   descriptor           = domainname / global-number-digits
_DESCRIPTOR_RE = re.compile(rf"{_HOSTNAME}|\+[0-9\-.()]*[0-9][0-9\-.()]*")

# --------------------------------------------------------------------------
# absoluteURI (RFC 3261 25.1, RFC 2396 section 3)
# --------------------------------------------------------------------------

#   scheme         =  ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
#   absoluteURI    =  scheme ":" ( hier-part / opaque-part )
# Loosely: the rest is any printable ASCII but SP, '"', "<" and ">".
_ABSOLUTE_URI_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):([!#-;=?-~]+)")


# --------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------


def unescape(text: str) -> str:
    """
    Decode every C{%HH} escape in C{text} exactly once (RFC 3261 section
    19.1.2, RFC 2396 section 2.4).

    The decoded octets are read as UTF-8 with C{surrogateescape}, so no
    octet is lost (C{"%00"} gives C{"\\x00"}, C{"%FF"} gives C{"\\udcff"}).
    """
    if "%" not in text:
        return text
    return _urllib_unquote(text, errors="surrogateescape")


def _escaper(allowed: str) -> re.Pattern[str]:
    return re.compile(rf"[^{allowed.replace('%', '')}]")


def _escape_match(match: re.Match[str]) -> str:
    data = match.group().encode("utf-8", "surrogateescape")
    return "".join(f"%{b:02X}" for b in data)


_USER_ESCAPE_RE = _escaper(_USER_CHARS.replace("#", ""))
_PARAM_ESCAPE_RE = _escaper(_PARAM_CHARS)
_HEADER_ESCAPE_RE = _escaper(_HEADER_CHARS)


def escape_user(text: str) -> str:
    """
    Escape C{text} for the user part of a SIP URI (RFC 3261 section 25.1
    C{user}): the inverse of L{unescape}.
    """
    return _USER_ESCAPE_RE.sub(_escape_match, text)


def escape_param(text: str) -> str:
    """Escape C{text} for a URI parameter name or value (C{paramchar})."""
    return _PARAM_ESCAPE_RE.sub(_escape_match, text)


def escape_header(text: str) -> str:
    """Escape C{text} for a URI header name or value (C{hname}/C{hvalue})."""
    return _HEADER_ESCAPE_RE.sub(_escape_match, text)


def _canonical(text: str) -> str:
    """
    The form of C{text} used for comparisons: escapes of unreserved ASCII
    characters decoded, other escapes upper-cased (RFC 3261 19.1.4).
    """
    if "%" not in text:
        return text
    return _ESCAPE_RE.sub(lambda m: _CANONICAL_ESCAPES[m.group().upper()], text)


# --------------------------------------------------------------------------
# Small validators
# --------------------------------------------------------------------------


def _is_ipv6_address(address: str) -> bool:
    """
    True if C{address} (without brackets) is an IPv6 address.

       IPv6address    =  hexpart [ ":" IPv4address ]
       hexpart        =  hexseq / hexseq "::" [ hexseq ] / "::" [ hexseq ]
       hexseq         =  hex4 *( ":" hex4)

    Both the RFC 4291 form C{2001:db8::192.0.2.1} and the form the RFC 3261
    ABNF produces by mistake, C{2001:db8:::192.0.2.1}, are accepted (RFC 5118
    section 4.9).
    """
    groups = 8
    hexpart = address
    if "." in address:
        head, colon, ipv4 = address.rpartition(":")
        if not colon or _IPV4_RE.fullmatch(ipv4) is None:
            return False
        groups = 6
        # "x::1.2.3.4" splits as "x:" + "1.2.3.4": give the colon back.
        hexpart = head + ":" if head.endswith(":") and not head.endswith("::") else head
    if "::" in hexpart:
        left, _, right = hexpart.partition("::")
        left_groups = left.split(":") if left else []
        right_groups = right.split(":") if right else []
        if len(left_groups) + len(right_groups) > groups - 1:
            return False
        seq = left_groups + right_groups
    else:
        seq = hexpart.split(":")
        if len(seq) != groups:
            return False
    for group in seq:
        if _HEX4_RE.fullmatch(group) is None:
            return False
    return True


def _port_number(text: str) -> int:
    """
    The value of C{port = 1*DIGIT} (leading zeros allowed).

    @raise MessageParseError: if it is above 65535.
    """
    digits = text.lstrip("0") or "0"
    if len(digits) > 5 or int(digits) > 65535:
        raise MessageParseError(f"port out of range: {_show(text)}")
    return int(digits)


def _check_host(host: str) -> str:
    """
    Check a host given to a builder, adding brackets around a bare IPv6
    address.

    @raise MessageParseError: if it is not a hostname, IPv4 address or IPv6
        reference.
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if _HOST_RE.fullmatch(host) is None or (host[0] == "[" and not _is_ipv6_address(host[1:-1])):
        raise MessageParseError(f"bad host: {host!r}")
    return host


def _show(text: str) -> str:
    """C{repr(text)}, shortened for an error message."""
    return repr(text) if len(text) <= 80 else repr(text[:77]) + "..."


def _check_escaped(text: str, pattern: re.Pattern[str], what: str) -> None:
    if pattern.fullmatch(text) is None or _BAD_ESCAPE_RE.search(text):
        raise MessageParseError(f"bad {what}: {_show(text)}")


def _check_param(name: str, value: str | None) -> tuple[str, str | None]:
    _check_escaped(name, _PARAM_RE, "URI parameter name")
    if value is not None:
        _check_escaped(value, _PARAM_RE, "URI parameter value")
    return (name, value)


def _param_key(name: str) -> str:
    """The lower-cased, unescaped form of a parameter name."""
    return (unescape(name) if "%" in name else name).lower()


def _find_param(params: Params, name: str) -> tuple[bool, str | None]:
    """C{(found, raw value)} of the first parameter called C{name}."""
    key = name.lower()
    for pname, value in params:
        if _param_key(pname) == key:
            return True, value
    return False, None


def _param(params: Params, name: str) -> str | None:
    found, value = _find_param(params, name)
    if not found:
        return None
    return "" if value is None else unescape(value)


def _format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@attrs.frozen
class SipURI:
    """
    A C{sip:} or C{sips:} URI (RFC 3261 sections 19.1 and 25.1).

    Every component is kept raw (escaped) as written; the C{unescaped_*}
    properties and L{param} decode them. Values made by calling the class
    directly are not checked: use L{parse_sip_uri} or the C{with_*}
    builders, which are.

    @ivar scheme: C{"sip"} or C{"sips"}, lower-cased.
    @ivar user: the user part (C{user} or C{telephone-subscriber}), or
        C{None}.
    @ivar password: the password, C{""} for C{user:@host}, or C{None}.
    @ivar host: the host as written; an IPv6 reference keeps its brackets.
    @ivar port: the port, or C{None} if the URI has none.
    @ivar params: the C{uri-parameters} as C{(name, value)} pairs in order;
        a parameter without C{=} has the value C{None}.
    @ivar headers: the C{headers} as C{(name, value)} pairs in order.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: Params = ()
    headers: Headers = ()
    # The text this value was parsed from (or formatted to); not copied by
    # attrs.evolve, so a changed value is formatted afresh.
    _text: str | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._format()
            object.__setattr__(self, "_text", text)
        return text

    def _format(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(_format_params(self.params))
        if self.headers:
            parts.append("?")
            parts.append("&".join(f"{name}={value}" for name, value in self.headers))
        return "".join(parts)

    # -- unescaped components ----------------------------------------------

    @property
    def unescaped_user(self) -> str | None:
        """The user part with escapes decoded once, or C{None}."""
        return None if self.user is None else unescape(self.user)

    @property
    def unescaped_password(self) -> str | None:
        """The password with escapes decoded once, or C{None}."""
        return None if self.password is None else unescape(self.password)

    @property
    def unescaped_params(self) -> Params:
        """The parameters with names and values unescaped, in order."""
        return tuple(
            (unescape(name), None if value is None else unescape(value))
            for name, value in self.params
        )

    @property
    def unescaped_headers(self) -> Headers:
        """The headers with names and values unescaped, in order."""
        return tuple((unescape(name), unescape(value)) for name, value in self.headers)

    # -- parameters ----------------------------------------------------------

    def param(self, name: str) -> str | None:
        """
        The unescaped value of the first parameter called C{name} (compared
        case-insensitively with the unescaped names), C{""} for a parameter
        without a value, C{None} if there is none.
        """
        return _param(self.params, name)

    def has_param(self, name: str) -> bool:
        """True if a parameter called C{name} (case-insensitive) is present."""
        return _find_param(self.params, name)[0]

    @property
    def transport(self) -> str | None:
        """The C{transport} parameter, lower-cased (RFC 3261 19.1.1)."""
        value = self.param("transport")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        """The C{maddr} parameter (RFC 3261 19.1.1)."""
        return self.param("maddr")

    @property
    def lr(self) -> bool:
        """True if the C{lr} parameter is present (RFC 3261 19.1.1)."""
        return self.has_param("lr")

    @property
    def ttl(self) -> int | None:
        """
        The C{ttl} parameter (RFC 3261 19.1.1), or C{None} if absent or not
        C{1*3DIGIT} in 0..255.
        """
        value = self.param("ttl")
        if value is None or _TTL_RE.fullmatch(value) is None:
            return None
        ttl = int(value)
        return ttl if ttl <= 255 else None

    @property
    def user_param(self) -> str | None:
        """The C{user} parameter (C{"phone"}, C{"ip"}, ...), lower-cased."""
        value = self.param("user")
        return None if value is None else value.lower()

    @property
    def method_param(self) -> str | None:
        """The C{method} parameter, as written (methods are case-sensitive)."""
        return self.param("method")

    # -- host ----------------------------------------------------------------

    @property
    def host_lower(self) -> str:
        """The host, lower-cased (hosts compare case-insensitively)."""
        return self.host.lower()

    @property
    def bare_host(self) -> str:
        """The host without the brackets of an IPv6 reference."""
        host = self.host
        return host[1:-1] if host[:1] == "[" else host

    @property
    def hostport(self) -> str:
        """C{host} or C{host:port} (RFC 3261 C{hostport})."""
        if self.port is None:
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def is_ipv6(self) -> bool:
        """True if the host is an IPv6 reference (RFC 5118)."""
        return self.host[:1] == "["

    @property
    def is_ip(self) -> bool:
        """True if the host is an IPv4 address or an IPv6 reference."""
        return self.host[:1] == "[" or _IPV4_RE.fullmatch(self.host) is not None

    # -- builders ------------------------------------------------------------

    def with_params(self, params: Iterable[tuple[str, str | None]]) -> SipURI:
        """
        A copy with the parameters replaced by C{params}, given raw
        (escaped) as C{(name, value)} pairs (value C{None} for a flag).

        @raise MessageParseError: if a name or value is not a valid
            C{pname}/C{pvalue}.
        """
        checked = tuple(_check_param(name, value) for name, value in params)
        return attrs.evolve(self, params=checked)

    def with_param(self, name: str, value: str | None = None) -> SipURI:
        """
        A copy with the parameter C{name} set to C{value} (raw; C{None} for a
        flag such as C{lr}): the first parameter of that name
        (case-insensitive) is replaced and any others removed, or it is
        appended.
        """
        new = _check_param(name, value)
        key = _param_key(name)
        params: list[tuple[str, str | None]] = []
        replaced = False
        for param in self.params:
            if _param_key(param[0]) == key:
                if not replaced:
                    params.append(new)
                    replaced = True
            else:
                params.append(param)
        if not replaced:
            params.append(new)
        return attrs.evolve(self, params=tuple(params))

    def without_param(self, name: str) -> SipURI:
        """A copy without any parameter called C{name} (case-insensitive)."""
        key = name.lower()
        params = tuple(p for p in self.params if _param_key(p[0]) != key)
        if len(params) == len(self.params):
            return self
        return attrs.evolve(self, params=params)

    def with_host(self, host: str, port: int | None = None) -> SipURI:
        """
        A copy with the host and port replaced (C{port=None} removes the
        port). A bare IPv6 address is put in brackets.

        @raise MessageParseError: if C{host} is not a host or C{port} is not
            in 0..65535.
        """
        host = _check_host(host)
        if port is not None and not 0 <= port <= 65535:
            raise MessageParseError(f"port out of range: {port!r}")
        return attrs.evolve(self, host=host, port=port)

    def without_headers(self) -> SipURI:
        """A copy without the C{?headers} part."""
        if not self.headers:
            return self
        return attrs.evolve(self, headers=())

    # -- comparison ------------------------------------------------------------

    def equivalent(self, other: object) -> bool:
        """
        Compare with C{other} by the rules of RFC 3261 section 19.1.4.

        The schemes must be the same; user and password compare
        case-sensitively, everything else case-insensitively; escapes of
        unreserved characters equal the characters; a missing port does not
        equal the default port; C{user}, C{ttl}, C{method}, C{maddr} and
        C{transport} parameters must be in both URIs or in neither, other
        parameters are compared only when in both; headers must all match
        (names case-insensitive, values case-sensitive), in any order.
        """
        if not isinstance(other, SipURI):
            return False
        if (
            self.scheme != other.scheme
            or self.port != other.port
            or self.host.lower() != other.host.lower()
        ):
            return False
        for mine, theirs in ((self.user, other.user), (self.password, other.password)):
            if mine is None or theirs is None:
                if mine is not theirs:
                    return False
            elif _canonical(mine) != _canonical(theirs):
                return False
        if self.params or other.params:
            mine_params = _params_for_comparison(self.params)
            their_params = _params_for_comparison(other.params)
            for name in _STRICT_PARAMS:
                if (name in mine_params) != (name in their_params):
                    return False
            for name, value in mine_params.items():
                if name in their_params and their_params[name] != value:
                    return False
        if self.headers or other.headers:
            if _headers_for_comparison(self.headers) != _headers_for_comparison(other.headers):
                return False
        return True


def _params_for_comparison(params: Params) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for name, value in params:
        key = _canonical(name).lower()
        if key not in result:
            result[key] = None if value is None else _canonical(value).lower()
    return result


def _headers_for_comparison(headers: Headers) -> list[tuple[str, str]]:
    return sorted((_canonical(name).lower(), _canonical(value)) for name, value in headers)


@attrs.frozen
class TelURI:
    """
    A C{tel:} URI (RFC 3966).

    @ivar number: the C{global-number-digits} (starting with C{+}) or
        C{local-number-digits}, as written with any visual separators.
    @ivar params: the parameters (including C{isub}, C{ext} and
        C{phone-context}) as raw C{(name, value)} pairs in order.
    """

    number: str
    params: Params = ()
    _text: str | None = attrs.field(init=False, default=None, eq=False, repr=False)

    scheme = "tel"

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = f"tel:{self.number}{_format_params(self.params)}"
            object.__setattr__(self, "_text", text)
        return text

    @property
    def is_global(self) -> bool:
        """True for a global number (C{+...}, RFC 3966 section 5.1.4)."""
        return self.number[:1] == "+"

    @property
    def digits(self) -> str:
        """The number without visual separators C{-.()} (RFC 3966 5.1.1)."""
        return self.number.translate(_VISUAL_SEPARATORS)

    def param(self, name: str) -> str | None:
        """
        The unescaped value of the parameter C{name} (case-insensitive),
        C{""} for a parameter without a value, C{None} if absent.
        """
        return _param(self.params, name)

    def has_param(self, name: str) -> bool:
        """True if the parameter C{name} (case-insensitive) is present."""
        return _find_param(self.params, name)[0]

    @property
    def phone_context(self) -> str | None:
        """The C{phone-context} parameter (RFC 3966 section 5.1.5)."""
        return self.param("phone-context")

    @property
    def extension(self) -> str | None:
        """The C{ext} parameter (RFC 3966 section 5.1.3)."""
        return self.param("ext")

    def equivalent(self, other: object) -> bool:
        """
        Compare with C{other} by the rules of RFC 3966 section 4: both global
        or both local, the same digits once visual separators are removed,
        and the same parameters in any order (names and values
        case-insensitive; C{phone-context} and C{ext} digits without visual
        separators).
        """
        if not isinstance(other, TelURI):
            return False
        return self.digits.lower() == other.digits.lower() and _tel_params_for_comparison(
            self.params
        ) == _tel_params_for_comparison(other.params)


def _tel_params_for_comparison(params: Params) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for name, value in params:
        key = name.lower()
        if value is not None:
            value = _canonical(value).lower()
            if key == "ext" or (key == "phone-context" and value[:1] == "+"):
                value = value.translate(_VISUAL_SEPARATORS)
        result.setdefault(key, value)
    return result


@attrs.frozen
class AbsoluteURI:
    """
    A URI of any other scheme (RFC 3261 C{absoluteURI}), kept opaque, e.g.
    C{http://www.example.com} or C{isbn:2983792873} (RFC 4475 3.3.4).

    @ivar scheme: the scheme, lower-cased.
    @ivar opaque: everything after the first C{:}.
    """

    scheme: str
    opaque: str
    _text: str | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = f"{self.scheme}:{self.opaque}"
            object.__setattr__(self, "_text", text)
        return text

    def equivalent(self, other: object) -> bool:
        """
        True if C{other} has the same scheme (case-insensitive) and the same
        opaque part (case-sensitive).
        """
        return (
            isinstance(other, AbsoluteURI)
            and self.scheme == other.scheme
            and self.opaque == other.opaque
        )


URI = SipURI | TelURI | AbsoluteURI


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def parse_uri(text: str) -> URI:
    """
    Parse a URI: a L{SipURI} for C{sip:}/C{sips:}, a L{TelURI} for C{tel:},
    an L{AbsoluteURI} for any other scheme. Schemes are case-insensitive.

    @raise MessageParseError: (400) if C{text} is not a valid URI.
    """
    match = _SIP_URI_RE.fullmatch(text)
    if match is not None:
        return _sip_uri_from_match(text, match)
    head = text.partition(":")[0]
    scheme = head.lower() if head.isascii() else ""
    if scheme == "sip" or scheme == "sips":
        raise MessageParseError(_why_not_sip_uri(text))
    if scheme == "tel":
        return _parse_tel_uri(text)
    return _parse_absolute_uri(text)


def parse_sip_uri(text: str) -> SipURI:
    """
    Parse a C{sip:} or C{sips:} URI.

    @raise MessageParseError: 400 if C{text} is not a valid URI, 416
        (Unsupported URI Scheme) if it is a valid URI of another scheme.
    """
    match = _SIP_URI_RE.fullmatch(text)
    if match is not None:
        return _sip_uri_from_match(text, match)
    uri = parse_uri(text)
    raise MessageParseError(f"not a SIP or SIPS URI: {uri.scheme!r} scheme", status_hint=416)


def _sip_uri_from_match(text: str, match: re.Match[str]) -> SipURI:
    scheme, user, password, host, port, params, headers = match.groups()
    if "%" in text and _BAD_ESCAPE_RE.search(text):
        raise MessageParseError(f"bad escape ('%' without two hex digits) in URI {_show(text)}")
    if host[0] == "[" and not _is_ipv6_address(host[1:-1]):
        raise MessageParseError(f"bad IPv6 reference in URI {_show(text)}")
    uri = SipURI(
        scheme if scheme == "sip" else scheme.lower(),
        user,
        password,
        host,
        None if port is None else _port_number(port),
        _split_params(params) if params else (),
        _split_headers(headers) if headers else (),
    )
    object.__setattr__(uri, "_text", text)
    return uri


def _split_params(text: str) -> Params:
    """Split a matched C{uri-parameters} (starting with C{;})."""
    result: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        result.append((name, value if eq else None))
    if "`" in text:
        for name, pvalue in result:
            if pvalue is not None and "`" in pvalue and _param_key(name) not in _TOKEN_PARAMS:
                raise MessageParseError(f"bad URI parameter value {_show(pvalue)}")
    return tuple(result)


def _split_headers(text: str) -> Headers:
    """Split a matched C{headers} (without the C{?})."""
    return tuple(
        (name, value) for name, _, value in (item.partition("=") for item in text.split("&"))
    )


def _why_not_sip_uri(text: str) -> str:
    """A reason why C{text}, with a C{sip}/C{sips} scheme, is not valid."""
    if any(c.isspace() for c in text):
        return f"whitespace in URI {_show(text)}"
    if "<" in text or ">" in text:
        return f"angle brackets in URI {_show(text)}"
    if _BAD_ESCAPE_RE.search(text):
        return f"bad escape ('%' without two hex digits) in URI {_show(text)}"
    rest = text.partition(":")[2]
    userinfo, at, hostpart = rest.partition("@")
    if not at:
        hostpart = userinfo
    elif "@" in hostpart:
        return f"more than one '@' in URI {_show(text)}"
    elif not userinfo or userinfo[0] == ":":
        return f"empty user part in URI {_show(text)}"
    hostport = _PARAMS_OR_HEADERS_RE.split(hostpart, maxsplit=1)[0]
    if not hostport or hostport[0] == ":":
        return f"empty host in URI {_show(text)}"
    if hostport[0] == "[":
        _, bracket, port = hostport.partition("]")
        if not bracket:
            return f"unterminated IPv6 reference in URI {_show(text)}"
        port = port[1:] if port[:1] == ":" else port
    else:
        if hostport.count(":") > 1:
            return f"IPv6 address without brackets in URI {_show(text)} (RFC 5118 4.2)"
        port = hostport.partition(":")[2]
    if ":" in hostport and not (port.isascii() and port.isdigit()):
        return f"bad port in URI {_show(text)}"
    if ";;" in hostpart or hostpart.endswith(";") or ";?" in hostpart:
        return f"empty URI parameter in URI {_show(text)}"
    return f"invalid SIP URI {_show(text)}"


def _parse_tel_uri(text: str) -> TelURI:
    """
    Parse a C{tel:} URI (RFC 3966 section 3).

       telephone-uri        = "tel:" telephone-subscriber
       telephone-subscriber = global-number / local-number
       global-number        = global-number-digits *par
       local-number         = local-number-digits *par context *par
       par                  = parameter / extension / isdn-subaddress
    """
    if "%" in text and _BAD_ESCAPE_RE.search(text):
        raise MessageParseError(f"bad escape in tel URI {_show(text)}")
    number, *items = text[4:].split(";")
    is_global = number[:1] == "+"
    number_re = _GLOBAL_NUMBER_RE if is_global else _LOCAL_NUMBER_RE
    if number_re.fullmatch(number) is None:
        raise MessageParseError(f"bad number in tel URI {_show(text)}")
    params: list[tuple[str, str | None]] = []
    has_context = False
    for item in items:
        name, eq, value = item.partition("=")
        if _TEL_PNAME_RE.fullmatch(name) is None:
            raise MessageParseError(f"bad parameter in tel URI {_show(text)}")
        if not eq:
            params.append((name, None))
            continue
        value_re = _URIC_RE if name.lower() == "isub" else _PARAM_RE
        if value_re.fullmatch(value) is None:
            raise MessageParseError(f"bad parameter value in tel URI {_show(text)}")
        if name.lower() == "phone-context" and _DESCRIPTOR_RE.fullmatch(value):
            has_context = True
        params.append((name, value))
    if not is_global and not has_context:
        raise MessageParseError(
            f"local number without phone-context in tel URI {_show(text)} (RFC 3966 5.1.5)"
        )
    uri = TelURI(number, tuple(params))
    object.__setattr__(uri, "_text", text)
    return uri


def _parse_absolute_uri(text: str) -> AbsoluteURI:
    """Parse an C{absoluteURI} of a scheme other than sip, sips and tel."""
    match = _ABSOLUTE_URI_RE.fullmatch(text)
    if match is None:
        if any(c.isspace() for c in text):
            raise MessageParseError(f"whitespace in URI {_show(text)}")
        if "<" in text or ">" in text:
            raise MessageParseError(f"angle brackets in URI {_show(text)}")
        raise MessageParseError(f"invalid URI {_show(text)}")
    scheme, opaque = match.groups()
    uri = AbsoluteURI(scheme.lower(), opaque)
    object.__setattr__(uri, "_text", text)
    return uri
