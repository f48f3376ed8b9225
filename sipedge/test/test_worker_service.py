# -*- test-case-name: sipedge.test.test_worker_service -*-
"""
Tests for L{sipedge.worker_service}: what a worker runs. The processes
themselves are tested end to end in L{sipedge.test.test_e2e_workers}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import parse_config
from sipedge.flow import Flow
from sipedge.metrics import TcpListen
from sipedge.process import ADMIN, METRICS, NO_FLOW, WorkerRouter, WorkerSocket, WorkerSpec
from sipedge.security import Security
from sipedge.testing import RecordingReceiver
from sipedge.worker_service import (
    NEWS_BATCH,
    SharedLostBindings,
    SupervisorService,
    news_batches,
    own_ports,
    share_security,
    worker_config,
)


def _spec(index: int, *private: tuple[str, int]) -> WorkerSpec:
    """Worker C{index} of 2, with private sockets C{(role, port)}."""
    sockets = tuple(WorkerSocket("TCP", role, "127.0.0.1", port, 20 + n)
                    for n, (role, port) in enumerate(private))
    return WorkerSpec(index, 2, sockets, ((), ()))


class WorkerConfigTests(SynchronousTestCase):
    """L{worker_config}."""

    def config(self) -> Any:
        return parse_config({
            "sip": {"advertise": "203.0.113.7:5060"},
            "admin": {"listen": "tcp:0.0.0.0:8080", "tls": True},
            "metrics": {"listen": "tcp:0.0.0.0:9100"},
        })

    def test_admin_and_metrics_on_private_ports(self) -> None:
        """
        Every worker serves the admin API (plain HTTP) and the metrics on
        the loopback ports its supervisor bound for it, whatever the
        public addresses are (the supervisor serves those).
        """
        for index in (0, 1):
            config = worker_config(self.config(), _spec(index, (ADMIN, 4001 + index),
                                                        (METRICS, 4101 + index)))
            self.assertEqual(config.admin.listen, TcpListen("127.0.0.1", 4001 + index))
            self.assertFalse(config.admin.secure)
            self.assertEqual(config.metrics.listen, TcpListen("127.0.0.1", 4101 + index))

    def test_none_without_private_ports(self) -> None:
        """Without a private socket, a worker serves no admin API and no metrics."""
        config = worker_config(self.config(), _spec(0))
        self.assertIsNone(config.admin.listen)
        self.assertIsNone(config.metrics.listen)

    def test_advertise_keeps_host_not_port(self) -> None:
        """An advertised address keeps its host; each worker names its own port."""
        advertise = worker_config(self.config(), _spec(1)).sip.advertise
        assert advertise is not None
        self.assertEqual((advertise.host, advertise.port), ("203.0.113.7", None))

    def test_rest_unchanged(self) -> None:
        """Nothing else changes."""
        config = parse_config({"sip": {"domains": ["sipedge.test"]}})
        self.assertEqual(worker_config(config, _spec(1)), config)


class SupervisorServiceTests(SynchronousTestCase):
    """L{SupervisorService} before its workers run."""

    def test_cannot_listen(self) -> None:
        """A listener that cannot be bound stops start-up with one message naming it."""
        import socket

        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = parse_config({"sip": {"listen": [f"tcp:127.0.0.1:{port}"]}})
        config = attrs.evolve(config, state=attrs.evolve(config.state, path=Path(self.mktemp())))
        service = SupervisorService(config, Clock(), 2, lambda spec: ["true"])
        error = self.assertRaises(SystemExit, service.privilegedStartService)
        self.assertEqual(str(error), f"sipedge: cannot listen on tcp:127.0.0.1:{port}:"
                                     " Address already in use")


class _Wire:
    """A channel that delivers each datagram at once to the other worker's router."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.peer: WorkerRouter | None = None

    def send_to_others(self, kind: str, flow: Flow, payload: bytes = b"") -> int:
        assert self.peer is not None
        self.peer.deliver(self.index, kind, flow, payload)
        return 1

    def send(self, index: int, kind: str, flow: Flow, payload: bytes = b"") -> bool:
        assert self.peer is not None and index == 1 - self.index
        self.peer.deliver(self.index, kind, flow, payload)
        return True


def _restart(routers: list[WorkerRouter], index: int) -> WorkerRouter:
    """Worker C{index} (re)started: a new router wired to the other one, which it greets."""
    router = WorkerRouter(RecordingReceiver(), _spec(index))
    router.channel = _Wire(index)  # type: ignore[assignment]
    other = routers[1 - index]
    router.channel.peer = other  # type: ignore[union-attr]
    other.channel.peer = router  # type: ignore[union-attr]
    routers[index] = router
    return router


