# -*- test-case-name: sipedge.test.test_media_rtp -*-
"""
Tests for L{sipedge.media._rtp}: RTP and RTCP header views.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import (
    RtcpHeader,
    RtpHeader,
    RtpParseError,
    build_rtcp,
    build_rtp,
    is_rtcp,
    is_valid_rtcp,
    is_valid_rtp,
)

# RTP payload types a mux'ed port can carry: not 64-95 (RFC 5761 4).
_payload_types = st.integers(0, 127).filter(lambda pt: not 64 <= pt <= 95)


# Random bytes, half of them starting like an RTP/RTCP packet (version 2),
# so that the deeper checks are reached too.
_version_2 = st.builds(
    lambda first, rest: bytes([first]) + rest, st.integers(0x80, 0xBF), st.binary(max_size=80)
)
_datagrams = st.binary(max_size=80) | _version_2


@st.composite
def rtp_fields(draw: st.DrawFn) -> dict[str, object]:
    extension = draw(
        st.none()
        | st.tuples(
            st.integers(0, 0xFFFF),
            st.binary(max_size=32).map(lambda b: b + b"\0" * (-len(b) % 4)),
        )
    )
    return {
        "payload_type": draw(_payload_types),
        "sequence": draw(st.integers(0, 0xFFFF)),
        "timestamp": draw(st.integers(0, 0xFFFFFFFF)),
        "ssrc": draw(st.integers(0, 0xFFFFFFFF)),
        "marker": draw(st.booleans()),
        "csrcs": tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))),
        "extension": extension,
        "payload": draw(st.binary(max_size=200)),
        "padding": draw(st.integers(0, 255)),
    }


class RtpHeaderTests(SynchronousTestCase):
    """L{RtpHeader}, L{is_valid_rtp} and L{build_rtp}."""

    def test_fields(self) -> None:
        """A G.711 packet's fields read back as built."""
        packet = build_rtp(
            payload_type=0, sequence=4660, timestamp=160, ssrc=0xDEADBEEF,
            marker=True, payload=b"\xff" * 160,
        )
        self.assertEqual(len(packet), 172)
        header = RtpHeader.parse(packet)
        self.assertEqual(
            (header.version, header.padding, header.extension, header.csrc_count),
            (2, False, False, 0),
        )
        self.assertEqual(
            (header.marker, header.payload_type, header.sequence, header.timestamp,
             header.ssrc),
            (True, 0, 4660, 160, 0xDEADBEEF),
        )
        self.assertEqual(header.header_size, 12)
        self.assertEqual(bytes(header.payload), b"\xff" * 160)
        self.assertIsNone(header.extension_profile)
        self.assertIsNone(header.extension_data)
        self.assertIn("seq=4660", repr(header))

    def test_view_does_not_copy(self) -> None:
        """The view keeps the packet itself, and the payload is a view of it."""
        packet = build_rtp(payload_type=8, sequence=1, timestamp=2, ssrc=3, payload=b"abc")
        header = RtpHeader.parse(packet)
        self.assertIs(header.packet, packet)
        self.assertIsInstance(header.payload, memoryview)
        self.assertIs(header.payload.obj, packet)

    def test_csrcs_extension_padding(self) -> None:
        """CSRCs, the header extension and padding are found and skipped."""
        packet = build_rtp(
            payload_type=96, sequence=1, timestamp=2, ssrc=3, csrcs=(10, 11),
            extension=(0xBEDE, b"\x10\xaa\0\0"), payload=b"data", padding=4,
        )
        header = RtpHeader.parse(packet)
        self.assertEqual(header.csrcs, (10, 11))
        self.assertEqual(header.extension_profile, 0xBEDE)
        self.assertEqual(bytes(header.extension_data or b""), b"\x10\xaa\0\0")
        self.assertEqual(header.header_size, 12 + 8 + 8)
        self.assertEqual(header.padding_size, 4)
        self.assertEqual(bytes(header.payload), b"data")

    def test_invalid(self) -> None:
        """Each malformation is refused with L{RtpParseError}, naming it."""
        good = build_rtp(payload_type=0, sequence=1, timestamp=2, ssrc=3, payload=b"x")
        cases = {
            "shorter": good[:11],
            "version": bytes([0x40]) + good[1:],
            "RTCP packet type": good[:1] + bytes([200]) + good[2:],
            "CSRCs": bytes([0x83]) + good[1:],
            "extension does not fit": bytes([0x90]) + good[1:],
            "extension's length": bytes([0x90]) + good[1:12] + b"\0\0\0\x09",
            "padding count 0": bytes([0xA0]) + good[1:-1] + b"\0",
            "padding count 200": bytes([0xA0]) + good[1:-1] + bytes([200]),
        }
        for words, packet in cases.items():
            self.assertFalse(is_valid_rtp(packet), words)
            with self.assertRaises(RtpParseError) as caught:
                RtpHeader.parse(packet)
            self.assertIn(words, str(caught.exception))

    def test_build_refuses(self) -> None:
        """L{build_rtp} refuses fields out of range."""
        with self.assertRaises(ValueError):
            build_rtp(payload_type=128, sequence=0, timestamp=0, ssrc=0)
        with self.assertRaises(ValueError):
            build_rtp(payload_type=0, sequence=0, timestamp=0, ssrc=0, csrcs=[0] * 16)
        with self.assertRaises(ValueError):
            build_rtp(payload_type=0, sequence=0, timestamp=0, ssrc=0, padding=256)

    @given(_datagrams)
    def test_never_raises_beyond_parse_error(self, data: bytes) -> None:
        """
        On any bytes, L{RtpHeader.parse} returns a view or raises
        L{RtpParseError}, agrees with L{is_valid_rtp}, and every field of a
        view it returns can be read.
        """
        try:
            header = RtpHeader.parse(data)
        except RtpParseError:
            self.assertFalse(is_valid_rtp(data))
            return
        self.assertTrue(is_valid_rtp(data))
        self.assertFalse(is_rtcp(data))
        for name in ("version", "padding", "extension", "csrc_count", "marker",
                     "payload_type", "sequence", "timestamp", "ssrc", "csrcs",
                     "extension_profile", "extension_data", "header_size",
                     "padding_size", "payload"):
            getattr(header, name)
        self.assertLessEqual(header.header_size + header.padding_size, len(data))

    @given(rtp_fields())
    def test_round_trip(self, fields: dict[str, object]) -> None:
        """Fields built into a packet parse back unchanged."""
        packet = build_rtp(**fields)  # type: ignore[arg-type]
        header = RtpHeader.parse(packet)
        self.assertEqual(header.payload_type, fields["payload_type"])
        self.assertEqual(header.sequence, fields["sequence"])
        self.assertEqual(header.timestamp, fields["timestamp"])
        self.assertEqual(header.ssrc, fields["ssrc"])
        self.assertEqual(header.marker, fields["marker"])
        self.assertEqual(header.csrcs, fields["csrcs"])
        extension = fields["extension"]
        if extension is None:
            self.assertIsNone(header.extension_data)
        else:
            assert isinstance(extension, tuple)
            self.assertEqual(header.extension_profile, extension[0])
            self.assertEqual(bytes(header.extension_data or b""), extension[1])
        self.assertEqual(bytes(header.payload), fields["payload"])
        self.assertEqual(header.padding_size, fields["padding"])
        self.assertFalse(is_rtcp(packet))


