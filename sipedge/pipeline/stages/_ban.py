# -*- test-case-name: sipedge.test.test_stage_security -*-
"""
The ban-check stage: drop, unanswered, a request from a banned source.

The transports drop a banned source's packets before parsing (the
admission hook); this stage catches what got past them: requests already
in flight when the ban was made, and deployments without the hook.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge import _debug
from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, StageResult

__all__ = ["BanCheckStage"]

_CONTINUE = Continue()
_DROP = Drop("banned source")


@implementer(IRequestStage)
class BanCheckStage:
    """
    @param security: the L{sipedge.security.Security} service.
    """

    name = "ban-check"

    def __init__(self, security: Any) -> None:
        self._security = security

    def process_request(self, context: RequestContext) -> StageResult:
        security = self._security
        source = context.flow.remote_host
        if not security.is_banned(source):
            return _CONTINUE
        security.stats["ban_check_dropped"] += 1
        # Debug: a banned flood that reaches the pipeline is many requests.
        if not _debug.enabled():
            return _DROP
        context.log.debug(
            "Dropping {method} from banned {source}",
            method=context.request.method,
            source=source,
            rule="ban",
        )
        return _DROP
