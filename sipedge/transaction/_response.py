# -*- test-case-name: sipedge.test.test_transaction -*-
"""
Building a response to a request (RFC 3261 8.2.6), for server transactions,
stateless answers and the proxy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from sipedge.error import LocalProtocolError, MessageParseError
from sipedge.message import Headers, Request, Response, header_key

__all__ = ["REASON_PHRASES", "make_response", "reason_phrase"]

#: The reason phrases of RFC 3261 section 21, and of the extensions a proxy
#: meets most (RFC 3262, 3265, 3903, 4028, 4412, 5079, 5360, 5626, 5839, 6228,
#: 6665, 8197, 8688).
REASON_PHRASES: Mapping[int, str] = MappingProxyType(
    {
        100: "Trying",
        180: "Ringing",
        181: "Call Is Being Forwarded",
        182: "Queued",
        183: "Session Progress",
        199: "Early Dialog Terminated",
        200: "OK",
        202: "Accepted",
        204: "No Notification",
        300: "Multiple Choices",
        301: "Moved Permanently",
        302: "Moved Temporarily",
        305: "Use Proxy",
        380: "Alternative Service",
        400: "Bad Request",
        401: "Unauthorized",
        402: "Payment Required",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        406: "Not Acceptable",
        407: "Proxy Authentication Required",
        408: "Request Timeout",
        410: "Gone",
        412: "Conditional Request Failed",
        413: "Request Entity Too Large",
        414: "Request-URI Too Long",
        415: "Unsupported Media Type",
        416: "Unsupported URI Scheme",
        417: "Unknown Resource-Priority",
        420: "Bad Extension",
        421: "Extension Required",
        422: "Session Interval Too Small",
        423: "Interval Too Brief",
        430: "Flow Failed",
        433: "Anonymity Disallowed",
        439: "First Hop Lacks Outbound Support",
        470: "Consent Needed",
        480: "Temporarily Unavailable",
        481: "Call/Transaction Does Not Exist",
        482: "Loop Detected",
        483: "Too Many Hops",
        484: "Address Incomplete",
        485: "Ambiguous",
        486: "Busy Here",
        487: "Request Terminated",
        488: "Not Acceptable Here",
        489: "Bad Event",
        491: "Request Pending",
        493: "Undecipherable",
        494: "Security Agreement Required",
        500: "Server Internal Error",
        501: "Not Implemented",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Server Time-out",
        505: "Version Not Supported",
        513: "Message Too Large",
        555: "Push Notification Service Not Supported",
        580: "Precondition Failure",
        600: "Busy Everywhere",
        603: "Decline",
        604: "Does Not Exist Anywhere",
        606: "Not Acceptable",
        607: "Unwanted",
        608: "Rejected",
    }
)

# RFC 3261 8.2.6.2 / 21: what to say for a code we have no phrase for.
_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}

# A tag parameter of the To header field (outside any <...>).
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.I)
_ANGLE_RE = re.compile(r"<[^>]*>")


def reason_phrase(status: int) -> str:
    """The standard reason phrase of C{status}, or its class's name."""
    phrase = REASON_PHRASES.get(status)
    if phrase is not None:
        return phrase
    return _CLASS_PHRASES.get(status // 100, "Unknown")


def _has_tag(request: Request, to_value: str) -> bool:
    try:
        return request.to_address.tag is not None
    except MessageParseError:
        # A To we cannot parse (answering a malformed request): look for
        # a tag parameter outside the URI.
        return _TAG_RE.search(_ANGLE_RE.sub("", to_value)) is not None


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    to_tag: str | None = None,
    *,
    random: Callable[[int], bytes] = os.urandom,
) -> Response:
    """
    A response to C{request} (RFC 3261 8.2.6): the Via fields (all of them,
    in order), From, To, Call-ID and CSeq copied, a To tag added unless the
    To already has one or the status is 100, Timestamp copied into a 100
    (8.2.6.1), then C{headers}.

    Header values are copied as written, so even a request with a malformed
    field can be answered.

    @param reason: the reason phrase; the standard one if C{None}.
    @param headers: more header fields, C{(name, value)} pairs or a
        L{Headers}.
    @param to_tag: the To tag to add; a random one if C{None}.
    @param random: where a random tag comes from (C{os.urandom}).
    @raise LocalProtocolError: if C{status} is not 100 to 699 or C{request}
        is an ACK (RFC 3261 17.1.1.3: an ACK is never answered).
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"status {status} is not a SIP status code")
    if request.method == "ACK":
        raise LocalProtocolError("an ACK is never answered")
    pairs: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_all("Via")]
    pairs.extend(("From", v) for v in request.headers.get_all("From"))
    for value in request.headers.get_all("To"):
        if status != 100 and not _has_tag(request, value):
            value = f"{value};tag={to_tag if to_tag is not None else random(8).hex()}"
        pairs.append(("To", value))
    pairs.extend(("Call-ID", v) for v in request.headers.get_all("Call-ID"))
    pairs.extend(("CSeq", v) for v in request.headers.get_all("CSeq"))
    if status == 100:
        pairs.extend(("Timestamp", v) for v in request.headers.get_all("Timestamp"))
    fields = [(header_key(name), name, value) for name, value in pairs]
    fields.extend((header_key(name), name, value) for name, value in headers)
    return Response(
        status=status,
        reason=reason_phrase(status) if reason is None else reason,
        headers=Headers(tuple(fields)),
    )
