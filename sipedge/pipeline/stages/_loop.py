# -*- test-case-name: sipedge.test.test_stages -*-
"""
The loop-detect stage (RFC 3261 16.3 item 4): a request that carries one of
our Vias whose branch we would compute again for it now has been here
before unchanged: a loop, answered with 482. A changed Request-URI is a
spiral and goes on.
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.message import branch_digest, digest_of_branch
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Respond, StageResult

__all__ = ["LoopDetectStage"]

_CONTINUE = Continue()


@implementer(IRequestStage)
class LoopDetectStage:
    name = "loop-detect"

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        digest = None
        local = context.services.local
        for via in request.vias:
            ours = digest_of_branch(via.branch)
            if ours is None or not local.is_local_host(via.host, via.port):
                continue
            if digest is None:
                digest = branch_digest(context.original)
            if ours == digest:
                return Respond(482)
        return _CONTINUE
