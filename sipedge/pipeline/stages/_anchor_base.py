# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
The C{media-anchor} stage's table of calls and what every part of it does
with them: feeding an exchange its input (L{AnchorCalls.step}), making an
answered exchange the current one, releasing relay sessions, ending calls,
and hearing that the relay ended a session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from sipedge._log import NamedLogger
from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.media import (
    MediaConfig,
    MediaError,
    MediaMode,
    OfferAnswerAction,
    OfferAnswerError,
    OfferAnswerInput,
    OfferAnswerState,
    PortsExhausted,
    RelayAllocation,
    RelayPolicy,
    SessionEnd,
    has_keys,
    media_family,
    offer_of,
    offers_srtp,
    reject,
)
from sipedge.message import Request, Response, SessionDescription, detect_nat, parse_sdp
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline.stages._anchor_calls import (
    Call,
    MediaEnded,
    Negotiation,
    other,
    relay_error,
    warning,
    without_body,
)
from sipedge.results import Respond

__all__ = ["AnchorCalls"]

A = OfferAnswerAction
I = OfferAnswerInput  # noqa: E741


class AnchorCalls:
    """
    The anchored calls, by C{<Call-ID>;<caller tag>}, and the relay
    sessions they hold, by session key.
    """

    name = "media-anchor"

    _log = NamedLogger(namespace="sipedge.stage.media-anchor")

    relay: Any
    config: MediaConfig
    on_media_ended: Callable[[MediaEnded], object] | None

    def __init__(self) -> None:
        #: Whether to re-offer a call's session in place (until the relay
        #: says it cannot).
        self.reoffers = True
        self._calls: dict[str, Call] = {}
        self._sessions: dict[str, Call] = {}

    def find_call(self, call_id: str, from_tag: str, to_tag: str | None) -> Call | None:
        """The call of a message with these Call-ID, From tag and To tag."""
        call = self._calls.get(f"{call_id};{from_tag}")
        if call is None and to_tag is not None:
            call = self._calls.get(f"{call_id};{to_tag}")
        return call

    # -- the offer/answer machine ---------------------------------------------

    def step(
        self, call: Call, negotiation: Negotiation, input: OfferAnswerInput
    ) -> tuple[OfferAnswerAction, ...]:
        """
        Feed C{input} to the exchange of C{negotiation} and return the
        actions of its transition. An input its state does not allow (the
        machine raised and is DONE) is logged, the exchange is dropped
        from the call and its session released; the caller gets
        L{OfferAnswerAction.HIDE} (what it carries goes on without usable
        SDP).
        """
        try:
            return negotiation.exchange.process_input(input)
        except OfferAnswerError as e:
            self._log.warn(
                "Offer/answer of call {call} out of order: {error}", call=call.key, error=str(e)
            )
            if call.pending is negotiation:
                call.pending = None
            if call.current is negotiation:
                call.current = None
            self.drop(negotiation)
            return (A.HIDE,)

    def promote(self, call: Call) -> None:
        """The pending exchange is complete: its session carries the media."""
        pending, call.pending = call.pending, None
        if pending is None or pending.key is None:
            return
        old, call.current = call.current, pending
        pending.in_place = False
        if old is not None:
            self.step(call, old, I.REPLACED)
            if old.key is not None and old.key != pending.key:
                self.release(old.key)

    def fail_pending(self, call: Call, input: OfferAnswerInput = I.FAILED) -> None:
        """The pending exchange failed (C{input}): it is dropped and its session released."""
        pending, call.pending = call.pending, None
        if pending is None:
            return
        actions = self.step(call, pending, input)
        if A.RELEASE in actions:
            self.drop(pending)

    def carry_out(
        self, call: Call, negotiation: Negotiation, actions: tuple[OfferAnswerAction, ...]
    ) -> None:
        """The actions on the call's state: ACTIVATE, RELEASE, WARN."""
        if A.WARN in actions:
            self._log.warn(
                "A message of {call_id} carries no SDP where it owed some (an answer or offer)",
                call_id=call.call_id,
            )
        if A.ACTIVATE in actions and call.pending is negotiation:
            self.promote(call)
        elif A.RELEASE in actions:
            if call.pending is negotiation:
                call.pending = None
            self.drop(negotiation)

    # -- leg modes --------------------------------------------------------------

    def policy_for(
        self, call: Call, offerer: str, sdp: SessionDescription
    ) -> RelayPolicy | None:
        """
        The relay policy of an offer C{sdp} made by the party C{offerer}
        (C{None}: it cannot be carried, see L{MediaConfig.leg_modes}).
        """
        a, b = call.parties[offerer], call.parties[other(offerer)]
        # The offerer's leg faces it in the family of its SDP (dual stack);
        # remembered, so the call's later offers keep the same interfaces.
        family = media_family(sdp)
        if family is not None:
            a.family = family
        return self.config.policy(
            a.external,
            b.external,
            offers_srtp(sdp),
            a.family,
            b.family,
            offer_keys=has_keys(sdp),
            offerer_secure=a.secure,
            answerer_secure=b.secure,
        )

    def late_modes(self, call: Call, answerer: str) -> tuple[MediaMode, MediaMode] | None:
        """
        The modes of the offerer's and C{answerer}'s legs before the offer
        is known (an INVITE without SDP: the offer comes from the other
        party), as if it were plain.
        """
        a, b = call.parties[other(answerer)], call.parties[answerer]
        return self.config.leg_modes(
            a.external, b.external, False, offerer_secure=a.secure, answerer_secure=b.secure
        )

    # -- sessions -------------------------------------------------------------

    def session_for(self, call: Call, role: str, policy: RelayPolicy) -> tuple[str, str, bool]:
        """
        The relay session of a new offer from C{role} in C{call}: the
        current one, re-offered in place (C{IMediaRelay.reoffer}), when it
        is answered, its policy fits and the relay can; else a new one.
        Returns its key, the role on its side A, and whether in place.
        """
        current = call.current
        if (
            self.reoffers
            and current is not None
            and current.key is not None
            and current.state is OfferAnswerState.ACTIVE
            and current.fits(role, policy)
        ):
            return current.key, current.a_role or role, True
        return call.next_key(), role, False

    def stamp(self, call: Call, receiver: str, sdp: SessionDescription) -> bytes:
        """C{sdp} with the o= version C{receiver} must get next."""
        return call.parties[receiver].versions.stamp(sdp).to_bytes()

    def send(self, call: Call, receiver: str, sdp: SessionDescription, received: bytes) -> bytes:
        """L{stamp}, remembered for retransmissions."""
        out = self.stamp(call, receiver, sdp)
        call.remember(receiver, received, out)
        return out

    def hidden(self, call: Call, receiver: str, response: Response, body: bytes) -> Response:
        """
        A response whose SDP we cannot anchor: a provisional one loses its
        body; a final one keeps it with every stream rejected.
        """
        if response.status < 200:
            return without_body(response)
        try:
            sdp = parse_sdp(body)
        except MessageParseError:
            return without_body(response)
        return response.with_body(self.stamp(call, receiver, reject(sdp)))

    def ask(
        self,
        operation: Callable[[str, Any], Deferred[RelayAllocation]],
        key: str,
        sdp: SessionDescription,
        policy: Any = None,
        sender: Request | Response | None = None,
        flow: Flow | None = None,
    ) -> Deferred[RelayAllocation]:
        """
        C{relay.allocate}, C{reoffer} or C{update} with the streams of
        C{sdp}, carried by the message C{sender} received on C{flow}: the
        relay is given the flow's address (L{MediaOffer.source}) when the
        proxy's NAT detection (L{detect_nat}) finds the party behind NAT
        (C{[media] nat}, L{MediaConfig.nat_source}).
        """
        try:
            offer = offer_of(sdp, policy)
        except MediaError:
            return fail()
        if sender is not None and flow is not None:
            hosts = [s.host for s in offer.streams if s.port]
            verdict = detect_nat(sender, flow, sdp)
            behind = self.config.nat_source(verdict, hosts[0] if hosts else None)
            if behind is not None:
                offer = attrs.evolve(offer, source=behind)
        return operation(key, offer)

    def answer_refused(self, failure: Failure, where: str) -> None:
        """Log the relay's refusal of an answer (or its failure)."""
        error = relay_error(failure)
        if error is None:
            self._log.failure(
                "The media relay failed on the answer in {where}", failure, where=where
            )
        else:
            self._log.warn(
                "Media answer in {where} refused: {error}", where=where, error=str(error)
            )

    def drop(self, negotiation: Negotiation) -> None:
        """
        An exchange's session is no longer wanted: released, or, for a
        re-offer of the call's current session, withdrawn (the call's media
        goes on as before it).
        """
        key = negotiation.key
        if key is None:
            return
        if negotiation.in_place:
            negotiation.in_place = False
            d = self.relay.withdraw(key)
            d.addErrback(self._withdraw_failed, key)
        else:
            self.release(key)

    def _withdraw_failed(self, failure: Failure, key: str) -> None:
        self._log.failure(
            "The media relay failed to withdraw the re-offer of {key}", failure, key=key
        )

    def release(self, key: str) -> None:
        self._sessions.pop(key, None)
        d = self.relay.release(key)
        d.addErrback(self._release_failed, key)

    def _release_failed(self, failure: Failure, key: str) -> None:
        self._log.failure("The media relay failed to release {key}", failure, key=key)

    def end(self, call: Call, why: str) -> None:
        """Forget the call and release its sessions."""
        if self._calls.get(call.key) is call:
            del self._calls[call.key]
        keys = call.keys()
        for negotiation in (call.pending, call.current):
            if negotiation is not None:
                self.step(call, negotiation, I.ENDED)
        for key in keys:
            self.release(key)
        call.pending = call.current = None
        self._log.debug("Call {call} no longer anchored: {why}", call=call.key, why=why)

    def session_ended(self, end: SessionEnd) -> None:
        """The relay ended a session: by itself unless we released it."""
        if end.reason == "released":
            return
        call = self._sessions.pop(end.session_key, None)
        if call is None:
            return
        pending = call.pending
        if pending is not None and pending.key == end.session_key and not pending.in_place:
            # An offer never answered: the call goes on (on its current
            # session, if any; SDP that comes later is rejected) until its
            # end, which forgets it.
            call.pending = None
            self.step(call, pending, I.RELAY_ENDED)
            self._log.info(
                "Media offer of call {call} ended by the relay ({reason})",
                call=call.key,
                reason=end.reason,
            )
            return
        current = call.current
        if current is None or current.key != end.session_key:
            return
        self._log.info(
            "Media of call {call} ended by the relay ({reason})",
            call=call.key,
            reason=end.reason,
        )
        self.step(call, current, I.RELAY_ENDED)
        self.end(call, end.reason)
        if self.on_media_ended is not None:
            try:
                self.on_media_ended(
                    MediaEnded(
                        call.call_id, call.caller_tag, call.callee_tag, end.reason, end.stats
                    )
                )
            except Exception:
                self._log.failure("on_media_ended failed for {call}", call=call.key)

    # -- refusals -------------------------------------------------------------

    def refused(self, context: RequestContext, error: MediaError) -> Respond:
        status = error.status_hint
        self._log.info(
            "Media offer in {method} of {call_id} refused ({status}): {error}",
            method=context.request.method,
            call_id=context.request.headers.get("Call-ID"),
            status=status,
            error=str(error),
        )
        if status == 488:
            return Respond(488, None, (warning(305, str(error)),))
        if status == 503:
            if isinstance(error, PortsExhausted):
                return Respond(503, "Media Ports Exhausted")
            # A remote relay that is not connected or did not answer.
            return Respond(503, "Media Relay Unavailable")
        return Respond(500)

    def refusal(self, code: int, text: str, context: RequestContext) -> Respond:
        """488 with a Warning of code C{code}."""
        self._log.info(
            "Media offer in {method} of {call_id} refused (488): {text}",
            method=context.request.method,
            call_id=context.request.headers.get("Call-ID"),
            text=text,
        )
        return Respond(488, None, (warning(code, text),))
