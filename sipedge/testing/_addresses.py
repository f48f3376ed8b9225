# -*- test-case-name: sipedge.test.test_testing -*-
"""
Addresses shared by the fake datagram network and the fake reactor.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Literal

from twisted.internet.address import IPv4Address, IPv6Address

Address = tuple[str, int]

_WILDCARD = {4: "0.0.0.0", 6: "::"}
# The largest UDP payload over IPv4 and IPv6 (65,535 less the headers).
_MAX_PAYLOAD = {4: 65507, 6: 65527}


@functools.lru_cache(maxsize=1024)
def _version(host: str) -> int | None:
    """
    4 or 6 for an IP literal, else None (memoized: the fake network asks
    for every datagram, and benchmarks should time sipedge, not this).
    """
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _address(kind: Literal["TCP", "UDP"], host: str, port: int) -> IPv4Address | IPv6Address:
    if _version(host) == 6:
        return IPv6Address(kind, host, port)
    return IPv4Address(kind, host, port)


