# -*- test-case-name: sipedge.test.test_message_auth -*-
"""
Authentication header fields: WWW-Authenticate, Proxy-Authenticate,
Authorization, Proxy-Authorization and Authentication-Info (RFC 3261
sections 20.7, 20.27, 20.28, 20.44, 22 and 25.1; RFC 7616 digest; RFC 8760
SHA-256 digest in SIP; RFC 7235 2.1 token68).

Parsing and formatting only: computing and checking digests is the job of
the authentication package.

   challenge        =  ("Digest" LWS digest-cln *(COMMA digest-cln))
                       / other-challenge
   other-challenge  =  auth-scheme LWS auth-param
                       *(COMMA auth-param)
   credentials      =  ("Digest" LWS digest-response)
                       / other-response
   other-response   =  auth-scheme LWS auth-param
                       *(COMMA auth-param)
   auth-scheme      =  token
   auth-param       =  auth-param-name EQUAL
                       ( token / quoted-string )
   auth-param-name  =  token
   Authentication-Info  =  "Authentication-Info" HCOLON ainfo
                           *(COMMA ainfo)
   token68          =  1*( ALPHA / DIGIT / "-" / "." / "_" / "~"
                       / "+" / "/" ) *"="                    ; RFC 7235
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

import attrs

from sipedge.error import MessageParseError
from sipedge.message._address import QUOTED_STRING, quote_text
from sipedge.message._lex import unquote

__all__ = [
    "AuthHeader",
    "AuthenticationInfo",
    "DigestChallenge",
    "DigestCredentials",
    "parse_auth_header",
    "parse_authentication_info",
]

AuthParams = tuple[tuple[str, str], ...]

# Field defaults typed Any: a compiled build (mypyc) checks the value of
# "x: T = attrs.field(default=...)" against T when the class body runs, and
# attrs.field returns its marker there; typed Any, the call is not checked.
_NONE_YET: Any = ()

_WS = "[ \\t\\r\\n]"
_WS_CHARS = " \t\r\n"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN + r"\Z")

# auth-scheme LWS rest (applied to the value stripped of LWS)
_HEAD_RE = re.compile(rf"({_TOKEN})(?:{_WS}+(.*))?\Z", re.S)
# auth-param = auth-param-name EQUAL ( token / quoted-string ), EQUAL = SWS "=" SWS
_PARAM_RE = re.compile(rf"({_TOKEN}){_WS}*={_WS}*({QUOTED_STRING}|{_TOKEN}){_WS}*")
# token68 (RFC 7235 2.1)
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")
# nonce-count = "nc" EQUAL nc-value; nc-value = 8LHEX (upper case accepted)
# domain = "domain" EQUAL LDQUOT URI *( 1*SP URI ) RDQUOT
_LWS_SPLIT_RE = re.compile(rf"{_WS}+")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}\Z")
# RFC 8187 3.2.1:
#   ext-value     = charset  "'" [ language ] "'" value-chars
#   value-chars   = *( pct-encoded / attr-char )
#   attr-char     = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "."
#                   / "^" / "_" / "`" / "|" / "~"
_EXT_VALUE_RE = re.compile(
    r"([A-Za-z0-9!#$%&+\-^_`{}~]+)'([A-Za-z0-9\-]*)'"
    r"((?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*)\Z"
)

_CHALLENGE_FIELDS = frozenset(
    (
        "realm",
        "domain",
        "nonce",
        "opaque",
        "stale",
        "algorithm",
        "qop",
        "charset",
        "userhash",
    )
)
_CREDENTIALS_FIELDS = frozenset(
    (
        "username",
        "username*",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
        "userhash",
    )
)
_INFO_FIELDS = frozenset(("nextnonce", "qop", "rspauth", "cnonce", "nc"))


def _show(text: str) -> str:
    """C{repr(text)}, shortened for an error message."""
    return repr(text) if len(text) <= 60 else repr(text[:57]) + "..."


def _parse_auth_params(text: str) -> AuthParams:
    """
    Parse C{auth-param *(COMMA auth-param)}; C{text} has no leading or
    trailing LWS. Values stay raw (a quoted-string keeps its quotes).
    """
    out: list[tuple[str, str]] = []
    pos = 0
    end = len(text)
    match = _PARAM_RE.match
    while True:
        m = match(text, pos)
        if m is None:
            raise MessageParseError(f"malformed auth-param at {_show(text[pos:])}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos == end:
            return tuple(out)
        if text[pos] != ",":
            raise MessageParseError(f"expected ',' at {_show(text[pos:])}")
        pos += 1
        while pos < end and text[pos] in _WS_CHARS:
            pos += 1


def _format_auth_params(params: AuthParams) -> str:
    return ", ".join(f"{name}={value}" for name, value in params)


def _known_values(params: AuthParams, known: frozenset[str], what: str) -> dict[str, str]:
    """
    The unquoted values of the C{known} parameters, by lower-cased name.

    @raise MessageParseError: if one appears twice (RFC 7235 2.1).
    """
    values: dict[str, str] = {}
    for name, value in params:
        lname = name.lower()
        if lname in known:
            if lname in values:
                raise MessageParseError(f"{what}: duplicate {name} parameter")
            values[lname] = unquote(value)
    return values


def _extensions(params: AuthParams, known: frozenset[str]) -> AuthParams:
    return tuple((name, value) for name, value in params if name.lower() not in known)


def _extensions_key(known: frozenset[str]) -> Callable[[AuthParams], AuthParams]:
    """An attrs C{eq} key: compare only the parameters with no field."""

    def key(params: AuthParams) -> AuthParams:
        return tuple((name.lower(), value) for name, value in params if name.lower() not in known)

    return key


def _to_params(params: Iterable[tuple[str, str]]) -> AuthParams:
    return params if type(params) is tuple else tuple(params)


def _to_strs(values: Iterable[str]) -> tuple[str, ...]:
    return values if type(values) is tuple else tuple(values)


def _bool(value: str | None, name: str, what: str) -> bool:
    """C{"true"} / C{"false"} (case-insensitive), C{False} when absent."""
    if value is None:
        return False
    lvalue = value.lower()
    if lvalue == "true":
        return True
    if lvalue == "false":
        return False
    raise MessageParseError(f"{what}: bad {name} value {_show(value)}")


def _token(value: str | None, name: str, what: str) -> str | None:
    if value is not None and _TOKEN_RE.match(value) is None:
        raise MessageParseError(f"{what}: bad {name} value {_show(value)}")
    return value


def _message_qop(value: str | None, what: str) -> str | None:
    """message-qop = "qop" EQUAL qop-value: C{auth} or C{auth-int} here."""
    if value is not None and value.lower() not in ("auth", "auth-int"):
        raise MessageParseError(f"{what}: unsupported qop {_show(value)}")
    return value


def _nc(value: str | None, what: str) -> str | None:
    """nonce-count = "nc" EQUAL nc-value; nc-value = 8LHEX."""
    if value is not None and _NC_RE.match(value) is None:
        raise MessageParseError(f"{what}: nc must be 8 hex digits, not {_show(value)}")
    return value


def _decode_ext_value(value: str) -> str:
    """Decode an RFC 8187 C{ext-value} (the C{username*} of RFC 7616 3.4.4)."""
    m = _EXT_VALUE_RE.match(value)
    if m is None:
        raise MessageParseError(f"bad username* value {_show(value)}")
    charset = m.group(1).lower()
    if charset not in ("utf-8", "iso-8859-1"):
        raise MessageParseError(f"unsupported username* charset {_show(m.group(1))}")
    try:
        return unquote_to_bytes(m.group(3)).decode(charset)
    except UnicodeDecodeError:
        raise MessageParseError(f"bad {charset} in username* {_show(value)}") from None


@attrs.frozen
class AuthHeader:
    """
    A challenge or credentials of any scheme (RFC 3261 25.1, RFC 7235 2.1).

    @ivar scheme: the auth-scheme as written (C{Digest}, C{Bearer}, ...).
    @ivar params: the auth-params in order, names as written, values raw (a
        quoted-string keeps its quotes, so formatting gives them back).
    @ivar token68: the token68 form (C{Basic QWxhZGRpbg==}), or C{None}.
    """

    scheme: str
    params: AuthParams = attrs.field(default=_NONE_YET, converter=_to_params)
    token68: str | None = None

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if self.params:
            return f"{self.scheme} {_format_auth_params(self.params)}"
        return self.scheme

    @property
    def is_digest(self) -> bool:
        """True for the C{Digest} scheme (case-insensitive)."""
        return self.scheme.lower() == "digest"

    def param(self, name: str) -> str | None:
        """The unquoted value of the first C{name} parameter (case-insensitive)."""
        lname = name.lower()
        for pname, value in self.params:
            if pname.lower() == lname:
                return unquote(value)
        return None

    def as_challenge(self) -> DigestChallenge:
        """
        This WWW-Authenticate or Proxy-Authenticate value as a digest
        challenge (RFC 3261 25.1 C{digest-cln}; RFC 7616 3.3).

        @raise MessageParseError: if the scheme is not Digest, realm or nonce
            is missing, a parameter appears twice, or stale, userhash, qop
            or algorithm are malformed.
        """
        what = "Digest challenge"
        if not self.is_digest:
            raise MessageParseError(f"not a Digest challenge: {_show(self.scheme)}")
        values = _known_values(self.params, _CHALLENGE_FIELDS, what)
        realm = values.get("realm")
        nonce = values.get("nonce")
        if realm is None or nonce is None:
            raise MessageParseError(f"{what} without realm or nonce")
        qop: tuple[str, ...] = ()
        if "qop" in values:
            # qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT
            qop = tuple(option.strip(_WS_CHARS) for option in values["qop"].split(","))
            for option in qop:
                _token(option, "qop", what)
        return DigestChallenge(
            realm=realm,
            nonce=nonce,
            opaque=values.get("opaque"),
            algorithm=_token(values.get("algorithm"), "algorithm", what),
            qop=qop,
            stale=_bool(values.get("stale"), "stale", what),
            domain=tuple(_LWS_SPLIT_RE.split(values.get("domain", "").strip(_WS_CHARS)))
            if values.get("domain", "").strip(_WS_CHARS)
            else (),
            userhash=_bool(values.get("userhash"), "userhash", what),
            charset=_token(values.get("charset"), "charset", what),
            params=self.params,
        )

    def as_credentials(self) -> DigestCredentials:
        """
        This Authorization or Proxy-Authorization value as digest
        credentials (RFC 3261 25.1 C{digest-response}; RFC 7616 3.4).

        @raise MessageParseError: if the scheme is not Digest; username,
            realm, nonce, uri or response is missing; a parameter appears
            twice; qop is not auth or auth-int; nc is not 8 hex digits; or
            qop is given without cnonce and nc.
        """
        what = "Digest credentials"
        if not self.is_digest:
            raise MessageParseError(f"not Digest credentials: {_show(self.scheme)}")
        values = _known_values(self.params, _CREDENTIALS_FIELDS, what)
        username = values.get("username")
        if "username*" in values:
            # RFC 7616 3.4.4: username* carries what a quoted-string cannot
            if username is not None:
                raise MessageParseError(f"{what} with both username and username*")
            username = _decode_ext_value(values["username*"])
        realm = values.get("realm")
        nonce = values.get("nonce")
        uri = values.get("uri")
        response = values.get("response")
        if username is None or realm is None or nonce is None or uri is None or response is None:
            raise MessageParseError(f"{what} without username, realm, nonce, uri or response")
        qop = _message_qop(values.get("qop"), what)
        cnonce = values.get("cnonce")
        nc = _nc(values.get("nc"), what)
        if qop is not None and (cnonce is None or nc is None):
            # RFC 7616 3.4: cnonce and nc MUST be sent with a qop
            raise MessageParseError(f"{what} with qop but without cnonce and nc")
        return DigestCredentials(
            username=username,
            realm=realm,
            nonce=nonce,
            uri=uri,
            response=response,
            algorithm=_token(values.get("algorithm"), "algorithm", what),
            cnonce=cnonce,
            opaque=values.get("opaque"),
            qop=qop,
            nc=nc,
            userhash=_bool(values.get("userhash"), "userhash", what),
            params=self.params,
        )


@attrs.frozen(kw_only=True)
class DigestChallenge:
    """
    A digest challenge (RFC 3261 20.27, 20.44, 22.1; RFC 7616 3.3).

    Values are unquoted. C{params} holds every parameter as received (raw,
    in order); only the ones without a field of their own are compared and
    formatted from it.

    @ivar qop: the offered qop-values (C{("auth", "auth-int")}), or C{()}.
    @ivar domain: the URIs of the protection space, or C{()}.
    """

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str | None = None
    qop: tuple[str, ...] = attrs.field(default=_NONE_YET, converter=_to_strs)
    stale: bool = False
    domain: tuple[str, ...] = attrs.field(default=_NONE_YET, converter=_to_strs)
    userhash: bool = False
    charset: str | None = None
    params: AuthParams = attrs.field(
        default=_NONE_YET, converter=_to_params, eq=_extensions_key(_CHALLENGE_FIELDS)
    )

    @property
    def extensions(self) -> AuthParams:
        """The parameters without a field of their own, raw, in order."""
        return _extensions(self.params, _CHALLENGE_FIELDS)

    def to_header(self, scheme: str = "Digest") -> AuthHeader:
        """
        The header value: realm, domain, nonce, opaque, qop quoted;
        stale, algorithm, charset, userhash as tokens (RFC 7616 3.3); then
        the extensions.
        """
        params: list[tuple[str, str]] = [("realm", quote_text(self.realm))]
        if self.domain:
            params.append(("domain", quote_text(" ".join(self.domain))))
        params.append(("nonce", quote_text(self.nonce)))
        if self.opaque is not None:
            params.append(("opaque", quote_text(self.opaque)))
        if self.stale:
            params.append(("stale", "true"))
        if self.algorithm is not None:
            params.append(("algorithm", self.algorithm))
        if self.qop:
            params.append(("qop", quote_text(",".join(self.qop))))
        if self.charset is not None:
            params.append(("charset", self.charset))
        if self.userhash:
            params.append(("userhash", "true"))
        params.extend(self.extensions)
        return AuthHeader(scheme, tuple(params))

    def __str__(self) -> str:
        return str(self.to_header())


@attrs.frozen(kw_only=True)
class DigestCredentials:
    """
    Digest credentials (RFC 3261 20.7, 20.28, 22.2; RFC 7616 3.4).

    Values are unquoted; C{username} is decoded from C{username*} when that
    was sent (RFC 7616 3.4.4). C{params} holds every parameter as received
    (raw, in order); only the ones without a field of their own are compared
    and formatted from it.

    @ivar qop: the chosen qop-value (C{auth} or C{auth-int}), or C{None}.
    @ivar nc: the nonce count as its 8 hex digits, or C{None}.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    userhash: bool = False
    params: AuthParams = attrs.field(
        default=_NONE_YET, converter=_to_params, eq=_extensions_key(_CREDENTIALS_FIELDS)
    )

    @property
    def extensions(self) -> AuthParams:
        """The parameters without a field of their own, raw, in order."""
        return _extensions(self.params, _CREDENTIALS_FIELDS)

    @property
    def nonce_count(self) -> int | None:
        """C{nc} as an integer, or C{None}."""
        return None if self.nc is None else int(self.nc, 16)

    def to_header(self, scheme: str = "Digest") -> AuthHeader:
        """
        The header value: username, realm, nonce, uri, response, cnonce,
        opaque quoted; algorithm, qop, nc, userhash as tokens (RFC 7616
        3.4); then the extensions.
        """
        params: list[tuple[str, str]] = [
            ("username", quote_text(self.username)),
            ("realm", quote_text(self.realm)),
            ("nonce", quote_text(self.nonce)),
            ("uri", quote_text(self.uri)),
            ("response", quote_text(self.response)),
        ]
        if self.algorithm is not None:
            params.append(("algorithm", self.algorithm))
        if self.cnonce is not None:
            params.append(("cnonce", quote_text(self.cnonce)))
        if self.opaque is not None:
            params.append(("opaque", quote_text(self.opaque)))
        if self.qop is not None:
            params.append(("qop", self.qop))
        if self.nc is not None:
            params.append(("nc", self.nc))
        if self.userhash:
            params.append(("userhash", "true"))
        params.extend(self.extensions)
        return AuthHeader(scheme, tuple(params))

    def __str__(self) -> str:
        return str(self.to_header())