class RtcpTests(SynchronousTestCase):
    """L{is_rtcp}, L{RtcpHeader}, L{is_valid_rtcp} and L{build_rtcp}."""

    def test_demux_range(self) -> None:
        """
        RFC 5761 4: the second octet in 192-223 is RTCP; RTP (any payload
        type outside 64-95, marker or not) is not.
        """
        for second in range(256):
            packet = bytes([0x80, second]) + b"\0" * 10
            self.assertEqual(is_rtcp(packet), 192 <= second <= 223, second)
        self.assertFalse(is_rtcp(b"\x80"))
        self.assertFalse(is_rtcp(b""))

    def test_receiver_report(self) -> None:
        """An RR with no report blocks reads back."""
        packet = build_rtcp(packet_type=201, ssrc=0x1234, count=0)
        self.assertEqual(packet, struct.pack("!BBHI", 0x80, 201, 1, 0x1234))
        header = RtcpHeader.parse(packet)
        self.assertEqual(
            (header.version, header.padding, header.count, header.packet_type,
             header.length, header.ssrc),
            (2, False, 0, 201, 1, 0x1234),
        )
        self.assertTrue(is_rtcp(packet))
        self.assertFalse(is_valid_rtp(packet))
        self.assertIn("pt=201", repr(header))

    def test_invalid(self) -> None:
        """Short, wrong version, non-RTCP type and overlong length are refused."""
        good = build_rtcp(packet_type=200, ssrc=1, body=b"\0" * 20)
        for packet in (good[:7], b"\x40" + good[1:], good[:1] + b"\x60" + good[2:],
                       good[:2] + b"\x00\x09" + good[4:]):
            self.assertFalse(is_valid_rtcp(packet))
            self.assertRaises(RtpParseError, RtcpHeader.parse, packet)
        self.assertTrue(is_valid_rtcp(good))

    def test_build_refuses(self) -> None:
        """L{build_rtcp} refuses non-RTCP types and counts over 31."""
        self.assertRaises(ValueError, build_rtcp, packet_type=96, ssrc=0)
        self.assertRaises(ValueError, build_rtcp, packet_type=200, ssrc=0, count=32)

    @given(_datagrams)
    def test_never_raises_beyond_parse_error(self, data: bytes) -> None:
        """L{RtcpHeader.parse} returns or raises L{RtpParseError}, nothing else."""
        try:
            header = RtcpHeader.parse(data)
        except RtpParseError:
            self.assertFalse(is_valid_rtcp(data))
            return
        self.assertTrue(is_rtcp(data))
        self.assertLessEqual(4 * (header.length + 1), len(data))
        header.ssrc, header.count, header.padding, header.version  # noqa: B018
