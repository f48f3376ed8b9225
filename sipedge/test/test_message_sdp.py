# -*- test-case-name: sipedge.test.test_message_sdp -*-
"""
Tests for L{sipedge.message._sdp} and the modules it is built from
(C{_sdp_grammar}, C{_sdp_lines}, C{_sdp_crypto}, C{_sdp_section}).
"""

from __future__ import annotations

import string
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import (
    Attribute,
    Connection,
    Crypto,
    Direction,
    Fmtp,
    KeyParam,
    Line,
    Media,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SessionDescription,
    parse_sdp,
)

# --- corpus: SDP bodies copied from the torture-test messages ----------------

#: RFC 4475 3.1.1.13 (sdp01.dat) and most other RFC 4475 INVITEs.
RFC4475_SDP01 = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)

#: RFC 4475 3.1.2.16 (mismatch02.dat): no s= and no t= line.
RFC4475_MISMATCH02 = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
    b"c=IN IP4 192.0.2.1\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)

#: RFC 4475 3.3.8 (multi01.dat, Content-Length 154): an empty line at the end.
RFC4475_MULTI01 = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.25\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.25\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
    b"\r\n"
)

#: RFC 4475 3.1.2.5 (ltgtruri.dat): a non-zero start time.
RFC4475_LTGTRURI = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.5\r\n"
    b"t=3149328700 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)

#: RFC 4475 3.1.2.6 (wsinv.dat): o= and c= addresses differ.
RFC4475_WSINV = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)

#: RFC 4475 3.1.2.11 (inv2543.dat): one media description.
RFC4475_INV2543 = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0\r\n"
)

#: RFC 5118 4.6 (ipv6-in-sdp, Content-Length corrected).
RFC5118_IPV6_IN_SDP = (
    b"v=0\r\n"
    b"o=assistant 971731711378798081 0 IN IP6 2001:db8::20\r\n"
    b"s=Live video feed for today's meeting\r\n"
    b"c=IN IP6 2001:db8::20\r\n"
    b"t=3338481189 3370017201\r\n"
    b"m=audio 6000 RTP/AVP 2\r\n"
    b"a=rtpmap:2 G726-32/8000\r\n"
    b"m=video 6024 RTP/AVP 107\r\n"
    b"a=rtpmap:107 H263-1998/90000\r\n"
)

#: RFC 5118 4.8 (mult-ip-in-sdp): media-level c= of both families, empty s=.
RFC5118_MULT_IP_IN_SDP = (
    b"v=0\r\n"
    b"o=bob 280744730 28977631 IN IP4 host.example.com\r\n"
    b"s=\r\n"
    b"t=0 0\r\n"
    b"m=audio 22334 RTP/AVP 0\r\n"
    b"c=IN IP4 192.0.2.1\r\n"
    b"m=video 6024 RTP/AVP 107\r\n"
    b"c=IN IP6 2001:db8::1\r\n"
    b"a=rtpmap:107 H263-1998/90000\r\n"
)

#: RFC 5118 4.9 (ipv4-mapped-ipv6).
RFC5118_IPV4_MAPPED = (
    b"v=0\r\n"
    b"o=assistant 971731711378798081 0 IN IP6 ::ffff:192.0.2.2\r\n"
    b"s=Call me soon, please!\r\n"
    b"c=IN IP6 ::ffff:192.0.2.2\r\n"
    b"t=3338481189 3370017201\r\n"
    b"m=audio 6000 RTP/AVP 2\r\n"
    b"a=rtpmap:2 G726-32/8000\r\n"
    b"m=video 6024 RTP/AVP 107\r\n"
    b"a=rtpmap:107 H263-1998/90000\r\n"
)

#: The start of RFC 4475 3.1.2.10 (dblreq.dat)'s body: not SDP at all.
RFC4475_DBLREQ_START = b"\r\nINVITE sip:joe@example.com SIP/2.0\r\nt: sip:joe@example.com\r\n"

CORPUS = [
    RFC4475_SDP01,
    RFC4475_MISMATCH02,
    RFC4475_MULTI01,
    RFC4475_LTGTRURI,
    RFC4475_WSINV,
    RFC4475_INV2543,
    RFC5118_IPV6_IN_SDP,
    RFC5118_MULT_IP_IN_SDP,
    RFC5118_IPV4_MAPPED,
]

# --- real-world style samples (keys are random, addresses documentation) -----

KEY_80 = "OCNQ3zDWiZnS2qTBFT6ryqEtgOU9Jp7rvJFEqVjO"
KEY_32 = "eedobiDK+WUF18hnHJEeflJZDbVq4waC2P7h59lm"
KEY_GCM256 = "L4k/uLeEHTFaAUiadRxoxjPlXEWXna1QBfzGhWAtBzbeS8h8+M7Xem93KF0="
KEY_GCM128 = "ZZFKGGp9dx1B5vNOEUkjdTSm0rMr03aiG5Yehw=="

#: A baresip-style SDES offer.
BARESIP_OFFER = (
    b"v=0\r\n"
    b"o=- 1826589926 3372034546 IN IP4 192.0.2.20\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.20\r\n"
    b"t=0 0\r\n"
    b"a=tool:baresip 3.10.1\r\n"
    b"m=audio 10826 RTP/SAVP 96 9 0 8 101\r\n"
    b"b=AS:128\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
    b"a=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
    b"a=label:1\r\n"
    b"a=rtcp-rsize\r\n"
    b"a=ssrc:1213234412 cname:3f6a0c51-8e3c-4b8e-a0f7-6d2b1c9e4a10\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_80.encode() + b"\r\n"
    b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + KEY_32.encode() + b"\r\n"
    b"a=crypto:3 AEAD_AES_256_GCM inline:" + KEY_GCM256.encode() + b"\r\n"
    b"a=crypto:4 AEAD_AES_128_GCM inline:" + KEY_GCM128.encode() + b"\r\n"
    b"a=ptime:20\r\n"
)

#: An RFC 4568 style offer: lifetimes, MKIs, two keys, session parameters.
SDES_MKI_OFFER = (
    b"v=0\r\n"
    b"o=sam 2890844526 2890842807 IN IP4 192.0.2.5\r\n"
    b"s=SRTP Discussion\r\n"
    b"c=IN IP4 192.0.2.12\r\n"
    b"t=2873397496 2873404696\r\n"
    b"m=audio 49170 RTP/SAVP 0\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_80.encode() + b"|2^20|1:4"
    b";inline:" + KEY_32.encode() + b"|2^20|2:4 FEC_ORDER=FEC_SRTP\r\n"
    b"a=crypto:2 F8_128_HMAC_SHA1_80 inline:" + KEY_32.encode() + b"|1048576\r\n"
)

#: A WebRTC-style offer: ICE candidates, rtcp-mux, DTLS-SRTP, BUNDLE.
WEBRTC_OFFER = (
    b"v=0\r\n"
    b"o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"t=0 0\r\n"
    b"a=group:BUNDLE 0\r\n"
    b"a=extmap-allow-mixed\r\n"
    b"a=msid-semantic: WMS stream0\r\n"
    b"m=audio 54321 UDP/TLS/RTP/SAVPF 111 63 9 0 8 110 126\r\n"
    b"c=IN IP4 198.51.100.7\r\n"
    b"a=rtcp:9 IN IP4 0.0.0.0\r\n"
    b"a=candidate:1467250027 1 udp 2122260223 192.0.2.33 54321 typ host generation 0\r\n"
    b"a=candidate:435653019 1 udp 1686052607 198.51.100.7 54321 typ srflx"
    b" raddr 192.0.2.33 rport 54321 generation 0\r\n"
    b"a=ice-ufrag:Xk4b\r\n"
    b"a=ice-pwd:mV1xXbZ9pT3kq7T0NfQ8yS2w\r\n"
    b"a=ice-options:trickle\r\n"
    b"a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:"
    b"19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF\r\n"
    b"a=setup:actpass\r\n"
    b"a=mid:0\r\n"
    b"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    b"a=sendrecv\r\n"
    b"a=msid:stream0 track0\r\n"
    b"a=rtcp-mux\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
    b"a=rtcp-fb:111 transport-cc\r\n"
    b"a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    b"a=rtpmap:63 red/48000/2\r\n"
    b"a=fmtp:63 111/111\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:110 telephone-event/48000\r\n"
    b"a=rtpmap:126 telephone-event/8000\r\n"
    b"a=ssrc:2717961178 cname:b2Zl7qXyQvU5cCzC\r\n"
)

