# -*- test-case-name: sipedge.test.test_config -*-
"""
Where sipedge listens and what it writes as its address: L{Listener}
(C{transport:host:port}) and L{HostPort} (C{host[:port]}), and the domains
it is responsible for when none are configured.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import attrs

from sipedge._config_values import describe as _describe
from sipedge._config_values import each as _each
from sipedge._config_values import format_host as _format_host
from sipedge._config_values import host as _host
from sipedge._config_values import integer as _integer
from sipedge._config_values import ip_literal as _ip_literal
from sipedge._config_values import network as _network
from sipedge._config_values import one as _one
from sipedge._config_values import port_number as _port_number
from sipedge._config_values import seconds
from sipedge._config_values import split_hostport as _split_hostport

__all__ = [
    "DEFAULT_LISTEN",
    "TRANSPORTS",
    "HostPort",
    "Listener",
    "default_domains",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TRANSPORTS = ("udp", "tcp", "tls")
"""The transports a listener can use."""

DEFAULT_LISTEN = ("udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061")
"""C{sip.listen} when the configuration does not set it."""

_seconds = seconds()


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
