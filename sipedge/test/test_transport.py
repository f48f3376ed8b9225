# -*- test-case-name: sipedge.test.test_transport -*-
"""
Tests for L{sipedge.transport}, all in memory: Via stamping, the UDP and
stream protocols, the transport manager over L{sipedge.testing.FakeReactor}
(connection reuse, limits, TLS handshakes with certificates made here), and
the TLS settings.
"""

from __future__ import annotations

import os
import socket
import stat
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Protocol
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.error import ConfigError, MessageParseError, TransportError
from sipedge.interfaces import IMessageReceiver, ISipTransport, ITransportManager
from sipedge.message import Limits, Request, Response, parse_datagram, serialize
from sipedge.testing import (
    FakeReactor,
    RecordingReceiver,
    capture_log,
    make_certificates,
)
from sipedge.testing import echo_response as make_response
from sipedge.testing import options_bytes as request_bytes
from sipedge.testing import options_request as make_request
from sipedge.transport import (
    DEFAULT_IDLE_TIMEOUT,
    MAX_DATAGRAM_SIZE,
    ClientTLSContexts,
    Flow,
    SipDatagramProtocol,
    SipStreamProtocol,
    TLSSettings,
    TransportManager,
    ensure_self_signed,
    server_context_factory,
    stamp_via,
)
from sipedge.transport._stream import CLOSE_GRACE
from sipedge.transport._tls import CERTIFICATE_FILE, KEY_FILE


class StampViaTests(SynchronousTestCase):
    """L{stamp_via}: RFC 3261 18.2.1 received, RFC 3581 rport."""

    flow = Flow("UDP", "198.51.100.1", 5060, "192.0.2.5", 41000)

    def test_host_name_gets_received(self) -> None:
        """A sent-by host name is not the source address: received is added."""
        stamped = stamp_via(make_request(), self.flow)
        self.assertEqual(stamped.top_via.received, "192.0.2.5")
        self.assertIsNone(stamped.top_via.rport)
        self.assertEqual(
            stamped.headers.get("Via"),
            "SIP/2.0/UDP client.example.test:5060;branch=z9hG4bK776asdhds;received=192.0.2.5",
        )

    def test_same_address_unchanged(self) -> None:
        """If sent-by is the source address and there is no rport, nothing changes."""
        request = make_request("SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK1")
        self.assertIs(stamp_via(request, self.flow), request)

    def test_other_address_gets_received(self) -> None:
        """A different sent-by address gets received (a NAT rewrote the source)."""
        request = make_request("SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK1")
        self.assertEqual(stamp_via(request, self.flow).top_via.received, "192.0.2.5")

    def test_rport_filled_in(self) -> None:
        """RFC 3581 4: a bare rport gets the source port, and received is added anyway."""
        request = make_request("SIP/2.0/UDP 192.0.2.5:5060;rport;branch=z9hG4bK1")
        stamped = stamp_via(request, self.flow)
        self.assertEqual(stamped.top_via.rport, 41000)
        self.assertEqual(stamped.top_via.received, "192.0.2.5")
        self.assertEqual(
            str(stamped.top_via),
            "SIP/2.0/UDP 192.0.2.5:5060;rport=41000;branch=z9hG4bK1;received=192.0.2.5",
        )

    def test_rport_value_overwritten(self) -> None:
        """An rport value that came from the wire is replaced by the real port."""
        request = make_request("SIP/2.0/UDP client.example.test;rport=9;branch=z9hG4bK1")
        self.assertEqual(stamp_via(request, self.flow).top_via.rport, 41000)

    def test_peer_received_overwritten(self) -> None:
        """A received the peer wrote itself is replaced by the real source."""
        request = make_request("SIP/2.0/UDP 192.0.2.5;received=203.0.113.9;branch=z9hG4bK1")
        self.assertEqual(stamp_via(request, self.flow).top_via.received, "192.0.2.5")

    def test_ipv6_received_without_brackets(self) -> None:
        """An IPv6 source goes into received without brackets (RFC 3261 ABNF)."""
        flow = Flow("UDP", "2001:db8::1", 5060, "2001:db8::5", 41000)
        request = make_request("SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK1")
        stamped = stamp_via(request, flow)
        self.assertEqual(stamped.top_via.received, "2001:db8::5")
        self.assertIn(";received=2001:db8::5", stamped.headers.get("Via"))

    def test_ipv6_same_address_other_spelling(self) -> None:
        """An IPv6 sent-by equal to the source, spelled differently, is the same address."""
        flow = Flow("UDP", "2001:db8::1", 5060, "2001:db8::5", 41000)
        request = make_request("SIP/2.0/UDP [2001:DB8:0:0::5]:5060;branch=z9hG4bK1")
        self.assertIs(stamp_via(request, flow), request)

    def test_ipv6_rport(self) -> None:
        """rport and received over IPv6."""
        flow = Flow("UDP", "2001:db8::1", 5060, "2001:db8::5", 41000)
        request = make_request("SIP/2.0/UDP [2001:db8::5];rport;branch=z9hG4bK1")
        stamped = stamp_via(request, flow)
        self.assertEqual((stamped.top_via.rport, stamped.top_via.received), (41000, "2001:db8::5"))

    def test_only_top_value_changes(self) -> None:
        """
        Only the first element of the first Via field changes; the rest of
        that field stays byte for byte, and so do later fields.
        """
        raw = (
            request_bytes(
                "SIP/2.0/UDP client.example.test;rport;branch=z9hG4bK1 ,SIP/2.0/TCP"
                '  proxy.example.test ;branch=z9hG4bK2;x="a,b"',
                extra=("v: SIP/2.0/UDP third.example.test;branch=z9hG4bK3",),
            )
        )
        request = parse_datagram(raw)
        assert isinstance(request, Request)
        stamped = stamp_via(request, self.flow)
        self.assertEqual(
            stamped.headers.get_all("Via"),
            (
                "SIP/2.0/UDP client.example.test;rport=41000;branch=z9hG4bK1;received=192.0.2.5"
                ' ,SIP/2.0/TCP  proxy.example.test ;branch=z9hG4bK2;x="a,b"',
                "SIP/2.0/UDP third.example.test;branch=z9hG4bK3",
            ),
        )
        self.assertEqual([name for name, _ in stamped.headers if name in ("Via", "v")],
                         ["Via", "v"])
        self.assertEqual(len(stamped.vias), 3)

    def test_missing_via(self) -> None:
        """A request without Via cannot be stamped."""
        self.assertRaises(MessageParseError, stamp_via, make_request(via=""), self.flow)