class ShareSecurityTests(SynchronousTestCase):
    """
    L{share_security}: two workers' security services, sharing a state
    directory, told of each other's authentications and bans at once.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        directory = Path(self.mktemp())
        directory.mkdir()
        self.directory = directory
        self.security: list[Security] = []
        routers = []
        for index in (0, 1):
            security = Security(clock=self.clock, state_dir=directory)
            self.addCleanup(security.close)
            router = WorkerRouter(RecordingReceiver(), _spec(index))
            router.channel = _Wire(index)  # type: ignore[assignment]
            share_security(security, router)
            self.security.append(security)
            routers.append(router)
        routers[0].channel.peer = routers[1]  # type: ignore[union-attr]
        routers[1].channel.peer = routers[0]  # type: ignore[union-attr]
        self.routers = routers
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_authenticated(self) -> None:
        """
        A source that authenticated through one worker is authenticated on
        the other at once, until the same expiry.
        """
        first, second = self.security
        self.assertFalse(second.is_authenticated("192.0.2.5"))
        first.note_authenticated("192.0.2.5", "alice", self.clock.seconds() + 60)
        self.assertTrue(second.is_authenticated("192.0.2.5"))
        self.assertEqual(second.allow.users("192.0.2.5", 0), {"alice": 60.0})
        self.clock.advance(61)
        self.assertFalse(second.is_authenticated("192.0.2.5"))

    def test_heard_is_not_told_again(self) -> None:
        """What a worker heard from another it does not tell again (no echo)."""
        self.security[0].note_authenticated("192.0.2.5", "alice", 60)
        self.security[0].ban("192.0.2.6", "testing")
        self.assertEqual(self.routers[0].handed["authenticated"], 1)
        self.assertEqual(self.routers[1].handed.get("authenticated", 0), 0)
        self.assertEqual(self.routers[1].handed.get("banned", 0), 0)

    def test_ban(self) -> None:
        """A ban made by one worker drops the source at the other at once, not at its purge."""
        first, second = self.security
        self.assertTrue(second.admit("192.0.2.6"))
        first.ban("192.0.2.6", "testing")
        self.assertFalse(second.admit("192.0.2.6"))

    def test_offence_ban(self) -> None:
        """An automatic ban (offences past the threshold) reaches the other worker at once."""
        first, second = self.security
        for _ in range(50):
            if first.offence("192.0.2.8", "scanner") is not None:
                break
        self.assertFalse(first.admit("192.0.2.8"))
        self.assertFalse(second.admit("192.0.2.8"))

    def test_restarted_worker_told(self) -> None:
        """
        A worker that (re)starts is told, when it says C{hello}, every
        source the others know to be authenticated (noted there or heard
        of), not the expired ones.
        """
        first = self.security[0]
        now = self.clock.seconds()
        first.note_authenticated("192.0.2.5", "alice", now + 60)
        first.note_authenticated("192.0.2.5", "carol", now + 90)
        first.allow.note_authenticated("192.0.2.7", "bob", now + 600)  # heard of, say
        first.allow.note_authenticated("192.0.2.9", "dave", now - 1)  # expired
        again = Security(clock=self.clock, state_dir=self.directory)
        self.addCleanup(again.close)
        router = _restart(self.routers, 1)
        share_security(again, router)
        self.assertFalse(again.is_authenticated("192.0.2.5"))
        router.hello()
        self.assertEqual(again.allow.users("192.0.2.5", now), {"alice": 60.0, "carol": 90.0})
        self.assertEqual(again.allow.users("192.0.2.7", now), {"bob": 600.0})
        self.assertFalse(again.is_authenticated("192.0.2.9"))
        self.assertEqual(self.routers[0].handed["authenticated"], 3)  # two notes, one greeting

    def test_not_understood(self) -> None:
        """News that does not decode is logged, and changes nothing."""
        self.routers[1].deliver(0, "authenticated", NO_FLOW, b"[1, 2]")
        self.routers[1].deliver(0, "authenticated", NO_FLOW, b"\xff")
        self.assertEqual(len(self.security[1].allow), 0)
        self.assertEqual(self.flushLoggedErrors(), [])


class OwnPortsTests(SynchronousTestCase):
    """L{own_ports}: what kernel bans cover besides a worker's own sockets."""

    def test_every_worker(self) -> None:
        """Every worker's own ports, each once, whatever the transport."""
        spec = WorkerSpec(
            1, 3, (),
            (
                (("UDP", "127.0.0.1", 4000), ("TCP", "127.0.0.1", 4000)),
                (("UDP", "127.0.0.1", 5000), ("TLS", "127.0.0.1", 5001)),
                (("UDP", "::1", 6000),),
            ),
        )
        self.assertEqual(own_ports(spec), [4000, 5000, 5001, 6000])


