# -*- test-case-name: sipedge.test.test_transport_locate -*-
"""
Locating SIP servers: RFC 3263 section 4 (client usage), with the SRV
ordering of RFC 2782.

L{ServerLocator.locate} turns a SIP or SIPS URI into an ordered list of
L{Destination}s (transport, IP address, port). Fail-over is the caller's job
(RFC 3263 section 4.3): send to the first destination and, on a transport
error, a transaction timeout or a 503 (Service Unavailable), go on with the
next one.

The order of the list is the contract:

  1. Transports in the order the domain prefers them: NAPTR records by order,
     then preference (RFC 3403); without usable NAPTR records, TLS
     (C{_sips._tcp}), then TCP (C{_sip._tcp}), then UDP (C{_sip._udp}), for
     the transports that answered an SRV query.
  2. Within one transport, SRV records by priority, lowest first, and within
     one priority in the weighted random order of RFC 2782 (drawn afresh on
     every call: locate once per request, not once per retry).
  3. Within one host name, its IPv4 addresses and then its IPv6 addresses
     (the other way round with C{prefer_ipv6}), each in the order DNS gave.

A destination that would repeat an earlier one (same transport, address and
port) is left out. The list is empty when DNS has no answer, or when the
domain offers nothing the locator supports; the Deferred fails only for a URI
that cannot be located (L{TransportError}): a C{tel:} or other non-SIP URI,
or a malformed host, C{maddr} or C{transport} parameter.
"""

from __future__ import annotations

import ipaddress
import random as _random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime, IResolver
from twisted.logger import Logger
from twisted.names import dns

from sipedge.error import MessageParseError, TransportError
from sipedge.message import AbsoluteURI, SipURI, TelURI, parse_uri
from sipedge.transport._destination import DEFAULT_PORTS, Destination, _order_srv, _unique
from sipedge.transport._hosts import _HOSTNAME_RE, _IPV4_RE, _bad_uri, _domain, _ip_literal

__all__ = ["DEFAULT_PORTS", "Destination", "ServerLocator"]

_log = Logger()

_T = TypeVar("_T")

# NAPTR services (RFC 3263 section 4.1, RFC 4168 for SCTP) and the transport
# each leads to. (SIPS+D2S, TLS over SCTP, is not supported.)
_NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS", "SIP+D2S": "SCTP"}

# SRV owner-name prefixes (RFC 3263 section 4.2).
_SRV_PREFIXES = {"UDP": "_sip._udp", "TCP": "_sip._tcp", "TLS": "_sips._tcp", "SCTP": "_sip._sctp"}

# The SRV queries made when a domain has no usable NAPTR record, most
# preferred first (RFC 3263 section 4.1 leaves the choice to the client).
_SRV_FALLBACK_ORDER = ("TLS", "TCP", "UDP", "SCTP")

# The transport a URI without a transport parameter uses when DNS does not
# choose one: UDP for sip, TCP (that is, TLS) for sips (RFC 3263 4.1); the
# later entries are for a locator that does not support the first.
_DEFAULT_TRANSPORTS = {False: ("UDP", "TCP", "TLS"), True: ("TLS",)}

# The transport-param values (RFC 3261 section 19.1.1; "tls" is RFC 3261's,
# deprecated by RFC 5630 but still sent).
_TRANSPORT_PARAMS = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "sctp": "SCTP"}

# The record types looked up, and their names for log events.
_TYPE_NAMES = {dns.NAPTR: "NAPTR", dns.SRV: "SRV", dns.A: "A", dns.AAAA: "AAAA"}


def _payloads(answers: Iterable[dns.RRHeader], rtype: int) -> list[Any]:
    """The records of type C{rtype} in C{answers} (which may hold CNAMEs)."""
    return [rr.payload for rr in answers if rr.type == rtype]


def _srv_name(transport: str, name: str) -> str:
    """The SRV owner name for C{transport} at C{name} (RFC 3263 4.2)."""
    return f"{_SRV_PREFIXES[transport]}.{name}"


