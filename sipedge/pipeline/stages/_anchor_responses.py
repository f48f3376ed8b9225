# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
The C{media-anchor} stage's response side: the 18x/2xx that answer an
offer, or carry the offer of an INVITE without SDP, and the failures that
end an exchange or the call. Each event is an input of the exchange's
machine (L{sipedge.media.Exchange}); what it does is the transition's
actions.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from sipedge.error import MessageParseError
from sipedge.media import (
    MediaError,
    OfferAnswerAction,
    OfferAnswerInput,
    OfferAnswerState,
    RelayAllocation,
    rewrite,
)
from sipedge.message import Response, SessionDescription, parse_sdp
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline.stages._anchor_base import AnchorCalls
from sipedge.pipeline.stages._anchor_calls import (
    CACHE_SIZE,
    CALLER,
    Call,
    Negotiation,
    at_once,
    ids,
    other,
    relay_error,
    sdp_body,
)

__all__ = ["ResponseAnchoring"]

A = OfferAnswerAction
I = OfferAnswerInput  # noqa: E741

_OFFER_METHODS = frozenset({"INVITE", "UPDATE", "PRACK"})


class ResponseAnchoring(AnchorCalls):
    """The responses of an anchored call's offer/answer exchanges."""

    def anchor_response(
        self, context: RequestContext | None, response: Response
    ) -> Response | Deferred[Response]:
        try:
            call_id, from_tag, to_tag, cseq, method = ids(response)
        except MessageParseError:
            return response
        call = self.find_call(call_id, from_tag, to_tag)
        if call is None or method not in _OFFER_METHODS:
            return response
        status = response.status
        if status >= 300:
            self._failed(call, cseq, method, status)
            return response
        requester = call.role_of(from_tag)
        dialog = to_tag if requester == CALLER else from_tag
        if status >= 200 and method == "INVITE" and call.callee_tag is None:
            call.callee_tag = dialog
        foreign = call.callee_tag is not None and dialog != call.callee_tag
        pending = call.pending
        if pending is not None and not pending.matches(cseq, method):
            pending = None
        body = sdp_body(response)
        if body is None:
            if not foreign and pending is not None and status >= 200:
                return self._confirmed(call, pending, dialog, response)
            return response
        if foreign:
            return self.hidden(call, requester, response, body)
        if pending is not None:
            if pending.late:
                return self._response_offer(call, pending, response, body, requester)
            return self._response_answer(call, pending, response, body, requester, dialog)
        sent = call.sent.get((requester, body))
        if sent is not None:
            return response.with_body(sent)
        return self.hidden(call, requester, response, body)

    def _failed(self, call: Call, cseq: int, method: str, status: int) -> None:
        """A final failure: the end of the call, or of an exchange."""
        if method == "INVITE" and (
            (call.invite_cseq == cseq and call.callee_tag is None) or status == 481
        ):
            self.end(call, f"INVITE answered {status}")
            return
        pending = call.pending
        if pending is not None and pending.matches(cseq, method):
            self.fail_pending(call)

    # -- a 2xx without SDP ------------------------------------------------------

    def _confirmed(
        self, call: Call, pending: Negotiation, dialog: str | None, response: Response
    ) -> Response | Deferred[Response]:
        """
        A 2xx without SDP for the exchange under way: it confirms an early
        answer (a 18x, a PRACK); where another fork's answer came after the
        one of the dialog it confirms, that dialog's answer goes back to
        the relay. Where it owed the answer (or the offer), the exchange
        failed and the call goes on as it was.
        """
        if (
            not pending.late
            and pending.state is OfferAnswerState.EARLY
            and pending.answered_by is not None
            and dialog is not None
            and pending.answered_by != dialog
        ):
            self.step(call, pending, I.CONFIRMED_OTHER)
            return self._restore_early_answer(call, pending, dialog, response)
        self.carry_out(call, pending, self.step(call, pending, I.CONFIRMED))
        return response

    def _restore_early_answer(
        self, call: Call, pending: Negotiation, dialog: str, response: Response
    ) -> Response | Deferred[Response]:
        assert pending.key is not None
        early = pending.early.get(dialog)
        answer = sdp_body(early) if early is not None else None
        if early is None or answer is None:
            d: Deferred[RelayAllocation] = fail(MediaError(f"dialog {dialog} sent no answer"))
        else:
            try:
                sdp = parse_sdp(answer)
            except MessageParseError as e:
                d = fail(e)
            else:
                d = self.ask(self.relay.update, pending.key, sdp, None, early, early.flow)
        d.addCallbacks(
            self._early_answer_restored,
            self._early_answer_failed,
            callbackArgs=(call, pending, dialog, response),
            errbackArgs=(call, pending, response),
        )
        return at_once(d)

    def _early_answer_restored(
        self,
        allocation: RelayAllocation,
        call: Call,
        pending: Negotiation,
        dialog: str,
        response: Response,
    ) -> Response:
        actions = self.step(call, pending, I.UPDATED)
        if A.ACTIVATE in actions:
            pending.allocation = allocation
            pending.answered_by = dialog
            self.carry_out(call, pending, actions)
        return response

    def _early_answer_failed(
        self, failure: Failure, call: Call, pending: Negotiation, response: Response
    ) -> Response:
        error = failure.value
        if isinstance(error, (MessageParseError, MediaError)):
            self._log.warn(
                "The 2xx of {call_id} confirms a dialog without a usable answer: {error}",
                call_id=call.call_id,
                error=getattr(error, "reason", None) or str(error),
            )
        else:
            self.answer_refused(failure, f"the {response.status} of {call.call_id}")
        self.carry_out(call, pending, self.step(call, pending, I.ANSWER_REFUSED))
        return response

    # -- the offer in a 18x/2xx of an INVITE without SDP -------------------------

    def _response_offer(
        self,
        call: Call,
        pending: Negotiation,
        response: Response,
        body: bytes,
        requester: str,
    ) -> Response | Deferred[Response]:
        """The offer in the 18x/2xx of an INVITE that had none."""
        final = response.status >= 200
        if pending.offer_in == body and pending.offer_out is not None:
            repeated = I.REPEATED_OFFER_FINAL if final else I.REPEATED_OFFER
            actions = self.step(call, pending, repeated)
            self.carry_out(call, pending, actions)
            if A.RESEND_OFFER in actions:
                return response.with_body(pending.offer_out)
            return self.hidden(call, requester, response, body)
        try:
            sdp = parse_sdp(body)
        except MessageParseError:
            return self.hidden(call, requester, response, body)
        actions = self.step(call, pending, I.LATE_OFFER if call.current is None else I.LATE_REOFFER)
        if A.HIDE in actions:
            return self.hidden(call, requester, response, body)
        if A.RELEASE in actions and pending.key is not None:
            # another fork's offer, or a changed one: the last one wins
            self.drop(pending)
            pending.key = None
        responder = other(requester)
        policy = self.policy_for(call, responder, sdp)
        if policy is None:
            self._log.warn(
                "Media offer in the {status} of {call_id} refused: SDES keys over plain signalling",
                status=response.status,
                call_id=call.call_id,
            )
            self.fail_pending(call)
            return self.hidden(call, requester, response, body)
        key = call.next_key()
        self._sessions[key] = call
        pending.key = key
        pending.offerer = pending.a_role = responder
        pending.policy = policy
        # A.ALLOCATE or A.REOFFER: a new session either way (an offer in a
        # response is not re-offered in place yet: the call's ports move).
        d = self.ask(self.relay.allocate, key, sdp, policy, response, response.flow)
        d.addCallbacks(
            self._allocated_in_response,
            self._allocation_in_response_failed,
            callbackArgs=(call, pending, response, sdp, body, requester),
            errbackArgs=(call, pending, response, body, requester, key),
        )
        return at_once(d)

    def _allocated_in_response(
        self,
        allocation: RelayAllocation,
        call: Call,
        pending: Negotiation,
        response: Response,
        sdp: SessionDescription,
        body: bytes,
        requester: str,
    ) -> Response:
        if pending.key != allocation.session_key:
            self.release(allocation.session_key)
            return self.hidden(call, requester, response, body)
        actions = self.step(call, pending, I.ALLOCATED)
        if A.SEND_OFFER not in actions:
            # The exchange (or the call) ended meanwhile.
            self.release(allocation.session_key)
            return self.hidden(call, requester, response, body)
        pending.allocation = allocation
        out = self.send(call, requester, rewrite(sdp, allocation, pending.side(requester)), body)
        pending.offer_in, pending.offer_out = body, out
        return response.with_body(out)

    def _allocation_in_response_failed(
        self,
        failure: Failure,
        call: Call,
        pending: Negotiation,
        response: Response,
        body: bytes,
        requester: str,
        key: str,
    ) -> Response:
        self._sessions.pop(key, None)
        if pending.key == key:
            pending.key = pending.offerer = None
        error = relay_error(failure)
        if error is None:
            self._log.failure(
                "The media relay failed on the offer in the {status} of {call_id}",
                failure,
                status=response.status,
                call_id=call.call_id,
            )
        else:
            self._log.warn(
                "Media offer in the {status} of {call_id} refused: {error}",
                status=response.status,
                call_id=call.call_id,
                error=str(error),
            )
        final = response.status >= 200
        self.step(call, pending, I.ALLOCATION_REFUSED if final else I.ALLOCATION_REFUSED_EARLY)
        if pending.state is OfferAnswerState.DONE and call.pending is pending:
            call.pending = None
        return self.hidden(call, requester, response, body)

    # -- the answer in a 18x/2xx --------------------------------------------------

    def _response_answer(
        self,
        call: Call,
        pending: Negotiation,
        response: Response,
        body: bytes,
        requester: str,
        dialog: str | None = None,
    ) -> Response | Deferred[Response]:
        """The answer in the 18x/2xx of a request that made an offer."""
        final = response.status >= 200
        try:
            sdp = parse_sdp(body)
        except MessageParseError as e:
            self._log.warn(
                "Media answer in the {status} of {call_id} refused: {error}",
                status=response.status,
                call_id=call.call_id,
                error=e.reason,
            )
            if final:
                self.fail_pending(call)
            return self.hidden(call, requester, response, body)
        actions = self.step(call, pending, I.ANSWER if final else I.EARLY_ANSWER)
        if A.UPDATE not in actions:
            return self.hidden(call, requester, response, body)
        assert pending.key is not None
        d = self.ask(self.relay.update, pending.key, sdp, None, response, response.flow)
        d.addCallbacks(
            self._answered_in_response,
            self._answer_in_response_failed,
            callbackArgs=(call, pending, response, sdp, body, requester, dialog),
            errbackArgs=(call, pending, response, body, requester),
        )
        return at_once(d)

    def _answered_in_response(
        self,
        allocation: RelayAllocation,
        call: Call,
        pending: Negotiation,
        response: Response,
        sdp: SessionDescription,
        body: bytes,
        requester: str,
        dialog: str | None,
    ) -> Response:
        actions = self.step(call, pending, I.UPDATED)
        if A.SEND_ANSWER not in actions:
            # The exchange (or the call) ended meanwhile: no media.
            return self.hidden(call, requester, response, body)
        pending.allocation = allocation
        pending.answered_by = dialog
        if response.status < 200 and dialog is not None and len(pending.early) < CACHE_SIZE:
            pending.early[dialog] = response
        side = pending.side(requester)
        out = self.send(call, requester, rewrite(sdp, allocation, side), body)
        self.carry_out(call, pending, actions)
        return response.with_body(out)

    def _answer_in_response_failed(
        self,
        failure: Failure,
        call: Call,
        pending: Negotiation,
        response: Response,
        body: bytes,
        requester: str,
    ) -> Response:
        self.answer_refused(failure, f"the {response.status} of {call.call_id}")
        final = response.status >= 200
        actions = self.step(call, pending, I.ANSWER_REFUSED if final else I.EARLY_ANSWER_REFUSED)
        self.carry_out(call, pending, actions)
        return self.hidden(call, requester, response, body)
