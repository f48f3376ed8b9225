# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
Which side of the edge a new call's callee is on, for the C{media-anchor}
stage (the relay interface and SRTP mode of its leg), read from the
routing decision the stage is handed after the chain (L{IRoutedStage}):
it never predicts what C{location} or C{static-route} will decide.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sipedge.error import MessageParseError
from sipedge.media import MediaConfig
from sipedge.message import parse_name_addr, parse_uri
from sipedge.pipeline._context import RequestContext
from sipedge.results import Forward

__all__ = ["callee_external", "callee_family", "callee_secure", "ip_family"]


def _ip(host: str | None) -> str | None:
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _host_of(uri: Any) -> str | None:
    if isinstance(uri, str):
        try:
            uri = parse_name_addr(uri).uri if "<" in uri else parse_uri(uri.strip())
        except MessageParseError:
            return None
    host = getattr(uri, "host", None)
    return host.strip("[]") if isinstance(host, str) else None


def _callee_host(context: RequestContext, forward: Forward) -> str | None:
    """
    The IP address the first target's request goes to next: its flow's
    remote address, else its next hop's host (the first Route the request
    will carry, else the target URI); C{None} for a host name.
    """
    target = forward.targets[0]
    if target.flow is not None:
        return _ip(target.flow.remote_host)
    hop: Any = target.route[0] if target.route else None
    if hop is None:
        try:
            routes = context.request.routes
        except MessageParseError:
            routes = ()
        hop = routes[0].uri if routes else target.uri
    return _ip(_host_of(hop))


def callee_external(config: MediaConfig, context: RequestContext, forward: Forward) -> bool:
    """
    Whether the first target the chain chose is external, by where the
    request will go next: the target's flow (a registered phone's
    connection or NAT binding); else its next hop, the first Route the
    request will carry (a static route's next hop, a binding's Path, a
    Route the request came with); else the target URI's host. A next hop
    named by a host name, not an address, is on C{media.default_side}.

    Where a request forks to several targets, the first one's side counts
    for the call (the relay session is allocated once, before forking).
    """
    target = forward.targets[0]
    if target.flow is not None:
        return config.is_external(target.flow.remote_host)
    host = _callee_host(context, forward)
    return config.is_external(host) if host is not None else config.default_side == "external"


def ip_family(host: str | None) -> int | None:
    """4 or 6 for an IP address (brackets allowed), else C{None}."""
    address = _ip(host)
    return None if address is None else ipaddress.ip_address(address).version


def callee_family(context: RequestContext, forward: Forward) -> int | None:
    """
    The IP family (4 or 6) of the first target's next hop, as
    L{callee_external} finds it: the family its leg of the relay faces
    before its SDP tells (dual stack). C{None} for a host name: the
    caller's family is taken then.
    """
    return ip_family(_callee_host(context, forward))


def callee_secure(context: RequestContext, forward: Forward) -> bool:
    """
    Whether the signalling towards the first target may carry SDES keys:
    its flow is TLS; else its next hop (or, with none, its URI) is a
    C{sips:} URI or names C{transport=tls}. A target whose transport DNS
    will choose counts as not secure (the proxy core refuses a branch
    that would carry keys over plain signalling anyway).
    """
    target = forward.targets[0]
    if target.flow is not None:
        return target.flow.secure
    hop: Any = target.route[0] if target.route else None
    if hop is None:
        try:
            routes = context.request.routes
        except MessageParseError:
            routes = ()
        hop = routes[0].uri if routes else target.uri
    if isinstance(hop, str):
        try:
            hop = parse_name_addr(hop).uri if "<" in hop else parse_uri(hop.strip())
        except MessageParseError:
            return False
    if getattr(hop, "scheme", "").lower() == "sips":
        return True
    transport = getattr(hop, "transport", None)
    return isinstance(transport, str) and transport.lower() in ("tls", "wss")
