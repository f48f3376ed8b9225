# -*- test-case-name: sipedge.test.test_testing -*-
"""
L{FakeDatagramNetwork}: UDP between protocols in memory, with deterministic
loss and reordering (Twisted's C{MemoryReactor} has no C{IReactorUDP}).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import (
    CannotListenError,
    InvalidAddressError,
    MessageLengthError,
)
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.testing._addresses import _MAX_PAYLOAD, _WILDCARD, Address, _address, _version

__all__ = ["Datagram", "FakeDatagramNetwork", "FakeDatagramPort"]

_log = Logger()

DropHook = Callable[[int, bytes, Address, Address], bool]
ReorderHook = Callable[[list["Datagram"]], Sequence["Datagram"]]


@attrs.frozen
class Datagram:
    """One datagram on a L{FakeDatagramNetwork}."""

    data: bytes
    source: Address
    destination: Address


@implementer(IListeningPort)
class FakeDatagramPort:
    """
    A bound UDP socket on a L{FakeDatagramNetwork}: the transport of the
    protocol bound there. C{write(data, addr)} queues the datagram on the
    network (it is delivered by L{FakeDatagramNetwork.flush}).

    Like a real socket it refuses host names, the other address family and
    datagrams over the UDP payload limit, and hands the receiving protocol
    at most C{max_packet_size} bytes of each datagram.
    """

    def __init__(
        self,
        network: FakeDatagramNetwork,
        host: str,
        port: int,
        protocol: Any,
        max_packet_size: int,
    ) -> None:
        self.network = network
        self.host = host
        self.port = port
        self.protocol = protocol
        self.max_packet_size = max_packet_size
        self.version = _version(host) or 4
        self.connected_to: Address | None = None
        self.closed = False
        self._broadcast = False

    def __repr__(self) -> str:
        return f"<FakeDatagramPort {self.host}:{self.port}>"

    def startListening(self) -> None:
        """Already listening once bound."""

    def stopListening(self) -> Deferred[None]:
        """Unbind, and stop the protocol."""
        if not self.closed:
            self.closed = True
            self.network._unbind(self)
            self.protocol.doStop()
        return succeed(None)

    loseConnection = stopListening

    def getHost(self) -> IPv4Address | IPv6Address:
        return _address("UDP", self.host, self.port)

    def connect(self, host: str, port: int) -> None:
        """Fix the peer (connected UDP)."""
        self.connected_to = (host, port)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        self._broadcast = enabled

    def getBroadcastAllowed(self) -> bool:
        return self._broadcast

    def write(self, packet: bytes, addr: Address | None = None) -> None:
        if addr is None:
            if self.connected_to is None:
                raise InvalidAddressError(None, "write() without an address on an unconnected port")
            addr = self.connected_to
        version = _version(addr[0])
        if version is None:
            raise InvalidAddressError(addr[0], "write() only accepts IP addresses, not hostnames")
        if version != self.version:
            raise InvalidAddressError(addr[0], f"IPv{self.version} port written to IPv{version}")
        if self.closed:
            raise OSError(errno.EBADF, "the port is closed")
        if len(packet) > _MAX_PAYLOAD[version]:
            raise MessageLengthError("message too long")
        self.network._send(self, bytes(packet), (addr[0], addr[1]))

    def writeSequence(self, seq: Sequence[bytes], addr: Address) -> None:
        self.write(b"".join(seq), addr)


class FakeDatagramNetwork:
    """
    UDP in memory, deterministic.

    L{bind} gives a C{DatagramProtocol} a L{FakeDatagramPort} as its
    transport; what it writes is queued and L{flush} delivers the queue
    (and whatever the deliveries send in turn) until it is empty.

    @ivar sent: every datagram written, in order, dropped ones included.
    @ivar pending: datagrams waiting for L{flush}.
    @ivar dropped: datagrams the C{drop} hook dropped.
    @ivar undeliverable: datagrams sent to an address nobody is bound to.
    @ivar model: a L{sipedge.testing.NetworkModel} (latency, loss,
        duplication, reordering, mangling by rule), or C{None}.
    """

    def __init__(
        self,
        *,
        drop: DropHook | None = None,
        reorder: ReorderHook | None = None,
        default_ipv4: str = "127.0.0.1",
        default_ipv6: str = "::1",
    ) -> None:
        """
        @param drop: called as C{drop(n, data, source, destination)} for
            the C{n}th datagram written (from 0); true drops it (e.g.
            C{lambda n, *_: n == 2} loses exactly the third datagram).
        @param reorder: called with each batch of pending datagrams before
            they are delivered; returns them in the order to deliver (it
            may also leave some out: they are lost).
        @param default_ipv4: the source address of datagrams from a port
            bound to the IPv4 wildcard.
        @param default_ipv6: the same for IPv6.
        """
        self.drop = drop
        self.reorder = reorder
        self._default = {4: default_ipv4, 6: default_ipv6}
        self._ports: dict[Address, FakeDatagramPort] = {}
        self._next_port = 49152
        self.sent: list[Datagram] = []
        self.pending: list[Datagram] = []
        self.dropped: list[Datagram] = []
        self.undeliverable: list[Datagram] = []
        self.model: Any = None

    def bind(
        self, host: str, port: int, protocol: Any, *, max_packet_size: int = 65535
    ) -> FakeDatagramPort:
        """
        Bind C{protocol} to C{host:port} (C{""} is the IPv4 wildcard; port
        0 picks a free one) and start it.

        @raise CannotListenError: if the address is taken.
        """
        host = host or _WILDCARD[4]
        if _version(host) is None:
            raise CannotListenError(host, port, ValueError("not an IP address"))
        if port == 0:
            port = self._free_port(host)
        if (host, port) in self._ports:
            raise CannotListenError(host, port, OSError(errno.EADDRINUSE, "address in use"))
        bound = FakeDatagramPort(self, host, port, protocol, max_packet_size)
        self._ports[(host, port)] = bound
        protocol.makeConnection(bound)
        return bound

    def port_at(self, host: str, port: int) -> FakeDatagramPort | None:
        """The port bound to C{host:port} (or the wildcard of its family)."""
        found = self._ports.get((host, port))
        if found is None:
            version = _version(host)
            if version is not None:
                found = self._ports.get((_WILDCARD[version], port))
        return found

    def flush(self, max_rounds: int = 1000) -> int:
        """
        Deliver pending datagrams, and those their delivery sends, until
        none is left.

        @return: how many were delivered.
        @raise AssertionError: if datagrams are still being sent after
            C{max_rounds} rounds (an endless ping-pong).
        """
        delivered = 0
        for _ in range(max_rounds):
            if not self.pending:
                return delivered
            batch, self.pending = self.pending, []
            if self.reorder is not None:
                batch = list(self.reorder(batch))
            for datagram in batch:
                if self._deliver(datagram):
                    delivered += 1
        raise AssertionError(f"datagrams still flowing after {max_rounds} rounds")

    def _free_port(self, host: str) -> int:
        while (host, self._next_port) in self._ports:
            self._next_port += 1
        port = self._next_port
        self._next_port += 1
        return port

    def _unbind(self, port: FakeDatagramPort) -> None:
        if self._ports.get((port.host, port.port)) is port:
            del self._ports[(port.host, port.port)]

    def _send(self, port: FakeDatagramPort, data: bytes, destination: Address) -> None:
        host = port.host
        if host == _WILDCARD[port.version]:
            host = self._default[port.version]
        datagram = Datagram(data, (host, port.port), destination)
        n = len(self.sent)
        self.sent.append(datagram)
        if self.drop is not None and self.drop(n, data, datagram.source, destination):
            self.dropped.append(datagram)
            return
        if self.model is None:
            self.pending.append(datagram)
            return
        for delay, copy in self.model.route(datagram):
            if delay > 0:
                self.model.arrive_later(delay, copy)
            else:
                self.pending.append(copy)

    def _deliver(self, datagram: Datagram) -> bool:
        port = self.port_at(*datagram.destination)
        if port is None or port.closed:
            self.undeliverable.append(datagram)
            return False
        try:
            port.protocol.datagramReceived(
                datagram.data[: port.max_packet_size], datagram.source
            )
        except Exception:
            # As udp.Port.doRead does: log, and go on with the next one.
            _log.failure("Unhandled error delivering {datagram}", datagram=datagram)
        return True

