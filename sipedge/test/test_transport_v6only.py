# -*- test-case-name: sipedge.test.test_transport_v6only -*-
"""
Tests for L{sipedge.transport._v6only} through L{TransportManager}: an
IPv6 wildcard listener is IPv6-only, so it can share its port number with
the IPv4 wildcard listener (C{udp:0.0.0.0:P} next to C{udp:[::]:P}), as
a dual-stack configuration lists them. Real sockets on the wildcard
addresses, port 0 first (any free port), closed in cleanups; skipped
where IPv6 cannot be bound.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipedge.message import Request
from sipedge.testing import FakeReactor, RecordingReceiver, options_bytes
from sipedge.transport import Flow, TransportManager


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _v6only(port: Any) -> int:
    sock = port.socket
    return int(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))


class WildcardTests(TestCase):
    """The IPv6 wildcard next to the IPv4 wildcard, on the real reactor."""

    if not _ipv6():
        skip = "IPv6 (::1) is not available"

    timeout = 15

    def manager(self) -> tuple[TransportManager, list[tuple[Any, Flow]]]:
        from twisted.internet import reactor

        got: list[tuple[Any, Flow]] = []
        self.waiting: list[Deferred[None]] = []

        def received(message: Any, flow: Flow) -> None:
            got.append((message, flow))
            while self.waiting:
                self.waiting.pop(0).callback(None)

        manager = TransportManager(RecordingReceiver(on_message=received), reactor)
        self.addCleanup(manager.close)
        return manager, got

    async def test_udp_same_port(self) -> None:
        """
        If sipedge listens on 0.0.0.0:P, it can listen on [::]:P too (UDP):
        that socket is IPv6-only, and a request over ::1 arrives on it from
        ::1 (never from an IPv4-mapped address).
        """
        manager, got = self.manager()
        four = manager.listen_udp("0.0.0.0", 0)
        assert four.local_port is not None
        six = manager.listen_udp("::", four.local_port)
        self.assertEqual(six.local_port, four.local_port)
        self.assertEqual(_v6only(six.transport), 1)
        arrived: Deferred[None] = Deferred()
        self.waiting.append(arrived)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.sendto(options_bytes(), ("::1", six.local_port))
            await arrived
        [(message, flow)] = got
        self.assertIsInstance(message, Request)
        self.assertEqual(flow.remote_host, "::1")

    def test_tcp_same_port(self) -> None:
        """TCP (and so TLS) likewise: [::]:P beside 0.0.0.0:P, IPv6-only."""
        manager, _ = self.manager()
        four = manager.listen_tcp("0.0.0.0", 0)
        six = manager.listen_tcp("::", four.local_port)
        self.assertEqual(six.local_port, four.local_port)
        self.assertEqual(_v6only(six.port), 1)


class FakeReactorTests(SynchronousTestCase):
    """A reactor that cannot adopt sockets gets listenUDP/listenTCP as before."""

    def test_fallback(self) -> None:
        """
        The tests' fake reactor (no sockets to adopt) still listens on
        [::], through its listenUDP/listenTCP.
        """
        reactor = FakeReactor()
        manager = TransportManager(RecordingReceiver(), reactor)
        self.assertEqual(manager.listen_udp("::", 5060).local_host, "::")
        self.assertEqual(manager.listen_tcp("::", 5060).local_host, "::")

