# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
Which side of the edge a new call's callee is on, for the C{media-anchor}
stage (the relay interface and SRTP mode of its leg).

The stage runs before the stages that route (C{location},
C{static-route}), so this still I{predicts} their decision; a hook after
the routing decision that hands the stage the chosen targets is to
replace it (issue 9).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.defer import Deferred

from sipedge.error import MessageParseError
from sipedge.media._config import MediaConfig
from sipedge.pipeline._context import RequestContext
from sipedge.store import aor_of

__all__ = ["callee_external"]


def _ip(host: str | None) -> str | None:
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _host_of(uri: Any) -> str | None:
    host = getattr(uri, "host", None)
    return host.strip("[]") if isinstance(host, str) else None


def callee_external(
    config: MediaConfig, context: RequestContext, log: Any
) -> bool | Deferred[bool]:
    """
    Whether the request's destination is external, as the chain after
    the stage will decide it: the next Route if there is one; the
    Request-URI's host if it is an address; for one of our users, where
    the first registered contact registered from (as C{location}); a
    matching C{[[routes]]} next hop (as C{static-route}); else
    C{media.default_side}.
    """
    default = config.default_side == "external"
    request = context.request
    try:
        routes = request.routes
        uri = request.request_uri
    except MessageParseError:
        return default
    if routes:
        host = _ip(_host_of(routes[0].uri))
        return config.is_external(host) if host is not None else default
    host = _ip(_host_of(uri))
    if host is not None:
        return config.is_external(host)
    services = context.services
    location = getattr(services, "location", None)
    if (
        context.annotations.get("responsibility") == "local"
        and location is not None
        and getattr(uri, "user", None)
    ):
        d = location.lookup(aor_of(uri), services.clock.seconds())
        d.addCallback(_binding_side, config, default)
        d.addErrback(_lookup_failed, log, default)
        return d
    user = getattr(uri, "user", None) or getattr(uri, "number", None)
    for route in getattr(getattr(services, "config", None), "routes", ()):
        if route.matches(_host_of(uri) or "", user):
            host = _ip(_host_of(route.next_hop))
            return config.is_external(host) if host is not None else default
    return default


def _binding_side(bindings: list[Any], config: MediaConfig, default: bool) -> bool:
    for binding in bindings:
        flow = getattr(binding, "flow", None)
        if flow is not None:
            return config.is_external(flow.remote_host)
        try:
            from sipedge.message import parse_uri

            host = _ip(_host_of(parse_uri(binding.contact)))
        except MessageParseError:
            host = None
        return config.is_external(host) if host is not None else default
    return default


def _lookup_failed(failure: Any, log: Any, default: bool) -> bool:
    log.failure("Location lookup for the media side failed", failure)
    return default
