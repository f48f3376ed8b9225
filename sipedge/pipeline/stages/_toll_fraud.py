# -*- test-case-name: sipedge.test.test_toll_fraud -*-
"""
The toll-fraud stage: limits on the calls our users place outside our
domains (see L{sipedge.security.TollFraudGuard}): dialled-prefix deny and
allow lists, concurrent calls and calls per minute per user. A refused
call gets 403 "Call Not Allowed".

It needs C{annotations["responsibility"]}, so it goes after the
C{responsibility} stage (and so after C{digest-auth}, which sets the
identity), before C{location} and C{forward}. It watches every ACK, BYE and
CANCEL that reaches it to confirm and end calls, so nothing that answers
those must come before it.

It is a response stage too: when the final response relayed upstream for
an INVITE whose call it counted is a failure (3xx-6xx: busy, declined, a
487 after a CANCEL, a 408 when nobody answered), the call's slot is given
back at once (L{TollFraudGuard.response_relayed}). The response goes on
unchanged.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge.interfaces import IRequestStage, IResponseStage
from sipedge.message import Response
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Respond, StageResult

__all__ = ["REFUSAL", "TollFraudStage"]

_CONTINUE = Continue()

#: The answer to a refused call.
REFUSAL = Respond(403, "Call Not Allowed")


@implementer(IRequestStage, IResponseStage)
class TollFraudStage:
    """
    @param guard: the L{sipedge.security.TollFraudGuard} (give the same one
        to the proxy core as an observer).
    """

    name = "toll-fraud"

    def __init__(self, guard: Any) -> None:
        self.guard = guard

    def process_request(self, context: RequestContext) -> StageResult:
        if self.guard.check(context) is None:
            return _CONTINUE
        return REFUSAL

    def process_response(self, context: RequestContext | None, response: Response) -> Response:
        if response.status >= 300:
            self.guard.response_relayed(context, response)
        return response
