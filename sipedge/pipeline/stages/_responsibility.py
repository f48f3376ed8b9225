# -*- test-case-name: sipedge.test.test_stages -*-
"""
The responsibility stage: which requests we may forward at all, so that the
proxy is never an open relay.

- A request with Route values left after the route stage, or for a domain
  that is not ours, is relayed only if it belongs to a dialog set up through
  us (our signed Record-Route), comes from a user who authenticated
  (C{context.identity}, set by digest-auth, which runs before this stage),
  or comes from a trusted network. Everything else gets 403.
- A request for one of our domains goes on to the registrar and location
  stages.

C{annotations["responsibility"]} is C{"local"} or C{"relay"}.
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Respond, StageResult

__all__ = ["ResponsibilityStage"]

_CONTINUE = Continue()


@implementer(IRequestStage)
class ResponsibilityStage:
    name = "responsibility"

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        services = context.services
        if not request.routes and services.local.is_our_domain(request.request_uri):
            context.annotations["responsibility"] = "local"
            return _CONTINUE
        if (
            context.annotations.get("route") == "dialog"
            or context.identity is not None
            or services.is_trusted(context.flow.remote_host)
        ):
            context.annotations["responsibility"] = "relay"
            return _CONTINUE
        context.log.info(
            "Refusing to relay {method} to {uri} for untrusted {source}",
            method=request.method,
            uri=request.uri,
            source=context.flow.remote_host,
            rule="relay",
        )
        return Respond(403, "Relaying Denied")
