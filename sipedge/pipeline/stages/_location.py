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

import ipaddress
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.interfaces import IRequestStage
from sipedge.message import parse_uri
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Forward, Respond, StageResult, Target
from sipedge.store import aor_of

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
    flow, failed = _flow_for(binding)
    return Target(binding.contact, flow, binding.q, tuple(binding.path), flow_failed=failed)


def _flow_for(binding: Any) -> tuple[Flow | None, int | None]:
    """
    The flow to reach a binding over, and the status to answer if that is
    gone (C{None}: send to the Contact then).

    A binding registered through another proxy (Path) is reached through
    it. One that asked for RFC 5626 outbound (reg-id) only over its flow,
    else 430. One whose Contact names another host than where it
    registered from (a phone behind NAT, cf. Kamailio's nat_uac_test) over
    its flow; over TCP or TLS only over it (else 480) when the Contact is
    an IP address. A TCP or TLS phone at its own address, or at a host
    name, over the connection it registered on while that lasts, then at
    its Contact; a UDP one at its own address at its Contact (which may be
    another socket than the one it registered from).
    """
    flow = binding.flow
    if flow is None or binding.path:
        return None, None
    if binding.reg_id is not None:
        return flow, 430
    try:
        host = parse_uri(binding.contact).bare_host  # type: ignore[union-attr]
    except (MessageParseError, AttributeError):
        return flow, 480
    if flow.reliable:
        # a host name may be reachable; an address that is not the source
        # (a private one) is not
        return flow, (480 if _is_ip(host) and host != flow.remote_host else None)
    if host != flow.remote_host:
        return flow, 480
    return None, None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
