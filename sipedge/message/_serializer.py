# -*- test-case-name: sipedge.test.test_message_parser -*-
"""
Turning L{Request} and L{Response} values into bytes.

The serializer always writes a Content-Length that matches the body (RFC
3261 18.3 and 20.14), last among the header fields. It refuses a value or
start line that would inject a line break: a pipeline stage can never
smuggle a header field through a value it built.
"""

from __future__ import annotations

from sipedge.error import LocalProtocolError
from sipedge.message._message import Message, Request

__all__ = ["serialize"]


def serialize(message: Message) -> bytes:
    """
    The wire form of C{message}.

    @raise LocalProtocolError: if a header name, value or the start line
        holds CR or LF, or the Request-URI or method holds a space.
    """
    if isinstance(message, Request):
        if " " in message.uri or " " in message.method:
            raise LocalProtocolError("space in Request-URI or method")
        start = f"{message.method} {message.uri} {message.version}"
    else:
        start = f"{message.version} {message.status} {message.reason}"
    lines = [start]
    lines.extend([f"{name}: {value}" for _, name, value in message.headers.fields])
    lines.append(f"Content-Length: {len(message.body)}\r\n\r\n")
    text = "\r\n".join(lines)
    breaks = len(lines) + 1
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise LocalProtocolError("CR or LF inside a header field or start line")
    return text.encode("utf-8", "surrogateescape") + message.body
