# -*- test-case-name: sipedge.test.test_stage_security -*-
"""
The scanner stage: drop, unanswered, a request whose User-Agent names a
known SIP scanner (friendly-scanner, sipvicious, sipcli, ...), and report a
C{scanner} offence, which by default bans the source at once.

No answer: a scanner learns from every answer (even a 403) that something
listens here.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, StageResult

__all__ = ["ScannerStage"]

_CONTINUE = Continue()
_DROP = Drop("scanner User-Agent")

#: The most of a User-Agent put in a log event or a ban's reason.
_SHOWN = 120


@implementer(IRequestStage)
class ScannerStage:
    """
    @param security: the L{sipedge.security.Security} service.
    @param matcher: a L{sipedge.security.UserAgentMatcher}; by default
        C{security.scanners} (from C{[security]}).
    """

    name = "scanner"

    def __init__(self, security: Any, matcher: Any = None) -> None:
        self._security = security
        self._matcher = matcher if matcher is not None else security.scanners

    def process_request(self, context: RequestContext) -> StageResult:
        user_agent = context.request.headers.get("User-Agent")
        if user_agent is None:
            return _CONTINUE
        matched = self._matcher.match(user_agent)
        if matched is None:
            return _CONTINUE
        security = self._security
        source = context.flow.remote_host
        security.stats["scanner_dropped"] += 1
        shown = user_agent[:_SHOWN]
        context.log.info(
            "Dropping {method} from scanner {source}: User-Agent {user_agent!r}",
            method=context.request.method,
            source=source,
            user_agent=shown,
            matched=matched,
            rule="scanner",
        )
        security.offence(source, "scanner", f"User-Agent {shown!r}")
        return _DROP
