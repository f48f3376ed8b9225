# -*- test-case-name: sipedge.test.test_transport_locate -*-
"""
What L{ServerLocator<sipedge.transport._locate.ServerLocator>} gives: a
L{Destination} (transport, IP address, port), the default port of each
transport, the RFC 2782 ordering of SRV records, and the rule that a
destination never repeats an earlier one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
from twisted.names import dns

from sipedge.flow import format_hostport

__all__ = ["DEFAULT_PORTS", "Destination"]

#: The default port of each transport (RFC 3261 sections 19.1.2 and 26.2.2).
DEFAULT_PORTS: dict[str, int] = {"UDP": 5060, "TCP": 5060, "SCTP": 5060, "TLS": 5061}


@attrs.frozen
class Destination:
    """
    One place to send a request to: a transport, an IP address and a port.

    @ivar transport: C{"UDP"}, C{"TCP"}, C{"TLS"} or C{"SCTP"} (the Via token).
    @ivar host: an IP literal, without brackets.
    @ivar port: the port.
    @ivar target: the name whose A or AAAA record gave C{host} (an SRV target,
        a NAPTR replacement or the URI's host or C{maddr}); the IP literal
        itself when the URI named an address. For logs and diagnostics.
    @ivar server_name: the name a TLS server's certificate must be checked
        against (RFC 5922 section 4, e.g. with service_identity): the URI's
        host, or its C{maddr}, never a name DNS substituted for it, since
        DNS answers can be forged. An IP literal when the URI named an
        address.
    @ivar priority: the SRV priority this destination came from (0 without
        SRV); lower is preferred.
    @ivar weight: the SRV weight this destination came from (0 without SRV).
    """

    transport: str
    host: str
    port: int
    target: str
    server_name: str
    priority: int = 0
    weight: int = 0

    @property
    def address(self) -> tuple[str, int]:
        """C{(host, port)}, as a Twisted transport's C{write} takes it."""
        return (self.host, self.port)

    @property
    def secure(self) -> bool:
        """True for TLS."""
        return self.transport == "TLS"

    def __str__(self) -> str:
        where = format_hostport(self.host, self.port)
        if self.target == self.host:
            return f"{self.transport} {where}"
        return f"{self.transport} {where} ({self.target})"


def _order_srv(
    records: Iterable[dns.Record_SRV], random: Callable[[], float]
) -> list[dns.Record_SRV]:
    """
    Order SRV records as RFC 2782 says: by priority, lowest first, and within
    a priority by weighted random selection, in which a record of weight 0
    has a small chance to come first.

    @param random: gives a float in [0, 1).
    """
    by_priority: dict[int, list[dns.Record_SRV]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[dns.Record_SRV] = []
    for priority in sorted(by_priority):
        group = by_priority[priority]
        # "arrange all SRV RRs (that have not been ordered yet) in any order,
        # except that all those with weight 0 are placed at the beginning".
        group = [r for r in group if r.weight == 0] + [r for r in group if r.weight != 0]
        while group:
            total = sum(r.weight for r in group)
            # "a uniform random number between 0 and the sum computed
            # (inclusive)"
            pick = min(int(random() * (total + 1)), total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


def _unique(destinations: Iterable[Destination]) -> list[Destination]:
    """Keep the first destination for each transport, address and port."""
    seen: set[tuple[str, str, int]] = set()
    result = []
    for destination in destinations:
        key = (destination.transport, destination.host, destination.port)
        if key not in seen:
            seen.add(key)
            result.append(destination)
    return result
