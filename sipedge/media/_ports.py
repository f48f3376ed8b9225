# -*- test-case-name: sipedge.test.test_media -*-
"""
Relay ports: UDP ports bound from a configured range, only for as long as a
call needs them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.logger import Logger

from sipedge.media._errors import PortsExhausted
from sipedge.media._values import ip_version

__all__ = ["MAX_DATAGRAM_SIZE", "PortAllocator"]

#: What relay sockets read per datagram. RTP packets over the relay's
#: size limit are dropped as too long anyway; a longer datagram is cut to
#: this size by the read and is then over the limit too.
MAX_DATAGRAM_SIZE = 4096


class PortAllocator:
    """
    Binds UDP ports from C{low} to C{high} (inclusive) on C{host} with
    C{reactor.listenUDP}, in slots of an even and the following odd port:
    RTP on the even port and RTCP on the odd one (RFC 3550 11), or the even
    port alone for RTP and RTCP multiplexed (RFC 5761). Ports some other
    socket holds (C{CannotListenError}) are skipped. Slots are handed out
    round-robin, so a port just released is the last to be reused (late
    packets of the old call find nothing there).

    @ivar host: the address bound to.
    @ivar advertised: the address to put in SDP (C{host} unless given:
        set it when binding a wildcard, or behind a 1:1 NAT).
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorUDP,
        low: int,
        high: int,
        host: str = "",
        *,
        advertised: str | None = None,
        max_datagram_size: int = MAX_DATAGRAM_SIZE,
    ) -> None:
        """
        @raise ValueError: for a range with no even/odd pair in it, or an
            address that is not an IP literal.
        """
        first = low + (low % 2)
        if not (0 < low <= high <= 65535) or first + 1 > high:
            raise ValueError(f"port range {low}-{high} holds no even/odd pair")
        self._reactor = reactor
        self.host = host
        self.advertised = advertised if advertised is not None else host
        if not self.advertised:
            raise ValueError("give the address to advertise when binding the wildcard")
        self.version = ip_version(self.advertised)
        if host and ip_version(host) != self.version:
            raise ValueError(f"cannot advertise {self.advertised} for a socket on {host}")
        self._first = first
        self._slots = (high - first + 1) // 2
        self._next = 0
        self._max_datagram_size = max_datagram_size
        self._open: dict[int, IListeningPort] = {}
        self._numbers: dict[int, int] = {}

    def __repr__(self) -> str:
        last = self._first + 2 * self._slots - 1
        return f"<PortAllocator {self.host or '*'}:{self._first}-{last} open={len(self._open)}>"

    @property
    def capacity(self) -> int:
        """How many even/odd slots the range holds."""
        return self._slots

    def open_ports(self) -> list[int]:
        """The ports bound now, sorted."""
        return sorted(self._open)

    def _listen(self, port: int, protocol: Any) -> IListeningPort:
        listening: IListeningPort = self._reactor.listenUDP(
            port, protocol, interface=self.host, maxPacketSize=self._max_datagram_size
        )
        self._open[port] = listening
        self._numbers[id(listening)] = port
        return listening

    def _allocate(self, protocols: tuple[Any, ...]) -> tuple[IListeningPort, ...]:
        for _ in range(self._slots):
            slot = self._next
            self._next = (slot + 1) % self._slots
            even = self._first + 2 * slot
            if even in self._open or even + 1 in self._open:
                continue
            bound: list[IListeningPort] = []
            try:
                for offset, protocol in enumerate(protocols):
                    bound.append(self._listen(even + offset, protocol))
            except CannotListenError:
                for listening in bound:
                    self.release(listening)
                continue
            return tuple(bound)
        raise PortsExhausted(
            f"no free port {'pair' if len(protocols) > 1 else 'slot'} in "
            f"{self._first}-{self._first + 2 * self._slots - 1} on {self.host or '*'}"
        )

    def allocate_pair(
        self, rtp: Any, rtcp: Any
    ) -> tuple[IListeningPort, IListeningPort]:
        """
        Bind C{rtp} (a C{DatagramProtocol}) to a free even port and C{rtcp}
        to the odd port after it.

        @raise PortsExhausted: if no slot is free.
        """
        first, second = self._allocate((rtp, rtcp))
        return first, second

    def allocate(self, protocol: Any) -> IListeningPort:
        """
        Bind C{protocol} to the even port of a free slot (its odd port
        stays unbound, so pairs remain possible everywhere).

        @raise PortsExhausted: if no slot is free.
        """
        (only,) = self._allocate((protocol,))
        return only

    def release(self, listening: IListeningPort) -> Any:
        """
        Close a port this allocator bound (again is harmless, and so is a
        port the reactor already closed at shutdown).

        @return: what C{stopListening} returned (a Deferred or C{None}).
        """
        port = self._numbers.pop(id(listening), None)
        if port is None:
            return None
        del self._open[port]
        return listening.stopListening()
