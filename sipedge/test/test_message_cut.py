# -*- test-case-name: sipedge.test.test_message_cut -*-
"""
Tests for L{sipedge.message.cut_top_via}: a response relayed from its
received bytes is the response the slow way relays.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import (
    Headers,
    Response,
    StreamParser,
    cut_top_via,
    parse_datagram,
    serialize,
)
from sipedge.test.strategies import tokens

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKours;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKtheirs;received=198.51.100.7\r\n"
    b"From: <sip:alice@example.com>;tag=a\r\n"
    b"To: <sip:bob@example.com>;tag=b\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:bob@203.0.113.5:5060>\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"body"
)
THEIRS = b"Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKtheirs;received=198.51.100.7\r\n"


def _slow(data: bytes) -> Response:
    """What the slow way relays: parse, pop the top Via."""
    response = parse_datagram(data)
    assert isinstance(response, Response)
    return response.with_via_popped()


class CutTests(SynchronousTestCase):
    """Examples of L{cut_top_via}."""

    def test_two_vias(self) -> None:
        """
        The top Via line goes, every other byte stays as received (the
        Content-Length, the spellings, the body).
        """
        out = cut_top_via(RINGING)
        assert out is not None
        self.assertEqual(out, RINGING.replace(RINGING.split(b"\r\n")[1] + b"\r\n", b""))
        self.assertTrue(out.startswith(b"SIP/2.0 180 Ringing\r\n" + THEIRS))
        self.assertEqual(parse_datagram(out), _slow(RINGING))

    def test_compact_and_later(self) -> None:
        """A compact C{v}, in any case and after other fields, is found."""
        data = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nV :a\r\nv: b\r\nl: 0\r\n\r\n"
        self.assertEqual(cut_top_via(data), b"SIP/2.0 200 OK\r\nCall-ID: x\r\nv: b\r\nl: 0\r\n\r\n")

    def test_last_field(self) -> None:
        """The Via as the last field line goes with the CRLF before it."""
        data = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nVia: a\r\n\r\n"
        self.assertEqual(cut_top_via(data), b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n")

    def test_several_values(self) -> None:
        """A line with several Via values loses the first, written as the slow way writes it."""
        data = b'SIP/2.0 200 OK\r\nVIA :  a;x="1,2" , b ,c\r\nCall-ID: x\r\n\r\n'
        out = cut_top_via(data)
        assert out is not None
        self.assertEqual(out, b"SIP/2.0 200 OK\r\nVIA: b, c\r\nCall-ID: x\r\n\r\n")
        self.assertEqual(parse_datagram(out), _slow(data))

    def test_growing_line(self) -> None:
        """A multi-value line that the slow way writes longer is left to it."""
        self.assertIsNone(cut_top_via(b"SIP/2.0 200 OK\r\nv:a,b,c,d,e\r\n\r\n"))

    def test_open_quote(self) -> None:
        """A multi-value line that does not split is left to the slow way, which refuses it."""
        data = b'SIP/2.0 200 OK\r\nVia: a;x="1, b\r\n\r\n'
        self.assertIsNone(cut_top_via(data))
        self.assertRaises(MessageParseError, _slow, data)

    def test_leading_crlf(self) -> None:
        """CRLFs before the status line are left out, as the parser skips them."""
        self.assertEqual(cut_top_via(b"\r\n\r\n" + RINGING), cut_top_via(RINGING))

    def test_body_length(self) -> None:
        """With the parsed body's length, bytes past it (ignored by the parser) are left out."""
        self.assertEqual(cut_top_via(RINGING + b"junk", 4), cut_top_via(RINGING))
        self.assertEqual(cut_top_via(RINGING + b"junk"), (cut_top_via(RINGING) or b"") + b"junk")
        self.assertIsNone(cut_top_via(RINGING, 5))

    def test_folded_before(self) -> None:
        """A field folded over lines before the Via is left as it came."""
        data = b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\tb\r\nVia: c\r\nVia: d\r\n\r\n"
        out = cut_top_via(data)
        self.assertEqual(out, b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\tb\r\nVia: d\r\n\r\n")
        self.assertEqual(parse_datagram(out or b""), _slow(data))

    def test_slow_way_cases(self) -> None:
        """
        Requests, a folded top Via or a name folded before its colon, heads
        without an empty line or a Via are left to the slow way.
        """
        for data in (
            b"OPTIONS sip:a SIP/2.0\r\nVia: a\r\nVia: b\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia: a,\r\n b\r\nVia: c\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia\r\n : a\r\nVia: c\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia: a\r\n",
            b"SIP/2.0 200 OK\r\nCall-ID: x\r\nX-Via: y\r\nVias: z\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",
        ):
            self.assertIsNone(cut_top_via(data), data)


# -- generated responses -----------------------------------------------------

_VIA_NAMES = st.sampled_from(["Via", "v", "VIA", "V", "via", "vIa"])
_COLONS = st.sampled_from([": ", ":", " :", "\t: ", ":  ", " \t:\t"])
_VIA_VALUES = st.sampled_from(
    [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa",
        "SIP/2.0/TCP [2001:db8::1];branch=z9hG4bKb;rport",
        "SIP/2.0/UDP h1, SIP/2.0/UDP h2",
        "a,b",
        "a , b,c",
        'x;p="1,2", y',
        'x;p="open, y',
        "a,",
        ",",
        "",
        "é\udcff, z",
    ]
)
_OTHER_LINES = st.sampled_from(
    [
        "Call-ID: c1",
        "i:c2",
        "From: <sip:a@b>;tag=1",
        "CSeq: 1 INVITE",
        "X-Via: not a via",
        "Vias: neither",
        "Contact: <sip:c@d>, <sip:e@f>",
        "Content-Type: application/sdp",
        "Record-Route: <sip:p;lr>",
        "\tfolded",
        " folded",
        " folded: with a colon",
        "\tv: folded",
        "Via",
        "v",
        " : SIP/2.0/UDP h9",
        "\t:x",
    ]
)


@st.composite
def _via_lines(draw: st.DrawFn) -> str:
    return draw(_VIA_NAMES) + draw(_COLONS) + draw(_VIA_VALUES)


@st.composite
def _received(draw: st.DrawFn) -> bytes:
    """Response datagrams as phones write them (and some as no phone should)."""
    start = draw(st.sampled_from(["SIP/2.0 180 Ringing", "sip/2.0 200 OK", "SIP/2.0 487 "]))
    lines = draw(st.lists(st.one_of(_via_lines(), _OTHER_LINES), max_size=8))
    body = draw(st.binary(max_size=12))
    length = draw(st.sampled_from(["exact", "none", "short", "compact", "twice"]))
    if length == "exact":
        lines.append(f"Content-Length: {len(body)}")
    elif length == "short":
        lines.insert(draw(st.integers(0, len(lines))), f"Content-Length: {len(body) // 2}")
    elif length == "compact":
        lines.insert(draw(st.integers(0, len(lines))), f"l:{len(body)}")
    elif length == "twice":
        lines[:0] = [f"Content-Length: {len(body)}"] * 2
    head = "\r\n".join([start, *lines]).encode("utf-8", "surrogateescape")
    return b"\r\n" * draw(st.integers(0, 2)) + head + b"\r\n\r\n" + body


_NAMES = tokens(max_size=8).filter(lambda n: n.lower() not in ("content-length", "l"))
_VALUES = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=20
).map(lambda v: v.strip(" \t"))


