"""
The sans-IO SIP message core: parse, inspect, change and serialize SIP
messages and their header values. Uses the standard library and attrs only.
"""

from sipedge.message._headers import COMPACT_FORMS, Headers, canonical_name, header_key
from sipedge.message._limits import DEFAULT_LIMITS, Limits
from sipedge.message._message import SIP_VERSION, Message, Request, Response
from sipedge.message._parser import (
    KeepAlivePing,
    KeepAlivePong,
    StreamEvent,
    StreamParser,
    is_keepalive,
    parse_datagram,
)
from sipedge.message._serializer import serialize

__all__ = [
    "COMPACT_FORMS",
    "DEFAULT_LIMITS",
    "Headers",
    "KeepAlivePing",
    "KeepAlivePong",
    "Limits",
    "Message",
    "Request",
    "Response",
    "SIP_VERSION",
    "StreamEvent",
    "StreamParser",
    "canonical_name",
    "header_key",
    "is_keepalive",
    "parse_datagram",
    "serialize",
]
