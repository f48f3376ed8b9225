# -*- test-case-name: sipedge.test.test_proxy_responses -*-
"""
Tests for the asynchronous response chain: L{RequestChain.run_responses},
L{sipedge.proxy._responses.ResponseQueue}, and L{ProxyCore} relaying
responses whose response stages answer with Deferreds.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.interfaces import IRequestStage, IResponseStage
from sipedge.message import Response
from sipedge.pipeline import Continue, RequestChain
from sipedge.proxy._responses import ResponseQueue
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    CAROL_UDP,
    UPSTREAM,
    ProxyHarness,
)
from sipedge.testing import parse_message as parse
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

PROXY = "192.0.2.1"


@implementer(IRequestStage, IResponseStage)
class _Slow:
    """
    A response stage that answers every response with a Deferred the test
    fires (C{pending}), or at once for the statuses in C{sync}.
    """

    name = "slow"

    def __init__(self, sync: tuple[int, ...] = ()) -> None:
        self.sync = sync
        self.pending: list[tuple[Response, Deferred[Response | None]]] = []
        self.seen: list[int] = []
        self.flows: list[Any] = []
        self.cancelled: list[int] = []

    def process_request(self, context: Any) -> Any:
        return Continue()

    def process_response(self, context: Any, response: Response) -> Any:
        self.seen.append(response.status)
        self.flows.append(response.flow)
        marked = response.with_headers(response.headers.added("X-Slow", str(response.status)))
        if response.status in self.sync:
            return marked
        d: Deferred[Response | None] = Deferred(
            lambda _: self.cancelled.append(response.status)
        )
        self.pending.append((marked, d))
        return d

    def fire(self, index: int = 0) -> None:
        """Fire the C{index}th waiting Deferred with the marked response."""
        marked, d = self.pending.pop(index)
        d.callback(marked)

    def fail(self, index: int = 0) -> None:
        _, d = self.pending.pop(index)
        d.errback(RuntimeError("the relay is gone"))


def _response(status: int, call_id: str = "c1") -> Response:
    message = parse(
        f"""
