# -*- test-case-name: sipedge.test.test_e2e_metrics -*-
"""
End to end: Prometheus itself (Debian's C{prometheus}) scrapes the real
C{twistd sipedge} while SIPp places calls through it, and Prometheus's query
API shows the call counters moving.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import free_port, require_tool, sipp_counter, start_with_sipp

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0"]
trusted = ["127.0.0.10/32"]

[metrics]
listen = "tcp:127.0.0.1:0"
"""

_METRICS = re.compile(r"Serving Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics")


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _get(url: str, timeout: float = 5.0) -> bytes:
    with _OPENER.open(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


class PrometheusTests(SynchronousTestCase):
    """A real Prometheus server scraping sipedge."""

    def query(self, expression: str) -> float | None:
        """The sum of an instant query's series, or C{None} if it has none."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": f"sum({expression})"}  # over the workers' series, if several
        )
        answer: Any = json.loads(_get(url))
        self.assertEqual(answer["status"], "success", answer)
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str, wanted: float, timeout: float = 30.0) -> float | None:
        """Poll C{expression} until it reaches C{wanted} (bounded by C{timeout})."""
        value = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.query(expression)
            except (OSError, urllib.error.URLError):  # not listening yet
                time.sleep(0.5)
                continue
            if value is not None and value >= wanted:
                return value
            time.sleep(0.5)
        return value

    def test_scraped_during_calls(self) -> None:
        """
        Prometheus scrapes sipedge's /metrics every second; after 10 SIPp
        calls from a trusted source, its query API shows 10 INVITEs and 10
        BYEs received and relayed, 2xx responses sent, and those 20 requests
        forwarded statefully by the proxy core, where before the calls it showed none.
        """
        prometheus = require_tool("prometheus")
        work, proxy, sipp = start_with_sipp(self, _CONFIG)
        found = _METRICS.search(proxy.log())
        assert found is not None, proxy.log()[-2000:]
        metrics_port = int(found.group(1))
        self.assertIn(b"sipedge_sip_requests_total", _get(
            f"http://127.0.0.1:{metrics_port}/metrics"))

        self.prometheus_port = free_port(kind=socket.SOCK_STREAM)
        (work / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: sipedge\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{metrics_port}']\n"
        )
        log = (work / "prometheus.log").open("wb")
        self.addCleanup(log.close)
        server = subprocess.Popen(
            [prometheus, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.prometheus_port}"],
            cwd=work, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

        def stop() -> None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)

        self.addCleanup(stop)
        up = self.wait_for('up{job="sipedge"}', 1.0, timeout=60)
        self.assertEqual(up, 1.0, (work / "prometheus.log").read_text(errors="replace")[-3000:])
        invites = 'sipedge_sip_requests_total{direction="in",method="INVITE"}'
        self.assertIn(self.query(invites), (None, 0.0))

        uas_port = free_port()
        sipp.start("uas.xml", "-m", 10, port=uas_port, timeout=60)
        result = sipp.run(
            "uac.xml", f"127.0.0.1:{proxy.ports['UDP']}", "-s", "service",
            "-key", "domain", f"127.0.0.1:{uas_port}", "-d", 50, "-m", 10, "-r", 10,
            local_ip="127.0.0.10", timeout=40,
        )
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 10, result.stdout[-2000:])

        self.assertEqual(self.wait_for(invites, 10.0), 10.0)
        self.assertEqual(
            self.wait_for('sipedge_sip_requests_total{direction="out",method="INVITE"}', 10.0),
            10.0,
        )
        self.assertEqual(
            self.wait_for('sipedge_sip_requests_total{direction="in",method="BYE"}', 10.0), 10.0
        )
        self.assertGreaterEqual(
            self.wait_for('sipedge_sip_responses_total{direction="out",class="2xx"}', 20.0) or 0,
            20.0,
        )
        self.assertGreaterEqual(
            self.wait_for('sipedge_proxy_requests_total{outcome="forwarded"}', 20.0) or 0, 20.0
        )
