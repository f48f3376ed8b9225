# -*- test-case-name: sipedge.test.test_message_via -*-
"""
The Via header field (RFC 3261 sections 8.1.1.7, 18.2.1, 20.42 and 25.1;
RFC 3581 C{rport}; RFC 5118 IPv6).

   via-parm          =  sent-protocol LWS sent-by *( SEMI via-params )
   via-params        =  via-ttl / via-maddr
                        / via-received / via-branch
                        / via-extension
   via-ttl           =  "ttl" EQUAL ttl
   via-maddr         =  "maddr" EQUAL host
   via-received      =  "received" EQUAL (IPv4address / IPv6address)
   via-branch        =  "branch" EQUAL token
   via-extension     =  generic-param
   sent-protocol     =  protocol-name SLASH protocol-version
                        SLASH transport
   protocol-name     =  "SIP" / token
   protocol-version  =  token
   transport         =  "UDP" / "TCP" / "TLS" / "SCTP"
                        / other-transport
   sent-by           =  host [ COLON port ]
   ttl               =  1*3DIGIT ; 0 to 255
   response-port     =  "rport" [EQUAL 1*DIGIT]       ; RFC 3581 section 6

SLASH, COLON, SEMI and EQUAL allow LWS on both sides, so C{str()} of a
value parsed from oddly spaced text gives the canonical spacing back
(C{SIP/2.0/UDP host:port;name=value}), which reparses to an equal value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from sipedge.error import MessageParseError
from sipedge.message._lex import format_params, split_comma_list

# The IPv6address check of the URI parser, so that Via and URIs agree
# (RFC 5118 4.10 three-colon form included).
from sipedge.message._uri_grammar import _is_ipv6_address as _is_ipv6

# Field arguments typed Any: a compiled build (mypyc) checks the value of
# "x: T = attrs.field(...)" against T when the class body runs, and
# attrs.field returns its marker there. Typed Any (a default, or no
# validator), the call is not checked; attrs and mypy see the same field.
_NO_PARAMS: Any = ()
_NO_VALIDATOR: Any = None

__all__ = [
    "BRANCH_MAGIC_COOKIE",
    "Via",
    "parse_via",
    "parse_via_list",
]

#: RFC 3261 8.1.1.7: branch IDs of RFC 3261 elements start with this.
BRANCH_MAGIC_COOKIE = "z9hG4bK"

Params = tuple[tuple[str, "str | None"], ...]

# LWS = [*WSP CRLF] 1*WSP; SWS = [LWS]. Header values usually arrive
# unfolded, but folded text is accepted too.
_WS = "[ \\t\\r\\n]"
_WS_CHARS = " \t\r\n"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN + r"\Z")

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# sent-by = host [ COLON port ]; the host is checked by _valid_host.
_VIA_RE = re.compile(
    rf"{_WS}*({_TOKEN}){_WS}*/{_WS}*({_TOKEN}){_WS}*/{_WS}*({_TOKEN})"
    rf"{_WS}+(\[[^\]]*\]|[A-Za-z0-9.\-]+)(?:{_WS}*:{_WS}*([0-9]+))?"
    rf"{_WS}*(;.*)?\Z",
    re.S,
)

# SEMI via-params, with SEMI = SWS ";" SWS and EQUAL = SWS "=" SWS; the name
# and value are checked afterwards so errors can say what is wrong.
# gen-value = token / host / quoted-string
_PARAM_RE = re.compile(
    rf';{_WS}*([^;=" \t\r\n]*){_WS}*'
    rf'(?:(=){_WS}*("(?:[^"\\]|\\.)*"|[^;" \t\r\n]*))?{_WS}*',
    re.S,
)
# gen-value without the quoted-string: token / host (IPv6reference included)
_GEN_VALUE_RE = re.compile(r"(?:[A-Za-z0-9\-.!%*_+`'~]+|\[[0-9A-Fa-f:.]+\])\Z")
# The common shape of *( SEMI via-params ): no LWS, no quoted-string.
_SIMPLE_PARAMS_RE = re.compile(
    r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=(?:[A-Za-z0-9\-.!%*_+`'~]+|\[[0-9A-Fa-f:.]+\]))?)+\Z"
)
_CHECKED_PARAMS = frozenset(("received", "rport", "maddr", "ttl"))
_VALUE_REQUIRED = frozenset(("branch", "received", "maddr", "ttl"))
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"\Z', re.S)

# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\Z")
# host = hostname / IPv4address (IPv6reference is handled apart)
# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
_HOST_RE = re.compile(
    rf"(?:{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?)\Z"
)


def _valid_host(host: str) -> bool:
    """True for an RFC 3261 C{host}: hostname / IPv4address / IPv6reference."""
    if host[:1] == "[":
        return host[-1] == "]" and _is_ipv6(host[1:-1])
    return _HOST_RE.match(host) is not None


def _valid_ip(text: str) -> bool:
    """True for IPv4address / IPv6address / IPv6reference (RFC 5118 4.5)."""
    if _IPV4_RE.match(text) is not None:
        return True
    if text[:1] == "[":
        return text[-1] == "]" and _is_ipv6(text[1:-1])
    return _is_ipv6(text)


def _port(text: str, what: str) -> int:
    """C{port = 1*DIGIT}, at most 65535."""
    digits = text.lstrip("0") or "0"
    if len(digits) > 5 or int(digits) > 65535:
        raise MessageParseError(f"{what} out of range: {text[:20]!r}")
    return int(digits)


def _check_param(name: str, value: str | None) -> None:
    """
    Check one via-params element; the value is C{None} for a flag.

    @raise MessageParseError: if it breaks the grammar above.
    """
    if _TOKEN_RE.match(name) is None:
        raise MessageParseError(f"bad Via parameter name {name!r}")
    lname = name.lower()
    if value is None:
        if lname in _VALUE_REQUIRED:
            raise MessageParseError(f"Via parameter {name} needs a value")
        return
    if not value:
        raise MessageParseError(f"empty value for Via parameter {name}")
    if lname == "branch":
        # via-branch = "branch" EQUAL token
        if _TOKEN_RE.match(value) is None:
            raise MessageParseError(f"bad Via branch {value!r}")
    elif lname == "received":
        if not _valid_ip(value):
            raise MessageParseError(f"bad Via received {value!r}")
    elif lname == "rport":
        if not value.isascii() or not value.isdigit():
            raise MessageParseError(f"bad Via rport {value!r}")
        _port(value, "Via rport")
    elif lname == "maddr":
        if not _valid_host(value):
            raise MessageParseError(f"bad Via maddr {value!r}")
    elif lname == "ttl":
        # ttl = 1*3DIGIT ; 0 to 255
        if len(value) > 3 or not value.isascii() or not value.isdigit():
            raise MessageParseError(f"bad Via ttl {value!r}")
        if int(value) > 255:
            raise MessageParseError(f"Via ttl out of range: {value!r}")
    elif value[0] == '"':
        if _QUOTED_RE.match(value) is None:
            raise MessageParseError(f"bad quoted value for Via parameter {name}")
    elif _GEN_VALUE_RE.match(value) is None:
        raise MessageParseError(f"bad value for Via parameter {name}: {value!r}")


def _parse_params(text: str) -> Params:
    """Parse C{*( SEMI via-params )}; C{text} starts with C{;}."""
    out: list[tuple[str, str | None]] = []
    if _SIMPLE_PARAMS_RE.match(text) is not None:
        # Fast path: no LWS, no quotes, every name and value a token (or an
        # IPv6reference); only the parameters with their own rules are
        # checked further.
        for piece in text[1:].split(";"):
            name, eq, value = piece.partition("=")
            if eq:
                if value[0] == "[" or name.lower() in _CHECKED_PARAMS:
                    _check_param(name, value)
                out.append((name, value))
            else:
                if name.lower() in _VALUE_REQUIRED:
                    _check_param(name, None)
                out.append((name, None))
        return tuple(out)
    pos = 0
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise MessageParseError(f"malformed Via parameters: {text[pos : pos + 40]!r}")
        # Optional groups are None: typed so, a compiled build (mypyc) checks it.
        equals: str | None
        raw: str | None
        name, equals, raw = m.groups()
        if not name:
            raise MessageParseError("empty Via parameter")
        checked = None if equals is None else raw
        _check_param(name, checked)
        out.append((name, checked))
        pos = m.end()
    return tuple(out)


def _upper(text: str) -> str:
    return text.upper()


def _to_params(params: Iterable[tuple[str, str | None]]) -> Params:
    return params if type(params) is tuple else tuple(params)


@attrs.frozen(kw_only=True)
class Via:
    """
    One Via value (RFC 3261 20.42).

    @ivar protocol: protocol name and version, C{"SIP/2.0"}, case as written.
    @ivar transport: the transport, upper-cased (C{UDP}, C{TCP}, C{TLS},
        C{SCTP}, C{WS}, C{WSS} or any other token).
    @ivar host: the sent-by host as written; an IPv6 address has brackets.
    @ivar port: the sent-by port, or C{None} if absent.
    @ivar params: the parameters in order, names and raw values as written
        (a flag has the value C{None}).
    """

    protocol: str = "SIP/2.0"
    transport: str = attrs.field(converter=_upper, validator=_NO_VALIDATOR)
    host: str
    port: int | None = None
    params: Params = attrs.field(default=_NO_PARAMS, converter=_to_params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        params = format_params(self.params) if self.params else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{params}"

    def param(self, name: str) -> str | None:
        """
        The raw value of the first parameter C{name} (case-insensitive),
        C{""} for a flag, C{None} if absent.
        """
        lname = name.lower()
        for pname, value in self.params:
            if pname.lower() == lname:
                return "" if value is None else value
        return None

    def has_param(self, name: str) -> bool:
        """True if a parameter C{name} (case-insensitive) is present."""
        return self.param(name) is not None

    @property
    def sent_by(self) -> str:
        """C{sent-by} as text: C{host} or C{host:port} (RFC 3261 18.2.1)."""
        if self.port is None:
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def branch(self) -> str | None:
        """The branch parameter (RFC 3261 8.1.1.7), or C{None}."""
        for pname, value in self.params:
            if pname == "branch" or pname.lower() == "branch":
                return value
        return None

    @property
    def is_rfc3261_branch(self) -> bool:
        """
        True if the branch starts with the magic cookie C{z9hG4bK} and has
        something after it (RFC 3261 8.1.1.7: the branch must be unique, so
        a bare C{z9hG4bK} is well-formed but semantically defective).
        """
        branch = self.branch
        return (
            branch is not None
            and len(branch) > len(BRANCH_MAGIC_COOKIE)
            and branch.startswith(BRANCH_MAGIC_COOKIE)
        )

    @property
    def received(self) -> str | None:
        """The received parameter (RFC 3261 18.2.1), as written, or C{None}."""
        value = self.param("received")
        return value or None

    @property
    def rport(self) -> int | bool | None:
        """
        The rport parameter (RFC 3581): C{None} if absent, C{True} if
        present without a value, else the port.

        @raise MessageParseError: if the value is not a port.
        """
        value = self.param("rport")
        if value is None:
            return None
        if value == "":
            return True
        if not value.isascii() or not value.isdigit():
            raise MessageParseError(f"bad Via rport {value!r}")
        return _port(value, "Via rport")

    @property
    def maddr(self) -> str | None:
        """The maddr parameter (RFC 3261 18.2.2), or C{None}."""
        value = self.param("maddr")
        return value or None

    @property
    def ttl(self) -> int | None:
        """
        The ttl parameter (RFC 3261 18.2.1), or C{None}.

        @raise MessageParseError: if it is not 0 to 255.
        """
        value = self.param("ttl")
        if value is None:
            return None
        _check_param("ttl", value)
        return int(value)

    def with_param(self, name: str, value: str | None = None) -> Via:
        """
        A copy with parameter C{name} set to C{value} (C{None} for a flag),
        replacing the first parameter of that name (case-insensitive) in
        place and dropping any later ones, or appending it.

        @raise MessageParseError: if the parameter breaks the grammar.
        """
        _check_param(name, value)
        lname = name.lower()
        out: list[tuple[str, str | None]] = []
        done = False
        for pname, pvalue in self.params:
            if pname.lower() == lname:
                if not done:
                    out.append((name, value))
                    done = True
            else:
                out.append((pname, pvalue))
        if not done:
            out.append((name, value))
        return self._with_params(tuple(out))

    def _with_params(self, params: Params) -> Via:
        """A copy with C{params} (already checked), made directly: no attrs.evolve."""
        return type(self)(
            protocol=self.protocol,
            transport=self.transport,
            host=self.host,
            port=self.port,
            params=params,
        )

    def without_param(self, name: str) -> Via:
        """A copy without any parameter C{name} (case-insensitive)."""
        lname = name.lower()
        return self._with_params(tuple(p for p in self.params if p[0].lower() != lname))

    def with_branch(self, branch: str) -> Via:
        """A copy with another branch (RFC 3261 8.1.1.7)."""
        return self.with_param("branch", branch)

    def with_received(self, host: str) -> Via:
        """
        A copy with C{received=host} (RFC 3261 18.2.1): an IPv4 address, or
        an IPv6 address with or without brackets (RFC 5118 4.5).
        """
        return self.with_param("received", host)

    def stamped(self, received: str, rport: int | None = None) -> Via:
        """
        What a server stamps on a received top Via (RFC 3261 18.2.1, RFC
        3581 4), in one pass: the same value as C{with_rport(rport)} (when
        C{rport} is not C{None}) followed by C{with_received(received)}.

        @raise MessageParseError: if C{received} is not an IP address or
            C{rport} not a port.
        """
        port: str | None = None
        if rport is not None:
            port = str(rport)
            if not 0 <= rport <= 65535:
                _check_param("rport", port)
        if not received or not _valid_ip(received):
            _check_param("received", received)  # raises, saying why
        out: list[tuple[str, str | None]] = []
        have_rport = port is None
        have_received = False
        for pname, pvalue in self.params:
            lname = pname if pname == "branch" else pname.lower()
            if lname == "received":
                if not have_received:
                    out.append(("received", received))
                    have_received = True
            elif lname == "rport" and port is not None:
                if not have_rport:
                    out.append(("rport", port))
                    have_rport = True
            else:
                out.append((pname, pvalue))
        if not have_rport:
            out.append(("rport", port))
        if not have_received:
            out.append(("received", received))
        return self._with_params(tuple(out))

    def with_rport(self, port: int | None = None) -> Via:
        """
        A copy with C{rport=port} (RFC 3581 4), or a bare C{rport} flag
        (RFC 3581 3) when C{port} is C{None}.
        """
        return self.with_param("rport", None if port is None else str(port))


def parse_via(text: str) -> Via:
    """
    Parse one C{via-parm} (RFC 3261 20.42).

    @raise MessageParseError: if C{text} is not exactly one Via value.
    """
    m = _VIA_RE.match(text)
    if m is None:
        raise MessageParseError(f"malformed Via: {text[:80]!r}")
    # Optional groups are None: typed so, a compiled build (mypyc) checks it.
    port_text: str | None
    params: str | None
    name, version, transport, host, port_text, params = m.groups()
    if host[0] == "[":
        if not _valid_host(host):
            raise MessageParseError(f"bad Via sent-by host {host!r}")
    elif _HOST_RE.match(host) is None:
        raise MessageParseError(f"bad Via sent-by host {host!r}")
    port: int | None = None
    if port_text is not None:
        port = int(port_text) if len(port_text) < 5 else _port(port_text, "Via port")
    return Via(
        protocol=f"{name}/{version}",
        transport=transport,
        host=host,
        port=port,
        params=() if params is None else _parse_params(params),
    )


def parse_via_list(text: str) -> tuple[Via, ...]:
    """
    Parse a Via header field value: C{via-parm *(COMMA via-parm)}.

    @raise MessageParseError: on any malformed or empty element.
    """
    if "," not in text:
        return (parse_via(text),)
    parts = split_comma_list(text)
    for part in parts:
        if not part.strip(_WS_CHARS):
            raise MessageParseError("empty element in Via header field")
    return tuple(parse_via(part) for part in parts)
