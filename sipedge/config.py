# -*- test-case-name: sipedge.test.test_config -*-
"""
sipedge's configuration: frozen values, read from TOML.

A L{Config} holds one value per section of the file (C{[sip]}, C{[tls]},
C{[state]}, C{[limits]}, C{[timers]}, C{[registrar]}, C{[[routes]]},
C{[pipeline]}, C{[log]}, C{[dialogs]}, C{[topology_hiding]}, ...). Every
section checks its values when it is
constructed, so a L{Config} that exists is valid; L{parse_config} and
L{load_config} turn the first problem into one L{ConfigError} whose message
names the file, the key (a dotted path such as C{sip.listen[2]}) and what is
wrong. C{doc/configuration.md} documents every key.

L{DEFAULT_CONFIG} is what C{twistd -n sipedge} runs on without C{--config}.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
from twisted.logger import LogLevel

from sipedge._config_values import InvalidValue as _InvalidValue
from sipedge._config_values import boolean as _boolean
from sipedge._config_values import describe as _describe
from sipedge._config_values import each as _each
from sipedge._config_values import integer as _integer
from sipedge._config_values import join as _join
from sipedge._config_values import network as _network
from sipedge._config_values import seconds
from sipedge._config_values import suggest as _suggest
from sipedge._config_values import to_float as _to_float
from sipedge.auth import AuthConfig
from sipedge.capture import HepConfig
from sipedge.error import ConfigError, MessageParseError
from sipedge.media import DEFAULT_INTERNAL_NETWORKS, MediaConfig, RelayServiceConfig
from sipedge.message import Limits, SipURI, parse_sip_uri
from sipedge.metrics import MetricsConfig
from sipedge.security import SecurityConfig

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LISTEN",
    "DEFAULT_STAGES",
    "TRANSPORTS",
    "Config",
    "DialogsConfig",
    "HostPort",
    "LimitsConfig",
    "Listener",
    "LogConfig",
    "PipelineConfig",
    "RegistrarConfig",
    "Route",
    "SipConfig",
    "StateConfig",
    "TimersConfig",
    "TlsConfig",
    "TopologyHidingConfig",
    "default_domains",
    "load_config",
    "parse_config",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TRANSPORTS = ("udp", "tcp", "tls")
"""The transports a listener can use."""

DEFAULT_LISTEN = ("udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061")
"""C{sip.listen} when the configuration does not set it."""

DEFAULT_STAGES = (
    "ban-check",
    "scanner",
    "flood",
    "monitor",
    "filter",
    "sanity",
    "max-forwards",
    "loop-detect",
    "route",
    "digest-auth",
    "responsibility",
    "toll-fraud",
    "media-anchor",
    "registrar",
    "location",
    "static-route",
    "forward",
)
"""C{pipeline.stages} when the configuration does not set it."""

_MAX_DELTA_SECONDS = 2**32 - 1  # RFC 3261 section 25.1, delta-seconds


# --------------------------------------------------------------------------
# Validators and converters
# --------------------------------------------------------------------------

# The errors (_InvalidValue naming a key relative to its section, _join,
# _describe, _suggest) and the validators shared with the sections of other
# packages are in sipedge._config_values.

_seconds = seconds()


def _string(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str):
        raise _InvalidValue(attribute.name, f"expected a string, got {_describe(value)}")


def _choice(*choices: str) -> Callable[..., None]:
    """A validator: one of the strings C{choices}."""

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        _string(instance, attribute, value)
        if value not in choices:
            names = ", ".join(repr(c) for c in choices)
            raise _InvalidValue(attribute.name, f"must be one of {names}, not {value!r}")

    return check


def _as_tuple(value: object) -> object:
    """Arrays become tuples (so values stay hashable); others are checked later."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _one(key: str, convert: Callable[[Any], Any], value: object) -> Any:
    """Convert one value, naming C{key} if C{convert} raises L{ValueError}."""
    try:
        return convert(value)
    except ValueError as e:
        raise _InvalidValue(key, str(e)) from None


def _optional_path(value: object) -> object:
    if isinstance(value, str) and value:
        return Path(value)
    return value


def _path(optional: bool) -> Callable[..., None]:
    """A validator: a L{Path} (or C{None} if C{optional})."""

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if value is None and optional:
            return
        if value == "":
            raise _InvalidValue(attribute.name, "must not be empty")
        if not isinstance(value, Path):
            raise _InvalidValue(attribute.name, f"expected a path, got {_describe(value)}")

    return check


# --------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------

