# -*- test-case-name: sipedge.test.test_proxy_forwarding -*-
"""Tests for L{sipedge.proxy._forwarding}: our own Via."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import parse_via
from sipedge.proxy._forwarding import own_via, via_value
from sipedge.test.strategies import ipv4_addresses, ipv6_references, tokens


class OwnViaTests(SynchronousTestCase):
    """L{own_via} is pushed without a parse: its text must parse back to it."""

    def test_text(self) -> None:
        """Our Via asks for rport; an IPv6 sent-by gets brackets (RFC 5118)."""
        self.assertEqual(
            via_value("UDP", "192.0.2.1", 5060, "z9hG4bK-1"),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport",
        )
        self.assertEqual(
            via_value("TLS", "2001:db8::1", 5061, "z9hG4bK-2"),
            "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bK-2;rport",
        )
        self.assertEqual(own_via("TCP", "[2001:db8::1]", 5060, "b").host, "[2001:db8::1]")

    @given(
        st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS"]),
        ipv4_addresses() | ipv6_references() | ipv6_references().map(lambda r: r[1:-1]),
        st.integers(1, 65535),
        tokens(),
    )
    def test_round_trip(self, transport: str, host: str, port: int, token: str) -> None:
        """The text of L{own_via} parses to an equal value, which it stands for."""
        via = own_via(transport, host, port, "z9hG4bK" + token)
        self.assertEqual(parse_via(str(via)), via)
        self.assertEqual(str(via), via_value(transport, host, port, "z9hG4bK" + token))
        self.assertEqual(via.rport, True)
