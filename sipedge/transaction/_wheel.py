# -*- test-case-name: sipedge.test.test_transaction_wheel -*-
"""
Coalesced timers: a L{TimerWheel} is an C{IReactorTime} that keeps its
timers in buckets of one tick each and asks the clock beneath it for one
delayed call at a time, for the earliest bucket.

A proxy runs several timers per call (RFC 3261 17: A, B, D, E, F, G, H,
I, J, K; RFC 6026: L, M; the proxy's Timer C), and most of them are
cancelled long before they are due. One reactor C{callLater} per timer
means an object and a heap operation for each, and a heap that holds
every timer of the last 32 s (Timers J, L, M: 64*T1). The wheel turns a
timer into an entry in a dict (start and cancel in constant time) and
the reactor's work into one delayed call per tick that has timers.

The price is resolution: a timer due at C{t} fires at the first tick at
or after C{t}: never early, at most one tick (C{resolution}, 1/64 s by
default) late. RFC 3261's timers are at least T1/2 apart at their
closest (500 ms, or T1 where it is set lower), so a tick of 15.6 ms
keeps every retransmission schedule within 3% of T1.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

__all__ = ["DEFAULT_RESOLUTION", "TimerWheel"]

#: A tick of 1/64 s: exact in binary floating point, so that timers set
#: on tick-aligned times (all of RFC 3261's defaults) fire exactly on time.
DEFAULT_RESOLUTION = 1 / 64

#: Below any tick that can be computed: before the first bucket fires.
_NEVER = -(1 << 62)


@implementer(IDelayedCall)
class _Timer:
    """One timer of a L{TimerWheel}: an C{IDelayedCall}."""

    __slots__ = ("_wheel", "args", "called", "cancelled", "func", "kw", "tick", "time")

    def __init__(
        self,
        wheel: TimerWheel,
        time: float,
        func: Callable[..., object],
        args: tuple[Any, ...],
        kw: dict[str, Any] | None,
    ) -> None:
        self._wheel = wheel
        self.time = time
        self.tick = 0
        self.func: Callable[..., object] | None = func
        self.args = args
        #: None rather than an empty dict: a lingering transaction's timer
        #: waits 32 s, and there are tens of thousands of them.
        self.kw = kw
        self.cancelled = False
        self.called = False

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", repr(self.func))
        state = "cancelled" if self.cancelled else "called" if self.called else "active"
        return f"<wheel timer {name} at {self.time:.3f} ({state})>"

    def getTime(self) -> float:
        """When the timer is due (it fires at the first tick at or after it)."""
        return self.time

    def active(self) -> bool:
        """True until it fires or is cancelled."""
        return not (self.cancelled or self.called)

    def _check_active(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()

    def cancel(self) -> None:
        """
        Stop the timer; it lets go of its callable and arguments at once.

        @raise AlreadyCancelled: if it was cancelled before.
        @raise AlreadyCalled: if it fired.
        """
        if self.cancelled or self.called:  # (checked inline first: a call saved per timer)
            self._check_active()
        self.cancelled = True
        self._wheel._remove(self)
        self.func, self.args, self.kw = None, (), None

    def delay(self, secondsLater: float) -> None:
        """Move the timer C{secondsLater} later (earlier if negative)."""
        self._check_active()
        self._wheel._remove(self)
        self.time += secondsLater
        self._wheel._add(self)

    def reset(self, secondsFromNow: float) -> None:
        """Make the timer due C{secondsFromNow} from now."""
        self._check_active()
        self._wheel._remove(self)
        self.time = self._wheel.seconds() + secondsFromNow
        self._wheel._add(self)


def _due(timer: _Timer) -> float:
    return timer.time


@implementer(IReactorTime)
class TimerWheel:
    """
    Timers in buckets of C{resolution} seconds on C{clock}: an
    C{IReactorTime} whose C{callLater} fires no earlier than asked and at
    most one C{resolution} later. Timers due in the same tick fire in the
    order of their due times (a stable sort: equal times in the order they
    were set). An exception from
    a timer's callable is logged, and the other timers still fire.

    While no timer is pending, the wheel has no delayed call on C{clock}.

    @ivar resolution: the length of a tick, in seconds.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime, resolution: float = DEFAULT_RESOLUTION) -> None:
        if not resolution > 0 or not math.isfinite(resolution):
            raise ValueError(f"resolution must be a positive number of seconds, not {resolution!r}")
        self._clock = clock
        self.resolution = resolution
        self._buckets: dict[int, dict[_Timer, None]] = {}
        self._ticks: list[int] = []  # a heap of the keys of _buckets
        self._pending = 0
        self._fired_through = _NEVER
        self._armed: IDelayedCall | None = None
        self._armed_tick = 0
        self._firing = False

    def __repr__(self) -> str:
        return f"<TimerWheel {self._pending} timers in {len(self._buckets)} ticks>"

    # -- IReactorTime -------------------------------------------------------

    def seconds(self) -> float:
        """The time of the clock beneath."""
        return self._clock.seconds()

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        """Call C{callable(*args, **kw)} at the first tick C{delay} seconds from now or later."""
        timer = _Timer(self, self._clock.seconds() + delay, callable, args, kw or None)
        self._add(timer)
        return timer

    def getDelayedCalls(self) -> list[IDelayedCall]:
        """The timers pending, in no particular order."""
        return [timer for bucket in self._buckets.values() for timer in bucket]

    # -- the buckets --------------------------------------------------------

    def _add(self, timer: _Timer) -> None:
        tick = math.ceil(timer.time / self.resolution)
        if tick <= self._fired_through:
            # Due in a tick that has fired already (a timer set from a
            # timer, or the reactor late): the next one.
            tick = self._fired_through + 1
        timer.tick = tick
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            heapq.heappush(self._ticks, tick)
            if not self._firing and (self._armed is None or tick < self._armed_tick):
                self._arm(tick)
        bucket[timer] = None
        self._pending += 1

    def _remove(self, timer: _Timer) -> None:
        bucket = self._buckets.get(timer.tick)
        if bucket is None or timer not in bucket:
            return  # its bucket is firing now
        del bucket[timer]
        self._pending -= 1
        if not self._pending:
            self._disarm()
            self._buckets.clear()
            self._ticks.clear()

    def _arm(self, tick: int) -> None:
        """Have the clock call L{_fire} at C{tick}, instead of any earlier plan."""
        if self._armed is not None:
            self._armed.cancel()
        delay = max(tick * self.resolution - self._clock.seconds(), 0.0)
        self._armed = self._clock.callLater(delay, self._fire)
        self._armed_tick = tick

    def _disarm(self) -> None:
        if self._armed is not None:
            self._armed.cancel()
            self._armed = None

    def _fire(self) -> None:
        """Fire every bucket that is due; plan the next."""
        self._armed = None
        # The clock called us for _armed_tick: that tick is due, even if
        # floating point puts the clock a hair before it.
        limit = max(self._armed_tick, math.floor(self._clock.seconds() / self.resolution))
        ticks, buckets = self._ticks, self._buckets
        self._firing = True
        try:
            while ticks and ticks[0] <= limit:
                tick = heapq.heappop(ticks)
                bucket = buckets.pop(tick)
                self._fired_through = tick
                if not bucket:
                    continue
                self._pending -= len(bucket)
                timers = list(bucket) if len(bucket) == 1 else sorted(bucket, key=_due)
                bucket.clear()
                for timer in timers:
                    self._run(timer)
        finally:
            self._firing = False
            if self._pending:
                self._arm(ticks[0])
            else:
                buckets.clear()
                ticks.clear()

    def _run(self, timer: _Timer) -> None:
        if timer.cancelled:
            return
        timer.called = True
        func, args, kw = timer.func, timer.args, timer.kw
        timer.func, timer.args, timer.kw = None, (), None
        assert func is not None
        try:
            if kw:
                func(*args, **kw)
            else:
                func(*args)
        except Exception:
            self._log.failure("A timer's callable {func!r} raised", func=func)
