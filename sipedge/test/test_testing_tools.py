# -*- test-case-name: sipedge.test.test_testing_tools -*-
"""
Tests for the real-tool helpers of L{sipedge.testing}: a missing tool
skips a test, or fails it under C{SIPEDGE_REQUIRE_TOOLS=1}; free ports.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sipedge.testing import (
    SIPP_SCENARIOS,
    Sipp,
    free_port,
    free_port_range,
    media_port,
    require_tool,
    tcp_listening,
)

MISSING = "sipedge-no-such-tool"


class RequireToolTests(SynchronousTestCase):
    """L{require_tool}."""

    def setUp(self) -> None:
        self.patch(os, "environ", dict(os.environ))

    def test_found(self) -> None:
        """A program on the PATH gives its path."""
        self.assertTrue(require_tool("sh").endswith("/sh"))

    def test_missing_skips(self) -> None:
        """A missing program skips the test, naming the Debian package."""
        os.environ.pop("SIPEDGE_REQUIRE_TOOLS", None)
        with self.assertRaises(SkipTest) as raised:
            require_tool(MISSING)
        self.assertIn(f"{MISSING} is not installed", str(raised.exception))
        self.assertIn("apt-get install", str(raised.exception))

    def test_missing_fails_in_ci(self) -> None:
        """With SIPEDGE_REQUIRE_TOOLS=1 a missing program fails the test instead."""
        os.environ["SIPEDGE_REQUIRE_TOOLS"] = "1"
        with self.assertRaises(AssertionError) as raised:
            require_tool(MISSING)
        self.assertIn("SIPEDGE_REQUIRE_TOOLS=1", str(raised.exception))


class PortTests(SynchronousTestCase):
    """L{free_port} and L{free_port_range}."""

    def test_free_port(self) -> None:
        """A loopback port that UDP and TCP can both bind now."""
        port = free_port()
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))

    def test_free_port_range(self) -> None:
        """C{count} consecutive free UDP ports from an even one."""
        low, high = free_port_range(4)
        self.assertEqual((high - low, low % 2), (3, 0))

    def test_tcp_listening(self) -> None:
        """
        L{tcp_listening} is true while a socket listens on the port (IPv4
        or IPv6), not when it is only bound, nor once it is closed.
        """
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, 0))
                except OSError:
                    continue  # no IPv6 here
                port = s.getsockname()[1]
                self.assertFalse(tcp_listening(port))
                s.listen()
                self.assertTrue(tcp_listening(port))
            self.assertFalse(tcp_listening(port))

    def test_sipp_tcp_uas_listens_when_started(self) -> None:
        """A SIPp UAS started over TCP listens on its port when L{Sipp.start} returns."""
        work = Path(self.mktemp())
        work.mkdir()
        sipp = Sipp(work)
        self.addCleanup(sipp.stop_all)
        port = free_port()
        sipp.start("uas.xml", "-m", 1, port=port, transport="t1", timeout=20)
        self.assertTrue(tcp_listening(port))


class MediaPortTests(SynchronousTestCase):
    """L{media_port}: SIPp's C{-mp}, out of the way of ephemeral ports."""

    def test_range(self) -> None:
        """
        An even port below the kernel's ephemeral range and outside the
        relay's default 30000-30999, with the three above it free for UDP.
        """
        for _ in range(20):
            port = media_port()
            self.assertEqual(port % 2, 0)
            self.assertTrue(20000 <= port < 29990, port)
            for offset in range(4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", port + offset))

    def test_taken_skipped(self) -> None:
        """A choice one of whose four ports is taken is passed over."""
        first = media_port(rng=random.Random(7))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", first + 2))
            again = media_port(rng=random.Random(7))
        self.assertNotEqual(again, first)

    def test_sipp_run_again_when_its_port_is_taken(self) -> None:
        """
        SIPp started on a media port another process took in between ("Unable
        to bind audio RTP socket", errno 98) is run again on new ports: what
        comes back is the scenario's own outcome (here a timeout against a
        loopback port nobody answers on), not the failed bind.
        """
        work = Path(self.mktemp())
        work.mkdir()
        sipp = Sipp(work, rng=random.Random(11))
        first = media_port(rng=random.Random(11))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", first))
            nobody = free_port()
            result = sipp.run(
                "uac.xml", f"127.0.0.1:{nobody}", "-s", "nobody", "-key", "domain",
                "sipedge.test", "-m", 1, timeout=2,
            )
        output = result.stdout + result.stderr
        self.assertNotIn("Unable to bind", output)
        self.assertIn("timed out", output)


class ScenarioTests(SynchronousTestCase):
    """The SIPp scenarios ship with the harness."""

    def test_scenarios(self) -> None:
        """uac.xml and uas.xml are in L{SIPP_SCENARIOS}."""
        self.assertTrue((SIPP_SCENARIOS / "uac.xml").is_file())
        self.assertTrue((SIPP_SCENARIOS / "uas.xml").is_file())
