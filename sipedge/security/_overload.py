# -*- test-case-name: sipedge.test.test_screen -*-
"""
Overload: whether the event loop is falling behind, for the screen to shed
all unauthenticated work while it is.

The global budget (L{sipedge.security.Screen}) is a fixed rate; what the
proxy can afford depends on the core it gets (a busy machine gives it
less). So the screen also watches the loop: a timer every C{interval}
seconds that fires more than C{threshold} seconds late, C{sustain} ticks
in a row, means the proxy is behind (its socket queue grows, the calls'
packets wait behind the flood's), and for C{hold} seconds from then no
unauthenticated work is admitted at all. One late tick alone is not
overload: a collection, a disk write or the scheduler lending the core
to another process for a moment makes one tick late, and shedding every
unauthenticated request for C{hold} seconds on that would refuse a
phone's registration for nothing. A loop that is really behind is late
on every tick. Kamailio's C{ratelimit} module has the same idea (its
FEEDBACK algorithm drops by the CPU load).
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["LoadWatch"]


class LoadWatch:
    """
    @ivar overloaded_until: the time until which the loop counts as
        overloaded (0 when it never was).
    @ivar episodes: how many times it became overloaded.
    @ivar worst: the largest lateness seen, seconds.
    @ivar sustain: how many ticks in a row must be late for an overload.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        threshold: float = 0.05,
        interval: float = 0.02,
        hold: float = 2.0,
        sustain: int = 3,
    ) -> None:
        self._clock = clock
        self.threshold = threshold
        self.interval = interval
        self.hold = hold
        self.sustain = sustain
        self._late_ticks = 0
        self.overloaded_until = 0.0
        self.episodes = 0
        self.worst = 0.0
        self._due = 0.0
        self._call: IDelayedCall | None = None

    def overloaded(self, now: float) -> bool:
        """Whether the loop counts as overloaded at C{now}."""
        return now < self.overloaded_until

    def start(self) -> None:
        if self._call is None:
            self._schedule()

    def stop(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _schedule(self) -> None:
        self._due = self._clock.seconds() + self.interval
        self._call = self._clock.callLater(self.interval, self._tick)

    def _tick(self) -> None:
        now = self._clock.seconds()
        late = now - self._due
        if late > self.worst:
            self.worst = late
        if late <= self.threshold:
            self._late_ticks = 0
        else:
            self._late_ticks += 1
        if self._late_ticks >= self.sustain:
            if now >= self.overloaded_until:
                self.episodes += 1
            self.overloaded_until = now + self.hold
        self._schedule()
