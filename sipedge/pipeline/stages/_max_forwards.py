# -*- test-case-name: sipedge.test.test_stages -*-
"""
The max-forwards stage: the requests that end here before any routing.

 - RFC 3261 16.3 item 3: a request that may not be forwarded further
   (Max-Forwards 0) gets 483; an ACK is dropped.
 - OPTIONS to the edge itself gets 200 with our capabilities (RFC 3261
   11.2: Allow, Accept, Supported): an OPTIONS whose Request-URI names one
   of our listeners or one of our domains with no user part, through no
   Route but our own (how PBXs, trunks, load balancers and monitoring
   probe their edge), and any OPTIONS at one of our addresses with
   Max-Forwards 0 (16.3 item 2 lets us answer it as its final recipient).

The stage runs before digest authentication, so such a probe is never
challenged, and after the ban, scanner and flood stages, so banned sources,
scanners and floods are still stopped before they get an answer.
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IRequestStage
from sipedge.message import Request
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, Respond, StageResult

__all__ = ["ACCEPT", "ALLOW", "CAPABILITIES", "SUPPORTED", "MaxForwardsStage"]

ALLOW = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE,"
    " INFO, UPDATE"
)
ACCEPT = "application/sdp"
#: The option tags our registrar and proxy understand (RFC 5626 outbound:
#: the registrar keeps flows and says Require: outbound).
SUPPORTED = "outbound"
#: What an OPTIONS to the edge is answered with (RFC 3261 11.2).
CAPABILITIES = (("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", SUPPORTED))
_CONTINUE = Continue()


def _for_the_edge(local: object, request: Request) -> bool:
    """
    Whether C{request} (an OPTIONS) names the edge itself: one of our
    listeners or domains, no user part, and no Route other than ours.
    """
    uri = request.request_uri
    if getattr(uri, "user", None):
        return False
    if not (local.is_local_uri(uri) or local.is_our_domain(uri)):  # type: ignore[attr-defined]
        return False
    try:
        routes = request.routes
    except MessageParseError:
        return False
    return all(local.is_local_uri(route.uri) for route in routes)  # type: ignore[attr-defined]


@implementer(IRequestStage)
class MaxForwardsStage:
    name = "max-forwards"

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        services = context.services
        if (
            request.method == "OPTIONS"
            and services is not None
            and _for_the_edge(services.local, request)
        ):
            return Respond(200, None, CAPABILITIES)
        if request.max_forwards != 0:
            return _CONTINUE
        if request.method == "ACK":
            return Drop("ACK with Max-Forwards 0")
        uri = request.request_uri
        if (
            request.method == "OPTIONS"
            and services is not None
            and (
                services.local.is_local_uri(uri)
                or (services.local.is_our_domain(uri) and not getattr(uri, "user", None))
            )
        ):
            return Respond(200, None, CAPABILITIES)
        return Respond(483)
