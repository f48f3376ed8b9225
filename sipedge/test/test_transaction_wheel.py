# -*- test-case-name: sipedge.test.test_transaction_wheel -*-
"""
Tests for L{sipedge.transaction.TimerWheel}: coalesced timers on an
injected clock, and the RFC 3261 / RFC 6026 transaction timers kept within
its resolution when the transactions run on it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipedge.flow import Flow
from sipedge.interfaces import ITransactionUser
from sipedge.message import Headers, Message, Request, Response
from sipedge.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TimerSettings,
    TimerWheel,
    make_response,
)

RES = 1 / 64
UDP = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)


class WheelTests(SynchronousTestCase):
    """L{TimerWheel} on a L{Clock}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.wheel = TimerWheel(self.clock)
        self.fired: list[tuple[str, float]] = []
        self.addCleanup(self.assertNoTimers)

    def assertNoTimers(self) -> None:
        self.assertEqual(self.wheel.getDelayedCalls(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def mark(self, name: str) -> None:
        self.fired.append((name, self.clock.seconds()))

    def test_interfaces(self) -> None:
        """The wheel is an C{IReactorTime}; its timers are C{IDelayedCall}s."""
        self.assertTrue(verifyObject(IReactorTime, self.wheel))
        timer = self.wheel.callLater(1, self.mark, "a")
        self.assertTrue(verifyObject(IDelayedCall, timer))
        timer.cancel()

    def test_seconds(self) -> None:
        """C{seconds} is the time of the clock beneath."""
        self.clock.advance(12.5)
        self.assertEqual(self.wheel.seconds(), 12.5)

    def test_fires_at_next_tick(self) -> None:
        """A timer due between two ticks fires at the later one, not before."""
        self.wheel.callLater(0.1, self.mark, "a")  # 6.4 ticks: fires at 7/64
        self.clock.advance(0.1)
        self.assertEqual(self.fired, [])
        self.clock.advance(7 / 64 - 0.1)
        self.assertEqual(self.fired, [("a", 7 / 64)])

    def test_fires_on_aligned_time(self) -> None:
        """A timer due on a tick fires exactly then: RFC 3261's defaults are tick-aligned."""
        self.wheel.callLater(0.5, self.mark, "a")
        self.clock.advance(0.5 - 1 / 1024)
        self.assertEqual(self.fired, [])
        self.clock.advance(1 / 1024)
        self.assertEqual(self.fired, [("a", 0.5)])

    def test_one_clock_call(self) -> None:
        """The clock holds one delayed call, for the earliest tick, however many timers."""
        for delay in (32.0, 32.001, 32.01, 31.99):
            self.wheel.callLater(delay, self.mark, str(delay))
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), 32.0)  # tick 2048 (31.99, 32.0), then 2049
        self.assertEqual(len(self.wheel.getDelayedCalls()), 4)
        self.clock.advance(33)
        self.assertEqual([name for name, _ in self.fired], ["31.99", "32.0", "32.001", "32.01"])

    def test_order_in_a_tick(self) -> None:
        """Timers in one tick fire in the order of their due times."""
        self.wheel.callLater(0.012, self.mark, "late")
        self.wheel.callLater(0.004, self.mark, "early")
        self.wheel.callLater(0.012, self.mark, "late-too")
        self.clock.advance(RES)
        self.assertEqual([n for n, _ in self.fired], ["early", "late", "late-too"])

    def test_cancel(self) -> None:
        """A cancelled timer never fires; the last one cancelled leaves no clock call."""
        timer = self.wheel.callLater(1, self.mark, "a")
        self.assertTrue(timer.active())
        timer.cancel()
        self.assertFalse(timer.active())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(2)
        self.assertEqual(self.fired, [])
        self.assertRaises(AlreadyCancelled, timer.cancel)

    def test_cancel_lets_go(self) -> None:
        """A cancelled timer keeps no reference to its callable or arguments."""
        payload = object()
        timer: Any = self.wheel.callLater(1, self.mark, payload)
        timer.cancel()
        self.assertIsNone(timer.func)
        self.assertEqual(timer.args, ())

    def test_called(self) -> None:
        """A fired timer is no longer active, and cannot be cancelled."""
        timer = self.wheel.callLater(1, self.mark, "a")
        self.clock.advance(1)
        self.assertFalse(timer.active())
        self.assertRaises(AlreadyCalled, timer.cancel)
        self.assertRaises(AlreadyCalled, timer.reset, 1)

    def test_keywords(self) -> None:
        """Positional and keyword arguments reach the callable."""
        got: list[Any] = []
        self.wheel.callLater(1, lambda *a, **k: got.append((a, k)), 1, 2, x=3)
        self.clock.advance(1)
        self.assertEqual(got, [((1, 2), {"x": 3})])

    def test_reset_and_delay(self) -> None:
        """C{reset} and C{delay} move a timer, to a later or an earlier tick."""
        timer = self.wheel.callLater(1, self.mark, "a")
        timer.reset(3)
        self.assertEqual(timer.getTime(), 3)
        timer.delay(-2.5)
        self.assertEqual(timer.getTime(), 0.5)
        self.clock.advance(0.5)
        self.assertEqual(self.fired, [("a", 0.5)])

    def test_earlier_timer_rearms(self) -> None:
        """A timer earlier than every pending one moves the clock's call earlier."""
        self.wheel.callLater(10, self.mark, "late")
        self.wheel.callLater(1, self.mark, "early")
        self.clock.advance(1)
        self.assertEqual(self.fired, [("early", 1.0)])
        self.clock.advance(9)
        self.assertEqual(self.fired, [("early", 1.0), ("late", 10.0)])

    def test_timer_from_timer(self) -> None:
        """A timer set with no delay from a firing timer fires at the next tick, not in a loop."""

        def again(n: int) -> None:
            self.mark(str(n))
            if n < 3:
                self.wheel.callLater(0, again, n + 1)

        self.wheel.callLater(RES, again, 0)
        self.clock.advance(RES)
        self.assertEqual(self.fired, [("0", RES)])
        for _ in range(3):
            self.clock.advance(RES)
        self.assertEqual([t for _, t in self.fired], [RES, 2 * RES, 3 * RES, 4 * RES])

    def test_cancel_from_timer(self) -> None:
        """A timer cancelled by another one of its tick does not fire."""
        second: list[IDelayedCall] = []
        self.wheel.callLater(0.010, lambda: second[0].cancel())
        second.append(self.wheel.callLater(0.012, self.mark, "second"))
        self.clock.advance(RES)
        self.assertEqual(self.fired, [])

    def test_late_clock(self) -> None:
        """A clock that calls late fires every overdue tick, in order, at once."""
        self.wheel.callLater(1, self.mark, "a")
        self.wheel.callLater(2, self.mark, "b")
        self.clock.advance(5)
        self.assertEqual(self.fired, [("a", 5.0), ("b", 5.0)])

    def test_raising_timer(self) -> None:
        """A timer that raises is logged; the others in its tick still fire."""

        def boom() -> None:
            raise ZeroDivisionError("boom")

        self.wheel.callLater(1, boom)
        self.wheel.callLater(1, self.mark, "after")
        self.clock.advance(1)
        self.assertEqual(self.fired, [("after", 1.0)])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_bad_resolution(self) -> None:
        """A resolution that is not a positive number of seconds is refused."""
        for bad in (0, -1, math.inf, math.nan):
            self.assertRaises(ValueError, TimerWheel, self.clock, bad)