class SharedLostBindingsTests(SynchronousTestCase):
    """L{SharedLostBindings}: the users whose phones were lost, told to the other workers."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.lost: list[SharedLostBindings] = []
        routers = []
        for index in (0, 1):
            router = WorkerRouter(RecordingReceiver(), _spec(index))
            router.channel = _Wire(index)  # type: ignore[assignment]
            lost = SharedLostBindings()
            lost.listen(router, self.clock)
            self.lost.append(lost)
            routers.append(router)
        routers[0].channel.peer = routers[1]  # type: ignore[union-attr]
        routers[1].channel.peer = routers[0]  # type: ignore[union-attr]
        self.routers = routers

    def test_lost_everywhere(self) -> None:
        """A phone lost at one worker is lost at the other, until the same time."""
        self.lost[0].lost("sip:bob@example.com", 100.0)
        self.assertTrue(self.lost[1].is_lost("sip:bob@example.com", 99.0))
        self.assertFalse(self.lost[1].is_lost("sip:bob@example.com", 100.0))

    def test_found_everywhere(self) -> None:
        """A lost user that registers again through one worker is not lost at the other."""
        self.lost[0].lost("sip:bob@example.com", 100.0)
        self.lost[1].forget("sip:bob@example.com")
        self.assertFalse(self.lost[0].is_lost("sip:bob@example.com", 0.0))
        self.assertEqual((len(self.lost[0]), len(self.lost[1])), (0, 0))

    def test_forget_unknown_is_not_told(self) -> None:
        """Forgetting a user that was not lost (every REGISTER does) tells nobody."""
        self.lost[0].forget("sip:alice@example.com")
        self.assertEqual(self.routers[0].handed.get("found", 0), 0)

    def test_not_understood(self) -> None:
        """News of a lost phone that does not decode is logged, and changes nothing."""
        self.routers[1].deliver(0, "lost", NO_FLOW, b"[1]")
        self.assertEqual(len(self.lost[1]), 0)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_restarted_worker_told(self) -> None:
        """A worker that (re)starts is told every user still lost, not the others."""
        self.clock.advance(50)
        self.lost[0].lost("sip:bob@example.com", 100.0)
        self.lost[0].lost("sip:carol@example.com", 40.0)  # over already
        again = SharedLostBindings()
        router = _restart(self.routers, 1)
        again.listen(router, self.clock)
        router.hello()
        self.assertTrue(again.is_lost("sip:bob@example.com", 60.0))
        self.assertEqual(len(again), 1)

    def test_alone(self) -> None:
        """Before it listens (no channel yet), it is a plain L{LostBindings}."""
        lost = SharedLostBindings()
        lost.lost("sip:bob@example.com", 10.0)
        lost.forget("sip:bob@example.com")
        self.assertEqual(len(lost), 0)


class NewsBatchesTests(SynchronousTestCase):
    """L{news_batches}: news entries in channel payloads of bounded size."""

    def test_batched(self) -> None:
        """
        Many entries go in few payloads, each a JSON list of at most
        L{NEWS_BATCH} bytes, together every entry in order.
        """
        entries = [(f"192.0.2.{n % 250}", f"user{n}", 1000.0 + n) for n in range(3000)]
        payloads = list(news_batches(entries))
        self.assertGreater(len(payloads), 1)
        self.assertLess(len(payloads), 10)
        for payload in payloads:
            self.assertLessEqual(len(payload), NEWS_BATCH)
        found = [tuple(entry) for payload in payloads for entry in json.loads(payload)]
        self.assertEqual(found, entries)

    def test_none(self) -> None:
        """No entries: no payload (nothing is sent)."""
        self.assertEqual(list(news_batches([])), [])

    def test_one_too_large(self) -> None:
        """An entry larger than a batch alone still goes, in a payload of its own."""
        big = ("x" * (NEWS_BATCH + 10), "u", 1.0)
        payloads = list(news_batches([("a", "b", 2.0), big, ("c", "d", 3.0)]))
        self.assertEqual([len(json.loads(p)) for p in payloads], [1, 1, 1])
