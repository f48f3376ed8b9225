# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
The C{media-anchor} stage's answers in requests: the ACK or PRACK that
answers an offer made in a response (given to the relay, then rewritten),
and the retransmissions of one (which go on with what the first got).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sipedge.media import (
    OfferAnswerAction,
    OfferAnswerInput,
    RelayAllocation,
    reject,
    rewrite,
)
from sipedge.message import SessionDescription
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline.stages._anchor_base import AnchorCalls
from sipedge.pipeline.stages._anchor_calls import Call, Negotiation, at_once, other
from sipedge.results import Continue, StageResult

__all__ = ["RequestAnswers"]

_CONTINUE = Continue()

A = OfferAnswerAction
I = OfferAnswerInput  # noqa: E741


class RequestAnswers(AnchorCalls):
    """The stage's handling of an answer carried in an ACK or PRACK."""

    def _resend(
        self, context: RequestContext, call: Call, sdp: SessionDescription, body: bytes, role: str
    ) -> None:
        """A retransmitted ACK or PRACK: the bytes the first one went on with."""
        sent = call.sent.get((other(role), body))
        if sent is None:
            sent = self.stamp(call, other(role), reject(sdp))
        context.request = context.request.with_body(sent)

    def _answer_again(
        self, context: RequestContext, call: Call, sdp: SessionDescription, body: bytes, role: str
    ) -> StageResult:
        self._resend(context, call, sdp, body, role)
        return _CONTINUE

    def _request_answer(
        self,
        context: RequestContext,
        call: Call,
        pending: Negotiation,
        sdp: SessionDescription,
        body: bytes,
        role: str,
    ) -> StageResult | Deferred[StageResult]:
        """The answer (in an ACK or PRACK) to an offer made in a response."""
        assert pending.key is not None and pending.offerer is not None
        method = context.request.method
        actions = self.step(call, pending, I.ACK_ANSWER if method == "ACK" else I.PRACK_ANSWER)
        if A.WAIT in actions:
            # A retransmission while the relay takes the first one's answer:
            # it gets what the first one got.
            waiter: Deferred[None] = Deferred()
            pending.waiting.append(waiter)
            return waiter.addCallback(lambda _: self._answer_again(context, call, sdp, body, role))
        if A.UPDATE not in actions:
            context.request = context.request.with_body(
                self.stamp(call, pending.offerer, reject(sdp))
            )
            return _CONTINUE
        d = self.ask(self.relay.update, pending.key, sdp, None, context.original, context.flow)
        d.addCallbacks(
            self._answered_in_request,
            self._answer_in_request_failed,
            callbackArgs=(context, call, pending, sdp, body),
            errbackArgs=(context, call, pending, sdp),
        )
        d.addBoth(self._release_waiting, pending)
        return at_once(d)

    def _answered_in_request(
        self,
        allocation: RelayAllocation,
        context: RequestContext,
        call: Call,
        pending: Negotiation,
        sdp: SessionDescription,
        body: bytes,
    ) -> StageResult:
        request = context.request
        assert pending.offerer is not None
        actions = self.step(call, pending, I.UPDATED)
        if A.SEND_ANSWER not in actions:
            # The exchange ended meanwhile (the call ended): no media.
            context.request = request.with_body(self.stamp(call, pending.offerer, reject(sdp)))
            return _CONTINUE
        pending.allocation = allocation
        side = pending.side(pending.offerer)
        out = self.send(call, pending.offerer, rewrite(sdp, allocation, side), body)
        context.request = request.with_body(out)
        self.carry_out(call, pending, actions)
        return _CONTINUE

    def _answer_in_request_failed(
        self,
        failure: Failure,
        context: RequestContext,
        call: Call,
        pending: Negotiation,
        sdp: SessionDescription,
    ) -> StageResult:
        request = context.request
        assert pending.offerer is not None
        self.answer_refused(failure, f"{request.method} of {call.call_id}")
        self.carry_out(call, pending, self.step(call, pending, I.ANSWER_REFUSED))
        body = self.stamp(call, pending.offerer, reject(sdp))
        call.remember(pending.offerer, request.body, body)
        context.request = request.with_body(body)
        return _CONTINUE

    @staticmethod
    def _release_waiting(result: Any, pending: Negotiation) -> Any:
        waiting, pending.waiting = pending.waiting, []
        for waiter in waiting:
            waiter.callback(None)
        return result
