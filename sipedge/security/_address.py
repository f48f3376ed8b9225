# -*- test-case-name: sipedge.test.test_security -*-
"""
Source addresses as the security layer keys them: one canonical text per
IP address (no brackets, compressed IPv6, IPv4-mapped IPv6 as IPv4), and
the test "is this address in a trusted network".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from sipedge.message import parse_ip_address

__all__ = ["Network", "TrustedNetworks", "canonical_ip"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16384)
def canonical_ip(host: str) -> str | None:
    """
    The canonical text of the IP address C{host} (brackets allowed, an
    IPv6 zone dropped: see L{sipedge.message.parse_ip_address}), or
    C{None} if it is not an IP address. Cached: this runs for every packet.
    """
    address = parse_ip_address(host)
    return None if address is None else address.compressed


class TrustedNetworks:
    """
    The configured trusted networks (C{sip.trusted}): trunks and PBXes that
    get the largest rate budget and are never banned.
    """

    _CACHE_SIZE = 16384

    def __init__(self, networks: Iterable[Network | str] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(
            n
            if isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network))
            else ipaddress.ip_network(n, strict=False)
            for n in networks
        )
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: object) -> bool:
        if not self.networks or not isinstance(host, str):
            return False
        known = self._cache.get(host)
        if known is not None:
            return known
        address = parse_ip_address(host)
        found = address is not None and any(address in n for n in self.networks)
        if len(self._cache) >= self._CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = found
        return found

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedNetworks({[str(n) for n in self.networks]!r})"
