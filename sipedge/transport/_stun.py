# -*- test-case-name: sipedge.test.test_transport_stun -*-
"""
STUN keepalives on the SIP UDP port (RFC 5626 section 8, RFC 5389), sans-IO.

A phone that follows RFC 5626 keeps its NAT mapping open by sending STUN
Binding requests to the port it sends SIP to, and learns from the answer's
XOR-MAPPED-ADDRESS whether its mapping changed. SIP and STUN share the
port: a STUN message starts with two zero bits and carries the magic
cookie at bytes 4 to 7, which no SIP message can.

Only what a keepalive needs: a Binding request without attributes we must
understand is answered with a Binding success response naming the source;
anything else that looks like STUN is dropped (RFC 5389 7.3: a server may
ignore what it does not handle; a keepalive client never needs an error).
"""

from __future__ import annotations

import ipaddress
import struct

__all__ = ["MAGIC_COOKIE", "binding_response", "looks_like_stun"]

MAGIC_COOKIE = 0x2112A442
_HEADER = struct.Struct("!HHI12s")
_BINDING_REQUEST = 0x0001
_BINDING_SUCCESS = 0x0101
_XOR_MAPPED_ADDRESS = 0x0020
_SOFTWARE = 0x8022
_MAX_SIZE = 548  # RFC 5389 7.1: what a keepalive request is well below


def looks_like_stun(data: bytes) -> bool:
    """Whether C{data} is a STUN message (first two bits zero, magic cookie)."""
    return len(data) >= 20 and data[0] & 0xC0 == 0 and data[4:8] == b"\x21\x12\xa4\x42"


def _comprehension_required(attributes: bytes) -> bool:
    """Whether an attribute in 0x0000-0x7FFF (which we understand none of) is present."""
    offset = 0
    while offset + 4 <= len(attributes):
        kind, length = struct.unpack_from("!HH", attributes, offset)
        if kind < 0x8000:
            return True
        offset += 4 + length + (-length % 4)
    return False


def binding_response(data: bytes, host: str, port: int) -> bytes | None:
    """
    The Binding success response to C{data}, a STUN Binding request from
    C{host}:C{port}; C{None} if C{data} is not one we answer.
    """
    if not looks_like_stun(data) or len(data) > _MAX_SIZE:
        return None
    kind, length, _, transaction = _HEADER.unpack_from(data)
    if kind != _BINDING_REQUEST or length != len(data) - 20 or length % 4:
        return None
    if _comprehension_required(data[20:]):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    family = 0x01 if address.version == 4 else 0x02
    mask = MAGIC_COOKIE.to_bytes(4, "big") + (transaction if family == 0x02 else b"")
    packed = bytes(a ^ b for a, b in zip(address.packed, mask, strict=True))
    value = struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + packed
    attribute = struct.pack("!HH", _XOR_MAPPED_ADDRESS, len(value)) + value
    return _HEADER.pack(_BINDING_SUCCESS, len(attribute), MAGIC_COOKIE, transaction) + attribute
