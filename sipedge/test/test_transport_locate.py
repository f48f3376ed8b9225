# -*- test-case-name: sipedge.test.test_transport_locate -*-
"""
Tests for L{sipedge.transport._locate}.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from twisted.internet.defer import Deferred
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IResolver
from twisted.internet.task import Clock
from twisted.names import dns
from twisted.names.error import DNSServerError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.error import TransportError
from sipedge.message import parse_uri
from sipedge.testing import FakeResolver, naptr, rr, srv
from sipedge.transport._destination import Destination, _order_srv
from sipedge.transport._locate import ServerLocator


def randoms(*values: float):
    """A C{random} callable that returns C{values} in turn."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def d(transport, host, port, target=None, server_name="example.com", priority=0, weight=0):
    """A L{Destination}, with short defaults."""
    return Destination(
        transport,
        host,
        port,
        host if target is None else target,
        server_name,
        priority,
        weight,
    )


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class LocatorTestsMixin(_TestCase):
    """Helpers for tests of L{ServerLocator}."""

    def setUp(self) -> None:
        self.resolver = FakeResolver()

    def locator(self, **kwargs) -> ServerLocator:
        kwargs.setdefault("random", lambda: 0.0)
        return ServerLocator(cast(IResolver, self.resolver), **kwargs)

    def locate(self, uri, **kwargs) -> list[Destination]:
        return self.successResultOf(self.locator(**kwargs).locate(uri))

    def query_types(self) -> list[str]:
        return [t for t, _ in self.resolver.queries]


class NumericHostTests(LocatorTestsMixin, SynchronousTestCase):
    """Hosts that are IP literals need no DNS (RFC 3263 4.1, 4.2)."""

    def test_ipv4(self) -> None:
        """
        If the host is an IPv4 address, L{ServerLocator.locate} gives that
        address over UDP at 5060 without any DNS query.
        """
        self.assertEqual(
            self.locate("sip:alice@192.0.2.1"),
            [d("UDP", "192.0.2.1", 5060, server_name="192.0.2.1")],
        )
        self.assertEqual(self.resolver.queries, [])

    def test_ipv4_port_and_transport(self) -> None:
        """
        If an IPv4 host comes with a port and a transport parameter,
        L{ServerLocator.locate} uses both.
        """
        self.assertEqual(
            self.locate("sip:192.0.2.1:5080;transport=TCP"),
            [d("TCP", "192.0.2.1", 5080, server_name="192.0.2.1")],
        )

    def test_ipv4_leading_zeros(self) -> None:
        """
        If an IPv4 host has leading zeros (which the URI grammar allows),
        L{ServerLocator.locate} gives the address without them.
        """
        self.assertEqual(
            self.locate("sip:192.000.002.001"),
            [d("UDP", "192.0.2.1", 5060, server_name="192.0.2.1")],
        )

    def test_ipv4_out_of_range(self) -> None:
        """
        If an IPv4 host has an octet above 255, L{ServerLocator.locate}
        fails with L{TransportError}.
        """
        self.failureResultOf(self.locator().locate("sip:192.0.2.256"), TransportError)

    def test_ipv6(self) -> None:
        """
        If the host is an IPv6 reference, L{ServerLocator.locate} gives the
        address without brackets, in its compressed form.
        """
        self.assertEqual(
            self.locate("sip:[2001:DB8:0:0::1]:5070"),
            [d("UDP", "2001:db8::1", 5070, server_name="2001:db8::1")],
        )
        self.assertEqual(self.resolver.queries, [])

    def test_sips_ipv6(self) -> None:
        """
        If a SIPS URI names an IPv6 address, L{ServerLocator.locate} gives
        TLS at 5061 (RFC 3263 4.1: TCP for SIPS).
        """
        self.assertEqual(
            self.locate("sips:[2001:db8::1]"),
            [d("TLS", "2001:db8::1", 5061, server_name="2001:db8::1")],
        )

    def test_sips_ipv4(self) -> None:
        """
        If a SIPS URI names an IPv4 address, L{ServerLocator.locate} gives
        TLS at 5061.
        """
        self.assertEqual(
            self.locate("sips:bob@192.0.2.9"),
            [d("TLS", "192.0.2.9", 5061, server_name="192.0.2.9")],
        )

    def test_udp_not_supported(self) -> None:
        """
        If the locator does not support UDP, L{ServerLocator.locate} gives
        TCP for a SIP URI with an IP host.
        """
        self.assertEqual(
            self.locate("sip:192.0.2.1", supported=("TCP", "TLS")),
            [d("TCP", "192.0.2.1", 5060, server_name="192.0.2.1")],
        )

    def test_sips_without_tls(self) -> None:
        """
        If the locator does not support TLS, L{ServerLocator.locate} gives no
        destination for a SIPS URI, and asks DNS nothing.
        """
        self.assertEqual(self.locate("sips:192.0.2.1", supported=("UDP", "TCP")), [])
        self.assertEqual(self.locate("sips:example.com", supported=("UDP", "TCP")), [])
        self.assertEqual(self.resolver.queries, [])

    def test_family_disabled(self) -> None:
        """
        If IPv6 is disabled, L{ServerLocator.locate} gives no destination for
        an IPv6 host.
        """
        self.assertEqual(self.locate("sip:[2001:db8::1]", ipv6=False), [])


