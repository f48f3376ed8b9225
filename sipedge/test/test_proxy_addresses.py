"""Tests for L{sipedge.proxy._addresses}: our address for Via and Record-Route."""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import TransportError
from sipedge.proxy._addresses import LocalAddresses, family_of


class Listeners:
    """Listeners: UDP on a wildcard IPv4 address, TCP on 192.0.2.1, nothing on IPv6."""

    def local_hostport(self, transport: str, family: int) -> tuple[str, int]:
        if family != socket.AF_INET:
            raise TransportError("no IPv6 listener")
        return ("0.0.0.0", 5060) if transport == "UDP" else ("192.0.2.1", 5070)


class LocalAddressesTests(SynchronousTestCase):
    """Tests for L{LocalAddresses}."""

    def test_listener(self) -> None:
        """A listener bound to an address gives that address."""
        addresses = LocalAddresses(Listeners())
        self.assertEqual(addresses.hostport("TCP", socket.AF_INET), ("192.0.2.1", 5070))

    def test_wildcard(self) -> None:
        """A wildcard bind gives this host's primary address, else loopback."""
        self.assertEqual(
            LocalAddresses(Listeners(), None, {socket.AF_INET: "198.51.100.1"}).hostport(
                "UDP", socket.AF_INET
            ),
            ("198.51.100.1", 5060),
        )
        self.assertEqual(
            LocalAddresses(Listeners()).hostport("UDP", socket.AF_INET), ("127.0.0.1", 5060)
        )

    def test_advertise(self) -> None:
        """An advertised address wins; without a port, the listener's port is kept."""
        self.assertEqual(
            LocalAddresses(Listeners(), ("edge.example.com", None)).hostport(
                "TCP", socket.AF_INET
            ),
            ("edge.example.com", 5070),
        )
        self.assertEqual(
            LocalAddresses(Listeners(), ("203.0.113.1", 5080)).hostport_toward(
                "UDP", "198.51.100.7"
            ),
            ("203.0.113.1", 5080),
        )

    def test_no_listener(self) -> None:
        """No listener of that family: L{TransportError}."""
        self.assertRaises(
            TransportError, LocalAddresses(Listeners()).hostport_toward, "UDP", "2001:db8::1"
        )

    def test_transports_set_later(self) -> None:
        """The transports may be given after construction (as the proxy core's are)."""
        addresses = LocalAddresses()
        addresses.transports = Listeners()
        self.assertEqual(addresses.hostport("TCP", socket.AF_INET), ("192.0.2.1", 5070))

    def test_family_of(self) -> None:
        """An IPv6 literal (bracketed or not) is AF_INET6; anything else AF_INET."""
        self.assertEqual(family_of("2001:db8::1"), socket.AF_INET6)
        self.assertEqual(family_of("[2001:db8::1]"), socket.AF_INET6)
        self.assertEqual(family_of("192.0.2.1"), socket.AF_INET)
        self.assertEqual(family_of("example.com"), socket.AF_INET)
