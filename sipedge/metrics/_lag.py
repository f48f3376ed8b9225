# -*- test-case-name: sipedge.test.test_metrics -*-
"""
Event-loop lag: how late a timer that should fire every C{interval}
seconds really fires. A busy or blocked reactor shows here before calls
start to fail.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["LoopLag"]


class LoopLag:
    """
    @ivar last: the lateness of the last tick, in seconds.
    @ivar worst: the largest lateness seen since start.
    @ivar ticks: ticks so far.
    """

    def __init__(self, clock: IReactorTime, interval: float = 1.0) -> None:
        self._clock = clock
        self._interval = interval
        self._call: IDelayedCall | None = None
        self._due = 0.0
        self.last = 0.0
        self.worst = 0.0
        self.ticks = 0

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        self._due = self._clock.seconds() + self._interval
        self._call = self._clock.callLater(self._interval, self._tick)

    def _tick(self) -> None:
        self.last = max(0.0, self._clock.seconds() - self._due)
        self.worst = max(self.worst, self.last)
        self.ticks += 1
        self._schedule()