# RFC 3261 section 25.1:
#   hostname     =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel  =  alphanum / alphanum *( alphanum / "-" ) alphanum
#   toplabel     =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_TOPLABEL = r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_TOPLABEL}\.?")


def _ip_literal(text: str) -> str | None:
    """The canonical form of an IP address (IPv6 without brackets), or C{None}."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _host(value: object) -> str:
    """
    Normalize a host name or IP address: host names lower-cased without a
    trailing dot, IP addresses canonical, IPv6 without brackets.

    @raise ValueError: if C{value} is neither.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    text = value
    if text.startswith("[") and text.endswith("]"):
        address = _ip_literal(text[1:-1])
        if address is None or ":" not in address:
            raise ValueError(f"{value!r} is not a valid IPv6 reference")
        return address
    address = _ip_literal(text)
    if address is not None:
        return address
    if len(text) > 253 or not _HOSTNAME_RE.fullmatch(text):
        raise ValueError(f"{value!r} is not a valid host name or IP address")
    return text.rstrip(".").lower()


def _format_host(host: str) -> str:
    """C{host}, with brackets if it is an IPv6 address."""
    return f"[{host}]" if ":" in host else host


def _split_hostport(text: str) -> tuple[str, str | None]:
    """
    Split C{host}, C{host:port}, C{[v6]} or C{[v6]:port} into the host (as
    written, IPv6 without brackets) and the port text (or C{None}).

    @raise ValueError: on a bare IPv6 address or a bad bracket.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if _ip_literal(host) is None or ":" not in host:
            raise ValueError(f"{host!r} is not an IPv6 address, in {text!r}")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"expected ':port' after ']', in {text!r}")
        return host, rest[1:]
    if text.count(":") > 1:
        raise ValueError(f"write an IPv6 address in brackets, as in '[::1]:5060', not {text!r}")
    host, colon, port = text.partition(":")
    return host, (port if colon else None)


def _port_number(text: str, low: int, whole: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"bad port {text!r} in {whole!r}")
    port = int(text)
    if not low <= port <= 65535:
        raise ValueError(f"port {port} in {whole!r} must be {low} to 65535")
    return port


# --------------------------------------------------------------------------
# Small values
# --------------------------------------------------------------------------


def _check_transport(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value not in TRANSPORTS:
        raise ValueError(f"bad transport {value!r}: expected udp, tcp or tls")


def _check_listen_host(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or _ip_literal(value) is None:
        raise ValueError(f"bad host {value!r}: a listener's host must be an IP address")


def _canonical_ip(value: object) -> object:
    if isinstance(value, str):
        address = _ip_literal(value[1:-1] if value.startswith("[") else value)
        if address is not None:
            return address
    return value


def _check_listen_port(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"bad port {value!r}: must be 0 to 65535")


@attrs.frozen
class Listener:
    """
    A transport address to listen on: text C{transport:host:port}, as in
    C{udp:0.0.0.0:5060} or C{tls:[::1]:5061}.

    @ivar transport: C{"udp"}, C{"tcp"} or C{"tls"}.
    @ivar host: an IP address, canonical, IPv6 without brackets.
    @ivar port: 1 to 65535, or 0 for any free port (for tests).
    """

    transport: str = attrs.field(validator=_check_transport)
    host: str = attrs.field(converter=_canonical_ip, validator=_check_listen_host)
    port: int = attrs.field(validator=_check_listen_port)

    @classmethod
    def parse(cls, text: object) -> Listener:
        """
        Parse C{transport:host:port}; the transport is case-insensitive.

        @raise ValueError: with a message that quotes C{text}.
        """
        if not isinstance(text, str):
            raise ValueError(f"expected a string such as 'udp:0.0.0.0:5060', got {_describe(text)}")
        transport, colon, hostport = text.partition(":")
        if not colon:
            raise ValueError(
                f"expected 'transport:host:port', as in 'udp:0.0.0.0:5060', not {text!r}"
            )
        transport = transport.lower()
        if transport not in TRANSPORTS:
            raise ValueError(f"bad transport {transport!r} in {text!r}: expected udp, tcp or tls")
        host, port = _split_hostport(hostport)
        if port is None:
            raise ValueError(f"missing port in {text!r}: expected 'transport:host:port'")
        if _ip_literal(host) is None:
            raise ValueError(
                f"bad host {host!r} in {text!r}: a listener's host must be an IP address"
            )
        return cls(transport, host, _port_number(port, 0, text))

    @property
    def is_stream(self) -> bool:
        """True for TCP and TLS, which share the TCP port space."""
        return self.transport != "udp"

    def __str__(self) -> str:
        return f"{self.transport}:{_format_host(self.host)}:{self.port}"


def _convert_host(value: object) -> str:
    return _one("host", _host, value)


@attrs.frozen
class HostPort:
    """
    A host and an optional port, as written into Via and Record-Route.

    @ivar host: a host name (lower-cased) or an IP address (canonical, IPv6
        without brackets).
    @ivar port: 1 to 65535, or C{None} for the transport's default port.
    """

    host: str = attrs.field(converter=_convert_host)
    port: int | None = attrs.field(default=None)

    @port.validator
    def _check_port(self, attribute: attrs.Attribute, value: object) -> None:
        if value is not None:
            _integer(1, 65535)(self, attribute, value)

    @classmethod
    def parse(cls, text: object) -> HostPort:
        """
        Parse C{host}, C{host:port}, C{[v6]} or C{[v6]:port}.

        @raise ValueError: with a message that quotes C{text}.
        """
        if not isinstance(text, str):
            raise ValueError(
                f"expected a string such as 'sip.example.com:5060', got {_describe(text)}"
            )
        host, port = _split_hostport(text)
        host = _host(host)
        return cls(host, None if port is None else _port_number(port, 1, text))

    def __str__(self) -> str:
        host = _format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"


_DEFAULT_LISTENERS = tuple(Listener.parse(text) for text in DEFAULT_LISTEN)


def _convert_domains(value: object) -> tuple[str, ...]:
    return _unique(_each("domains", _host, value))


def _convert_listen(value: object) -> tuple[Listener, ...]:
    return _each("listen", _listener, value)


def _convert_trusted(value: object) -> tuple[IPNetwork, ...]:
    return _each("trusted", _network, value)


def _convert_advertise(value: object) -> HostPort | None:
    return _one("advertise", _advertise, value)


def _listener(value: object) -> Listener:
    return value if isinstance(value, Listener) else Listener.parse(value)


def _advertise(value: object) -> HostPort | None:
    if value is None or isinstance(value, HostPort):
        return value
    return HostPort.parse(value)


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def default_domains() -> tuple[str, ...]:
    """
    The domains sipedge is responsible for when C{sip.domains} is not set:
    this machine's host name (if it is a valid SIP host name) and
    C{localhost}.
    """
    domains = []
    try:
        domains.append(_host(socket.gethostname()))
    except (OSError, ValueError):
        pass
    if "localhost" not in domains:
        domains.append("localhost")
    return tuple(domains)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _check_listen(
    instance: SipConfig, attribute: attrs.Attribute, value: tuple[Listener, ...]
) -> None:
    if not value:
        raise _InvalidValue("listen", "must name at least one listener")
    seen: dict[tuple[bool, str, int], int] = {}
    for index, listener in enumerate(value):
        if listener.port == 0:
            continue
        key = (listener.is_stream, listener.host, listener.port)
        if key in seen:
            raise _InvalidValue(
                f"listen[{index}]",
                f"{str(listener)!r} uses the same {'TCP' if listener.is_stream else 'UDP'}"
                f" address as listen[{seen[key]}] ({str(value[seen[key]])!r})",
            )
        seen[key] = index


def _check_user_agent(instance: object, attribute: attrs.Attribute, value: object) -> None:
    _string(instance, attribute, value)
    assert isinstance(value, str)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value != value.strip():
        raise _InvalidValue(
            attribute.name,
            f"must be printable text without control characters or outer spaces, not {value!r}",
        )


@attrs.frozen
class SipConfig:
    """
    C{[sip]}: who we are and where we listen.

    @ivar domains: the domains we are responsible for (registrar and
        location service), lower-cased; IP addresses canonical, IPv6
        without brackets (compare with C{SipURI.bare_host}).
    @ivar listen: the transport addresses to listen on.
    @ivar trusted: networks whose requests may be relayed to domains that are
        not ours.
    @ivar record_route: whether to add Record-Route to dialog-forming
        requests.
    @ivar advertise: the host (and port) written into Via and Record-Route
        instead of the bound address (a proxy behind NAT), or C{None}.
    @ivar user_agent: the User-Agent/Server value; C{""} sends none.
    @ivar max_forwards: the Max-Forwards of requests we originate, and the
        most we let through.
    """

    domains: tuple[str, ...] = attrs.field(factory=default_domains, converter=_convert_domains)
    listen: tuple[Listener, ...] = attrs.field(
        default=_DEFAULT_LISTENERS, converter=_convert_listen, validator=_check_listen
    )
    trusted: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_convert_trusted)
    record_route: bool = attrs.field(default=True, validator=_boolean)
    advertise: HostPort | None = attrs.field(default=None, converter=_convert_advertise)
    user_agent: str = attrs.field(default="sipedge", validator=_check_user_agent)
    max_forwards: int = attrs.field(default=70, validator=_integer(1, 255))

    def is_ours(self, host: str) -> bool:
        """True if C{host} (a URI host, IPv6 with or without brackets) is one of our domains."""
        try:
            return _host(host) in self.domains
        except ValueError:
            return False

    def is_trusted(self, address: str) -> bool:
        """True if the IP address C{address} is in a trusted network."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted)