class TransportParameterTests(LocatorTestsMixin, SynchronousTestCase):
    """The C{transport} parameter wins (RFC 3263 4.1)."""

    def test_srv_for_that_transport(self) -> None:
        """
        If the URI has a transport parameter and no port,
        L{ServerLocator.locate} makes the SRV query for that transport only,
        without NAPTR.
        """
        self.resolver.add("example.com", naptr(10, 10, "SIP+D2U", "_sip._udp.example.com"))
        self.resolver.add("_sip._tcp.example.com", srv(0, 0, 5070, "sip1.example.com"))
        self.resolver.add("sip1.example.com", dns.Record_A("192.0.2.1"))
        self.assertEqual(
            self.locate("sip:example.com;transport=tcp"),
            [d("TCP", "192.0.2.1", 5070, "sip1.example.com")],
        )
        self.assertEqual(
            self.resolver.queries,
            [
                ("SRV", "_sip._tcp.example.com"),
                ("A", "sip1.example.com"),
                ("AAAA", "sip1.example.com"),
            ],
        )

    def test_no_srv(self) -> None:
        """
        If the URI has a transport parameter and the SRV query finds nothing,
        L{ServerLocator.locate} uses the A records with that transport's
        default port.
        """
        self.resolver.add("example.com", dns.Record_A("192.0.2.1"))
        self.assertEqual(
            self.locate("sip:example.com;transport=tls"),
            [d("TLS", "192.0.2.1", 5061, "example.com")],
        )
        self.assertEqual(self.resolver.queries[0], ("SRV", "_sips._tcp.example.com"))

    def test_sips_tcp_is_tls(self) -> None:
        """
        If a SIPS URI says C{transport=tcp}, L{ServerLocator.locate} looks
        for C{_sips._tcp} and gives TLS.
        """
        self.resolver.add("_sips._tcp.example.com", srv(0, 0, 5061, "tls.example.com"))
        self.resolver.add("tls.example.com", dns.Record_A("192.0.2.5"))
        self.assertEqual(
            self.locate("sips:example.com;transport=tcp"),
            [d("TLS", "192.0.2.5", 5061, "tls.example.com")],
        )

    def test_sips_udp(self) -> None:
        """
        If a SIPS URI says C{transport=udp}, L{ServerLocator.locate} fails
        with L{TransportError}.
        """
        self.failureResultOf(
            self.locator().locate("sips:example.com;transport=udp"), TransportError
        )

    def test_unsupported(self) -> None:
        """
        If the transport parameter names a transport the locator does not
        support, L{ServerLocator.locate} gives no destination and asks DNS
        nothing.
        """
        self.assertEqual(self.locate("sip:example.com;transport=sctp"), [])
        self.assertEqual(self.locate("sip:example.com;transport=ws"), [])
        self.assertEqual(self.resolver.queries, [])

    def test_sctp_supported(self) -> None:
        """
        If the locator supports SCTP, L{ServerLocator.locate} looks for
        C{_sip._sctp} for C{transport=sctp}.
        """
        self.resolver.add("_sip._sctp.example.com", srv(0, 0, 5060, "sctp.example.com"))
        self.resolver.add("sctp.example.com", dns.Record_A("192.0.2.7"))
        self.assertEqual(
            self.locate("sip:example.com;transport=sctp", supported=("UDP", "SCTP")),
            [d("SCTP", "192.0.2.7", 5060, "sctp.example.com")],
        )

    def test_empty(self) -> None:
        """
        If the transport parameter has no value, L{ServerLocator.locate}
        fails with L{TransportError}.
        """
        self.failureResultOf(self.locator().locate("sip:example.com;transport"), TransportError)


