# -*- test-case-name: sipedge.test.test_pipeline_local -*-
"""Tests for L{sipedge.pipeline._local} and the wildcard expansion in L{sipedge.service}."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import parse_uri
from sipedge.pipeline import LocalIdentity
from sipedge.service import _host_addresses


class LocalIdentityTests(SynchronousTestCase):
    """Tests for L{LocalIdentity}."""

    def setUp(self) -> None:
        self.local = LocalIdentity(
            ["Example.com"], [("UDP", "192.0.2.5", 5060), ("TCP", "[2001:db8::5]", 5070)]
        )

    def test_domains(self) -> None:
        """If a URI names one of our domains (any case), it is ours."""
        self.assertTrue(self.local.is_our_domain(parse_uri("sip:bob@EXAMPLE.com")))
        self.assertFalse(self.local.is_our_domain(parse_uri("sip:bob@other.example.net")))
        self.assertFalse(self.local.is_our_domain(parse_uri("tel:+4930123")))

    def test_our_address_and_port(self) -> None:
        """
        If a URI names our address at our port (or no port, for 5060), it is
        ours; our address at another port is somebody else.
        """
        self.assertTrue(self.local.is_local_uri(parse_uri("sip:192.0.2.5;lr")))
        self.assertTrue(self.local.is_local_uri(parse_uri("sip:192.0.2.5:5060;lr")))
        self.assertFalse(self.local.is_local_uri(parse_uri("sip:192.0.2.5:5080;lr")))
        self.assertTrue(self.local.is_local_uri(parse_uri("sip:[2001:db8::5]:5070;lr")))
        self.assertFalse(self.local.is_our_domain(parse_uri("sip:bob@192.0.2.5:5099")))

    @given(
        address=st.ip_addresses(v=6),
        exploded=st.booleans(),
        upper=st.booleans(),
        ours=st.booleans(),
    )
    def test_ipv6_spellings(
        self, address: ipaddress.IPv6Address, exploded: bool, upper: bool, ours: bool
    ) -> None:
        """
        An IPv6 address is ours however either side spells it (RFC 5118
        4.1: compressed or not, any case): C{[2001:DB8:0::5]} is
        C{[2001:db8::5]}; another address is not ours.
        """
        listener = str(address) if ours else "2001:db8::dead"
        local = LocalIdentity(["example.com"], [("UDP", f"[{listener}]", 5060)])
        text = address.exploded if exploded else address.compressed
        text = text.upper() if upper else text
        self.assertEqual(local.is_local_uri(parse_uri(f"sip:[{text}]:5060;lr")),
                         ours or address == ipaddress.IPv6Address("2001:db8::dead"))

    def test_wildcard_matches_nothing(self) -> None:
        """
        If a listener is given with a wildcard address, it matches no host:
        a Route or Request-URI to another proxy is never mistaken for ours.
        """
        local = LocalIdentity(["example.com"], [("UDP", "0.0.0.0", 5060)])
        self.assertFalse(local.is_our_domain(parse_uri("sip:bob@other.example.net")))
        self.assertFalse(local.is_local_uri(parse_uri("sip:carrier.example.net;lr")))


_HOSTS = ("192.0.2.5", "192.0.2.6", "[2001:db8::5]", "2001:DB8:0::5", "EDGE.example.com")


class IsLocalHostTests(SynchronousTestCase):
    """L{LocalIdentity.is_local_host} answers from tables made once."""

    @given(
        listeners=st.lists(
            st.tuples(
                st.sampled_from(("UDP", "TCP", "TLS")),
                st.sampled_from(_HOSTS),
                st.sampled_from((5060, 5061, 5070)),
            ),
            max_size=5,
        ),
        host=st.sampled_from((*_HOSTS, "192.0.2.7")),
        port=st.sampled_from((None, 5060, 5061, 5070, 5080)),
    )
    def test_as_the_definition(
        self, listeners: list[tuple[str, str, int]], host: str, port: int | None
    ) -> None:
        """
        Our host and port are one of our listeners' (any transport,
        however the host is spelled); without a port, 5060 or 5061.
        """
        local = LocalIdentity([], listeners)
        bare = lambda h: (  # noqa: E731
            str(ipaddress.IPv6Address(h.strip("[]"))) if ":" in h else h.lower()
        )
        expected = any(
            bare(lhost) == bare(host)
            and (port == lport or (port is None and lport in (5060, 5061)))
            for _, lhost, lport in listeners
        )
        self.assertEqual(local.is_local_host(host, port), expected)


class HostAddressesTests(SynchronousTestCase):
    """Tests for C{_host_addresses}."""

    def test_specific(self) -> None:
        """A listener on one address answers on that address only."""
        self.assertEqual(_host_addresses("192.0.2.5"), ["192.0.2.5"])

    def test_wildcard(self) -> None:
        """A wildcard listener answers on loopback among this host's addresses."""
        self.assertIn("127.0.0.1", _host_addresses("0.0.0.0"))
        self.assertNotIn("0.0.0.0", _host_addresses("0.0.0.0"))
        self.assertIn("::1", _host_addresses("::"))