#: A trickle-ICE offer: the 0.0.0.0 / port 9 placeholders (RFC 8840 4.1.1).
TRICKLE_OFFER = (
    b"v=0\r\n"
    b"o=- 1 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"t=0 0\r\n"
    b"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    b"c=IN IP4 0.0.0.0\r\n"
    b"a=ice-ufrag:Xk4b\r\n"
    b"a=ice-pwd:mV1xXbZ9pT3kq7T0NfQ8yS2w\r\n"
    b"a=rtcp-mux\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
)

#: An IPv6 phone putting the call on hold, with an RFC 3605 a=rtcp address.
IPV6_HOLD_OFFER = (
    b"v=0\r\n"
    b"o=- 20518 1 IN IP6 2001:db8:85a3::8a2e:370:7334\r\n"
    b"s=SDP Data\r\n"
    b"c=IN IP6 2001:db8:85a3::8a2e:370:7334\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=rtcp:53020 IN IP6 2001:db8:85a3::8a2e:370:7335\r\n"
    b"a=ptime:20\r\n"
    b"a=sendonly\r\n"
)

#: An RFC 2543 style hold (c=0.0.0.0), bare LF endings, trailing spaces, no t=,
#: no final line ending.
SLOPPY_HOLD_OFFER = (
    b"v=0 \n"
    b"o=Sip Phone 100 200 IN IP4 192.0.2.40\n"
    b"s=session \n"
    b"c=IN IP4 0.0.0.0 \n"
    b"m=audio 8000 RTP/AVP 0 8\t\n"
    b"a=rtpmap:0 PCMU/8000 \n"
    b"a=sendrecv "
)

#: A typical 300-byte audio offer (what the timing in the report measures).
TYPICAL_OFFER = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 9 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=maxptime:150\r\n"
    b"a=silenceSupp:off - - - -\r\n"
    b"a=sendrecv\r\n"
)

SAMPLES = [
    BARESIP_OFFER,
    SDES_MKI_OFFER,
    WEBRTC_OFFER,
    TRICKLE_OFFER,
    IPV6_HOLD_OFFER,
    SLOPPY_HOLD_OFFER,
    TYPICAL_OFFER,
]


def exercise(sd: SessionDescription) -> None:
    """
    Call every typed view of C{sd}; they may raise only
    L{MessageParseError}.
    """

    def attempt(view: Callable[..., object], *args: object) -> None:
        try:
            view(*args)
        except MessageParseError:
            pass

    for name in ("origin", "connection", "direction", "attributes", "session_name"):
        attempt(getattr, sd, name)
    for i, md in enumerate(sd.media):
        for name in MEDIA_VIEWS:
            attempt(getattr, md, name)
        attempt(sd.media_connection, i)
        attempt(sd.media_direction, i)
        attempt(sd.is_on_hold, i)
        attempt(_decode_keys, md)


MEDIA_VIEWS = (
    "media",
    "connections",
    "rtpmaps",
    "fmtps",
    "rtcp",
    "rtcp_mux",
    "crypto",
    "ptime",
    "attributes",
)


def _decode_keys(md: MediaDescription) -> None:
    for crypto in md.crypto:
        for param in crypto.key_params:
            param.key_salt_bytes()


# --- parsing and serializing --------------------------------------------------