@attrs.frozen
class TlsConfig:
    """
    C{[tls]}: certificates and peer verification.

    @ivar certificate: the PEM certificate chain, or C{None} for a
        self-signed certificate generated in the state directory.
    @ivar private_key: the PEM private key; defaults to C{certificate} (one
        file holding both).
    @ivar ca_certificates: PEM CA certificates to verify peers with, or
        C{None} for the system's trust store.
    @ivar verify_client: C{"none"}, C{"optional"} or C{"required"}: whether
        TLS clients must present a certificate we can verify.
    @ivar verify_server: whether to verify the certificates of servers we
        connect to.
    @ivar profile: protocol versions and ciphers, in and out:
        C{"intermediate"} (TLS 1.2 with ECDHE and AEAD only, and TLS 1.3)
        or C{"modern"} (TLS 1.3 only).
    @ivar ciphers: an OpenSSL cipher string replacing the profile's TLS 1.2
        list, or C{None}.
    """

    certificate: Path | None = attrs.field(
        default=None, converter=_optional_path, validator=_path(optional=True)
    )
    private_key: Path | None = attrs.field(converter=_optional_path, validator=_path(optional=True))
    ca_certificates: Path | None = attrs.field(
        default=None, converter=_optional_path, validator=_path(optional=True)
    )
    verify_client: str = attrs.field(
        default="none", validator=_choice("none", "optional", "required")
    )
    verify_server: bool = attrs.field(default=True, validator=_boolean)
    profile: str = attrs.field(default="intermediate", validator=_choice("intermediate", "modern"))
    ciphers: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_string)
    )

    @private_key.default
    def _private_key_default(self) -> Path | None:
        return self.certificate

    def __attrs_post_init__(self) -> None:
        if self.private_key is not None and self.certificate is None:
            raise _InvalidValue(
                "private_key", "given without a certificate; set tls.certificate too"
            )

    @property
    def self_signed(self) -> bool:
        """True if sipedge is to generate its own certificate."""
        return self.certificate is None


