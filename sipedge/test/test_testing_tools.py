# -*- test-case-name: sipedge.test.test_testing_tools -*-
"""
Tests for the real-tool helpers of L{sipedge.testing}: a missing tool
skips a test, or fails it under C{SIPEDGE_REQUIRE_TOOLS=1}; free ports.
"""

from __future__ import annotations

import os
import socket

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sipedge.testing import SIPP_SCENARIOS, free_port, free_port_range, require_tool

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


class ScenarioTests(SynchronousTestCase):
    """The SIPp scenarios ship with the harness."""

    def test_scenarios(self) -> None:
        """uac.xml and uas.xml are in L{SIPP_SCENARIOS}."""
        self.assertTrue((SIPP_SCENARIOS / "uac.xml").is_file())
        self.assertTrue((SIPP_SCENARIOS / "uas.xml").is_file())