# (op, argument): set a timer, cancel one, move one, or advance the clock.
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 3000).map(lambda n: n / 1000)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("reset"), st.tuples(st.integers(0, 50), st.integers(0, 2000))),
        st.tuples(st.just("advance"), st.integers(0, 1500).map(lambda n: n / 1000)),
    ),
    max_size=60,
)


class WheelModelTests(SynchronousTestCase):
    """Any sequence of timers set, cancelled, moved and a clock advanced."""

    @given(ops=_OPS, resolution=st.sampled_from([1 / 64, 1 / 16, 0.01, 0.1]))
    def test_against_model(self, ops: list[tuple[str, Any]], resolution: float) -> None:
        """
        Every timer not cancelled fires exactly once, never before it is
        due and at most one resolution after (or at the first clock advance
        that reaches that); cancelled ones never fire; timers fire in the
        order of their ticks; no call is left on the clock once none is
        pending, and there is at most one while some are.
        """
        clock = Clock()
        wheel = TimerWheel(clock, resolution)
        timers: list[IDelayedCall] = []
        due: dict[int, float] = {}
        fired: list[tuple[int, float]] = []
        for op, arg in ops:
            if op == "set":
                n = len(timers)
                timers.append(wheel.callLater(arg, lambda n=n: fired.append((n, clock.seconds()))))
                due[n] = clock.seconds() + arg
            elif op == "cancel" and arg < len(timers) and timers[arg].active():
                timers[arg].cancel()
                del due[arg]
            elif op == "reset" and arg[0] < len(timers) and timers[arg[0]].active():
                timers[arg[0]].reset(arg[1] / 1000)
                due[arg[0]] = clock.seconds() + arg[1] / 1000
            elif op == "advance":
                before = clock.seconds()
                clock.advance(arg)
                for n, when in due.items():
                    if timers[n].active():  # not fired: not yet late
                        deadline = math.ceil(when / resolution) * resolution
                        self.assertGreater(deadline + 1e-9, clock.seconds() if arg else before)
            self.assertLessEqual(len(clock.getDelayedCalls()), 1)
            self.assertEqual(bool(clock.getDelayedCalls()), any(t.active() for t in timers))
        clock.advance(10)
        self.assertEqual(sorted(n for n, _ in fired), sorted(due))
        for n, when in fired:
            self.assertGreaterEqual(when + 1e-9, due[n])
        ticks = [math.ceil(due[n] / resolution - 1e-9) for n, _ in fired]
        self.assertEqual(ticks, sorted(ticks))
        self.assertEqual(wheel.getDelayedCalls(), [])
        self.assertEqual(clock.getDelayedCalls(), [])