@attrs.frozen
class StateConfig:
    """
    C{[state]}: where state that survives a restart lives.

    @ivar path: the state directory (SQLite files, a generated certificate).
    """

    path: Path = attrs.field(
        default=Path("sipedge-state"), converter=_optional_path, validator=_path(optional=False)
    )


@attrs.frozen
class LimitsConfig:
    """
    C{[limits]}: hard limits on messages and connections.

    The first six are those of L{sipedge.message.Limits} (see
    L{message_limits}).

    @ivar idle_timeout: seconds after which an idle TCP/TLS connection is
        closed.
    @ivar max_connections_per_source: open TCP/TLS connections one source IP
        address may have.
    @ivar max_connections: open TCP/TLS connections in all.
    """

    max_message_size: int = attrs.field(default=65535, validator=_integer(1))
    max_body_size: int = attrs.field(default=65535, validator=_integer(1))
    max_header_fields: int = attrs.field(default=256, validator=_integer(1))
    max_line_length: int = attrs.field(default=8192, validator=_integer(1))
    max_uri_length: int = attrs.field(default=4096, validator=_integer(1))
    max_vias: int = attrs.field(default=70, validator=_integer(1))
    idle_timeout: float = attrs.field(default=300.0, converter=_to_float, validator=_seconds)
    max_connections_per_source: int = attrs.field(default=100, validator=_integer(1))
    max_connections: int = attrs.field(default=10000, validator=_integer(1))

    def __attrs_post_init__(self) -> None:
        if self.max_connections_per_source > self.max_connections:
            raise _InvalidValue(
                "max_connections_per_source",
                f"must not exceed max_connections ({self.max_connections}),"
                f" not {self.max_connections_per_source}",
            )

    @property
    def message_limits(self) -> Limits:
        """The limits the message parser enforces."""
        return Limits(
            max_message_size=self.max_message_size,
            max_body_size=self.max_body_size,
            max_header_fields=self.max_header_fields,
            max_line_length=self.max_line_length,
            max_uri_length=self.max_uri_length,
            max_vias=self.max_vias,
        )


