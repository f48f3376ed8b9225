# -*- test-case-name: sipedge.test.test_process_sockets -*-
"""
Tests for L{sipedge.process._sockets}: the sockets of a group of workers
and what a worker is told.
"""

from __future__ import annotations

import socket

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.process import (
    CHANNEL,
    OWN,
    SHARED,
    WorkerSocket,
    WorkerSpec,
    bind_group,
    channel_ports,
    own_addresses,
)


class BindGroupTests(SynchronousTestCase):
    """L{bind_group} on loopback."""

    def bind(self, listeners: list[tuple[str, str, int]], count: int) -> list[list[WorkerSocket]]:
        per_worker, opened = bind_group(listeners, count)
        for sock in opened:
            self.addCleanup(sock.close)
        return per_worker

    def test_shared_and_own(self) -> None:
        """
        Each worker gets, per listener, a socket on one shared port (port 0
        picks it once) and one on a port of its own.
        """
        per_worker = self.bind([("UDP", "127.0.0.1", 0), ("TCP", "127.0.0.1", 0)], 3)
        self.assertEqual(len(per_worker), 3)
        for transport in ("UDP", "TCP"):
            shared = {s.port for w in per_worker for s in w
                      if s.transport == transport and s.role == SHARED}
            own = [s.port for w in per_worker for s in w
                   if s.transport == transport and s.role == OWN]
            self.assertEqual(len(shared), 1)
            self.assertEqual(len(set(own)), 3)
            self.assertNotIn(next(iter(shared)), own)

    def test_reuse_port_spreads(self) -> None:
        """
        The shared UDP sockets form one C{SO_REUSEPORT} group: datagrams from
        many source ports reach more than one of them, and every datagram
        of one source reaches the same socket.
        """
        per_worker = self.bind([("UDP", "127.0.0.1", 0)], 2)
        fds = [s.fd for w in per_worker for s in w if s.role == SHARED]
        port = next(s.port for s in per_worker[0] if s.role == SHARED)
        receivers = [socket.socket(fileno=socket.dup(fd)) for fd in fds]
        for r in receivers:
            r.setblocking(False)
            self.addCleanup(r.close)
        where: dict[int, set[int]] = {}
        for _ in range(16):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sender.close)
            sender.bind(("127.0.0.1", 0))
            source = sender.getsockname()[1]
            for _ in range(3):
                sender.sendto(b"x", ("127.0.0.1", port))
            for index, r in enumerate(receivers):
                for _ in range(10):
                    try:
                        _, addr = r.recvfrom(10)
                    except BlockingIOError:
                        break
                    where.setdefault(addr[1], set()).add(index)
            self.assertEqual(len(where.get(source, set())), 1, where)
        self.assertEqual({i for s in where.values() for i in s}, {0, 1})

    def test_cannot_bind(self) -> None:
        """A listener that cannot be bound raises OSError naming it; nothing stays open."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        error = self.assertRaises(OSError, bind_group, [("TCP", "127.0.0.1", port)], 2)
        self.assertIn(f"tcp:127.0.0.1:{port}", str(error))

    def test_channels(self) -> None:
        """Each worker gets a channel socket of its own on loopback UDP."""
        per_worker = self.bind([("TCP", "127.0.0.1", 0)], 2)
        ports = channel_ports(per_worker)
        self.assertEqual(len(set(ports)), 2)
        for index, sockets in enumerate(per_worker):
            (channel,) = [s for s in sockets if s.role == CHANNEL]
            self.assertEqual((channel.transport, channel.host, channel.port),
                             ("UDP", "127.0.0.1", ports[index]))

    def test_own_addresses(self) -> None:
        """L{own_addresses}: per worker, its own sockets' transport, host and port."""
        per_worker = self.bind([("UDP", "127.0.0.1", 0)], 2)
        own = own_addresses(per_worker)
        self.assertEqual(len(own), 2)
        for index, addresses in enumerate(own):
            ((transport, host, port),) = addresses
            self.assertEqual((transport, host), ("UDP", "127.0.0.1"))
            self.assertIn(port, [s.port for s in per_worker[index] if s.role == OWN])


_sockets = st.builds(
    WorkerSocket,
    transport=st.sampled_from(["UDP", "TCP", "TLS"]),
    role=st.sampled_from([SHARED, OWN, CHANNEL]),
    host=st.sampled_from(["127.0.0.1", "::1", "0.0.0.0"]),
    port=st.integers(1, 65535),
    fd=st.integers(3, 1000),
)


class WorkerSpecTests(SynchronousTestCase):
    """L{WorkerSpec}: the command-line form and sibling lookup."""

    @given(
        index=st.integers(0, 7),
        sockets=st.lists(_sockets, max_size=6),
        channels=st.lists(st.integers(1, 65535), max_size=8),
    )
    def test_round_trip(self, index: int, sockets: list[WorkerSocket], channels: list[int]) -> None:
        """What L{WorkerSpec.encode} writes, L{WorkerSpec.decode} reads back."""
        own = tuple(((s.transport, s.host, s.port),) for s in sockets)
        spec = WorkerSpec(index, 8, tuple(sockets), own, tuple(channels))
        self.assertEqual(WorkerSpec.decode(spec.encode()), spec)

    def test_decode_garbage(self) -> None:
        """Something that is not a spec is a ValueError saying so."""
        for text in ("", "{}", "[1]", '{"index": 0, "count": 1, "sockets": [[1]], "own": []}'):
            error = self.assertRaises(ValueError, WorkerSpec.decode, text)
            self.assertIn("not a worker spec", str(error))

    def test_sibling_of(self) -> None:
        """L{WorkerSpec.sibling_of} names the other worker owning an address, never itself."""
        own = (
            (("UDP", "127.0.0.1", 4000), ("TCP", "127.0.0.1", 4001)),
            (("UDP", "127.0.0.1", 5000), ("TCP", "0.0.0.0", 5001)),
        )
        spec = WorkerSpec(0, 2, (), own)
        self.assertEqual(spec.sibling_of("UDP", "127.0.0.1", 5000), 1)
        self.assertEqual(spec.sibling_of("TCP", "10.0.0.1", 5001), 1)
        self.assertIsNone(spec.sibling_of("TCP", "127.0.0.1", 5000))
        self.assertIsNone(spec.sibling_of("UDP", "127.0.0.1", 4000))
        self.assertIsNone(spec.sibling_of("UDP", "127.0.0.1", 6000))