class ParseSdpTests(SynchronousTestCase):
    def test_corpus_round_trip(self) -> None:
        """
        If an SDP body from the RFC 4475 and RFC 5118 torture messages is
        parsed, L{SessionDescription.to_bytes} gives the same bytes back.
        """
        for body in CORPUS + SAMPLES:
            sd = parse_sdp(body)
            self.assertEqual(sd.to_bytes(), body)
            self.assertEqual(bytes(sd), body)
            self.assertEqual(parse_sdp(sd.to_bytes()), sd)

    def test_structure(self) -> None:
        """
        L{parse_sdp} puts the lines before the first C{m=} at session level
        and every C{m=} with its following lines in a L{MediaDescription}.
        """
        sd = parse_sdp(RFC4475_SDP01)
        self.assertEqual([line.type for line in sd.lines], ["v", "o", "s", "c", "t"])
        self.assertEqual(len(sd.media), 2)
        self.assertEqual(sd.media[0].lines, (Line("m", "audio 49217 RTP/AVP 0 12"),))
        self.assertEqual(
            sd.media[1].lines,
            (Line("m", "video 3227 RTP/AVP 31"), Line("a", "rtpmap:31 LPC")),
        )
        self.assertEqual(sd.trailer, "")

    def test_session_fields(self) -> None:
        """If the corpus SDP is parsed, the typed session-level views read it."""
        sd = parse_sdp(RFC4475_SDP01)
        self.assertEqual(sd.origin, Origin("mhandley", "29739", 7272939, "IN", "IP4", "192.0.2.5"))
        self.assertEqual(sd.session_name, "-")
        self.assertEqual(sd.connection, Connection("IN", "IP4", "192.0.2.5"))
        self.assertEqual(sd.media[0].media, Media("audio", 49217, "RTP/AVP", ("0", "12")))
        # "a=rtpmap:31 LPC" has no clock rate: kept, but the typed view refuses it
        self.assertEqual(sd.media[1].attribute("rtpmap"), Attribute("rtpmap", "31 LPC"))
        self.assertRaises(MessageParseError, getattr, sd.media[1], "rtpmaps")

    def test_missing_s_and_t(self) -> None:
        """
        If C{s=} and C{t=} are missing (RFC 4475 mismatch02), L{parse_sdp}
        accepts the body anyway.
        """
        sd = parse_sdp(RFC4475_MISMATCH02)
        self.assertIsNone(sd.session_name)
        self.assertEqual(len(sd.media), 2)

    def test_trailing_empty_line(self) -> None:
        """
        If the body ends with an empty line (RFC 4475 multi01), it is kept in
        C{trailer} and written back.
        """
        sd = parse_sdp(RFC4475_MULTI01)
        self.assertEqual(sd.trailer, "\r\n")
        self.assertEqual(sd.media[-1].lines[-1], Line("a", "rtpmap:31 LPC"))
        self.assertEqual(sd.to_bytes(), RFC4475_MULTI01)

    def test_ipv6_corpus(self) -> None:
        """
        If the RFC 5118 4.6, 4.8 and 4.9 SDP bodies are parsed, their
        unbracketed IPv6 addresses are accepted.
        """
        sd = parse_sdp(RFC5118_IPV6_IN_SDP)
        self.assertEqual(sd.connection, Connection("IN", "IP6", "2001:db8::20"))
        sd = parse_sdp(RFC5118_IPV4_MAPPED)
        self.assertEqual(sd.media_connection(1), Connection("IN", "IP6", "::ffff:192.0.2.2"))
        sd = parse_sdp(RFC5118_MULT_IP_IN_SDP)
        self.assertIsNone(sd.connection)
        self.assertEqual(sd.session_name, "")
        self.assertEqual(sd.media_connection(0), Connection("IN", "IP4", "192.0.2.1"))
        self.assertEqual(sd.media_connection(1), Connection("IN", "IP6", "2001:db8::1"))

    def test_bare_lf_and_sloppiness(self) -> None:
        """
        If lines end with a bare LF (RFC 8866 5), have trailing whitespace,
        there is no C{t=} and the last line has no line ending, L{parse_sdp}
        accepts it and writes it back byte for byte.
        """
        sd = parse_sdp(SLOPPY_HOLD_OFFER)
        self.assertEqual(sd.to_bytes(), SLOPPY_HOLD_OFFER)
        self.assertEqual(sd.lines[0], Line("v", "0 ", "\n"))
        self.assertEqual(sd.media[0].lines[-1], Line("a", "sendrecv ", ""))
        self.assertEqual(sd.origin, Origin("Sip Phone", "100", 200, "IN", "IP4", "192.0.2.40"))
        self.assertEqual(sd.media[0].media, Media("audio", 8000, "RTP/AVP", ("0", "8")))
        self.assertEqual(sd.media[0].direction, Direction.SENDRECV)
        self.assertEqual(sd.media[0].rtpmaps, (RtpMap(0, "PCMU", 8000),))

    def test_mixed_line_endings(self) -> None:
        """If CRLF and LF are mixed, each line keeps its own ending."""
        body = b"v=0\r\ns=x\nt=0 0\r\nm=audio 1 RTP/AVP 0\na=x\r\n\n"
        sd = parse_sdp(body)
        self.assertEqual([line.eol for line in sd.lines], ["\r\n", "\n", "\r\n"])
        self.assertEqual(sd.trailer, "\n")
        self.assertEqual(sd.to_bytes(), body)

    def test_unknown_lines_kept(self) -> None:
        """
        If a line has an unknown type letter or an unknown attribute, it is
        kept in place and written back untouched.
        """
        body = b"v=0\r\nx=whatever \r\nm=audio 1 RTP/AVP 0\r\ny=1\r\na=foo:bar:baz\r\n"
        sd = parse_sdp(body)
        self.assertEqual(sd.lines[1], Line("x", "whatever "))
        self.assertEqual(sd.media[0].lines[1], Line("y", "1"))
        self.assertEqual(sd.media[0].attributes, (Attribute("foo", "bar:baz"),))
        self.assertEqual(sd.to_bytes(), body)

    def test_non_utf8(self) -> None:
        """If a text field is not UTF-8, its octets still round-trip."""
        body = b"v=0\r\ns=caf\xe9 \xff\xfe\r\ni=\xc3\xa9t\xc3\xa9\r\n"
        sd = parse_sdp(body)
        self.assertEqual(sd.to_bytes(), body)
        self.assertEqual(sd.lines[2].value, "été")

    def assertParseError(self, body: bytes, fragment: str) -> MessageParseError:
        e = self.assertRaises(MessageParseError, parse_sdp, body)
        self.assertIn(fragment, e.reason)
        self.assertEqual(e.status_hint, 400)
        return e

    def test_empty(self) -> None:
        """If the body is empty or only empty lines, L{parse_sdp} raises."""
        self.assertParseError(b"", "empty SDP")
        self.assertParseError(b"\r\n\r\n", "empty SDP")

    def test_v_first(self) -> None:
        """If the first line is not C{v=0}, L{parse_sdp} raises."""
        self.assertParseError(b"o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", "v=0")
        self.assertParseError(b"v=1\r\n", "version")
        self.assertParseError(b"v=0\r\ns=-\r\nv=0\r\n", "more than one v=")

    def test_not_sdp(self) -> None:
        """
        If the body is not SDP (RFC 4475 dblreq: a SIP request after an
        empty line), L{parse_sdp} raises.
        """
        self.assertParseError(RFC4475_DBLREQ_START, "line 1 is empty")
        self.assertParseError(b"INVITE sip:a@b SIP/2.0\r\n", "line 1 is not <type>=<value>")

    def test_malformed_lines(self) -> None:
        """
        If a line has no C{=}, a type that is not one lower-case letter,
        whitespace before C{=}, or is empty in the middle, L{parse_sdp}
        raises with the line number.
        """
        for line, fragment in [
            (b"novalue", "line 2 is not"),
            (b"m =video 3227 RTP/AVP 31", "line 2 is not"),
            (b"A=x", "line 2 is not"),
            (b"ab=x", "line 2 is not"),
            (b" a=x", "line 2 is not"),
            (b"1=x", "line 2 is not"),
            (b"", "line 2 is empty"),
        ]:
            self.assertParseError(b"v=0\r\n" + line + b"\r\ns=-\r\n", fragment)

    def test_control_characters(self) -> None:
        """If the body has a NUL or a CR not before LF, L{parse_sdp} raises."""
        self.assertParseError(b"v=0\r\ns=a\x00b\r\n", "NUL")
        self.assertParseError(b"v=0\r\ns=a\rb\r\n", "CR")
        self.assertParseError(b"v=0\r\ns=ab\r\r\n", "CR")
        self.assertParseError(b"v=0\r", "CR")

    def test_bad_media_line(self) -> None:
        """If an C{m=} line is malformed or its port is over 65535, it raises."""
        for m, fragment in [
            (b"m=audio 65536 RTP/AVP 0", "out of range"),
            (b"m=audio -1 RTP/AVP 0", "port"),
            (b"m=audio 123456 RTP/AVP 0", "port"),
            (b"m=audio x RTP/AVP 0", "port"),
            (b"m=audio 5000/0 RTP/AVP 0", "number of ports"),
            (b"m=audio 5000", "m= needs"),
            (b"m=audio 5000 RTP//AVP 0", "proto"),
        ]:
            e = self.assertParseError(b"v=0\r\ns=-\r\n" + m + b"\r\n", fragment)
            self.assertIn("line 3", e.reason)

    def test_bad_connection_line(self) -> None:
        """If a C{c=} line (session or media level) is malformed, it raises."""
        for c, fragment in [
            (b"c=IN IP4 192.0.2.256", "IP4"),
            (b"c=IN IP4 192.0.2", "IP4"),
            (b"c=IN IP4 2001:db8::1", "IP4"),
            (b"c=IN IP6 [2001:db8::1]", "bracketed"),
            (b"c=IN IP6 2001:db8:::1", "IP6"),
            (b"c=IN IP6 fe80::1%eth0", "IP6"),
            (b"c=IN IP6 192.0.2.1", "IP6"),
            (b"c=IN IP5 192.0.2.1", "address type"),
            (b"c=IN IP4", "3 fields"),
            (b"c=IN IP4 224.2.1.1/x", "ttl"),
            (b"c=IN IP4 -bad-.example.com", "IP4"),
        ]:
            self.assertParseError(b"v=0\r\n" + c + b"\r\n", fragment)
            self.assertParseError(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n" + c + b"\r\n", fragment)

    def test_bad_origin_line(self) -> None:
        """If the C{o=} line is malformed, L{parse_sdp} raises."""
        self.assertParseError(b"v=0\r\no=- 1 IN IP4 192.0.2.1\r\n", "6 fields")
        self.assertParseError(b"v=0\r\no=- 1 x IN IP4 192.0.2.1\r\n", "sess-version")

    def test_attributes_parsed_lazily(self) -> None:
        """
        If an attribute the typed views know is malformed, L{parse_sdp}
        still accepts the body; the view raises L{MessageParseError}.
        """
        for bad in [
            b"a=rtcp:x\r\na=crypto:1\r\na=ptime:?\r\n",
            b"a=rtcp\r\na=crypto\r\na=ptime\r\n",
        ]:
            md = parse_sdp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n" + bad).media[0]
            self.assertRaises(MessageParseError, getattr, md, "rtcp")
            self.assertRaises(MessageParseError, getattr, md, "crypto")
            self.assertRaises(MessageParseError, getattr, md, "ptime")
        md = parse_sdp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap\r\na=fmtp\r\n").media[0]
        self.assertRaises(MessageParseError, getattr, md, "rtpmaps")
        self.assertRaises(MessageParseError, getattr, md, "fmtps")

    def test_long_input_linear(self) -> None:
        """
        If the body has many lines or a very long line, L{parse_sdp} still
        handles it (nothing quadratic, no int conversion limits).
        """
        many = b"v=0\r\n" + b"a=x\r\n" * 20000
        self.assertEqual(parse_sdp(many).to_bytes(), many)
        long = b"v=0\r\no=- 1 " + b"9" * 10000 + b" IN IP4 192.0.2.1\r\n"
        self.assertRaises(MessageParseError, parse_sdp, long)
        host = b"v=0\r\nc=IN IP4 " + b"a." * 20000 + b"-\r\n"
        self.assertRaises(MessageParseError, parse_sdp, host)


class LineTests(SynchronousTestCase):
    def test_text(self) -> None:
        """L{Line.text} is the line without its ending."""
        self.assertEqual(Line("a", "rtcp-mux").text, "a=rtcp-mux")

    def test_validation(self) -> None:
        """
        If a L{Line} is made with a bad type, a CR, LF or NUL in its value
        or a bad line ending, it raises C{ValueError}.
        """
        self.assertRaises(ValueError, Line, "A", "x")
        self.assertRaises(ValueError, Line, "ab", "x")
        self.assertRaises(ValueError, Line, "a", "x\r\na=y")
        self.assertRaises(ValueError, Line, "a", "x\0")
        self.assertRaises(ValueError, Line, "a", "x", "\r")


# --- typed views ------------------------------------------------------------


class OriginTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """If an C{o=} value is parsed, L{Origin} has its six fields."""
        origin = Origin.parse("- 4611731400430051336 2 IN IP4 127.0.0.1")
        self.assertEqual(origin.username, "-")
        self.assertEqual(origin.sess_id, "4611731400430051336")
        self.assertEqual(origin.sess_version, 2)
        self.assertEqual(
            (origin.nettype, origin.addrtype, origin.address), ("IN", "IP4", "127.0.0.1")
        )
        self.assertEqual(origin.to_value(), "- 4611731400430051336 2 IN IP4 127.0.0.1")

    def test_next_version(self) -> None:
        """L{Origin.next_version} increments sess-version only (RFC 3264 8)."""
        origin = Origin.parse("alice 2890844526 2890844526 IN IP4 192.0.2.1")
        self.assertEqual(
            origin.next_version(),
            Origin("alice", "2890844526", 2890844527, "IN", "IP4", "192.0.2.1"),
        )

    def test_errors(self) -> None:
        """If the C{o=} value is short or sess-version not a number, it raises."""
        self.assertRaises(MessageParseError, Origin.parse, "")
        self.assertRaises(MessageParseError, Origin.parse, "- 1 2 IN IP4")
        self.assertRaises(MessageParseError, Origin.parse, "- 1 2.0 IN IP4 192.0.2.1")
        self.assertRaises(MessageParseError, Origin.parse, "- 1 ٣ IN IP4 192.0.2.1")


class ConnectionTests(SynchronousTestCase):
    def test_ip4(self) -> None:
        """If a C{c=IN IP4} value is parsed, L{Connection} holds the address."""
        self.assertEqual(Connection.parse("IN IP4 192.0.2.5"), Connection("IN", "IP4", "192.0.2.5"))

    def test_ip6_unbracketed(self) -> None:
        """
        If a C{c=IN IP6} value has an unbracketed IPv6 literal (RFC 5118
        4.6), L{Connection.parse} accepts it.
        """
        for address in ["2001:db8::10", "::ffff:192.0.2.2", "::", "FF1E:03AD::7F2E:172A:1E24"]:
            self.assertEqual(Connection.parse(f"IN IP6 {address}").address, address)

    def test_hostnames(self) -> None:
        """If the address is a host name, either address type accepts it."""
        for value in ["IN IP4 host.example.com", "IN IP6 host.example.com.", "IN IP4 localhost"]:
            self.assertEqual(Connection.parse(value).to_value(), value)

    def test_multicast(self) -> None:
        """
        If the address has C{/ttl/count} (RFC 8866 5.7), it is kept raw in
        C{ttl_count}.
        """
        conn = Connection.parse("IN IP4 233.252.0.1/127/3")
        self.assertEqual(conn, Connection("IN", "IP4", "233.252.0.1", "127/3"))
        self.assertEqual(conn.to_value(), "IN IP4 233.252.0.1/127/3")
        self.assertEqual(Connection.parse("IN IP6 ff15::101/3").ttl_count, "3")

    def test_other_nettype(self) -> None:
        """
        If the network type is not C{IN}, the line is kept as written and
        the address is not checked.
        """
        conn = Connection.parse("PSTN E164 +15555550100")
        self.assertEqual(conn, Connection("PSTN", "E164", "+15555550100"))
        self.assertFalse(conn.is_unspecified)

    def test_for_address(self) -> None:
        """
        L{Connection.for_address} picks IP4 or IP6 from the address and
        raises C{ValueError} on a bad one.
        """
        self.assertEqual(Connection.for_address("203.0.113.5").to_value(), "IN IP4 203.0.113.5")
        self.assertEqual(Connection.for_address("2001:db8::5").to_value(), "IN IP6 2001:db8::5")
        self.assertRaises(ValueError, Connection.for_address, "[2001:db8::5]")
        self.assertRaises(ValueError, Connection.for_address, "1.2.3.4 5")

    def test_is_unspecified(self) -> None:
        """L{Connection.is_unspecified} is true for 0.0.0.0 and ::."""
        self.assertTrue(Connection.parse("IN IP4 0.0.0.0").is_unspecified)
        self.assertTrue(Connection.parse("IN IP6 ::").is_unspecified)
        self.assertFalse(Connection.parse("IN IP4 192.0.2.1").is_unspecified)
        self.assertFalse(Connection.parse("IN IP6 host.example.com").is_unspecified)


class MediaTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """If an C{m=} value is parsed, L{Media} has its fields."""
        self.assertEqual(
            Media.parse("video 49170/2 RTP/AVP 31 32"),
            Media("video", 49170, "RTP/AVP", ("31", "32"), 2),
        )
        self.assertEqual(
            Media.parse("application 9 UDP/DTLS/SCTP webrtc-datachannel").formats,
            ("webrtc-datachannel",),
        )

    def test_protos(self) -> None:
        """The usual RTP profiles are accepted as C{proto}."""
        for proto in ["RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "udp"]:
            self.assertEqual(Media.parse(f"audio 0 {proto} 0").proto, proto)

    def test_port_range(self) -> None:
        """Ports 0 and 65535 are accepted, 65536 is not."""
        self.assertEqual(Media.parse("audio 0 RTP/AVP 0").port, 0)
        self.assertEqual(Media.parse("audio 65535 RTP/AVP 0").port, 65535)
        self.assertRaises(MessageParseError, Media.parse, "audio 65536 RTP/AVP 0")
        self.assertRaises(MessageParseError, Media.parse, "audio ٣ RTP/AVP 0")

    def test_lists_become_tuples(self) -> None:
        """If sequences are given as lists, the values hold (hashable) tuples."""
        self.assertEqual(Media("audio", 1, "RTP/AVP", ["0"]), Media("audio", 1, "RTP/AVP", ("0",)))
        md = MediaDescription([Line("m", "audio 1 RTP/AVP 0")])
        self.assertEqual(SessionDescription([Line("v", "0")], [md]).media, (md,))
        self.assertEqual(hash(md), hash(MediaDescription((Line("m", "audio 1 RTP/AVP 0"),))))

    def test_t38(self) -> None:
        """A T.38 fax stream (C{image}, C{udptl}) is accepted."""
        self.assertEqual(
            Media.parse("image 5004 udptl t38"), Media("image", 5004, "udptl", ("t38",))
        )

    def test_no_formats(self) -> None:
        """If there is no format (sent by some), the list is empty."""
        self.assertEqual(Media.parse("audio 0 RTP/AVP").formats, ())

    def test_to_value(self) -> None:
        """L{Media.to_value} writes the canonical value."""
        media = Media("audio", 5004, "RTP/SAVP", ("0", "101"), 2)
        self.assertEqual(media.to_value(), "audio 5004/2 RTP/SAVP 0 101")


class AttributeTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """
        If an C{a=} value is parsed, the name is before the first colon and
        the value after it; a property attribute has the value C{None}.
        """
        self.assertEqual(Attribute.parse("rtcp-mux"), Attribute("rtcp-mux"))
        self.assertEqual(Attribute.parse("fmtp:96 a=b:c"), Attribute("fmtp", "96 a=b:c"))
        self.assertEqual(Attribute.parse("x:"), Attribute("x", ""))
        self.assertEqual(Attribute.parse("sendrecv "), Attribute("sendrecv"))
        self.assertEqual(Attribute.parse(""), Attribute(""))

    def test_to_value(self) -> None:
        """L{Attribute.to_value} writes C{name} or C{name:value}."""
        self.assertEqual(Attribute("rtcp-mux").to_value(), "rtcp-mux")
        self.assertEqual(Attribute("ptime", "20").to_value(), "ptime:20")


class RtpMapTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """If an rtpmap value is parsed, L{RtpMap} has its fields (RFC 8866 6.6)."""
        self.assertEqual(RtpMap.parse("96 opus/48000/2"), RtpMap(96, "opus", 48000, "2"))
        self.assertEqual(RtpMap.parse("0 PCMU/8000"), RtpMap(0, "PCMU", 8000))
        self.assertEqual(RtpMap(96, "opus", 48000, "2").to_value(), "96 opus/48000/2")
        self.assertEqual(RtpMap(0, "PCMU", 8000).to_attribute(), Attribute("rtpmap", "0 PCMU/8000"))

    def test_errors(self) -> None:
        """If the rtpmap value is malformed, L{RtpMap.parse} raises."""
        for value in [
            "",
            "96",
            "x opus/48000",
            "128 opus/48000",
            "96 opus",
            "96 opus/x",
            "96 opus/48000/2/1",
            "96 /8000",
        ]:
            self.assertRaises(MessageParseError, RtpMap.parse, value)


class FmtpTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """If an fmtp value is parsed, the parameters are kept raw."""
        self.assertEqual(Fmtp.parse("101 0-15"), Fmtp("101", "0-15"))
        fmtp = Fmtp.parse("111 minptime=10;useinbandfec=1")
        self.assertEqual(fmtp.params, "minptime=10;useinbandfec=1")
        self.assertEqual(fmtp.to_attribute(), Attribute("fmtp", "111 minptime=10;useinbandfec=1"))
        self.assertEqual(Fmtp.parse("97").to_value(), "97")
        self.assertRaises(MessageParseError, Fmtp.parse, " ")


class RtcpTests(SynchronousTestCase):
    def test_port_only(self) -> None:
        """If C{a=rtcp} has only a port (RFC 3605 2.1), there is no connection."""
        self.assertEqual(Rtcp.parse("53020"), Rtcp(53020))
        self.assertEqual(Rtcp(53020).to_attribute(), Attribute("rtcp", "53020"))

    def test_with_address(self) -> None:
        """If C{a=rtcp} has an address, it is parsed like C{c=}."""
        rtcp = Rtcp.parse("53020 IN IP6 2001:db8::7335")
        self.assertEqual(rtcp, Rtcp(53020, Connection("IN", "IP6", "2001:db8::7335")))
        self.assertEqual(rtcp.to_value(), "53020 IN IP6 2001:db8::7335")

    def test_errors(self) -> None:
        """If the port or address is bad, L{Rtcp.parse} raises."""
        for value in ["", "x", "65536", "1 IN IP4", "1 IN IP4 [::1]", "-1", "1/2"]:
            self.assertRaises(MessageParseError, Rtcp.parse, value)


class CryptoTests(SynchronousTestCase):
    def test_simple(self) -> None:
        """
        If an C{a=crypto} value is parsed (RFC 4568 4), L{Crypto} has the tag,
        suite and key parameter.
        """
        crypto = Crypto.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}")
        self.assertEqual(crypto, Crypto(1, "AES_CM_128_HMAC_SHA1_80", (KeyParam(KEY_80),)))
        self.assertEqual(len(crypto.key_params[0].key_salt_bytes()), 30)
        self.assertEqual(crypto.to_value(), f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}")

    def test_gcm(self) -> None:
        """If the suite is AEAD_AES_256_GCM, the padded 44-byte key decodes."""
        crypto = Crypto.parse(f"3 AEAD_AES_256_GCM inline:{KEY_GCM256}")
        self.assertEqual(crypto.suite, "AEAD_AES_256_GCM")
        self.assertEqual(len(crypto.key_params[0].key_salt_bytes()), 44)

    def test_lifetime_mki_session_params(self) -> None:
        """
        If the key parameters have lifetimes and MKIs and there are several
        of them and session parameters, all are kept (RFC 4568 9.2).
        """
        value = (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4;"
            f"inline:{KEY_32}|2^20|2:4 FEC_ORDER=FEC_SRTP KDR=1"
        )
        crypto = Crypto.parse(value)
        self.assertEqual(
            crypto.key_params,
            (KeyParam(KEY_80, "2^20", (1, 4)), KeyParam(KEY_32, "2^20", (2, 4))),
        )
        self.assertEqual(crypto.session_params, "FEC_ORDER=FEC_SRTP KDR=1")
        self.assertEqual(crypto.to_value(), value)

    def test_lifetime_or_mki_alone(self) -> None:
        """A lone field after the key is an MKI if it has a colon, else a lifetime."""
        self.assertEqual(KeyParam.parse(f"inline:{KEY_80}|1048576"), KeyParam(KEY_80, "1048576"))
        self.assertEqual(KeyParam.parse(f"inline:{KEY_80}|7:1"), KeyParam(KEY_80, None, (7, 1)))
        self.assertEqual(KeyParam.parse(f"INLINE:{KEY_80}").to_text(), f"inline:{KEY_80}")

    def test_from_bytes(self) -> None:
        """L{KeyParam.from_bytes} base64-encodes the master key and salt."""
        key = bytes(range(30))
        kp = KeyParam.from_bytes(key, "2^31", (1, 2))
        self.assertEqual(kp.key_salt_bytes(), key)
        self.assertEqual(KeyParam.parse(kp.to_text()), kp)

    def test_unpadded_base64(self) -> None:
        """If base64 padding is missing, L{KeyParam.key_salt_bytes} still decodes."""
        self.assertEqual(len(KeyParam(KEY_GCM128.rstrip("=")).key_salt_bytes()), 28)
        self.assertRaises(MessageParseError, KeyParam("abcde").key_salt_bytes)

    def test_errors(self) -> None:
        """If the crypto value is malformed, L{Crypto.parse} raises."""
        for value in [
            "",
            "1 AES_CM_128_HMAC_SHA1_80",
            f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}",
            f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}",
            f"1 AES_CM_128_HMAC_SHA1_80 outline:{KEY_80}",
            "1 AES_CM_128_HMAC_SHA1_80 inline:",
            "1 AES_CM_128_HMAC_SHA1_80 inline:abc$",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|x",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|1:4|2^20",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80}|2^20|1:4|1",
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_80};",
        ]:
            self.assertRaises(MessageParseError, Crypto.parse, value)


