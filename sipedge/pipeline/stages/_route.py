# -*- test-case-name: sipedge.test.test_stages -*-
"""
The route stage (RFC 3261 16.4): strict-route fix-up and removal of the
Route values that point at us.

If the Request-URI is one of our Record-Route values, the previous hop is a
strict router: the real Request-URI is the last Route value. Each Route
value on top that points at us is removed (two when we record-routed on two
interfaces). When the removed value carries our valid signature for this
Call-ID, not expired (L{sipedge.proxy.RecordRouteSigner}), the request
belongs to a dialog set up through us: C{annotations["route"] =
"dialog"}. If that value (expired or not) also carries a flow token
(C{ft}, L{sipedge.proxy.FlowTokens}) naming the flow of the party the
request is addressed to (a phone behind NAT), C{annotations["flow"]} is
that L{sipedge.proxy.PartyFlow}: the forward stage sends over it.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge.error import MessageParseError, TokenError
from sipedge.interfaces import IRequestStage
from sipedge.message import Request, split_comma_list
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, StageResult

__all__ = ["RouteStage"]

_CONTINUE = Continue()


def _without_last_route(request: Request) -> Request:
    """A copy with the last Route value removed."""
    fields = list(request.headers.fields)
    for i in range(len(fields) - 1, -1, -1):
        key, name, value = fields[i]
        if key == "route":
            values = split_comma_list(value)[:-1]
            if values:
                fields[i] = (key, name, ", ".join(values))
            else:
                del fields[i]
            break
    return request.with_headers(type(request.headers)(tuple(fields)))


@implementer(IRequestStage)
class RouteStage:
    name = "route"

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        local = context.services.local
        signer = context.services.signer
        call_id = request.call_id
        if request.routes and local.is_local_uri(request.request_uri):
            # RFC 3261 16.4: the previous hop was a strict router.
            if signer is not None:
                _signed(context, signer, request.request_uri, call_id)
            last = request.routes[-1]
            request = _without_last_route(request).with_uri(last.uri)
        while request.routes and local.is_local_uri(request.routes[0].uri):
            if signer is not None:
                _signed(context, signer, request.routes[0].uri, call_id)
            request = request.with_route_popped()
        context.request = request
        return _CONTINUE


def _signed(context: RequestContext, signer: Any, uri: Any, call_id: str) -> None:
    """
    Our Record-Route value C{uri} came back: if we signed it for this
    call, the request is in a dialog through us while the signature is
    fresh; fresh or stale, the flow token in it still says where the
    party it is addressed to is (a stale Route only means the request
    goes the whole chain).
    """
    checked = signer.check(uri, call_id)
    if checked is None:
        return
    if checked == "fresh":
        context.annotations["route"] = "dialog"
    _note_flow(context, uri, call_id)


def _note_flow(context: RequestContext, uri: Any, call_id: str) -> None:
    """
    If C{uri} (our signed Record-Route value) carries a flow token, note
    the flow of the party the request is addressed to.
    """
    tokens = context.services.flow_tokens
    if tokens is None or "flow" in context.annotations:
        return
    token = tokens.token_in(uri)
    if not token:
        return
    request = context.request
    try:
        flows = tokens.open(token, call_id)
        party = flows.toward(request.from_address.tag, request.to_address.tag)
    except (TokenError, MessageParseError) as e:
        context.log.info(
            "Ignoring the flow token of {method} from {source}: {error}",
            method=request.method,
            source=str(context.flow),
            error=str(e),
        )
        return
    if party is not None:
        context.annotations["flow"] = party
