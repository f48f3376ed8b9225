# -*- test-case-name: sipedge.test.test_media_rtp -*-
"""
RTP and RTCP headers, sans-IO (RFC 3550 5.1, 6.4; RFC 5761 4).

Pure functions over bytes: no Twisted, no sockets, no clock. The views
(L{RtpHeader}, L{RtcpHeader}) keep a reference to the packet and decode a
field only when it is read, so looking at a packet never copies it; the
relay's hot path only needs L{is_rtcp} and a length and version check.

RTP fixed header (RFC 3550 5.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Header extension (RFC 3550 5.3.1): 16-bit profile, 16-bit length in 32-bit
words, then that many words.

RTCP common header (RFC 3550 6.4.1)::

    |V=2|P|    RC   |   PT=SR=200   |             length            |
    |                         SSRC of sender                        |
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sipedge.media._errors import RtpParseError

__all__ = [
    "RTCP_HEADER_SIZE",
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtcpHeader",
    "RtpHeader",
    "build_rtcp",
    "build_rtp",
    "is_rtcp",
    "is_valid_rtcp",
    "is_valid_rtp",
]

RTP_VERSION = 2
#: The fixed RTP header, without CSRCs or extension.
RTP_HEADER_SIZE = 12
#: The RTCP common header plus the sender's SSRC.
RTCP_HEADER_SIZE = 8

# Packet types a receiver demultiplexing RTP and RTCP on one port treats as
# RTCP (RFC 5761 4): the second octet in 192-223. RTP payload types 64-95
# would collide there (with the marker bit set), so RFC 5761 forbids them
# on a multiplexed port.
_RTCP_LOW = 192
_RTCP_HIGH = 223

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_FIXED = struct.Struct("!BBHII")
_RTCP_FIXED = struct.Struct("!BBHI")

Buffer = bytes | bytearray | memoryview


def is_rtcp(packet: Buffer) -> bool:
    """
    True if C{packet} is RTCP by the rule for RTP and RTCP on one port
    (RFC 5761 4): its second octet (RTCP's packet type) is in 192-223.
    Works for SRTP/SRTCP too: those headers are sent in the clear.
    """
    return len(packet) >= 2 and _RTCP_LOW <= packet[1] <= _RTCP_HIGH


def _rtp_problem(packet: Buffer) -> str | None:
    """Why C{packet} is not a valid RTP packet, or C{None} if it is."""
    size = len(packet)
    if size < RTP_HEADER_SIZE:
        return f"{size} bytes is shorter than the 12-byte RTP header"
    first = packet[0]
    if first >> 6 != RTP_VERSION:
        return f"RTP version {first >> 6}, not 2"
    if _RTCP_LOW <= packet[1] <= _RTCP_HIGH:
        return "an RTCP packet type (RFC 5761 4), not RTP"
    end = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if end > size:
        return f"{first & 0x0F} CSRCs do not fit in {size} bytes"
    if first & 0x10:
        if end + 4 > size:
            return "the header extension does not fit"
        end += 4 + 4 * _U16.unpack_from(packet, end + 2)[0]
        if end > size:
            return "the header extension's length runs past the packet"
    if first & 0x20:
        pad = packet[size - 1]
        if pad == 0 or end + pad > size:
            return f"padding count {pad} does not fit in the payload"
    return None


def is_valid_rtp(packet: Buffer) -> bool:
    """
    True if C{packet} is a well-formed RTP packet (RFC 3550 5.1 and A.1):
    at least 12 bytes, version 2, not an RTCP packet type (RFC 5761 4),
    CSRC list, header extension and padding all inside the packet.
    """
    return _rtp_problem(packet) is None


def _rtcp_problem(packet: Buffer) -> str | None:
    size = len(packet)
    if size < RTCP_HEADER_SIZE:
        return f"{size} bytes is shorter than the 8-byte RTCP header"
    if packet[0] >> 6 != RTP_VERSION:
        return f"RTCP version {packet[0] >> 6}, not 2"
    if not _RTCP_LOW <= packet[1] <= _RTCP_HIGH:
        return f"packet type {packet[1]} is not an RTCP type"
    length = 4 * (_U16.unpack_from(packet, 2)[0] + 1)
    if length > size:
        return f"length field says {length} bytes, the packet has {size}"
    return None


def is_valid_rtcp(packet: Buffer) -> bool:
    """
    True if C{packet} starts with a well-formed RTCP header (RFC 3550
    6.4.1): at least 8 bytes, version 2, a packet type in 192-223, and a
    first packet whose length field fits. (SRTCP packets pass too: their
    header is in the clear; the rest of a compound packet is not checked.)
    """
    return _rtcp_problem(packet) is None


class RtpHeader:
    """
    A read-only view of an RTP packet's header (RFC 3550 5.1). Fields are
    decoded from the packet when read; nothing is copied.

    Make one with L{parse} (validates) or directly (no validation: reading a
    field of a packet that is too short raises C{IndexError} or
    C{struct.error}).
    """

    __slots__ = ("packet",)

    def __init__(self, packet: Buffer) -> None:
        self.packet = packet

    @classmethod
    def parse(cls, packet: Buffer) -> RtpHeader:
        """
        A view of C{packet} after checking it with L{is_valid_rtp}.

        @raise RtpParseError: if C{packet} is not a valid RTP packet; this
            is the only exception it raises, whatever the bytes.
        """
        problem = _rtp_problem(packet)
        if problem is not None:
            raise RtpParseError(problem)
        return cls(packet)

    def __repr__(self) -> str:
        return (
            f"<RtpHeader pt={self.payload_type} seq={self.sequence} "
            f"ts={self.timestamp} ssrc={self.ssrc:#010x}{' M' if self.marker else ''}>"
        )

    @property
    def version(self) -> int:
        return self.packet[0] >> 6

    @property
    def padding(self) -> bool:
        return bool(self.packet[0] & 0x20)

    @property
    def extension(self) -> bool:
        return bool(self.packet[0] & 0x10)

    @property
    def csrc_count(self) -> int:
        return self.packet[0] & 0x0F

    @property
    def marker(self) -> bool:
        return bool(self.packet[1] & 0x80)

    @property
    def payload_type(self) -> int:
        return self.packet[1] & 0x7F

    @property
    def sequence(self) -> int:
        return int(_U16.unpack_from(self.packet, 2)[0])

    @property
    def timestamp(self) -> int:
        return int(_U32.unpack_from(self.packet, 4)[0])

    @property
    def ssrc(self) -> int:
        return int(_U32.unpack_from(self.packet, 8)[0])

    @property
    def csrcs(self) -> tuple[int, ...]:
        count = self.packet[0] & 0x0F
        return struct.unpack_from(f"!{count}I", self.packet, RTP_HEADER_SIZE)

    @property
    def extension_profile(self) -> int | None:
        """The header extension's 16-bit profile, or C{None} without one."""
        if not self.extension:
            return None
        return int(_U16.unpack_from(self.packet, RTP_HEADER_SIZE + 4 * self.csrc_count)[0])

    @property
    def extension_data(self) -> memoryview | None:
        """The header extension's words (a view), or C{None} without one."""
        if not self.extension:
            return None
        start = RTP_HEADER_SIZE + 4 * self.csrc_count
        words = _U16.unpack_from(self.packet, start + 2)[0]
        return memoryview(self.packet)[start + 4 : start + 4 + 4 * words]

    @property
    def header_size(self) -> int:
        """Bytes before the payload: fixed header, CSRCs, extension."""
        end = RTP_HEADER_SIZE + 4 * self.csrc_count
        if self.extension:
            end += 4 + 4 * _U16.unpack_from(self.packet, end + 2)[0]
        return end

    @property
    def padding_size(self) -> int:
        """Padding octets at the end (the last octet counts them)."""
        return self.packet[-1] if self.padding else 0

    @property
    def payload(self) -> memoryview:
        """The payload without padding, as a view of the packet."""
        return memoryview(self.packet)[self.header_size : len(self.packet) - self.padding_size]


class RtcpHeader:
    """
    A read-only view of the first RTCP packet's common header (RFC 3550
    6.4.1) in a (compound) RTCP or SRTCP packet.
    """

    __slots__ = ("packet",)

    def __init__(self, packet: Buffer) -> None:
        self.packet = packet

    @classmethod
    def parse(cls, packet: Buffer) -> RtcpHeader:
        """
        A view after checking C{packet} with L{is_valid_rtcp}.

        @raise RtpParseError: if it is not; the only exception it raises.
        """
        problem = _rtcp_problem(packet)
        if problem is not None:
            raise RtpParseError(problem)
        return cls(packet)

    def __repr__(self) -> str:
        return f"<RtcpHeader pt={self.packet_type} ssrc={self.ssrc:#010x}>"

    @property
    def version(self) -> int:
        return self.packet[0] >> 6

    @property
    def padding(self) -> bool:
        return bool(self.packet[0] & 0x20)

    @property
    def count(self) -> int:
        """Reception report count (or subtype, by packet type)."""
        return self.packet[0] & 0x1F

    @property
    def packet_type(self) -> int:
        return self.packet[1]

    @property
    def length(self) -> int:
        """The length field: 32-bit words minus one."""
        return int(_U16.unpack_from(self.packet, 2)[0])

    @property
    def ssrc(self) -> int:
        return int(_U32.unpack_from(self.packet, 4)[0])


def build_rtp(
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    marker: bool = False,
    csrcs: Sequence[int] = (),
    extension: tuple[int, bytes] | None = None,
    payload: bytes = b"",
    padding: int = 0,
) -> bytes:
    """
    An RTP packet (RFC 3550 5.1), for tests, tools and benchmarks.

    @param extension: C{(profile, data)}; C{data} is padded with zeros to a
        multiple of 4 bytes.
    @param padding: how many padding octets to add (0 for none, else
        1-255; the last one holds the count).
    @raise ValueError: for a field out of range.
    """
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type {payload_type} is not 0-127")
    if len(csrcs) > 15:
        raise ValueError("at most 15 CSRCs")
    if not 0 <= padding <= 255:
        raise ValueError("padding is 0-255 octets")
    first = (RTP_VERSION << 6) | len(csrcs)
    if padding:
        first |= 0x20
    if extension is not None:
        first |= 0x10
    parts = [
        _FIXED.pack(
            first, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc
        )
    ]
    parts += [_U32.pack(csrc) for csrc in csrcs]
    if extension is not None:
        profile, data = extension
        data = data + b"\0" * (-len(data) % 4)
        parts.append(_U16.pack(profile) + _U16.pack(len(data) // 4) + data)
    parts.append(payload)
    if padding:
        parts.append(b"\0" * (padding - 1) + bytes([padding]))
    return b"".join(parts)


def build_rtcp(
    *, packet_type: int, ssrc: int, count: int = 0, body: bytes = b""
) -> bytes:
    """
    One RTCP packet (RFC 3550 6.4): the common header, the sender's SSRC
    and C{body} (zero-padded to a multiple of 4 bytes).

    @raise ValueError: for a packet type outside 192-223 or a count over 31.
    """
    if not _RTCP_LOW <= packet_type <= _RTCP_HIGH:
        raise ValueError(f"packet type {packet_type} is not an RTCP type (192-223)")
    if not 0 <= count <= 31:
        raise ValueError("count is 0-31")
    body = body + b"\0" * (-len(body) % 4)
    length = (RTCP_HEADER_SIZE + len(body)) // 4 - 1
    return _RTCP_FIXED.pack((RTP_VERSION << 6) | count, packet_type, length, ssrc) + body