class ExplicitPortTests(LocatorTestsMixin, SynchronousTestCase):
    """A host name with a port: A and AAAA only (RFC 3263 4.2)."""

    def setUp(self) -> None:
        super().setUp()
        self.resolver.add(
            "example.com",
            dns.Record_A("192.0.2.1"),
            dns.Record_A("192.0.2.2"),
            dns.Record_AAAA("2001:db8::1"),
        )

    def test_a_then_aaaa(self) -> None:
        """
        If a host name comes with a port, L{ServerLocator.locate} gives its
        IPv4 and then its IPv6 addresses over UDP at that port, with no
        NAPTR or SRV query.
        """
        self.assertEqual(
            self.locate("sip:Example.COM:5080"),
            [
                d("UDP", "192.0.2.1", 5080, "example.com"),
                d("UDP", "192.0.2.2", 5080, "example.com"),
                d("UDP", "2001:db8::1", 5080, "example.com"),
            ],
        )
        self.assertEqual(self.query_types(), ["A", "AAAA"])

    def test_prefer_ipv6(self) -> None:
        """
        If C{prefer_ipv6} is set, L{ServerLocator.locate} gives the IPv6
        addresses first.
        """
        self.assertEqual(
            [x.host for x in self.locate("sip:example.com:5080", prefer_ipv6=True)],
            ["2001:db8::1", "192.0.2.1", "192.0.2.2"],
        )

    def test_ipv4_only(self) -> None:
        """
        If IPv6 is disabled, L{ServerLocator.locate} makes no AAAA query.
        """
        self.assertEqual(
            [x.host for x in self.locate("sip:example.com:5080", ipv6=False)],
            ["192.0.2.1", "192.0.2.2"],
        )
        self.assertEqual(self.query_types(), ["A"])

    def test_ipv6_only(self) -> None:
        """
        If IPv4 is disabled, L{ServerLocator.locate} makes no A query.
        """
        self.assertEqual(
            [x.host for x in self.locate("sip:example.com:5080", ipv4=False)],
            ["2001:db8::1"],
        )
        self.assertEqual(self.query_types(), ["AAAA"])

    def test_sips(self) -> None:
        """
        If a SIPS URI has a host name and a port, L{ServerLocator.locate}
        gives TLS at that port.
        """
        self.assertEqual(
            self.locate("sips:example.com:5081")[0],
            d("TLS", "192.0.2.1", 5081, "example.com"),
        )

    def test_transport_and_port(self) -> None:
        """
        If the URI has a transport parameter and a port,
        L{ServerLocator.locate} uses the A records with both.
        """
        self.assertEqual(
            self.locate("sip:example.com:5082;transport=tcp")[0],
            d("TCP", "192.0.2.1", 5082, "example.com"),
        )
        self.assertEqual(self.query_types(), ["A", "AAAA"])

    def test_aaaa_fails(self) -> None:
        """
        If the AAAA query fails, L{ServerLocator.locate} still gives the IPv4
        addresses.
        """
        self.resolver.fail_with("example.com", "AAAA", DNSServerError())
        self.assertEqual(
            [x.host for x in self.locate("sip:example.com:5080")],
            ["192.0.2.1", "192.0.2.2"],
        )


