# -*- test-case-name: sipedge.test.test_message_uri -*-
"""
L{SipURI}: C{sip:} and C{sips:} URIs (RFC 3261 section 19.1), with the
comparison rules of section 19.1.4.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from sipedge.error import MessageParseError
from sipedge.message._uri_grammar import (
    _IPV4_RE,
    _STRICT_PARAMS,
    _TTL_RE,
    Headers,
    Params,
    _canonical,
    _check_host,
    _check_param,
    _find_param,
    _format_params,
    _param,
    _param_key,
    unescape,
)

__all__ = [
    "SipURI",
]


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
        return _param(self.params, name) if self.params else None

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
