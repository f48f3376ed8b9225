# -*- test-case-name: sipedge.test.test_testing -*-
"""
L{capture_log}: the log events of a test, observed only while it runs.
"""

from __future__ import annotations

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogPublisher, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

__all__ = ["capture_log"]


def capture_log(
    case: SynchronousTestCase, publisher: LogPublisher = globalLogPublisher
) -> EventLoggingObserver:
    """
    An L{EventLoggingObserver} of C{publisher}, removed when C{case} ends.

    What C{EventLoggingObserver.createWithCleanup} does; its annotation asks
    for the asynchronous C{TestCase}, though it only needs C{addCleanup},
    which every trial test case has.
    """
    events = EventLoggingObserver()
    publisher.addObserver(events)
    case.addCleanup(publisher.removeObserver, events)
    return events