class NAPTRTests(LocatorTestsMixin, SynchronousTestCase):
    """NAPTR processing (RFC 3263 4.1)."""

    def setUp(self) -> None:
        super().setUp()
        r = self.resolver
        r.add("_sips._tcp.example.com", srv(0, 0, 5061, "tls.example.com"))
        r.add("_sip._tcp.example.com", srv(0, 0, 5060, "tcp.example.com"))
        r.add("_sip._udp.example.com", srv(0, 0, 5060, "udp.example.com"))
        r.add("tls.example.com", dns.Record_A("192.0.2.3"))
        r.add("tcp.example.com", dns.Record_A("192.0.2.2"))
        r.add("udp.example.com", dns.Record_A("192.0.2.1"))

    def add_rfc_example(self) -> None:
        # The example of RFC 3263 section 4.1, listed out of order.
        self.resolver.add(
            "example.com",
            naptr(100, 50, "SIP+D2U", "_sip._udp.example.com."),
            naptr(50, 50, "SIPS+D2T", "_sips._tcp.example.com."),
            naptr(90, 50, "SIP+D2T", "_sip._tcp.example.com"),
        )

    def test_order(self) -> None:
        """
        If the domain has NAPTR records, L{ServerLocator.locate} follows them
        by order, each to its SRV records.
        """
        self.add_rfc_example()
        self.assertEqual(
            self.locate("sip:alice@example.com"),
            [
                d("TLS", "192.0.2.3", 5061, "tls.example.com"),
                d("TCP", "192.0.2.2", 5060, "tcp.example.com"),
                d("UDP", "192.0.2.1", 5060, "udp.example.com"),
            ],
        )
        self.assertEqual(self.resolver.queries[0], ("NAPTR", "example.com"))

    def test_preference(self) -> None:
        """
        If NAPTR records have the same order, L{ServerLocator.locate} follows
        them by preference.
        """
        self.resolver.add(
            "example.com",
            naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com"),
            naptr(10, 10, "SIP+D2U", "_sip._udp.example.com"),
        )
        self.assertEqual([x.transport for x in self.locate("sip:example.com")], ["UDP", "TCP"])

    def test_sips_keeps_only_sips(self) -> None:
        """
        If the URI is a SIPS URI, L{ServerLocator.locate} discards the NAPTR
        services other than SIPS.
        """
        self.add_rfc_example()
        self.assertEqual(
            self.locate("sips:example.com"),
            [d("TLS", "192.0.2.3", 5061, "tls.example.com")],
        )
        self.assertNotIn(("SRV", "_sip._udp.example.com"), self.resolver.queries)

    def test_unsupported_transport(self) -> None:
        """
        If a NAPTR record leads to a transport the locator does not support,
        L{ServerLocator.locate} discards it.
        """
        self.add_rfc_example()
        self.assertEqual(
            [x.transport for x in self.locate("sip:example.com", supported=("UDP", "TCP"))],
            ["TCP", "UDP"],
        )

    def test_other_services_and_flags(self) -> None:
        """
        If NAPTR records have services other than SIP ones, flags other than
        C{s} and C{a}, or no replacement, L{ServerLocator.locate} discards
        them.
        """
        self.resolver.add(
            "example.com",
            naptr(1, 1, "E2U+sip", "_sip._tcp.example.com"),
            naptr(2, 1, "SIP+D2T", "_sip._tcp.example.com", flags="u"),
            naptr(3, 1, "SIP+D2T", "", flags="s"),
            naptr(4, 1, "SIP+D2X", "_sip._tcp.example.com"),
            naptr(5, 1, "sip+d2u", "_sip._udp.example.com", flags="S"),
        )
        self.assertEqual(
            self.locate("sip:example.com"),
            [d("UDP", "192.0.2.1", 5060, "udp.example.com")],
        )

    def test_a_flag(self) -> None:
        """
        If a NAPTR record has the flag C{a}, L{ServerLocator.locate} looks up
        the addresses of its replacement and uses the default port.
        """
        self.resolver.add("example.com", naptr(1, 1, "SIP+D2T", "tcp.example.com", flags="a"))
        self.assertEqual(
            self.locate("sip:example.com"),
            [d("TCP", "192.0.2.2", 5060, "tcp.example.com")],
        )

    def test_nothing_usable(self) -> None:
        """
        If no NAPTR record is usable, L{ServerLocator.locate} makes the SRV
        queries as if there were none.
        """
        self.resolver.add("example.com", naptr(1, 1, "SIP+D2U", "_sip._udp.example.com"))
        self.assertEqual(
            self.locate("sips:example.com"),
            [d("TLS", "192.0.2.3", 5061, "tls.example.com")],
        )

    def test_srv_empty(self) -> None:
        """
        If NAPTR records lead to SRV names without records,
        L{ServerLocator.locate} uses the A records of the domain with the
        transport of the most preferred NAPTR record and its default port
        (RFC 3263 4.2).
        """
        self.resolver.add(
            "example.com",
            naptr(10, 10, "SIP+D2T", "_sip._tcp.nowhere.example.com"),
            naptr(20, 10, "SIP+D2U", "_sip._udp.nowhere.example.com"),
            dns.Record_A("192.0.2.9"),
        )
        self.assertEqual(
            self.locate("sip:example.com"),
            [d("TCP", "192.0.2.9", 5060, "example.com")],
        )

    def test_partial(self) -> None:
        """
        If one NAPTR record leads to SRV records and another does not,
        L{ServerLocator.locate} gives the destinations of the first only.
        """
        self.resolver.add(
            "example.com",
            naptr(10, 10, "SIP+D2T", "_sip._tcp.nowhere.example.com"),
            naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
            dns.Record_A("192.0.2.9"),
        )
        self.assertEqual(
            self.locate("sip:example.com"),
            [d("UDP", "192.0.2.1", 5060, "udp.example.com")],
        )

    def test_duplicates(self) -> None:
        """
        If two NAPTR records lead to the same destination,
        L{ServerLocator.locate} gives it once.
        """
        self.resolver.add(
            "example.com",
            naptr(10, 10, "SIP+D2U", "_sip._udp.example.com"),
            naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
        )
        self.assertEqual(
            self.locate("sip:example.com"),
            [d("UDP", "192.0.2.1", 5060, "udp.example.com")],
        )


