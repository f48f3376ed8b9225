# -*- test-case-name: sipedge.test.test_capture -*-
"""
C{[hep]}: HEPv3 capture to a collector, as a frozen section in the style of
L{sipedge.config} (errors name C{hep.<key>} once it is in that module's
section table). This module must not import L{sipedge.config}.
"""

from __future__ import annotations

import attrs

from sipedge._config_values import InvalidValue, integer, parse_endpoint
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
        transport, host, port = parse_endpoint(text, ("udp", "tcp"), "udp:127.0.0.1:9060")
        return cls(transport, host, port)

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
