# -*- test-case-name: sipedge.test.test_testing -*-
"""
L{FakeReactor}: a C{MemoryReactorClock} whose C{listenUDP} binds on a
L{FakeDatagramNetwork} and whose C{listenTCP}/C{connectTCP} join protocols
with C{twisted.test.iosim} pumps, so a whole
L{sipedge.transport.TransportManager} (TLS included) runs in memory.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import (
    CannotListenError,
    ConnectionLost,
    ConnectionRefusedError,
    NotConnectingError,
    UserError,
)
from twisted.internet.interfaces import IConnector, IListeningPort, IReactorUDP
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer

from sipedge.testing._addresses import _WILDCARD, Address, _address, _version
from sipedge.testing._datagrams import FakeDatagramNetwork, FakeDatagramPort

__all__ = ["FakeReactor", "flush_on_advance"]



@implementer(IListeningPort)
class _FakeStreamPort:
    """A TCP listener of a L{FakeReactor}."""

    def __init__(self, reactor: FakeReactor, host: str, port: int, factory: Any) -> None:
        self._reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.listening = True

    def startListening(self) -> None:
        """Already listening."""

    def stopListening(self) -> Deferred[None]:
        if self.listening:
            self.listening = False
            self._reactor._stream_ports.pop((self.host, self.port), None)
            self.factory.doStop()
        return succeed(None)

    def getHost(self) -> IPv4Address | IPv6Address:
        return _address("TCP", self.host, self.port)


@implementer(IConnector)
class _FakeStreamConnector:
    """An outgoing connection of a L{FakeReactor}, until L{FakeReactor.flush}."""

    def __init__(
        self, reactor: FakeReactor, host: str, port: int, factory: Any,
        bind: Address | None,
    ) -> None:
        self._reactor = reactor
        self.host = host
        self.port = port
        self.factory = factory
        self.bind = bind
        self.state = "connecting"

    def stopConnecting(self) -> None:
        if self.state != "connecting":
            raise NotConnectingError()
        self.state = "disconnected"
        self.factory.clientConnectionFailed(self, Failure(UserError()))
        self.factory.doStop()

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stopConnecting()

    def connect(self) -> None:
        """Connections are made by L{FakeReactor.flush}."""

    def getDestination(self) -> IPv4Address | IPv6Address:
        return _address("TCP", self.host, self.port)


@implementer(IReactorUDP)
class FakeReactor(MemoryReactorClock):
    """
    A C{MemoryReactorClock} with a network in memory.

    C{listenUDP} binds on L{network} (a L{FakeDatagramNetwork}).
    C{listenTCP} registers an in-memory listener; C{connectTCP} to a
    listener's address connects on the next L{flush}, through a
    C{twisted.test.iosim} pump (so TLS made with C{TLSMemoryBIOFactory}
    handshakes for real), and is refused if nothing listens there. Calls
    are still recorded in C{tcpServers}/C{tcpClients} as
    C{MemoryReactorClock} does.

    @ivar pumps: the live connections' pumps.
    """

    def __init__(self, network: FakeDatagramNetwork | None = None) -> None:
        super().__init__()
        self.network = network if network is not None else FakeDatagramNetwork()
        self.udpPorts: list[FakeDatagramPort] = []
        self._stream_ports: dict[Address, _FakeStreamPort] = {}
        self._connecting: list[_FakeStreamConnector] = []
        self._next_port = 50000
        self.pumps: list[iosim.IOPump] = []

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeDatagramPort:
        bound = self.network.bind(interface, port, protocol, max_packet_size=maxPacketSize)
        self.udpPorts.append(bound)
        return bound

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> _FakeStreamPort:
        self.tcpServers.append((port, factory, backlog, interface))
        host = interface or _WILDCARD[4]
        if _version(host) is None:
            raise CannotListenError(host, port, ValueError("not an IP address"))
        if port == 0:
            port = self._ephemeral_port()
        if (host, port) in self._stream_ports:
            raise CannotListenError(host, port, OSError(errno.EADDRINUSE, "address in use"))
        listening = _FakeStreamPort(self, host, port, factory)
        self._stream_ports[(host, port)] = listening
        factory.doStart()
        return listening

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30,
        bindAddress: Address | None = None,
    ) -> _FakeStreamConnector:
        self.tcpClients.append(
            (host, port, factory, timeout, bindAddress)  # type: ignore[arg-type]
        )
        connector = _FakeStreamConnector(self, host, port, factory, bindAddress)
        self.connectors.append(connector)
        self._connecting.append(connector)
        factory.doStart()
        factory.startedConnecting(connector)
        return connector

    def flush(self, max_rounds: int = 1000) -> None:
        """
        Make pending connections, then move bytes on every connection and
        deliver datagrams, until nothing moves (running calls due now).

        @raise AssertionError: if things still move after C{max_rounds}.
        """
        for _ in range(max_rounds):
            self.advance(0)
            moved = self._connect_pending()
            for pump in list(self.pumps):
                if pump.flush(advanceClock=False):
                    moved = True
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self.pumps.remove(pump)
            if self.network.flush():
                moved = True
            if not moved and not self._due():
                return
        raise AssertionError(f"the network is still busy after {max_rounds} rounds")

    def advance_and_flush(self, seconds: float) -> None:
        """Move the clock on by C{seconds}, then L{flush}."""
        self.advance(seconds)
        self.flush()

    def _due(self) -> bool:
        now = self.seconds()
        return any(call.getTime() <= now for call in self.getDelayedCalls())

    def _ephemeral_port(self) -> int:
        port = self._next_port
        self._next_port += 1
        return port

    def _listener_at(self, host: str, port: int) -> _FakeStreamPort | None:
        found = self._stream_ports.get((host, port))
        if found is None:
            version = _version(host)
            if version is not None:
                found = self._stream_ports.get((_WILDCARD[version], port))
        return found

    def _connect_pending(self) -> bool:
        if not self._connecting:
            return False
        pending, self._connecting = self._connecting, []
        for connector in pending:
            if connector.state != "connecting":
                continue
            self._connect(connector)
        return True

    def _connect(self, connector: _FakeStreamConnector) -> None:
        factory = connector.factory
        version = _version(connector.host) or 4
        listener = self._listener_at(connector.host, connector.port)
        if listener is None:
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
            factory.doStop()
            return
        local = self.network._default[version]
        if connector.bind is not None and connector.bind[0] not in ("", _WILDCARD[version]):
            local = connector.bind[0]
        client_address = _address("TCP", local, self._ephemeral_port())
        server_address = _address("TCP", connector.host, connector.port)
        connector.state = "connected"
        server = listener.factory.buildProtocol(client_address)
        client = factory.buildProtocol(server_address)
        client_io = iosim.FakeTransport(client, False, client_address, server_address)
        if server is None:
            # Accepted, then closed at once (the listener refused it).
            client.makeConnection(client_io)
            client_io.disconnecting = client_io.disconnected = True
            client.connectionLost(Failure(ConnectionLost("closed by the listener")))
            return
        server_io = iosim.FakeTransport(server, True, server_address, client_address)
        pump = iosim.connect(server, server_io, client, client_io, greet=False, clock=self)
        self.pumps.append(pump)


def flush_on_advance(reactor: Any) -> None:
    """
    Make C{reactor.advance} (a L{sipedge.testing.FakeReactor}) also move
    the bytes of its in-memory connections after moving time, so that what
    a timer sends arrives before a test looks (a flush that advances time
    itself does not flush again).
    """
    advance = reactor.advance
    busy = [False]

    def advance_and_deliver(seconds: float) -> None:
        advance(seconds)
        if not busy[0]:
            busy[0] = True
            try:
                reactor.flush()
            finally:
                busy[0] = False

    reactor.advance = advance_and_deliver
