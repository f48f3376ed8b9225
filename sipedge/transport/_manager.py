# -*- test-case-name: sipedge.test.test_transport, sipedge.test.test_transport_integration -*-
"""
All transports together: listeners, the connection table, and sending on a
flow (reusing a connection or opening one).
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import ConnectionDone, NotConnectingError
from twisted.internet.interfaces import IAddress, IConnector, IListeningPort
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IMessageReceiver, IMessageTap, ISipTransport, ITransportManager
from sipedge.message import DEFAULT_LIMITS, Limits
from sipedge.transport._listeners import (
    StreamListener,
    _ClientFactory,
    _ServerFactory,
    _TappedReceiver,
    _TLSServerFactory,
    show_message,
    tap_methods,
)
from sipedge.transport._sockets import _enlarge_receive_buffer, _family, _ip_literal
from sipedge.transport._stream import DEFAULT_IDLE_TIMEOUT, SipStreamProtocol
from sipedge.transport._udp import MAX_DATAGRAM_SIZE, SipDatagramProtocol
from sipedge.transport._v6only import listen_tcp, listen_udp

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from sipedge.message import Message, Request

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_SOURCE",
    "StreamListener",
    "TransportManager",
]

#: Connections (incoming and outgoing) open at once.
DEFAULT_MAX_CONNECTIONS = 10000
#: Incoming connections from one IP address at once.
DEFAULT_MAX_CONNECTIONS_PER_SOURCE = 128

_WILDCARDS = frozenset(("", "0.0.0.0", "::"))


@implementer(ITransportManager)
class TransportManager:
    """
    The transport layer: UDP, TCP and TLS listeners, IPv4 and IPv6, and a
    table of connections keyed by flow.

    Outgoing connections: L{send} on a TCP/TLS flow with no connection opens
    one to the flow's remote address, bound to the flow's local address (not
    its port: the connection gets an ephemeral port), and queues messages
    until it is up (for TLS: the handshake is done and the peer verified).
    The connection is registered under the flow it was asked for I{and}
    under its real flow, so later sends on either reuse it, and
    L{flow_to} returns the real flow. Everything received on it is
    delivered with the real flow. L{send} on a TCP/TLS flow returns a
    Deferred that fires with the real flow once the message is written; on
    UDP it writes the datagram at once and returns C{None}.

    Limits: at most C{max_connections} connections at once, and at most
    C{max_connections_per_source} incoming connections from one IP address;
    connections beyond either are refused as they are accepted (closed at
    once, and logged).
    """

    _log = Logger()

    def __init__(
        self,
        receiver: IMessageReceiver,
        reactor: Any,
        *,
        limits: Limits = DEFAULT_LIMITS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_connections_per_source: int = DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        connect_timeout: float = 30.0,
        tls_client_context_factory: Callable[[str], Any] | None = None,
        admission: Callable[[str], bool] | None = None,
        screen: Callable[[bytes, str], bool] | None = None,
        stream_screen: Callable[[Request, str], Sequence[Message] | None] | None = None,
        taps: Sequence[IMessageTap] = (),
    ) -> None:
        """
        @param receiver: where every transport delivers messages.
        @param reactor: provides C{IReactorUDP}, C{IReactorTCP} and
            C{IReactorTime} (the idle and TLS timers run on it).
        @param limits: the parser's limits, for every transport.
        @param idle_timeout: seconds without a received byte before a
            connection is closed; C{None} for never.
        @param max_connections_per_source: incoming connections from one IP
            address at once.
        @param max_connections: connections at once.
        @param connect_timeout: seconds to wait for an outgoing TCP connect.
        @param tls_client_context_factory: called with the name to verify
            (the server name given to L{send}, or the IP address) and
            returns the client connection creator for an outgoing TLS
            connection (see L{sipedge.transport.ClientTLSContexts}); by
            default the platform's trust store, with verification.
        @param admission: called with a peer's IP address before anything
            is parsed (C{sipedge.security.Security.admit}): a UDP datagram
            from a source it refuses is dropped, a TCP/TLS connection from
            one is refused as it is accepted (before any TLS handshake),
            and an open connection whose peer it refuses later is closed.
            C{None} admits every source.
        @param screen: called with each UDP datagram and its source
            address before the parse (C{sipedge.security.Security.screen});
            one it refuses is dropped unparsed. C{None} parses everything.
        @param stream_screen: called with each request parsed from a
            TCP/TLS connection and its source before its delivery
            (C{Security.screen_stream}); see L{SipStreamProtocol}.
        @param taps: see every message received (after admission) and
            every message sent, in order: counters, a HEP capture.
        """
        self._taps = tuple(taps)
        self._message_out = tap_methods(self._taps, "message_out")
        if self._taps:
            receiver = _TappedReceiver(receiver, self._taps)
        self._receiver = receiver
        self._reactor = reactor
        self._limits = limits
        self._idle_timeout = idle_timeout
        self._max_per_source = max_connections_per_source
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._tls_client = tls_client_context_factory
        self._admission = admission
        self._screen = screen
        self._stream_screen = stream_screen
        #: Incoming connections refused by C{admission}.
        self.refused = 0
        #: TLS connections made (before their handshake), and those lost
        #: before their handshake completed, by side (C{"inbound"} or
        #: C{"outbound"}).
        self.tls_connections: Counter[str] = Counter()
        self.tls_handshake_failures: Counter[str] = Counter()
        self._udp: list[SipDatagramProtocol] = []
        # local_hostport's answers (the same few for every message) until the listeners change
        self._hostports: dict[tuple[str, int], tuple[str, int]] = {}
        self._udp_ports: dict[SipDatagramProtocol, IListeningPort] = {}
        self._listeners: list[StreamListener] = []
        # Every protocol (connecting, connected) -> the flows it is known by.
        self._keys: dict[SipStreamProtocol, set[Flow]] = {}
        self._connections: dict[Flow, SipStreamProtocol] = {}
        self._by_remote: dict[tuple[str, str, int], list[SipStreamProtocol]] = {}
        self._per_source: Counter[str] = Counter()
        self._sources: dict[SipStreamProtocol, str] = {}
        self._connectors: dict[SipStreamProtocol, IConnector] = {}
        self._closing = False
        #: Called with the flow of each connection that is gone (the NAT
        #: keepalives drop the bindings reached only over it).
        self.on_stream_lost: list[Callable[[Flow], object]] = []

    # Listening

    def listen_udp(self, host: str, port: int, *, fd: int | None = None) -> SipDatagramProtocol:
        """
        Listen for SIP over UDP on C{host:port} (port 0 picks one), reading
        datagrams of up to 65,535 bytes; or, given C{fd}, on that socket,
        already bound to C{host} (a worker's inherited socket).

        @raise twisted.internet.error.CannotListenError: if it cannot bind.
        """
        protocol = SipDatagramProtocol(
            self._receiver,
            limits=self._limits,
            local_host=host or None,
            admission=self._admission,
            screen=self._screen,
        )
        if fd is not None:
            listening = self._reactor.adoptDatagramPort(
                fd, _family(host), protocol, maxPacketSize=MAX_DATAGRAM_SIZE
            )
        else:
            listening = listen_udp(self._reactor, port, protocol, host, MAX_DATAGRAM_SIZE)
        _enlarge_receive_buffer(listening)
        self._udp.append(protocol)
        self._udp_ports[protocol] = listening
        self._hostports.clear()
        self._log.info(
            "Listening for SIP over UDP on {host}:{port}",
            host=protocol.local_host,
            port=protocol.local_port,
        )
        return protocol

    def listen_tcp(self, host: str, port: int, *, fd: int | None = None) -> StreamListener:
        """
        Listen for SIP over TCP on C{host:port} (port 0 picks one), or on
        the listening socket C{fd} bound to C{host}.

        @raise twisted.internet.error.CannotListenError: if it cannot bind.
        """
        return self._listen_stream("TCP", host, port, _ServerFactory(self, "TCP"), fd)

    def listen_tls(
        self, host: str, port: int, context_factory: Any, *, fd: int | None = None
    ) -> StreamListener:
        """
        Listen for SIP over TLS on C{host:port} (port 0 picks one), or on
        the listening socket C{fd} bound to C{host}.

        @param context_factory: the server's TLS settings, e.g. from
            L{sipedge.transport.server_context_factory}.
        @raise twisted.internet.error.CannotListenError: if it cannot bind.
        """
        factory = _TLSServerFactory(
            context_factory, False, _ServerFactory(self, "TLS"), clock=self._reactor
        )
        return self._listen_stream("TLS", host, port, factory, fd)

    def _listen_stream(
        self, name: str, host: str, port: int, factory: Any, fd: int | None
    ) -> StreamListener:
        if fd is not None:
            listening = self._reactor.adoptStreamPort(fd, _family(host), factory)
        else:
            listening = listen_tcp(self._reactor, port, factory, host)
        address = listening.getHost()
        listener = StreamListener(self, name, host or address.host, address.port, listening)
        self._listeners.append(listener)
        self._hostports.clear()
        self._log.info(
            "Listening for SIP over {transport} on {host}:{port}",
            transport=name,
            host=listener.local_host,
            port=listener.local_port,
        )
        return listener

    @property
    def transports(self) -> tuple[ISipTransport, ...]:
        """Every listening transport, UDP first."""
        return (*self._udp, *self._listeners)

    @property
    def connections(self) -> tuple[SipStreamProtocol, ...]:
        """Every connection, connecting or connected."""
        return tuple(self._keys)

    # Sending

    def send(
        self, message: Message, flow: Flow, *, server_name: str | None = None
    ) -> Deferred[Flow] | None:
        """
        Send C{message} on C{flow}.

        UDP: from the socket bound to the flow's local address. TCP/TLS: on
        the connection registered for the flow, else on a new connection to
        the flow's remote address (queued until it is up).

        @param server_name: for a new TLS connection, the name the server's
            certificate must match (RFC 5922: the SIP domain or the name
            the server was found by); by default its IP address. Also sent
            as SNI.
        @return: for UDP, C{None} (the datagram is written); for TCP/TLS, a
            Deferred that fires with the flow the message went out on (for
            a new connection, its real flow, with the ephemeral local port)
            or fails with L{TransportError} if the connection cannot be
            made or is lost before the message is written.
        @raise TransportError: if no transport can carry it (no listener for
            a UDP flow, an unknown transport, too many connections, or the
            manager is closing).
        """
        if self._closing:
            raise TransportError("the transport manager is closed")
        if self._message_out:
            show_message(self._message_out, message, flow)
        name = flow.transport
        if name == "UDP":
            self._udp_for(flow).send_message(message, flow)
            return None
        if name not in ("TCP", "TLS"):
            raise TransportError(f"unsupported transport {name!r} for {flow}")
        connection = self._connections.get(flow)
        if connection is None:
            connection = self._connect(flow, server_name)
        return connection.send(message)

    def _udp_for(self, flow: Flow) -> SipDatagramProtocol:
        local = (flow.local_host, flow.local_port)
        for protocol in self._udp:
            if (protocol.local_host, protocol.local_port) == local:
                return protocol
        family = _family(flow.remote_host)
        for protocol in self._udp:
            host = protocol.local_host or ""
            if (
                protocol.local_port == flow.local_port
                and host in _WILDCARDS
                and (host == "" or _family(host) == family)
            ):
                return protocol
        raise TransportError(f"no UDP transport bound to {flow.local_host}:{flow.local_port}")

    def _connect(self, flow: Flow, server_name: str | None) -> SipStreamProtocol:
        if len(self._keys) >= self._max_connections:
            self._log.warn(
                "Not connecting {flow}: {count} connections open (limit {limit})",
                flow=flow,
                count=len(self._keys),
                limit=self._max_connections,
            )
            raise TransportError(f"too many connections to open one for {flow}")
        protocol = SipStreamProtocol(
            self._receiver,
            clock=self._reactor,
            transport_name=flow.transport,
            limits=self._limits,
            idle_timeout=self._idle_timeout,
            controller=self,
            requested_flow=flow,
            admission=self._admission,
        )
        factory: Any = _ClientFactory(protocol)
        if flow.transport == "TLS":
            name = server_name or flow.remote_host
            try:
                creator = self._client_tls(name)
            except Exception as e:
                raise TransportError(f"no TLS client settings for {name!r}: {e}") from e
            factory = TLSMemoryBIOFactory(creator, True, factory, clock=self._reactor)
        bind = None if flow.local_host in _WILDCARDS else (flow.local_host, 0)
        self._keys[protocol] = {flow}
        self._connections[flow] = protocol
        self._log.info(
            "Connecting {flow} ({transport} to {server_name})",
            flow=flow,
            transport=flow.transport,
            server_name=server_name or flow.remote_host,
        )
        try:
            connector = self._reactor.connectTCP(
                flow.remote_host,
                flow.remote_port,
                factory,
                timeout=self._connect_timeout,
                bindAddress=bind,
            )
        except Exception as e:
            protocol.connection_failed(Failure())
            raise TransportError(f"cannot connect {flow}: {e}") from e
        if not protocol.closed:
            self._connectors[protocol] = connector
        return protocol

    def _client_tls(self, name: str) -> Any:
        if self._tls_client is None:
            from sipedge.transport._tls import ClientTLSContexts

            self._tls_client = ClientTLSContexts()
        return self._tls_client(name)

    # The connection table

    def connection_for(self, flow: Flow) -> SipStreamProtocol | None:
        """The connection registered for C{flow} (its real or requested flow)."""
        return self._connections.get(flow)

    def peer_certificate(self, flow: Flow) -> Certificate | None:
        """
        The certificate the peer of a TLS flow presented (a
        C{cryptography} certificate), or C{None} (not TLS, no connection,
        no certificate).
        """
        connection = self._connections.get(flow)
        if connection is None or not connection.secure or connection.transport is None:
            return None
        get = getattr(connection.transport, "getPeerCertificate", None)
        certificate = get() if get is not None else None
        return None if certificate is None else certificate.to_cryptography()

    def flow_to(self, transport: str, host: str, port: int) -> Flow:
        """
        The flow to reach C{host:port} over C{transport}: an existing
        connection's real flow, else a flow from our listener of that
        transport and address family (sending on it opens a connection).
        With no TCP/TLS listener of that family the flow's local address is
        the wildcard with port 0 (we can still connect out; but there is no
        address for a Via then).

        @raise TransportError: if C{host} is not an IP literal, or for UDP
            if we have no UDP listener of that family.
        """
        name = transport.upper()
        remote = _ip_literal(host)
        if name in ("TCP", "TLS"):
            for connection in reversed(self._by_remote.get((name, remote, port), [])):
                if not connection.closed and connection.flow is not None:
                    return connection.flow
        family = _family(remote)
        try:
            local_host, local_port = self.local_hostport(name, family)
        except TransportError:
            if name not in ("TCP", "TLS"):
                raise
            # We can connect out without listening: from any address.
            local_host, local_port = ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0
        return Flow(name, local_host, local_port, remote, port)

    def local_hostport(self, transport: str, family: int) -> tuple[str, int]:
        """
        The address and port of our first listener of C{transport} and
        address family C{family} (C{socket.AF_INET} or C{AF_INET6}), for
        Via and Record-Route. A listener bound to a wildcard address gives
        the wildcard: advertise a real address yourself in that case.

        @raise TransportError: if we have no such listener.
        """
        found = self._hostports.get((transport, family))
        if found is None:
            found = self._hostports[transport, family] = self._find_hostport(transport, family)
        return found

    def _find_hostport(self, transport: str, family: int) -> tuple[str, int]:
        name = transport.upper()
        candidates: tuple[Any, ...] = (
            tuple(self._udp)
            if name == "UDP"
            else tuple(listener for listener in self._listeners if listener.name == name)
        )
        for candidate in candidates:
            host = candidate.local_host or ""
            if host and _family(host) == family:
                return (host, candidate.local_port)
        raise TransportError(f"no {name} transport for address family {family}")

    # Called by the protocols and factories

    def _accept(self, name: str, addr: IAddress | None) -> SipStreamProtocol | None:
        source = getattr(addr, "host", "?")
        if self._closing:
            self._log.info(
                "Refusing {transport} connection from {source}: closing",
                transport=name,
                source=source,
            )
            return None
        if self._admission is not None and not self._admission(source):
            self.refused += 1
            self._log.info(
                "Refusing {transport} connection from {source}: not admitted",
                transport=name,
                source=source,
                rule="admission",
            )
            return None
        if len(self._keys) >= self._max_connections:
            self._log.warn(
                "Refusing {transport} connection from {source}: {count} connections open"
                " (limit {limit})",
                transport=name,
                source=source,
                count=len(self._keys),
                limit=self._max_connections,
            )
            return None
        if self._per_source[source] >= self._max_per_source:
            self._log.warn(
                "Refusing {transport} connection from {source}: {count} connections from it"
                " (limit {limit})",
                transport=name,
                source=source,
                count=self._per_source[source],
                limit=self._max_per_source,
            )
            return None
        protocol = SipStreamProtocol(
            self._receiver,
            clock=self._reactor,
            transport_name=name,
            limits=self._limits,
            idle_timeout=self._idle_timeout,
            controller=self,
            admission=self._admission,
            screen=self._stream_screen,
        )
        self._keys[protocol] = set()
        self._per_source[source] += 1
        self._sources[protocol] = source
        return protocol

    def stream_connected(self, protocol: SipStreamProtocol) -> None:
        """C{protocol}'s connection is made: register its real flow."""
        self._connectors.pop(protocol, None)
        flow = protocol.flow
        assert flow is not None
        keys = self._keys.setdefault(protocol, set())
        keys.add(flow)
        self._connections[flow] = protocol
        remote = (flow.transport, flow.remote_host, flow.remote_port)
        self._by_remote.setdefault(remote, []).append(protocol)
        if protocol.secure:
            self.tls_connections[_side(protocol)] += 1
        self._log.info(
            "Connection {flow} made{requested}",
            flow=flow,
            requested=""
            if protocol.requested_flow is None
            else f" (for {protocol.requested_flow})",
        )

    def stream_lost(self, protocol: SipStreamProtocol, reason: Failure) -> None:
        """C{protocol}'s connection is gone (or never came): forget it."""
        self._connectors.pop(protocol, None)
        for key in self._keys.pop(protocol, ()):
            if self._connections.get(key) is protocol:
                del self._connections[key]
        flow = protocol.flow
        if flow is not None:
            remote = (flow.transport, flow.remote_host, flow.remote_port)
            same = self._by_remote.get(remote, [])
            if protocol in same:
                same.remove(protocol)
            if not same:
                self._by_remote.pop(remote, None)
        if protocol.secure and flow is not None and not protocol.ready:
            self.tls_handshake_failures[_side(protocol)] += 1
        source = self._sources.pop(protocol, None)
        if source is not None:
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]
        # A clean close is routine; anything else (a reset, a refused
        # connect, a failed handshake or certificate check) is worth a warning.
        log = self._log.info if reason.check(ConnectionDone) else self._log.warn
        log(
            "Connection {flow} closed: {reason}",
            flow=flow or protocol.requested_flow,
            reason=reason.getErrorMessage(),
        )
        if flow is not None:
            for observer in self.on_stream_lost:
                try:
                    observer(flow)
                except Exception:
                    self._log.failure("Connection observer {observer!r} failed", observer=observer)

    # Stopping

    def close(self) -> Deferred[None]:
        """
        Stop every listener and close every connection (outgoing ones
        still connecting are abandoned, their queued messages failed).

        @return: a Deferred that fires once all are closed.
        """
        self._closing = True
        waits: list[Deferred[Any]] = []
        for udp in self._udp:
            waits.append(maybeDeferred(self._udp_ports[udp].stopListening))
        for listener in self._listeners:
            waits.append(listener.stop())
        self._udp.clear()
        self._udp_ports.clear()
        self._listeners.clear()
        self._hostports.clear()
        for protocol in list(self._keys):
            if protocol.transport is None:
                connector = self._connectors.pop(protocol, None)
                if connector is not None:
                    try:
                        connector.stopConnecting()
                    except NotConnectingError:
                        pass
                protocol.connection_failed(
                    Failure(TransportError("the transport manager was closed"))
                )
            else:
                waits.append(protocol.close())
        return gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)


def _side(protocol: SipStreamProtocol) -> str:
    """C{"outbound"} for a connection we opened, else C{"inbound"}."""
    return "inbound" if protocol.requested_flow is None else "outbound"
