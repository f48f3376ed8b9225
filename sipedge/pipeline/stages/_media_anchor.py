# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
The media-anchoring stage: every call's media goes through the relay.

It sees the requests in the request chain and the responses the proxy
relays upstream (it provides L{IRequestStage} and L{IResponseStage}),
follows the RFC 3264 offer/answer exchanges of each call (RFC 3261 13.2.1,
RFC 3262, RFC 3311, RFC 6337), and for each:

 - the offer (an INVITE, re-INVITE, UPDATE or PRACK with SDP; or, for an
   INVITE without SDP, the 18x/2xx that carries it) opens a relay session
   (L{IMediaRelay.allocate}) and goes on with the relay's B endpoints
   written in (L{sipedge.media._anchor_sdp.rewrite});
 - the answer (an 18x/2xx, or the ACK/PRACK of a late offer) gives the
   relay the answerer's addresses and keys (L{IMediaRelay.update}) and goes
   on with the relay's A endpoints;
 - the call ends (BYE of the anchored dialog, the initial INVITE's failure,
   487 after CANCEL, a timeout's 408, a decision of a later stage to answer
   the INVITE itself) with L{IMediaRelay.release}; when the relay ends a
   call's media itself (idle, maximum duration), C{on_media_ended} is told,
   so that the proxy can end the call with BYE.

Where each exchange is, and what each event does to it, is the sans-IO
machine of L{sipedge.media._offer_answer} (a transition table); this
stage is its adapter: it turns messages and the relay's answers into the
machine's inputs and carries out the actions (L{_anchor_base}: the calls
and sessions; L{_anchor_responses}: the response side; L{_sdes_policy}:
where SDES keys may go; L{_anchor_side}: which side a callee is on).