class DirectionTests(SynchronousTestCase):
    def test_reverse(self) -> None:
        """L{Direction.reverse} swaps sendonly and recvonly (RFC 3264 6.1)."""
        self.assertIs(Direction.SENDONLY.reverse(), Direction.RECVONLY)
        self.assertIs(Direction.RECVONLY.reverse(), Direction.SENDONLY)
        self.assertIs(Direction.SENDRECV.reverse(), Direction.SENDRECV)
        self.assertIs(Direction.INACTIVE.reverse(), Direction.INACTIVE)

    def test_levels(self) -> None:
        """
        If a media description has a direction it wins over the
        session-level one; with neither the direction is sendrecv.
        """
        body = b"v=0\r\na=recvonly\r\nm=audio 1 RTP/AVP 0\r\na=inactive\r\nm=audio 2 RTP/AVP 0\r\n"
        sd = parse_sdp(body)
        self.assertEqual(sd.direction, Direction.RECVONLY)
        self.assertEqual(sd.media_direction(0), Direction.INACTIVE)
        self.assertEqual(sd.media_direction(1), Direction.RECVONLY)
        sd = parse_sdp(RFC4475_SDP01)
        self.assertIsNone(sd.media[0].direction)
        self.assertEqual(sd.media_direction(sd.media[0]), Direction.SENDRECV)


