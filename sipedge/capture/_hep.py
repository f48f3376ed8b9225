# -*- test-case-name: sipedge.test.test_capture -*-
"""
HEPv3, the HOMER encapsulation protocol (sans-IO): a copy of a SIP message
with where it went, when, and which capture node saw it, as Homer, sngrep,
Wireshark and Kamailio's siptrace read it.

A packet is C{"HEP3"}, its total length (16 bits), then chunks; each chunk
is a vendor id (16 bits, 0 for the generic chunks used here), a type
(16 bits), its length including these 6 bytes (16 bits) and the value, all
in network byte order.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

__all__ = ["HEP_SIP", "HepError", "HepPacket", "decode_hep3", "encode_hep3"]

#: Protocol type 1: SIP.
HEP_SIP = 1

_MAGIC = b"HEP3"
_FAMILY_IPV4 = 2
_FAMILY_IPV6 = 10
_PROTOCOL_IDS = {"UDP": 17, "TCP": 6}

# Generic chunk types (vendor 0).
_FAMILY = 0x0001
_PROTO_ID = 0x0002
_SRC4 = 0x0003
_DST4 = 0x0004
_SRC6 = 0x0005
_DST6 = 0x0006
_SPORT = 0x0007
_DPORT = 0x0008
_SECONDS = 0x0009
_MICROS = 0x000A
_PROTO_TYPE = 0x000B
_NODE_ID = 0x000C
_PASSWORD = 0x000E
_PAYLOAD = 0x000F
_CORRELATION = 0x0011

_MAX_LENGTH = 0xFFFF


class HepError(ValueError):
    """Bytes that are not a HEPv3 packet, or a packet too large to encode."""


@attrs.frozen(kw_only=True)
class HepPacket:
    """
    One captured message.

    @ivar transport: C{"UDP"} or C{"TCP"} (TLS is carried as TCP, as
        Kamailio and Homer do).
    @ivar source: C{(ip, port)} it came from.
    @ivar destination: C{(ip, port)} it went to (same IP family).
    @ivar time: seconds since the epoch, with microseconds.
    @ivar node_id: the capture node's id.
    @ivar payload: the SIP message as sent or received.
    @ivar password: the collector's password, or C{b""} for none.
    @ivar correlation_id: the Call-ID, or C{b""}.
    @ivar protocol_type: L{HEP_SIP}.
    """

    transport: str = attrs.field(validator=attrs.validators.in_(tuple(_PROTOCOL_IDS)))
    source: tuple[str, int]
    destination: tuple[str, int]
    time: float
    node_id: int
    payload: bytes
    password: bytes = b""
    correlation_id: bytes = b""
    protocol_type: int = HEP_SIP


def _chunk(kind: int, value: bytes) -> bytes:
    if 6 + len(value) > _MAX_LENGTH:
        raise HepError(f"{len(value)}-byte chunk {kind:#06x} exceeds {_MAX_LENGTH} bytes")
    return struct.pack("!HHH", 0, kind, 6 + len(value)) + value


def encode_hep3(packet: HepPacket) -> bytes:
    """
    The HEPv3 bytes of C{packet}.

    @raise HepError: if the addresses are not IP literals of one family, a
        port or the node id is out of range, or the packet would exceed
        65,535 bytes.
    """
    try:
        src = ipaddress.ip_address(packet.source[0])
        dst = ipaddress.ip_address(packet.destination[0])
    except ValueError as e:
        raise HepError(f"not an IP address: {e}") from None
    if src.version != dst.version:
        raise HepError(f"source {src} and destination {dst} are of different families")
    for port in (packet.source[1], packet.destination[1]):
        if not 0 <= port <= 0xFFFF:
            raise HepError(f"port {port} out of range")
    if not 0 <= packet.node_id <= 0xFFFFFFFF:
        raise HepError(f"node id {packet.node_id} out of range")
    seconds = int(packet.time)
    micros = min(round((packet.time - seconds) * 1_000_000), 999_999)
    v4 = src.version == 4
    chunks = [
        _chunk(_FAMILY, bytes([_FAMILY_IPV4 if v4 else _FAMILY_IPV6])),
        _chunk(_PROTO_ID, bytes([_PROTOCOL_IDS[packet.transport]])),
        _chunk(_SRC4 if v4 else _SRC6, src.packed),
        _chunk(_DST4 if v4 else _DST6, dst.packed),
        _chunk(_SPORT, struct.pack("!H", packet.source[1])),
        _chunk(_DPORT, struct.pack("!H", packet.destination[1])),
        _chunk(_SECONDS, struct.pack("!I", seconds & 0xFFFFFFFF)),
        _chunk(_MICROS, struct.pack("!I", micros)),
        _chunk(_PROTO_TYPE, bytes([packet.protocol_type])),
        _chunk(_NODE_ID, struct.pack("!I", packet.node_id)),
    ]
    if packet.password:
        chunks.append(_chunk(_PASSWORD, packet.password))
    if packet.correlation_id:
        chunks.append(_chunk(_CORRELATION, packet.correlation_id))
    chunks.append(_chunk(_PAYLOAD, packet.payload))
    body = b"".join(chunks)
    length = 6 + len(body)
    if length > _MAX_LENGTH:
        raise HepError(f"{length}-byte HEP packet exceeds {_MAX_LENGTH} bytes")
    return _MAGIC + struct.pack("!H", length) + body


def decode_hep3(data: bytes) -> HepPacket:
    """
    The packet C{data} holds (generic chunks; others are skipped).

    @raise HepError: for anything that is not a well-formed HEPv3 SIP
        packet with addresses, ports, time, node id and payload.
    """
    if len(data) < 6 or data[:4] != _MAGIC:
        raise HepError("not a HEPv3 packet")
    (length,) = struct.unpack("!H", data[4:6])
    if length != len(data):
        raise HepError(f"length field {length} but {len(data)} bytes")
    values: dict[int, bytes] = {}
    offset = 6
    while offset < length:
        if offset + 6 > length:
            raise HepError("truncated chunk header")
        vendor, kind, size = struct.unpack("!HHH", data[offset:offset + 6])
        if size < 6 or offset + size > length:
            raise HepError(f"chunk {kind:#06x} has a bad length {size}")
        if vendor == 0:
            values[kind] = data[offset + 6:offset + size]
        offset += size
    try:
        family = values[_FAMILY][0]
        proto = values[_PROTO_ID][0]
        if family == _FAMILY_IPV4:
            src, dst = values[_SRC4], values[_DST4]
        elif family == _FAMILY_IPV6:
            src, dst = values[_SRC6], values[_DST6]
        else:
            raise HepError(f"unknown address family {family}")
        transport = {v: k for k, v in _PROTOCOL_IDS.items()}.get(proto)
        if transport is None:
            raise HepError(f"unknown IP protocol {proto}")
        (sport,) = struct.unpack("!H", values[_SPORT])
        (dport,) = struct.unpack("!H", values[_DPORT])
        (seconds,) = struct.unpack("!I", values[_SECONDS])
        (micros,) = struct.unpack("!I", values.get(_MICROS, b"\0\0\0\0"))
        (node_id,) = struct.unpack("!I", values[_NODE_ID])
        return HepPacket(
            transport=transport,
            source=(str(ipaddress.ip_address(src)), sport),
            destination=(str(ipaddress.ip_address(dst)), dport),
            time=seconds + micros / 1_000_000,
            node_id=node_id,
            payload=values[_PAYLOAD],
            password=values.get(_PASSWORD, b""),
            correlation_id=values.get(_CORRELATION, b""),
            protocol_type=values[_PROTO_TYPE][0],
        )
    except (KeyError, IndexError, struct.error, ValueError) as e:
        if isinstance(e, HepError):
            raise
        raise HepError(f"missing or malformed chunk: {e!r}") from None