class SRVTests(LocatorTestsMixin, SynchronousTestCase):
    """SRV queries (RFC 3263 4.1 and 4.2) and their order (RFC 2782)."""

    def test_fallback_queries(self) -> None:
        """
        If the domain has no NAPTR records, L{ServerLocator.locate} queries
        C{_sips._tcp}, C{_sip._tcp} and C{_sip._udp}, and gives the
        destinations of those found in that order.
        """
        r = self.resolver
        r.add("_sip._udp.example.com", srv(0, 0, 5060, "udp.example.com"))
        r.add("_sips._tcp.example.com", srv(0, 0, 5061, "tls.example.com"))
        r.add("udp.example.com", dns.Record_A("192.0.2.1"))
        r.add("tls.example.com", dns.Record_A("192.0.2.3"))
        self.assertEqual(
            self.locate("sip:example.com"),
            [
                d("TLS", "192.0.2.3", 5061, "tls.example.com"),
                d("UDP", "192.0.2.1", 5060, "udp.example.com"),
            ],
        )
        self.assertEqual(
            [q for q in self.resolver.queries if q[0] in ("NAPTR", "SRV")],
            [
                ("NAPTR", "example.com"),
                ("SRV", "_sips._tcp.example.com"),
                ("SRV", "_sip._tcp.example.com"),
                ("SRV", "_sip._udp.example.com"),
            ],
        )

    def test_fallback_supported_only(self) -> None:
        """
        If the domain has no NAPTR records, L{ServerLocator.locate} makes SRV
        queries only for the supported transports, and for a SIPS URI only
        for C{_sips._tcp}.
        """
        self.locate("sip:example.com", supported=("UDP",))
        self.locate("sips:example.com")
        self.assertEqual(
            [q for q in self.resolver.queries if q[0] == "SRV"],
            [("SRV", "_sip._udp.example.com"), ("SRV", "_sips._tcp.example.com")],
        )

    def test_no_srv(self) -> None:
        """
        If the domain has neither NAPTR nor SRV records,
        L{ServerLocator.locate} gives its addresses over UDP at 5060.
        """
        self.resolver.add("example.com", dns.Record_A("192.0.2.1"), dns.Record_AAAA("2001:db8::1"))
        self.assertEqual(
            self.locate("sip:example.com"),
            [
                d("UDP", "192.0.2.1", 5060, "example.com"),
                d("UDP", "2001:db8::1", 5060, "example.com"),
            ],
        )

    def test_no_srv_sips(self) -> None:
        """
        If the domain of a SIPS URI has neither NAPTR nor SRV records,
        L{ServerLocator.locate} gives its addresses over TLS at 5061.
        """
        self.resolver.add("example.com", dns.Record_A("192.0.2.1"))
        self.assertEqual(
            self.locate("sips:example.com"),
            [d("TLS", "192.0.2.1", 5061, "example.com")],
        )

    def test_priority(self) -> None:
        """
        If SRV records have different priorities, L{ServerLocator.locate}
        gives the lowest first, whatever the weights.
        """
        r = self.resolver
        r.add(
            "_sip._udp.example.com",
            srv(20, 100, 5060, "b.example.com"),
            srv(10, 0, 5062, "a.example.com"),
            srv(30, 100, 5064, "c.example.com"),
        )
        for i, name in enumerate("abc"):
            r.add(f"{name}.example.com", dns.Record_A(f"192.0.2.{i + 1}"))
        self.assertEqual(
            self.locate("sip:example.com;transport=udp"),
            [
                d("UDP", "192.0.2.1", 5062, "a.example.com", priority=10, weight=0),
                d("UDP", "192.0.2.2", 5060, "b.example.com", priority=20, weight=100),
                d("UDP", "192.0.2.3", 5064, "c.example.com", priority=30, weight=100),
            ],
        )

    def test_weight(self) -> None:
        """
        If SRV records have the same priority, L{ServerLocator.locate} orders
        them by weighted random selection (RFC 2782), using the injected
        C{random}.
        """
        r = self.resolver
        r.add(
            "_sip._udp.example.com",
            srv(10, 10, 5060, "a.example.com"),
            srv(10, 30, 5060, "b.example.com"),
            srv(10, 60, 5060, "c.example.com"),
        )
        for i, name in enumerate("abc"):
            r.add(f"{name}.example.com", dns.Record_A(f"192.0.2.{i + 1}"))
        # Sums 10, 40, 100: 0.5 * 101 = 50 picks c; then sums 10, 40:
        # 0.2 * 41 = 8 picks a; then b.
        found = self.locate("sip:example.com;transport=udp", random=randoms(0.5, 0.2, 0.9))
        self.assertEqual(
            [x.target for x in found], ["c.example.com", "a.example.com", "b.example.com"]
        )

    def test_dot_target(self) -> None:
        """
        If the SRV target is C{"."}, L{ServerLocator.locate} takes the
        service as not available: no destination, and no A lookup of the
        domain.
        """
        self.resolver.add("_sip._udp.example.com", srv(0, 0, 5060, "."))
        self.resolver.add("example.com", dns.Record_A("192.0.2.1"))
        self.assertEqual(self.locate("sip:example.com", supported=("UDP",)), [])
        self.assertNotIn(("A", "example.com"), self.resolver.queries)

    def test_additional(self) -> None:
        """
        If the SRV answer carries the target's addresses in its additional
        section, L{ServerLocator.locate} uses them instead of querying.
        """
        r = self.resolver
        r.add("_sip._udp.example.com", srv(0, 0, 5060, "sip.example.com"))
        r.add_additional(
            "_sip._udp.example.com",
            "sip.example.com",
            dns.Record_A("192.0.2.1"),
            dns.Record_AAAA("2001:db8::1"),
        )
        self.assertEqual(
            [x.host for x in self.locate("sip:example.com;transport=udp")],
            ["192.0.2.1", "2001:db8::1"],
        )
        self.assertEqual(self.resolver.queries, [("SRV", "_sip._udp.example.com")])

    def test_server_name(self) -> None:
        """
        If an SRV record points to another host, L{ServerLocator.locate}
        sets C{target} to that host and C{server_name} to the URI's domain
        (RFC 5922 section 4).
        """
        self.resolver.add("_sips._tcp.example.com", srv(0, 0, 5061, "edge.example.net"))
        self.resolver.add("edge.example.net", dns.Record_A("198.51.100.1"))
        [found] = self.locate("sips:example.com")
        self.assertEqual((found.target, found.server_name), ("edge.example.net", "example.com"))


