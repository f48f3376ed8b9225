# -*- test-case-name: sipedge.test.test_testing -*-
"""
Tests for L{sipedge.testing}: the in-memory datagram network and reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    CannotListenError,
    ConnectionRefusedError,
    InvalidAddressError,
    MessageLengthError,
    UserError,
)
from twisted.internet.interfaces import IReactorUDP
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.interfaces import IMessageReceiver
from sipedge.testing import (
    Datagram,
    FakeDatagramNetwork,
    FakeReactor,
    RecordingReceiver,
    make_certificates,
)


class Recorder(DatagramProtocol):
    """Keeps every datagram; echoes if asked to."""

    def __init__(self, echo: bool = False) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.echo = echo

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))
        if self.echo:
            assert self.transport is not None
            self.transport.write(data, addr)


class FakeDatagramNetworkTests(SynchronousTestCase):
    """L{FakeDatagramNetwork}."""

    def setUp(self) -> None:
        self.network = FakeDatagramNetwork()
        self.a = Recorder()
        self.b = Recorder(echo=True)
        self.pa = self.network.bind("10.0.0.1", 5060, self.a)
        self.pb = self.network.bind("10.0.0.2", 5060, self.b)

    def test_bind_starts_protocol(self) -> None:
        """bind makes the port the protocol's transport, with its address."""
        self.assertIs(self.a.transport, self.pa)
        self.assertEqual((self.pa.getHost().host, self.pa.getHost().port), ("10.0.0.1", 5060))

    def test_queued_until_flush(self) -> None:
        """Writes are queued; flush delivers them and what their delivery sends."""
        self.pa.write(b"hello", ("10.0.0.2", 5060))
        self.assertEqual(self.b.got, [])
        self.assertEqual(self.network.flush(), 2)
        self.assertEqual(self.b.got, [(b"hello", ("10.0.0.1", 5060))])
        self.assertEqual(self.a.got, [(b"hello", ("10.0.0.2", 5060))])
        self.assertEqual(
            self.network.sent,
            [
                Datagram(b"hello", ("10.0.0.1", 5060), ("10.0.0.2", 5060)),
                Datagram(b"hello", ("10.0.0.2", 5060), ("10.0.0.1", 5060)),
            ],
        )

    def test_drop_hook(self) -> None:
        """The drop hook loses exactly the datagrams it picks, by number."""
        self.network.drop = lambda n, data, src, dst: n == 1
        self.b.echo = False
        for i in range(3):
            self.pa.write(b"%d" % i, ("10.0.0.2", 5060))
        self.network.flush()
        self.assertEqual([d for d, _ in self.b.got], [b"0", b"2"])
        self.assertEqual([d.data for d in self.network.dropped], [b"1"])

    def test_reorder_hook(self) -> None:
        """The reorder hook decides the delivery order of each batch."""
        self.network.reorder = lambda batch: list(reversed(batch))
        self.b.echo = False
        for i in range(3):
            self.pa.write(b"%d" % i, ("10.0.0.2", 5060))
        self.network.flush()
        self.assertEqual([d for d, _ in self.b.got], [b"2", b"1", b"0"])

    def test_undeliverable(self) -> None:
        """A datagram to an address nobody is bound to is kept aside."""
        self.pa.write(b"x", ("10.0.0.9", 5060))
        self.assertEqual(self.network.flush(), 0)
        self.assertEqual(len(self.network.undeliverable), 1)

    def test_wildcard(self) -> None:
        """A port bound to the wildcard gets datagrams for any address of its family."""
        wild = Recorder()
        port = self.network.bind("", 6000, wild)
        self.assertEqual(port.host, "0.0.0.0")
        self.pa.write(b"x", ("10.0.0.77", 6000))
        port.write(b"y", ("10.0.0.1", 5060))
        self.network.flush()
        self.assertEqual(wild.got, [(b"x", ("10.0.0.1", 5060))])
        self.assertEqual(self.a.got, [(b"y", ("127.0.0.1", 6000))])

    def test_truncated_to_max_packet_size(self) -> None:
        """The receiver reads at most its max_packet_size, like recvfrom."""
        small = Recorder()
        self.network.bind("10.0.0.3", 5060, small, max_packet_size=8192)
        self.pa.write(b"x" * 20000, ("10.0.0.3", 5060))
        self.network.flush()
        self.assertEqual(len(small.got[0][0]), 8192)

    def test_socket_errors(self) -> None:
        """Host names, the other family and oversized datagrams raise as sockets do."""
        self.assertRaises(InvalidAddressError, self.pa.write, b"x", ("example.test", 5060))
        self.assertRaises(InvalidAddressError, self.pa.write, b"x", ("2001:db8::1", 5060))
        self.assertRaises(MessageLengthError, self.pa.write, b"x" * 65508, ("10.0.0.2", 5060))
        self.assertRaises(CannotListenError, self.network.bind, "10.0.0.1", 5060, Recorder())

    def test_port_zero_and_stop(self) -> None:
        """Port 0 picks a free port; stopListening unbinds and stops the protocol."""
        proto = Recorder()
        port = self.network.bind("10.0.0.1", 0, proto)
        self.assertNotEqual(port.port, 0)
        self.successResultOf(port.stopListening())
        self.assertIsNone(proto.transport)
        self.assertIsNone(self.network.port_at("10.0.0.1", port.port))

    def test_ipv6(self) -> None:
        """IPv6 ports talk to IPv6 ports."""
        a, b = Recorder(), Recorder()
        pa = self.network.bind("2001:db8::1", 5060, a)
        self.network.bind("2001:db8::2", 5060, b)
        pa.write(b"x", ("2001:db8::2", 5060))
        self.network.flush()
        self.assertEqual(b.got, [(b"x", ("2001:db8::1", 5060))])
        self.assertEqual(pa.getHost().host, "2001:db8::1")


