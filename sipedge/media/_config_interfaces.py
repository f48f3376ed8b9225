# -*- test-case-name: sipedge.test.test_media_dualstack -*-
"""
The relay's interfaces in both IP families, from the addresses of
L{MediaConfig<sipedge.media._config.MediaConfig>} (dual stack).

The keys C{address}, C{internal_address} and C{external_address} (with
their C{advertise} keys) name the relay's I{primary} interfaces,
C{"default"} or C{"internal"} and C{"external"}, of whatever family those
addresses are. When a side's primary address is IPv4, the C{*6} keys
(C{address6}, C{internal_address6}, C{external_address6} and their
C{advertise6}) name its IPv6 twin, C{"default6"} or C{"internal6"} and
C{"external6"}: a party whose media is IPv6 gets that interface, so the
relay bridges an IPv4 leg and an IPv6 leg (each leg's ports bound in its
party's family, each party's SDP in its family).

With no C{*6} key set, a relay whose primary addresses are all the IPv4
loopback (the default, C{127.0.0.1}) has the IPv6 loopback C{::1} as its
twin, so a lab on loopback carries calls over C{::1} and between
C{127.0.0.1} and C{::1} on the defaults; any other relay has no IPv6
interface until one is configured, and an IPv6 offer to it gets 488 as
before (the relay names both families).

Like L{sipedge.media._config}, no Twisted at import time.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sipedge._config_values import InvalidValue

__all__: list[str] = []

#: The IPv6 twin of the IPv4 loopback, for a relay on loopback.
LOOPBACK6 = "::1"


def version(host: str) -> int:
    """4 or 6."""
    return ipaddress.ip_address(host).version


def check_ipv6_keys(config: Any) -> None:
    """
    The C{*6} keys hold IPv6 addresses, a wildcard among them has an
    address to advertise, and a side whose primary address is IPv6
    already has no twin to configure.

    @raise InvalidValue: naming the key.
    """
    for side in ("", "internal_", "external_"):
        for kind in ("address6", "advertise6"):
            value = getattr(config, side + kind)
            if value is not None and version(value) != 6:
                raise InvalidValue(side + kind, f"{value} is not an IPv6 address")
        bound = getattr(config, side + "address6")
        shown = getattr(config, side + "advertise6")
        if bound is not None and shown is None and ipaddress.ip_address(bound).is_unspecified:
            raise InvalidValue(
                side + "address6",
                f"{bound!r} is a wildcard: set {side}advertise6 to the address to write in SDP",
            )
    for side in ("internal", "external"):
        primary = config.primary_side(side)[1]
        if version(primary) == 6 and getattr(config, side + "_address6") is not None:
            raise InvalidValue(
                side + "_address6",
                f"the {side} side's address {primary} is IPv6 already",
            )
    if config.address6 is not None and all(
        version(config.primary_side(s)[1]) == 6 for s in ("internal", "external")
    ):
        raise InvalidValue("address6", f"the relay's address {config.address} is IPv6 already")


def _twin(config: Any, side: str, loopback: bool) -> tuple[str, str] | None:
    """(bound, advertised) of C{side}'s IPv6 interface, or C{None}."""
    if version(config.primary_side(side)[1]) == 6:
        return None
    bound = getattr(config, side + "_address6")
    shown = getattr(config, side + "_advertise6")
    if bound is None:
        bound = config.address6
        if shown is None:
            shown = config.advertise6
    if bound is None:
        if not loopback:
            return None
        bound = LOOPBACK6
    return bound, shown if shown is not None else bound


def interfaces(config: Any) -> dict[str, tuple[str, str]]:
    """
    Every interface of the relay: name -> (address bound, address
    advertised). The primary ones (C{"default"}, or C{"internal"} and
    C{"external"}) first, then their IPv6 twins (C{"default6"}, or
    C{"internal6"} and/or C{"external6"}).
    """
    internal, external = config.primary_side("internal"), config.primary_side("external")
    found = (
        {"default": internal}
        if internal == external
        else {"internal": internal, "external": external}
    )
    loopback = all(
        ipaddress.ip_address(shown).is_loopback and version(shown) == 4
        for _, shown in (internal, external)
    )
    twins = {side: _twin(config, side, loopback) for side in ("internal", "external")}
    if twins["internal"] == twins["external"]:
        if twins["internal"] is not None:
            found["default6"] = twins["internal"]
    else:
        for side, twin in twins.items():
            if twin is not None:
                found[side + "6"] = twin
    return found


def interface_for(
    found: dict[str, tuple[str, str]], external: bool, family: int | None = None
) -> str:
    """
    The interface that faces a party on that side whose media is of
    C{family} (4, 6, or C{None}: the primary one). When the relay has no
    interface of that family on that side, the primary one: the relay
    then refuses the party's address, naming both families.
    """
    side = "external" if external else "internal"
    primary = side if side in found else "default"
    if family is None or version(found[primary][1]) == family:
        return primary
    for name in (side + "6", "default6"):
        if name in found:
            return name
    return primary


def sided(found: dict[str, tuple[str, str]]) -> bool:
    """Whether the interfaces differ between the two sides."""
    return any(name in found for name in ("internal", "external", "internal6", "external6"))
