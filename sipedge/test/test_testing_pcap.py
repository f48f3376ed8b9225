# -*- test-case-name: sipedge.test.test_testing_pcap -*-
"""
Tests for L{sipedge.testing.read_pcap}, the pcap reader of the media
end-to-end tests: UDP over IPv4 and over IPv6 (the dual-stack tests
capture both on C{lo}), on Ethernet and Linux cooked link types.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import read_pcap

_ETHERNET, _SLL = 1, 113


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _ip(src: str, dst: str, udp: bytes) -> tuple[bytes, bytes]:
    """(EtherType, IP packet) carrying C{udp}."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 6:
        header = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + a.packed + b.packed
        return b"\x86\xdd", header + udp
    header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0) + a.packed + b.packed
    return b"\x08\x00", header + udp


def _frame(link: int, ether_type: bytes, packet: bytes) -> bytes:
    if link == _ETHERNET:
        return b"\x00" * 12 + ether_type + packet
    return b"\x00" * 14 + ether_type + packet  # Linux cooked (SLL)


def _pcap(link: int, frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, link)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1000 + i, 0, len(frame), len(frame)) + frame
    return out


_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
_datagrams = st.lists(
    st.tuples(
        _hosts, st.integers(1, 65535), st.integers(1, 65535), st.binary(max_size=200)
    ),
    max_size=5,
)


class ReadPcapTests(SynchronousTestCase):
    """What read_pcap finds in a capture."""

    @given(datagrams=_datagrams, link=st.sampled_from([_ETHERNET, _SLL]))
    def test_ipv4_and_ipv6(
        self, datagrams: list[tuple[str, int, int, bytes]], link: int
    ) -> None:
        """
        Every UDP datagram comes back with its addresses (IPv6 in its
        compressed form), ports and payload, in order, whatever the family.
        """
        frames = []
        expected = []
        for src, sport, dport, payload in datagrams:
            dst = "::1" if ":" in src else "127.0.0.1"
            frames.append(_frame(link, *_ip(src, dst, _udp(sport, dport, payload))))
            expected.append(((src, sport), (dst, dport), payload))
        path = Path(self.mktemp())
        path.write_bytes(_pcap(link, frames))
        found = [(d.src, d.dst, d.payload) for d in read_pcap(path)]
        self.assertEqual(found, expected)

    def test_not_udp(self) -> None:
        """An IPv6 packet whose next header is not UDP (TCP, 6) is skipped."""
        ether_type, packet = _ip("::1", "::1", _udp(5060, 5060, b"x"))
        tcp = packet[:6] + b"\x06" + packet[7:]
        path = Path(self.mktemp())
        path.write_bytes(_pcap(_ETHERNET, [_frame(_ETHERNET, ether_type, tcp)]))
        self.assertEqual(read_pcap(path), [])