@attrs.frozen(kw_only=True)
class AuthenticationInfo:
    """
    An Authentication-Info value (RFC 3261 20.6; RFC 7616 3.5).

       ainfo          =  nextnonce / message-qop
                         / response-auth / cnonce
                         / nonce-count
       nextnonce      =  "nextnonce" EQUAL nonce-value
       response-auth  =  "rspauth" EQUAL response-digest
       response-digest =  LDQUOT *LHEX RDQUOT
    """

    nextnonce: str | None = None
    qop: str | None = None
    rspauth: str | None = None
    cnonce: str | None = None
    nc: str | None = None
    params: AuthParams = attrs.field(
        default=_NONE_YET, converter=_to_params, eq=_extensions_key(_INFO_FIELDS)
    )

    @property
    def extensions(self) -> AuthParams:
        """The parameters without a field of their own, raw, in order."""
        return _extensions(self.params, _INFO_FIELDS)

    def __str__(self) -> str:
        params: list[tuple[str, str]] = []
        if self.nextnonce is not None:
            params.append(("nextnonce", quote_text(self.nextnonce)))
        if self.qop is not None:
            params.append(("qop", self.qop))
        if self.rspauth is not None:
            params.append(("rspauth", quote_text(self.rspauth)))
        if self.cnonce is not None:
            params.append(("cnonce", quote_text(self.cnonce)))
        if self.nc is not None:
            params.append(("nc", self.nc))
        params.extend(self.extensions)
        return _format_auth_params(tuple(params))


