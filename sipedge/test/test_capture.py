# -*- test-case-name: sipedge.test.test_capture -*-
"""
Tests for L{sipedge.capture}: the HEPv3 codec, the sender, the tap, the
C{[hep]} section and the transport manager's tap hook.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipedge.capture import (
    HepCapture,
    HepError,
    HepPacket,
    HepSender,
    decode_hep3,
    encode_hep3,
)
from sipedge.capture._config import HepConfig, HepDestination
from sipedge.config import parse_config
from sipedge.error import ConfigError
from sipedge.interfaces import IMessageReceiver, IMessageTap
from sipedge.message import parse_datagram
from sipedge.testing import FakeReactor
from sipedge.transport import Flow, TransportManager

_OPTIONS = (
    b"OPTIONS sip:bob@example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK-1;rport\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=1\r\n"
    b"To: <sip:bob@example.test>\r\nCall-ID: c1@192.0.2.9\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)

_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_port = st.integers(0, 65535)


@st.composite
def _packets(draw: Any) -> HepPacket:
    hosts = draw(st.one_of(st.tuples(_ipv4, _ipv4), st.tuples(_ipv6, _ipv6)))
    return HepPacket(
        transport=draw(st.sampled_from(["UDP", "TCP"])),
        source=(hosts[0], draw(_port)),
        destination=(hosts[1], draw(_port)),
        time=draw(st.integers(0, 2**32 - 1)) + draw(st.integers(0, 999_999)) / 1_000_000,
        node_id=draw(st.integers(0, 2**32 - 1)),
        payload=draw(st.binary(max_size=2000)),
        password=draw(st.binary(max_size=40)),
        correlation_id=draw(st.binary(max_size=80)),
    )


class CodecTests(SynchronousTestCase):
    """L{encode_hep3} and L{decode_hep3}."""

    @given(_packets())
    def test_round_trip(self, packet: HepPacket) -> None:
        """Decoding an encoded packet gives it back (time to the microsecond)."""
        decoded = decode_hep3(encode_hep3(packet))
        self.assertEqual(decoded.source, packet.source)
        self.assertEqual(decoded.destination, packet.destination)
        self.assertEqual(decoded.payload, packet.payload)
        self.assertEqual(decoded.password, packet.password)
        self.assertEqual(decoded.correlation_id, packet.correlation_id)
        self.assertEqual((decoded.transport, decoded.node_id), (packet.transport, packet.node_id))
        self.assertAlmostEqual(decoded.time, packet.time, delta=2e-6)

    def test_known_bytes(self) -> None:
        """The header and every chunk are laid out as HEPv3 says."""
        data = encode_hep3(HepPacket(
            transport="UDP", source=("192.0.2.1", 5060), destination=("198.51.100.2", 5070),
            time=1_700_000_000.25, node_id=2001, payload=b"SIP",
        ))
        self.assertEqual(data[:4], b"HEP3")
        self.assertEqual(struct.unpack("!H", data[4:6])[0], len(data))
        expected = b"".join([
            b"\x00\x00\x00\x01\x00\x07\x02",  # family: IPv4
            b"\x00\x00\x00\x02\x00\x07\x11",  # protocol: UDP (17)
            b"\x00\x00\x00\x03\x00\x0a\xc0\x00\x02\x01",  # source 192.0.2.1
            b"\x00\x00\x00\x04\x00\x0a\xc6\x33\x64\x02",  # destination 198.51.100.2
            b"\x00\x00\x00\x07\x00\x08\x13\xc4",  # source port 5060
            b"\x00\x00\x00\x08\x00\x08\x13\xce",  # destination port 5070
            b"\x00\x00\x00\x09\x00\x0a" + struct.pack("!I", 1_700_000_000),
            b"\x00\x00\x00\x0a\x00\x0a" + struct.pack("!I", 250_000),
            b"\x00\x00\x00\x0b\x00\x07\x01",  # protocol type: SIP
            b"\x00\x00\x00\x0c\x00\x0a" + struct.pack("!I", 2001),
            b"\x00\x00\x00\x0f\x00\x09SIP",  # payload
        ])
        self.assertEqual(data[6:], expected)

    @given(st.binary(max_size=300))
    def test_decode_total(self, data: bytes) -> None:
        """Any bytes decode to a packet or raise L{HepError}, nothing else."""
        try:
            decode_hep3(data)
        except HepError:
            pass

    def test_decode_errors(self) -> None:
        """Bad magic, a wrong length and a truncated chunk are L{HepError}s."""
        good = encode_hep3(HepPacket(transport="TCP", source=("::1", 1), destination=("::1", 2),
                                     time=0, node_id=1, payload=b"x"))
        for bad in (b"HEP2" + good[4:], good[:-1], good[:6] + b"\x00\x00\x00\x01\x00\x03"):
            self.assertRaises(HepError, decode_hep3, bad)

    def test_encode_errors(self) -> None:
        """Mixed families, a too-large payload and bad ports are L{HepError}s."""
        base: dict[str, Any] = dict(transport="UDP", source=("192.0.2.1", 1),
                                    destination=("192.0.2.2", 2),
                    time=0.0, node_id=1, payload=b"x")
        for change in ({"destination": ("::1", 2)}, {"payload": b"x" * 65535},
                       {"source": ("192.0.2.1", 70000)}, {"source": ("host.example", 1)},
                       {"node_id": 2**32}):
            self.assertRaises(HepError, encode_hep3, HepPacket(**{**base, **change}))


class _Collector(DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[tuple[bytes, Any]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.packets.append((data, addr))


class _Sent:
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def send(self, packet: bytes) -> None:
        self.packets.append(packet)


class SenderTests(SynchronousTestCase):
    """L{HepSender} on the in-memory network."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()

    def test_udp(self) -> None:
        """Over UDP each packet is one datagram to the collector."""
        collector = _Collector()
        self.reactor.listenUDP(9060, collector, interface="192.0.2.50")
        sender = HepSender(self.reactor, "udp", "192.0.2.50", 9060)
        sender.send(b"early")
        self.assertEqual(sender.dropped, 1)
        sender.start()
        sender.send(b"HEP3-one")
        sender.send(b"HEP3-two")
        self.reactor.network.flush()
        self.assertEqual([p for p, _ in collector.packets], [b"HEP3-one", b"HEP3-two"])
        self.assertEqual(sender.sent, 2)
        sender.stop()

    def test_tcp_down_drops(self) -> None:
        """
        Over TCP, packets are dropped (and counted) while the connection is
        not up, never queued; once it is, they are written back to back.
        """
        sender = HepSender(self.reactor, "tcp", "192.0.2.50", 9061)
        sender.start()
        sender.send(b"one")
        self.assertEqual((sender.sent, sender.dropped), (0, 1))
        d = sender.stop()
        self.reactor.advance(1)
        self.reactor.flush()
        self.successResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


