# -*- test-case-name: sipedge.test.test_message_uri -*-
"""
The URI grammar (RFC 3261 section 25.1, RFC 3966): character classes,
escaping (L{unescape}, L{escape_user}, L{escape_param}, L{escape_header}),
host and port checks, and parameter helpers shared by the URI types.
"""

from __future__ import annotations

import re
from urllib.parse import unquote as _urllib_unquote

from sipedge.error import MessageParseError

__all__ = [
    "escape_header",
    "escape_param",
    "escape_user",
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
        # _param_key(pname), inline: a URI's parameters are read often.
        if (unescape(pname) if "%" in pname else pname).lower() == key:
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
