"""
Large messages over UDP in the proxy core (RFC 3261 18.1.1, 18.2.2): a
request over 1300 bytes for a next hop found by DNS goes over TCP to the
same address, and over UDP after all if no connection can be made; a
response goes where its Via says, over UDP whole, never truncated.
"""

from __future__ import annotations

import socket

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import TransportError
from sipedge.message import Message, Request, Response, parse_datagram, serialize
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    PROXY,
    TRUSTED,
    UPSTREAM,
    FakeTransports,
    ProxyHarness,
    RecordingReceiver,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request
from sipedge.transport import Flow, SipDatagramProtocol, wire_size

FAR = ("203.0.113.10", 5060)
FAR_UDP = Flow("UDP", PROXY, 5060, *FAR)
FAR_TCP = Flow("TCP", PROXY, 5060, *FAR)
BIG = "x" * 1400


class _NoTcp(FakeTransports):
    """Fake transports whose TCP connections to C{refused} fail (a reset)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[tuple[str, int]] = set()

    def send(
        self, message: Message, flow: Flow, *, server_name: str | None = None
    ) -> Deferred[Flow] | None:
        result = super().send(message, flow, server_name=server_name)
        if flow.transport == "TCP" and flow.remote in self.refused:
            return fail(TransportError(f"connection refused by {flow}"))
        return result


class LargeRequestTests(ProxyHarness, SynchronousTestCase):
    """RFC 3261 18.1.1 in L{ProxyCore}."""

    def build(self) -> None:
        super().build()
        self.tcp = _NoTcp()
        self.transports = self.tcp
        self.core.transports = self.tcp

    def forward(self, uri: str, body: str) -> None:
        self.locator.add("other.example.net", ("UDP", *FAR))
        self.receive(request("MESSAGE", uri, "Content-Type: text/plain", body=body), TRUSTED)

    def test_large_over_tcp(self) -> None:
        """
        A request over 1300 bytes for a next hop found by DNS (no
        C{transport} in its URI) goes over TCP to the same address, with a
        TCP Via, and its answer is relayed.
        """
        self.forward("sip:bob@other.example.net", BIG)
        [(out, flow)] = [(m, f) for m, f in self.transports.sent if isinstance(m, Request)]
        self.assertEqual(flow, FAR_TCP)
        self.assertEqual(out.top_via.transport, "TCP")
        self.assertGreater(wire_size(out), 1300)
        self.receive(answer(out, 200, to_tag="x"), FAR_TCP)
        self.assertEqual(self.statuses(TRUSTED.remote), [200])

    def test_small_over_udp(self) -> None:
        """A small request to the same next hop stays on UDP."""
        self.forward("sip:bob@other.example.net", "hello")
        out = self.only(FAR, "MESSAGE")
        self.assertEqual(self.transports.sent[-1][1], FAR_UDP)
        self.assertEqual(out.top_via.transport, "UDP")
        self.receive(answer(out, 200, to_tag="x"), FAR_UDP)

    def test_transport_udp_kept(self) -> None:
        """A URI that asks for UDP (C{transport=udp}) keeps UDP, large or not."""
        self.forward("sip:bob@other.example.net;transport=udp", BIG)
        self.assertEqual(self.transports.sent[-1][1], FAR_UDP)
        self.receive(answer(self.only(FAR, "MESSAGE"), 200, to_tag="x"), FAR_UDP)

    def test_fall_back_to_udp(self) -> None:
        """
        If the TCP connection is refused, the request goes over UDP after
        all (18.1.1), on a branch of its own, and its answer is relayed.
        """
        self.tcp.refused.add(FAR)
        self.forward("sip:bob@other.example.net", BIG)
        sent = [(m, f) for m, f in self.transports.sent if isinstance(m, Request)]
        self.assertEqual([f for _, f in sent], [FAR_TCP, FAR_UDP])
        tcp, udp = (m for m, _ in sent)
        self.assertEqual(udp.top_via.transport, "UDP")
        self.assertNotEqual(tcp.top_via.branch, udp.top_via.branch)
        self.receive(answer(udp, 200, to_tag="x"), FAR_UDP)
        self.assertEqual(self.statuses(TRUSTED.remote), [200])

    def test_registered_udp_flow_kept(self) -> None:
        """
        A phone behind NAT, registered over UDP, is reached on its flow
        whatever the size: its NAT binding is a UDP one (a documented
        limit). A phone whose Contact is its source address is found like
        any next hop, and gets a large request over TCP (test_large_over_tcp).
        """
        self.register("sip:bob@192.168.1.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com", body=BIG), ALICE)
        out = self.only(BOB, "MESSAGE")
        self.assertEqual(self.transports.sent[-1][1], BOB_UDP)
        self.receive(answer(out, 200), BOB_UDP)


class LargeResponseTests(ProxyHarness, SynchronousTestCase):
    """RFC 3261 18.2.2: a large response goes back whole, where the Via says."""

    def test_relayed_whole(self) -> None:
        """
        A 200 with a 3000-byte body from downstream goes upstream over UDP
        to the caller's Via address, with its whole body.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        out = self.only(BOB, "MESSAGE")
        body = "y" * 3000
        small = answer(out, 200, ("Content-Type", "text/plain"))
        big = Response(small.status, small.reason, small.headers, body.encode())
        self.receive(big, BOB_UDP)
        [(response, flow)] = [(m, f) for m, f in self.transports.sent if f.remote == UPSTREAM]
        self.assertEqual(flow.transport, "UDP")
        self.assertEqual(response.body, body.encode())


class _SocketTransport:
    """A UDP socket as the transport of a L{SipDatagramProtocol}."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)


class LargeDatagramTests(SynchronousTestCase):
    """A large response over a real loopback UDP socket arrives whole."""

    def test_loopback(self) -> None:
        """
        A 20 kB response written by L{SipDatagramProtocol} arrives as one
        datagram of the full size (IP fragments it; nothing truncates it).
        """
        sockets = []
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sock.close)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            sockets.append(sock)
        ours, peer = sockets
        protocol = SipDatagramProtocol(RecordingReceiver(), local_host="127.0.0.1")
        protocol.transport = _SocketTransport(ours)
        response = parse_datagram(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\n"
            b"CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
        )
        assert isinstance(response, Response)
        response = Response(response.status, response.reason, response.headers, b"z" * 20000)
        flow = Flow("UDP", "127.0.0.1", ours.getsockname()[1], *peer.getsockname())
        protocol.send_message(response, flow)
        self.assertEqual(peer.recv(65535), serialize(response))
