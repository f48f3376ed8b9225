# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
What the C{media-anchor} stage remembers of a call: its parties, its
offer/answer exchanges (each an L{sipedge.media.Exchange}, the table-driven
machine), the relay sessions they hold, and the SDP it sent last; with the
small message helpers the stage's modules share.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sipedge.error import MessageParseError
from sipedge.interfaces import CALLEE, CALLER
from sipedge.media import (
    Exchange,
    MediaError,
    OfferAnswerState,
    OriginVersions,
    RelayAllocation,
    SessionStats,
)
from sipedge.message import Request, Response, SessionDescription, quote_text

__all__ = ["CALLEE", "CALLER", "MediaEnded"]


_SDP = "application/sdp"
CACHE_SIZE = 8


def other(role: str) -> str:
    """The role of the other party."""
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
class Party:
    """
    One party of a call: its side of the edge, whether its signalling may
    carry SDES keys (TLS), the o= it received, and the IP family (4, 6)
    of its media: its signalling's until its SDP tells (C{None}: unknown,
    the relay's primary interface).
    """

    external: bool
    versions: OriginVersions = attrs.Factory(OriginVersions)
    secure: bool = False
    family: int | None = None


@attrs.define(eq=False)
class Negotiation:
    """
    One offer/answer exchange and its relay session: the machine
    (L{exchange}) says where it is; this holds what the stage needs to
    carry out its actions.

    @ivar cseq: the CSeq number of the transaction that carries it.
    @ivar method: that transaction's method.
    @ivar offerer: the role of the party that made the offer (relay side
        A); C{None} while a late offer is awaited.
    @ivar key: the relay session, once the offer is given to the relay.
    @ivar late: the offer comes in a response (to an INVITE without SDP),
        so the answer comes in a request (the PRACK or ACK).
    @ivar offer_in: an offer made in a response, as received...
    @ivar offer_out: ...and as sent on (a 2xx may repeat a 18x's offer).
    @ivar answered_by: the dialog (the answerer's tag) whose answer the
        relay has now; forked early dialogs answer one after another.
    @ivar early: each early dialog's 18x with its answer, as received (with
        the flow it came on), so that a 2xx without SDP (RFC 3262: the
        answer came in a reliable 18x) puts back the answer of the dialog
        it confirms.
    @ivar waiting: while the relay takes an answer carried by a request
        (an ACK), the retransmissions of that request wait for it here.
    @ivar a_role: the role of the party on side A of its relay session
        (who made the session's first offer).
    @ivar in_place: the exchange re-offers the call's current session
        (L{IMediaRelay.reoffer}) and has not replaced it yet: refused, it
        is withdrawn, not released.
    @ivar policy: the session's policy, as the relay was given it.
    """

    cseq: int
    method: str
    offerer: str | None
    key: str | None = None
    a_role: str | None = None
    in_place: bool = False
    policy: Any = None
    late: bool = False
    exchange: Exchange = attrs.Factory(Exchange)
    allocation: RelayAllocation | None = None
    offer_in: bytes | None = None
    offer_out: bytes | None = None
    answered_by: str | None = None
    early: dict[str, Response] = attrs.Factory(dict)
    waiting: list[Deferred[None]] = attrs.Factory(list)

    @property
    def state(self) -> OfferAnswerState:
        return self.exchange.state

    @property
    def answered(self) -> bool:
        """Whether an answer was applied (early or final)."""
        return self.exchange.state in (OfferAnswerState.EARLY, OfferAnswerState.ACTIVE)

    def side(self, role: str) -> str:
        """C{"a"} or C{"b"}: the relay endpoints facing the party C{role}."""
        return "a" if role == (self.a_role or self.offerer) else "b"

    def fits(self, role: str, policy: Any) -> bool:
        """
        Whether an offer from C{role} under C{policy} (its leg first) fits
        this exchange's session policy, so the session can be re-offered.
        """
        before = self.policy
        if before is None or policy is None:
            return False
        legs = policy.legs() if role == (self.a_role or self.offerer) else policy.legs()[::-1]
        return bool(legs == before.legs() and policy.limits == before.limits)

    def matches(self, cseq: int, method: str) -> bool:
        """Whether the transaction C{cseq}/C{method} carries this exchange."""
        return (self.cseq, self.method) == (cseq, method)


@attrs.define(eq=False)
class Call:
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
    parties: dict[str, Party]
    invite_cseq: int | None
    callee_tag: str | None = None
    current: Negotiation | None = None
    pending: Negotiation | None = None
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
        """The relay sessions the call holds (once each: a re-offer shares one)."""
        keys = [n.key for n in (self.pending, self.current) if n is not None and n.key is not None]
        return list(dict.fromkeys(keys))

    def remember(self, receiver: str, received: bytes, sent: bytes) -> None:
        self.sent.pop((receiver, received), None)
        self.sent[(receiver, received)] = sent
        while len(self.sent) > CACHE_SIZE:
            del self.sent[next(iter(self.sent))]


@attrs.frozen
class Note:
    """C{context.annotations["media-anchor"]}: what a request opened."""

    call: Call
    negotiation: Negotiation
    new_call: bool


@attrs.frozen
class NewCall:
    """
    C{context.annotations["media-anchor"]} while the chain decides where a
    request that starts a call goes: its offer (C{None} for an INVITE
    without SDP) waits for the chosen targets (L{IRoutedStage}), which
    tell the callee's side.
    """

    call_id: str
    from_tag: str
    to_tag: str | None
    cseq: int
    sdp: SessionDescription | None
    body: bytes | None


def ids(message: Request | Response) -> tuple[str, str, str | None, int, str]:
    """Call-ID, From tag (C{""} for none), To tag, CSeq number and method."""
    cseq = message.cseq
    return (
        message.call_id,
        message.from_address.tag or "",
        message.to_address.tag,
        cseq.number,
        cseq.method,
    )


def sdp_body(message: Request | Response) -> bytes | None:
    """The body if it is SDP (by Content-Type, or by its start without one)."""
    body = message.body
    if not body:
        return None
    content_type = message.content_type
    if content_type == _SDP or (content_type is None and body.lstrip().startswith(b"v=0")):
        return body
    return None


def multipart_sdp(message: Request | Response) -> bool:
    content_type = message.content_type or ""
    return content_type.startswith("multipart/") and _SDP.encode() in message.body.lower()


def any_keys(sdp: SessionDescription) -> bool:
    """True if any m= line, relayed or not, carries a=crypto (SDES keys)."""
    return any(m.has_attribute("crypto") for m in sdp.media)


def warning(code: int, text: str) -> tuple[str, str]:
    try:
        quoted = quote_text(text)
    except MessageParseError:
        quoted = '"media refused"'
    return ("Warning", f"{code} sipedge {quoted}")


def without_body(message: Any) -> Any:
    """C{message} without its body and Content-Type."""
    return message.with_headers(message.headers.removed("Content-Type")).with_body(b"")


def at_once(d: Deferred[Any]) -> Any:
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


def relay_error(failure: Failure) -> MediaError | None:
    """The relay's refusal, or C{None} for any other failure (a bug, a lost relay)."""
    error = failure.value
    return error if isinstance(error, MediaError) else None
