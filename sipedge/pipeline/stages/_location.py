# -*- test-case-name: sipedge.test.test_stages -*-
"""
The location stage: a request for a user of one of our domains goes to the
contacts registered for that AOR (RFC 3261 16.5), over the connection or
NAT binding each registered from where that is needed; an AOR with no
binding gets 404 (480 would leak which users exist).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IRequestStage
from sipedge.message._uri import parse_uri
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._results import Continue, Forward, Respond, StageResult, Target
from sipedge.store import aor_of
from sipedge.transport._flow import Flow

__all__ = ["LocationStage"]

_CONTINUE = Continue()


@implementer(IRequestStage)
class LocationStage:
    name = "location"

    def process_request(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        request = context.request
        if context.annotations.get("responsibility") != "local" or request.method == "REGISTER":
            return _CONTINUE
        uri = request.request_uri
        if not getattr(uri, "user", None):
            return _CONTINUE
        services = context.services
        d = services.location.lookup(aor_of(uri), services.clock.seconds())
        return d.addCallback(self._targets)

    def _targets(self, bindings: list[Any]) -> StageResult:
        if not bindings:
            return Respond(404)
        return Forward(tuple(Target(b.contact, _flow_for(b), b.q, tuple(b.path)) for b in bindings))


def _flow_for(binding: Any) -> Flow | None:
    """
    The flow to reach a binding over: the connection it registered on (TCP,
    TLS), or its source address when its Contact names another host (a
    phone behind NAT, cf. Kamailio's nat_uac_test); else C{None}: send to
    the Contact as DNS resolves it.
    """
    flow = binding.flow
    if flow is None or binding.path:
        return None
    if flow.reliable:
        return flow
    try:
        host = parse_uri(binding.contact).bare_host  # type: ignore[union-attr]
    except (MessageParseError, AttributeError):
        return flow
    return None if host == flow.remote_host else flow