class OrderSRVTests(SynchronousTestCase):
    """Tests for L{_order_srv}, the RFC 2782 ordering."""

    def test_zero_weight(self) -> None:
        """
        If the random pick is 0, L{_order_srv} selects a record of weight 0
        first, since those are placed at the beginning.
        """
        records = [srv(0, 5, 1, "a"), srv(0, 0, 2, "b")]
        self.assertEqual([r.port for r in _order_srv(records, randoms(0.0, 0.0))], [2, 1])

    def test_zero_weight_unlikely(self) -> None:
        """
        If the random pick is above 0, L{_order_srv} selects a weighted
        record before a record of weight 0.
        """
        records = [srv(0, 5, 1, "a"), srv(0, 0, 2, "b")]
        self.assertEqual([r.port for r in _order_srv(records, randoms(0.2, 0.0))], [1, 2])

    def test_all_zero(self) -> None:
        """
        If every weight is 0, L{_order_srv} keeps the order of the records.
        """
        records = [srv(0, 0, 1, "a"), srv(0, 0, 2, "b"), srv(0, 0, 3, "c")]
        self.assertEqual(
            [r.port for r in _order_srv(records, randoms(0.99, 0.99, 0.99))], [1, 2, 3]
        )

    def test_top_of_range(self) -> None:
        """
        If C{random} gives nearly 1, L{_order_srv} selects the last record.
        """
        records = [srv(0, 1, 1, "a"), srv(0, 1, 2, "b")]
        self.assertEqual([r.port for r in _order_srv(records, randoms(0.9999, 0.0))], [2, 1])


class MaddrTests(LocatorTestsMixin, SynchronousTestCase):
    """C{maddr} overrides the host (RFC 3263 4, RFC 3261 19.1.1)."""

    def test_ip(self) -> None:
        """
        If the URI has an IP C{maddr}, L{ServerLocator.locate} sends there,
        with the URI's port and transport, and no DNS query.
        """
        self.assertEqual(
            self.locate("sip:alice@example.com:5070;maddr=192.0.2.4;transport=tcp"),
            [d("TCP", "192.0.2.4", 5070, server_name="192.0.2.4")],
        )
        self.assertEqual(self.resolver.queries, [])

    def test_ipv6(self) -> None:
        """
        If the URI has an IPv6 reference as C{maddr}, L{ServerLocator.locate}
        gives it without brackets.
        """
        self.assertEqual(self.locate("sip:example.com;maddr=[2001:db8::4]")[0].host, "2001:db8::4")

    def test_name(self) -> None:
        """
        If the URI has a host name as C{maddr}, L{ServerLocator.locate}
        resolves that name instead of the host.
        """
        self.resolver.add("proxy.example.org", dns.Record_A("192.0.2.8"))
        self.assertEqual(
            self.locate("sip:bob@example.com;maddr=proxy.example.org"),
            [d("UDP", "192.0.2.8", 5060, "proxy.example.org", "proxy.example.org")],
        )
        self.assertNotIn("example.com", [name for _, name in self.resolver.queries])

    def test_bad(self) -> None:
        """
        If C{maddr} is empty or not a host, L{ServerLocator.locate} fails
        with L{TransportError}.
        """
        self.failureResultOf(self.locator().locate("sip:example.com;maddr"), TransportError)
        self.failureResultOf(self.locator().locate("sip:example.com;maddr=a$b"), TransportError)
        self.failureResultOf(
            self.locator().locate("sip:example.com;maddr=[2001:db8::zz]"), TransportError
        )


