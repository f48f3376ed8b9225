# -*- test-case-name: sipedge.test.test_stages -*-
"""
The forward stage, last in the chain: forward the request to its
Request-URI (the next hop being its top Route, if any), over the flow of
a party behind NAT when the route stage found one in our Record-Route.
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Forward, Respond, StageResult, Target

__all__ = ["ForwardStage"]


@implementer(IRequestStage)
class ForwardStage:
    name = "forward"

    def process_request(self, context: RequestContext) -> StageResult:
        if context.annotations.get("responsibility") == "local" and not context.request.routes:
            # Ours, but no stage found where it goes.
            return Respond(404)
        party = context.annotations.get("flow")
        if party is not None and not context.request.routes:
            return Forward(
                (Target(context.request.uri, party.flow, flow_failed=party.failed_status),)
            )
        return Forward((Target(context.request.uri),))