SIP/2.0 {status} Whatever
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1
From: <sip:alice@example.com>;tag=a
To: <sip:bob@example.com>;tag=b
Call-ID: {call_id}
CSeq: 1 INVITE
Content-Length: 0
"""
    )
    assert isinstance(message, Response)
    return message


@implementer(IResponseStage)
class _Mark:
    """Adds a header at once."""

    name = "mark"

    def __init__(self, value: str = "yes", result: Any = "marked") -> None:
        self.value = value
        self.result = result

    def process_response(self, context: Any, response: Response) -> Any:
        if self.result == "marked":
            return response.with_headers(response.headers.added("X-Mark", self.value))
        if self.result == "raise":
            raise RuntimeError("broken stage")
        if callable(self.result):
            return self.result(response)
        return self.result


class RunResponsesTests(SynchronousTestCase):
    """L{RequestChain.run_responses}."""

    def test_synchronous(self) -> None:
        """Stages that answer at once give a response, not a Deferred."""
        chain = RequestChain([_Mark("1"), _Mark("2")])
        out = chain.run_responses(None, _response(180))
        assert isinstance(out, Response)
        self.assertEqual(out.headers.get_all("X-Mark"), ("1", "2"))

    def test_deferred_then_synchronous(self) -> None:
        """After a stage's Deferred fires, the next stages run on its result."""
        d: Deferred[Response] = Deferred()
        chain = RequestChain([_Mark(result=lambda r: d), _Mark("2")])
        out = chain.run_responses(None, _response(200))
        assert isinstance(out, Deferred)
        self.assertNoResult(out)
        d.callback(_response(200).with_headers(_response(200).headers.added("X-Mark", "1")))
        self.assertEqual(self.result(out).headers.get_all("X-Mark"), ("1", "2"))

    def result(self, out: Any) -> Any:
        """The result of a Deferred that has fired."""
        assert isinstance(out, Deferred)
        return self.successResultOf(out)

    def later(self, chain: RequestChain, response: Response, outcome: Any) -> Any:
        """
        Run C{response} through C{chain}, whose first stage answers with a
        Deferred that fires with C{outcome} (fails with it, if an
        exception) once the chain has returned: the asynchronous path.
        """
        out = chain.run_responses(None, response)
        assert isinstance(out, Deferred)
        self.assertNoResult(out)
        if isinstance(outcome, BaseException):
            self.waiting.errback(outcome)
        else:
            self.waiting.callback(outcome)
        return self.result(out)

    def test_absorbed_later(self) -> None:
        """A Deferred that fires with None absorbs the response."""
        self.waiting: Deferred[Any] = Deferred()
        chain = RequestChain([_Mark(result=lambda r: self.waiting), _Mark("2")])
        self.assertIsNone(self.later(chain, _response(180), None))

    def test_failure_final(self) -> None:
        """
        A stage whose Deferred fails is logged, and a final response goes
        on to the next stage as it was.
        """
        self.waiting = Deferred()
        chain = RequestChain([_Mark(result=lambda r: self.waiting), _Mark("2")])
        out = self.later(chain, _response(200), RuntimeError("x"))
        self.assertEqual(out.headers.get_all("X-Mark"), ("2",))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_failure_provisional(self) -> None:
        """A provisional response whose stage fails is dropped."""
        self.waiting = Deferred()
        chain = RequestChain([_Mark(result=lambda r: self.waiting), _Mark("2")])
        self.assertIsNone(self.later(chain, _response(183), RuntimeError("x")))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_fired_taken_at_once(self) -> None:
        """
        A stage whose Deferred has already fired (or failed) is taken at
        once: no Deferred, the same outcomes as the asynchronous path.
        """
        chain = RequestChain([_Mark(result=lambda r: succeed(None)), _Mark("2")])
        self.assertIsNone(chain.run_responses(None, _response(180)))
        chain = RequestChain([_Mark(result=lambda r: fail(RuntimeError("x"))), _Mark("2")])
        out = chain.run_responses(None, _response(200))
        assert isinstance(out, Response)
        self.assertEqual(out.headers.get_all("X-Mark"), ("2",))
        self.assertIsNone(chain.run_responses(None, _response(183)))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_raise(self) -> None:
        """
        A stage that raises: the final response goes on as it was, a
        provisional one is dropped.
        """
        chain = RequestChain([_Mark(result="raise"), _Mark("2")])
        out = chain.run_responses(None, _response(486))
        assert isinstance(out, Response)
        self.assertEqual(out.headers.get_all("X-Mark"), ("2",))
        self.assertIsNone(chain.run_responses(None, _response(180)))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_bad_result(self) -> None:
        """A stage that returns (or fires with) something else failed."""
        for result in ("nonsense", succeed("nonsense")):
            chain = RequestChain([_Mark(result=lambda r, result=result: result), _Mark("2")])
            out = chain.run_responses(None, _response(200))
            if isinstance(out, Deferred):
                out = self.successResultOf(out)
            assert isinstance(out, Response)
            self.assertEqual(out.headers.get_all("X-Mark"), ("2",))
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 2)


