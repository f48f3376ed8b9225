# -*- test-case-name: sipedge.test.test_message_corpus -*-
"""
Deep validation of a parsed message: what every element checks before it
acts on a request or a response (RFC 3261 8.2.1-8.2.2, 16.3, 18.1.2).

L{parse_datagram} and L{StreamParser} only frame and split; these functions
parse the fields a proxy relies on and raise L{MessageParseError} with the
status to answer (400, 416, 420, 501, 513).
"""

from __future__ import annotations

from collections.abc import Collection

from sipedge.error import MessageParseError
from sipedge.message._limits import DEFAULT_LIMITS, Limits
from sipedge.message._message import Request, Response, parse_views
from sipedge.message._sip_uri import SipURI

__all__ = ["KNOWN_METHODS", "check_request", "check_response"]

#: Methods of RFC 3261 and its common extensions (3262, 3265, 3311, 3428,
#: 3515, 3903, 6086).
KNOWN_METHODS = frozenset(
    (
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    )
)

_DEFAULT_SCHEMES = frozenset(("sip", "sips", "tel"))


#: The views every request and response must have well formed, after
#: the Via, in the order they are checked; a request's Route last.
_COMMON = (
    "call_id",
    "cseq",
    "from_address",
    "to_address",
    "max_forwards",
    "contacts",
    "record_routes",
)
_REQUEST = (*_COMMON, "routes")


def _common(message: Request | Response, limits: Limits, views: tuple[str, ...] = _COMMON) -> None:
    """Fields every request and response must have, well formed, and C{views}."""
    try:
        vias = message.vias
        if not vias:
            raise MessageParseError("missing Via header field")
        if len(vias) > limits.max_vias:
            raise MessageParseError("too many Via header fields", 513)
        # One pass over the fields for all of them (parse_views).
        parse_views(message, views)
    except MessageParseError as e:
        if e.message is None:
            e.message = message
        raise


def check_request(
    request: Request,
    limits: Limits = DEFAULT_LIMITS,
    *,
    schemes: Collection[str] = _DEFAULT_SCHEMES,
    supported: Collection[str] | None = None,
) -> None:
    """
    Check C{request} as a stateful proxy must before acting on it.

    @param schemes: the Request-URI schemes we handle; others get 416
        (RFC 3261 16.3 step 2).
    @param supported: option tags we support; with a value, any other tag in
        Proxy-Require gets 420 with an Unsupported header field (RFC 3261
        16.3 step 6). C{None} skips the check.
    @raise MessageParseError: with the status to answer.
    """
    try:
        uri = request.request_uri
    except MessageParseError as e:
        raise MessageParseError(f"bad Request-URI: {e.reason}", message=request) from None
    if isinstance(uri, SipURI) and uri.headers:
        # An escaped header in the Request-URI must never become a header
        # field (RFC 4475 3.1.2.12), and is not allowed there (19.1.1).
        raise MessageParseError("headers in the Request-URI", message=request)
    _common(request, limits, _REQUEST)
    cseq = request.cseq
    if cseq.method != request.method:
        status = 400 if request.method in KNOWN_METHODS else 501
        raise MessageParseError(
            f"CSeq method {cseq.method} does not match {request.method}",
            status,
            message=request,
        )
    scheme = getattr(uri, "scheme", "").lower()
    if scheme not in schemes:
        raise MessageParseError(
            f"unsupported URI scheme {scheme!r}", 416, message=request
        )
    if supported is not None:
        unsupported = [
            tag for tag in request.option_tags("Proxy-Require") if tag not in supported
        ]
        if unsupported:
            raise MessageParseError(
                "unsupported Proxy-Require option tags",
                420,
                (("Unsupported", ", ".join(unsupported)),),
                message=request,
            )


def check_response(response: Response, limits: Limits = DEFAULT_LIMITS) -> None:
    """
    Check C{response} before matching it to a transaction; a failure means
    the response is dropped (RFC 3261 18.1.2 has no way to answer it).
    """
    _common(response, limits)
