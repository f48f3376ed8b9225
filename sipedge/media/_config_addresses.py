# -*- test-case-name: sipedge.test.test_media_anchor_config -*-
"""
The checks and converters of L{MediaConfig<sipedge.media._config.MediaConfig>}'s
port range and addresses. Like L{sipedge.media._config}, no Twisted at
import time.
"""

from __future__ import annotations

import ipaddress

import attrs

from sipedge._config_values import InvalidValue
from sipedge._config_values import describe as _describe

__all__: list[str] = []


def _convert_ports(value: object) -> object:
    """C{"low-high"} as a C{(low, high)} tuple; anything else is left to the check."""
    if not isinstance(value, str):
        return value
    low, dash, high = value.strip().partition("-")
    if not dash or not all(p.strip().isascii() and p.strip().isdigit() for p in (low, high)):
        raise InvalidValue("ports", f"expected 'low-high', as in '30000-30999', not {value!r}")
    return (int(low), int(high))


def _check_ports(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidValue(
            "ports", f"expected 'low-high', as in '30000-30999', got {_describe(value)}"
        )
    low, high = value
    if not 1 <= low <= high <= 65535:
        raise InvalidValue(
            "ports", f"must be 'low-high' with 1 <= low <= high <= 65535, not {low}-{high}"
        )
    if low + (low % 2) + 1 > high:
        raise InvalidValue("ports", f"{low}-{high} holds no even/odd port pair")


def _ip(key: str, value: object, wildcard: bool) -> str:
    if not isinstance(value, str):
        raise InvalidValue(key, f"expected an IP address, got {_describe(value)}")
    text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidValue(key, f"{value!r} is not an IP address") from None
    if address.is_multicast:
        raise InvalidValue(key, f"{value!r} is a multicast address")
    if address.is_unspecified and not wildcard:
        raise InvalidValue(
            key, f"{value!r} cannot be written in SDP: give the address to advertise"
        )
    return str(address)


def _check_address(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is None and attribute.name != "address":
        return
    _ip(attribute.name, value, wildcard=True)


def _check_advertise(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is None:
        return
    _ip(attribute.name, value, wildcard=False)


def _canonical(value: object) -> object:
    if isinstance(value, str):
        text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return value
    return value