# -- the transaction timers on the wheel ---------------------------------------


def _request(method: str) -> Request:
    return Request(
        method,
        "sip:bob@example.com",
        Headers.of(
            ("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-wheel"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "wheel@example.com"),
            ("CSeq", f"1 {method}"),
        ),
    )


INVITE = _request("INVITE")
BYE = _request("BYE")


@implementer(ITransactionUser)
class _User:
    """Records when the machine reports a failure."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.failures: list[float] = []

    def request_received(self, request: Request, transaction: Any) -> None:
        pass

    def response_received(self, response: Response, transaction: Any) -> None:
        pass

    def transaction_failed(self, transaction: Any, reason: Failure) -> None:
        self.failures.append(self.clock.seconds())

    def transaction_terminated(self, transaction: Any) -> None:
        pass

    def stray_message(self, message: Message, flow: Flow) -> None:
        pass


class _Wire:
    """When each message went out."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, Message]] = []

    def __call__(self, message: Message, flow: Flow) -> None:
        self.sent.append((self.clock.seconds(), message))

    def times(self, what: str | int) -> list[float]:
        return [
            t
            for t, m in self.sent
            if (isinstance(m, Request) and m.method == what)
            or (isinstance(m, Response) and m.status == what)
        ]


#: Where the clock stands when a transaction starts: anywhere in a tick.
_OFFSETS = st.integers(0, 10_000).map(lambda n: n / 1000)
_T1 = st.sampled_from([0.5, 0.3, 0.1, 1.0])