@attrs.frozen
class TimersConfig:
    """
    C{[timers]}: the RFC 3261 timer values, in seconds (section 17.1.1.1,
    table 4; Timer C from section 16.6 step 11).

    @ivar t1: the round-trip time estimate; retransmissions start at T1.
    @ivar t2: the longest retransmission interval of non-INVITE requests
        and INVITE responses.
    @ivar t4: the longest time a message stays in the network.
    @ivar timer_c: how long a proxy waits for a final response to a
        forwarded INVITE.
    @ivar response_chain_timeout: how long one response may wait for the
        response chain (a stage that asks a remote media relay) before it
        is relayed without it (a provisional one is dropped).
    """

    t1: float = attrs.field(default=0.5, converter=_to_float, validator=_seconds)
    t2: float = attrs.field(default=4.0, converter=_to_float, validator=_seconds)
    t4: float = attrs.field(default=5.0, converter=_to_float, validator=_seconds)
    timer_c: float = attrs.field(default=180.0, converter=_to_float, validator=_seconds)
    response_chain_timeout: float = attrs.field(
        default=5.0, converter=_to_float, validator=_seconds
    )

    def __attrs_post_init__(self) -> None:
        if not self.t1 < self.t2:
            raise _InvalidValue("t1", f"must be less than t2 ({self.t2}), not {self.t1}")


@attrs.frozen
class RegistrarConfig:
    """
    C{[registrar]}: the expiry interval of registrations (RFC 3261 section
    10.3), in seconds.

    @ivar min_expires: shorter requested intervals get 423 (Interval Too
        Brief).
    @ivar max_expires: longer requested intervals are cut to this.
    @ivar default_expires: the interval of a REGISTER that asks for none.
    @ivar nat_expires: the longest interval of a phone detected behind NAT
        (it then re-registers often enough that its NAT binding stays open
        and a phone that is gone is soon forgotten); 0 for no such limit.
        Never below C{min_expires}.
    @ivar keepalive_interval: seconds between the OPTIONS pings that keep
        the NAT bindings of registered UDP phones behind NAT open (the
        default keeps a 30-second router timeout open); 0 for none.
    """

    min_expires: int = attrs.field(default=60, validator=_integer(1, _MAX_DELTA_SECONDS))
    max_expires: int = attrs.field(default=3600, validator=_integer(1, _MAX_DELTA_SECONDS))
    default_expires: int = attrs.field(default=3600, validator=_integer(1, _MAX_DELTA_SECONDS))
    nat_expires: int = attrs.field(default=120, validator=_integer(0, _MAX_DELTA_SECONDS))
    keepalive_interval: int = attrs.field(default=15, validator=_integer(0, 3600))

    def __attrs_post_init__(self) -> None:
        if not self.min_expires <= self.default_expires:
            raise _InvalidValue(
                "default_expires",
                f"must be at least min_expires ({self.min_expires}), not {self.default_expires}",
            )
        if not self.default_expires <= self.max_expires:
            raise _InvalidValue(
                "default_expires",
                f"must not exceed max_expires ({self.max_expires}), not {self.default_expires}",
            )


@attrs.frozen
class DialogsConfig:
    """
    C{[dialogs]}: the INVITE dialogs the proxy record-routes, remembered so
    it can end calls itself (a BYE to each party) when the media relay ends
    their media or their RFC 4028 session expires.

    @ivar track: whether to remember dialogs at all (C{false}: the proxy
        never ends a call itself).
    @ivar session_timers: whether a call whose 2xx negotiated
        Session-Expires and that sees no refresh in time is ended.
    @ivar max_lifetime: seconds after the last refresh (2xx of the INVITE,
        re-INVITE or UPDATE) after which a dialog is forgotten, so that the
        dialogs of crashed parties do not pile up; 0 for never.
    @ivar max_dialogs: the most dialogs remembered at once.
    """

    track: bool = attrs.field(default=True, validator=_boolean)
    session_timers: bool = attrs.field(default=True, validator=_boolean)
    max_lifetime: float = attrs.field(
        default=43200.0, converter=_to_float, validator=seconds(minimum_exclusive=False)
    )
    max_dialogs: int = attrs.field(default=100_000, validator=_integer(1))


_PREFIX_RE = re.compile(r"\+[0-9]*|[0-9]+")