@st.composite
def _responses(draw: st.DrawFn) -> Response:
    """Response values with some Via fields among other fields."""
    names = st.one_of(_VIA_NAMES, _NAMES)
    pairs = draw(st.lists(st.tuples(names, st.one_of(_VIA_VALUES, _VALUES)), max_size=8))
    reason = draw(st.sampled_from(["OK", "Ringing", "", "Très bien"]))
    body = draw(st.binary(max_size=16))
    return Response(draw(st.integers(100, 699)), reason, Headers.of(*pairs), body)


class PropertyTests(SynchronousTestCase):
    """L{cut_top_via} held to parse, L{Response.with_via_popped}, L{serialize}."""

    @given(_received(), st.booleans())
    def test_same_as_slow_way(self, data: bytes, with_length: bool) -> None:
        """
        For a datagram that parses as a response, the bytes L{cut_top_via}
        gives parse to the response the slow way relays; where it gives
        C{None}, the slow way changes nothing or refuses, or the head is
        folded, or the line would grow.
        """
        try:
            response = parse_datagram(data)
        except MessageParseError:
            assume(False)
            raise
        assert isinstance(response, Response)
        out = cut_top_via(data, len(response.body) if with_length else None)
        try:
            popped = response.with_via_popped()
        except MessageParseError:
            self.assertIsNone(out)
            return
        if out is None:
            head = data.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0]
            self.assertTrue(
                popped == response or b"\r\n " in head or b"\r\n\t" in head or b"," in head,
                data,
            )
            return
        self.assertEqual(parse_datagram(out), popped)
        if with_length:
            self.assertTrue(out.endswith(response.body))
            if b"Content-Length: " in out or b"l:" in out:
                self.assertEqual(StreamParser().feed(out), [popped])

    @given(_responses())
    def test_canonical_bytes(self, response: Response) -> None:
        """
        For the canonical wire form of a response with a Via, the bytes are
        exactly what the slow way writes; without a Via, C{None}.
        """
        try:
            popped = response.with_via_popped()
        except MessageParseError:
            return
        wire = serialize(response)
        out = cut_top_via(wire, len(response.body))
        if "via" not in response.headers:
            self.assertIsNone(out)
            return
        expected = serialize(popped)
        if out is None:
            # Only a multi-value line that the slow way writes longer.
            self.assertIn(",", response.headers.get("Via", ""))
            self.assertGreater(len(expected), len(wire) - len(response.headers.get("Via", "")))
            return
        self.assertEqual(out, expected)
