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

A relay session is named C{<Call-ID>;<from-tag of the initial INVITE>};
a new offer in the same call (re-INVITE, UPDATE) opens a new session,
C{<Call-ID>;<from-tag>;<n>} (n = 1, 2, ...), and the old one is released
when the new one is answered with a 2xx (or the ACK of a late offer): the
relay has no operation to re-offer in a live session, so the ports change,
but media flows on the old ones until then, and a refused re-INVITE keeps
the call on the old session.

With C{sdes_over_plain} false, SDES keys never cross signalling that is
not TLS: the flow a request came in on is checked in the request chain,
the flow the proxy core picks for each branch in L{process_branch} (an
L{IBranchStage}), and a response with keys going back over plain
signalling loses them.

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

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge._log import NamedLogger
from sipedge.error import MessageParseError
from sipedge.interfaces import IBranchStage, IProxyObserver, IRequestStage, IResponseStage
from sipedge.media._anchor_sdp import (
    OriginVersions,
    has_keys,
    offer_of,
    offers_srtp,
    reject,
    rewrite,
)
from sipedge.media._config import MediaConfig
from sipedge.media._errors import MediaError, PortsExhausted
from sipedge.media._values import MediaMode, RelayAllocation, SessionEnd, SessionStats
from sipedge.message import Request, Response
from sipedge.message._address import quote_text
from sipedge.message._sdp import SessionDescription, parse_sdp
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._results import Continue, Drop, Respond, StageResult
from sipedge.store import aor_of
from sipedge.transport._flow import Flow

__all__ = ["CALLEE", "CALLER", "MediaAnchorStage", "MediaEnded"]

_CONTINUE = Continue()

#: The roles of a call's parties: the one who sent the initial INVITE and
#: the other.
CALLER = "caller"
CALLEE = "callee"

_METHODS = frozenset({"INVITE", "ACK", "BYE", "UPDATE", "PRACK"})
_OFFER_METHODS = frozenset({"INVITE", "UPDATE", "PRACK"})
_SDP = "application/sdp"
_CACHE_SIZE = 8

_T = TypeVar("_T")