# --- media descriptions -----------------------------------------------------


class MediaDescriptionTests(SynchronousTestCase):
    def test_baresip_views(self) -> None:
        """If the baresip offer is parsed, the typed attribute views read it."""
        md = parse_sdp(BARESIP_OFFER).media[0]
        self.assertEqual(
            (md.media_type, md.port, md.port_count, md.proto), ("audio", 10826, None, "RTP/SAVP")
        )
        self.assertEqual(md.formats, ("96", "9", "0", "8", "101"))
        self.assertEqual(md.rtpmap(96), RtpMap(96, "opus", 48000, "2"))
        self.assertIsNone(md.rtpmap(97))
        self.assertEqual(md.fmtps[1], Fmtp("101", "0-15"))
        self.assertEqual(md.ptime, 20)
        self.assertEqual(md.direction, Direction.SENDRECV)
        self.assertFalse(md.rtcp_mux)
        self.assertIsNone(md.rtcp)
        self.assertIsNone(md.connection)
        self.assertEqual(
            [(c.tag, c.suite) for c in md.crypto],
            [
                (1, "AES_CM_128_HMAC_SHA1_80"),
                (2, "AES_CM_128_HMAC_SHA1_32"),
                (3, "AEAD_AES_256_GCM"),
                (4, "AEAD_AES_128_GCM"),
            ],
        )
        self.assertEqual(md.crypto[2].key_params[0].key_salt, KEY_GCM256)
        self.assertEqual(md.attribute_values("rtcp-rsize"), (None,))
        self.assertEqual(md.attribute("label"), Attribute("label", "1"))
        self.assertIsNone(md.attribute("Label"))

    def test_webrtc_views(self) -> None:
        """
        If the WebRTC offer is parsed, rtcp-mux, a=rtcp with an address, and
        ICE candidates (generic attributes) are read.
        """
        md = parse_sdp(WEBRTC_OFFER).media[0]
        self.assertTrue(md.rtcp_mux)
        self.assertEqual(md.rtcp, Rtcp(9, Connection("IN", "IP4", "0.0.0.0")))
        self.assertEqual(len(md.attribute_values("candidate")), 2)
        self.assertEqual(md.attribute("ice-ufrag"), Attribute("ice-ufrag", "Xk4b"))
        self.assertEqual(md.proto, "UDP/TLS/RTP/SAVPF")
        self.assertEqual(md.rtpmap(63), RtpMap(63, "red", 48000, "2"))

    def test_ptime_fraction(self) -> None:
        """If C{a=ptime} has a fraction, L{MediaDescription.ptime} is a float."""
        md = parse_sdp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=ptime:22.5\r\n").media[0]
        self.assertEqual(md.ptime, 22.5)
        self.assertIsNone(parse_sdp(RFC4475_SDP01).media[0].ptime)

    def test_connections(self) -> None:
        """If there are several media-level C{c=} lines, all are read."""
        md = parse_sdp(
            b"v=0\r\nm=video 1 RTP/AVP 31\r\n"
            b"c=IN IP4 233.252.0.1/127\r\nc=IN IP4 233.252.0.2/127\r\n"
        ).media[0]
        self.assertEqual([c.address for c in md.connections], ["233.252.0.1", "233.252.0.2"])
        self.assertEqual(md.connection, md.connections[0])

    def test_with_port(self) -> None:
        """
        L{MediaDescription.with_port} rewrites the port on the C{m=} line and
        keeps everything else.
        """
        md = parse_sdp(BARESIP_OFFER).media[0]
        new = md.with_port(40000)
        self.assertEqual(new.lines[0], Line("m", "audio 40000 RTP/SAVP 96 9 0 8 101"))
        self.assertEqual(new.lines[1:], md.lines[1:])
        self.assertEqual(md.port, 10826)
        self.assertEqual(new.with_port(0, 2).lines[0].value, "audio 0/2 RTP/SAVP 96 9 0 8 101")
        self.assertRaises(ValueError, md.with_port, 65536)
        self.assertRaises(ValueError, md.with_port, -1)

    def test_with_proto(self) -> None:
        """L{MediaDescription.with_proto} rewrites the transport protocol."""
        md = parse_sdp(BARESIP_OFFER).media[0].with_proto("RTP/AVP")
        self.assertEqual(md.proto, "RTP/AVP")
        self.assertRaises(ValueError, md.with_proto, "RTP AVP")

    def test_with_media(self) -> None:
        """L{MediaDescription.with_media} replaces the whole C{m=} line."""
        md = parse_sdp(RFC4475_SDP01).media[1]
        new = md.with_media(Media("video", 0, "RTP/AVP", ("31",)))
        self.assertEqual(new.lines[0].value, "video 0 RTP/AVP 31")
        self.assertRaises(ValueError, md.with_media, Media("video", 70000, "RTP/AVP"))
        self.assertRaises(ValueError, md.with_media, Media("video", 1, "RTP/AVP", ("a b",)))

    def test_with_connection_replaces(self) -> None:
        """
        If the media description has C{c=} lines, L{with_connection}
        replaces them by one, where the first was.
        """
        md = parse_sdp(WEBRTC_OFFER).media[0]
        new = md.with_connection(Connection.for_address("203.0.113.1"))
        self.assertEqual(new.lines[1], Line("c", "IN IP4 203.0.113.1"))
        self.assertEqual(new.lines[2:], md.lines[2:])
        self.assertIsNone(new.with_connection(None).connection)

    def test_with_connection_inserts(self) -> None:
        """
        If the media description has no C{c=}, L{with_connection} puts one
        after C{m=} and C{i=} (RFC 8866 5).
        """
        sd = parse_sdp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\na=x\r\n")
        new = sd.media[0].with_connection(Connection("IN", "IP6", "2001:db8::1"))
        self.assertEqual([line.type for line in new.lines], ["m", "i", "c", "b", "a"])
        self.assertEqual(new.lines[2].value, "IN IP6 2001:db8::1")
        self.assertRaises(
            ValueError, sd.media[0].with_connection, Connection("IN", "IP4", "2001:db8::1")
        )

    def test_with_crypto(self) -> None:
        """
        L{MediaDescription.with_crypto} replaces all C{a=crypto} lines by the
        given ones, where the first was; an empty list removes them.
        """
        md = parse_sdp(BARESIP_OFFER).media[0]
        mine = Crypto(1, "AES_CM_128_HMAC_SHA1_80", (KeyParam.from_bytes(bytes(30)),))
        new = md.with_crypto([mine])
        self.assertEqual(new.crypto, (mine,))
        position = [line.value for line in md.lines].index(
            f"crypto:1 {md.crypto[0].suite} inline:{KEY_80}"
        )
        self.assertEqual(new.lines[position], Line("a", "crypto:" + mine.to_value()))
        self.assertEqual(new.lines[position + 1], Line("a", "ptime:20"))
        self.assertEqual(md.with_crypto([]).crypto, ())
        self.assertEqual(len(md.with_crypto([]).lines), len(md.lines) - 4)
        bad = Crypto(1, "AES CM", (KeyParam("x"),))
        self.assertRaises(ValueError, md.with_crypto, [bad])
        self.assertRaises(ValueError, md.with_crypto, [Crypto(1, "X", ())])

    def test_with_rtcp(self) -> None:
        """
        L{MediaDescription.with_rtcp} rewrites C{a=rtcp} in place, adds it
        if missing, or removes it.
        """
        md = parse_sdp(IPV6_HOLD_OFFER).media[0]
        relay = Rtcp(40001, Connection("IN", "IP6", "2001:db8::99"))
        new = md.with_rtcp(relay)
        self.assertEqual(new.rtcp, relay)
        self.assertEqual(new.lines[4], Line("a", "rtcp:40001 IN IP6 2001:db8::99"))
        self.assertIsNone(new.with_rtcp(None).rtcp)
        added = parse_sdp(TYPICAL_OFFER).media[0].with_rtcp(Rtcp(40001))
        self.assertEqual(added.lines[-1], Line("a", "rtcp:40001"))
        self.assertRaises(ValueError, md.with_rtcp, Rtcp(70000))

    def test_with_rtcp_mux(self) -> None:
        """L{MediaDescription.with_rtcp_mux} adds or removes C{a=rtcp-mux} once."""
        md = parse_sdp(TYPICAL_OFFER).media[0]
        on = md.with_rtcp_mux(True)
        self.assertTrue(on.rtcp_mux)
        self.assertIs(on.with_rtcp_mux(True), on)
        self.assertFalse(on.with_rtcp_mux(False).rtcp_mux)
        self.assertEqual(on.with_rtcp_mux(False), md)

    def test_with_direction(self) -> None:
        """
        L{MediaDescription.with_direction} replaces the direction attribute
        in place, adds one, or removes it.
        """
        md = parse_sdp(IPV6_HOLD_OFFER).media[0]
        new = md.with_direction(Direction.SENDRECV)
        self.assertEqual(new.lines[-1], Line("a", "sendrecv"))
        self.assertEqual(len(new.lines), len(md.lines))
        self.assertIsNone(md.with_direction(None).direction)
        md = parse_sdp(RFC4475_SDP01).media[0]
        self.assertEqual(md.with_direction(Direction.INACTIVE).lines[-1], Line("a", "inactive"))

    def test_with_attribute(self) -> None:
        """
        L{with_attribute} replaces attributes of the same name (or appends
        with C{replace=False}); L{without_attributes} removes them.
        """
        md = parse_sdp(WEBRTC_OFFER).media[0]
        self.assertEqual(md.with_attribute("candidate", "x").attribute_values("candidate"), ("x",))
        more = md.with_attribute(Attribute("candidate", "y"), replace=False)
        self.assertEqual(more.attribute_values("candidate")[-1], "y")
        self.assertEqual(more.lines[-1], Line("a", "candidate:y"))
        bare = md.without_attributes("candidate", "ice-ufrag", "ice-pwd", "ice-options")
        self.assertFalse(any(a.name.startswith(("candidate", "ice-")) for a in bare.attributes))
        self.assertEqual(len(bare.lines), len(md.lines) - 5)
        self.assertRaises(ValueError, md.with_attribute, "bad name")
        self.assertRaises(ValueError, md.with_attribute, "x", "a\r\nm=evil")
        self.assertRaises(ValueError, md.with_attribute, Attribute("x"), "v")

    def test_validation(self) -> None:
        """If a L{MediaDescription} does not start with C{m=}, it raises."""
        self.assertRaises(ValueError, MediaDescription, ())
        self.assertRaises(ValueError, MediaDescription, (Line("a", "x"),))
        m = Line("m", "audio 1 RTP/AVP 0")
        self.assertRaises(ValueError, MediaDescription, (m, m))