def _match_prefix(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string of digits, got {_describe(value)}")
    if not _PREFIX_RE.fullmatch(value):
        raise ValueError(f"must be digits with an optional leading '+', not {value!r}")
    return value


def _next_hop(value: object) -> SipURI:
    if isinstance(value, SipURI):
        uri = value
    elif not isinstance(value, str):
        raise ValueError(f"expected a SIP URI such as 'sip:10.0.0.5:5060', got {_describe(value)}")
    else:
        try:
            uri = parse_sip_uri(value)
        except MessageParseError as e:
            raise ValueError(f"{value!r} is not a valid SIP URI ({e.reason})") from None
    if uri.headers:
        raise ValueError(f"a next hop cannot carry URI headers ('?...'): {str(uri)!r}")
    return uri


def _convert_next_hop(value: object) -> SipURI:
    return _one("next_hop", _next_hop, value)


def _convert_match_domain(value: object) -> str | None:
    return None if value is None else _one("match_domain", _host, value)


def _convert_match_prefix(value: object) -> str | None:
    return _one("match_prefix", _match_prefix, value)


@attrs.frozen
class Route:
    """
    C{[[routes]]}: one static route. A request whose Request-URI matches is
    forwarded to C{next_hop}; the static-route stage decides the order.

    @ivar match_domain: the Request-URI host this route is for (normalized
        as in L{SipConfig.domains}), or C{None}.
    @ivar match_prefix: leading digits (and C{+}) of the Request-URI user
        part this route is for, or C{None}. Exactly one of C{match_domain}
        and C{match_prefix} is set.
    @ivar next_hop: where to send matching requests.
    """

    next_hop: SipURI = attrs.field(converter=_convert_next_hop)
    match_domain: str | None = attrs.field(
        default=None,
        converter=_convert_match_domain,
    )
    match_prefix: str | None = attrs.field(default=None, converter=_convert_match_prefix)

    def __attrs_post_init__(self) -> None:
        if (self.match_domain is None) == (self.match_prefix is None):
            raise _InvalidValue("", "give exactly one of match_domain and match_prefix")

    def matches(self, host: str, user: str | None) -> bool:
        """
        True if a Request-URI with this C{host} (IPv6 with or without
        brackets, any case) and C{user} part (or C{None}) matches the route.
        """
        if self.match_prefix is not None:
            return user is not None and user.startswith(self.match_prefix)
        try:
            return _host(host) == self.match_domain
        except ValueError:
            return False


def _stage_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a stage name, got {_describe(value)}")
    if not value:
        raise ValueError("a stage name must not be empty")
    return value


def _convert_stages(value: object) -> tuple[str, ...]:
    return _each("stages", _stage_name, value)


def _freeze_options(value: object) -> object:
    """Copy C{[pipeline.options.*]} tables into read-only mappings."""
    if not isinstance(value, Mapping):
        return value
    return MappingProxyType(
        {
            name: MappingProxyType(copy.deepcopy(dict(table)))
            if isinstance(table, Mapping)
            else table
            for name, table in value.items()
        }
    )


def _check_stages(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    if not value:
        raise _InvalidValue("stages", "must name at least one stage")
    seen: dict[str, int] = {}
    for index, name in enumerate(value):
        if name in seen:
            raise _InvalidValue(f"stages[{index}]", f"{name!r} is already stages[{seen[name]}]")
        seen[name] = index


@attrs.frozen
class PipelineConfig:
    """
    C{[pipeline]}: the request chain.

    @ivar stages: stage names in order; the plugin registry checks them.
    @ivar options: C{[pipeline.options.<stage>]} tables, read-only, by stage
        name; a stage gets a copy from L{options_for}.
    """

    stages: tuple[str, ...] = attrs.field(
        default=DEFAULT_STAGES, converter=_convert_stages, validator=_check_stages
    )
    options: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, converter=_freeze_options, hash=False
    )

    @options.validator
    def _check_options(self, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, Mapping):
            raise _InvalidValue("options", f"expected a table, got {_describe(value)}")
        for name, table in value.items():
            if name not in self.stages:
                raise _InvalidValue(
                    f"options.{name}",
                    "options for a stage that is not in pipeline.stages"
                    + _suggest(name, self.stages),
                )
            if not isinstance(table, Mapping):
                raise _InvalidValue(f"options.{name}", f"expected a table, got {_describe(table)}")

    def options_for(self, stage: str) -> dict[str, Any]:
        """A fresh copy of the options of C{stage} (C{{}} if it has none)."""
        return copy.deepcopy(dict(self.options.get(stage, {})))


_LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


@attrs.frozen
class LogConfig:
    """
    C{[log]}: logging.

    @ivar level: the least severe level logged: C{"debug"}, C{"info"},
        C{"warn"}, C{"error"} or C{"critical"}.
    @ivar format: C{"text"} for people, C{"json"} for machines.
    """

    level: str = attrs.field(default="info", validator=_choice(*_LOG_LEVELS))
    format: str = attrs.field(default="text", validator=_choice("text", "json"))

    @property
    def log_level(self) -> LogLevel:
        """C{level} as a L{twisted.logger.LogLevel}."""
        return LogLevel.levelWithName(self.level)


def _convert_topology_internal(value: object) -> tuple[IPNetwork, ...]:
    networks = _each("internal", _network, value)
    if not networks:
        raise _InvalidValue("internal", "must name at least one network")
    return networks


@attrs.frozen
class TopologyHidingConfig:
    """
    C{[topology_hiding]}: what the external side may see of the internal
    network (see C{sipedge.proxy._topology}).

    @ivar enabled: whether messages to external addresses are hidden
        (Via, Record-Route, Contact, Call-ID, Path) and requests from
        outside that name an internal address are refused.
    @ivar internal: the networks whose addresses are internal; a message
        sent to any other address is hidden.
    @ivar key_file: the file holding the secret the tokens are sealed
        with (at least 32 bytes), or C{None} for the Record-Route key of
        the state directory. Instances that must understand each other's
        tokens share it.
    """

    enabled: bool = attrs.field(default=False, validator=_boolean)
    internal: tuple[IPNetwork, ...] = attrs.field(
        default=DEFAULT_INTERNAL_NETWORKS, converter=_convert_topology_internal
    )
    key_file: Path | None = attrs.field(
        default=None, converter=_optional_path, validator=_path(optional=True)
    )


def _check_routes(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, tuple):
        raise _InvalidValue("routes", f"expected an array of tables, got {_describe(value)}")
    for index, route in enumerate(value):
        if not isinstance(route, Route):
            raise _InvalidValue(f"routes[{index}]", f"expected a Route, got {_describe(route)}")


def _section(kind: type) -> Callable[..., None]:
    return attrs.validators.instance_of(kind)


@attrs.frozen
class Config:
    """
    A whole sipedge configuration: one value per section of the file.
    """

    sip: SipConfig = attrs.field(factory=SipConfig, validator=_section(SipConfig))
    tls: TlsConfig = attrs.field(factory=TlsConfig, validator=_section(TlsConfig))
    state: StateConfig = attrs.field(factory=StateConfig, validator=_section(StateConfig))
    limits: LimitsConfig = attrs.field(factory=LimitsConfig, validator=_section(LimitsConfig))
    timers: TimersConfig = attrs.field(factory=TimersConfig, validator=_section(TimersConfig))
    registrar: RegistrarConfig = attrs.field(
        factory=RegistrarConfig, validator=_section(RegistrarConfig)
    )
    routes: tuple[Route, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_check_routes
    )
    pipeline: PipelineConfig = attrs.field(
        factory=PipelineConfig, validator=_section(PipelineConfig)
    )
    log: LogConfig = attrs.field(factory=LogConfig, validator=_section(LogConfig))
    auth: AuthConfig = attrs.field(factory=AuthConfig, validator=_section(AuthConfig))
    security: SecurityConfig = attrs.field(
        factory=SecurityConfig, validator=_section(SecurityConfig)
    )
    media: MediaConfig = attrs.field(factory=MediaConfig, validator=_section(MediaConfig))
    dialogs: DialogsConfig = attrs.field(factory=DialogsConfig, validator=_section(DialogsConfig))
    topology_hiding: TopologyHidingConfig = attrs.field(
        factory=TopologyHidingConfig, validator=_section(TopologyHidingConfig)
    )
    relay: RelayServiceConfig = attrs.field(
        factory=RelayServiceConfig, validator=_section(RelayServiceConfig)
    )
    hep: HepConfig = attrs.field(factory=HepConfig, validator=_section(HepConfig))
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig, validator=_section(MetricsConfig))

    def __attrs_post_init__(self) -> None:
        if self.topology_hiding.enabled and not self.sip.record_route:
            raise _InvalidValue(
                "topology_hiding.enabled",
                "needs sip.record_route = true: in-dialog requests from outside find"
                " the hidden hops through our Record-Route",
            )

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """The transport addresses to listen on (C{sip.listen})."""
        return self.sip.listen

    @property
    def message_limits(self) -> Limits:
        """The limits the message parser enforces (from C{[limits]})."""
        return self.limits.message_limits


