# -*- test-case-name: sipedge.test.test_process_sockets -*-
"""
The listening sockets of a group of worker processes: bound once by the
supervisor, inherited by each worker as a file descriptor.

Each SIP listener is bound once per worker with C{SO_REUSEPORT} on the
public address (the kernel spreads sources across the sockets of the group:
every datagram and connection of one source address and port reaches the
same socket), plus one socket per worker on a port of its own, which that
worker names in Via and Record-Route so that responses and in-dialog
requests come back to it.

The supervisor keeps every socket open for as long as it runs: a worker
that dies and is replaced gets the same sockets back, so the kernel's
spreading does not change for the sources of the other workers, and what
reaches a dead worker's sockets waits in their buffers for its successor.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Sequence

import attrs

__all__ = [
    "ADMIN",
    "CHANNEL",
    "CHANNEL_HOST",
    "METRICS",
    "OWN",
    "SHARED",
    "WorkerSocket",
    "WorkerSpec",
    "bind_group",
    "bind_private",
    "bind_socket",
    "channel_ports",
    "own_addresses",
    "private_port",
]

#: The role of a socket bound on the public address, shared by all workers.
SHARED = "shared"
#: The role of a worker's own socket, named in its Via and Record-Route.
OWN = "own"
#: The role of a worker's end of the channel between workers (UDP, loopback).
CHANNEL = "channel"

#: The role of a worker's private admin API socket (TCP, loopback): the
#: supervisor serves the public one and asks each worker on its own.
ADMIN = "admin"
#: The role of a worker's private metrics socket (TCP, loopback).
METRICS = "metrics"

#: Where the workers' channel sockets listen.
CHANNEL_HOST = "127.0.0.1"

_TRANSPORTS = ("UDP", "TCP", "TLS")


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@attrs.frozen
class WorkerSocket:
    """
    One listening socket of a worker.

    @ivar transport: C{"UDP"}, C{"TCP"} or C{"TLS"}.
    @ivar role: L{SHARED} (the public address), L{OWN}, L{CHANNEL}, or
        L{ADMIN} or L{METRICS} (HTTP on loopback, for the supervisor).
    @ivar host: the address it is bound to, as configured.
    @ivar port: the port it is bound to.
    @ivar fd: its file descriptor (the same number in the supervisor and
        the worker).
    """

    transport: str = attrs.field(validator=attrs.validators.in_(_TRANSPORTS))
    role: str = attrs.field(validator=attrs.validators.in_((SHARED, OWN, CHANNEL, ADMIN, METRICS)))
    host: str
    port: int
    fd: int

    @property
    def family(self) -> int:
        """C{AF_INET} or C{AF_INET6}."""
        return _family(self.host)


@attrs.frozen
class WorkerSpec:
    """
    What a worker is told on its command line: which it is, its sockets,
    and the own addresses of all the workers (for handing messages over).

    @ivar index: this worker's number, from 0.
    @ivar count: the number of workers.
    @ivar sockets: this worker's listening sockets.
    @ivar own: per worker index, its own sockets (C{(transport, host, port)}).
    @ivar channels: per worker index, the port of its channel socket on
        L{CHANNEL_HOST}.
    """

    index: int
    count: int
    sockets: tuple[WorkerSocket, ...]
    own: tuple[tuple[tuple[str, str, int], ...], ...]
    channels: tuple[int, ...] = ()

    def encode(self) -> str:
        """This spec as one command-line argument (L{decode} reads it)."""
        return json.dumps(
            {
                "index": self.index,
                "count": self.count,
                "sockets": [attrs.astuple(s) for s in self.sockets],
                "own": [[list(a) for a in addresses] for addresses in self.own],
                "channels": list(self.channels),
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str) -> WorkerSpec:
        """
        The spec L{encode} wrote.

        @raise ValueError: if C{text} is not one.
        """
        try:
            data = json.loads(text)
            return cls(
                index=int(data["index"]),
                count=int(data["count"]),
                sockets=tuple(WorkerSocket(*s) for s in data["sockets"]),
                own=tuple(
                    tuple((str(t), str(h), int(p)) for t, h, p in addresses)
                    for addresses in data["own"]
                ),
                channels=tuple(int(p) for p in data.get("channels", ())),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"not a worker spec: {e}") from None

    def sibling_of(self, transport: str, host: str, port: int) -> int | None:
        """
        The index of the other worker whose own socket is C{transport}
        C{host:port}, or C{None} (ours, or no worker's).
        """
        for index, addresses in enumerate(self.own):
            if index == self.index:
                continue
            for t, h, p in addresses:
                if p == port and t == transport and (h == host or h in ("0.0.0.0", "::")):
                    return index
        return None


def bind_socket(transport: str, host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """
    A socket bound to C{host:port} (listening, for TCP and TLS), inheritable
    by child processes.

    @raise OSError: if it cannot be bound.
    """
    kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
    sock = socket.socket(_family(host), kind)
    try:
        if sock.family == socket.AF_INET6:  # [::] beside 0.0.0.0, as one process binds it
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_group(
    listeners: Iterable[tuple[str, str, int]], count: int
) -> tuple[list[list[WorkerSocket]], list[socket.socket]]:
    """
    The sockets of C{count} workers for C{listeners} (C{(transport, host,
    port)}; port 0 picks one port that all workers share): per worker, per
    listener, one L{SHARED} socket on the public address and one L{OWN} on
    a port the system picks; and one L{CHANNEL} socket (UDP on
    L{CHANNEL_HOST}) for what workers hand each other.

    @return: per worker its sockets, and every socket object (keep them
        open while the workers run; close them to stop listening).
    @raise OSError: naming the listener that cannot be bound (everything
        bound so far is closed).
    """
    per_worker: list[list[WorkerSocket]] = [[] for _ in range(count)]
    opened: list[socket.socket] = []
    try:
        for transport, host, port in listeners:
            shared_port = port
            for index in range(count):
                try:
                    sock = bind_socket(transport, host, shared_port, reuse_port=True)
                except OSError as e:
                    raise OSError(
                        e.errno, f"{transport.lower()}:{host}:{shared_port}: {e.strerror}"
                    ) from None
                opened.append(sock)
                shared_port = sock.getsockname()[1]
                per_worker[index].append(
                    WorkerSocket(transport, SHARED, host, shared_port, sock.fileno())
                )
                own = bind_socket(transport, host, 0, reuse_port=False)
                opened.append(own)
                per_worker[index].append(
                    WorkerSocket(transport, OWN, host, own.getsockname()[1], own.fileno())
                )
        for index in range(count):
            channel = bind_socket("UDP", CHANNEL_HOST, 0, reuse_port=False)
            opened.append(channel)
            per_worker[index].append(
                WorkerSocket("UDP", CHANNEL, CHANNEL_HOST, channel.getsockname()[1],
                             channel.fileno())
            )
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return per_worker, opened


def bind_private(role: str, count: int) -> tuple[list[WorkerSocket], list[socket.socket]]:
    """
    One listening TCP socket on L{CHANNEL_HOST} per worker, on a port the
    system picks, in C{role} (L{ADMIN} or L{METRICS}): the supervisor asks
    worker C{index} there, and the port stays the same when it restarts.

    @return: per worker its socket, and the socket objects (keep them
        open while the workers run).
    @raise OSError: if one cannot be bound (those bound are closed).
    """
    found: list[WorkerSocket] = []
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = bind_socket("TCP", CHANNEL_HOST, 0, reuse_port=False)
            opened.append(sock)
            found.append(WorkerSocket("TCP", role, CHANNEL_HOST, sock.getsockname()[1],
                                      sock.fileno()))
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return found, opened


def private_port(sockets: Sequence[WorkerSocket], role: str) -> int | None:
    """The port of the socket in C{role} among C{sockets}, or C{None}."""
    return next((s.port for s in sockets if s.role == role), None)


def channel_ports(per_worker: Sequence[Sequence[WorkerSocket]]) -> tuple[int, ...]:
    """Per worker, the port of its channel socket."""
    return tuple(
        next((s.port for s in sockets if s.role == CHANNEL), 0) for sockets in per_worker
    )


def own_addresses(
    per_worker: Sequence[Sequence[WorkerSocket]],
) -> tuple[tuple[tuple[str, str, int], ...], ...]:
    """Per worker, its own sockets as C{(transport, host, port)}."""
    return tuple(
        tuple((s.transport, s.host, s.port) for s in sockets if s.role == OWN)
        for sockets in per_worker
    )
