# -*- test-case-name: sipedge.test.test_metrics -*-
"""
The Prometheus collector: reads sipedge's own counters when Prometheus
scrapes, so the proxy's hot paths keep bumping plain dicts and pay nothing
for metrics. Label values are bounded: methods, status classes, fixed
counter names and drop reasons, never Call-IDs or addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from sipedge import __version__
from sipedge.metrics._lag import LoopLag
from sipedge.metrics._messages import MessageCounter
from sipedge.security import METHOD_CLASSES, TIERS

__all__ = ["MetricSources", "SipEdgeCollector"]


@attrs.define
class MetricSources:
    """
    What the collector reads; each part may be missing (C{None}).

    @ivar messages: the message tap.
    @ivar proxy_stats: the proxy core's counters (requests, forwarded, ...).
    @ivar transaction_stats: the transaction layer's counters.
    @ivar transactions: live C{(server, client)} transaction counts.
    @ivar dialog_stats: the dialog tracker's counters.
    @ivar dialogs: live dialogs.
    @ivar security_stats: the security edge's counters (refusals and
        drops by rule, bans, offences).
    @ivar bans: active bans now.
    @ivar relay_stats: the in-process media relay's totals now
        (a L{sipedge.media.RelayStats}).
    @ivar connections: open TCP/TLS connections by transport.
    @ivar hep: the HEP sender (sent, dropped, errors).
    @ivar lag: the event-loop lag monitor.
    @ivar registrations: C{(AORs registered, bindings)} now.
    @ivar auth: digest authentication decisions by C{(outcome, algorithm)}.
    @ivar tls: TLS connections made and handshakes failed, each by side
        (C{"inbound"}, C{"outbound"}).
    @ivar flood: requests over their rate budget by C{(budget, method class)}.
    """

    messages: MessageCounter | None = None
    proxy_stats: Mapping[str, int] | None = None
    transaction_stats: Mapping[str, int] | None = None
    transactions: Callable[[], tuple[int, int]] | None = None
    dialog_stats: Mapping[str, int] | None = None
    dialogs: Callable[[], int] | None = None
    security_stats: Mapping[str, int] | None = None
    bans: Callable[[], int] | None = None
    relay_stats: Callable[[], Any] | None = None
    connections: Callable[[], Mapping[str, int]] | None = None
    hep: Any = None
    lag: LoopLag | None = None
    registrations: Callable[[], tuple[int, int]] | None = None
    auth: Callable[[], Mapping[tuple[str, str], int]] | None = None
    tls: Callable[[], tuple[Mapping[str, int], Mapping[str, int]]] | None = None
    flood: Callable[[], Mapping[tuple[str, str], int]] | None = None


def _counter_family(
    name: str, documentation: str, label: str, values: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key in sorted(values):
        family.add_metric([key], values[key])
    return family


def _sided(name: str, documentation: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["side"])
    for side in ("inbound", "outbound"):
        family.add_metric([side], values.get(side, 0))
    return family


class SipEdgeCollector:
    """A custom collector (C{prometheus_client} registry protocol)."""

    def __init__(self, sources: MetricSources) -> None:
        self._sources = sources

    def describe(self) -> list[Metric]:
        return []  # dynamic: do not collect at registration

    def collect(self) -> Iterator[Metric]:
        s = self._sources
        info = GaugeMetricFamily("sipedge_info", "sipedge's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if s.messages is not None:
            requests = CounterMetricFamily(
                "sipedge_sip_requests", "SIP requests received (in) and sent (out), by method",
                labels=["direction", "method"],
            )
            for (direction, method), count in sorted(s.messages.requests.items()):
                requests.add_metric([direction, method], count)
            yield requests
            responses = CounterMetricFamily(
                "sipedge_sip_responses",
                "SIP responses received (in) and sent (out), by status class",
                labels=["direction", "class"],
            )
            for (direction, cls), count in sorted(s.messages.responses.items()):
                responses.add_metric([direction, cls], count)
            yield responses
            yield CounterMetricFamily(
                "sipedge_sip_malformed", "Messages received that did not parse",
                value=s.messages.malformed,
            )
        if s.proxy_stats is not None:
            yield _counter_family(
                "sipedge_proxy_requests", "Requests the proxy core handled, by outcome",
                "outcome", s.proxy_stats,
            )
        if s.transaction_stats is not None:
            yield _counter_family(
                "sipedge_transaction_events", "Transaction layer events",
                "event", s.transaction_stats,
            )
        if s.transactions is not None:
            server, client = s.transactions()
            live = GaugeMetricFamily("sipedge_transactions", "Live transactions", labels=["side"])
            live.add_metric(["server"], server)
            live.add_metric(["client"], client)
            yield live
        if s.dialog_stats is not None:
            yield _counter_family(
                "sipedge_dialog_events", "Dialog tracker events", "event", s.dialog_stats,
            )
        if s.dialogs is not None:
            yield GaugeMetricFamily("sipedge_dialogs", "Live dialogs tracked", value=s.dialogs())
        if s.security_stats is not None:
            yield _counter_family(
                "sipedge_security_events",
                "Security edge events: refusals and drops by rule, bans, offences by kind",
                "event", s.security_stats,
            )
        if s.bans is not None:
            yield GaugeMetricFamily("sipedge_bans", "Sources banned now", value=s.bans())
        if s.registrations is not None:
            aors, bindings = s.registrations()
            yield GaugeMetricFamily(
                "sipedge_registrations", "AORs with a live registration", value=aors
            )
            yield GaugeMetricFamily(
                "sipedge_registration_bindings", "Live registered contacts (bindings)",
                value=bindings,
            )
        if s.auth is not None:
            auth = CounterMetricFamily(
                "sipedge_auth",
                "Digest authentication decisions, by outcome (ok, challenged, failed,"
                " forbidden, refused) and the algorithm of the credentials (none without any)",
                labels=["outcome", "algorithm"],
            )
            for (outcome, algorithm), count in sorted(s.auth().items()):
                auth.add_metric([outcome, algorithm], count)
            yield auth
        if s.tls is not None:
            made, failed = s.tls()
            yield _sided("sipedge_tls_connections", "TLS connections made, by side", made)
            yield _sided("sipedge_tls_handshake_failures",
                         "TLS connections lost before their handshake completed, by side",
                         failed)
        if s.flood is not None:
            refused = s.flood()
            flood = CounterMetricFamily(
                "sipedge_flood_refused",
                "Requests dropped over their source's rate budget, by budget and method class",
                labels=["budget", "class"],
            )
            for budget in TIERS:
                for klass in METHOD_CLASSES:
                    flood.add_metric([budget, klass], refused.get((budget, klass), 0))
            yield flood
        if s.relay_stats is not None:
            yield from self._relay(s.relay_stats())
        if s.connections is not None:
            connections = GaugeMetricFamily(
                "sipedge_connections", "Open TCP and TLS connections", labels=["transport"]
            )
            for transport, count in sorted(s.connections().items()):
                connections.add_metric([transport], count)
            yield connections
        if s.hep is not None:
            hep = CounterMetricFamily(
                "sipedge_hep_packets", "HEP capture packets, by outcome", labels=["outcome"]
            )
            hep.add_metric(["sent"], s.hep.sent)
            hep.add_metric(["dropped"], s.hep.dropped)
            hep.add_metric(["error"], s.hep.errors)
            yield hep
        if s.lag is not None:
            yield GaugeMetricFamily(
                "sipedge_event_loop_lag_seconds",
                "How late the last once-a-second timer fired", value=s.lag.last,
            )
            yield GaugeMetricFamily(
                "sipedge_event_loop_lag_max_seconds",
                "The latest a once-a-second timer has fired since start", value=s.lag.worst,
            )

    def _relay(self, stats: Any) -> Iterator[Metric]:
        yield GaugeMetricFamily("sipedge_relay_sessions", "Live media relay sessions",
                                value=stats.sessions)
        yield CounterMetricFamily("sipedge_relay_sessions_allocated",
                                  "Media relay sessions allocated", value=stats.allocated)
        yield _counter_family("sipedge_relay_sessions_ended", "Media relay sessions ended",
                              "reason", stats.ended)
        yield GaugeMetricFamily("sipedge_relay_ports_open", "Media relay ports bound now",
                                value=stats.open_ports)
        packets = CounterMetricFamily("sipedge_relay_packets", "Media packets forwarded",
                                      labels=["direction"])
        octets = CounterMetricFamily("sipedge_relay_bytes", "Media bytes forwarded",
                                     labels=["direction"])
        drops = CounterMetricFamily("sipedge_relay_dropped_packets",
                                    "Media packets dropped, by reason",
                                    labels=["direction", "reason"])
        for direction, counts in (("a_to_b", stats.a_to_b), ("b_to_a", stats.b_to_a)):
            packets.add_metric([direction], counts.packets)
            octets.add_metric([direction], counts.bytes)
            for reason, count in sorted(counts.drops.items()):
                drops.add_metric([direction, reason], count)
        yield packets
        yield octets
        yield drops
