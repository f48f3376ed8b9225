"""
Metrics for Prometheus: L{MessageCounter} (a message tap counting requests
and responses), L{LoopLag}, and L{SipEdgeCollector}, which reads those and
the counters the proxy, transaction layer, dialog tracker, security edge
and media relay keep anyway, when Prometheus scrapes C{/metrics}
(L{metrics_site}). See C{doc/operations.md}.
"""

from sipedge.metrics._collector import MetricSources, SipEdgeCollector
from sipedge.metrics._config import MetricsConfig, MetricsListen, TcpListen
from sipedge.metrics._lag import LoopLag
from sipedge.metrics._merge import (
    WorkersMetricsResource,
    merge_expositions,
    workers_metrics_site,
)
from sipedge.metrics._messages import KNOWN_METHODS, MessageCounter
from sipedge.metrics._registry import service_registry
from sipedge.metrics._web import MetricsResource, metrics_site

__all__ = [
    "KNOWN_METHODS",
    "LoopLag",
    "MessageCounter",
    "MetricSources",
    "MetricsConfig",
    "MetricsListen",
    "MetricsResource",
    "SipEdgeCollector",
    "TcpListen",
    "WorkersMetricsResource",
    "merge_expositions",
    "metrics_site",
    "service_registry",
    "workers_metrics_site",
]
