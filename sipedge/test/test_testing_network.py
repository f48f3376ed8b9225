# -*- test-case-name: sipedge.test.test_testing_network -*-
"""
Tests for the misbehaving networks of L{sipedge.testing}: L{NetworkModel}
on datagrams and L{StreamFaults} on streams.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    FakeReactor,
    NetworkModel,
    NetworkRule,
    StreamFaults,
    options_bytes,
    sip_match,
)

A = ("192.0.2.1", 5060)
B = ("192.0.2.2", 5060)


class Sink(DatagramProtocol):
    """Records what it receives, with the time."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.received: list[tuple[float, bytes]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((self.clock.seconds(), data))


class DatagramModelTests(SynchronousTestCase):
    """L{NetworkModel} rules on a L{FakeDatagramNetwork}."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.network = self.reactor.network
        self.a = Sink(self.reactor)
        self.b = Sink(self.reactor)
        self.port_a = self.network.bind(*A, self.a)
        self.network.bind(*B, self.b)
        self.addCleanup(lambda: self.assertEqual(self.reactor.getDelayedCalls(), []))

    def model(self, *rules: NetworkRule, seed: int = 0) -> NetworkModel:
        return NetworkModel(self.reactor, rules, seed=seed).install(self.network)

    def send(self, *payloads: bytes) -> None:
        for payload in payloads:
            self.port_a.write(payload, B)
        self.network.flush()

    def test_no_rules(self) -> None:
        """A model without rules changes nothing."""
        self.model()
        self.send(b"1", b"2")
        self.assertEqual([d for _, d in self.b.received], [b"1", b"2"])

    def test_latency(self) -> None:
        """C{latency}: each datagram arrives that much later on the clock."""
        model = self.model(NetworkRule(latency=0.25))
        self.send(b"1")
        self.assertEqual(self.b.received, [])
        self.assertEqual(model.in_flight, 1)
        self.reactor.advance(0.25)
        self.assertEqual(self.b.received, [(0.25, b"1")])
        self.assertEqual(model.in_flight, 0)

    def test_jitter_reorders(self) -> None:
        """C{jitter}: datagrams overtake each other, the same way for the same seed."""
        def run(seed: int) -> list[bytes]:
            self.b.received.clear()
            model = self.model(NetworkRule(latency=0.1, jitter=0.5), seed=seed)
            self.send(*(bytes([n]) for n in range(20)))
            self.reactor.advance(1)
            self.assertEqual(model.in_flight, 0)
            return [d for _, d in self.b.received]

        first = run(1)
        self.assertEqual(sorted(first), [bytes([n]) for n in range(20)])
        self.assertNotEqual(first, sorted(first))
        self.assertEqual(first, run(1))

    def test_loss(self) -> None:
        """C{loss}: about that share is lost, each recorded."""
        model = self.model(NetworkRule(loss=0.25), seed=4)
        self.send(*(b"x" for _ in range(400)))
        self.assertEqual(len(self.b.received) + len(model.lost), 400)
        self.assertTrue(60 < len(model.lost) < 140, len(model.lost))

    def test_duplicate(self) -> None:
        """C{duplicate=1}: every datagram arrives twice."""
        model = self.model(NetworkRule(duplicate=1.0))
        self.send(b"1", b"2")
        self.assertEqual([d for _, d in self.b.received], [b"1", b"1", b"2", b"2"])
        self.assertEqual(len(model.duplicated), 2)

    def test_mangle_by_sip_rule(self) -> None:
        """
        A rule with a L{sip_match} applies to the SIP messages it matches
        only: here OPTIONS get their Call-ID rewritten, other datagrams pass.
        """
        model = self.model(NetworkRule(
            match=sip_match(method="OPTIONS"),
            mangle=lambda data: data.replace(b"Call-ID: ", b"Call-ID: mangled-"),
        ))
        self.send(options_bytes(), b"\r\n\r\n")
        [(_, options), (_, keepalive)] = self.b.received
        self.assertIn(b"Call-ID: mangled-a84b4c76e66710", options)
        self.assertEqual(keepalive, b"\r\n\r\n")
        self.assertEqual(len(model.mangled), 1)

    def test_sip_match(self) -> None:
        """L{sip_match} by method, header pattern and address."""
        options = options_bytes()
        datagram = self.network.sent  # filled by send
        self.send(options)
        [sent] = datagram
        self.assertTrue(sip_match(method="OPTIONS")(sent))
        self.assertFalse(sip_match(method="INVITE")(sent))
        self.assertFalse(sip_match(status=200)(sent))
        self.assertTrue(sip_match(header="From", pattern="tag=1928")(sent))
        self.assertFalse(sip_match(header="From", pattern="tag=0")(sent))
        self.assertFalse(sip_match(header="Subject")(sent))
        self.assertTrue(sip_match(destination=(B[0], None))(sent))
        self.assertFalse(sip_match(source=B)(sent))

    def test_bad_rule(self) -> None:
        """A probability outside 0 to 1, or a negative delay, is refused."""
        self.assertRaises(ValueError, NetworkRule, loss=1.5)
        self.assertRaises(ValueError, NetworkRule, latency=-1)


class Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost: list[Failure] = []

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        assert reason is not None
        self.lost.append(reason)


class StreamFaultTests(SynchronousTestCase):
    """L{StreamFaults} on a L{FakeReactor}'s connections."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.servers: list[Collect] = []
        factory = Factory.forProtocol(Collect)
        factory.buildProtocol = self.build  # type: ignore[method-assign]
        self.listening = self.reactor.listenTCP(5060, factory, interface="192.0.2.1")
        self.client = Collect()
        client_factory = ClientFactory()
        client_factory.buildProtocol = lambda addr: self.client  # type: ignore[method-assign]
        self.reactor.connectTCP("192.0.2.1", 5060, client_factory)
        self.reactor.flush()
        self.faults = StreamFaults(self.reactor)
        [self.connection] = self.faults.connections()

    def build(self, addr: Any) -> Collect:
        protocol = Collect()
        self.servers.append(protocol)
        return protocol

    def test_connection(self) -> None:
        """The connection is found by its server address."""
        self.assertIs(self.faults.to_server("192.0.2.1", 5060).server, self.servers[0])
        self.assertIs(self.connection.client, self.client)

    def test_reset(self) -> None:
        """A reset loses what is buffered; both sides see ConnectionLost."""
        assert self.client.transport is not None
        self.client.transport.write(b"lost")
        self.faults.reset(self.connection)
        self.reactor.flush()
        self.assertEqual(self.servers[0].data, b"")
        self.assertTrue(self.servers[0].lost[0].check(ConnectionLost))
        self.assertTrue(self.client.lost[0].check(ConnectionLost))
        self.assertEqual(self.faults.connections(), [])

    def test_reset_after(self) -> None:
        """C{reset_after(n)}: the server reads C{n} bytes, then the connection resets."""
        self.faults.reset_after(self.connection, 5)
        assert self.client.transport is not None
        self.client.transport.write(b"abc")
        self.reactor.flush()
        self.assertEqual(self.servers[0].data, b"abc")
        self.client.transport.write(b"defgh")
        self.reactor.flush()
        self.assertEqual(self.servers[0].data, b"abcde")
        self.assertTrue(self.servers[0].lost and self.client.lost)

    def test_slow_reader(self) -> None:
        """A slow reader is handed its bytes at the rate given, on the clock."""
        self.faults.slow_reader(self.connection, bytes_per_second=100, chunk=10)
        assert self.client.transport is not None
        self.client.transport.write(b"x" * 50)
        self.reactor.flush()
        self.assertEqual(self.servers[0].data, b"")
        self.reactor.advance_and_flush(0.1)
        self.assertEqual(len(self.servers[0].data), 10)
        self.assertTrue(self.faults.backlog(self.connection))
        for _ in range(4):
            self.reactor.advance_and_flush(0.1)
        self.assertEqual(self.servers[0].data, b"x" * 50)
        self.assertFalse(self.faults.backlog(self.connection))
        self.client.transport.loseConnection()
        self.reactor.flush()
        self.listening.stopListening()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
