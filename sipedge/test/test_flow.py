# -*- test-case-name: sipedge.test.test_flow -*-
"""
Tests for L{sipedge.flow}, the leaf value every layer shares.
"""

from __future__ import annotations

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import RELIABLE_TRANSPORTS, Flow, format_hostport


class FormatHostportTests(SynchronousTestCase):
    """L{format_hostport} writes C{host:port} as a Via or URI wants it."""

    def test_ipv4(self) -> None:
        """An IPv4 literal or a name is written as it is."""
        self.assertEqual(format_hostport("192.0.2.1", 5060), "192.0.2.1:5060")
        self.assertEqual(format_hostport("example.test", 5061), "example.test:5061")

    def test_ipv6(self) -> None:
        """An IPv6 literal gets brackets (RFC 5118), once."""
        self.assertEqual(format_hostport("2001:db8::1", 5060), "[2001:db8::1]:5060")
        self.assertEqual(format_hostport("[2001:db8::1]", 5060), "[2001:db8::1]:5060")


class FlowTests(SynchronousTestCase):
    """L{Flow} is a frozen value naming a transport and its two ends."""

    def test_transport_upper_case(self) -> None:
        """The transport token is kept in upper case, so flows compare equal."""
        self.assertEqual(
            Flow("udp", "127.0.0.1", 5060, "127.0.0.2", 5070),
            Flow("UDP", "127.0.0.1", 5060, "127.0.0.2", 5070),
        )

    def test_reliable_and_secure(self) -> None:
        """TCP and TLS are reliable; only TLS (and WSS) is secure; UDP is neither."""
        udp = Flow("UDP", "127.0.0.1", 5060, "127.0.0.2", 5070)
        tcp = Flow("TCP", "127.0.0.1", 5060, "127.0.0.2", 5070)
        tls = Flow("TLS", "127.0.0.1", 5061, "127.0.0.2", 5070)
        self.assertEqual((udp.reliable, udp.secure), (False, False))
        self.assertEqual((tcp.reliable, tcp.secure), (True, False))
        self.assertEqual((tls.reliable, tls.secure), (True, True))
        self.assertIn("TCP", RELIABLE_TRANSPORTS)
        self.assertNotIn("UDP", RELIABLE_TRANSPORTS)

    def test_addresses(self) -> None:
        """C{local}, C{remote} and C{remote_ip} give the two ends."""
        flow = Flow("UDP", "::1", 5060, "::2", 5070)
        self.assertEqual(flow.local, ("::1", 5060))
        self.assertEqual(flow.remote, ("::2", 5070))
        self.assertEqual(flow.remote_ip, ipaddress.ip_address("::2"))
        self.assertIs(flow.reply_flow(), flow)

    def test_str(self) -> None:
        """A flow reads as C{TRANSPORT local <-> remote}, IPv6 in brackets."""
        self.assertEqual(
            str(Flow("UDP", "::1", 5060, "127.0.0.2", 5070)),
            "UDP [::1]:5060 <-> 127.0.0.2:5070",
        )
