# -*- test-case-name: sipedge.test.test_transport_integration -*-
"""
The few transport tests that need real sockets: each binds loopback port 0,
sends one message each way, and closes everything in a cleanup. IPv6 runs
if C{::1} can be bound, and skips otherwise.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipedge.message import Request, Response
from sipedge.testing import (
    RecordingReceiver,
    make_certificates,
)
from sipedge.testing import echo_response as make_response
from sipedge.testing import options_request as make_request
from sipedge.transport import ClientTLSContexts, Flow, TLSSettings, TransportManager


def _can_bind(family: int, host: str) -> bool:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True


class _Waiter:
    """A receiver whose next message can be waited for."""

    def __init__(self) -> None:
        self.receiver = RecordingReceiver(on_message=self._got)
        self._waiting: list[Deferred[tuple[Any, Flow]]] = []

    def _got(self, message: Any, flow: Flow) -> None:
        if self._waiting:
            self._waiting.pop(0).callback((message, flow))

    def next(self) -> Deferred[tuple[Any, Flow]]:
        d: Deferred[tuple[Any, Flow]] = Deferred()
        self._waiting.append(d)
        return d


if TYPE_CHECKING:
    _TestCase = TestCase
else:
    _TestCase = object


class _LoopbackMixin(_TestCase):
    """One message each way over UDP, TCP and TLS on a loopback address."""

    host = "127.0.0.1"
    family = socket.AF_INET
    timeout = 15

    def manager(self, **kwargs: Any) -> tuple[TransportManager, _Waiter]:
        from twisted.internet import reactor

        waiter = _Waiter()
        manager = TransportManager(waiter.receiver, reactor, **kwargs)
        self.addCleanup(manager.close)
        return manager, waiter

    async def round_trip(
        self, a: TransportManager, a_wait: _Waiter, b: TransportManager, b_wait: _Waiter,
        flow: Flow, request: Request, **send: Any,
    ) -> tuple[Request, Flow, Response, Flow, Flow]:
        got_request = b_wait.next()
        sent = a.send(request, flow, **send)  # None: a UDP datagram, written
        real = flow if sent is None else await sent
        request_in, flow_in = await got_request
        got_response = a_wait.next()
        answered = b.send(make_response(request_in), flow_in)
        if answered is not None:
            await answered
        response_in, response_flow = await got_response
        return request_in, flow_in, response_in, response_flow, real

    async def test_udp_big_datagram(self) -> None:
        """A 20,000-byte request over real UDP arrives whole; the response comes back."""
        a, a_wait = self.manager()
        b, b_wait = self.manager()
        a.listen_udp(self.host, 0)
        port = b.listen_udp(self.host, 0).local_port
        assert port is not None
        flow = a.flow_to("UDP", self.host, port)
        request = make_request(f"SIP/2.0/UDP {_hostport(self.host)};rport;branch=z9hG4bK1",
                               body=b"x" * 20000)
        request_in, flow_in, response_in, response_flow, real = await self.round_trip(
            a, a_wait, b, b_wait, flow, request
        )
        self.assertEqual(real, flow)
        self.assertEqual(request_in.body, request.body)
        self.assertEqual(flow_in.remote, flow.local)
        self.assertEqual(request_in.top_via.rport, flow.local_port)
        self.assertEqual((response_in.status, response_flow), (200, flow))

    async def test_tcp(self) -> None:
        """
        One request and its response over real TCP: the response arrives
        with the connection's real flow (the ephemeral port).
        """
        a, a_wait = self.manager()
        b, b_wait = self.manager()
        a.listen_tcp(self.host, 0)
        port = b.listen_tcp(self.host, 0).local_port
        flow = a.flow_to("TCP", self.host, port)
        _, flow_in, response_in, response_flow, real = await self.round_trip(
            a, a_wait, b, b_wait, flow, make_request()
        )
        self.assertEqual(flow_in.remote, real.local)
        self.assertNotEqual(real.local_port, flow.local_port)
        self.assertEqual((response_in.status, response_flow), (200, real))
        self.assertEqual(len(a.connections), 1)

    async def test_tls(self) -> None:
        """One request and its response over real TLS, the server verified by name."""
        certs = make_certificates("sip.example.test")
        ca, _, _ = certs.write(self.mktemp())
        a, a_wait = self.manager(
            tls_client_context_factory=ClientTLSContexts(TLSSettings(trust_roots=ca))
        )
        b, b_wait = self.manager()
        port = b.listen_tls(self.host, 0, certs.server_options()).local_port
        flow = a.flow_to("TLS", self.host, port)
        _, flow_in, response_in, response_flow, real = await self.round_trip(
            a, a_wait, b, b_wait, flow, make_request(), server_name="sip.example.test"
        )
        self.assertEqual((flow_in.transport, real.transport), ("TLS", "TLS"))
        self.assertEqual((response_in.status, response_flow), (200, real))


def _hostport(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class IPv4LoopbackTests(_LoopbackMixin, TestCase):
    """Over 127.0.0.1."""


class IPv6LoopbackTests(_LoopbackMixin, TestCase):
    """Over ::1."""

    host = "::1"
    family = socket.AF_INET6
    if not _can_bind(socket.AF_INET6, "::1"):
        skip = "IPv6 loopback (::1) is not available"


class ReceiveBufferTests(SynchronousTestCase):
    """Tests for C{_enlarge_receive_buffer}."""

    def test_enlarged(self) -> None:
        """
        If a listening UDP port has a real socket, its receive buffer is
        raised towards L{UDP_RECEIVE_BUFFER} (all of it when we may force
        it, as root; up to the system's cap otherwise); a fake port is left
        alone.
        """
        import os
        import socket

        from sipedge.transport._sockets import UDP_RECEIVE_BUFFER, _enlarge_receive_buffer

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

            class Port:
                def getHandle(self) -> socket.socket:
                    return sock

            _enlarge_receive_buffer(Port())
            after = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.assertGreaterEqual(after, before)
        if os.geteuid() == 0:
            self.assertGreaterEqual(after, UDP_RECEIVE_BUFFER)
        _enlarge_receive_buffer(object())  # no getHandle: nothing happens
