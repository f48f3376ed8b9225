# -*- test-case-name: sipedge.test.test_stages -*-
"""
The max-forwards stage (RFC 3261 16.3 item 3): a request that may not be
forwarded further gets 483, except an OPTIONS addressed to us, which we
answer ourselves as RFC 3261 16.3 allows (11.2: with our capabilities).
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, Respond, StageResult

__all__ = ["ALLOW", "MaxForwardsStage"]

ALLOW = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE,"
    " INFO, UPDATE"
)
_CONTINUE = Continue()


@implementer(IRequestStage)
class MaxForwardsStage:
    name = "max-forwards"

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        if request.max_forwards != 0:
            return _CONTINUE
        if request.method == "ACK":
            return Drop("ACK with Max-Forwards 0")
        services = context.services
        uri = request.request_uri
        if (
            request.method == "OPTIONS"
            and services is not None
            and (
                services.local.is_local_uri(uri)
                or (services.local.is_our_domain(uri) and not getattr(uri, "user", None))
            )
        ):
            return Respond(200, None, (("Allow", ALLOW), ("Accept", "application/sdp")))
        return Respond(483)
