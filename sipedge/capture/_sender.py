# -*- test-case-name: sipedge.test.test_capture -*-
"""
Sending HEP packets to a collector without ever holding up the proxy.

Over UDP a packet is one datagram, written at once (an unreachable
collector costs an ICMP error, counted). Over TCP the packets are written
back to back on one connection that is re-made with back-off when it
drops; while it is down, or while the collector reads more slowly than we
capture (the connection's buffer is full and Twisted pauses us as a
producer), packets are dropped and counted instead of queued.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["HepSender"]


class _Datagrams(DatagramProtocol):
    def __init__(self, sender: HepSender) -> None:
        self._sender = sender

    def connectionRefused(self) -> None:  # ICMP port unreachable
        self._sender.errors += 1


@implementer(IPushProducer)
class _Stream(Protocol):
    """The collector connection; a streaming producer so a full buffer pauses us."""

    def __init__(self, sender: HepSender) -> None:
        self._sender = sender
        self.paused = False

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.registerProducer(self, True)
        self._sender._connected(self)

    def connectionLost(self, reason: Any = None) -> None:
        self._sender._lost(self)

    def dataReceived(self, data: bytes) -> None:
        pass  # collectors send nothing back

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True


class HepSender:
    """
    Sends encoded HEP packets to one collector.

    @ivar sent: packets handed to the socket.
    @ivar dropped: packets dropped because the TCP connection was down or
        its buffer full.
    @ivar errors: send failures (socket errors, ICMP unreachable).
    """

    _log = Logger(namespace="sipedge.capture")

    def __init__(self, reactor: Any, transport: str, host: str, port: int) -> None:
        """
        @param reactor: provides C{IReactorUDP}, C{IReactorTCP} and
            C{IReactorTime}.
        @param transport: C{"udp"} or C{"tcp"}.
        @param host: the collector's IP address.
        """
        self._reactor = reactor
        self.transport = transport
        self.destination = (host, port)
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self._udp: Any = None
        self._service: ClientService | None = None
        self._stream: _Stream | None = None
        self._v6 = ipaddress.ip_address(host).version == 6

    def start(self) -> None:
        """Open the socket (UDP) or start connecting (TCP)."""
        if self.transport == "udp":
            self._udp = self._reactor.listenUDP(
                0, _Datagrams(self), interface="::" if self._v6 else "0.0.0.0"
            )
            return
        endpoint_type = TCP6ClientEndpoint if self._v6 else TCP4ClientEndpoint
        endpoint = endpoint_type(self._reactor, *self.destination, timeout=5)
        factory = Factory.forProtocol(lambda: _Stream(self))
        self._service = ClientService(endpoint, factory, clock=self._reactor)
        self._service.startService()

    def stop(self) -> Any:
        """Close the socket or connection; a Deferred (TCP) or C{None}."""
        if self._udp is not None:
            udp, self._udp = self._udp, None
            return udp.stopListening()
        if self._service is not None:
            service, self._service = self._service, None
            return service.stopService()
        return None

    def send(self, packet: bytes) -> None:
        """Send C{packet} now, or drop it (counted); never queue it, never raise."""
        if self.transport == "udp":
            if self._udp is None:
                self.dropped += 1
                return
            try:
                self._udp.write(packet, self.destination)
            except Exception as e:  # EAGAIN, unreachable: capture must not hurt calls
                self.errors += 1
                if self.errors == 1 or self.errors % 1000 == 0:
                    self._log.warn("HEP send to {destination} failed ({n} so far): {error}",
                                   destination=self.destination, n=self.errors, error=e)
                return
            self.sent += 1
            return
        stream = self._stream
        if stream is None or stream.paused or stream.transport is None:
            self.dropped += 1
            return
        stream.transport.write(packet)
        self.sent += 1

    def _connected(self, stream: _Stream) -> None:
        self._stream = stream
        self._log.info("HEP collector {destination} connected", destination=self.destination)

    def _lost(self, stream: _Stream) -> None:
        if self._stream is stream:
            self._stream = None
            self._log.warn("HEP collector {destination} disconnected; reconnecting",
                           destination=self.destination)