class TransactionTimersOnWheelTests(SynchronousTestCase):
    """
    The four machines on a L{TimerWheel}, started anywhere in a tick: every
    retransmission interval and every timeout of RFC 3261 17 and RFC 6026
    is what the RFC says, or at most one tick (1/64 s) longer; never shorter.
    """

    def machine(self, cls: type, request: Request, t1: float, offset: float) -> tuple[Any, ...]:
        clock = Clock()
        clock.advance(offset)
        wheel = TimerWheel(clock)
        wire, user = _Wire(clock), _User(clock)
        tx = cls(
            request, UDP, send=wire, user=user, clock=wheel,
            timers=TimerSettings(T1=t1, T2=4 * t1, T4=10 * t1),
        )  # fmt: skip
        return clock, wheel, wire, user, tx

    def assertWithin(self, got: float, want: float) -> None:
        self.assertGreaterEqual(got, want - 1e-9)
        self.assertLessEqual(got, want + RES + 1e-9)

    def assertIntervals(self, times: list[float], start: float, intervals: list[float]) -> None:
        self.assertEqual(len(times), len(intervals) + 1, times)
        self.assertWithin(times[0], start)
        for previous, this, interval in zip(times, times[1:], intervals, strict=False):
            self.assertWithin(this - previous, interval)

    def step(self, clock: Clock) -> None:
        """Advance the clock to its next delayed call (the wheel's next tick)."""
        calls = clock.getDelayedCalls()
        self.assertEqual(len(calls), 1)
        clock.advance(max(calls[0].getTime() - clock.seconds(), 0))

    def run_out(self, clock: Clock, wheel: TimerWheel) -> None:
        for _ in range(10_000):
            if not clock.getDelayedCalls():
                break
            self.step(clock)
        self.assertEqual(wheel.getDelayedCalls(), [])
        self.assertEqual(clock.getDelayedCalls(), [])

    @given(t1=_T1, offset=_OFFSETS)
    def test_timers_a_b(self, t1: float, offset: float) -> None:
        """Timer A doubles from T1 without limit; Timer B ends it at 64*T1."""
        clock, wheel, wire, user, tx = self.machine(ClientInviteTransaction, INVITE, t1, offset)
        tx.start()
        self.run_out(clock, wheel)
        intervals = [t1 * 2**k for k in range(6)]  # up to 63*T1, then B at 64*T1
        self.assertIntervals(wire.times("INVITE"), offset, intervals)
        self.assertEqual(len(user.failures), 1)
        self.assertWithin(user.failures[0] - offset, 64 * t1)

    @given(t1=_T1, offset=_OFFSETS)
    def test_timers_e_f_k(self, t1: float, offset: float) -> None:
        """Timer E doubles from T1 up to T2; a final response leaves K (T4) to run out."""
        clock, wheel, wire, user, tx = self.machine(ClientNonInviteTransaction, BYE, t1, offset)
        tx.start()
        while len(wire.times("BYE")) < 4:  # sent at 0, T1, 3*T1, 7*T1
            self.step(clock)
        self.assertIntervals(wire.times("BYE"), offset, [t1, 2 * t1, 4 * t1])
        tx.response_received(make_response(BYE, 200, to_tag="b"))
        answered = clock.seconds()
        self.run_out(clock, wheel)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(len(wire.times("BYE")), 4)
        self.assertEqual(user.failures, [])
        self.assertWithin(clock.seconds() - answered, 10 * t1)

    @given(t1=_T1, offset=_OFFSETS)
    def test_timer_f(self, t1: float, offset: float) -> None:
        """With no answer, Timer E reaches T2 and stays there; Timer F fails it at 64*T1."""
        clock, wheel, wire, user, tx = self.machine(ClientNonInviteTransaction, BYE, t1, offset)
        tx.start()
        self.run_out(clock, wheel)
        times = wire.times("BYE")
        self.assertIntervals(times[:4], offset, [t1, 2 * t1, 4 * t1])
        for previous, this in itertools.pairwise(times[3:]):
            self.assertWithin(this - previous, 4 * t1)
        self.assertWithin(user.failures[0] - offset, 64 * t1)

    @given(t1=_T1, offset=_OFFSETS)
    def test_timers_g_h_and_trying(self, t1: float, offset: float) -> None:
        """100 Trying at 200 ms; Timer G doubles up to T2; Timer H fails it at 64*T1."""
        clock, wheel, wire, user, tx = self.machine(ServerInviteTransaction, INVITE, t1, offset)
        tx.start()
        self.step(clock)
        self.assertIntervals(wire.times(100), offset + 0.2, [])
        tx.respond(make_response(INVITE, 486, to_tag="b"))
        answered = clock.seconds()
        self.run_out(clock, wheel)
        times = wire.times(486)
        self.assertIntervals(times[:3], answered, [t1, 2 * t1])
        for previous, this in itertools.pairwise(times[3:]):
            self.assertWithin(this - previous, 4 * t1)
        self.assertWithin(user.failures[0] - answered, 64 * t1)

    @given(t1=_T1, offset=_OFFSETS)
    def test_timer_i(self, t1: float, offset: float) -> None:
        """After the ACK, Timer I (T4) keeps the INVITE server CONFIRMED."""
        clock, wheel, _wire, user, tx = self.machine(ServerInviteTransaction, INVITE, t1, offset)
        tx.start()
        busy = make_response(INVITE, 486, to_tag="b")
        tx.respond(busy)
        ack = Request("ACK", INVITE.uri, INVITE.headers.replaced("CSeq", "1 ACK"))
        tx.request_received(ack)
        self.assertIs(tx.state, State.CONFIRMED)
        acked = clock.seconds()
        self.run_out(clock, wheel)
        self.assertWithin(clock.seconds() - acked, 10 * t1)
        self.assertEqual(user.failures, [])

    @given(t1=_T1, offset=_OFFSETS)
    def test_timer_j(self, t1: float, offset: float) -> None:
        """After its final response, a non-INVITE server stays COMPLETED for Timer J (64*T1)."""
        clock, wheel, _wire, _user, tx = self.machine(ServerNonInviteTransaction, BYE, t1, offset)
        tx.start()
        tx.respond(make_response(BYE, 200, to_tag="b"))
        self.run_out(clock, wheel)
        self.assertWithin(clock.seconds() - offset, 64 * t1)

    @given(t1=_T1, offset=_OFFSETS)
    def test_timer_l(self, t1: float, offset: float) -> None:
        """After a 2xx, an INVITE server stays ACCEPTED for Timer L (64*T1, RFC 6026)."""
        clock, wheel, _wire, _user, tx = self.machine(ServerInviteTransaction, INVITE, t1, offset)
        tx.start()
        tx.respond(make_response(INVITE, 200, to_tag="b"))
        self.assertIs(tx.state, State.ACCEPTED)
        self.run_out(clock, wheel)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertWithin(clock.seconds() - offset, 64 * t1)

    @given(t1=_T1, offset=_OFFSETS)
    def test_timers_m_d(self, t1: float, offset: float) -> None:
        """
        After a 2xx, an INVITE client stays ACCEPTED for Timer M (64*T1,
        RFC 6026); after a 3xx-6xx, COMPLETED for Timer D (32 s).
        """
        for status, linger in ((200, 64 * t1), (486, 32.0)):
            clock, wheel, _wire, _user, tx = self.machine(
                ClientInviteTransaction, INVITE, t1, offset
            )
            tx.start()
            tx.response_received(make_response(INVITE, status, to_tag="b"))
            self.run_out(clock, wheel)
            self.assertIs(tx.state, State.TERMINATED)
            self.assertWithin(clock.seconds() - offset, linger)
