# -*- test-case-name: sipedge.test.test_metrics_merge -*-
"""
Tests for L{sipedge.metrics._merge}: the supervisor's C{/metrics}, made of
its workers' expositions, with workers answering in memory.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from sipedge.metrics import WorkersMetricsResource, merge_expositions

_WORKER = """\
# HELP sipedge_sip_requests_total SIP requests
# TYPE sipedge_sip_requests_total counter
sipedge_sip_requests_total{direction="in",method="INVITE"} %d.0
# HELP sipedge_dialogs Dialogs tracked
# TYPE sipedge_dialogs gauge
sipedge_dialogs %d.0
"""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class MergeTests(SynchronousTestCase):
    """L{merge_expositions}."""

    def test_labelled_by_worker(self) -> None:
        """Each worker's samples keep their labels and gain C{worker}; one family each."""
        families = merge_expositions({1: _WORKER % (4, 1), 0: _WORKER % (3, 2)})
        self.assertEqual([f.name for f in families], ["sipedge_sip_requests", "sipedge_dialogs"])
        requests, dialogs = families
        self.assertEqual(requests.type, "counter")
        self.assertEqual(
            [(s.labels, s.value) for s in requests.samples],
            [({"direction": "in", "method": "INVITE", "worker": "0"}, 3.0),
             ({"direction": "in", "method": "INVITE", "worker": "1"}, 4.0)],
        )
        self.assertEqual([(s.labels, s.value) for s in dialogs.samples],
                         [({"worker": "0"}, 2.0), ({"worker": "1"}, 1.0)])

    def test_not_an_exposition(self) -> None:
        """A text that is not Prometheus's format is a C{ValueError}."""
        self.assertRaises(ValueError, merge_expositions, {0: "this is { not metrics\n"})


class ResourceTests(SynchronousTestCase):
    """L{WorkersMetricsResource}."""

    def render(self, scrape: Any, serving: list[int], starts: list[int]) -> tuple[int, str]:
        resource = WorkersMetricsResource(scrape, lambda: serving, lambda: starts)
        request: Any = DummyRequest([b""])
        self.assertIs(resource.render_GET(request), NOT_DONE_YET)
        self.assertTrue(request.finished)
        return request.responseCode or 200, b"".join(request.written).decode()

    def test_every_worker(self) -> None:
        """
        The serving workers' samples are served together, with whether
        each worker answered and how many times it was started.
        """
        texts = {0: _WORKER % (3, 2), 1: _WORKER % (4, 1)}
        status, text = self.render(lambda i: succeed(texts[i]), [0, 1], [1, 2])
        samples = _samples(text)
        self.assertEqual(status, 200)
        self.assertEqual(samples[("sipedge_sip_requests_total", (
            ("direction", "in"), ("method", "INVITE"), ("worker", "1")))], 4.0)
        self.assertEqual(samples[("sipedge_dialogs", (("worker", "0"),))], 2.0)
        self.assertEqual(samples[("sipedge_worker_up", (("worker", "1"),))], 1.0)
        self.assertEqual(samples[("sipedge_worker_starts_total", (("worker", "1"),))], 2.0)

    def test_worker_missing(self) -> None:
        """
        A worker that fails, answers what does not parse, or is not serving
        is left out, and its C{sipedge_worker_up} is 0.
        """
        answers: dict[int, Deferred[str]] = {
            0: succeed(_WORKER % (3, 2)),
            1: fail(ConnectionRefusedError()),
            2: succeed("{{ not metrics"),
        }
        status, text = self.render(lambda i: answers[i], [0, 1, 2], [1, 1, 1, 3])
        self.flushLoggedErrors()
        samples = _samples(text)
        self.assertEqual(status, 200)
        self.assertEqual(
            {labels: value for (name, labels), value in samples.items()
             if name == "sipedge_worker_up"},
            {(("worker", "0"),): 1.0, (("worker", "1"),): 0.0, (("worker", "2"),): 0.0,
             (("worker", "3"),): 0.0},
        )
        self.assertEqual({labels for name, labels in samples if name == "sipedge_dialogs"},
                         {(("worker", "0"),)})
