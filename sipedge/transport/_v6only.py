# -*- test-case-name: sipedge.test.test_transport_v6only -*-
"""
Listening on the IPv6 wildcard next to the IPv4 one.

Linux binds C{[::]} dual stack unless told otherwise
(C{net.ipv6.bindv6only = 0}): such a socket takes the port on IPv4 too, so
C{udp:0.0.0.0:5060} and C{udp:[::]:5060} could not both be listened on
(EADDRINUSE), and IPv4 packets to C{[::]} would arrive from
C{::ffff:a.b.c.d}, an address of neither family that our Via, Record-Route
and the relay's families would have to untangle. sipedge binds the IPv6
wildcard with C{IPV6_V6ONLY} (RFC 3493 5.3), so each family has its own
listener and every source address is of the listener's family. A
specific IPv6 address needs nothing: it takes IPv6 only anyway.

Twisted's C{listenUDP}/C{listenTCP} set no socket option before binding;
here the socket is made, set and bound, then given to the reactor
(C{IReactorSocket.adoptDatagramPort}/C{adoptStreamPort}). A reactor that
cannot adopt sockets (the tests' fakes) gets C{listenUDP}/C{listenTCP}.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorSocket

__all__ = ["listen_tcp", "listen_udp"]

#: The listen backlog of an adopted TCP port (Twisted's default).
BACKLOG = 50


def _ipv6_wildcard(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.version == 6 and address.is_unspecified


def _bound(kind: int, host: str, port: int) -> socket.socket:
    """An IPv6-only socket of C{kind} bound to C{host:port}, non-blocking."""
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind((host.strip("[]"), port))
        if kind == socket.SOCK_STREAM:
            sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise CannotListenError(host, port, e) from None
    return sock


def listen_udp(
    reactor: Any, port: int, protocol: Any, host: str, max_packet_size: int
) -> IListeningPort:
    """C{reactor.listenUDP}, IPv6-only on the IPv6 wildcard."""
    if not (_ipv6_wildcard(host) and IReactorSocket.providedBy(reactor)):
        listening: IListeningPort = reactor.listenUDP(
            port, protocol, interface=host, maxPacketSize=max_packet_size
        )
        return listening
    sock = _bound(socket.SOCK_DGRAM, host, port)
    try:
        adopted: IListeningPort = reactor.adoptDatagramPort(
            sock.fileno(), socket.AF_INET6, protocol, max_packet_size
        )
        return adopted
    finally:
        sock.close()  # the reactor holds its own copy of the descriptor


def listen_tcp(reactor: Any, port: int, factory: Any, host: str) -> IListeningPort:
    """C{reactor.listenTCP}, IPv6-only on the IPv6 wildcard."""
    if not (_ipv6_wildcard(host) and IReactorSocket.providedBy(reactor)):
        listening: IListeningPort = reactor.listenTCP(port, factory, interface=host)
        return listening
    sock = _bound(socket.SOCK_STREAM, host, port)
    try:
        adopted: IListeningPort = reactor.adoptStreamPort(
            sock.fileno(), socket.AF_INET6, factory
        )
        return adopted
    finally:
        sock.close()
