# -*- test-case-name: sipedge.test.test_worker_service -*-
"""
Tests for L{sipedge.worker_service}: what a worker runs. The processes
themselves are tested end to end in L{sipedge.test.test_e2e_workers}.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import parse_config
from sipedge.worker_service import SupervisorService, worker_config


class WorkerConfigTests(SynchronousTestCase):
    """L{worker_config}."""

    def config(self) -> object:
        return parse_config({
            "sip": {"advertise": "203.0.113.7:5060"},
            "admin": {"listen": "tcp:127.0.0.1:0"},
            "metrics": {"listen": "tcp:127.0.0.1:0"},
        })

    def test_admin_and_metrics_on_worker_zero(self) -> None:
        """Worker 0 serves the admin API and the metrics; the others do not."""
        config = self.config()
        first, second = worker_config(config, 0), worker_config(config, 1)  # type: ignore[arg-type]
        self.assertIsNotNone(first.admin.listen)
        self.assertIsNotNone(first.metrics.listen)
        self.assertIsNone(second.admin.listen)
        self.assertIsNone(second.metrics.listen)

    def test_advertise_keeps_host_not_port(self) -> None:
        """An advertised address keeps its host; each worker names its own port."""
        advertise = worker_config(self.config(), 1).sip.advertise  # type: ignore[arg-type]
        assert advertise is not None
        self.assertEqual((advertise.host, advertise.port), ("203.0.113.7", None))

    def test_rest_unchanged(self) -> None:
        """Nothing else changes."""
        config = parse_config({"sip": {"domains": ["sipedge.test"]}})
        self.assertEqual(worker_config(config, 3), config)


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
