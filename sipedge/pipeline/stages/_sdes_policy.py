# -*- test-case-name: sipedge.test.test_media_anchor_sdes -*-
"""
SDES keys never cross signalling that is not TLS (C{[media]
sdes_over_plain = false}, the default): RFC 4568 8.1, the keys are in
the SDP in clear, so signalling that anyone on the path can read gives
them away.

The C{media-anchor} stage asks L{SdesPolicy} at the three places keys can
leave: the flow a request came in on (L{SdesPolicy.check_transport}, in
the request chain), the flow the proxy core picks for each branch
(L{SdesPolicy.process_branch}, the stage's L{IBranchStage} side), and the
flow a response goes back on (L{SdesPolicy.keys_upstream}).
"""

from __future__ import annotations

from typing import Any, Protocol

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.media import MediaConfig, MediaMode, reject
from sipedge.message import Request, Response, SessionDescription, parse_sdp
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline.stages._anchor_calls import (
    Call,
    Note,
    any_keys,
    ids,
    sdp_body,
    warning,
    without_body,
)
from sipedge.results import Respond

__all__ = ["SdesPolicy"]

_PLAIN_REFUSED = "SDES keys over a non-TLS transport refused"


class _Owner(Protocol):
    """What the policy needs of the stage that holds the calls."""

    name: str
    config: MediaConfig

    def find_call(self, call_id: str, from_tag: str, to_tag: str | None) -> Call | None: ...

    def end(self, call: Call, why: str) -> None: ...

    def fail_pending(self, call: Call) -> None: ...

    def late_modes(self, call: Call, answerer: str) -> tuple[MediaMode, MediaMode] | None: ...


class SdesPolicy:
    """
    @param owner: the stage whose calls a refusal ends (and whose
        C{config}, the C{[media]} section, says what is allowed).
    @param log: the stage's logger (the events are the stage's).
    """

    def __init__(self, owner: _Owner, log: Any) -> None:
        self._owner = owner
        self._log = log

    @property
    def config(self) -> MediaConfig:
        return self._owner.config

    def check_transport(self, context: RequestContext) -> Respond | None:
        """488 if SDES keys would cross a signalling flow that is not TLS."""
        if self.config.sdes_over_plain or context.flow.secure:
            return None
        text = "SDES keys (a=crypto) are only exchanged over TLS (sips)"
        self._log.info(
            "Media offer in {method} of {call_id} refused (488): {text}",
            method=context.request.method,
            call_id=context.request.headers.get("Call-ID"),
            text=text,
        )
        return Respond(488, None, (warning(399, text),))

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
        body = sdp_body(request)
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
                return without_body(request)
            return self._plain_refusal(context, request, flow)
        if not any_keys(sdp):
            return request
        if request.method == "ACK":
            return self._ack_without_keys(request, sdp, flow)
        return self._plain_refusal(context, request, flow)

    def _keys_in_ack(self, context: Any) -> bool:
        """
        Whether the INVITE without SDP of C{context} awaits an offer from
        a party whose leg will be SRTP whatever it offers.
        """
        note = context.annotations.get(self._owner.name) if context is not None else None
        if not isinstance(note, Note) or note.negotiation.offerer is not None:
            return False
        call = note.call
        try:
            requester = call.role_of(context.request.from_address.tag or "")
        except MessageParseError:
            return True
        modes = self._owner.late_modes(call, requester)
        return modes is not None and modes[0].srtp

    def _plain_refusal(self, context: Any, request: Request, flow: Flow) -> Respond:
        self._log.info(
            "Not sending SDES keys in {method} of {call_id} from {source} over {destination}: 488",
            method=request.method,
            call_id=request.headers.get("Call-ID"),
            source=str(context.flow) if context is not None else None,
            destination=str(flow),
            rule="sdes_over_plain",
        )
        return Respond(488, None, (warning(399, _PLAIN_REFUSED),))

    def _ack_without_keys(self, request: Request, sdp: SessionDescription, flow: Flow) -> Request:
        """An ACK with keys on a plain flow: every stream rejected, the media released."""
        try:
            call_id, from_tag, to_tag, _, _ = ids(request)
            call = self._owner.find_call(call_id, from_tag, to_tag)
        except MessageParseError:
            call = None
        self._log.info(
            "Not sending SDES keys in ACK of {call_id} over {destination}: every stream rejected",
            call_id=request.headers.get("Call-ID"),
            destination=str(flow),
            rule="sdes_over_plain",
        )
        if call is not None:
            self._owner.end(call, "SDES keys over plain signalling")
        return request.with_body(reject(sdp).to_bytes())

    def keys_upstream(self, context: RequestContext | None, response: Response) -> Response:
        """
        A response relayed upstream goes back on its request's flow (a
        stray 2xx by its top Via): if that is not TLS, SDES keys in it (an
        offer in the 18x/2xx of an INVITE without SDP, in passthrough)
        do not go: a final response gets every stream rejected, a
        provisional one loses its SDP, and the exchange is dropped.
        """
        body = sdp_body(response)
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
        if not any_keys(sdp):
            return response
        try:
            call_id, from_tag, to_tag, cseq, method = ids(response)
        except MessageParseError:
            return without_body(response)
        self._log.info(
            "Not sending SDES keys in the {status} of {call_id} over plain signalling: {outcome}",
            status=response.status,
            call_id=call_id,
            outcome="every stream rejected" if response.status >= 200 else "SDP removed",
            rule="sdes_over_plain",
        )
        call = self._owner.find_call(call_id, from_tag, to_tag)
        pending = call.pending if call is not None else None
        if call is not None and pending is not None and pending.matches(cseq, method):
            self._owner.fail_pending(call)
        if response.status < 200:
            return without_body(response)
        return response.with_body(reject(sdp).to_bytes())
