# -*- test-case-name: sipedge.test.test_stages -*-
"""
The location stage: a request for a user of one of our domains goes to the
contacts registered for that AOR (RFC 3261 16.5), over the connection or
NAT binding each registered from where that is needed; an AOR with no
binding gets 404 (480 would leak which users exist), unless its bindings
were dropped because their flow died (L{sipedge.store.LostBindings}): 480
then, until they would have expired.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Forward, Respond, StageResult, Target
from sipedge.store import aor_of, binding_flow

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
        aor, now = aor_of(uri), services.clock.seconds()
        d = services.location.lookup(aor, now)
        return d.addCallback(self._targets, services.lost, aor, now)

    def _targets(self, bindings: list[Any], lost: Any, aor: str, now: float) -> StageResult:
        if not bindings:
            return Respond(480 if lost is not None and lost.is_lost(aor, now) else 404)
        return Forward(tuple(_target(b) for b in bindings))


def _target(binding: Any) -> Target:
    flow, failed = binding_flow(binding)
    return Target(binding.contact, flow, binding.q, tuple(binding.path), flow_failed=failed)
