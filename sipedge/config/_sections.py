# -*- test-case-name: sipedge.test.test_config -*-
"""
The sections of the configuration that the proxy core and the composition
root read: C{[sip]}, C{[tls]}, C{[state]}, C{[limits]}, C{[timers]},
C{[registrar]}, C{[dialogs]}, C{[log]} and C{[topology_hiding]}. Each is a
frozen value that checks itself when constructed, raising
L{sipedge.config.InvalidValue} with the key relative to the section.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import attrs
from twisted.logger import LogLevel

from sipedge._config_values import InvalidValue as _InvalidValue
from sipedge._config_values import boolean as _boolean
from sipedge._config_values import choice as _choice
from sipedge._config_values import each as _each
from sipedge._config_values import host as _host
from sipedge._config_values import integer as _integer
from sipedge._config_values import network as _network
from sipedge._config_values import optional_path as _optional_path
from sipedge._config_values import path as _path
from sipedge._config_values import seconds
from sipedge._config_values import string as _string
from sipedge._config_values import to_float as _to_float
from sipedge.config._hosts import (
    _DEFAULT_LISTENERS,
    HostPort,
    Listener,
    _convert_advertise,
    _convert_domains,
    _convert_listen,
    _convert_trusted,
    default_domains,
)
from sipedge.media import DEFAULT_INTERNAL_NETWORKS
from sipedge.message import Limits

__all__ = [
    "DEFAULT_INTERNAL_NETWORKS",
    "DialogsConfig",
    "LimitsConfig",
    "LogConfig",
    "RegistrarConfig",
    "SipConfig",
    "StateConfig",
    "TimersConfig",
    "TlsConfig",
    "TopologyHidingConfig",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


_MAX_DELTA_SECONDS = 2**32 - 1  # RFC 3261 section 25.1, delta-seconds

_seconds = seconds()


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
    @ivar route_lifetime: seconds our signed Record-Route counts as "a
        dialog set up through us" after the INVITE that made it (a stale
        Route then goes the whole request chain); 0 for ever.
    """

    track: bool = attrs.field(default=True, validator=_boolean)
    session_timers: bool = attrs.field(default=True, validator=_boolean)
    max_lifetime: float = attrs.field(
        default=43200.0, converter=_to_float, validator=seconds(minimum_exclusive=False)
    )
    max_dialogs: int = attrs.field(default=100_000, validator=_integer(1))
    route_lifetime: float = attrs.field(
        default=86400.0, converter=_to_float, validator=seconds(minimum_exclusive=False)
    )


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
