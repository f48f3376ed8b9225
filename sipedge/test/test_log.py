# -*- test-case-name: sipedge.test.test_log -*-
"""Tests for L{sipedge._log}."""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver, Logger
from twisted.trial.unittest import SynchronousTestCase

from sipedge._log import NamedLogger


class NamedLoggerTests(SynchronousTestCase):
    """L{NamedLogger} keeps its namespace when declared on a class."""

    def test_namespace_kept(self) -> None:
        """
        Declared on a class, a L{NamedLogger} logs under the namespace it
        was given (a plain L{Logger} would log under C{module.Class}), with
        the instance as its source.
        """
        events: list[dict[str, Any]] = []

        class Thing:
            _log = NamedLogger(
                namespace="sipedge.test.thing", observer=cast(ILogObserver, events.append)
            )
            _plain = Logger(namespace="sipedge.test.plain")

        thing = Thing()
        thing._log.info("hello {who}", who="world")
        self.assertEqual(events[0]["log_namespace"], "sipedge.test.thing")
        self.assertIs(events[0]["log_source"], thing)
        self.assertEqual(events[0]["who"], "world")
        self.assertIs(Thing._log.source, Thing)
        self.assertNotEqual(Thing._plain.namespace, "sipedge.test.plain")  # why it exists