class FailureTests(LocatorTestsMixin, SynchronousTestCase):
    """Failed lookups and URIs that cannot be located."""

    def test_nxdomain(self) -> None:
        """
        If every query fails with NXDOMAIN, L{ServerLocator.locate} gives an
        empty list.
        """
        self.assertEqual(self.locate("sip:nowhere.example.com"), [])
        self.assertEqual(self.query_types(), ["NAPTR", "SRV", "SRV", "SRV", "A", "AAAA"])

    def test_other_errors(self) -> None:
        """
        If queries fail with other errors, L{ServerLocator.locate} gives an
        empty list.
        """
        for rtype in ("NAPTR", "SRV", "A", "AAAA"):
            self.resolver.fail_with("example.com", rtype, DNSLookupError("timeout"))
        self.assertEqual(self.locate("sip:example.com:5060"), [])
        self.assertEqual(self.locate("sip:example.com"), [])

    def test_synchronous_exception(self) -> None:
        """
        If the resolver raises instead of returning a Deferred,
        L{ServerLocator.locate} gives an empty list.
        """

        def boom(name, timeout=None):
            raise RuntimeError("resolver bug")

        self.patch(self.resolver, "lookupAddress", boom)
        self.assertEqual(self.locate("sip:example.com:5060", ipv6=False), [])

    def test_tel(self) -> None:
        """
        If the URI is a tel URI, L{ServerLocator.locate} fails with
        L{TransportError}.
        """
        self.failureResultOf(self.locator().locate("tel:+15551234567"), TransportError)
        self.failureResultOf(self.locator().locate(parse_uri("tel:+15551234567")), TransportError)

    def test_absolute(self) -> None:
        """
        If the URI has another scheme, L{ServerLocator.locate} fails with
        L{TransportError}.
        """
        self.failureResultOf(self.locator().locate("http://www.example.com/"), TransportError)

    def test_unparseable(self) -> None:
        """
        If the text is not a URI, L{ServerLocator.locate} fails with
        L{TransportError}.
        """
        self.failureResultOf(self.locator().locate("sip:a b"), TransportError)

    def test_parsed(self) -> None:
        """
        If given a parsed L{SipURI}, L{ServerLocator.locate} gives the same
        as for its text.
        """
        self.assertEqual(self.locate(parse_uri("sip:192.0.2.1")), self.locate("sip:192.0.2.1"))

    def test_pending(self) -> None:
        """
        If the resolver has not answered yet, L{ServerLocator.locate} waits
        for it.
        """
        pending: Deferred[tuple[list, list, list]] = Deferred()
        self.patch(self.resolver, "lookupAddress", lambda name, timeout=None: pending)
        result = self.locator(ipv6=False).locate("sip:example.com:5060")
        self.assertNoResult(result)
        pending.callback(([rr("example.com", dns.Record_A("192.0.2.1"))], [], []))
        self.assertEqual(self.successResultOf(result), [d("UDP", "192.0.2.1", 5060, "example.com")])