# --- session descriptions ---------------------------------------------------


class SessionDescriptionTests(SynchronousTestCase):
    def test_media_connection(self) -> None:
        """
        L{SessionDescription.media_connection} is the media-level C{c=}, else
        the session-level one, else C{None}.
        """
        sd = parse_sdp(WEBRTC_OFFER)
        self.assertEqual(sd.media_connection(0), Connection("IN", "IP4", "198.51.100.7"))
        sd = parse_sdp(RFC4475_SDP01)
        self.assertEqual(sd.media_connection(1), Connection("IN", "IP4", "192.0.2.5"))
        sd = parse_sdp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n")
        self.assertIsNone(sd.media_connection(sd.media[0]))

    def test_hold(self) -> None:
        """
        L{SessionDescription.is_on_hold} is true for sendonly or inactive
        (RFC 3264 8.4) and for c=0.0.0.0 without ICE.
        """
        self.assertTrue(parse_sdp(IPV6_HOLD_OFFER).is_on_hold(0))
        self.assertTrue(parse_sdp(SLOPPY_HOLD_OFFER).is_on_hold(0))
        self.assertFalse(parse_sdp(TRICKLE_OFFER).is_on_hold(0))
        self.assertFalse(parse_sdp(WEBRTC_OFFER).is_on_hold(0))
        self.assertFalse(parse_sdp(TYPICAL_OFFER).is_on_hold(0))
        inactive = parse_sdp(TYPICAL_OFFER.replace(b"sendrecv", b"inactive"))
        self.assertTrue(inactive.is_on_hold(0))
        recvonly = parse_sdp(TYPICAL_OFFER.replace(b"sendrecv", b"recvonly"))
        self.assertFalse(recvonly.is_on_hold(0))

    def test_with_media(self) -> None:
        """L{SessionDescription.with_media} replaces one media description."""
        sd = parse_sdp(RFC4475_SDP01)
        new = sd.with_media(1, sd.media[1].with_port(0))
        self.assertEqual(new.media[0], sd.media[0])
        self.assertEqual(new.media[1].port, 0)
        self.assertEqual(new.to_bytes(), RFC4475_SDP01.replace(b"video 3227", b"video 0"))
        self.assertRaises(IndexError, sd.with_media, 2, sd.media[0])

    def test_with_connection(self) -> None:
        """
        L{SessionDescription.with_connection} replaces the session-level
        C{c=}, or adds it before C{b=}/C{t=} (RFC 8866 5), or removes it.
        """
        sd = parse_sdp(RFC4475_SDP01)
        relay = Connection.for_address("203.0.113.9")
        new = sd.with_connection(relay)
        self.assertEqual(new.lines[3], Line("c", "IN IP4 203.0.113.9"))
        self.assertIsNone(new.with_connection(None).connection)
        sd = parse_sdp(RFC5118_MULT_IP_IN_SDP)
        new = sd.with_connection(relay)
        self.assertEqual([line.type for line in new.lines], ["v", "o", "s", "c", "t"])
        self.assertEqual(new.media, sd.media)

    def test_with_origin(self) -> None:
        """
        L{SessionDescription.with_origin} replaces C{o=} (or adds it after
        C{v=}).
        """
        sd = parse_sdp(BARESIP_OFFER)
        assert sd.origin is not None
        new = sd.with_origin(sd.origin.next_version())
        self.assertEqual(new.lines[1], Line("o", "- 1826589926 3372034547 IN IP4 192.0.2.20"))
        sd = parse_sdp(b"v=0\r\ns=-\r\n")
        new = sd.with_origin(Origin("-", "1", 1, "IN", "IP4", "203.0.113.9"))
        self.assertEqual([line.type for line in new.lines], ["v", "o", "s"])
        self.assertRaises(ValueError, sd.with_origin, Origin("a b", "1 2", 1, "IN", "IP4", "x"))

    def test_session_attributes(self) -> None:
        """Session-level attribute builders work like the media-level ones."""
        sd = parse_sdp(WEBRTC_OFFER)
        new = sd.without_attributes("group").with_direction(Direction.SENDONLY)
        self.assertIsNone(new.attribute("group"))
        self.assertEqual(new.direction, Direction.SENDONLY)
        self.assertEqual(new.media, sd.media)
        self.assertEqual(
            new.with_attribute("tool", "sipedge").attribute("tool"), Attribute("tool", "sipedge")
        )

    def test_relay_rewrite(self) -> None:
        """
        If a relay rewrites addresses, ports, a=rtcp and a=crypto, only those
        lines change, in canonical form.
        """
        sd = parse_sdp(BARESIP_OFFER)
        relay = Connection.for_address("203.0.113.9")
        key = KeyParam.from_bytes(bytes(range(30)))
        md = (
            sd.media[0]
            .with_port(30000)
            .with_connection(relay)
            .with_rtcp(Rtcp(30001))
            .with_crypto([Crypto(1, "AES_CM_128_HMAC_SHA1_80", (key,))])
        )
        assert sd.origin is not None
        new = sd.with_media(0, md).with_connection(relay).with_origin(sd.origin.next_version())
        out = new.to_bytes()
        self.assertEqual(parse_sdp(out), new)
        self.assertIn(b"\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n", out)
        self.assertIn(b"\r\nm=audio 30000 RTP/SAVP 96 9 0 8 101\r\nc=IN IP4 203.0.113.9\r\n", out)
        self.assertIn(b"\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQF", out)
        self.assertNotIn(KEY_80.encode(), out)
        self.assertTrue(out.endswith(b"\r\na=ptime:20\r\na=rtcp:30001\r\n"))
        self.assertIn(b"a=ssrc:1213234412 cname:3f6a0c51", out)

    def test_new_lines_follow_line_endings(self) -> None:
        """
        If the body uses bare LF and has no final line ending, added lines
        use LF and every line but the last keeps a line ending.
        """
        sd = parse_sdp(SLOPPY_HOLD_OFFER)
        md = sd.media[0].with_attribute("rtcp-mux")
        new = sd.with_media(0, md)
        self.assertTrue(new.to_bytes().endswith(b"a=sendrecv \na=rtcp-mux\n"))
        self.assertEqual(parse_sdp(new.to_bytes()), new)
        sd = parse_sdp(b"v=0\ns=-")
        new = sd.with_attribute("x")
        self.assertEqual(new.to_bytes(), b"v=0\ns=-\na=x\n")

    def test_to_bytes_repairs_missing_eol(self) -> None:
        """
        If a hand-made description has a line without ending before another
        line, L{SessionDescription.to_bytes} adds one.
        """
        md = MediaDescription((Line("m", "audio 1 RTP/AVP 0", ""),))
        sd = SessionDescription((Line("v", "0", ""),), (md, md), "\n")
        self.assertEqual(sd.to_bytes(), b"v=0\r\nm=audio 1 RTP/AVP 0\r\nm=audio 1 RTP/AVP 0\r\n\n")
        fixed = sd.with_media(0, md)
        self.assertEqual([m.lines[-1].eol for m in fixed.media], ["\r\n", "\r\n"])

    def test_validation(self) -> None:
        """
        If a L{SessionDescription} does not start with C{v=}, holds an m=
        line at session level or a trailer that is not empty lines, it
        raises C{ValueError}.
        """
        self.assertRaises(ValueError, SessionDescription, ())
        self.assertRaises(ValueError, SessionDescription, (Line("s", "-"),))
        v = Line("v", "0")
        self.assertRaises(ValueError, SessionDescription, (v, Line("m", "audio 1 RTP/AVP 0")))
        self.assertRaises(ValueError, SessionDescription, (v,), (), "x")


