# -*- test-case-name: sipedge.test.test_transport_size -*-
"""
Message size and UDP (RFC 3261 18.1.1): a request larger than 1300 bytes
(the path MTU being unknown) must go over a congestion-controlled transport
such as TCP, so that it is not fragmented over UDP. A response has no such
choice: it goes where its Via says (18.2.2), over UDP as one datagram,
fragmented by IP if it must, and never truncated; one larger than a UDP
datagram can carry cannot be sent at all, and the transport says so.
"""

from __future__ import annotations

from sipedge.message import Message, Request

__all__ = ["UDP_REQUEST_LIMIT", "too_large_for_udp", "wire_size"]

#: RFC 3261 18.1.1: above this, with the path MTU unknown, a request goes
#: over TCP.
UDP_REQUEST_LIMIT = 1300


def wire_size(message: Message) -> int:
    """
    The size of C{message} as L{sipedge.message.serialize} writes it,
    counted without serializing (each header field C{Name: value} and CRLF,
    the Content-Length sipedge writes, the body). Characters outside ASCII
    count once, so it can be a few bytes short for those.
    """
    if isinstance(message, Request):
        start = len(message.method) + len(message.uri) + len(message.version) + 2
    else:
        start = len(message.version) + len(str(message.status)) + len(message.reason) + 2
    size = start + 2
    for _, name, value in message.headers.fields:
        size += len(name) + len(value) + 4
    body = len(message.body)
    return size + len("Content-Length: ") + len(str(body)) + 4 + body


def too_large_for_udp(message: Message) -> bool:
    """True for a request that RFC 3261 18.1.1 sends over TCP rather than UDP."""
    return isinstance(message, Request) and wire_size(message) > UDP_REQUEST_LIMIT
