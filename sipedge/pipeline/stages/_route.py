# -*- test-case-name: sipedge.test.test_stages -*-
"""
The route stage (RFC 3261 16.4): strict-route fix-up and removal of the
Route values that point at us.

If the Request-URI is one of our Record-Route values, the previous hop is a
strict router: the real Request-URI is the last Route value. Each Route
value on top that points at us is removed (two when we record-routed on two
interfaces). When the removed value carries our valid signature for this
Call-ID, the request belongs to a dialog set up through us:
C{annotations["route"] = "dialog"}.
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.message import Request
from sipedge.message._lex import split_comma_list
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._results import Continue, StageResult

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
        if local.is_local_uri(request.request_uri) and request.routes:
            # RFC 3261 16.4: the previous hop was a strict router.
            if signer is not None and signer.verify(request.request_uri, call_id):
                context.annotations["route"] = "dialog"
            last = request.routes[-1]
            request = _without_last_route(request).with_uri(last.uri)
        while request.routes and local.is_local_uri(request.routes[0].uri):
            uri = request.routes[0].uri
            if signer is not None and signer.verify(uri, call_id):
                context.annotations["route"] = "dialog"
            request = request.with_headers(request.headers.first_removed("Route"))
        context.request = request
        return _CONTINUE