def _at_once(d: Deferred[Any]) -> Any:
    """
    The result of C{d} if it has fired (an in-process relay answers at
    once: no Deferred goes on to the chain then), else C{d}. A failure is
    raised.
    """
    box: list[object] = []

    def grab(result: object) -> object:
        box.append(result)
        return result

    d.addBoth(grab)
    if not box:
        return d
    d.addErrback(lambda _: None)  # taken out of d: raised below
    result = box[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def _relay_error(failure: Failure) -> MediaError | None:
    """The relay's refusal, or C{None} for any other failure (a bug, a lost relay)."""
    error = failure.value
    return error if isinstance(error, MediaError) else None


_PLAIN_REFUSED = "SDES keys over a non-TLS transport refused"


def _any_keys(sdp: SessionDescription) -> bool:
    """True if any m= line, relayed or not, carries a=crypto (SDES keys)."""
    return any(m.has_attribute("crypto") for m in sdp.media)


def _other(role: str) -> str:
    return CALLEE if role == CALLER else CALLER


@attrs.frozen
class MediaEnded:
    """
    The relay ended an anchored call's media by itself (C{reason}: C{idle},
    C{max-duration}, C{setup-timeout}, C{closed}), so the call has no media
    any more: the proxy should end it (BYE to both parties).

    @ivar call_id: the call's Call-ID.
    @ivar caller_tag: the caller's tag (From of the initial INVITE).
    @ivar callee_tag: the callee's tag in the anchored dialog, or C{None}
        if no 2xx came.
    @ivar reason: the relay's end reason (L{sipedge.media.END_REASONS}).
    @ivar stats: the session's final statistics.
    """

    call_id: str
    caller_tag: str
    callee_tag: str | None
    reason: str
    stats: SessionStats


@attrs.define(eq=False)
class _Party:
    """One party of a call: its side of the edge, and the o= it received."""

    external: bool
    versions: OriginVersions = attrs.Factory(OriginVersions)


@attrs.define(eq=False)
class _Negotiation:
    """
    One offer/answer exchange and its relay session.

    @ivar cseq: the CSeq number of the transaction that carries it.
    @ivar method: that transaction's method.
    @ivar offerer: the role of the party that made the offer (relay side
        A); C{None} while a late offer is awaited.
    @ivar key: the relay session, once the offer is allocated.
    @ivar answer_in_request: the answer comes in a request (the ACK or
        PRACK of an offer made in a response).
    @ivar answered: an answer was applied.
    @ivar offer_in: an offer made in a response, as received...
    @ivar offer_out: ...and as sent on (a 2xx may repeat a 18x's offer).
    @ivar answered_by: the dialog (the answerer's tag) whose answer the
        relay has now; forked early dialogs answer one after another.
    @ivar early: each early dialog's answer in a 18x, as received, so that
        a 2xx without SDP (RFC 3262: the answer came in a reliable 18x)
        puts back the answer of the dialog it confirms.
    @ivar waiting: while the relay takes an answer carried by a request
        (an ACK), the retransmissions of that request wait for it here.
    """

    cseq: int
    method: str
    offerer: str | None
    key: str | None = None
    allocation: RelayAllocation | None = None
    answer_in_request: bool = False
    answered: bool = False
    offer_in: bytes | None = None
    offer_out: bytes | None = None
    answered_by: str | None = None
    early: dict[str, bytes] = attrs.Factory(dict)
    waiting: list[Deferred[None]] | None = None


@attrs.define(eq=False)
class _Call:
    """
    An anchored call.

    @ivar caller_tag: the From tag of the initial INVITE (or of the first
        request we anchored, for a call we learn of in mid-dialog).
    @ivar invite_cseq: the CSeq number of the initial INVITE, or C{None}.
    @ivar callee_tag: the callee's tag in the dialog the first 2xx
        confirmed (the anchored dialog); C{None} until then.
    @ivar current: the answered exchange whose session carries the media.
    @ivar pending: the exchange under way, if any.
    @ivar sent: (receiving role, SDP as received) -> SDP as sent, for the
        last few descriptions: a retransmission (a stray 2xx, its ACK) gets
        the same bytes again.
    """

    call_id: str
    caller_tag: str
    parties: dict[str, _Party]
    invite_cseq: int | None
    callee_tag: str | None = None
    current: _Negotiation | None = None
    pending: _Negotiation | None = None
    generation: int = 0
    sent: dict[tuple[str, bytes], bytes] = attrs.Factory(dict)

    @property
    def key(self) -> str:
        """The call's name: C{<Call-ID>;<caller tag>}."""
        return f"{self.call_id};{self.caller_tag}"

    def next_key(self) -> str:
        """The relay session key of the next exchange."""
        key = self.key if self.generation == 0 else f"{self.key};{self.generation}"
        self.generation += 1
        return key

    def role_of(self, from_tag: str) -> str:
        """The role of the party whose tag is C{from_tag}."""
        return CALLER if from_tag == self.caller_tag else CALLEE

    def keys(self) -> list[str]:
        """The relay sessions the call holds."""
        return [n.key for n in (self.pending, self.current) if n is not None and n.key is not None]

    def remember(self, receiver: str, received: bytes, sent: bytes) -> None:
        self.sent.pop((receiver, received), None)
        self.sent[(receiver, received)] = sent
        while len(self.sent) > _CACHE_SIZE:
            del self.sent[next(iter(self.sent))]


@attrs.frozen
class _Note:
    """C{context.annotations["media-anchor"]}: what a request opened."""

    call: _Call
    negotiation: _Negotiation
    new_call: bool


def _ids(message: Request | Response) -> tuple[str, str, str | None, int, str]:
    """Call-ID, From tag (C{""} for none), To tag, CSeq number and method."""
    cseq = message.cseq
    return (
        message.call_id,
        message.from_address.tag or "",
        message.to_address.tag,
        cseq.number,
        cseq.method,
    )


def _sdp_body(message: Request | Response) -> bytes | None:
    """The body if it is SDP (by Content-Type, or by its start without one)."""
    body = message.body
    if not body:
        return None
    content_type = message.content_type
    if content_type == _SDP or (content_type is None and body.lstrip().startswith(b"v=0")):
        return body
    return None


def _multipart_sdp(message: Request | Response) -> bool:
    content_type = message.content_type or ""
    return content_type.startswith("multipart/") and _SDP.encode() in message.body.lower()


def _ip(host: str | None) -> str | None:
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _host_of(uri: Any) -> str | None:
    host = getattr(uri, "host", None)
    return host.strip("[]") if isinstance(host, str) else None


def _warning(code: int, text: str) -> tuple[str, str]:
    try:
        quoted = quote_text(text)
    except MessageParseError:
        quoted = '"media refused"'
    return ("Warning", f"{code} sipedge {quoted}")


def _without_body(message: Any) -> Any:
    """C{message} without its body and Content-Type."""
    return message.with_headers(message.headers.removed("Content-Type")).with_body(b"")


@implementer(IRequestStage, IResponseStage, IProxyObserver, IBranchStage)
class MediaAnchorStage:
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

    name = "media-anchor"

    _log = NamedLogger(namespace="sipedge.stage.media-anchor")

    def __init__(
        self,
        relay: Any,
        config: MediaConfig | None = None,
        *,
        on_media_ended: Callable[[MediaEnded], object] | None = None,
    ) -> None:
        self.relay = relay
        self.config = config if config is not None else MediaConfig()
        self.on_media_ended = on_media_ended
        self._calls: dict[str, _Call] = {}
        self._sessions: dict[str, _Call] = {}
        if self.config.anchor:
            if relay is None:
                raise ValueError("media anchoring needs a relay")
            relay.add_observer(self._session_ended)

    def __repr__(self) -> str:
        return f"<MediaAnchorStage calls={len(self._calls)}>"

    @property
    def calls(self) -> tuple[str, ...]:
        """The anchored calls, as C{<Call-ID>;<caller tag>}."""
        return tuple(self._calls)

    def close(self) -> None:
        """Stop watching the relay (the calls' sessions are left as they are)."""
        if self.config.anchor:
            self.relay.remove_observer(self._session_ended)

    def end_call(self, call_id: str, tag: str, other: str | None = None, why: str = "") -> bool:
        """
        Release the media of the call C{call_id} between the tags C{tag}
        and C{other} (in either order): the proxy ended it itself (a BYE
        to each party, which this stage does not see). False if the call
        is not anchored.
        """
        call = self._find(call_id, tag, other)
        if call is None and other is not None:
            call = self._find(call_id, other, tag)
        if call is None:
            return False
        self._end(call, why or "ended by the proxy")
        return True

    # -- finding calls --------------------------------------------------------

    def _find(self, call_id: str, from_tag: str, to_tag: str | None) -> _Call | None:
        call = self._calls.get(f"{call_id};{from_tag}")
        if call is None and to_tag is not None:
            call = self._calls.get(f"{call_id};{to_tag}")
        return call

    # -- requests -------------------------------------------------------------

    def process_request(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        if not self.config.anchor:
            return _CONTINUE
        request = context.request
        method = request.method
        if method not in _METHODS:
            return _CONTINUE
        try:
            call_id, from_tag, to_tag, cseq, _ = _ids(request)
        except MessageParseError:
            return _CONTINUE  # the sanity stage's business
        call = self._find(call_id, from_tag, to_tag)
        if method == "BYE":
            if call is not None:
                self._bye(call, from_tag, to_tag)
            return _CONTINUE
        if method == "INVITE" and to_tag is None and call is not None and call.invite_cseq != cseq:
            # A new initial INVITE (e.g. after a 401) while the old one's
            # end went unseen: start again.
            self._end(call, "a new INVITE")
            call = None
        body = _sdp_body(request)
        if body is None:
            if method != "ACK" and _multipart_sdp(request):
                return self._refusal(305, "SDP in a multipart body cannot be anchored", context)
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
                    context.request = _without_body(request)
                return _CONTINUE
            return Respond(400, "Bad Session Description", (_warning(399, e.reason),))
        role = CALLER if call is None else call.role_of(from_tag)
        if call is not None and method in ("ACK", "PRACK"):
            pending = call.pending
            if (
                pending is not None
                and pending.answer_in_request
                and pending.key is not None
                and role != pending.offerer
                and (method == "PRACK" or pending.cseq == cseq)
            ):
                return self._request_answer(context, call, pending, sdp, body, role)
            if method == "ACK":
                sent = call.sent.get((_other(role), body))
                if sent is None:
                    sent = self._stamp(call, _other(role), reject(sdp))
                context.request = request.with_body(sent)
                return _CONTINUE
        if method == "ACK" or (method == "PRACK" and call is None):
            return _CONTINUE
        return self._request_offer(context, call, sdp, body, role, call_id, from_tag, to_tag, cseq)

    def _request_offer(
        self,
        context: RequestContext,
        call: _Call | None,
        sdp: SessionDescription,
        body: bytes,
        role: str,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        cseq: int,
    ) -> StageResult | Deferred[StageResult]:
        method = context.request.method
        if call is not None:
            refusal = self._start_exchange(call)
            if refusal is not None:
                return refusal
            return self._allocate(context, call, sdp, body, role, cseq, new_call=False)
        made = self._new_call(context, call_id, from_tag, to_tag, cseq, method)
        if isinstance(made, Deferred):
            return made.addCallback(
                lambda call: self._allocate(context, call, sdp, body, role, cseq, new_call=True)
            )
        return self._allocate(context, made, sdp, body, role, cseq, new_call=True)

    def _start_exchange(self, call: _Call) -> Respond | None:
        """
        Make way for a new exchange: 491 if an offer is outstanding
        (RFC 3261 14.2, RFC 3311 5.2); an exchange answered early (a 18x)
        becomes the current one.
        """
        pending = call.pending
        if pending is None:
            return None
        if pending.key is None or not pending.answered:
            return Respond(491)
        self._promote(call)
        return None

    def _allocate(
        self,
        context: RequestContext,
        call: _Call,
        sdp: SessionDescription,
        body: bytes,
        role: str,
        cseq: int,
        *,
        new_call: bool,
    ) -> StageResult | Deferred[StageResult]:
        offerer = call.parties[role]
        answerer = call.parties[_other(role)]
        policy = self.config.policy(offerer.external, answerer.external, offers_srtp(sdp))
        mode = policy.a.mode
        if mode.srtp or (mode is MediaMode.PASSTHROUGH and has_keys(sdp)):
            refusal = self._check_transport(context)
            if refusal is not None:
                return refusal
        key = call.next_key()
        # The exchange is known before the relay answers: a crossing offer
        # gets 491, and the end of the call (a CANCEL, a later stage's
        # answer) releases the session.
        self._sessions[key] = call
        if new_call:
            self._calls[call.key] = call
        negotiation = _Negotiation(cseq, context.request.method, role, key)
        call.pending = negotiation
        note = context.annotations[self.name] = _Note(call, negotiation, new_call)
        d = self._ask(self.relay.allocate, key, sdp, policy)
        d.addCallbacks(
            self._allocated,
            self._allocation_failed,
            callbackArgs=(context, note, sdp, body),
            errbackArgs=(context, note),
        )
        return _at_once(d)

    def _allocated(
        self,
        allocation: RelayAllocation,
        context: RequestContext,
        note: _Note,
        sdp: SessionDescription,
        body: bytes,
    ) -> StageResult:
        call, negotiation = note.call, note.negotiation
        if call.pending is not negotiation:
            # The exchange ended while the relay allocated (the call ended).
            assert negotiation.key is not None
            self._release(negotiation.key)
            self._log.info(
                "Call {call} ended while its media offer was allocated", call=call.key
            )
            return Respond(500, None, (_warning(399, "the call ended meanwhile"),))
        negotiation.allocation = allocation
        assert negotiation.offerer is not None
        out = self._send(call, _other(negotiation.offerer), rewrite(sdp, allocation, "b"), body)
        context.request = context.request.with_body(out)
        return _CONTINUE

    def _allocation_failed(
        self, failure: Failure, context: RequestContext, note: _Note
    ) -> StageResult:
        """The relay refused the offer: nothing stays allocated, the request is answered."""
        call, negotiation = note.call, note.negotiation
        if negotiation.key is not None:
            self._sessions.pop(negotiation.key, None)
        if call.pending is negotiation:
            call.pending = None
        if note.new_call and self._calls.get(call.key) is call and call.current is None:
            del self._calls[call.key]
        if context.annotations.get(self.name) is note:
            del context.annotations[self.name]
        error = _relay_error(failure)
        if error is None:
            self._log.failure(
                "The media relay failed on the offer in {method} of {call_id}",
                failure,
                method=context.request.method,
                call_id=call.call_id,
            )
            return Respond(503, "Media Relay Unavailable")
        return self._refused(context, error)

    def _offerless_invite(
        self,
        context: RequestContext,
        call: _Call | None,
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
        made = self._new_call(context, call_id, from_tag, to_tag, cseq, "INVITE")
        if isinstance(made, Deferred):
            return made.addCallback(
                lambda call: self._await_offer(context, call, CALLER, cseq, new_call=True)
            )
        return self._await_offer(context, made, CALLER, cseq, new_call=True)

    def _await_offer(
        self, context: RequestContext, call: _Call, role: str, cseq: int, *, new_call: bool
    ) -> StageResult:
        # The sender answers: if its leg will be SRTP, the relay's keys will
        # go to it over this flow.
        answerer = call.parties[role]
        offerer = call.parties[_other(role)]
        _, mode = self.config.leg_modes(offerer.external, answerer.external, False)
        if mode.srtp:
            refusal = self._check_transport(context)
            if refusal is not None:
                return refusal
        negotiation = _Negotiation(cseq, "INVITE", None, answer_in_request=True)
        call.pending = negotiation
        if new_call:
            self._calls[call.key] = call
        context.annotations[self.name] = _Note(call, negotiation, new_call)
        return _CONTINUE

    def _request_answer(
        self,
        context: RequestContext,
        call: _Call,
        pending: _Negotiation,
        sdp: SessionDescription,
        body: bytes,
        role: str,
    ) -> StageResult | Deferred[StageResult]:
        """The answer (in an ACK or PRACK) to an offer made in a response."""
        assert pending.key is not None and pending.offerer is not None
        if pending.waiting is not None:
            # A retransmission while the relay takes the first one's answer:
            # it gets what the first one got.
            waiter: Deferred[None] = Deferred()
            pending.waiting.append(waiter)
            return waiter.addCallback(lambda _: self._answer_again(context, call, sdp, body, role))
        pending.waiting = []
        d = self._ask(self.relay.update, pending.key, sdp)
        d.addCallbacks(
            self._answered_in_request,
            self._answer_in_request_failed,
            callbackArgs=(context, call, pending, sdp, body),
            errbackArgs=(context, call, pending, sdp),
        )
        d.addBoth(self._release_waiting, pending)
        return _at_once(d)

    def _answered_in_request(
        self,
        allocation: RelayAllocation,
        context: RequestContext,
        call: _Call,
        pending: _Negotiation,
        sdp: SessionDescription,
        body: bytes,
    ) -> StageResult:
        request = context.request
        assert pending.offerer is not None
        if call.pending is not pending:
            # The exchange ended meanwhile (the call ended): no media.
            context.request = request.with_body(self._stamp(call, pending.offerer, reject(sdp)))
            return _CONTINUE
        pending.allocation = allocation
        pending.answered = True
        out = self._send(call, pending.offerer, rewrite(sdp, allocation, "a"), body)
        context.request = request.with_body(out)
        if request.method == "ACK":
            self._promote(call)
        return _CONTINUE

    def _answer_in_request_failed(
        self,
        failure: Failure,
        context: RequestContext,
        call: _Call,
        pending: _Negotiation,
        sdp: SessionDescription,
    ) -> StageResult:
        request = context.request
        assert pending.offerer is not None
        self._answer_refused(failure, f"{request.method} of {call.call_id}")
        if call.pending is pending:
            self._drop_pending(call)
        body = self._stamp(call, pending.offerer, reject(sdp))
        call.remember(pending.offerer, request.body, body)
        context.request = request.with_body(body)
        return _CONTINUE

    @staticmethod
    def _release_waiting(result: _T, pending: _Negotiation) -> _T:
        waiting, pending.waiting = pending.waiting or [], None
        for waiter in waiting:
            waiter.callback(None)
        return result

    def _answer_again(
        self,
        context: RequestContext,
        call: _Call,
        sdp: SessionDescription,
        body: bytes,
        role: str,
    ) -> StageResult:
        """A retransmitted ACK or PRACK: the bytes the first one went on with."""
        sent = call.sent.get((_other(role), body))
        if sent is None:
            sent = self._stamp(call, _other(role), reject(sdp))
        context.request = context.request.with_body(sent)
        return _CONTINUE

    def _answer_refused(self, failure: Failure, where: str) -> None:
        """Log the relay's refusal of an answer (or its failure)."""
        error = _relay_error(failure)
        if error is None:
            self._log.failure(
                "The media relay failed on the answer in {where}", failure, where=where
            )
        else:
            self._log.warn(
                "Media answer in {where} refused: {error}", where=where, error=str(error)
            )

    def _ack_without_answer(self, call: _Call, cseq: int) -> None:
        pending = call.pending
        if (
            pending is not None
            and pending.answer_in_request
            and pending.key is not None
            and not pending.answered
            and pending.cseq == cseq
        ):
            self._log.warn(
                "The ACK of {call_id} carries no answer to the offer in the 2xx: no media",
                call_id=call.call_id,
            )
            self._drop_pending(call)

    def _bye(self, call: _Call, from_tag: str, to_tag: str | None) -> None:
        callee_tag = to_tag if call.role_of(from_tag) == CALLER else from_tag
        if call.callee_tag is None or callee_tag != call.callee_tag:
            # An early dialog, or another fork's dialog: the INVITE's final
            # response (or the anchored dialog's BYE) ends the call.
            return
        self._end(call, "BYE")

    # -- new calls: which side the callee is on ---------------------------------

    def _new_call(
        self,
        context: RequestContext,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        cseq: int,
        method: str,
    ) -> _Call | Deferred[_Call]:
        caller_external = self.config.is_external(context.flow.remote_host)

        def made(callee_external: bool) -> _Call:
            return _Call(
                call_id,
                from_tag,
                {CALLER: _Party(caller_external), CALLEE: _Party(callee_external)},
                invite_cseq=cseq if method == "INVITE" and to_tag is None else None,
                callee_tag=to_tag,
            )

        if not self.config.sided:
            return made(True)
        side = self._callee_external(context)
        if isinstance(side, Deferred):
            return side.addCallback(made)
        return made(side)

    def _callee_external(self, context: RequestContext) -> bool | Deferred[bool]:
        """
        Whether the request's destination is external, as the chain after
        us will decide it: the next Route if there is one; the
        Request-URI's host if it is an address; for one of our users, where
        the first registered contact registered from (as C{location}); a
        matching C{[[routes]]} next hop (as C{static-route}); else
        C{media.default_side}.
        """
        config = self.config
        default = config.default_side == "external"
        request = context.request
        try:
            routes = request.routes
            uri = request.request_uri
        except MessageParseError:
            return default
        if routes:
            host = _ip(_host_of(routes[0].uri))
            return config.is_external(host) if host is not None else default
        host = _ip(_host_of(uri))
        if host is not None:
            return config.is_external(host)
        services = context.services
        location = getattr(services, "location", None)
        if (
            context.annotations.get("responsibility") == "local"
            and location is not None
            and getattr(uri, "user", None)
        ):
            d = location.lookup(aor_of(uri), services.clock.seconds())
            d.addCallback(self._binding_side, default)
            d.addErrback(self._lookup_failed, default)
            return d
        user = getattr(uri, "user", None) or getattr(uri, "number", None)
        for route in getattr(getattr(services, "config", None), "routes", ()):
            if route.matches(_host_of(uri) or "", user):
                host = _ip(_host_of(route.next_hop))
                return config.is_external(host) if host is not None else default
        return default

    def _binding_side(self, bindings: list[Any], default: bool) -> bool:
        for binding in bindings:
            flow = getattr(binding, "flow", None)
            if flow is not None:
                return self.config.is_external(flow.remote_host)
            try:
                from sipedge.message import parse_uri

                host = _ip(_host_of(parse_uri(binding.contact)))
            except MessageParseError:
                host = None
            return self.config.is_external(host) if host is not None else default
        return default

    def _lookup_failed(self, failure: Any, default: bool) -> bool:
        self._log.failure("Location lookup for the media side failed", failure)
        return default

    # -- responses ------------------------------------------------------------

    def process_response(self, context: RequestContext | None, response: Response) -> Any:
        if not self.config.anchor:
            return response
        out = self._anchor_response(context, response)
        if self.config.sdes_over_plain:
            return out
        if isinstance(out, Deferred):
            return out.addCallback(lambda r: self._keys_upstream(context, r))
        return self._keys_upstream(context, out)

    def _anchor_response(
        self, context: RequestContext | None, response: Response
    ) -> Response | Deferred[Response]:
        try:
            call_id, from_tag, to_tag, cseq, method = _ids(response)
        except MessageParseError:
            return response
        call = self._find(call_id, from_tag, to_tag)
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
        if pending is not None and (pending.cseq, pending.method) != (cseq, method):
            pending = None
        body = _sdp_body(response)
        if body is None:
            if not foreign and pending is not None and status >= 200:
                if pending.answered and not pending.answer_in_request:
                    # The answer came in a 18x: the one of this dialog.
                    return self._early_answer_confirmed(call, pending, dialog, response)
                elif pending.answered:
                    self._promote(call)  # the answer came in a PRACK
                elif not pending.answer_in_request or pending.key is None:
                    # A 2xx without the answer (or the offer) it owed: that
                    # exchange failed; the call goes on as it was.
                    self._log.warn(
                        "The {status} of {call_id} carries no SDP where it owed some",
                        status=status,
                        call_id=call.call_id,
                    )
                    self._drop_pending(call)
            return response
        if foreign:
            return self._hidden(call, requester, response, body)
        if pending is not None:
            if pending.answer_in_request:
                return self._response_offer(call, pending, response, body, requester)
            return self._response_answer(call, pending, response, body, requester, dialog)
        sent = call.sent.get((requester, body))
        if sent is not None:
            return response.with_body(sent)
        return self._hidden(call, requester, response, body)

    def _response_offer(
        self,
        call: _Call,
        pending: _Negotiation,
        response: Response,
        body: bytes,
        requester: str,
    ) -> Response | Deferred[Response]:
        """The offer in the 18x/2xx of an INVITE that had none."""
        final = response.status >= 200
        if pending.offer_in == body and pending.offer_out is not None:
            if final and pending.answered:
                self._promote(call)
            return response.with_body(pending.offer_out)
        try:
            sdp = parse_sdp(body)
        except MessageParseError:
            return self._hidden(call, requester, response, body)
        if pending.key is not None:
            if pending.answered:
                return self._hidden(call, requester, response, body)  # a second offer: not allowed
            # another fork's offer, or a changed one: the last one wins
            self._release(pending.key)
            pending.key = None
        responder = _other(requester)
        offerer, answerer = call.parties[responder], call.parties[requester]
        policy = self.config.policy(offerer.external, answerer.external, offers_srtp(sdp))
        key = call.next_key()
        self._sessions[key] = call
        pending.key = key
        pending.offerer = responder
        d = self._ask(self.relay.allocate, key, sdp, policy)
        d.addCallbacks(
            self._allocated_in_response,
            self._allocation_in_response_failed,
            callbackArgs=(call, pending, response, sdp, body, requester),
            errbackArgs=(call, pending, response, body, requester, key),
        )
        return _at_once(d)

    def _allocated_in_response(
        self,
        allocation: RelayAllocation,
        call: _Call,
        pending: _Negotiation,
        response: Response,
        sdp: SessionDescription,
        body: bytes,
        requester: str,
    ) -> Response:
        if call.pending is not pending or pending.key != allocation.session_key:
            # The exchange (or the call) ended meanwhile.
            self._release(allocation.session_key)
            return self._hidden(call, requester, response, body)
        pending.allocation = allocation
        out = self._send(call, requester, rewrite(sdp, allocation, "b"), body)
        pending.offer_in, pending.offer_out = body, out
        return response.with_body(out)

    def _allocation_in_response_failed(
        self,
        failure: Failure,
        call: _Call,
        pending: _Negotiation,
        response: Response,
        body: bytes,
        requester: str,
        key: str,
    ) -> Response:
        self._sessions.pop(key, None)
        if pending.key == key:
            pending.key = pending.offerer = None
        error = _relay_error(failure)
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
        if response.status >= 200 and call.pending is pending:
            call.pending = None
        return self._hidden(call, requester, response, body)

    def _response_answer(
        self,
        call: _Call,
        pending: _Negotiation,
        response: Response,
        body: bytes,
        requester: str,
        dialog: str | None = None,
    ) -> Response | Deferred[Response]:
        """The answer in the 18x/2xx of a request that made an offer."""
        assert pending.key is not None
        try:
            sdp = parse_sdp(body)
        except MessageParseError as e:
            self._answer_in_response_failed(Failure(e), call, pending, response, body, requester)
            return self._hidden(call, requester, response, body)
        d = self._ask(self.relay.update, pending.key, sdp)
        d.addCallbacks(
            self._answered_in_response,
            self._answer_in_response_failed,
            callbackArgs=(call, pending, response, sdp, body, requester, dialog),
            errbackArgs=(call, pending, response, body, requester),
        )
        return _at_once(d)

    def _answered_in_response(
        self,
        allocation: RelayAllocation,
        call: _Call,
        pending: _Negotiation,
        response: Response,
        sdp: SessionDescription,
        body: bytes,
        requester: str,
        dialog: str | None,
    ) -> Response:
        if call.pending is not pending:
            # The exchange (or the call) ended meanwhile: no media.
            return self._hidden(call, requester, response, body)
        final = response.status >= 200
        pending.allocation = allocation
        pending.answered = True
        pending.answered_by = dialog
        if not final and dialog is not None and len(pending.early) < _CACHE_SIZE:
            pending.early[dialog] = body
        out = self._send(call, requester, rewrite(sdp, allocation, "a"), body)
        if final:
            self._promote(call)
        return response.with_body(out)

    def _early_answer_confirmed(
        self, call: _Call, pending: _Negotiation, dialog: str | None, response: Response
    ) -> Response | Deferred[Response]:
        """
        A 2xx without SDP confirms an early dialog whose answer came in a
        18x: if another fork's answer came after it, that dialog's answer
        goes back to the relay; a dialog that never answered has no media.
        """
        if pending.answered_by is None or dialog is None or pending.answered_by == dialog:
            self._promote(call)
            return response
        assert pending.key is not None
        early = pending.early.get(dialog)
        if early is None:
            d: Deferred[RelayAllocation] = fail(MediaError(f"dialog {dialog} sent no answer"))
        else:
            try:
                sdp = parse_sdp(early)
            except MessageParseError as e:
                d = fail(e)
            else:
                d = self._ask(self.relay.update, pending.key, sdp)
        d.addCallbacks(
            self._early_answer_restored,
            self._early_answer_failed,
            callbackArgs=(call, pending, dialog, response),
            errbackArgs=(call, pending, response),
        )
        return _at_once(d)

    def _early_answer_restored(
        self,
        allocation: RelayAllocation,
        call: _Call,
        pending: _Negotiation,
        dialog: str,
        response: Response,
    ) -> Response:
        if call.pending is pending:
            pending.allocation = allocation
            pending.answered_by = dialog
            self._promote(call)
        return response

    def _early_answer_failed(
        self, failure: Failure, call: _Call, pending: _Negotiation, response: Response
    ) -> Response:
        error = failure.value
        if isinstance(error, (MessageParseError, MediaError)):
            self._log.warn(
                "The 2xx of {call_id} confirms a dialog without a usable answer: {error}",
                call_id=call.call_id,
                error=getattr(error, "reason", None) or str(error),
            )
        else:
            self._answer_refused(failure, f"the {response.status} of {call.call_id}")
        if call.pending is pending:
            self._drop_pending(call)
        return response

    def _answer_in_response_failed(
        self,
        failure: Failure,
        call: _Call,
        pending: _Negotiation,
        response: Response,
        body: bytes,
        requester: str,
    ) -> Response:
        error = failure.value
        if isinstance(error, MessageParseError):
            self._log.warn(
                "Media answer in the {status} of {call_id} refused: {error}",
                status=response.status,
                call_id=call.call_id,
                error=error.reason,
            )
        else:
            self._answer_refused(failure, f"the {response.status} of {call.call_id}")
        if response.status >= 200 and call.pending is pending:
            self._drop_pending(call)
        return self._hidden(call, requester, response, body)

    def _hidden(self, call: _Call, receiver: str, response: Response, body: bytes) -> Response:
        """
        A response whose SDP we cannot anchor: a provisional one loses its
        body; a final one keeps it with every stream rejected.
        """
        if response.status < 200:
            return _without_body(response)
        try:
            sdp = parse_sdp(body)
        except MessageParseError:
            return _without_body(response)
        return response.with_body(self._stamp(call, receiver, reject(sdp)))

    def _failed(self, call: _Call, cseq: int, method: str, status: int) -> None:
        """A final failure: the end of the call, or of an exchange."""
        if method == "INVITE" and (
            (call.invite_cseq == cseq and call.callee_tag is None) or status == 481
        ):
            self._end(call, f"INVITE answered {status}")
            return
        pending = call.pending
        if pending is not None and (pending.cseq, pending.method) == (cseq, method):
            self._drop_pending(call)

    # -- IProxyObserver ---------------------------------------------------------

    def request_decided(self, context: RequestContext, result: Any) -> None:
        """
        A later stage answered (or dropped) a request whose offer we
        allocated, or an initial INVITE we started to follow: release.
        """
        if not isinstance(result, (Respond, Drop)):
            return
        note = context.annotations.get(self.name)
        if not isinstance(note, _Note):
            return
        call = note.call
        if call.pending is note.negotiation:
            self._drop_pending(call)
        if note.new_call and self._calls.get(call.key) is call and call.current is None:
            self._end(call, "answered before forwarding")

    # -- sessions -------------------------------------------------------------

    def _stamp(self, call: _Call, receiver: str, sdp: SessionDescription) -> bytes:
        """C{sdp} with the o= version C{receiver} must get next."""
        return call.parties[receiver].versions.stamp(sdp).to_bytes()

    def _send(self, call: _Call, receiver: str, sdp: SessionDescription, received: bytes) -> bytes:
        """L{_stamp}, remembered for retransmissions."""
        out = self._stamp(call, receiver, sdp)
        call.remember(receiver, received, out)
        return out

    def _promote(self, call: _Call) -> None:
        """The pending exchange is complete: its session carries the media."""
        pending, call.pending = call.pending, None
        if pending is None or pending.key is None:
            return
        old, call.current = call.current, pending
        if old is not None and old.key is not None and old.key != pending.key:
            self._release(old.key)

    def _drop_pending(self, call: _Call) -> None:
        pending, call.pending = call.pending, None
        if pending is not None and pending.key is not None:
            self._release(pending.key)

    @staticmethod
    def _ask(
        operation: Callable[[str, Any], Deferred[RelayAllocation]],
        key: str,
        sdp: SessionDescription,
        policy: Any = None,
    ) -> Deferred[RelayAllocation]:
        """C{relay.allocate} or C{relay.update} with the streams of C{sdp}."""
        try:
            offer = offer_of(sdp, policy)
        except MediaError:
            return fail()
        return operation(key, offer)

    def _release(self, key: str) -> None:
        self._sessions.pop(key, None)
        d = self.relay.release(key)
        d.addErrback(self._release_failed, key)

    def _release_failed(self, failure: Failure, key: str) -> None:
        self._log.failure("The media relay failed to release {key}", failure, key=key)

    def _end(self, call: _Call, why: str) -> None:
        """Forget the call and release its sessions."""
        if self._calls.get(call.key) is call:
            del self._calls[call.key]
        for key in call.keys():
            self._release(key)
        call.pending = call.current = None
        self._log.debug("Call {call} no longer anchored: {why}", call=call.key, why=why)

    def _session_ended(self, end: SessionEnd) -> None:
        """The relay ended a session: by itself unless we released it."""
        if end.reason == "released":
            return
        call = self._sessions.pop(end.session_key, None)
        if call is None:
            return
        if call.pending is not None and call.pending.key == end.session_key:
            # An offer never answered: the call goes on (on its current
            # session, if any; SDP that comes later is rejected) until its
            # end, which forgets it.
            call.pending = None
            self._log.info(
                "Media offer of call {call} ended by the relay ({reason})",
                call=call.key,
                reason=end.reason,
            )
            return
        if call.current is None or call.current.key != end.session_key:
            return
        self._log.info(
            "Media of call {call} ended by the relay ({reason})",
            call=call.key,
            reason=end.reason,
        )
        self._end(call, end.reason)
        if self.on_media_ended is not None:
            try:
                self.on_media_ended(
                    MediaEnded(
                        call.call_id, call.caller_tag, call.callee_tag, end.reason, end.stats
                    )
                )
            except Exception:
                self._log.failure("on_media_ended failed for {call}", call=call.key)

    # -- SDES keys and the signalling they cross -------------------------------

    def process_branch(self, context: Any, request: Request, flow: Flow) -> Request | Respond:
        """
        L{IBranchStage}: SDES keys never leave over signalling that is not
        TLS (unless C{sdes_over_plain}). On such a flow:

         - a request whose SDP carries a=crypto (the relay's keys towards
           a terminate or rekey leg, the offerer's in passthrough) is
           refused with 488 (the core tries the next destination; the
           other forks go on; the INVITE's failure releases the session);
         - an INVITE without SDP is refused likewise when the callee's leg
           will be SRTP whatever it offers (C{rekey}; C{terminate} towards
           an external callee): the relay's keys would reach it in the
           ACK;
         - an ACK, which cannot be refused, that carries keys (the answer
           to an offer made in a 2xx) goes on with every stream rejected,
           and the call's media is released.
        """
        config = self.config
        if flow.secure or config.sdes_over_plain or not config.anchor:
            return request
        body = _sdp_body(request)
        if body is None:
            if request.method == "INVITE" and self._keys_in_ack(context):
                return self._plain_refusal(context, request, flow)
            return request
        if b"a=crypto" not in body:
            return request  # no parse for SDP without keys
        try:
            sdp = parse_sdp(body)
        except MessageParseError:
            # Keys, maybe, in SDP we cannot read: they do not go either.
            if request.method == "ACK":
                return _without_body(request)
            return self._plain_refusal(context, request, flow)
        if not _any_keys(sdp):
            return request
        if request.method == "ACK":
            return self._ack_without_keys(request, sdp, flow)
        return self._plain_refusal(context, request, flow)

    def _keys_in_ack(self, context: Any) -> bool:
        """
        Whether the INVITE without SDP of C{context} awaits an offer from
        a party whose leg will be SRTP whatever it offers.
        """
        note = context.annotations.get(self.name) if context is not None else None
        if not isinstance(note, _Note) or note.negotiation.offerer is not None:
            return False
        call = note.call
        try:
            requester = call.role_of(context.request.from_address.tag or "")
        except MessageParseError:
            return True
        offerer, answerer = call.parties[_other(requester)], call.parties[requester]
        mode, _ = self.config.leg_modes(offerer.external, answerer.external, False)
        return mode.srtp

    def _plain_refusal(self, context: Any, request: Request, flow: Flow) -> Respond:
        self._log.info(
            "Not sending SDES keys in {method} of {call_id} from {source} over {destination}: 488",
            method=request.method,
            call_id=request.headers.get("Call-ID"),
            source=str(context.flow) if context is not None else None,
            destination=str(flow),
            rule="sdes_over_plain",
        )
        return Respond(488, None, (_warning(399, _PLAIN_REFUSED),))

    def _ack_without_keys(self, request: Request, sdp: SessionDescription, flow: Flow) -> Request:
        """An ACK with keys on a plain flow: every stream rejected, the media released."""
        try:
            call_id, from_tag, to_tag, _, _ = _ids(request)
            call = self._find(call_id, from_tag, to_tag)
        except MessageParseError:
            call = None
        self._log.info(
            "Not sending SDES keys in ACK of {call_id} over {destination}: every stream rejected",
            call_id=request.headers.get("Call-ID"),
            destination=str(flow),
            rule="sdes_over_plain",
        )
        if call is not None:
            self._end(call, "SDES keys over plain signalling")
        return request.with_body(reject(sdp).to_bytes())

    def _keys_upstream(self, context: RequestContext | None, response: Response) -> Response:
        """
        A response relayed upstream goes back on its request's flow (a
        stray 2xx by its top Via): if that is not TLS, SDES keys in it (an
        offer in the 18x/2xx of an INVITE without SDP, in passthrough)
        do not go: a final response gets every stream rejected, a
        provisional one loses its SDP, and the exchange is dropped.
        """
        body = _sdp_body(response)
        if body is None:
            return response
        if context is not None:
            secure = context.flow.secure
        else:
            try:
                secure = response.top_via.transport.upper() in ("TLS", "WSS")
            except MessageParseError:
                secure = False
        if secure:
            return response
        try:
            sdp = parse_sdp(body)
        except MessageParseError:
            return response
        if not _any_keys(sdp):
            return response
        try:
            call_id, from_tag, to_tag, cseq, method = _ids(response)
        except MessageParseError:
            return _without_body(response)
        self._log.info(
            "Not sending SDES keys in the {status} of {call_id} over plain signalling: {outcome}",
            status=response.status,
            call_id=call_id,
            outcome="every stream rejected" if response.status >= 200 else "SDP removed",
            rule="sdes_over_plain",
        )
        call = self._find(call_id, from_tag, to_tag)
        pending = call.pending if call is not None else None
        if (
            call is not None
            and pending is not None
            and (pending.cseq, pending.method)
            == (
                cseq,
                method,
            )
        ):
            self._drop_pending(call)
        if response.status < 200:
            return _without_body(response)
        return response.with_body(reject(sdp).to_bytes())

    # -- refusals -------------------------------------------------------------

    def _check_transport(self, context: RequestContext) -> Respond | None:
        """488 if SDES keys would cross a signalling flow that is not TLS."""
        if self.config.sdes_over_plain or context.flow.secure:
            return None
        return self._refusal(
            399, "SDES keys (a=crypto) are only exchanged over TLS (sips)", context
        )

    def _refused(self, context: RequestContext, error: MediaError) -> Respond:
        status = error.status_hint
        self._log.info(
            "Media offer in {method} of {call_id} refused ({status}): {error}",
            method=context.request.method,
            call_id=context.request.headers.get("Call-ID"),
            status=status,
            error=str(error),
        )
        if status == 488:
            return Respond(488, None, (_warning(305, str(error)),))
        if status == 503:
            if isinstance(error, PortsExhausted):
                return Respond(503, "Media Ports Exhausted")
            # A remote relay that is not connected or did not answer.
            return Respond(503, "Media Relay Unavailable")
        return Respond(500)

    def _refusal(self, warning: int, text: str, context: RequestContext) -> Respond:
        """488 with a Warning of code C{warning}."""
        self._log.info(
            "Media offer in {method} of {call_id} refused (488): {text}",
            method=context.request.method,
            call_id=context.request.headers.get("Call-ID"),
            text=text,
        )
        return Respond(488, None, (_warning(warning, text),))
