"""Tests for L{sipedge.transport._size}: message size and UDP (RFC 3261 18.1.1)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Headers, Request, Response, serialize
from sipedge.transport import UDP_REQUEST_LIMIT, too_large_for_udp, wire_size

_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


def _request(body: bytes = b"", extra: int = 0) -> Request:
    headers = Headers.of(
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"),
        ("From", "<sip:a@example.com>;tag=1"),
        ("To", "<sip:b@example.com>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 MESSAGE"),
        *([("X-Pad", "x" * extra)] if extra else []),
    )
    return Request("MESSAGE", "sip:b@example.com", headers, body)


class WireSizeTests(SynchronousTestCase):
    """Tests for L{wire_size} and L{too_large_for_udp}."""

    @given(st.lists(st.tuples(_text, _text), max_size=10), st.binary(max_size=3000))
    def test_matches_serialize(self, fields: list[tuple[str, str]], body: bytes) -> None:
        """For ASCII messages, L{wire_size} is the length L{serialize} writes."""
        headers = Headers.of(*((f"X-{n}", v) for n, v in fields))
        self.assertEqual(
            wire_size(Request("MESSAGE", "sip:b@example.com", headers, body)),
            len(serialize(Request("MESSAGE", "sip:b@example.com", headers, body))),
        )
        response = Response(200, "OK", headers, body)
        self.assertEqual(wire_size(response), len(serialize(response)))

    def test_limit(self) -> None:
        """A request above 1300 bytes is too large for UDP; 1300 itself is not."""
        base = wire_size(_request())
        at_limit = _request(extra=UDP_REQUEST_LIMIT - base - len("X-Pad: \r\n"))
        self.assertEqual(wire_size(at_limit), UDP_REQUEST_LIMIT)
        self.assertFalse(too_large_for_udp(at_limit))
        self.assertTrue(too_large_for_udp(_request(b"x" * UDP_REQUEST_LIMIT)))

    def test_responses_never(self) -> None:
        """A response never switches transport (18.2.2), whatever its size."""
        self.assertFalse(too_large_for_udp(Response(200, "OK", Headers.of(), b"x" * 5000)))