def _stream(sent: Deferred[Flow] | None) -> Deferred[Flow]:
    """The Deferred of a TCP/TLS send (only a UDP send returns C{None})."""
    assert sent is not None
    return sent


def _bind_udp(
    reactor: FakeReactor, host: str, port: int, receiver: Any = None, **kwargs: Any
) -> tuple[SipDatagramProtocol, RecordingReceiver]:
    receiver = receiver or RecordingReceiver()
    protocol = SipDatagramProtocol(receiver, **kwargs)
    reactor.listenUDP(port, protocol, interface=host, maxPacketSize=MAX_DATAGRAM_SIZE)
    return protocol, receiver


class DatagramProtocolTests(SynchronousTestCase):
    """L{SipDatagramProtocol} over the in-memory datagram network."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.network = self.reactor.network
        self.proxy, self.received = _bind_udp(self.reactor, "198.51.100.1", 5060)
        self.phone = self.network.bind("192.0.2.5", 41000, DatagramProtocol())
        self.events = capture_log(self)

    def test_interface(self) -> None:
        """It provides L{ISipTransport}: UDP, unreliable, with its bound address."""
        self.assertTrue(verifyObject(ISipTransport, self.proxy))
        self.assertEqual(
            (self.proxy.name, self.proxy.reliable, self.proxy.local_host, self.proxy.local_port),
            ("UDP", False, "198.51.100.1", 5060),
        )

    def test_request_delivered_and_stamped(self) -> None:
        """A request is delivered with its flow, the top Via stamped."""
        self.phone.write(request_bytes(), ("198.51.100.1", 5060))
        self.network.flush()
        [(message, flow)] = self.received.messages
        self.assertEqual(flow, Flow("UDP", "198.51.100.1", 5060, "192.0.2.5", 41000))
        self.assertEqual(message, stamp_via(make_request(), flow))
        self.assertEqual(message.top_via.received, "192.0.2.5")
        self.assertEqual(self.proxy.received, 1)

    def test_one_flow_per_source(self) -> None:
        """
        Datagrams from one source share one L{Flow} value; past
        C{flow_cache_size} sources the socket starts its cache again, and
        every flow is still the right one.
        """
        for _ in range(2):
            self.phone.write(request_bytes(), ("198.51.100.1", 5060))
        self.network.flush()
        [(_, first), (_, second)] = self.received.messages
        self.assertIs(first, second)
        self.proxy.flow_cache_size = 3
        for port in range(42000, 42005):
            self.network.bind("192.0.2.5", port, DatagramProtocol()).write(
                request_bytes(), ("198.51.100.1", 5060)
            )
        self.network.flush()
        flows = [flow for _, flow in self.received.messages[2:]]
        self.assertEqual([f.remote_port for f in flows], list(range(42000, 42005)))
        self.assertLessEqual(len(self.proxy._flows), 3)

    def test_keepalive_and_stun_told_apart_from_sip(self) -> None:
        """
        Only a datagram that does not start like SIP (A-Z) is taken for a
        keep-alive or STUN: an empty one counts as a keep-alive, a lower-case
        method is malformed SIP.
        """
        self.phone.write(b"", ("198.51.100.1", 5060))
        self.phone.write(b"options sip:x SIP/2.0\r\n\r\n", ("198.51.100.1", 5060))
        self.network.flush()
        self.assertEqual(self.proxy.keepalives, 1)
        self.assertEqual(self.proxy.malformed, 1)

    def test_response_delivered_as_is(self) -> None:
        """A response is delivered unchanged."""
        response = make_response(make_request())
        self.phone.write(serialize(response), ("198.51.100.1", 5060))
        self.network.flush()
        self.assertEqual(self.received.messages[0][0], response)

    def test_keepalive_counted_and_dropped(self) -> None:
        """A datagram of CRLFs is a keep-alive: counted, not delivered, not answered."""
        self.phone.write(b"\r\n\r\n", ("198.51.100.1", 5060))
        self.phone.write(b"\r\n", ("198.51.100.1", 5060))
        self.network.flush()
        self.assertEqual(self.received.messages, [])
        self.assertEqual(self.received.malformed, [])
        self.assertEqual(self.proxy.keepalives, 2)
        self.assertEqual(len(self.network.sent), 2)

    def test_malformed(self) -> None:
        """A datagram that does not parse goes to malformed_message, with the cause logged."""
        data = b"OPTIONS sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n"
        self.phone.write(data, ("198.51.100.1", 5060))
        self.network.flush()
        self.assertEqual(self.received.messages, [])
        [(got, flow, error)] = self.received.malformed
        self.assertEqual((got, flow.remote), (data, ("192.0.2.5", 41000)))
        self.assertIsInstance(error, MessageParseError)
        self.assertEqual(self.proxy.malformed, 1)
        [event] = [e for e in self.events if "reason" in e and e.get("size") == len(data)]
        self.assertEqual(event["reason"], error.reason)

    def test_bad_top_via_is_malformed_with_request(self) -> None:
        """A request whose Via cannot be stamped is malformed, and the error holds it."""
        data = request_bytes(via="")
        self.phone.write(data, ("198.51.100.1", 5060))
        self.network.flush()
        [(_, _, error)] = self.received.malformed
        self.assertIsInstance(error.message, Request)
        self.assertEqual(error.status_hint, 400)

    def test_malformed_request_stamped(self) -> None:
        """
        The stand-in request of a datagram that does not parse (RFC 4475
        lwsruri: whitespace in the Request-URI, its Via naming another
        address) is stamped with the source, so that its 400 goes back to
        the source, not to the address its Via names.
        """
        data = (Path(__file__).parent / "data" / "rfc4475" / "lwsruri.dat").read_bytes()
        self.phone.write(data, ("198.51.100.1", 5060))
        self.network.flush()
        [(_, _, error)] = self.received.malformed
        assert isinstance(error.message, Request)
        self.assertEqual(error.status_hint, 400)
        self.assertEqual(error.message.top_via.received, "192.0.2.5")
        self.assertEqual(error.message.top_via.rport, 41000)

    def test_big_datagram(self) -> None:
        """A 20,000-byte datagram arrives whole."""
        self.phone.write(request_bytes(body=b"x" * 20000), ("198.51.100.1", 5060))
        self.network.flush()
        self.assertEqual(len(self.received.messages[0][0].body), 20000)

    def test_send_message(self) -> None:
        """send_message writes the serialized message to the flow's remote address."""
        response = make_response(make_request())
        flow = self.proxy.flow_to("192.0.2.5", 41000)
        self.proxy.send_message(response, flow)
        self.assertEqual(
            [(d.data, d.source, d.destination) for d in self.network.pending],
            [(serialize(response), ("198.51.100.1", 5060), ("192.0.2.5", 41000))],
        )

    def test_send_too_big(self) -> None:
        """A message too big for a datagram is a TransportError."""
        request = attrs.evolve(make_request(), body=b"x" * 70000)
        flow = self.proxy.flow_to("192.0.2.5", 41000)
        self.assertRaises(TransportError, self.proxy.send_message, request, flow)

    def test_send_wrong_family(self) -> None:
        """An IPv4 socket cannot send to an IPv6 address: TransportError."""
        flow = self.proxy.flow_to("2001:db8::5", 41000)
        self.assertRaises(TransportError, self.proxy.send_message, make_request(), flow)

    def test_send_after_stop(self) -> None:
        """Sending on a stopped socket is a TransportError."""
        self.proxy.transport.stopListening()
        flow = self.proxy.flow_to("192.0.2.5", 41000)
        self.assertRaises(TransportError, self.proxy.send_message, make_request(), flow)

    def test_receiver_error_logged(self) -> None:
        """An exception in the receiver is logged, and the next datagram still arrives."""
        calls: list[object] = []

        def explode(message: object, flow: object) -> None:
            calls.append(message)
            if len(calls) == 1:
                raise RuntimeError("boom")

        _bind_udp(
            self.reactor, "198.51.100.2", 5060, RecordingReceiver(on_message=explode)
        )
        self.phone.write(request_bytes(), ("198.51.100.2", 5060))
        self.phone.write(request_bytes(), ("198.51.100.2", 5060))
        self.network.flush()
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class StreamProtocolTests(SynchronousTestCase):
    """L{SipStreamProtocol} over a C{StringTransport}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.receiver = RecordingReceiver()
        self.protocol, self.transport = self.connect()

    def connect(
        self, name: str = "TCP", receiver: Any = None, **kwargs: Any
    ) -> tuple[SipStreamProtocol, StringTransport]:
        protocol = SipStreamProtocol(
            receiver or self.receiver, clock=self.clock, transport_name=name, **kwargs
        )
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 5060),
            peerAddress=IPv4Address("TCP", "192.0.2.5", 40000),
        )
        protocol.makeConnection(transport)
        self.addCleanup(self.lose, protocol)
        return protocol, transport

    def lose(self, protocol: SipStreamProtocol) -> None:
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_interface(self) -> None:
        """It provides L{ISipTransport} and L{IHandshakeListener}."""
        self.assertTrue(verifyObject(ISipTransport, self.protocol))
        self.assertTrue(verifyObject(IHandshakeListener, self.protocol))
        self.assertEqual(
            (self.protocol.name, self.protocol.reliable, self.protocol.flow),
            ("TCP", True, Flow("TCP", "198.51.100.1", 5060, "192.0.2.5", 40000)),
        )

    def test_framing(self) -> None:
        """Two messages in one read are both delivered, stamped, in order."""
        response = make_response(make_request())
        self.protocol.dataReceived(request_bytes() + serialize(response))
        flow = self.protocol.flow
        assert flow is not None
        self.assertEqual(
            self.receiver.messages,
            [(stamp_via(make_request(), flow), flow), (response, flow)],
        )

    def test_byte_at_a_time(self) -> None:
        """A message fed one byte at a time is delivered once, whole."""
        data = request_bytes(body=b"v=0\r\n")
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])
        [(message, _)] = self.receiver.messages
        self.assertEqual(message.body, b"v=0\r\n")

    @given(st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
    def test_framing_invariance(self, cuts: list[int]) -> None:
        """However a stream is split into reads, the same messages come out."""
        data = (
            b"\r\n\r\n" + request_bytes(body=b"v=0\r\n") + b"\r\n"
            + serialize(make_response(make_request()))
        )
        receiver = RecordingReceiver()
        protocol = SipStreamProtocol(receiver, clock=self.clock)
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 5060),
            peerAddress=IPv4Address("TCP", "192.0.2.5", 40000),
        )
        protocol.makeConnection(transport)
        points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
        for start, end in pairwise(points):
            protocol.dataReceived(data[start:end])
        self.lose(protocol)
        assert protocol.flow is not None
        self.assertEqual(
            [m for m, _ in receiver.messages],
            [stamp_via(make_request(body=b"v=0\r\n"), protocol.flow),
             make_response(make_request())],
        )
        self.assertEqual((transport.value(), protocol.pings, protocol.pongs), (b"\r\n", 1, 1))

    def test_ping_pong(self) -> None:
        """RFC 5626 3.5.1: CRLFCRLF is answered with CRLF; a lone CRLF is not answered."""
        self.protocol.dataReceived(b"\r\n\r\n")
        self.assertEqual(self.transport.value(), b"\r\n")
        self.transport.clear()
        self.protocol.dataReceived(b"\r\n" + request_bytes())
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual((self.protocol.pings, self.protocol.pongs), (1, 1))
        self.assertEqual(len(self.receiver.messages), 1)

    def test_parse_error_with_request(self) -> None:
        """
        A broken stream whose request head parsed goes to malformed_message
        (so a 400 can be sent back), and then the connection closes, after
        the answer is written.
        """

        def answer(data: bytes, flow: Flow, error: MessageParseError) -> None:
            self.protocol.send_message(Response(error.status_hint, "Bad Request"), flow)

        self.receiver = RecordingReceiver(on_malformed=answer)
        self.protocol, self.transport = self.connect(receiver=self.receiver)
        data = request_bytes().replace(b"Content-Length: 0\r\n", b"")
        self.protocol.dataReceived(data)
        [(got, flow, error)] = self.receiver.malformed
        self.assertEqual((got, flow), (data, self.protocol.flow))
        self.assertIsInstance(error.message, Request)
        self.assertTrue(self.transport.value().startswith(b"SIP/2.0 400 Bad Request\r\n"))
        self.assertTrue(self.transport.disconnecting)
        self.protocol.dataReceived(request_bytes())
        self.assertEqual(self.receiver.messages, [])

    def test_parse_error_garbage(self) -> None:
        """Garbage with no request head closes the connection and tells no one."""
        self.protocol.dataReceived(b"HELLO WORLD\r\n\r\n")
        self.assertEqual(self.receiver.malformed, [])
        self.assertTrue(self.transport.disconnecting)

    def test_message_before_fault_delivered(self) -> None:
        """A message that came before the fault in the same read is still delivered."""
        self.protocol.dataReceived(request_bytes() + b"GARBAGE\r\n\r\n")
        self.assertEqual(len(self.receiver.messages), 1)
        self.assertTrue(self.transport.disconnecting)

    def test_header_section_limit(self) -> None:
        """More than max_message_size bytes without an end of headers: closed."""
        protocol, transport = self.connect(limits=Limits(max_message_size=1024))
        protocol.dataReceived(b"OPTIONS sip:x SIP/2.0\r\nSubject: " + b"a" * 2000)
        self.assertTrue(transport.disconnecting)

    def test_body_limit(self) -> None:
        """A body over the limit: the request goes to malformed_message with 413."""
        protocol, transport = self.connect(limits=Limits(max_body_size=100))
        protocol.dataReceived(request_bytes(body=b"x" * 200))
        [(_, _, error)] = self.receiver.malformed
        self.assertEqual(error.status_hint, 413)
        self.assertTrue(transport.disconnecting)

    def test_bad_via_does_not_close(self) -> None:
        """A request whose Via cannot be stamped is malformed, but the stream goes on."""
        self.protocol.dataReceived(request_bytes(via="") + request_bytes())
        self.assertEqual(len(self.receiver.malformed), 1)
        self.assertEqual(len(self.receiver.messages), 1)
        self.assertFalse(self.transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """The connection closes after idle_timeout seconds without a received byte."""
        self.clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        self.protocol.dataReceived(b"\r\n")
        self.clock.advance(DEFAULT_IDLE_TIMEOUT - 1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_idle_timeout_configurable(self) -> None:
        """The idle timeout can be set, or turned off with None."""
        _, transport = self.connect(idle_timeout=5.0)
        self.clock.advance(5)
        self.assertTrue(transport.disconnecting)
        _, transport = self.connect(idle_timeout=None)
        self.clock.advance(10 * DEFAULT_IDLE_TIMEOUT)
        self.assertFalse(transport.disconnecting)

    def test_close_grace(self) -> None:
        """A connection that does not finish closing is aborted after CLOSE_GRACE."""
        self.protocol.close()
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(CLOSE_GRACE)
        self.assertTrue(self.transport.disconnected)

    def test_close_fires_when_lost(self) -> None:
        """close() fires once the connection is lost."""
        d = self.protocol.close()
        self.assertNoResult(d)
        self.lose(self.protocol)
        self.successResultOf(d)
        self.successResultOf(self.protocol.close())

    def test_tls_waits_for_handshake(self) -> None:
        """On TLS, messages are queued until the handshake completes."""
        protocol, transport = self.connect("TLS")
        d = protocol.send(make_request())
        self.assertEqual(transport.value(), b"")
        self.assertNoResult(d)
        protocol.handshakeCompleted()
        self.assertEqual(transport.value(), serialize(make_request()))
        self.assertEqual(self.successResultOf(d), protocol.flow)

    def test_queued_lost(self) -> None:
        """Queued messages fail with TransportError if the connection is lost first."""
        protocol, _transport = self.connect("TLS")
        d = protocol.send(make_request())
        self.lose(protocol)
        self.failureResultOf(d, TransportError)

    def test_send_after_close(self) -> None:
        """Sending on a closed connection is a TransportError."""
        self.lose(self.protocol)
        self.assertRaises(TransportError, self.protocol.send_message, make_request())
        self.failureResultOf(self.protocol.send(make_request()), TransportError)

    def test_receiver_error_logged(self) -> None:
        """An exception in the receiver is logged, and the connection stays up."""

        def explode(message: object, flow: object) -> None:
            raise RuntimeError("boom")

        protocol, transport = self.connect(receiver=RecordingReceiver(on_message=explode))
        protocol.dataReceived(request_bytes())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(transport.disconnecting)


class _RawClient(Protocol):
    """A client that writes C{data} once connected and keeps what it gets."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data
        self.got = b""
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        if self.data:
            assert self.transport is not None
            self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.got += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason or Failure(ConnectionDone())


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class ManagerTestMixin(_TestCase):
    """Managers on one L{FakeReactor}, checked for leaked timers and closed after each test."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.addCleanup(lambda: self.assertEqual(self.reactor.getDelayedCalls(), []))
        self.events = capture_log(self)

    def manager(self, receiver: Any = None, **kwargs: Any) -> tuple[TransportManager, Any]:
        receiver = receiver or RecordingReceiver()
        manager = TransportManager(receiver, self.reactor, **kwargs)
        self.addCleanup(self.close, manager)
        return manager, receiver

    def close(self, manager: TransportManager) -> None:
        d = manager.close()
        self.reactor.flush()
        self.successResultOf(d)

    def raw_client(self, host: str, port: int, data: bytes = b"", source: str = "192.0.2.9"):
        client = _RawClient(data)
        self.reactor.connectTCP(
            host, port, ClientFactory.forProtocol(lambda: client), bindAddress=(source, 0)
        )
        return client


class ManagerTests(ManagerTestMixin, SynchronousTestCase):
    """L{TransportManager} in memory: UDP, TCP, connection reuse, limits."""

    def test_interface(self) -> None:
        """It provides L{ITransportManager}; its listeners provide L{ISipTransport}."""
        manager, _ = self.manager()
        self.assertTrue(verifyObject(ITransportManager, manager))
        udp = manager.listen_udp("198.51.100.1", 5060)
        tcp = manager.listen_tcp("198.51.100.1", 5060)
        self.assertTrue(verifyObject(ISipTransport, udp))
        self.assertTrue(verifyObject(ISipTransport, tcp))
        self.assertEqual(manager.transports, (udp, tcp))
        self.assertEqual((tcp.name, tcp.reliable, tcp.local_port), ("TCP", True, 5060))

    def test_udp_max_packet_size(self) -> None:
        """listen_udp asks for 65,535-byte reads (Twisted's default is 8192)."""
        manager, _ = self.manager()
        manager.listen_udp("198.51.100.1", 5060)
        port = self.reactor.network.port_at("198.51.100.1", 5060)
        assert port is not None
        self.assertEqual(port.max_packet_size, 65535)

    def test_udp_round_trip(self) -> None:
        """
        A request and its response over UDP, each delivered with its flow;
        a UDP send writes at once and returns no Deferred.
        """
        a, a_rx = self.manager()
        b, b_rx = self.manager()
        a.listen_udp("10.0.0.1", 5060)
        b.listen_udp("10.0.0.2", 0)
        port = b.local_hostport("UDP", socket.AF_INET)[1]
        flow = a.flow_to("UDP", "10.0.0.2", port)
        self.assertEqual(flow, Flow("UDP", "10.0.0.1", 5060, "10.0.0.2", port))
        request = make_request("SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bK1", body=b"x" * 20000)
        self.assertIsNone(a.send(request, flow))
        self.reactor.flush()
        [(got, in_flow)] = b_rx.messages
        self.assertEqual(in_flow, Flow("UDP", "10.0.0.2", port, "10.0.0.1", 5060))
        self.assertEqual((got.top_via.rport, len(got.body)), (5060, 20000))
        b.send(make_response(got), in_flow)
        self.reactor.flush()
        self.assertEqual(a_rx.messages[0][1], flow)

    def test_udp_ipv6(self) -> None:
        """IPv6 listeners: flow_to picks the listener of the remote's family."""
        manager, _ = self.manager()
        manager.listen_udp("198.51.100.1", 5060)
        manager.listen_udp("2001:db8::1", 5060)
        self.assertEqual(
            manager.flow_to("UDP", "[2001:DB8::5]", 5062),
            Flow("UDP", "2001:db8::1", 5060, "2001:db8::5", 5062),
        )
        self.assertEqual(manager.local_hostport("udp", socket.AF_INET6), ("2001:db8::1", 5060))
        self.assertEqual(manager.local_hostport("UDP", socket.AF_INET), ("198.51.100.1", 5060))

    def test_local_hostport_follows_listeners(self) -> None:
        """
        L{TransportManager.local_hostport} answers from the listeners there
        are now: it remembers its answers, but not past a new listener or
        the close, and never a missing one.
        """
        manager, _ = self.manager()
        manager.listen_udp("198.51.100.1", 5060)
        self.assertEqual(manager.local_hostport("UDP", socket.AF_INET), ("198.51.100.1", 5060))
        self.assertRaises(TransportError, manager.local_hostport, "TCP", socket.AF_INET)
        manager.listen_tcp("198.51.100.1", 5070)
        self.assertEqual(manager.local_hostport("TCP", socket.AF_INET), ("198.51.100.1", 5070))
        self.assertEqual(manager.local_hostport("UDP", socket.AF_INET), ("198.51.100.1", 5060))
        manager.close()
        self.assertRaises(TransportError, manager.local_hostport, "UDP", socket.AF_INET)

    def test_udp_no_listener(self) -> None:
        """Sending on a UDP flow whose local address has no socket is a TransportError."""
        manager, _ = self.manager()
        manager.listen_udp("198.51.100.1", 5060)
        flow = Flow("UDP", "198.51.100.7", 5060, "192.0.2.5", 5060)
        self.assertRaises(TransportError, manager.send, make_request(), flow)

    def test_udp_wildcard_listener(self) -> None:
        """A flow from a specific address is sent from a wildcard socket on that port."""
        manager, _ = self.manager()
        manager.listen_udp("0.0.0.0", 5060)
        flow = Flow("UDP", "198.51.100.1", 5060, "192.0.2.5", 5060)
        self.assertIsNone(manager.send(make_request(), flow))
        self.assertEqual(self.reactor.network.pending[0].destination, ("192.0.2.5", 5060))

    def test_errors(self) -> None:
        """Unknown transports, host names and missing listeners are TransportErrors."""
        manager, _ = self.manager()
        self.assertRaises(TransportError, manager.flow_to, "UDP", "192.0.2.5", 5060)
        self.assertRaises(TransportError, manager.flow_to, "TCP", "proxy.example.test", 5060)
        self.assertRaises(TransportError, manager.local_hostport, "TLS", socket.AF_INET)
        flow = Flow("SCTP", "198.51.100.1", 5060, "192.0.2.5", 5060)
        self.assertRaises(TransportError, manager.send, make_request(), flow)
        listener = manager.listen_tcp("198.51.100.1", 5060)
        tcp = Flow("TCP", "198.51.100.1", 5060, "192.0.2.5", 5060)
        self.assertRaises(TransportError, listener.send_message, make_request(), tcp)

    def test_flow_to_without_listener(self) -> None:
        """With no TCP listener, flow_to gives a wildcard local address (connect out only)."""
        manager, _ = self.manager()
        self.assertEqual(
            manager.flow_to("TCP", "2001:db8::5", 5060),
            Flow("TCP", "::", 0, "2001:db8::5", 5060),
        )

    def test_tcp_outgoing_flow_and_responses(self) -> None:
        """
        Sending on a flow with no connection opens one from the flow's local
        address; the Deferred fires with the real flow (ephemeral port);
        the peer sees that flow; the response comes back with the real flow;
        later sends on either flow reuse the connection.
        """
        a, a_rx = self.manager()
        b, b_rx = self.manager()
        a.listen_tcp("10.0.0.1", 5060)
        b.listen_tcp("10.0.0.2", 5060)
        flow = a.flow_to("TCP", "10.0.0.2", 5060)
        self.assertEqual(flow, Flow("TCP", "10.0.0.1", 5060, "10.0.0.2", 5060))
        request = make_request("SIP/2.0/TCP client.example.test;branch=z9hG4bK1")
        d = a.send(request, flow)
        self.assertNoResult(d)
        self.assertEqual(self.reactor.tcpClients[0][4], ("10.0.0.1", 0))
        self.reactor.flush()
        real = self.successResultOf(_stream(d))
        self.assertEqual((real.transport, real.local_host, real.remote), ("TCP", "10.0.0.1",
                                                                            ("10.0.0.2", 5060)))
        self.assertNotEqual(real.local_port, 5060)
        [(got, in_flow)] = b_rx.messages
        self.assertEqual(in_flow, Flow("TCP", "10.0.0.2", 5060, "10.0.0.1", real.local_port))
        self.assertEqual(got.top_via.received, "10.0.0.1")
        response = make_response(got)
        self.assertEqual(self.successResultOf(_stream(b.send(response, in_flow))), in_flow)
        self.reactor.flush()
        self.assertEqual(a_rx.messages, [(response, real)])
        self.assertEqual(a.flow_to("TCP", "10.0.0.2", 5060), real)
        self.assertIs(a.connection_for(flow), a.connection_for(real))
        self.assertEqual(self.successResultOf(_stream(a.send(request, flow))), real)
        self.assertEqual(self.successResultOf(_stream(a.send(request, real))), real)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.flush()
        self.assertEqual(len(b_rx.messages), 3)

    def test_queued_until_connected(self) -> None:
        """Messages sent while connecting are queued on the one new connection, in order."""
        a, _ = self.manager()
        b, b_rx = self.manager()
        b.listen_tcp("10.0.0.2", 5060)
        flow = a.flow_to("TCP", "10.0.0.2", 5060)
        first = make_request("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1")
        second = make_request("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK2")
        d1, d2 = a.send(first, flow), a.send(second, flow)
        self.assertEqual(len(a.connections), 1)
        self.reactor.flush()
        self.assertEqual(self.successResultOf(_stream(d1)), self.successResultOf(_stream(d2)))
        self.assertEqual([m.top_via.branch for m, _ in b_rx.messages],
                         ["z9hG4bK1", "z9hG4bK2"])

    def test_connect_refused(self) -> None:
        """A connection that cannot be made fails the Deferred and leaves no entry."""
        a, _ = self.manager()
        flow = a.flow_to("TCP", "10.0.0.2", 5060)
        d = a.send(make_request(), flow)
        self.reactor.flush()
        self.failureResultOf(d, TransportError)
        self.assertEqual(a.connections, ())
        self.assertIsNone(a.connection_for(flow))

    def test_connection_lost_removes_entries(self) -> None:
        """When a connection closes, every flow it was known by is forgotten."""
        a, _ = self.manager()
        b, b_rx = self.manager()
        b.listen_tcp("10.0.0.2", 5060)
        flow = a.flow_to("TCP", "10.0.0.2", 5060)
        d = a.send(make_request(), flow)
        self.reactor.flush()
        real = self.successResultOf(_stream(d))
        in_flow = b_rx.messages[0][1]
        connection = b.connection_for(in_flow)
        assert connection is not None
        closed = connection.close()
        self.reactor.flush()
        self.successResultOf(closed)
        self.assertEqual((a.connections, b.connections), ((), ()))
        self.assertIsNone(a.connection_for(flow))
        self.assertIsNone(a.connection_for(real))
        self.assertEqual(a.flow_to("TCP", "10.0.0.2", 5060), flow)
        self.assertRaises(TransportError, b.transports[0].send_message, make_request(), in_flow)

    def test_incoming_stamped(self) -> None:
        """Requests over an incoming TCP connection are stamped with its source."""
        b, b_rx = self.manager()
        b.listen_tcp("10.0.0.2", 5060)
        self.raw_client("10.0.0.2", 5060, request_bytes("SIP/2.0/TCP x.test;rport;branch=z9hG4bK1"))
        self.reactor.flush()
        [(got, flow)] = b_rx.messages
        self.assertEqual(flow.remote_host, "192.0.2.9")
        self.assertEqual((got.top_via.received, got.top_via.rport),
                         ("192.0.2.9", flow.remote_port))

    def test_malformed_answered_then_closed(self) -> None:
        """
        A broken stream through the manager: the receiver's 400 goes out on
        the connection, then it closes and is forgotten.
        """
        def answer(data: bytes, flow: Flow, error: MessageParseError) -> None:
            assert isinstance(error.message, Request)
            b.send(make_response(error.message, error.status_hint, "Bad Request"), flow)

        b, _ = self.manager(RecordingReceiver(on_malformed=answer))
        b.listen_tcp("10.0.0.2", 5060)
        client = self.raw_client(
            "10.0.0.2", 5060, request_bytes().replace(b"Content-Length: 0\r\n", b"")
        )
        self.reactor.flush()
        self.assertTrue(client.got.startswith(b"SIP/2.0 400 Bad Request\r\n"))
        self.assertIsNotNone(client.lost)
        self.assertEqual(b.connections, ())

    def test_per_source_limit(self) -> None:
        """Incoming connections beyond the per-source limit are closed at once and logged."""
        b, _ = self.manager(max_connections_per_source=2)
        b.listen_tcp("10.0.0.2", 5060)
        clients = [self.raw_client("10.0.0.2", 5060) for _ in range(3)]
        other = self.raw_client("10.0.0.2", 5060, source="192.0.2.10")
        self.reactor.flush()
        self.assertEqual([c.lost is None for c in clients], [True, True, False])
        self.assertIsNone(other.lost)
        self.assertEqual(len(b.connections), 3)
        [event] = [e for e in self.events if e.get("limit") == 2]
        self.assertEqual((event["source"], event["count"]), ("192.0.2.9", 2))
        # Once one closes, the source may connect again.
        clients[0].transport.loseConnection()
        self.reactor.flush()
        again = self.raw_client("10.0.0.2", 5060)
        self.reactor.flush()
        self.assertIsNone(again.lost)

    def test_stream_lost_observers(self) -> None:
        """
        When a connection is gone, each C{on_stream_lost} observer is told
        its flow (the NAT keepalives drop the bindings reached over it); one
        that raises is logged and the next still told.
        """
        b, _ = self.manager()
        b.listen_tcp("10.0.0.2", 5060)
        told: list[Flow] = []

        def broken(flow: Flow) -> None:
            raise ZeroDivisionError()

        b.on_stream_lost += [broken, told.append]
        client = self.raw_client("10.0.0.2", 5060)
        self.reactor.flush()
        [connection] = b.connections
        flow = connection.flow
        self.assertEqual(told, [])
        client.transport.loseConnection()
        self.reactor.flush()
        self.assertEqual(told, [flow])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_total_limit(self) -> None:
        """Beyond max_connections, incoming ones are refused and outgoing ones raise."""
        b, _ = self.manager(max_connections=1)
        b.listen_tcp("10.0.0.2", 5060)
        first = self.raw_client("10.0.0.2", 5060)
        second = self.raw_client("10.0.0.2", 5060, source="192.0.2.10")
        self.reactor.flush()
        self.assertEqual((first.lost, second.lost is not None), (None, True))
        flow = b.flow_to("TCP", "10.0.0.3", 5060)
        self.assertRaises(TransportError, b.send, make_request(), flow)

    def test_idle_connections_closed(self) -> None:
        """Both ends close an idle connection, and forget it."""
        a, _ = self.manager(idle_timeout=30.0)
        b, _ = self.manager(idle_timeout=60.0)
        b.listen_tcp("10.0.0.2", 5060)
        a.send(make_request(), a.flow_to("TCP", "10.0.0.2", 5060))
        self.reactor.flush()
        self.reactor.advance_and_flush(29)
        self.assertEqual((len(a.connections), len(b.connections)), (1, 1))
        self.reactor.advance_and_flush(1)
        self.assertEqual((a.connections, b.connections), ((), ()))

    def test_close(self) -> None:
        """
        close() stops the listeners, closes the connections, fails messages
        still waiting for a connection, and refuses to send afterwards.
        """
        a, _ = self.manager()
        b, _ = self.manager()
        a.listen_udp("10.0.0.1", 5060)
        b.listen_tcp("10.0.0.2", 5060)
        self.successResultOf(succeed_later(self, a))
        pending = a.send(make_request(), a.flow_to("TCP", "10.0.0.3", 5060))
        closed = a.close()
        self.failureResultOf(pending, TransportError)
        self.reactor.flush()
        self.successResultOf(closed)
        self.assertEqual((a.connections, b.connections, a.transports), ((), (), ()))
        self.assertIsNone(self.reactor.network.port_at("10.0.0.1", 5060))
        self.assertRaises(TransportError, a.send, make_request(),
                          Flow("UDP", "10.0.0.1", 5060, "10.0.0.2", 5060))


def succeed_later(case: ManagerTests, manager: TransportManager) -> Any:
    """Connect C{manager} to 10.0.0.2:5060 and return the fired Deferred."""
    d = manager.send(make_request(), manager.flow_to("TCP", "10.0.0.2", 5060))
    case.reactor.flush()
    return d


class TLSManagerTests(ManagerTestMixin, SynchronousTestCase):
    """TLS through the manager, handshaking in memory with certificates made here."""

    def setUp(self) -> None:
        super().setUp()
        self.certs = make_certificates("sip.example.test", ip_addresses=["10.0.0.2"])
        self.ca, self.cert, self.key = self.certs.write(self.mktemp())

    def client_manager(self, **settings: Any) -> tuple[TransportManager, RecordingReceiver]:
        contexts = ClientTLSContexts(TLSSettings(trust_roots=self.ca, **settings))
        return self.manager(tls_client_context_factory=contexts)

    def server_manager(self, context: Any = None) -> tuple[TransportManager, RecordingReceiver]:
        b, b_rx = self.manager()
        b.listen_tls("10.0.0.2", 5061, context or self.certs.server_options())
        return b, b_rx

    def test_round_trip(self) -> None:
        """A request and its response over TLS, the server verified by name."""
        a, a_rx = self.client_manager()
        b, b_rx = self.server_manager()
        flow = a.flow_to("TLS", "10.0.0.2", 5061)
        d = a.send(make_request(), flow, server_name="sip.example.test")
        self.reactor.flush()
        real = self.successResultOf(_stream(d))
        [(got, in_flow)] = b_rx.messages
        self.assertEqual((real.transport, in_flow.transport), ("TLS", "TLS"))
        self.assertEqual(in_flow.remote_port, real.local_port)
        self.assertEqual(b.transports[0].name, "TLS")
        b.send(make_response(got), in_flow)
        self.reactor.flush()
        self.assertEqual(a_rx.messages[0][1], real)
        self.assertIsNone(b.peer_certificate(in_flow))
        peer = a.peer_certificate(real)
        assert peer is not None
        self.assertEqual(
            peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "sip.example.test"
        )

    def test_tls_counted(self) -> None:
        """
        TLS connections are counted as they are made, by side; those lost
        before their handshake completed (an untrusted certificate) count
        as handshake failures too, and complete ones do not.
        """
        a, _ = self.client_manager()
        b, _ = self.server_manager()
        self.successResultOf(succeed_tls(self, a))
        other = make_certificates("sip.example.test")
        c, _ = self.client_manager()
        d, _ = self.manager()
        d.listen_tls("10.0.0.3", 5061, other.server_options())
        failed = c.send(make_request(), c.flow_to("TLS", "10.0.0.3", 5061),
                        server_name="sip.example.test")
        self.reactor.flush()
        self.failureResultOf(failed, TransportError)
        self.assertEqual((dict(a.tls_connections), dict(a.tls_handshake_failures)),
                         ({"outbound": 1}, {}))
        self.assertEqual((dict(b.tls_connections), dict(b.tls_handshake_failures)),
                         ({"inbound": 1}, {}))
        self.assertEqual((dict(c.tls_connections), dict(c.tls_handshake_failures)),
                         ({"outbound": 1}, {"outbound": 1}))
        self.assertEqual((dict(d.tls_connections), dict(d.tls_handshake_failures)),
                         ({"inbound": 1}, {"inbound": 1}))

    def test_verified_by_ip_address(self) -> None:
        """Without a server name the certificate must name the IP address."""
        a, _ = self.client_manager()
        _b, b_rx = self.server_manager()
        d = a.send(make_request(), a.flow_to("TLS", "10.0.0.2", 5061))
        self.reactor.flush()
        self.successResultOf(_stream(d))
        self.assertEqual(len(b_rx.messages), 1)

    def test_wrong_name_refused(self) -> None:
        """
        A server whose certificate does not match the expected name is
        refused: the send fails, nothing reaches the server, and the
        connection is forgotten on both sides.
        """
        a, _ = self.client_manager()
        b, b_rx = self.server_manager()
        d = a.send(make_request(), a.flow_to("TLS", "10.0.0.2", 5061),
                   server_name="other.example.test")
        self.reactor.flush()
        failure = self.failureResultOf(d, TransportError)
        self.assertIn("10.0.0.2", str(failure.value))
        self.assertEqual(b_rx.messages, [])
        self.assertEqual((a.connections, b.connections), ((), ()))

    def test_untrusted_refused(self) -> None:
        """A server certificate from a CA we do not trust is refused."""
        other = make_certificates("sip.example.test")
        a, _ = self.client_manager()
        _b, b_rx = self.server_manager(other.server_options())
        d = a.send(make_request(), a.flow_to("TLS", "10.0.0.2", 5061),
                   server_name="sip.example.test")
        self.reactor.flush()
        self.failureResultOf(d, TransportError)
        self.assertEqual(b_rx.messages, [])

    def test_insecure_client(self) -> None:
        """insecure_client connects to anything (labs only), and says so in the log."""
        other = make_certificates("elsewhere.test")
        a, _ = self.client_manager(insecure_client=True)
        _b, b_rx = self.server_manager(other.server_options())
        self.successResultOf(succeed_tls(self, a))
        self.assertEqual(len(b_rx.messages), 1)
        self.assertTrue(any("insecure" in e.get("log_format", "") for e in self.events))

    def test_client_certificate_required(self) -> None:
        """
        With client certificates required, a client without one gets no
        message through; one with a certificate from the CA does, and the
        server sees it.
        """
        context = server_context_factory(
            TLSSettings(certificate=self.cert, private_key=self.key,
                        client_certificates="require", client_ca=self.ca),
            clock=self.reactor,
        )
        b, b_rx = self.server_manager(context)
        a, _ = self.client_manager()
        succeed_tls(self, a)
        self.assertEqual(b_rx.messages, [])
        self.assertEqual((a.connections, b.connections), ((), ()))
        self.flushLoggedErrors()
        c, _ = self.client_manager(client_certificate=self.cert, client_private_key=self.key)
        self.successResultOf(succeed_tls(self, c))
        [(_, in_flow)] = b_rx.messages
        peer = b.peer_certificate(in_flow)
        assert peer is not None
        self.assertEqual(
            peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "sip.example.test"
        )

    def test_client_certificate_requested(self) -> None:
        """With client certificates requested, a client without one still gets through."""
        context = server_context_factory(
            TLSSettings(certificate=self.cert, private_key=self.key,
                        client_certificates="request", client_ca=self.ca),
            clock=self.reactor,
        )
        b, b_rx = self.server_manager(context)
        a, _ = self.client_manager()
        self.successResultOf(succeed_tls(self, a))
        [(_, in_flow)] = b_rx.messages
        self.assertIsNone(b.peer_certificate(in_flow))

    def test_old_tls_refused(self) -> None:
        """The server refuses a client that offers nothing newer than TLS 1.1."""
        _b, b_rx = self.server_manager(
            server_context_factory(TLSSettings(certificate=self.cert, private_key=self.key),
                                   clock=self.reactor)
        )
        old = CertificateOptions(
            insecurelyLowerMinimumTo=TLSVersion.TLSv1_0,
            lowerMaximumSecurityTo=TLSVersion.TLSv1_1,
        )
        a, _ = self.manager(tls_client_context_factory=lambda name: old)
        d = a.send(make_request(), a.flow_to("TLS", "10.0.0.2", 5061))
        self.reactor.flush()
        self.failureResultOf(d, TransportError)
        self.assertEqual(b_rx.messages, [])


def succeed_tls(case: TLSManagerTests, manager: TransportManager) -> Any:
    """Send a request from C{manager} to the TLS server at 10.0.0.2:5061; flush."""
    d = manager.send(make_request(), manager.flow_to("TLS", "10.0.0.2", 5061),
                     server_name="sip.example.test")
    case.reactor.flush()
    return d


class TLSSettingsTests(SynchronousTestCase):
    """L{server_context_factory}, L{ensure_self_signed} and L{ClientTLSContexts}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_750_000_000)
        self.state = self.mktemp()
        self.events = capture_log(self)

    def test_self_signed_generated(self) -> None:
        """
        Without a configured certificate one is made in the state directory:
        CN the first domain, SAN the domains and addresses, key mode 0600;
        and a warning says it is self-signed.
        """
        settings = TLSSettings(state_dir=self.state, domains=("example.test", "sip.example.test"),
                               addresses=("192.0.2.1", "0.0.0.0", "2001:db8::1"))
        context = server_context_factory(settings, clock=self.clock)
        self.assertIsInstance(context, CertificateOptions)
        cert_path = os.path.join(self.state, CERTIFICATE_FILE)
        key_path = os.path.join(self.state, KEY_FILE)
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)
        with open(cert_path, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(
            certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            "example.test",
        )
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName),
                         ["example.test", "sip.example.test"])
        self.assertEqual([str(a) for a in san.get_values_for_type(x509.IPAddress)],
                         ["192.0.2.1", "2001:db8::1"])
        self.assertTrue(any("self-signed" in e.get("log_format", "") and
                            e.get("log_level") == LogLevel.warn for e in self.events))

    def test_self_signed_reused(self) -> None:
        """The next start reuses the certificate; an expired one is replaced."""
        first = ensure_self_signed(self.state, "example.test", ["example.test"], clock=self.clock,
                                   key_type="ec")
        with open(first[0], "rb") as f:
            before = f.read()
        ensure_self_signed(self.state, "example.test", ["example.test"], clock=self.clock,
                           key_type="ec")
        with open(first[0], "rb") as f:
            self.assertEqual(f.read(), before)
        self.clock.advance(86400 * 900)
        ensure_self_signed(self.state, "example.test", ["example.test"], clock=self.clock,
                           key_type="ec")
        with open(first[0], "rb") as f:
            self.assertNotEqual(f.read(), before)

    def test_self_signed_hostname(self) -> None:
        """With no domain, the certificate is for the host name."""
        server_context_factory(TLSSettings(state_dir=self.state), clock=self.clock,
                               hostname="edge1.example.test")
        with open(os.path.join(self.state, CERTIFICATE_FILE), "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(
            certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            "edge1.example.test",
        )

    def test_configured_certificate(self) -> None:
        """A configured certificate and key are loaded."""
        certs = make_certificates("sip.example.test")
        _, cert, key = certs.write(self.mktemp())
        context = server_context_factory(TLSSettings(certificate=cert, private_key=key),
                                         clock=self.clock)
        self.assertIsInstance(context, CertificateOptions)
        self.assertFalse(os.path.exists(self.state))

    def test_config_errors(self) -> None:
        """Bad TLS configuration is a ConfigError that names the setting."""
        certs = make_certificates("sip.example.test")
        _ca, cert, key = certs.write(self.mktemp())
        other = make_certificates("other.test").write(self.mktemp())
        cases = [
            (TLSSettings(), "state_dir"),
            (TLSSettings(certificate=cert), "private_key"),
            (TLSSettings(certificate=cert, private_key=other[2]), "private_key"),
            (TLSSettings(certificate=cert, private_key=key, client_certificates="require"),
             "client_ca"),
            (TLSSettings(certificate=cert + ".missing", private_key=key), "certificate"),
            (TLSSettings(certificate=key, private_key=key), "certificate"),
        ]
        for settings, key_name in cases:
            error = self.assertRaises(ConfigError, server_context_factory, settings,
                                      clock=self.clock)
            self.assertIn(key_name, str(error))
        self.assertRaises(ValueError, TLSSettings, client_certificates="maybe")
        self.assertRaises(ConfigError, ClientTLSContexts, TLSSettings(client_certificate=cert))

    def test_client_contexts_cached(self) -> None:
        """ClientTLSContexts gives one creator per server name."""
        ca, _, _ = make_certificates("sip.example.test").write(self.mktemp())
        contexts = ClientTLSContexts(TLSSettings(trust_roots=ca))
        self.assertIs(contexts("a.test"), contexts("a.test"))
        self.assertIsNot(contexts("a.test"), contexts("b.test"))


class RecordingReceiverTests(SynchronousTestCase):
    """The receiver used above is a real L{IMessageReceiver}."""

    def test_interface(self) -> None:
        """L{RecordingReceiver} provides L{IMessageReceiver}."""
        self.assertTrue(verifyObject(IMessageReceiver, RecordingReceiver()))
