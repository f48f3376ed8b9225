# -*- test-case-name: sipedge.test.test_stages -*-
"""
The static-route stage: configured routes send requests for a domain, or
for numbers with a prefix, to a fixed next hop (a PBX, a carrier trunk).
The next hop goes on top as a Route; the Request-URI is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.message import SipURI
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Forward, StageResult, Target

__all__ = ["StaticRouteStage"]

_CONTINUE = Continue()


@implementer(IRequestStage)
class StaticRouteStage:
    """
    @param routes: the config's C{[[routes]]} (L{sipedge.config.Route}:
        C{matches(host, user)} and C{next_hop}), tried in order.
    """

    name = "static-route"

    def __init__(self, routes: Sequence[Any]) -> None:
        self._routes = tuple(routes)

    def process_request(self, context: RequestContext) -> StageResult:
        if not self._routes:
            return _CONTINUE
        request = context.request
        if request.routes or "flow" in context.annotations:
            # a Route to follow, or a phone behind NAT in a dialog
            return _CONTINUE
        uri = request.request_uri
        host = str(getattr(uri, "host", ""))
        user = getattr(uri, "user", None) or getattr(uri, "number", None)
        for route in self._routes:
            if route.matches(host, user):
                uri = route.next_hop
                if isinstance(uri, SipURI) and not uri.lr:
                    # A next hop is a loose route: without lr the request
                    # would be strict-routed (RFC 3261 16.6 item 6) and
                    # lose its Request-URI.
                    uri = uri.with_param("lr")
                next_hop = str(uri)
                if not next_hop.startswith("<"):
                    next_hop = f"<{next_hop}>"
                return Forward((Target(request.uri, route=(next_hop,)),))
        return _CONTINUE
