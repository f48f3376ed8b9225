# -*- test-case-name: sipedge.test.test_metrics -*-
"""
C{/metrics} in Prometheus's text format, served by twisted.web.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["MetricsResource", "metrics_site"]


class MetricsResource(Resource):
    """Renders C{registry} on GET."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


def metrics_site(registry: CollectorRegistry) -> Site:
    """A site with C{/metrics}; other paths are 404."""
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    site = Site(root)
    site.displayTracebacks = False
    return site