def _text(value: object) -> str:
    """The text of a NAPTR character-string (a L{dns.Charstr}, or bytes)."""
    data = getattr(value, "string", value)
    if isinstance(data, bytes):
        return data.decode("ascii", "replace")
    return str(data)


@attrs.define
class _CacheEntry:
    expires: float
    answers: list[dns.RRHeader]
    additional: list[dns.RRHeader]


class ServerLocator:
    """
    Locates SIP servers with DNS, as RFC 3263 section 4 says.

    @ivar supported: the transports this locator returns destinations for.
    """

    def __init__(
        self,
        resolver: IResolver,
        *,
        supported: Sequence[str] = ("UDP", "TCP", "TLS"),
        clock: IReactorTime | None = None,
        random: Callable[[], float] = _random.random,
        prefer_ipv6: bool = False,
        ipv4: bool = True,
        ipv6: bool = True,
        timeout: Sequence[int] | None = None,
        cache_size: int = 1024,
    ) -> None:
        """
        @param resolver: answers the DNS queries (e.g.
            C{twisted.names.client.createResolver()}).
        @param supported: the transports to return destinations for, from
            C{"UDP"}, C{"TCP"}, C{"TLS"} and C{"SCTP"}.
        @param clock: if given, DNS answers are cached for their TTL (and
            negative answers for the TTL of RFC 2308) as this clock counts
            time; without one nothing is cached.
        @param random: gives a float in [0, 1), for the weighted SRV order.
        @param prefer_ipv6: list a host's IPv6 addresses before its IPv4 ones.
        @param ipv4: look up A records and accept IPv4 literals.
        @param ipv6: look up AAAA records and accept IPv6 literals.
        @param timeout: passed to every C{IResolver} lookup (the resolver's
            default if C{None}); keep the total well under Timer B (32 s).
        @param cache_size: the most answers kept in the cache.

        @raise ValueError: for an unknown transport in C{supported}.
        """
        unknown = [t for t in supported if t.upper() not in DEFAULT_PORTS]
        if unknown:
            raise ValueError(f"unknown transports {unknown!r}; known: {sorted(DEFAULT_PORTS)}")
        self.supported = frozenset(t.upper() for t in supported)
        self._resolver = resolver
        # (Not clock.seconds: mypy without mypy-zope reads interface methods
        # as taking self.)
        self._seconds: Callable[[], float] | None = getattr(clock, "seconds", None)
        self._random = random
        self._prefer_ipv6 = prefer_ipv6
        self._ipv4 = ipv4
        self._ipv6 = ipv6
        self._timeout = None if timeout is None else tuple(timeout)
        self._cache_size = cache_size
        self._cache: dict[tuple[int, str], _CacheEntry] = {}

    # -- the public API ------------------------------------------------------

    def locate(self, uri: SipURI | TelURI | AbsoluteURI | str) -> Deferred[list[Destination]]:
        """
        Find where to send a request for C{uri} (RFC 3263 section 4).

        @param uri: a C{sip:} or C{sips:} URI, parsed or as text.
        @return: a Deferred that fires with the destinations to try, most
            preferred first (the order is explained in the module docstring),
            possibly none; or fails with L{TransportError} if C{uri} cannot be
            located at all.
        """
        try:
            sip_uri = self._check_uri(uri)
            found = self._without_dns(sip_uri)
        except TransportError as error:
            return fail(error)
        if found is not None:
            # A numeric address (or nothing usable): no DNS, no coroutine.
            return succeed(found)
        return Deferred.fromCoroutine(self._locate(sip_uri))

    # -- RFC 3263 section 4.1: the transport, then section 4.2: the address --

    def _check_uri(self, uri: SipURI | TelURI | AbsoluteURI | str) -> SipURI:
        if isinstance(uri, str):
            try:
                uri = parse_uri(uri)
            except MessageParseError as error:
                raise _bad_uri(error.reason) from None
        if not isinstance(uri, SipURI):
            raise _bad_uri(f"{uri.scheme!r} is not a SIP or SIPS URI")
        return uri

    def _without_dns(self, uri: SipURI) -> list[Destination] | None:
        """
        The destinations of C{uri} when no DNS is needed (its target is an
        IP address, or nothing can be used: an empty list, logged); C{None}
        when the target is a name to look up (L{_locate}).

        @raise TransportError: if C{uri} cannot be located at all.
        """
        secure = uri.scheme == "sips"
        # RFC 3263 section 4: "If the URI contains an maddr parameter,
        # TARGET is the maddr value, else the host."
        target = uri.maddr
        if target is None:
            target = uri.host
        elif not target or (
            _HOSTNAME_RE.fullmatch(target) is None
            and _IPV4_RE.fullmatch(target) is None
            and not target.startswith("[")
            and ":" not in target
        ):
            raise _bad_uri(f"bad maddr {target!r}")
        transport = self._transport_param(uri, secure)
        if transport is not None and transport not in self.supported:
            return self._nothing(uri, f"transport {transport} is not supported")
        if secure and "TLS" not in self.supported:
            return self._nothing(uri, "TLS is not supported")

        address = _ip_literal(target)
        if address is not None:
            # "If TARGET is a numeric IP address, the client uses that
            # address" with the transport given or the default.
            transport = transport or self._default_transport(secure)
            if transport is None:
                return self._nothing(uri, "no supported transport")
            if not (self._ipv6 if ":" in address else self._ipv4):
                return self._nothing(uri, "address family not enabled")
            port = DEFAULT_PORTS[transport] if uri.port is None else uri.port
            return [Destination(transport, address, port, address, address)]
        return None

    async def _locate(self, uri: SipURI) -> list[Destination]:
        """The destinations of C{uri}, whose target is a name (after L{_without_dns})."""
        secure = uri.scheme == "sips"
        target = uri.maddr or uri.host
        transport = self._transport_param(uri, secure)
        name = _domain(target)
        found: list[Destination] | None
        if uri.port is not None:
            # "If the TARGET was not a numeric IP address, but a port is
            # present in the URI, the client performs an A or AAAA record
            # lookup of the domain name" (4.2), UDP for sip and TCP for sips
            # unless the transport is given (4.1).
            transport = transport or self._default_transport(secure)
            if transport is None:
                return self._nothing(uri, "no supported transport")
            found = await self._host_destinations(transport, name, uri.port, name)
        elif transport is not None:
            # "If it was not [NAPTR processing], because a transport was
            # specified explicitly, the client performs an SRV query for that
            # specific transport" (4.2).
            found = await self._srv_destinations(transport, _srv_name(transport, name), name)
        else:
            found = await self._naptr_destinations(name, secure)
            if found is None:
                found = await self._srv_fallback(name, secure)
        if found is None:
            # "If no SRV records were found, the client performs an A or
            # AAAA record lookup of the domain name [...] using the transport
            # protocol determined previously, at the default port" (4.2).
            transport = transport or self._default_transport(secure)
            if transport is None:
                return self._nothing(uri, "no supported transport")
            found = await self._host_destinations(transport, name, DEFAULT_PORTS[transport], name)
        destinations = _unique(found)
        if not destinations:
            return self._nothing(uri, "DNS gave no usable address")
        return destinations

    def _transport_param(self, uri: SipURI, secure: bool) -> str | None:
        """The transport the URI's C{transport} parameter names, if any."""
        param = uri.transport
        if param is None:
            return None
        if not param:
            raise _bad_uri("empty transport parameter")
        transport = _TRANSPORT_PARAMS.get(param, param.upper())
        if secure:
            # A SIPS URI is reached over TLS: "transport=tcp" means TLS over
            # TCP (RFC 3261 26.2.2); there is no TLS over UDP.
            if transport == "UDP":
                raise _bad_uri("a SIPS URI cannot use transport=udp")
            if transport == "TCP":
                transport = "TLS"
            elif transport != "TLS":
                transport = f"TLS-{transport}"
        return transport

    def _default_transport(self, secure: bool) -> str | None:
        for transport in _DEFAULT_TRANSPORTS[secure]:
            if transport in self.supported:
                return transport
        return None

    def _nothing(self, uri: SipURI, why: str) -> list[Destination]:
        _log.info("No destination for {uri}: {why}", uri=str(uri), why=why)
        return []

    # -- NAPTR (RFC 3263 section 4.1) ----------------------------------------

    async def _naptr_destinations(self, name: str, secure: bool) -> list[Destination] | None:
        """
        Destinations from the NAPTR records of C{name}, or C{None} if it has
        none this locator can use (the caller then tries SRV).
        """
        answers, _ = await self._query(dns.NAPTR, name)
        records = sorted(_payloads(answers, dns.NAPTR), key=lambda r: (r.order, r.preference))
        usable: list[tuple[str, str, str]] = []
        for record in records:
            service = _text(record.service).upper()
            flags = _text(record.flags).lower()
            replacement = _domain(str(record.replacement))
            transport = _NAPTR_SERVICES.get(service)
            # "a client resolving a SIPS URI MUST discard any services that
            # do not contain "SIPS" as the protocol [...] a client MUST
            # discard any service fields that identify a resolution service
            # whose value is not "D2X", for values of X that indicate
            # transport protocols supported by the client."  Only terminal
            # records with a replacement ("s": SRV next, "a": A/AAAA next)
            # are used; regexp rewriting is not part of RFC 3263.
            if (
                transport is None
                or transport not in self.supported
                or (secure and not service.startswith("SIPS+"))
                or flags not in ("s", "a")
                or not replacement
            ):
                _log.debug(
                    "Ignoring NAPTR {service} {flags} {replacement} of {name}",
                    service=service,
                    flags=flags,
                    replacement=replacement,
                    name=name,
                )
                continue
            usable.append((transport, flags, replacement))
        if not usable:
            return None

        async def follow(transport: str, flags: str, replacement: str) -> list[Destination] | None:
            if flags == "s":
                return await self._srv_destinations(transport, replacement, name)
            found = await self._host_destinations(
                transport, replacement, DEFAULT_PORTS[transport], name
            )
            return found or None

        results = await _gather(follow(*u) for u in usable)
        if all(result is None for result in results):
            # No SRV records at all: "the client performs an A or AAAA record
            # lookup of the domain name", with the transport NAPTR preferred,
            # at its default port (RFC 3263 4.2).
            return await self._host_destinations(
                usable[0][0], name, DEFAULT_PORTS[usable[0][0]], name
            )
        return [d for result in results if result for d in result]

    # -- SRV (RFC 3263 section 4.2, RFC 2782) --------------------------------

    async def _srv_fallback(self, name: str, secure: bool) -> list[Destination] | None:
        """
        "If no NAPTR records are found, the client constructs SRV queries
        for those transport protocols it supports" (4.1): destinations from
        each transport that answered, or C{None} if none did.
        """
        transports = [
            t for t in _SRV_FALLBACK_ORDER if t in self.supported and (not secure or t == "TLS")
        ]
        results = await _gather(
            self._srv_destinations(t, _srv_name(t, name), name) for t in transports
        )
        if all(result is None for result in results):
            return None
        return [d for result in results if result for d in result]

    async def _srv_destinations(
        self, transport: str, name: str, server_name: str
    ) -> list[Destination] | None:
        """
        Destinations from the SRV records of C{name}, or C{None} if it has
        none. Records with the target C{"."} ("the service is decidedly not
        available at this domain", RFC 2782) count as found but give no
        destination.
        """
        answers, additional = await self._query(dns.SRV, name)
        records = _payloads(answers, dns.SRV)
        if not records:
            return None
        usable = [r for r in records if _domain(str(r.target))]
        ordered = _order_srv(usable, self._random)
        results = await _gather(
            self._host_destinations(
                transport,
                _domain(str(record.target)),
                record.port,
                server_name,
                record.priority,
                record.weight,
                additional,
            )
            for record in ordered
        )
        return [d for result in results for d in result]

    # -- A and AAAA ----------------------------------------------------------

    async def _host_destinations(
        self,
        transport: str,
        host: str,
        port: int,
        server_name: str,
        priority: int = 0,
        weight: int = 0,
        additional: Sequence[dns.RRHeader] = (),
    ) -> list[Destination]:
        """
        One destination for each address of C{host}. Addresses in the
        C{additional} section of an SRV answer are used instead of a query
        (RFC 2782: "Implementors are urged, but not required, to use the
        additional data section").
        """
        types = [dns.A] if self._ipv4 else []
        if self._ipv6:
            types.insert(0 if self._prefer_ipv6 else len(types), dns.AAAA)
        results = await _gather(self._addresses(t, host, additional) for t in types)
        return [
            Destination(transport, address, port, host, server_name, priority, weight)
            for addresses in results
            for address in addresses
        ]

    async def _addresses(
        self, rtype: int, host: str, additional: Sequence[dns.RRHeader]
    ) -> list[str]:
        given = [rr for rr in additional if rr.type == rtype and _domain(str(rr.name)) == host]
        if given:
            answers = given
        else:
            answers, _ = await self._query(rtype, host)
        return [str(ipaddress.ip_address(r.address)) for r in _payloads(answers, rtype)]

    # -- queries and the cache -----------------------------------------------

    async def _query(self, rtype: int, name: str) -> tuple[list[dns.RRHeader], list[dns.RRHeader]]:
        """
        The answer and additional sections for a query. A failed query is an
        empty answer (and is logged).
        """
        key = (rtype, name)
        now = None if self._seconds is None else self._seconds()
        entry = self._cache.get(key)
        if entry is not None and now is not None:
            if now < entry.expires:
                return entry.answers, entry.additional
            del self._cache[key]

        lookup: Callable[..., Deferred[Any]] = {
            dns.NAPTR: self._resolver.lookupNamingAuthorityPointer,
            dns.SRV: self._resolver.lookupService,
            dns.A: self._resolver.lookupAddress,
            dns.AAAA: self._resolver.lookupIPV6Address,
        }[rtype]
        try:
            result = await maybeDeferred(lookup, name, timeout=self._timeout)
        except Exception as error:
            _log.debug(
                "DNS {query_type} lookup of {name} failed: {error!r}",
                query_type=_TYPE_NAMES[rtype],
                name=name,
                error=error,
            )
            message = error.args[0] if error.args else None
            negative = getattr(message, "authority", None)
            if now is not None and isinstance(negative, list):
                self._store(key, now, [], [], negative)
            return [], []
        answers, authority, additional = (list(section) for section in result)
        if now is not None:
            self._store(key, now, answers, additional, authority)
        return answers, additional

    def _store(
        self,
        key: tuple[int, str],
        now: float,
        answers: list[dns.RRHeader],
        additional: list[dns.RRHeader],
        authority: Sequence[dns.RRHeader],
    ) -> None:
        """
        Cache an answer for the least TTL of its records, or a negative
        answer for the TTL of RFC 2308 section 5 (the SOA record's TTL or
        its minimum field, whichever is less); nothing without a TTL.
        """
        if answers:
            ttl = min(rr.ttl for rr in answers)
        else:
            soas = [rr for rr in authority if rr.type == dns.SOA]
            if not soas:
                return
            ttl = min(min(rr.ttl, rr.payload.minimum) for rr in soas)  # type: ignore[union-attr]
        if ttl <= 0 or self._cache_size <= 0:
            return
        if len(self._cache) >= self._cache_size:
            for stale in [k for k, e in self._cache.items() if e.expires <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]
        self._cache[key] = _CacheEntry(now + ttl, answers, additional)


async def _gather(coroutines: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run coroutines concurrently; their results, in order."""
    return await gatherResults([Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True)