class _Client(Protocol):
    def __init__(self) -> None:
        self.got = b""
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"ping")

    def dataReceived(self, data: bytes) -> None:
        self.got += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason


class _Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class _Factory(ClientFactory):
    def __init__(self) -> None:
        self.client = _Client()
        self.failed: Failure | None = None

    def buildProtocol(self, addr: Any) -> _Client:
        self.addr = addr
        return self.client

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed = reason


class FakeReactorTests(SynchronousTestCase):
    """L{FakeReactor}: UDP on its network, TCP through iosim pumps."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()

    def test_udp(self) -> None:
        """It provides IReactorUDP; listenUDP binds on its network."""
        self.assertTrue(verifyObject(IReactorUDP, self.reactor))
        proto = Recorder()
        port = self.reactor.listenUDP(0, proto, interface="10.0.0.1", maxPacketSize=65535)
        self.assertIs(self.reactor.network.port_at("10.0.0.1", port.port), port)
        self.assertEqual(port.max_packet_size, 65535)

    def test_tcp_connect(self) -> None:
        """connectTCP to a listener connects on flush, with real addresses both ways."""
        servers: list[Protocol] = []

        def build() -> Protocol:
            servers.append(_Echo())
            return servers[-1]

        port = self.reactor.listenTCP(5060, Factory.forProtocol(build), interface="10.0.0.2")
        self.assertEqual(port.getHost().port, 5060)
        factory = _Factory()
        self.reactor.connectTCP("10.0.0.2", 5060, factory, bindAddress=("10.0.0.1", 0))
        self.assertEqual(factory.client.got, b"")
        self.reactor.flush()
        self.assertEqual(factory.client.got, b"ping")
        [server] = servers
        client_transport = factory.client.transport
        assert server.transport is not None and client_transport is not None
        self.assertEqual(server.transport.getPeer(), client_transport.getHost())
        client_host = client_transport.getHost()
        assert isinstance(client_host, IPv4Address)
        self.assertEqual(client_host.host, "10.0.0.1")
        client_transport.loseConnection()
        self.reactor.flush()
        self.assertIsNotNone(factory.client.lost)
        self.assertEqual(self.reactor.pumps, [])

    def test_tcp_refused(self) -> None:
        """connectTCP where nothing listens fails with ConnectionRefusedError."""
        factory = _Factory()
        self.reactor.connectTCP("10.0.0.2", 5060, factory)
        self.reactor.flush()
        assert factory.failed is not None
        factory.failed.trap(ConnectionRefusedError)

    def test_tcp_listener_refuses(self) -> None:
        """A listener whose factory builds no protocol closes the connection at once."""
        class Refusing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        self.reactor.listenTCP(5060, Refusing(), interface="10.0.0.2")
        factory = _Factory()
        self.reactor.connectTCP("10.0.0.2", 5060, factory)
        self.reactor.flush()
        self.assertIsNotNone(factory.client.lost)

    def test_stop_connecting(self) -> None:
        """stopConnecting fails the attempt with UserError at once."""
        factory = _Factory()
        connector = self.reactor.connectTCP("10.0.0.2", 5060, factory)
        connector.stopConnecting()
        assert factory.failed is not None
        factory.failed.trap(UserError)
        self.reactor.flush()


class HelpersTests(SynchronousTestCase):
    """L{RecordingReceiver} and L{make_certificates}."""

    def test_recording_receiver(self) -> None:
        """It provides IMessageReceiver and keeps what it gets, calling the hooks."""
        seen: list[object] = []
        receiver = RecordingReceiver(on_message=lambda m, f: seen.append(m),
                                     on_malformed=lambda d, f, e: seen.append(d))
        self.assertTrue(verifyObject(IMessageReceiver, receiver))
        receiver.message_received("m", "f")
        receiver.malformed_message(b"d", "f", "e")
        self.assertEqual(receiver.messages, [("m", "f")])
        self.assertEqual(receiver.malformed, [(b"d", "f", "e")])
        self.assertEqual(seen, ["m", b"d"])

    def test_make_certificates(self) -> None:
        """The certificate chains to the CA and names what was asked."""
        from cryptography import x509

        certs = make_certificates("sip.example.test", ip_addresses=["192.0.2.1"])
        ca = x509.load_pem_x509_certificate(certs.ca_pem)
        cert = x509.load_pem_x509_certificate(certs.cert_pem)
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["sip.example.test"])
        self.assertEqual([str(a) for a in san.get_values_for_type(x509.IPAddress)],
                         ["192.0.2.1"])
        certs.server_options().getContext()
        self.assertEqual(certs.trust_root().getSubject().commonName, b"sipedge test CA")