class ResponseQueueTests(SynchronousTestCase):
    """L{ResponseQueue} on its own."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.stage = _Slow()
        self.chain = RequestChain([self.stage])
        self.delivered: list[tuple[int, str | None]] = []
        self.idle: list[ResponseQueue] = []
        self.queue = ResponseQueue(
            self.chain.run_responses, self.clock, 5.0, "owner", self.idle.append
        )
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def deliver(self, owner: Any, response: Response, relayed: Response | None) -> None:
        self.assertEqual(owner, "owner")
        self.delivered.append(
            (response.status, relayed.headers.get("X-Slow") if relayed is not None else None)
        )

    def test_in_order(self) -> None:
        """
        Responses wait for the one before them: the chain sees the next
        only once the first is delivered.
        """
        for status in (180, 183, 200):
            self.queue.submit(None, _response(status), self.deliver)
        self.assertEqual(self.stage.seen, [180])
        self.assertTrue(self.queue.busy)
        self.assertEqual(len(self.queue), 3)
        self.stage.fire()
        self.assertEqual(self.delivered, [(180, "180")])
        self.assertEqual(self.stage.seen, [180, 183])
        self.stage.fire()
        self.stage.fire()
        self.assertEqual(self.delivered, [(180, "180"), (183, "183"), (200, "200")])
        self.assertFalse(self.queue.busy)
        self.assertEqual(self.idle[-1:], [self.queue])

    def test_backlog_bounded(self) -> None:
        """
        Past C{max_waiting} waiting responses, a provisional one is dropped
        (logged once); past twice that, a 2xx too; a non-2xx final always
        waits. What was kept is delivered in order.
        """
        events: list[dict[str, Any]] = []
        queue = ResponseQueue(
            self.chain.run_responses, self.clock, 5.0, "owner", max_waiting=2
        )
        queue._log = Logger(observer=cast(ILogObserver, events.append))
        for status in (180, 181, 182, 183, 200, 200, 200, 486):
            queue.submit(None, _response(status), self.deliver)
        # 180 is in the chain; 181 and 182 wait; 183 is dropped (2 wait);
        # two 200s wait, the third is dropped (4 wait); 486 waits.
        self.assertEqual(queue.dropped, 2)
        self.assertEqual(len(queue), 6)
        self.assertEqual([e["status"] for e in events if e.get("rule") == "response-backlog"],
                         [183])
        for _ in range(6):
            self.stage.fire()
        self.assertEqual(
            [status for status, _ in self.delivered], [180, 181, 182, 200, 200, 486]
        )
        self.assertFalse(queue.busy)

    def test_synchronous_behind(self) -> None:
        """Responses the chain answers at once still wait their turn."""
        self.stage.sync = (200,)
        self.queue.submit(None, _response(180), self.deliver)
        self.queue.submit(None, _response(200), self.deliver)
        self.assertEqual(self.delivered, [])
        self.stage.fire()
        self.assertEqual(self.delivered, [(180, "180"), (200, "200")])

    def test_fired_at_once(self) -> None:
        """A Deferred that has fired already is delivered at once, no timer."""
        self.queue.wait(succeed(_response(200)), _response(200), self.deliver)
        self.assertEqual(self.delivered, [(200, None)])
        self.assertFalse(self.queue.busy)

    def test_timeout(self) -> None:
        """
        A response that waits C{timeout} seconds is given up on: the chain
        is cancelled, the response delivered as absorbed (C{None}), and the
        next one runs.
        """
        self.queue.submit(None, _response(180), self.deliver)
        self.queue.submit(None, _response(200), self.deliver)
        self.clock.advance(4.9)
        self.assertEqual(self.delivered, [])
        self.clock.advance(0.1)
        self.assertEqual(self.stage.cancelled, [180])
        self.assertEqual(self.delivered, [(180, None)])
        self.flushLoggedErrors(CancelledError)
        self.clock.advance(5)
        self.assertEqual(self.delivered, [(180, None), (200, None)])
        self.assertFalse(self.queue.busy)
        self.flushLoggedErrors(CancelledError)

    def test_timeout_uncancellable(self) -> None:
        """
        If the chain still waits after it was cancelled (a later stage
        waits again), the response is delivered anyway, and the late
        result is ignored.
        """
        later: Deferred[Response] = Deferred()
        running: Deferred[Response | None] = Deferred()
        running.addErrback(lambda _: later)
        self.queue.wait(running, _response(200), self.deliver)
        self.clock.advance(5)
        self.assertEqual(self.delivered, [(200, None)])
        self.assertFalse(self.queue.busy)
        later.callback(_response(200))
        self.assertEqual(self.delivered, [(200, None)])

    def test_stop(self) -> None:
        """L{ResponseQueue.stop} cancels the chain and delivers nothing."""
        self.queue.submit(None, _response(180), self.deliver)
        self.queue.submit(None, _response(200), self.deliver)
        self.queue.stop()
        self.assertEqual(self.stage.cancelled, [180])
        self.assertEqual(self.delivered, [])
        self.assertFalse(self.queue.busy)
        self.flushLoggedErrors(CancelledError)

    def test_deliver_raises(self) -> None:
        """A delivery that raises is logged; the queue goes on."""

        def broken(owner: Any, response: Response, relayed: Response | None) -> None:
            raise RuntimeError("bug")

        self.queue.submit(None, _response(180), broken)
        self.queue.submit(None, _response(200), self.deliver)
        self.stage.fire()
        self.stage.fire()
        self.assertEqual(self.delivered, [(200, "200")])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class AsyncResponseChainTests(ProxyHarness, SynchronousTestCase):
    """L{ProxyCore} with a response stage that answers later."""

    def slow(self, sync: tuple[int, ...] = ()) -> _Slow:
        stage = _Slow(sync)
        self.core.chain = RequestChain([stage, *self.core.chain.stages])
        return stage

    def invite(self, *flows: Any) -> list[Any]:
        for i, flow in enumerate(flows or (BOB_UDP,)):
            self.register(
                f"sip:bob@{flow.remote_host}:{flow.remote_port}", flow, call_id=f"reg-{i}"
            )
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = [m for flow in flows or (BOB_UDP,) for m in self.sent_to(flow.remote, "INVITE")]
        self.take()
        return forwarded

    def upstream(self) -> list[tuple[int, str | None]]:
        """Responses sent upstream since the last take: status and X-Slow."""
        seen: set[int] = set()
        out = []
        for m, flow in self.transports.sent:
            if isinstance(m, Response) and flow.remote == UPSTREAM and id(m) not in seen:
                seen.add(id(m))
                out.append((m.status, m.headers.get("X-Slow")))
        return out

    def test_synchronous_no_queue(self) -> None:
        """
        While every response stage answers at once, no queue is made: the
        responses go upstream as they come.
        """
        self.slow(sync=(180, 200))
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.assertEqual(self.upstream(), [(180, "180")])
        [fork] = self.core.forking.forks.values()
        self.assertIsNone(fork.responses)
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.assertEqual(self.upstream(), [(180, "180"), (200, "200")])

    def test_200_waits_for_180(self) -> None:
        """
        A 200 that comes while the 180 waits in the chain waits behind it:
        the stage sees it only once the 180 is relayed, and the caller gets
        180 then 200.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.assertEqual(self.upstream(), [])
        self.assertEqual(stage.seen, [180])
        stage.fire()
        self.assertEqual(self.upstream(), [(180, "180")])
        self.assertEqual(stage.seen, [180, 200])
        stage.fire()
        self.assertEqual(self.upstream(), [(180, "180"), (200, "200")])

    def test_forked_2xx_in_order(self) -> None:
        """Two 2xx of a forked INVITE are both relayed, in the order they came."""
        stage = self.slow()
        to_bob, to_carol = self.invite(BOB_UDP, CAROL_UDP)
        self.receive(answer(to_carol, 200, to_tag="carol"), CAROL_UDP)
        self.receive(answer(to_bob, 200), BOB_UDP)
        self.assertEqual(self.upstream(), [])
        stage.fire()
        stage.fire()
        relayed = [m for m in self.sent_to(UPSTREAM, 200)]
        self.assertEqual([m.to_address.tag for m in relayed], ["carol", "bob-tag"])

    def test_response_carries_its_flow(self) -> None:
        """
        Each response a stage sees carries the flow its branch was sent
        over (where its sender is: a callee behind NAT answers from its
        router's address), and still equals the response as received.
        """
        stage = self.slow(sync=(180, 200))
        to_bob, to_carol = self.invite(BOB_UDP, CAROL_UDP)
        self.receive(answer(to_carol, 180, to_tag="carol"), CAROL_UDP)
        self.receive(answer(to_bob, 200), BOB_UDP)
        self.assertEqual(stage.flows, [CAROL_UDP, BOB_UDP])
        [relayed] = self.sent_to(UPSTREAM, 200)
        self.assertEqual(relayed.flow, BOB_UDP)
        self.assertEqual(relayed, relayed.with_headers(relayed.headers, CAROL_UDP))

    def test_retransmitted_2xx_waits(self) -> None:
        """
        A 2xx retransmitted while the first waits in the chain is relayed
        after it.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        ok = answer(forwarded, 200)
        self.receive(ok, BOB_UDP)
        self.receive(ok, BOB_UDP)
        self.assertEqual(stage.seen, [200])
        stage.fire()
        self.assertEqual(stage.seen, [200, 200])
        stage.fire()
        self.assertEqual(len(self.sent_to(UPSTREAM, 200)), 2)

    def test_failure(self) -> None:
        """
        A stage's Deferred fails: the 180 is dropped, the 200 relayed as it
        came.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(answer(forwarded, 200), BOB_UDP)
        stage.fail()
        stage.fail()
        self.assertEqual(self.upstream(), [(200, None)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_never_fires(self) -> None:
        """
        A stage that never answers holds nothing for longer than
        C{response_chain_timeout}: the 180 is dropped, the 200 relayed as
        it came, and the transactions end.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.clock.advance(5)
        self.assertEqual(self.upstream(), [])
        self.clock.advance(5)
        self.assertEqual(self.upstream(), [(200, None)])
        self.assertEqual(stage.cancelled, [180, 200])
        self.flushLoggedErrors(CancelledError)

    def test_timeout_configurable(self) -> None:
        """C{response_chain_timeout} is the core's argument."""
        self.core.response_chain_timeout = 1.5
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 486), BOB_UDP)
        self.clock.advance(1.5)
        self.assertEqual(self.upstream(), [(486, None)])
        self.assertEqual(stage.cancelled, [486])
        self.flushLoggedErrors(CancelledError)

    def test_non_invite_waits(self) -> None:
        """The final response of a MESSAGE waits too; the transaction stays open."""
        stage = self.slow()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "MESSAGE")
        self.take()
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.clock.advance(1)
        self.assertEqual(self.upstream(), [])
        stage.fire()
        self.assertEqual(self.upstream(), [(200, "200")])

    def test_cancel_while_200_waits(self) -> None:
        """
        A CANCEL that comes while the 200 waits in the chain finds the call
        answered: 200 to the CANCEL, and the INVITE gets the 200, not 487.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.upstream(), [(200, None)])  # the CANCEL's
        self.assertEqual(self.sent_to(BOB, "CANCEL"), [])
        stage.fire()
        relayed = self.sent_to(UPSTREAM, 200)
        self.assertEqual([m.cseq.method for m in relayed], ["CANCEL", "INVITE"])
        self.assertEqual(self.sent_to(UPSTREAM, 487), [])

    def test_cancel_while_180_waits(self) -> None:
        """
        A CANCEL while the 180 waits: the branch is cancelled at once, and
        the caller gets the 180, then the 487, in order.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.receive(answer(forwarded, 487), BOB_UDP)
        stage.fire()
        stage.fire()
        self.assertEqual(
            [s for s, _ in self.upstream() if s != 200], [180, 487]
        )
        self.assertEqual(self.upstream()[-1], (487, "487"))

    def test_timer_c_while_waiting(self) -> None:
        """
        Timer C fires while every response waits for a stage that never
        answers: the branch is cancelled and the caller gets the 487, as
        it came, once the chain has timed out on it.
        """
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.clock.advance(180)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.receive(answer(forwarded, 487), BOB_UDP)
        self.assertEqual(self.upstream(), [])
        self.clock.advance(5)
        self.assertEqual(self.upstream(), [(487, None)])
        self.assertEqual(stage.cancelled, [180, 487])
        self.flushLoggedErrors(CancelledError)

    def test_best_response_waits(self) -> None:
        """The final response the core makes (a 408 on Timer C) goes through it too."""
        stage = self.slow()
        [_forwarded] = self.invite()
        self.clock.advance(180)
        self.assertEqual(stage.seen, [408])
        stage.fire()
        self.assertEqual(self.upstream(), [(408, "408")])

    def test_stop(self) -> None:
        """Stopping the core while responses wait leaves no timer behind."""
        stage = self.slow()
        [forwarded] = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.core.stop()
        self.assertEqual(stage.cancelled, [180])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.core.busy_queues, set())
        self.flushLoggedErrors(CancelledError)
        self.build()  # a fresh core for the clean-up checks