def parse_auth_header(text: str) -> AuthHeader:
    """
    Parse a WWW-Authenticate, Proxy-Authenticate, Authorization or
    Proxy-Authorization value: C{auth-scheme LWS auth-param *(COMMA
    auth-param)}, or C{auth-scheme token68} for a scheme other than Digest,
    or a bare C{auth-scheme}.

    @raise MessageParseError: if C{text} is none of these.
    """
    m = _HEAD_RE.match(text.strip(_WS_CHARS))
    if m is None:
        raise MessageParseError(f"malformed authentication value {_show(text)}")
    rest: str | None  # None without LWS after the scheme
    scheme, rest = m.groups()
    if not rest:
        return AuthHeader(scheme)
    if _TOKEN68_RE.match(rest) is not None and scheme.lower() != "digest":
        return AuthHeader(scheme, (), rest)
    return AuthHeader(scheme, _parse_auth_params(rest))


def parse_authentication_info(text: str) -> AuthenticationInfo:
    """
    Parse an Authentication-Info value: C{ainfo *(COMMA ainfo)}.

    @raise MessageParseError: if it is malformed, a parameter appears twice,
        qop is not auth or auth-int, or nc is not 8 hex digits.
    """
    what = "Authentication-Info"
    stripped = text.strip(_WS_CHARS)
    if not stripped:
        raise MessageParseError(f"empty {what}")
    params = _parse_auth_params(stripped)
    values = _known_values(params, _INFO_FIELDS, what)
    return AuthenticationInfo(
        nextnonce=values.get("nextnonce"),
        qop=_message_qop(values.get("qop"), what),
        rspauth=values.get("rspauth"),
        cnonce=values.get("cnonce"),
        nc=_nc(values.get("nc"), what),
        params=params,
    )
