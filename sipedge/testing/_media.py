# -*- test-case-name: sipedge.test.test_media -*-
"""
Media fixtures: a deterministic C{random(n)} for relays and SRTP, RTP
packets, a party's media socket that records what it receives, and relay
limits with nothing tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import DatagramProtocol

from sipedge.media import MediaLimits, build_rtp

__all__ = [
    "A_HOST",
    "B_HOST",
    "MEDIA_LIMITS",
    "RELAY_HOST",
    "MediaEndpoint",
    "counting_random",
    "rtp_packet",
]

#: A relay's public address, and the two parties of a call (RFC 5737 ranges).
RELAY_HOST = "203.0.113.1"
A_HOST = "192.0.2.10"
B_HOST = "198.51.100.20"


def counting_random(start: int = 0) -> Callable[[int], bytes]:
    """A deterministic C{random(n)}: successive bytes of a counter."""
    state = [start]

    def random(n: int) -> bytes:
        out = bytes((state[0] + i) % 256 for i in range(n))
        state[0] += n
        return out

    return random


#: Media limits with nothing tuned but the timers, for relay tests.
MEDIA_LIMITS = MediaLimits(
    max_packet_rate=0,
    max_bandwidth=0,
    idle_timeout=30,
    setup_timeout=120,
    max_duration=3600,
    nat_learn_packets=3,
    nat_learn_seconds=5,
)


def rtp_packet(sequence: int, size: int = 172, ssrc: int = 0xA11CE) -> bytes:
    """A G.711-sized RTP packet (12-byte header, 160 bytes payload)."""
    return build_rtp(
        payload_type=0, sequence=sequence, timestamp=160 * sequence, ssrc=ssrc,
        payload=bytes([sequence % 256]) * (size - 12),
    )


class MediaEndpoint(DatagramProtocol):
    """A party's RTP or RTCP socket: records what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.socket: Any = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))

    @property
    def packets(self) -> list[bytes]:
        return [data for data, _ in self.received]
