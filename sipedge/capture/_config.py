# -*- test-case-name: sipedge.test.test_capture -*-
"""
C{[hep]}: HEPv3 capture to a collector, as a frozen section in the style of
L{sipedge.config} (errors name C{hep.<key>} once it is in that module's
section table). This module must not import L{sipedge.config}.
"""

from __future__ import annotations

import ipaddress

import attrs

from sipedge._config_values import InvalidValue, integer
from sipedge._config_values import describe as _describe

__all__ = ["HepConfig", "HepDestination"]


@attrs.frozen
class HepDestination:
    """
    Where HEP packets go: C{udp:host:port} or C{tcp:host:port}, the host an
    IP address (IPv6 in brackets).
    """

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: object) -> HepDestination:
        """@raise ValueError: naming what is wrong with C{text}."""
        if not isinstance(text, str):
            raise ValueError(
                f"expected a string such as 'udp:127.0.0.1:9060', got {_describe(text)}"
            )
        transport, _, hostport = text.partition(":")
        transport = transport.lower()
        if transport not in ("udp", "tcp"):
            raise ValueError(f"expected 'udp:host:port' or 'tcp:host:port', not {text!r}")
        host, colon, port = hostport.rpartition(":")
        if not colon or not port.isascii() or not port.isdigit():
            raise ValueError(f"missing or bad port in {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"bad host {host!r} in {text!r}: must be an IP address") from None
        number = int(port)
        if not 1 <= number <= 65535:
            raise ValueError(f"bad port {number} in {text!r}: must be 1 to 65535")
        return cls(transport, str(address), number)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def _destination(value: object) -> HepDestination | None:
    if value is None or isinstance(value, HepDestination):
        return value
    try:
        return HepDestination.parse(value)
    except ValueError as e:
        raise InvalidValue("destination", str(e)) from None


def _password(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidValue(attribute.name, f"expected a string, got {_describe(value)}")
    if len(value.encode()) > 1024:
        raise InvalidValue(attribute.name, "longer than 1024 bytes")


@attrs.frozen
class HepConfig:
    """
    C{[hep]}.

    @ivar destination: the collector, or C{None} (the default) for no
        capture.
    @ivar node_id: this capture node's id, as the collector shows it.
    @ivar password: the collector's password; C{""} sends none.
    """

    destination: HepDestination | None = attrs.field(default=None, converter=_destination)
    node_id: int = attrs.field(default=2001, validator=integer(0, 0xFFFFFFFF))
    password: str = attrs.field(default="", validator=_password)
