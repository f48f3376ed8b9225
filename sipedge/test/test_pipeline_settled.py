# -*- test-case-name: sipedge.test.test_pipeline_settled -*-
"""
Tests for L{sipedge.pipeline.settled} and for the chain's two paths: a
chain whose stages answer at once (or with Deferreds that have already
fired) decides with no Deferred, and gives the same decisions, calls and
logged failures as the same chain answering later.
"""

from __future__ import annotations

import gc
from typing import Any, cast

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.flow import Flow
from sipedge.interfaces import IRequestStage, IResponseStage, IRoutedStage
from sipedge.message import Request, Response, parse_datagram
from sipedge.pipeline import (
    Continue,
    Drop,
    Forward,
    RequestChain,
    RequestContext,
    Respond,
    Target,
    settled,
)
from sipedge.testing import capture_log

FLOW = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)


def _request() -> Request:
    text = (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-s1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
        "To: <sip:bob@example.com>\r\nCall-ID: settled-1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Request)
    return message


def _response(status: int) -> Response:
    text = (
        f"SIP/2.0 {status} Whatever\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-s1\r\n"
        "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>;tag=2\r\n"
        "Call-ID: settled-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Response)
    return message


class SettledTests(SynchronousTestCase):
    """L{settled} takes the result out of a Deferred with nothing left to run."""

    def test_plain_value(self) -> None:
        """A value that is not a Deferred is returned as it is."""
        marker = object()
        self.assertIs(settled(marker), marker)

    def test_pending(self) -> None:
        """A Deferred that has not fired is returned as it is."""
        d: Deferred[int] = Deferred()
        self.assertIs(settled(d), d)
        d.callback(1)
        self.assertEqual(self.successResultOf(d), 1)

    def test_fired(self) -> None:
        """A Deferred that has fired gives its result."""
        self.assertEqual(settled(succeed(7)), 7)

    def test_callbacks_ran(self) -> None:
        """The result is the one the Deferred's callbacks left."""
        self.assertEqual(settled(succeed(7).addCallback(lambda n: n * 2)), 14)

    def test_failure_handled(self) -> None:
        """
        A Deferred that has failed gives the L{Failure}, which is then the
        caller's: nothing reports it as an unhandled error.
        """
        result = settled(fail(KeyError("gone")))
        self.assertIsInstance(result, Failure)
        assert isinstance(result, Failure)
        self.assertTrue(result.check(KeyError))
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(KeyError), [])

    def test_paused(self) -> None:
        """A Deferred waiting on another one is returned as it is."""
        inner: Deferred[int] = Deferred()
        outer = succeed(1).addCallback(lambda _: inner)
        self.assertIs(settled(outer), outer)
        inner.callback(5)
        self.assertEqual(self.successResultOf(outer), 5)


# -- the chain's two paths ------------------------------------------------------

#: How a stage answers: at once, with a Deferred that has fired, or later.
MODES = ("sync", "fired", "later")

DECISIONS: dict[str, Any] = {
    "continue": Continue(),
    "respond": Respond(486),
    "forward": Forward((Target("sip:bob@192.0.2.9"),)),
    "drop": Drop("test"),
    "raise": ZeroDivisionError("bug"),
    "bad": "not a result",
}


@implementer(IRequestStage)
class _Stage:
    def __init__(self, name: str, outcome: str, mode: str, run: _Run) -> None:
        self.name = name
        self.outcome = outcome
        self.mode = mode
        self.run = run

    def process_request(self, context: RequestContext) -> Any:
        self.run.calls.append(self.name)
        return self.run.answer(self.outcome, self.mode, DECISIONS)


@implementer(IRequestStage, IRoutedStage)
class _Routed(_Stage):
    def __init__(self, name: str, outcome: str, mode: str, run: _Run) -> None:
        super().__init__(name, "continue", "sync", run)
        self.told = outcome
        self.told_mode = mode

    def targets_chosen(self, context: RequestContext, forward: Forward) -> Any:
        self.run.calls.append(f"{self.name} told")
        return self.run.answer(self.told, self.told_mode, DECISIONS)


RESPONSES: dict[str, Any] = {
    "same": "same",
    "changed": "changed",
    "absorb": None,
    "raise": ValueError("response bug"),
    "bad": 42,
}


@implementer(IRequestStage, IResponseStage)
class _ResponseStage(_Stage):
    def __init__(self, name: str, outcome: str, mode: str, run: _Run) -> None:
        super().__init__(name, "continue", "sync", run)
        self.seen = outcome
        self.seen_mode = mode

    def process_response(self, context: RequestContext | None, response: Response) -> Any:
        self.run.calls.append(f"{self.name} saw {response.reason}")
        choice = {"same": response, "changed": _renamed(response, self.name)}
        outcomes = {**RESPONSES, **choice}
        return self.run.answer(self.seen, self.seen_mode, outcomes)


def _renamed(response: Response, name: str) -> Response:
    return attrs.evolve(response, reason=f"{response.reason}+{name}")


class _Run:
    """One run of a chain: the calls its stages saw, on a clock of its own."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.clock = Clock()

    def answer(self, outcome: str, mode: str, table: dict[str, Any]) -> Any:
        value = table[outcome]

        def now() -> Any:
            if isinstance(value, BaseException):
                raise value
            return value

        if mode == "sync":
            return now()
        if mode == "fired":
            try:
                return succeed(now())
            except Exception:
                return fail()
        return deferLater(self.clock, 0, now)

    def settle(self, result: Any) -> Any:
        """The chain's outcome, moving the clock until it is there."""
        if not isinstance(result, Deferred):
            return result
        for _ in range(50):
            if result.called:
                break
            self.clock.advance(0)
        assert result.called, "the chain did not finish"
        outcomes: list[Any] = []
        result.addBoth(outcomes.append)
        return outcomes[0]


stage_specs = st.lists(
    st.tuples(
        st.sampled_from(("plain", "routed", "response")),
        st.sampled_from(tuple(DECISIONS)),
        st.sampled_from(MODES),
    ),
    max_size=6,
)


class ChainPathsTests(SynchronousTestCase):
    """The synchronous and the asynchronous path give the same results."""

    def run_chain(self, specs: list[tuple[str, str, str]], modes: dict[int, str]) -> Any:
        """
        Run a chain built from C{specs} (with each stage's mode replaced
        by C{modes}' entry, if any), and answer a response through it:
        what it decided, returned, logged and called.
        """
        run = _Run()
        stages: list[Any] = []
        for i, (kind, outcome, mode) in enumerate(specs):
            mode = modes.get(i, mode)
            if kind == "routed":
                stages.append(_Routed(f"s{i}", outcome, mode, run))
            elif kind == "response":
                seen = tuple(RESPONSES)[i % len(RESPONSES)]
                stages.append(_ResponseStage(f"s{i}", seen, mode, run))
            else:
                stages.append(_Stage(f"s{i}", outcome, mode, run))
        chain = RequestChain(stages)
        events: list[Any] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        try:
            returned = chain.run(RequestContext(_request(), FLOW))
            decision = run.settle(returned)
            relayed = run.settle(chain.run_responses(None, _response(180)))
            final = run.settle(chain.run_responses(None, _response(200)))
        finally:
            globalLogPublisher.removeObserver(observer)
        self.assertEqual(run.clock.getDelayedCalls(), [])
        errors = [
            (e.get("stage"), e["log_failure"].type if "log_failure" in e else None)
            for e in events
            if e["log_level"] in (LogLevel.error, LogLevel.critical)
        ]
        self.flushLoggedErrors(ZeroDivisionError, ValueError, TypeError)
        reasons = [r.reason if isinstance(r, Response) else r for r in (relayed, final)]
        return returned, (decision, reasons, errors, run.calls)

    @given(stage_specs)
    def test_same_results(self, specs: list[tuple[str, str, str]]) -> None:
        """
        Whatever mix of stages answer at once, with fired Deferreds or
        later, the chain decides the same, calls the same stages in the
        same order, changes the responses the same way and logs the same
        failures as when every stage answers at once.
        """
        _, expected = self.run_chain(specs, {i: "sync" for i in range(len(specs))})
        _, got = self.run_chain(specs, {})
        self.assertEqual(got, expected)

    @given(stage_specs)
    def test_no_deferred_when_settled(self, specs: list[tuple[str, str, str]]) -> None:
        """
        A chain whose stages all answer at once or with Deferreds that
        have fired returns its decision itself, not a Deferred.
        """
        modes = {i: ("sync" if mode == "later" else mode) for i, (_, _, mode) in enumerate(specs)}
        returned, _ = self.run_chain(specs, modes)
        self.assertNotIsInstance(returned, Deferred)

    def test_later_waits(self) -> None:
        """A stage that answers later makes the chain's result a Deferred."""
        returned, (decision, _, _, _) = self.run_chain(
            [("plain", "continue", "later"), ("plain", "respond", "sync")], {}
        )
        self.assertIsInstance(returned, Deferred)
        self.assertEqual(decision, Respond(486))

    def test_fired_failure_logged(self) -> None:
        """A stage whose Deferred has already failed ends the chain with 500, logged once."""
        events = capture_log(self)
        chain = RequestChain([_Stage("s0", "raise", "fired", _Run())])
        self.assertEqual(chain.run(RequestContext(_request(), FLOW)), Respond(500))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(
            [e["stage"] for e in events if e["log_level"] is LogLevel.critical], ["s0"]
        )
