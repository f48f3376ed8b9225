# -*- test-case-name: sipedge.test.test_transport_locate -*-
"""
A fake DNS for RFC 3263 server location: L{FakeResolver} answers NAPTR,
SRV, A and AAAA queries from records a test adds, and fails the others as
a real resolver would.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.names.error import DNSNameError

__all__ = ["FakeResolver", "naptr", "rr", "srv"]

_TYPES = {"NAPTR": dns.NAPTR, "SRV": dns.SRV, "A": dns.A, "AAAA": dns.AAAA}


class FakeResolver(ResolverBase):
    """
    A fake DNS: an L{IResolver} with canned answers (NAPTR, SRV, A, AAAA
    and anything else C{twisted.names} knows), recording every query, for
    L{sipedge.transport.ServerLocator} or anything else that resolves.

    A name with records of some type answers an empty NOERROR for other
    types; a name without any record fails with L{DNSNameError} (NXDOMAIN),
    as C{twisted.names.client} does. Answers come at once, or C{delay}
    seconds later on C{clock} when one is given.

    @ivar queries: C{(type, name)} of every query, in order.
    """

    def __init__(self, clock: Any = None, delay: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self.answers: dict[tuple[str, int], list[dns.RRHeader]] = {}
        self.additional: dict[tuple[str, int], list[dns.RRHeader]] = {}
        self.errors: dict[tuple[str, int], Exception] = {}
        self.authority: list[dns.RRHeader] = []
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, *payloads: Any, ttl: int = 300) -> None:
        """Add records of C{name}."""
        for payload in payloads:
            self.answers.setdefault((name, payload.TYPE), []).append(rr(name, payload, ttl))

    def add_additional(self, srv_name: str, name: str, *payloads: Any) -> None:
        """Put records of C{name} in the additional section for C{srv_name}."""
        self.additional.setdefault((srv_name, dns.SRV), []).extend(rr(name, p) for p in payloads)

    def add_naptr(
        self, domain: str, order: int, preference: int, service: str, replacement: str,
        flags: str = "s", ttl: int = 300,
    ) -> None:
        """A NAPTR record of C{domain} (RFC 3263 4.1: C{service} such as C{"SIP+D2U"})."""
        self.add(domain, naptr(order, preference, service, replacement, flags), ttl=ttl)

    def add_srv(
        self, name: str, priority: int, weight: int, port: int, target: str, ttl: int = 300,
    ) -> None:
        """An SRV record of C{name} (such as C{"_sip._udp.example.com"})."""
        self.add(name, srv(priority, weight, port, target), ttl=ttl)

    def add_address(self, name: str, *addresses: str, ttl: int = 300) -> None:
        """A and AAAA records of C{name}, one per address (IPv4 or IPv6)."""
        for address in addresses:
            ip = ipaddress.ip_address(address)
            record: Any = (
                dns.Record_A(address, ttl) if ip.version == 4 else dns.Record_AAAA(address, ttl)
            )
            self.add(name, record, ttl=ttl)

    def fail_with(self, name: str, rtype: str, error: Exception) -> None:
        """Make the C{rtype} query of C{name} fail with C{error}."""
        self.errors[(name, _TYPES[rtype])] = error

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> Deferred[Any]:
        d = self._answer(name.decode("ascii"), type)
        if self.clock is None or self.delay <= 0:
            return d
        later: Deferred[Any] = Deferred()
        self.clock.callLater(self.delay, lambda: d.chainDeferred(later))
        return later

    def _answer(self, name: str, type: int) -> Deferred[Any]:
        self.queries.append((dns.QUERY_TYPES[type], name))
        key = (name, type)
        if key in self.errors:
            return fail(self.errors[key])
        if key in self.answers:
            return succeed((self.answers[key], [], self.additional.get(key, [])))
        if any(n == name for n, _ in self.answers):
            return succeed(([], list(self.authority), []))
        # As twisted.names.client does: the error carries the response.
        message = dns.Message(rCode=dns.ENAME)
        message.authority = list(self.authority)
        return fail(DNSNameError(message))


def rr(name: str, payload: Any, ttl: int = 300) -> dns.RRHeader:
    """A resource record of C{name} holding C{payload}."""
    return dns.RRHeader(name, payload.TYPE, payload=payload, ttl=ttl)


def naptr(
    order: int, pref: int, service: str, replacement: str, flags: str = "s"
) -> dns.Record_NAPTR:
    """A NAPTR record."""
    return dns.Record_NAPTR(order, pref, flags.encode(), service.encode(), b"", replacement)


def srv(priority: int, weight: int, port: int, target: str) -> dns.Record_SRV:
    """An SRV record."""
    return dns.Record_SRV(priority, weight, port, target.encode("ascii"))
