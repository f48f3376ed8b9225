# -*- test-case-name: sipedge.test.test_testing_network -*-
"""
Misbehaving streams on a L{FakeReactor}: a connection reset now or after
so many bytes, and a slow reader (one side takes in at most so many bytes
a second, on the reactor's clock, the rest waiting in the network).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.test import iosim

from sipedge.testing._reactor import FakeReactor

__all__ = ["StreamConnection", "StreamFaults"]


class StreamConnection:
    """
    One TCP (or TLS) connection of a L{FakeReactor}: C{client} and
    C{server} are the two protocols, C{client_address} and
    C{server_address} their ends as C{(host, port)}.
    """

    def __init__(self, pump: iosim.IOPump) -> None:
        self.pump = pump
        self.client = pump.client
        self.server = pump.server
        peer = pump.clientIO.getHost()
        host = pump.serverIO.getHost()
        self.client_address = (peer.host, peer.port)
        self.server_address = (host.host, host.port)

    def __repr__(self) -> str:
        return f"<StreamConnection {self.client_address} -> {self.server_address}>"

    @property
    def closed(self) -> bool:
        return bool(self.pump.clientIO.disconnected and self.pump.serverIO.disconnected)

    def _io(self, side: str) -> iosim.FakeTransport:
        if side not in ("client", "server"):
            raise ValueError(f"side must be 'client' or 'server', not {side!r}")
        return self.pump.clientIO if side == "client" else self.pump.serverIO


class StreamFaults:
    """
    Faults for the connections of C{reactor}.

    @ivar resets: the connections reset so far.
    """

    def __init__(self, reactor: FakeReactor) -> None:
        self.reactor = reactor
        self.resets: list[StreamConnection] = []
        self._throttled: dict[int, Any] = {}

    def connections(
        self, match: Callable[[StreamConnection], bool] | None = None
    ) -> list[StreamConnection]:
        """The open connections (those C{match} accepts), oldest first."""
        found = [StreamConnection(pump) for pump in self.reactor.pumps]
        return [c for c in found if not c.closed and (match is None or match(c))]

    def to_server(self, host: str, port: int) -> StreamConnection:
        """The one open connection to C{host:port}."""
        found = self.connections(lambda c: c.server_address == (host, port))
        if len(found) != 1:
            raise AssertionError(f"{len(found)} open connections to {host}:{port}: {found}")
        return found[0]

    def reset(self, connection: StreamConnection) -> None:
        """
        Reset C{connection} now: what is buffered is lost, and both sides
        learn of it (C{ConnectionLost}) when the reactor next moves bytes.
        """
        for io in (connection.pump.clientIO, connection.pump.serverIO):
            io.stream = []
            io.disconnectReason = ConnectionLost("connection reset (fault injection)")
            io.disconnecting = True
        self.resets.append(connection)

    def reset_after(self, connection: StreamConnection, count: int, side: str = "server") -> None:
        """
        Reset C{connection} once C{side} has been handed C{count} more
        bytes (what goes past C{count} in the same segment is lost).
        """
        io = connection._io(side)
        deliver = io.bufferReceived
        left = [count]

        def received(data: bytes) -> None:
            if left[0] <= 0:
                return
            taken, left[0] = data[: left[0]], left[0] - len(data)
            deliver(taken)
            if left[0] <= 0:
                self.reset(connection)

        io.bufferReceived = received  # type: ignore[method-assign]

    def slow_reader(
        self, connection: StreamConnection, bytes_per_second: int, side: str = "server",
        chunk: int | None = None,
    ) -> None:
        """
        Make C{side} of C{connection} read slowly: it is handed at most
        C{bytes_per_second} a second (in pieces of C{chunk} bytes, a tenth
        of that by default), on the reactor's clock; what it has not read
        waits (a real reader's kernel buffer and the sender's).
        """
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        piece = chunk or max(1, bytes_per_second // 10)
        interval = piece / bytes_per_second
        io = connection._io(side)
        deliver = io.bufferReceived
        waiting = bytearray()
        timer: list[Any] = [None]

        def release() -> None:
            timer[0] = None
            if io.disconnected:
                waiting.clear()
                return
            data = bytes(waiting[:piece])
            del waiting[:piece]
            deliver(data)
            if waiting:
                timer[0] = self.reactor.callLater(interval, release)

        def received(data: bytes) -> None:
            waiting.extend(data)
            if timer[0] is None:
                timer[0] = self.reactor.callLater(interval, release)

        io.bufferReceived = received  # type: ignore[method-assign]
        self._throttled[id(connection.pump)] = timer

    def backlog(self, connection: StreamConnection, side: str = "server") -> bool:
        """Whether a slow reader on C{side} still has bytes to read."""
        timer = self._throttled.get(id(connection.pump))
        return timer is not None and timer[0] is not None