@implementer(IMessageReceiver)
class _Receiver:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def message_received(self, message: Any, flow: Flow) -> None:
        self.messages.append(message)

    def malformed_message(self, data: bytes, flow: Flow, error: Any) -> None:
        self.messages.append(data)


class TapTests(SynchronousTestCase):
    """L{HepCapture}, and the transport manager showing it every message."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(1_700_000_000.5)
        self.sent = _Sent()
        self.tap = HepCapture(self.sent, self.reactor, node_id=7,  # type: ignore[arg-type]
                              password="secret")

    def test_interface(self) -> None:
        """L{HepCapture} provides L{IMessageTap}."""
        self.assertTrue(verifyObject(IMessageTap, self.tap))

    def test_directions(self) -> None:
        """
        A received message goes from the flow's remote end to its local end,
        a sent one the other way; TLS is captured as TCP; the Call-ID is the
        correlation id; the node id, password and clock's time are set.
        """
        message = parse_datagram(_OPTIONS)
        flow = Flow("TLS", "198.51.100.1", 5061, "192.0.2.9", 40000)
        self.tap.message_in(message, flow)
        self.tap.message_out(message, flow)
        first, second = (decode_hep3(p) for p in self.sent.packets)
        self.assertEqual((first.source, first.destination),
                         (("192.0.2.9", 40000), ("198.51.100.1", 5061)))
        self.assertEqual((second.source, second.destination),
                         (("198.51.100.1", 5061), ("192.0.2.9", 40000)))
        self.assertEqual(first.transport, "TCP")
        self.assertEqual(first.correlation_id, b"c1@192.0.2.9")
        self.assertEqual((first.node_id, first.password), (7, b"secret"))
        self.assertEqual(first.time, 1_700_000_000.5)
        self.assertEqual(parse_datagram(first.payload).call_id, "c1@192.0.2.9")

    def test_manager_taps(self) -> None:
        """
        The transport manager shows the tap every message it receives
        (malformed bytes too) before its receiver sees it, and every message
        it sends.
        """
        receiver = _Receiver()
        manager = TransportManager(receiver, self.reactor, taps=[self.tap])
        udp = manager.listen_udp("198.51.100.1", 5060)
        udp.datagramReceived(_OPTIONS, ("192.0.2.9", 5062))
        udp.datagramReceived(b"NOT SIP\r\n\r\n", ("192.0.2.9", 5062))
        self.assertEqual(len(receiver.messages), 2)
        manager.send(receiver.messages[0], Flow("UDP", "198.51.100.1", 5060, "192.0.2.9", 5062))
        packets = [decode_hep3(p) for p in self.sent.packets]
        self.assertEqual([p.source for p in packets],
                         [("192.0.2.9", 5062), ("192.0.2.9", 5062), ("198.51.100.1", 5060)])
        self.assertEqual(packets[1].payload, b"NOT SIP\r\n\r\n")
        self.successResultOf(manager.close())


class ConfigTests(SynchronousTestCase):
    """C{[hep]}."""

    def test_default_off(self) -> None:
        """By default nothing is captured."""
        self.assertIsNone(parse_config({}).hep.destination)

    def test_parse(self) -> None:
        """The contract keys parse; IPv6 goes in brackets."""
        config = parse_config({"hep": {"destination": "udp:127.0.0.1:9060", "node_id": 2001,
                                       "password": ""}})
        self.assertEqual(config.hep, HepConfig(HepDestination("udp", "127.0.0.1", 9060), 2001, ""))
        self.assertEqual(
            parse_config({"hep": {"destination": "tcp:[::1]:9061"}}).hep.destination,
            HepDestination("tcp", "::1", 9061),
        )

    def test_errors(self) -> None:
        """Each bad value is an error naming its key."""
        for table, key in (
            ({"destination": "sctp:127.0.0.1:9060"}, "hep.destination"),
            ({"destination": "udp:collector.example:9060"}, "hep.destination"),
            ({"destination": "udp:127.0.0.1:0"}, "hep.destination"),
            ({"destination": "udp:127.0.0.1"}, "hep.destination"),
            ({"node_id": -1}, "hep.node_id"),
            ({"password": 5}, "hep.password"),
            ({"colour": "red"}, "hep.colour"),
        ):
            error = self.assertRaises(ConfigError, parse_config, {"hep": table})
            self.assertIn(key, str(error))


class _BrokenTap:
    def message_in(self, message: Any, flow: Flow) -> None:
        raise RuntimeError("broken tap")

    message_out = message_in

    def malformed_in(self, data: bytes, flow: Flow) -> None:
        raise RuntimeError("broken tap")


class BrokenTapTests(SynchronousTestCase):
    """A tap that raises never costs a message."""

    def test_broken_tap(self) -> None:
        """
        If a tap raises, the failure is logged and the message still reaches
        the receiver (in) and the wire (out).
        """
        reactor = FakeReactor()
        receiver = _Receiver()
        manager = TransportManager(receiver, reactor, taps=[_BrokenTap()])  # type: ignore[list-item]
        udp = manager.listen_udp("198.51.100.1", 5060)
        udp.datagramReceived(_OPTIONS, ("192.0.2.9", 5062))
        udp.datagramReceived(b"NOT SIP\r\n\r\n", ("192.0.2.9", 5062))
        self.assertEqual(len(receiver.messages), 2)
        peer = _Collector()
        reactor.network.bind("192.0.2.9", 5062, peer)
        manager.send(receiver.messages[0], Flow("UDP", "198.51.100.1", 5060, "192.0.2.9", 5062))
        reactor.network.flush()
        self.assertEqual(len(peer.packets), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)
        self.successResultOf(manager.close())
