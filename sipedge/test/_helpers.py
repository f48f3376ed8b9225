"""
Helpers shared by the test modules.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogPublisher, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

__all__ = ["capture_log", "flush_on_advance"]


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


def flush_on_advance(reactor: Any) -> None:
    """
    Make C{reactor.advance} (a L{sipedge.testing.FakeReactor}) also move
    the bytes of its in-memory connections after moving time, so that what
    a timer sends arrives before a test looks (a flush that advances time
    itself does not flush again).
    """
    advance = reactor.advance
    busy = [False]

    def advance_and_deliver(seconds: float) -> None:
        advance(seconds)
        if not busy[0]:
            busy[0] = True
            try:
                reactor.flush()
            finally:
                busy[0] = False

    reactor.advance = advance_and_deliver
