# -*- test-case-name: sipedge.test.test_worker_service -*-
"""
Tests for L{sipedge.worker_service}: what a worker runs. The processes
themselves are tested end to end in L{sipedge.test.test_e2e_workers}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import parse_config
from sipedge.metrics import TcpListen
from sipedge.process import ADMIN, METRICS, WorkerSocket, WorkerSpec
from sipedge.worker_service import SupervisorService, worker_config


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