# --- properties ---------------------------------------------------------------

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_.!%*+~"
tokens = st.text(_TOKEN_ALPHABET, min_size=1, max_size=8)
free_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"), max_size=20)
labels = st.from_regex(r"[a-z][a-z0-9\-]{0,6}[a-z0-9]", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
connection_values = st.one_of(
    st.ip_addresses(v=4).map(lambda a: f"IN IP4 {a}"),
    st.ip_addresses(v=6).map(lambda a: f"IN IP6 {a}"),
    hostnames.map(lambda h: f"IN IP4 {h}"),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 255), st.integers(1, 9)).map(
        lambda t: f"IN IP4 {t[0]}/{t[1]}/{t[2]}"
    ),
)
attribute_values = st.one_of(
    st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux"]),
    st.tuples(tokens, free_text).map(lambda t: f"{t[0]}:{t[1]}"),
    tokens,
)
unknown_types = st.sampled_from("bdefghijklnpqrstuwxyz")
other_lines = st.one_of(
    attribute_values.map(lambda v: ("a", v)),
    st.tuples(unknown_types, free_text),
)


@st.composite
def media_lines(draw: st.DrawFn) -> list[tuple[str, str]]:
    media_type = draw(tokens)
    port = draw(st.integers(0, 65535))
    count = draw(st.one_of(st.just(""), st.integers(1, 99).map(lambda n: f"/{n}")))
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP"]))
    formats = draw(st.lists(st.integers(0, 127).map(str), max_size=5))
    lines = [("m", " ".join([media_type, f"{port}{count}", proto, *formats]))]
    lines += [("c", c) for c in draw(st.lists(connection_values, max_size=2))]
    lines += draw(st.lists(other_lines, max_size=5))
    return lines