A relay session is named C{<Call-ID>;<from-tag of the initial INVITE>};
a new offer in a request of the same call (re-INVITE, UPDATE: the
machine's C{REOFFER}) re-offers that session in place
(L{IMediaRelay.reoffer}, so the ports stay), and a refused one is
withdrawn (L{IMediaRelay.withdraw}). Where the policy changes, the relay
cannot re-offer (L{sipedge.media.ReofferUnsupported}), or the offer comes
in a response, a new session C{<Call-ID>;<from-tag>;<n>} (n = 1, 2, ...)
is opened instead, and the old one released when the new one is answered.

It goes after C{responsibility}/C{toll-fraud} and before C{registrar},
C{location} and C{static-route} (which end the chain with Forward): see
C{doc/media.md}. Give it to the proxy core as an L{IProxyObserver} too, so
that an offer a later stage answers (404, 403, ...) is released at once.

Any L{IMediaRelay} fits: the stage uses its Deferreds only. Those of the
in-process relay have fired when returned, and the stage then answers at
once (no Deferred reaches the chains); with a remote relay, the request,
or the response in the proxy core's response chain, waits for it. An
exchange is recorded before the relay answers, so a crossing offer gets
491 and the end of the call meanwhile releases what the relay allocates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.interfaces import (
    IBranchStage,
    IDialogListener,
    IProxyObserver,
    IRequestStage,
    IResponseStage,
    IRoutedStage,
)
from sipedge.media import (
    MediaConfig,
    MediaMode,
    OfferAnswerAction,
    OfferAnswerInput,
    RelayAllocation,
    ReofferUnsupported,
    has_keys,
    rewrite,
)
from sipedge.media import Party as RelayParty
from sipedge.message import Request, Response, SessionDescription, parse_sdp
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline.stages._anchor_answers import RequestAnswers
from sipedge.pipeline.stages._anchor_calls import (
    CALLEE,
    CALLER,
    Call,
    MediaEnded,
    Negotiation,
    NewCall,
    Note,
    Party,
    at_once,
    ids,
    multipart_sdp,
    other,
    relay_error,
    sdp_body,
    warning,
    without_body,
)
from sipedge.pipeline.stages._anchor_responses import ResponseAnchoring
from sipedge.pipeline.stages._anchor_side import (
    callee_external,
    callee_family,
    callee_secure,
    ip_family,
)
from sipedge.pipeline.stages._sdes_policy import SdesPolicy
from sipedge.results import Continue, Drop, Forward, Respond, StageResult

__all__ = ["CALLEE", "CALLER", "MediaAnchorStage", "MediaEnded"]

_CONTINUE = Continue()
_METHODS = frozenset({"INVITE", "ACK", "BYE", "UPDATE", "PRACK"})

A = OfferAnswerAction
I = OfferAnswerInput  # noqa: E741


@implementer(
    IRequestStage, IRoutedStage, IResponseStage, IProxyObserver, IBranchStage, IDialogListener
)
class MediaAnchorStage(ResponseAnchoring, RequestAnswers):
    """
    @param relay: the L{IMediaRelay}: in process (a
        L{sipedge.media.MediaRelay}, whose Deferreds fire at once: the
        stage then answers at once too) or in another process (the request
        and the response wait for it). Unused (may be C{None}) when
        C{config.anchor} is false.
    @param config: the C{[media]} section (sides, SRTP policy).
    @param on_media_ended: called with a L{MediaEnded} when the relay ends
        a call's media by itself.
    """

    def __init__(
        self,
        relay: Any,
        config: MediaConfig | None = None,
        *,
        on_media_ended: Callable[[MediaEnded], object] | None = None,
    ) -> None:
        super().__init__()
        self.relay = relay
        self.config = config if config is not None else MediaConfig()
        self.on_media_ended = on_media_ended
        self._sdes = SdesPolicy(self, self._log)
        if self.config.anchor:
            if relay is None:
                raise ValueError("media anchoring needs a relay")
            relay.add_observer(self.session_ended)

    def __repr__(self) -> str:
        return f"<MediaAnchorStage calls={len(self._calls)}>"

    @property
    def calls(self) -> tuple[str, ...]:
        """The anchored calls, as C{<Call-ID>;<caller tag>}."""
        return tuple(self._calls)

    def close(self) -> None:
        """Stop watching the relay (the calls' sessions are left as they are)."""
        if self.config.anchor:
            self.relay.remove_observer(self.session_ended)

    def end_call(self, call_id: str, tag: str, other: str | None = None, why: str = "") -> bool:
        """
        Release the media of the call C{call_id} between the tags C{tag}
        and C{other} (in either order): the proxy ended it itself (a BYE
        to each party, which this stage does not see). False if the call
        is not anchored.
        """
        call = self.find_call(call_id, tag, other)
        if call is None and other is not None:
            call = self.find_call(call_id, other, tag)
        if call is None:
            return False
        self.end(call, why or "ended by the proxy")
        return True

    def dialog_ended(self, call_id: str, caller_tag: str, callee_tag: str, reason: str) -> None:
        """
        L{IDialogListener}: the proxy's dialog table says the dialog is
        over (a BYE the proxy sent itself, a 481/408, no refresh): its
        media is released, if it is still anchored.
        """
        self.end_call(call_id, caller_tag, callee_tag, f"dialog {reason}")

    # -- requests -------------------------------------------------------------

    def process_request(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        if not self.config.anchor:
            return _CONTINUE
        request = context.request
        method = request.method
        if method not in _METHODS:
            return _CONTINUE
        try:
            call_id, from_tag, to_tag, cseq, _ = ids(request)
        except MessageParseError:
            return _CONTINUE  # the sanity stage's business
        call = self.find_call(call_id, from_tag, to_tag)
        if method == "BYE":
            if call is not None:
                self._bye(call, from_tag, to_tag)
            return _CONTINUE
        if method == "INVITE" and to_tag is None and call is not None and call.invite_cseq != cseq:
            # A new initial INVITE (e.g. after a 401) while the old one's
            # end went unseen: start again.
            self.end(call, "a new INVITE")
            call = None
        body = sdp_body(request)
        if body is None:
            if method != "ACK" and multipart_sdp(request):
                return self.refusal(305, "SDP in a multipart body cannot be anchored", context)
            if method == "INVITE":
                return self._offerless_invite(context, call, call_id, from_tag, to_tag, cseq)
            if method == "ACK" and call is not None:
                self._ack_without_answer(call, cseq)
            return _CONTINUE
        try:
            sdp = parse_sdp(body)
        except MessageParseError as e:
            if method == "ACK":
                if call is not None:
                    context.request = without_body(request)
                return _CONTINUE
            return Respond(400, "Bad Session Description", (warning(399, e.reason),))
        role = CALLER if call is None else call.role_of(from_tag)
        if call is not None and method in ("ACK", "PRACK"):
            pending = call.pending
            if (
                pending is not None
                and pending.late
                and pending.key is not None
                and role != pending.offerer
                and (method == "PRACK" or pending.cseq == cseq)
            ):
                return self._request_answer(context, call, pending, sdp, body, role)
            if method == "ACK":
                self._resend(context, call, sdp, body, role)
                return _CONTINUE
        if method == "ACK" or (method == "PRACK" and call is None):
            return _CONTINUE
        return self._request_offer(context, call, sdp, body, role, call_id, from_tag, to_tag, cseq)

    def _request_offer(
        self,
        context: RequestContext,
        call: Call | None,
        sdp: SessionDescription,
        body: bytes,
        role: str,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        cseq: int,
    ) -> StageResult | Deferred[StageResult]:
        if call is not None:
            refusal = self._start_exchange(call)
            if refusal is not None:
                return refusal
            return self._allocate(context, call, sdp, body, role, cseq, new_call=False)
        # A new call: its offer waits for the routing decision, which says
        # on which side of the edge the callee is (targets_chosen).
        context.annotations[self.name] = NewCall(call_id, from_tag, to_tag, cseq, sdp, body)
        return _CONTINUE

    def _start_exchange(self, call: Call) -> Respond | None:
        """
        Make way for a new exchange: 491 if an offer is outstanding
        (RFC 3261 14.2, RFC 3311 5.2); an exchange answered early (a 18x)
        becomes the current one.
        """
        pending = call.pending
        if pending is None:
            return None
        actions = self.step(call, pending, I.NEW_OFFER)
        if A.REFUSE_491 in actions:
            return Respond(491)
        self.carry_out(call, pending, actions)
        return None

    def _allocate(
        self,
        context: RequestContext,
        call: Call,
        sdp: SessionDescription,
        body: bytes,
        role: str,
        cseq: int,
        *,
        new_call: bool,
    ) -> StageResult | Deferred[StageResult]:
        policy = self.policy_for(call, role, sdp)
        if policy is None:
            # srtp = auto: SRTP required, its keys came over plain signalling.
            refusal = self._sdes.check_transport(context)
            return refusal if refusal is not None else Respond(488)
        mode = policy.a.mode
        if mode.srtp or (mode is MediaMode.PASSTHROUGH and has_keys(sdp)):
            refusal = self._sdes.check_transport(context)
            if refusal is not None:
                return refusal
        current = call.current
        key, a_role, in_place = self.session_for(call, role, policy)
        # The exchange is known before the relay answers: a crossing offer
        # gets 491, and the end of the call (a CANCEL, a later stage's
        # answer) releases the session (or withdraws the re-offer).
        self._sessions[key] = call
        if new_call:
            self._calls[call.key] = call
        negotiation = Negotiation(
            cseq, context.request.method, role, key, a_role=a_role, in_place=in_place,
            policy=current.policy if in_place and current is not None else policy,
        )
        # ALLOCATE, or REOFFER in a call with media: the relay updates the
        # call's session in place where it can (same policy), so the ports
        # stay; else (another policy, a relay that cannot) a new session.
        self.step(call, negotiation, I.OFFER if current is None else I.REOFFER)
        call.pending = negotiation
        note = context.annotations[self.name] = Note(call, negotiation, new_call)
        sender, flow = context.original, context.flow
        if in_place:
            party = RelayParty.A if role == a_role else RelayParty.B
            d = self.ask(
                lambda k, offer: self.relay.reoffer(k, offer, party), key, sdp, None, sender, flow
            )
        else:
            d = self.ask(self.relay.allocate, key, sdp, policy, sender, flow)
        d.addCallbacks(
            self._allocated,
            self._allocation_failed,
            callbackArgs=(context, note, sdp, body),
            errbackArgs=(context, note, sdp, body),
        )
        return at_once(d)

    def _allocated(
        self,
        allocation: RelayAllocation,
        context: RequestContext,
        note: Note,
        sdp: SessionDescription,
        body: bytes,
    ) -> StageResult:
        call, negotiation = note.call, note.negotiation
        actions = self.step(call, negotiation, I.ALLOCATED)
        if A.SEND_OFFER not in actions:
            # The exchange ended while the relay allocated (the call ended).
            assert negotiation.key is not None
            if negotiation.in_place and call.current is not None:
                self.drop(negotiation)
            else:
                negotiation.in_place = False
                self.release(negotiation.key)
            self._log.info(
                "Call {call} ended while its media offer was allocated", call=call.key
            )
            return Respond(500, None, (warning(399, "the call ended meanwhile"),))
        negotiation.allocation = allocation
        assert negotiation.offerer is not None
        answerer = other(negotiation.offerer)
        out = self.send(call, answerer, rewrite(sdp, allocation, negotiation.side(answerer)), body)
        context.request = context.request.with_body(out)
        return _CONTINUE

    def _allocation_failed(
        self,
        failure: Failure,
        context: RequestContext,
        note: Note,
        sdp: SessionDescription,
        body: bytes,
    ) -> StageResult | Deferred[StageResult]:
        """The relay refused the offer: nothing stays allocated, the request is answered."""
        call, negotiation = note.call, note.negotiation
        if negotiation.key is not None and not negotiation.in_place:
            self._sessions.pop(negotiation.key, None)
        negotiation.in_place = False
        self.step(call, negotiation, I.ALLOCATION_REFUSED)
        if call.pending is negotiation:
            call.pending = None
        if note.new_call and self._calls.get(call.key) is call and call.current is None:
            del self._calls[call.key]
        if context.annotations.get(self.name) is note:
            del context.annotations[self.name]
        if failure.check(ReofferUnsupported):
            # A relay that cannot re-offer (a version 1 remote relay): a new
            # session for this offer and the next ones, as before.
            self._log.info(
                "The media relay cannot re-offer a session: re-offers open new sessions"
            )
            self.reoffers = False
            assert negotiation.offerer is not None
            return self._allocate(
                context, call, sdp, body, negotiation.offerer, negotiation.cseq, new_call=False
            )
        error = relay_error(failure)
        if error is None:
            self._log.failure(
                "The media relay failed on the offer in {method} of {call_id}",
                failure,
                method=context.request.method,
                call_id=call.call_id,
            )
            return Respond(503, "Media Relay Unavailable")
        return self.refused(context, error)

    def _offerless_invite(
        self,
        context: RequestContext,
        call: Call | None,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        cseq: int,
    ) -> StageResult | Deferred[StageResult]:
        """An INVITE without SDP: the offer will come in its 18x/2xx."""
        if call is not None:
            refusal = self._start_exchange(call)
            if refusal is not None:
                return refusal
            return self._await_offer(context, call, call.role_of(from_tag), cseq, new_call=False)
        context.annotations[self.name] = NewCall(call_id, from_tag, to_tag, cseq, None, None)
        return _CONTINUE

    def _await_offer(
        self, context: RequestContext, call: Call, role: str, cseq: int, *, new_call: bool
    ) -> StageResult:
        # The sender answers: if its leg will be SRTP, the relay's keys will
        # go to it over this flow.
        modes = self.late_modes(call, role)
        if modes is not None and modes[1].srtp:
            refusal = self._sdes.check_transport(context)
            if refusal is not None:
                return refusal
        negotiation = Negotiation(cseq, "INVITE", None, late=True)
        self.step(call, negotiation, I.OFFERLESS)
        call.pending = negotiation
        if new_call:
            self._calls[call.key] = call
        context.annotations[self.name] = Note(call, negotiation, new_call)
        return _CONTINUE

    def _ack_without_answer(self, call: Call, cseq: int) -> None:
        pending = call.pending
        if pending is not None and pending.late and pending.cseq == cseq:
            self.carry_out(call, pending, self.step(call, pending, I.NO_ANSWER))

    def _bye(self, call: Call, from_tag: str, to_tag: str | None) -> None:
        callee_tag = to_tag if call.role_of(from_tag) == CALLER else from_tag
        if call.callee_tag is None or callee_tag != call.callee_tag:
            # An early dialog, or another fork's dialog: the INVITE's final
            # response (or the anchored dialog's BYE) ends the call.
            return
        self.end(call, "BYE")

    # -- IRoutedStage: a new call, once the chain chose where it goes -----------

    def targets_chosen(
        self, context: RequestContext, forward: Forward
    ) -> StageResult | Deferred[StageResult]:
        """
        The chain decided where the request that starts a call goes: the
        first target tells the callee's side (L{callee_external}); the
        call is recorded and its offer given to the relay (or, for an
        INVITE without SDP, awaited in the responses).
        """
        new = context.annotations.get(self.name)
        if not isinstance(new, NewCall):
            return _CONTINUE
        del context.annotations[self.name]
        config = self.config
        callee = callee_external(config, context, forward) if config.sided else True
        caller_family = ip_family(context.flow.remote_host)
        call = Call(
            new.call_id,
            new.from_tag,
            {
                CALLER: Party(
                    config.is_external(context.flow.remote_host),
                    secure=context.flow.secure,
                    family=caller_family,
                ),
                CALLEE: Party(
                    callee,
                    secure=callee_secure(context, forward),
                    family=callee_family(context, forward) or caller_family,
                ),
            },
            invite_cseq=(
                new.cseq if context.request.method == "INVITE" and new.to_tag is None else None
            ),
            callee_tag=new.to_tag,
        )
        if new.sdp is None or new.body is None:
            return self._await_offer(context, call, CALLER, new.cseq, new_call=True)
        return self._allocate(context, call, new.sdp, new.body, CALLER, new.cseq, new_call=True)

    # -- responses, branches ------------------------------------------------------

    def process_response(self, context: RequestContext | None, response: Response) -> Any:
        if not self.config.anchor:
            return response
        out = self.anchor_response(context, response)
        if self.config.sdes_over_plain:
            return out
        if isinstance(out, Deferred):
            return out.addCallback(lambda r: self._sdes.keys_upstream(context, r))
        return self._sdes.keys_upstream(context, out)

    def process_branch(self, context: Any, request: Request, flow: Flow) -> Request | Respond:
        """L{IBranchStage}: see L{SdesPolicy.process_branch}."""
        return self._sdes.process_branch(context, request, flow)

    # -- IProxyObserver ---------------------------------------------------------

    def request_decided(self, context: RequestContext, result: Any) -> None:
        """
        A later stage answered (or dropped) a request whose offer we
        allocated, or an initial INVITE we started to follow: release.
        """
        if not isinstance(result, (Respond, Drop)):
            return
        note = context.annotations.get(self.name)
        if not isinstance(note, Note):
            return
        call = note.call
        if call.pending is note.negotiation:
            self.fail_pending(call)
        if note.new_call and self._calls.get(call.key) is call and call.current is None:
            self.end(call, "answered before forwarding")