class CacheTests(LocatorTestsMixin, SynchronousTestCase):
    """The TTL cache used when a clock is given."""

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.resolver.add("example.com", dns.Record_A("192.0.2.1"), ttl=60)
        self.resolver.add("example.com", dns.Record_AAAA("2001:db8::1"), ttl=30)

    def test_cached(self) -> None:
        """
        If an answer is within its TTL, L{ServerLocator.locate} does not ask
        the resolver again.
        """
        locator = self.locator(clock=self.clock)
        first = self.successResultOf(locator.locate("sip:example.com:5060"))
        self.clock.advance(29)
        second = self.successResultOf(locator.locate("sip:example.com:5060"))
        self.assertEqual(first, second)
        self.assertEqual(self.query_types(), ["A", "AAAA"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_expired(self) -> None:
        """
        If an answer's TTL has passed, L{ServerLocator.locate} asks the
        resolver again.
        """
        locator = self.locator(clock=self.clock)
        locator.locate("sip:example.com:5060")
        self.clock.advance(30)
        locator.locate("sip:example.com:5060")
        self.assertEqual(self.query_types(), ["A", "AAAA", "AAAA"])
        self.clock.advance(30)
        locator.locate("sip:example.com:5060")
        self.assertEqual(self.query_types(), ["A", "AAAA", "AAAA", "A", "AAAA"])

    def test_no_clock(self) -> None:
        """
        If no clock is given, L{ServerLocator.locate} caches nothing.
        """
        locator = self.locator()
        locator.locate("sip:example.com:5060")
        locator.locate("sip:example.com:5060")
        self.assertEqual(self.query_types(), ["A", "AAAA"] * 2)

    def soa(self, ttl: int, minimum: int) -> None:
        soa = dns.Record_SOA("ns.example.com", "root.example.com", minimum=minimum)
        self.resolver.authority = [rr("example.com", soa, ttl)]

    def test_negative_nxdomain(self) -> None:
        """
        If a query fails with NXDOMAIN and an SOA record,
        L{ServerLocator.locate} caches the failure for the lesser of the
        SOA's TTL and minimum (RFC 2308 section 5).
        """
        self.soa(ttl=300, minimum=10)
        locator = self.locator(clock=self.clock)
        locator.locate("sip:example.com;transport=udp")
        locator.locate("sip:example.com;transport=udp")
        self.clock.advance(10)
        locator.locate("sip:example.com;transport=udp")
        srv_queries = [q for q in self.resolver.queries if q[0] == "SRV"]
        self.assertEqual(len(srv_queries), 2)

    def test_negative_nodata(self) -> None:
        """
        If an answer is empty and has an SOA record, L{ServerLocator.locate}
        caches it for the lesser of the SOA's TTL and minimum.
        """
        self.soa(ttl=5, minimum=60)
        locator = self.locator(clock=self.clock, supported=("UDP",))
        locator.locate("sip:example.com")
        self.clock.advance(4)
        locator.locate("sip:example.com")
        self.clock.advance(1)
        locator.locate("sip:example.com")
        naptr_queries = [q for q in self.resolver.queries if q[0] == "NAPTR"]
        self.assertEqual(len(naptr_queries), 2)

    def test_negative_without_soa(self) -> None:
        """
        If a failed query has no SOA record, L{ServerLocator.locate} does
        not cache the failure.
        """
        locator = self.locator(clock=self.clock)
        locator.locate("sip:example.com;transport=udp")
        locator.locate("sip:example.com;transport=udp")
        srv_queries = [q for q in self.resolver.queries if q[0] == "SRV"]
        self.assertEqual(len(srv_queries), 2)

    def test_size(self) -> None:
        """
        If the cache is full, L{ServerLocator.locate} drops the oldest
        answer.
        """
        self.resolver.add("example.org", dns.Record_A("192.0.2.2"))
        locator = self.locator(clock=self.clock, cache_size=1, ipv6=False)
        locator.locate("sip:example.com:5060")
        locator.locate("sip:example.org:5060")
        locator.locate("sip:example.org:5060")
        locator.locate("sip:example.com:5060")
        self.assertEqual(
            [name for _, name in self.resolver.queries],
            ["example.com", "example.org", "example.com"],
        )


class DestinationTests(SynchronousTestCase):
    """Tests for L{Destination} and the locator's construction."""

    def test_str(self) -> None:
        """
        L{Destination} shows as the transport, the address and, if it came
        from a name, that name.
        """
        self.assertEqual(str(d("UDP", "192.0.2.1", 5060)), "UDP 192.0.2.1:5060")
        self.assertEqual(
            str(d("TLS", "2001:db8::1", 5061, "sip.example.com")),
            "TLS [2001:db8::1]:5061 (sip.example.com)",
        )

    def test_properties(self) -> None:
        """
        L{Destination.address} is C{(host, port)} and L{Destination.secure}
        is true for TLS only.
        """
        self.assertEqual(d("TLS", "192.0.2.1", 5061).address, ("192.0.2.1", 5061))
        self.assertTrue(d("TLS", "192.0.2.1", 5061).secure)
        self.assertFalse(d("TCP", "192.0.2.1", 5060).secure)

    def test_unknown_transport(self) -> None:
        """
        If C{supported} names an unknown transport, L{ServerLocator} raises
        L{ValueError}.
        """
        self.assertRaises(
            ValueError, ServerLocator, cast(IResolver, FakeResolver()), supported=("UDP", "QUIC")
        )

    def test_fake_resolver(self) -> None:
        """
        The fake resolver these tests use provides L{IResolver}.
        """
        self.assertTrue(verifyObject(IResolver, FakeResolver()))
