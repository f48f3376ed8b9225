# -*- test-case-name: sipedge.test.test_metrics -*-
"""
The Prometheus registry of a running sipedge: its collector, reading the
service's parts at each scrape, and the process collector.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from sipedge.metrics._collector import MetricSources, SipEdgeCollector

__all__ = ["service_registry"]


def service_registry(service: Any) -> CollectorRegistry:
    """
    Prometheus's view of C{service} (a C{sipedge.service.SipEdgeService}:
    its message counter, proxy core, transactions, dialogs, security,
    media relay, transports, HEP sender and loop-lag monitor), read at each
    scrape.
    """
    security, transactions, transports = (
        service.security, service.core.transactions, service.transports
    )
    dialogs = service.dialogs

    def connections() -> dict[str, int]:
        counts = {"TCP": 0, "TLS": 0}
        for protocol in transports.connections:
            counts[protocol.name] = counts.get(protocol.name, 0) + 1
        return counts

    store = service.store
    counts = getattr(store, "counts", None)
    # The digest-auth stages of the chain (one, usually) keep their decisions.
    auth_stages = [stage for stage in service.core.chain.stages
                   if isinstance(getattr(stage, "outcomes", None), Counter)]

    def auth() -> Counter[tuple[str, str]]:
        total: Counter[tuple[str, str]] = Counter()
        for stage in auth_stages:
            total.update(stage.outcomes)
        return total

    sources = MetricSources(
        messages=service.messages,
        proxy_stats=service.core.stats,
        transaction_stats=transactions.stats,
        transactions=lambda: (
            len(transactions.server_transactions), len(transactions.client_transactions)
        ),
        dialog_stats=dialogs.stats if dialogs is not None else None,
        dialogs=(lambda: len(dialogs)) if dialogs is not None else None,
        security_stats=security.stats,
        bans=lambda: len(security.bans.list(security.clock.seconds())),
        relay_stats=getattr(service.media, "stats_now", None),
        connections=connections,
        hep=service.hep_sender,
        lag=service.loop_lag,
        registrations=(lambda: counts(security.clock.seconds())) if counts is not None else None,
        auth=auth if auth_stages else None,
        tls=lambda: (transports.tls_connections, transports.tls_handshake_failures),
        flood=lambda: security.limiter.refused,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SipEdgeCollector(sources))
    ProcessCollector(registry=registry)
    return registry