@st.composite
def sdp_bodies(draw: st.DrawFn) -> bytes:
    """Valid SDP bodies with random line endings, whitespace and trailers."""
    lines = [("v", "0")]
    if draw(st.booleans()):
        version = draw(st.integers(0, 2**64))
        lines.append(("o", f"- {draw(st.integers(0, 2**63))} {version} IN IP4 192.0.2.1"))
    lines.append(("s", draw(free_text)))
    if draw(st.booleans()):
        lines.append(("c", draw(connection_values)))
    lines += draw(st.lists(other_lines, max_size=4))
    for media in draw(st.lists(media_lines(), max_size=3)):
        lines += media
    eols = draw(st.lists(st.sampled_from(["\r\n", "\n"]), min_size=len(lines), max_size=len(lines)))
    spaces = draw(
        st.lists(st.sampled_from(["", "", " ", "\t "]), min_size=len(lines), max_size=len(lines))
    )
    text = "".join(f"{t}={v}{sp}{eol}" for (t, v), sp, eol in zip(lines, spaces, eols, strict=True))
    if draw(st.booleans()):
        text = text.rstrip("\r\n") if text.endswith(("\r\n", "\n")) else text
    elif draw(st.booleans()):
        text += "".join(draw(st.lists(st.sampled_from(["\r\n", "\n"]), max_size=2)))
    return text.encode("utf-8")


SEEDS = CORPUS + SAMPLES
fragments = st.sampled_from(
    [
        b"v=0",
        b"\r\n",
        b"\n",
        b"\r",
        b"m=audio 1 RTP/AVP 0",
        b"c=IN IP4 ",
        b"c=IN IP6 ",
        b"a=crypto:",
        b"a=rtcp:",
        b"o=- 1 1 IN IP4 x",
        b" ",
        b":",
        b"/",
        b"|",
        b";",
        b"=",
        b"a=sendonly",
        b"a=ptime",
        b"a=rtcp",
        b"a=crypto",
        b"a=rtpmap:",
        b"a=fmtp",
        b"a=ptime:",
        b"inline:",
        b"\xff",
        b"\x00",
        b"9" * 6,
    ]
)


class PropertyTests(SynchronousTestCase):
    @given(sdp_bodies())
    def test_generated_round_trip(self, body: bytes) -> None:
        """
        If a generated SDP body is parsed, it serializes back byte for byte
        and parsing the result gives an equal value.
        """
        sd = parse_sdp(body)
        self.assertEqual(sd.to_bytes(), body)
        self.assertEqual(parse_sdp(sd.to_bytes()), sd)
        for md in sd.media:
            self.assertIsInstance(md.media, Media)
            for conn in md.connections:
                self.assertEqual(Connection.parse(conn.to_value()), conn)
        exercise(sd)

    @given(
        sdp_bodies(),
        st.integers(0, 65535),
        connection_values,
        st.binary(min_size=30, max_size=30),
        st.sampled_from(list(Direction)),
    )
    def test_builders_round_trip(
        self, body: bytes, port: int, conn_value: str, key: bytes, direction: Direction
    ) -> None:
        """
        If a relay-style rewrite is applied to any generated SDP, the
        result parses back to an equal value with the new values.
        """
        sd = parse_sdp(body)
        conn = Connection.parse(conn_value)
        crypto = Crypto(7, "AES_CM_128_HMAC_SHA1_80", (KeyParam.from_bytes(key, "2^31"),))
        sd = sd.with_connection(conn).with_attribute("x-relay", "1")
        for i, md in enumerate(sd.media):
            md = (
                md.with_port(port)
                .with_connection(conn)
                .with_crypto([crypto])
                .with_rtcp(Rtcp(port, conn))
                .with_direction(direction)
            )
            sd = sd.with_media(i, md)
        again = parse_sdp(sd.to_bytes())
        self.assertEqual(again, sd)
        self.assertEqual(again.connection, conn)
        for i, md in enumerate(again.media):
            self.assertEqual(md.port, port)
            self.assertEqual(md.connections, (conn,))
            self.assertEqual(md.crypto, (crypto,))
            self.assertEqual(md.crypto[0].key_params[0].key_salt_bytes(), key)
            self.assertEqual(md.rtcp, Rtcp(port, conn))
            self.assertEqual(again.media_direction(i), direction)

    @given(st.binary(max_size=400))
    def test_random_bytes(self, body: bytes) -> None:
        """If random bytes are parsed, only L{MessageParseError} can escape."""
        self._check(body)

    @given(st.lists(fragments, max_size=30).map(b"".join))
    def test_random_fragments(self, body: bytes) -> None:
        """
        If SDP-like fragments are joined at random, only
        L{MessageParseError} can escape, from parsing or any typed view.
        """
        self._check(body)

    @given(
        st.sampled_from(SEEDS),
        st.lists(
            st.tuples(st.integers(0, 2000), st.integers(0, 3), st.binary(max_size=4)),
            min_size=1,
            max_size=6,
        ),
    )
    def test_mutated_corpus(self, seed: bytes, edits: list[tuple[int, int, bytes]]) -> None:
        """
        If corpus and sample bodies are mutated (bytes replaced, deleted,
        inserted), only L{MessageParseError} can escape.
        """
        body = bytearray(seed)
        for position, length, replacement in edits:
            at = position % (len(body) + 1)
            body[at : at + length] = replacement
        self._check(bytes(body))

    @given(
        st.one_of(
            st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
            st.text(" :/|;=^.[]%+-0123456789abcdefINPx\t", max_size=40),
        )
    )
    def test_typed_views_any_text(self, text: str) -> None:
        """
        If any text is given to a typed view's parser, only
        L{MessageParseError} can escape.
        """
        for parse in [
            Origin.parse,
            Connection.parse,
            Media.parse,
            Attribute.parse,
            RtpMap.parse,
            Fmtp.parse,
            Rtcp.parse,
            Crypto.parse,
            KeyParam.parse,
        ]:
            try:
                parse(text)
            except MessageParseError:
                pass
        try:
            KeyParam(text).key_salt_bytes()
        except MessageParseError:
            pass

    @given(
        st.sampled_from(["rtpmap", "fmtp", "rtcp", "crypto", "ptime", "sendonly", "rtcp-mux"]),
        st.one_of(
            st.none(),
            st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
            st.text(" :/|;=^.[]%+-0123456789abcdefINPx\t", max_size=40),
        ),
    )
    def test_known_attributes_any_value(self, name: str, value: str | None) -> None:
        """
        If an attribute the typed views read has any value or none, only
        L{MessageParseError} can escape.
        """
        line = name if value is None else f"{name}:{value}"
        body = b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=" + line.encode("utf-8", "surrogateescape")
        self._check(body)

    def _check(self, body: bytes) -> None:
        try:
            sd = parse_sdp(body)
        except MessageParseError as e:
            self.assertIsInstance(e.reason, str)
            return
        self.assertEqual(sd.to_bytes(), body)
        exercise(sd)

    @given(
        st.integers(0, 999_999_999),
        tokens,
        st.lists(
            st.tuples(
                st.binary(min_size=1, max_size=46),
                st.one_of(
                    st.none(),
                    st.integers(0, 48).map(lambda n: f"2^{n}"),
                    st.integers(1, 2**48).map(str),
                ),
                st.one_of(st.none(), st.tuples(st.integers(0, 2**32), st.integers(1, 128))),
            ),
            min_size=1,
            max_size=3,
        ),
        st.one_of(st.none(), st.sampled_from(["KDR=1", "UNENCRYPTED_SRTCP", "FEC_ORDER=SRTP_FEC"])),
    )
    def test_crypto_round_trip(
        self,
        tag: int,
        suite: str,
        keys: list[tuple[bytes, str | None, tuple[int, int] | None]],
        session: str | None,
    ) -> None:
        """If a L{Crypto} is written and parsed again, it is unchanged."""
        params = tuple(KeyParam.from_bytes(k, lifetime, mki) for k, lifetime, mki in keys)
        crypto = Crypto(tag, suite, params, session)
        self.assertEqual(Crypto.parse(crypto.to_value()), crypto)
        for param, (key, _, _) in zip(crypto.key_params, keys, strict=True):
            self.assertEqual(param.key_salt_bytes(), key)

    @given(
        tokens, st.integers(0, 65535), st.integers(1, 9) | st.none(), st.lists(tokens, max_size=4)
    )
    def test_media_round_trip(
        self, media_type: str, port: int, count: int | None, formats: list[str]
    ) -> None:
        """If a L{Media} is written and parsed again, it is unchanged."""
        media = Media(media_type, port, "RTP/SAVPF", tuple(formats), count)
        self.assertEqual(Media.parse(media.to_value()), media)