DEFAULT_CONFIG = Config()
"""The embedded defaults, which C{twistd -n sipedge} runs on."""


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

_SECTIONS: dict[str, type] = {
    "sip": SipConfig,
    "tls": TlsConfig,
    "state": StateConfig,
    "limits": LimitsConfig,
    "timers": TimersConfig,
    "registrar": RegistrarConfig,
    "pipeline": PipelineConfig,
    "log": LogConfig,
    "auth": AuthConfig,
    "security": SecurityConfig,
    "media": MediaConfig,
    "dialogs": DialogsConfig,
    "topology_hiding": TopologyHidingConfig,
    "relay": RelayServiceConfig,
    "hep": HepConfig,
    "metrics": MetricsConfig,
}
_KNOWN_SECTIONS = [*_SECTIONS, "routes"]

# Keys that name files, resolved against the configuration file's directory.
_PATH_KEYS = {
    "tls": ("certificate", "private_key", "ca_certificates"),
    "state": ("path",),
    "topology_hiding": ("key_file",),
    "media": ("relay_secret_file", "relay_ca"),
    "relay": ("secret_file", "certificate", "private_key"),
}


def _table(value: object, key: str, hint: str = "") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _InvalidValue(key, f"expected a table{hint}, got {_describe(value)}")
    return value


