# -*- test-case-name: sipedge.test.test_metrics -*-
"""
Tests for L{sipedge.metrics}: the message counter, the loop-lag monitor,
the collector on a whole service built in memory, C{/metrics}, and
C{[metrics]}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from sipedge.config import parse_config
from sipedge.error import ConfigError
from sipedge.interfaces import IMessageTap
from sipedge.message import parse_datagram
from sipedge.metrics import LoopLag, MessageCounter, MetricsListen, MetricsResource
from sipedge.service import SipEdgeService, build_service
from sipedge.store import Binding
from sipedge.testing import FakeReactor
from sipedge.transport import Flow

_FLOW = Flow("UDP", "127.0.0.1", 5070, "127.0.0.1", 5080)


def _request(method: str, extra: str = "") -> bytes:
    return (
        f"{method} sip:sipedge.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{method.lower()}-1;rport\r\n"
        f"Max-Forwards: 0\r\nFrom: <sip:probe@other.test>;tag=m1\r\n"
        f"To: <sip:sipedge.test>\r\nCall-ID: metrics-{method.lower()}@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """C{(sample name, sorted labels) -> value} of a Prometheus text page."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class MessageCounterTests(SynchronousTestCase):
    """L{MessageCounter}."""

    def test_counts(self) -> None:
        """
        Requests are counted by direction and method, responses by direction
        and status class, malformed bytes on their own; a method sipedge does
        not know is counted as C{other}, so label values stay bounded.
        """
        counter = MessageCounter()
        self.assertTrue(verifyObject(IMessageTap, counter))
        counter.message_in(parse_datagram(_request("OPTIONS")), _FLOW)
        counter.message_in(parse_datagram(_request("OPTIONS")), _FLOW)
        counter.message_out(parse_datagram(_request("XYZZY")), _FLOW)
        response = parse_datagram(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        counter.message_out(response, _FLOW)
        counter.malformed_in(b"junk", _FLOW)
        self.assertEqual(dict(counter.requests), {("in", "OPTIONS"): 2, ("out", "other"): 1})
        self.assertEqual(dict(counter.responses), {("out", "4xx"): 1})
        self.assertEqual(counter.malformed, 1)


class LoopLagTests(SynchronousTestCase):
    """L{LoopLag} on a L{Clock}."""

    def test_lag(self) -> None:
        """
        A tick that fires on time has no lag; one the reactor reaches half a
        second late shows 0.5 s; the worst is kept; stopping leaves no timer.
        """
        clock = Clock()
        lag = LoopLag(clock, interval=1.0)
        lag.start()
        clock.advance(1.0)
        self.assertEqual((lag.last, lag.ticks), (0.0, 1))
        clock.advance(1.5)
        self.assertEqual((lag.last, lag.worst, lag.ticks), (0.5, 0.5, 2))
        clock.advance(1.0)
        self.assertEqual((lag.last, lag.worst), (0.0, 0.5))
        lag.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class _Peer(DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append(data)


class ServiceMetricsTests(SynchronousTestCase):
    """The collector of a whole service, through C{/metrics}."""

    def setUp(self) -> None:
        state = Path(self.mktemp()).absolute()
        self.config = parse_config({
            "sip": {"domains": ["sipedge.test"], "listen": ["udp:127.0.0.1:5070"]},
            "state": {"path": str(state)},
        })
        self.reactor = FakeReactor()
        self.service: SipEdgeService = build_service(self.config, self.reactor)
        self.service.privilegedStartService()
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        request = DummyRequest([b""])
        body = MetricsResource(self.service.metrics_registry).render_GET(request)  # type: ignore[arg-type]
        [content_type] = request.responseHeaders.getRawHeaders(b"content-type") or [b""]
        self.assertTrue(content_type.startswith(b"text/plain"), content_type)
        return _samples(body)

    def test_messages_and_proxy(self) -> None:
        """
        An OPTIONS answered by sipedge shows as one request in, one 2xx
        response out and one request handled by the proxy core.
        """
        peer = _Peer()
        port = self.reactor.network.bind("127.0.0.1", 5080, peer)
        port.write(_request("OPTIONS"), ("127.0.0.1", 5070))
        self.reactor.flush()
        self.assertEqual(len(peer.received), 1)
        status = peer.received[0].split(b" ", 2)[1].decode()
        metrics = self.scrape()
        self.assertEqual(
            metrics[("sipedge_sip_requests_total", (("direction", "in"), ("method", "OPTIONS")))],
            1.0,
        )
        self.assertEqual(
            metrics[("sipedge_sip_responses_total",
                     (("class", status[0] + "xx"), ("direction", "out")))],
            1.0,
        )
        self.assertEqual(
            metrics[("sipedge_proxy_requests_total", (("outcome", "requests"),))], 1.0
        )
        self.assertIn(("sipedge_transactions", (("side", "server"),)), metrics)
        self.assertEqual(metrics[("sipedge_bans", ())], 0.0)
        self.assertEqual(metrics[("sipedge_info", (("version", _version()),))], 1.0)

    def test_security_and_lag(self) -> None:
        """
        Every security counter is exported under its name, the event-loop lag
        is there, and so are the process's CPU and memory.
        """
        metrics = self.scrape()
        from sipedge.security import STAT_KEYS

        for key in STAT_KEYS:
            self.assertIn(("sipedge_security_events_total", (("event", key),)), metrics)
        self.assertIn(("sipedge_event_loop_lag_seconds", ()), metrics)
        self.assertIn(("process_resident_memory_bytes", ()), metrics)
        self.assertIn(("process_cpu_seconds_total", ()), metrics)

    def test_registrations_auth_flood_tls(self) -> None:
        """
        The registrations gauge counts AORs and bindings alive now; a
        REGISTER without credentials counts as challenged with no
        algorithm; OPTIONS past the unauthenticated budget count as refused
        by that budget and class (every budget and class is there, from 0);
        TLS connections and handshake failures are there for both sides.
        """
        now = self.reactor.seconds()
        for contact in ("<sip:alice@192.0.2.5>", "<sip:alice@192.0.2.6>"):
            binding = Binding(aor="sip:alice@sipedge.test", contact=contact,
                              expires_at=now + 300, call_id="r1", cseq=1)
            self.successResultOf(self.service.store.update(binding.aor, [binding], now))
        peer = _Peer()
        port = self.reactor.network.bind("127.0.0.1", 5080, peer)
        register = _request("REGISTER").replace(b"Max-Forwards: 0", b"Max-Forwards: 70")
        register = register.replace(b"sip:probe@other.test", b"sip:alice@sipedge.test")
        register = register.replace(b"To: <sip:sipedge.test>", b"To: <sip:alice@sipedge.test>")
        port.write(register, ("127.0.0.1", 5070))
        for n in range(12):
            port.write(_request("OPTIONS").replace(b"-1;rport", f"-{n};rport".encode()),
                       ("127.0.0.1", 5070))
        self.reactor.flush()
        self.assertTrue(peer.received[0].startswith(b"SIP/2.0 401 "), peer.received[0])
        metrics = self.scrape()
        self.assertEqual(metrics[("sipedge_registrations", ())], 1.0)
        self.assertEqual(metrics[("sipedge_registration_bindings", ())], 2.0)
        self.assertEqual(metrics[("sipedge_auth_total",
                                  (("algorithm", "none"), ("outcome", "challenged")))], 1.0)
        self.assertEqual(metrics[("sipedge_flood_refused_total",
                                  (("budget", "unauthenticated"), ("class", "other")))], 2.0)
        flood = {labels for name, labels in metrics if name == "sipedge_flood_refused_total"}
        self.assertEqual(len(flood), 9)
        for name in ("sipedge_tls_connections_total", "sipedge_tls_handshake_failures_total"):
            for side in ("inbound", "outbound"):
                self.assertEqual(metrics[(name, (("side", side),))], 0.0)
        self.reactor.advance(301)
        self.assertEqual(self.scrape()[("sipedge_registrations", ())], 0.0)

    def test_no_listener_by_default(self) -> None:
        """Without C{[metrics] listen} nothing listens on TCP for metrics."""
        self.assertEqual(self.reactor.tcpServers, [])


def _version() -> str:
    from sipedge import __version__

    return __version__


class MetricsConfigTests(SynchronousTestCase):
    """C{[metrics]}."""

    def test_parse(self) -> None:
        """C{listen} takes C{tcp:host:port}; absent, there is no endpoint."""
        self.assertIsNone(parse_config({}).metrics.listen)
        self.assertEqual(
            parse_config({"metrics": {"listen": "tcp:127.0.0.1:9100"}}).metrics.listen,
            MetricsListen("127.0.0.1", 9100),
        )
        self.assertEqual(
            parse_config({"metrics": {"listen": "tcp:[::1]:0"}}).metrics.listen,
            MetricsListen("::1", 0),
        )

    def test_errors(self) -> None:
        """Bad values are errors naming C{metrics.listen}."""
        for bad in ("udp:127.0.0.1:9100", "tcp:localhost:9100", "tcp:127.0.0.1", 9100,
                    "tcp:127.0.0.1:70000"):
            error = self.assertRaises(ConfigError, parse_config, {"metrics": {"listen": bad}})
            self.assertIn("metrics.listen", str(error))


class DashboardTests(SynchronousTestCase):
    """The Grafana dashboard in C{examples/grafana/} queries what sipedge exports."""

    def test_metrics_exist(self) -> None:
        """
        Every metric name in the dashboard's queries, and in the alert
        expressions C{doc/operations.md} suggests, is one a service's
        C{/metrics} exports (with the relay in process and HEP on), so a
        renamed metric cannot leave a blank panel or a silent alert.
        """
        import json
        import re

        from sipedge.testing import ROOT

        dashboard = json.loads((ROOT / "examples" / "grafana" /
                                "sipedge-dashboard.json").read_text())
        expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        names = r"\b((?:sipedge|process)_[a-z_]+)\b"
        used = {name for e in expressions for name in re.findall(names, e)}
        doc = (ROOT / "doc" / "operations.md").read_text()
        alerts = doc[doc.index("What is worth an alert"):doc.index("## Capture")]
        in_doc = set(re.findall(names, alerts))
        self.assertGreaterEqual(len(in_doc), 8)
        used |= in_doc
        state = Path(self.mktemp()).absolute()
        config = parse_config({
            "sip": {"domains": ["sipedge.test"], "listen": ["udp:127.0.0.1:5070"]},
            "state": {"path": str(state)},
            "media": {"anchor": True},
            "hep": {"destination": "udp:127.0.0.1:9060"},
        })
        service = build_service(config, FakeReactor())
        self.addCleanup(service.stopService)
        request = DummyRequest([b""])
        body = MetricsResource(service.metrics_registry).render_GET(request)  # type: ignore[arg-type]
        exported = set()
        for family in text_string_to_metric_families(body.decode()):
            exported.add(family.name)
            if family.type == "counter":
                exported.add(family.name + "_total")
        self.assertTrue(used)
        self.assertEqual(sorted(used - exported), [])
