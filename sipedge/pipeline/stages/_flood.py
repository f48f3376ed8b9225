# -*- test-case-name: sipedge.test.test_stage_security -*-
"""
The flood stage: token-bucket rate limits per source address and method
class (INVITE, REGISTER, the rest), with three budgets: trusted networks
(enough for a trunk), sources a user has authenticated from, and the rest.

A request over budget is dropped without an answer (answering a flood
amplifies it, and a spoofed source would receive the answers) and, at most
once per C{flood_offence_interval} for each bucket, counted as a C{flood}
offence; enough offences ban the source.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge import _debug
from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, StageResult
from sipedge.security import Verdict, method_class

__all__ = ["FloodStage"]

_CONTINUE = Continue()
_ADMIT = Verdict.ADMIT
_REPORT = Verdict.OVER_REPORT


@implementer(IRequestStage)
class FloodStage:
    """
    @param security: the L{sipedge.security.Security} service.
    @param limiter: a L{sipedge.security.RateLimiter}; by default
        C{security.limiter} (from C{[security]}).
    """

    name = "flood"

    def __init__(self, security: Any, limiter: Any = None) -> None:
        self._security = security
        self._limiter = limiter if limiter is not None else security.limiter
        self._drops = {
            (tier, klass): Drop(f"flood: over the {tier} {klass} budget")
            for tier in self._limiter.budgets
            for klass in ("invite", "register", "other")
        }

    @property
    def limiter(self) -> Any:
        return self._limiter

    def process_request(self, context: RequestContext) -> StageResult:
        security = self._security
        source = context.flow.remote_host
        now = security.clock.seconds()
        tier = security.tier_of(source, now)
        method = context.request.method
        klass = method_class(method)
        verdict = self._limiter.take(source, klass, tier, now)
        if verdict is _ADMIT:
            return _CONTINUE
        security.stats["flood_dropped"] += 1
        budget = self._limiter.budgets[tier]
        # Every drop is logged, but at info level only once per interval:
        # the log must not become the flood's amplifier.
        if verdict is not _REPORT and not _debug.enabled():
            return self._drops[(tier, klass)]  # the burst was reported: no line per packet
        log = context.log.info if verdict is _REPORT else context.log.debug
        log(
            "Dropping {method} from {source}: over the {tier} budget for {method_class}"
            " ({rate}/s, burst {burst})",
            method=method,
            source=source,
            tier=tier,
            method_class=klass,
            rate=budget.rate,
            burst=budget.burst,
            rule="flood",
        )
        if verdict is _REPORT:
            security.offence(source, "flood", f"{klass} over the {tier} budget")
        return self._drops[(tier, klass)]
