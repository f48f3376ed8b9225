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

import attrs

from sipedge.error import MessageParseError
from sipedge.message._sip_uri import SipURI
from sipedge.message._uri_grammar import (
    _ABSOLUTE_URI_RE,
    _BAD_ESCAPE_RE,
    _DESCRIPTOR_RE,
    _GLOBAL_NUMBER_RE,
    _LOCAL_NUMBER_RE,
    _PARAM_RE,
    _PARAMS_OR_HEADERS_RE,
    _SIP_URI_RE,
    _TEL_PNAME_RE,
    _TOKEN_PARAMS,
    _URIC_RE,
    _VISUAL_SEPARATORS,
    Headers,
    Params,
    _canonical,
    _find_param,
    _format_params,
    _is_ipv6_address,
    _param,
    _param_key,
    _port_number,
    _show,
)

__all__ = [
    "URI",
    "AbsoluteURI",
    "TelURI",
    "parse_sip_uri",
    "parse_uri",
]


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


# URIs by their text, first in first out past 4,096: a dialog's Request-URI
# (the callee's Contact) and Route set come back in each of its requests,
# and a phone's Contact in each of its messages. The values are frozen, so
# sharing them is safe; errors are not kept (they raise again). Texts over
# 512 characters are not kept, so a flood of long URIs holds a few MB at most.
_URI_MEMO: dict[str, URI] = {}
_URI_MEMO_SIZE = 4096
_URI_MEMO_TEXT = 512


def parse_uri(text: str) -> URI:
    """
    Parse a URI: a L{SipURI} for C{sip:}/C{sips:}, a L{TelURI} for C{tel:},
    an L{AbsoluteURI} for any other scheme. Schemes are case-insensitive.

    @raise MessageParseError: (400) if C{text} is not a valid URI.
    """
    uri = _URI_MEMO.get(text)
    if uri is None:
        uri = _parse_uri(text)
        if len(text) <= _URI_MEMO_TEXT:
            if len(_URI_MEMO) >= _URI_MEMO_SIZE:
                del _URI_MEMO[next(iter(_URI_MEMO))]
            _URI_MEMO[text] = uri
    return uri


def _parse_uri(text: str) -> URI:
    """L{parse_uri} without the memo."""
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
    # Optional groups are None: typed so, a compiled build (mypyc) checks it.
    user: str | None
    password: str | None
    port: str | None
    params: str | None
    headers: str | None
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