class AsyncStrayTests(ProxyHarness, SynchronousTestCase):
    """Stray 2xx through a response stage that answers later."""

    def stray(self, call_id: str = "stray@198.51.100.7") -> Response:
        message = parse(
            f"""
SIP/2.0 200 OK
Via: SIP/2.0/UDP {PROXY}:5060;branch=z9hG4bK-se-0123456789abcdef0123.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-alice-9
From: <sip:alice@example.com>;tag=alice-tag
To: <sip:bob@example.com>;tag=bob-tag
Call-ID: {call_id}
CSeq: 1 INVITE
Content-Length: 0
"""
        )
        assert isinstance(message, Response)
        return message

    def test_stray_waits(self) -> None:
        """
        Stray 2xx of one call wait in order; those of another call do not
        wait behind them.
        """
        stage = _Slow()
        self.core.chain = RequestChain([stage, *self.core.chain.stages])
        self.receive(self.stray(), BOB_UDP)
        self.receive(self.stray(), BOB_UDP)
        self.receive(self.stray("other"), BOB_UDP)
        self.assertEqual(len(stage.pending), 2)
        self.assertEqual(self.take(), [])
        stage.fire(1)  # the other call's
        [(out, _)] = self.take()
        self.assertEqual(out.headers.get("Call-ID"), "other")
        stage.fire()
        stage.fire()
        self.assertEqual(len(self.take()), 2)
        self.assertEqual(self.core.stateless.stray_queues, {})

    def test_stray_synchronous(self) -> None:
        """A stray 2xx through stages that answer at once: no queue."""
        stage = _Slow(sync=(200,))
        self.core.chain = RequestChain([stage, *self.core.chain.stages])
        self.receive(self.stray(), BOB_UDP)
        [(out, _)] = self.take()
        self.assertEqual(out.headers.get("X-Slow"), "200")
        self.assertEqual(self.core.stateless.stray_queues, {})