def _check_keys(table: Mapping[str, Any], known: Iterable[str], prefix: str, what: str) -> None:
    known = list(known)
    for key in table:
        if key not in known:
            raise _InvalidValue(_join(prefix, key), f"unknown {what}" + _suggest(key, known))


def _resolve(value: object, base_dir: Path | None) -> object:
    """A path string, with C{~} expanded and made relative to C{base_dir}."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def _build(kind: type, table: Mapping[str, Any], prefix: str) -> Any:
    """C{kind(**table)}, naming C{prefix} in any error."""
    try:
        return kind(**table)
    except _InvalidValue as e:
        raise e.within(prefix) from None


def _parse(data: object, base_dir: Path | None) -> Config:
    data = _table(data, "", "")
    _check_keys(data, _KNOWN_SECTIONS, "", "section")
    sections: dict[str, Any] = {}
    for name, kind in _SECTIONS.items():
        if name not in data:
            continue
        table = dict(_table(data[name], name, f" ([{name}])"))
        _check_keys(table, attrs.fields_dict(kind), name, "key")
        for key in _PATH_KEYS.get(name, ()):
            if key in table:
                table[key] = _resolve(table[key], base_dir)
        sections[name] = _build(kind, table, name)
    if "routes" in data:
        routes = data["routes"]
        if not isinstance(routes, (list, tuple)):
            raise _InvalidValue(
                "routes", f"expected an array of tables ([[routes]]), got {_describe(routes)}"
            )
        built = []
        for index, route in enumerate(routes):
            key = f"routes[{index}]"
            route = _table(route, key, " ([[routes]])")
            _check_keys(route, attrs.fields_dict(Route), key, "key")
            if "next_hop" not in route:
                raise _InvalidValue(
                    f"{key}.next_hop", "missing: give a SIP URI such as 'sip:10.0.0.5:5060'"
                )
            built.append(_build(Route, route, key))
        sections["routes"] = tuple(built)
    return Config(**sections)


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None
) -> Config:
    """
    Make a L{Config} from parsed TOML: keys that are absent take their
    defaults.

    @param data: the TOML document, as C{tomllib} returns it.
    @param source: where C{data} came from, to start error messages with.
    @param base_dir: the directory relative paths are relative to; C{None}
        leaves them relative (to the current directory).
    @raise ConfigError: on the first problem; the message names C{source},
        the key and what is wrong.
    """
    try:
        return _parse(data, base_dir)
    except _InvalidValue as e:
        raise ConfigError(f"{source}: {e.key or '(top level)'}: {e.problem}") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """
    Read the TOML file at C{path} into a L{Config}. Relative paths in it are
    relative to the directory the file is in.

    @raise ConfigError: if the file cannot be read, is not TOML, or holds a
        bad value; the message names the file.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ConfigError(f"{os.fspath(path)}: cannot read configuration file: {reason}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{os.fspath(path)}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        column = e.start - (e.object.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{os.fspath(path)}: invalid TOML: not UTF-8 text"
            f" (byte 0x{e.object[e.start]:02x} at line {line}, column {column})"
        ) from None
    base_dir = Path(os.path.abspath(path)).parent
    return parse_config(data, os.fspath(path), base_dir)
