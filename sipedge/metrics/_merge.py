# -*- test-case-name: sipedge.test.test_metrics_merge -*-
"""
C{/metrics} of several workers, served by their supervisor: it scrapes
each worker on its private port and serves their samples together, each
labelled C{worker="N"} (C{sum without (worker) (...)} gives the whole),
with its own C{sipedge_worker_up} and C{sipedge_worker_starts_total}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

__all__ = ["WorkersMetricsResource", "merge_expositions", "workers_metrics_site"]

_log = Logger(namespace="sipedge.metrics")


def _labelled(index: int, text: str) -> list[Metric]:
    """The families of one worker's exposition, each sample labelled C{worker}."""
    worker = str(index)
    families = list(text_string_to_metric_families(text))
    for family in families:
        family.samples = [sample._replace(labels={**sample.labels, "worker": worker})
                          for sample in family.samples]
    return families


def _combined(per_worker: Iterable[list[Metric]]) -> list[Metric]:
    families: dict[str, Metric] = {}
    for worker_families in per_worker:
        for family in worker_families:
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            merged.samples.extend(family.samples)
    return list(families.values())


def merge_expositions(texts: Mapping[int, str]) -> list[Metric]:
    """
    The metric families of several workers' expositions (per worker index,
    Prometheus's text format), each sample labelled C{worker}.

    @raise ValueError: if a text is not in Prometheus's format.
    """
    return _combined(_labelled(index, texts[index]) for index in sorted(texts))


def _supervisor_families(up: Iterable[int], starts: Sequence[int]) -> list[Metric]:
    alive = set(up)
    up_family = GaugeMetricFamily(
        "sipedge_worker_up", "Whether the worker answered this scrape", labels=["worker"]
    )
    starts_family = CounterMetricFamily(
        "sipedge_worker_starts", "Times the supervisor started the worker", labels=["worker"]
    )
    for index, started in enumerate(starts):
        up_family.add_metric([str(index)], 1 if index in alive else 0)
        starts_family.add_metric([str(index)], started)
    return [up_family, starts_family]


class _Families:
    """What C{generate_latest} reads: a fixed list of families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class WorkersMetricsResource(Resource):
    """
    On GET, the metrics of every serving worker, merged.

    A worker that does not answer (or answers what does not parse) is left
    out of this scrape, and its C{sipedge_worker_up} is 0.
    """

    isLeaf = True

    def __init__(
        self,
        scrape: Callable[[int], Deferred[str]],
        serving: Callable[[], Sequence[int]],
        starts: Callable[[], Sequence[int]],
    ) -> None:
        """
        @param scrape: worker C{index}'s exposition text.
        @param serving: the indexes of the workers serving now.
        @param starts: per worker index, how many times it was started.
        """
        super().__init__()
        self._scrape = scrape
        self._serving = serving
        self._starts = starts

    def render_GET(self, request: Request) -> int:
        indexes = list(self._serving())
        scrapes = [self._scrape(index) for index in indexes]

        def merge(results: list[tuple[bool, Any]]) -> bytes:
            parsed: dict[int, list[Metric]] = {}
            for index, (ok, value) in zip(indexes, results, strict=True):
                if not ok:
                    _log.warn("Metrics: worker {index} did not answer: {why}",
                              index=index, why=value.getErrorMessage())
                    continue
                try:
                    parsed[index] = _labelled(index, value)
                except ValueError as e:
                    _log.warn("Metrics: worker {index}'s answer does not parse: {why}",
                              index=index, why=str(e))
            families = _combined(parsed[index] for index in sorted(parsed))
            families += _supervisor_families(parsed, self._starts())
            return generate_latest(_Families(families))

        def write(body: bytes) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
            request.write(body)
            request.finish()

        def failed(failure: Any) -> None:
            _log.failure("Metrics: merging the workers' failed", failure)
            if not request.finished and not getattr(request, "_disconnected", False):
                request.setResponseCode(500)
                request.finish()

        d = DeferredList(scrapes, consumeErrors=True).addCallback(merge)
        d.addCallback(write).addErrback(failed)
        return NOT_DONE_YET


def workers_metrics_site(resource: WorkersMetricsResource) -> Site:
    """A site with C{/metrics} served by C{resource}; other paths are 404."""
    root = Resource()
    root.putChild(b"metrics", resource)
    site = Site(root)
    site.displayTracebacks = False
    return site
