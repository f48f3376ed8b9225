# -*- test-case-name: sipedge.test.test_proxy_forwarding -*-
"""
Building the request we forward to one target (RFC 3261 16.6), as pure
functions over immutable messages.
"""

from __future__ import annotations

from typing import Any

from sipedge.flow import format_hostport
from sipedge.message import (
    URI,
    Request,
    SipURI,
    Via,
    carry_views,
    parse_name_addr,
    parse_uri,
    split_comma_list,
)
from sipedge.pipeline import Target

__all__ = [
    "RECORD_ROUTED_METHODS",
    "forwarded_request",
    "is_secure",
    "is_transport_open",
    "next_hop",
    "own_via",
    "record_route_value",
    "via_value",
    "with_record_route",
]

#: Requests that may create a dialog; we record-route them (RFC 3261 16.6
#: item 4) so the dialog's later requests come through us.
RECORD_ROUTED_METHODS = frozenset(("INVITE", "SUBSCRIBE", "REFER", "NOTIFY"))


def forwarded_request(request: Request, target: Target, default_max_forwards: int = 70) -> Request:
    """
    The copy of C{request} for C{target} (16.6 items 1-3, 5-6): the target
    URI as Request-URI, Max-Forwards decremented (or set), the target's
    Route values on top, and strict-route pre-processing.
    """
    headers = request.headers
    mf = request.max_forwards
    headers = headers.replaced("Max-Forwards", str(default_max_forwards if mf is None else mf - 1))
    for value in reversed(target.route):
        headers = headers.prepended("Route", value)
    forwarded = Request(request.method, target.uri, headers, request.body, request.version)
    carry_views(request, forwarded, ("Max-Forwards", "Route"))
    return _strict_route_fixup(forwarded)


def _strict_route_fixup(request: Request) -> Request:
    """
    16.6 item 6: if the top Route is a strict router (no C{lr}), put the
    Request-URI at the end of the Route set and send to the top Route as
    the Request-URI.
    """
    routes = request.headers.values("Route")
    if not routes:
        return request
    top = parse_name_addr(routes[0])
    if not isinstance(top.uri, SipURI) or top.uri.lr:
        return request
    headers = request.headers.first_removed("Route").added("Route", f"<{request.uri}>")
    return Request(request.method, str(top.uri), headers, request.body, request.version)


def next_hop(request: Request) -> URI:
    """Where to send C{request}: its top Route's URI if any, else its Request-URI."""
    for value in request.headers.get_all("Route"):
        first = split_comma_list(value)[0]
        return parse_name_addr(first).uri
    return parse_uri(request.uri)


def own_via(transport: str, host: str, port: int, branch: str) -> Via:
    """
    Our Via as a value, asking for rport (RFC 3581) so responses find us
    behind NAT: pushed as it is (L{Request.with_via_pushed}), it is not
    parsed again.
    """
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # RFC 5118: an IPv6 sent-by has brackets
    params = (("branch", branch), ("rport", None))
    return Via(transport=transport, host=host, port=port, params=params)


def via_value(transport: str, host: str, port: int, branch: str) -> str:
    """Our Via's text (L{own_via})."""
    return str(own_via(transport, host, port, branch))


def record_route_value(
    transport: str,
    host: str,
    port: int,
    mac: str,
    secure: bool = False,
    flow_token: str | None = None,
) -> str:
    """
    A Record-Route value for one of our interfaces, signed with C{mac}.

    A TLS interface gets a SIPS URI only when the request is C{secure}
    (its Request-URI or top Route is SIPS: RFC 3261 16.6 item 4 requires
    SIPS then); otherwise C{sip:...;transport=tls}, which user agents
    that know no C{sips} scheme can follow (baresip 1.0's libre refuses
    a C{sips} route set with ENOSYS and drops the call).

    A C{flow_token} (L{sipedge.proxy._flowtoken}) is added as C{ft}.
    """
    if transport == "TLS" and secure:
        scheme, params = "sips", ""
    else:
        scheme = "sip"
        params = "" if transport == "UDP" else f";transport={transport.lower()}"
    if flow_token is not None:
        params += f";ft={flow_token}"
    return f"<{scheme}:{format_hostport(host, port)}{params};lr;se={mac}>"


def is_secure(request: Request) -> bool:
    """True if C{request}'s Request-URI or next hop is a SIPS URI (RFC 3261 16.6 item 4)."""
    for uri in (request.request_uri, next_hop(request)):
        if isinstance(uri, SipURI) and uri.scheme == "sips":
            return True
    return False


def with_record_route(request: Request, values: list[str]) -> Request:
    """C{request} with C{values} pushed on top of Record-Route, first value first."""
    headers = request.headers
    for value in values:
        headers = headers.prepended("Record-Route", value)
    return request.with_headers(headers, changed="Record-Route")


def is_transport_open(hop: Any) -> bool:
    """
    True if the next hop's URI leaves the transport to us (RFC 3263: a
    C{sip:} URI without C{transport}), so a large request may use TCP.
    """
    return getattr(hop, "scheme", None) == "sip" and hop.param("transport") is None
