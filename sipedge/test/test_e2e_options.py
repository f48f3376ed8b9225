# -*- test-case-name: sipedge.test.test_e2e_options -*-
"""
OPTIONS to the edge itself, end to end on sipedge's defaults: a probe whose
Request-URI names sipedge's domain or its address (no user part) gets 200
with Allow, Accept and Supported and no challenge, even when its From is
one of our users; a banned source still gets nothing. sipsak's default
mode (an OPTIONS ping) reports the edge up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Response, parse_datagram
from sipedge.testing import ROOT, SipEdgeProcess, add_user, require_tool

_DEFAULTS = """
[sip]
domains = ["{domain}"]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
[state]
path = "state"
"""

BANNED = "127.0.0.5"


def _options(uri: str, source: str, port: int, sender: str) -> bytes:
    return (
        f"OPTIONS {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK-probe{port};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{sender}>;tag=probe\r\n"
        f"To: <{uri}>\r\n"
        f"Call-ID: probe-{port}@{source}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class _Edge(SynchronousTestCase):
    domain = "sipedge.test"

    def setUp(self) -> None:
        work = Path(self.mktemp()).absolute()
        work.mkdir(parents=True)
        self.proxy = SipEdgeProcess(work, _DEFAULTS.format(domain=self.domain))
        add_user(self.proxy.config_path, "alice", "alice-secret")
        result = subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "ban", "add", "--config",
             str(self.proxy.config_path), BANNED, "--reason", "test"],
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.port = self.proxy.ports["UDP"]


class OptionsTests(_Edge):
    """A probe of the edge is answered by the edge."""

    def probe(self, uri: str, source: str = "127.0.0.3",
              sender: str = "sip:alice@sipedge.test", wait: float = 5.0) -> Response | None:
        """Send one OPTIONS from C{source}; the response, or None after C{wait} s."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(wait)
            s.sendto(_options(uri, source, s.getsockname()[1], sender), ("127.0.0.1", self.port))
            try:
                data = s.recv(65535)
            except TimeoutError:
                return None
        message = parse_datagram(data)
        assert isinstance(message, Response)
        return message

    def assertCapabilities(self, response: Response | None) -> None:
        assert response is not None, self.proxy.log()[-2000:]
        self.assertEqual(response.status, 200, self.proxy.log()[-2000:])
        self.assertIn("OPTIONS", response.headers.get("Allow") or "")
        self.assertIn("INVITE", response.headers.get("Allow") or "")
        self.assertEqual(response.headers.get("Accept"), "application/sdp")
        self.assertIsNotNone(response.headers.get("Supported"))
        self.assertIsNone(response.headers.get("Proxy-Authenticate"))

    def test_domain(self) -> None:
        """
        OPTIONS sip:sipedge.test from one of our users: 200 with our
        capabilities, not 407.
        """
        self.assertCapabilities(self.probe("sip:sipedge.test"))

    def test_address(self) -> None:
        """OPTIONS to sipedge's own address and port, from outside: 200."""
        self.assertCapabilities(
            self.probe(f"sip:127.0.0.1:{self.port}", sender="sip:monitor@probe.example")
        )

    def test_banned(self) -> None:
        """A banned source's probe gets no answer."""
        self.assertIsNone(self.probe("sip:sipedge.test", source=BANNED, wait=2.0))
        self.assertCapabilities(self.probe("sip:sipedge.test"))


class SipsakPingTests(_Edge):
    """sipsak's OPTIONS ping (its default mode); its domain must resolve: localhost."""

    domain = "localhost"

    def test_ping(self) -> None:
        """sipsak -s sip:localhost through the edge: 200, exit status 0."""
        tool = require_tool("sipsak")
        result = subprocess.run(
            [tool, "-s", "sip:localhost", "-p", f"127.0.0.1:{self.port}", "-vv"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
        why = result.stdout[-2000:] + result.stderr[-500:] + self.proxy.log()[-2000:]
        self.assertEqual(result.returncode, 0, why)
        self.assertIn("SIP/2.0 200", result.stdout, why)
