# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
SIP message builders: a request as a user agent sends it, a UAS's answer
to a forwarded request, a message from its text, and a bare OPTIONS for
transport tests. Each returns a parsed L{Message}, so what a test builds
went through sipedge's own parser.
"""

from __future__ import annotations

from sipedge.message import Headers, Message, Request, Response, parse_datagram
from sipedge.transaction import make_response

__all__ = [
    "OPTIONS_VIA",
    "echo_response",
    "options_bytes",
    "options_request",
    "parse_message",
    "sip_answer",
    "sip_request",
]


def parse_message(text: str) -> Message:
    """A message from its text, lines joined with CRLF."""
    lines = text.strip("\n").split("\n")
    return parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))


def sip_request(
    method: str,
    uri: str,
    *fields: str,
    call_id: str = "call-1@198.51.100.7",
    cseq: int = 1,
    branch: str = "z9hG4bK-alice-1",
    via: str = "198.51.100.7:5060",
    transport: str = "UDP",
    from_: str = "<sip:alice@example.com>;tag=alice-tag",
    to: str = "<sip:bob@example.com>",
    max_forwards: int | None = 70,
    body: str = "",
) -> Request:
    """A request as a UA would send it."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {via};branch={branch};rport",
        *([f"Max-Forwards: {max_forwards}"] if max_forwards is not None else []),
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *fields,
        f"Content-Length: {len(body)}",
        "",
        body,
    ]
    message = parse_datagram("\r\n".join(lines).encode("utf-8"))
    assert isinstance(message, Request)
    return message


def sip_answer(
    forwarded: Request,
    status: int,
    *fields: tuple[str, str],
    to_tag: str | None = "bob-tag",
    record_route: bool = True,
) -> Response:
    """A UAS's response to C{forwarded}: Record-Route copied for 1xx/2xx."""
    headers: list[tuple[str, str]] = []
    if record_route and status < 300 and status != 100:
        headers.extend(("Record-Route", v) for v in forwarded.headers.get_all("Record-Route"))
    headers.extend(fields)
    return make_response(forwarded, status, headers=headers, to_tag=to_tag)


#: The Via of L{options_bytes}.
OPTIONS_VIA = VIA = "SIP/2.0/UDP client.example.test:5060;branch=z9hG4bK776asdhds"


def options_bytes(via: str = VIA, body: bytes = b"", extra: tuple[str, ...] = ()) -> bytes:
    """An OPTIONS request with one Via C{via} (or none if empty)."""
    lines = [
        "OPTIONS sip:proxy.example.test SIP/2.0",
        *([f"Via: {via}"] if via else []),
        "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=1928301774",
        "To: <sip:proxy.example.test>",
        "Call-ID: a84b4c76e66710@client.example.test",
        "CSeq: 63104 OPTIONS",
        *extra,
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


def options_request(via: str = VIA, body: bytes = b"") -> Request:
    message = parse_datagram(options_bytes(via, body))
    assert isinstance(message, Request)
    return message


def echo_response(request: Request, status: int = 200, reason: str = "OK") -> Response:
    """A response to C{request} with its Via, From, To, Call-ID and CSeq."""
    pairs = [(name, value) for name, value in request.headers
             if name.lower() in ("via", "v", "from", "to", "call-id", "cseq")]
    return Response(status, reason, Headers.of(*pairs))
