# -*- test-case-name: sipedge.test.test_glance -*-
"""
Tests for L{sipedge.transport.glance}: the pre-parse look at a datagram
agrees with the full parser on everything the screen decides by.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import Request, parse_datagram
from sipedge.transport import Glance, glance

_INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: c1@192.0.2.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: friendly-scanner\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

_START_LINES = st.sampled_from(
    [
        b"INVITE sip:bob@example.com SIP/2.0",
        b"ACK sip:bob@example.com SIP/2.0",
        b"OPTIONS sip:example.com SIP/2.0",
        b"REGISTER sip:example.com sip/2.0",
        b"BYE sip:bob@192.0.2.2:5060;transport=udp SIP/2.0",
        b"SIP/2.0 200 OK",
        b"sip/2.0 407 Proxy Authentication Required",
        b"SIP/2.0 180",
        b"INVITE  sip:bob@example.com SIP/2.0",
        b"INVITE sip:bob@example.com",
        b"IN(VITE sip:bob@example.com SIP/2.0",
        b"INVITE sip:bob@example.com SIP/3.0",
        b" INVITE sip:bob@example.com SIP/2.0",
        b"",
        b"\xc5\xbfIP/2.0 200 OK",
    ]
)

_VALUES = st.sampled_from(
    [
        b"<sip:bob@example.com>",
        b"<sip:bob@example.com>;tag=b2",
        b"<sip:bob@example.com>;TAG=b2",
        b"<sip:bob@example.com> ; tag = b2",
        b"\"tagger\" <sip:bob@example.com>",
        b"<sip:bob@example.com;tag=x>",
        b"sip:bob@example.com;tag=b2",
        b"<sip:edge.example.com;lr;se=abc>",
        b"friendly-scanner",
        b"  sipvicious 0.3  ",
        b"Linphone/5.0 (belle-sip)",
        b"",
        b"caf\xc3\xa9",
        b"\xff\xfe",
        b"x\ny",
        b"x\rz",
        b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-2",
    ]
)

_NAMES = st.sampled_from(
    [
        b"To", b"to", b"TO", b"t", b"T", b"Route", b"route", b"User-Agent", b"user-agent",
        b"USER-AGENT", b"Via", b"v", b"From", b"Call-ID", b"CSeq", b"Timestamp",
        b"To ", b"User-Agent\t", b"Record-Route", b"X-To", b"Bad Name", b"Content-Length",
    ]
)


@st.composite
def _header_lines(draw: st.DrawFn) -> bytes:
    name = draw(_NAMES)
    value = draw(_VALUES)
    space = draw(st.sampled_from([b"", b" ", b"  ", b"\t"]))
    line = name + b":" + space + value
    if draw(st.booleans()) and draw(st.booleans()):
        # A folded continuation (LWS).
        line += b"\r\n" + draw(st.sampled_from([b" ", b"\t", b"  "])) + draw(_VALUES)
    return line


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    """Datagrams near the edge of what the parser accepts."""
    lines = [draw(_START_LINES), *draw(st.lists(_header_lines(), max_size=8))]
    data = b"\r\n".join(lines)
    ending = draw(st.sampled_from([b"\r\n\r\n", b"\r\n", b"", b"\r\n\r\nTo: <x>;tag=1\r\n"]))
    prefix = draw(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]))
    return prefix + data + ending


class GlanceAgreementTests(SynchronousTestCase):
    """
    Whatever the full parser accepts, the glance reads as it does: the
    method (or a response), the first User-Agent value, and a dialog claim
    whenever the request has a To tag and a Route.
    """

    def _check(self, data: bytes) -> None:
        seen = glance(data)
        try:
            message = parse_datagram(data)
        except MessageParseError:
            return  # nothing to agree with: the screen takes it as unknown work
        self.assertIsNotNone(seen, data)
        assert seen is not None
        if not isinstance(message, Request):
            self.assertIsNone(seen.method, data)
            return
        self.assertEqual(seen.method, message.method, data)
        self.assertEqual(seen.user_agent, message.headers.get("User-Agent"), data)
        try:
            tag = message.to_address.tag
        except MessageParseError:
            return
        if tag is not None and "Route" in message.headers:
            self.assertTrue(seen.in_dialog, data)

    @settings(max_examples=400, deadline=None)
    @given(datagrams())
    def test_agrees_with_parser(self, data: bytes) -> None:
        """On datagrams near the parser's edges, the glance never contradicts it."""
        self._check(data)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_agrees_on_any_bytes(self, data: bytes) -> None:
        """On any bytes, the glance never raises and never contradicts the parser."""
        self._check(data)

    def test_request(self) -> None:
        """A request: its method and User-Agent; no dialog without a To tag."""
        self.assertEqual(glance(_INVITE), Glance("INVITE", False, "friendly-scanner"))

    def test_response(self) -> None:
        """A response: no method."""
        self.assertEqual(glance(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n"), Glance(None))

    def test_garbage(self) -> None:
        """No request or status line: C{None}."""
        self.assertIsNone(glance(b"\x00\x01hello"))
        self.assertIsNone(glance(b""))

    def test_in_dialog(self) -> None:
        """A To tag and a Route claim a dialog; either alone does not."""
        tagged = _INVITE.replace(b"To: <sip:bob@example.com>", b"t: <sip:bob@example.com>;tag=9")
        self.assertFalse(glance(tagged).in_dialog)  # type: ignore[union-attr]
        routed = tagged.replace(b"CSeq:", b"Route: <sip:edge;lr>\r\nCSeq:")
        self.assertTrue(glance(routed).in_dialog)  # type: ignore[union-attr]

    def test_body_not_read(self) -> None:
        """Header-like lines in the body are not header fields."""
        data = _INVITE.replace(b"User-Agent: friendly-scanner\r\n", b"").replace(
            b"Content-Length: 0\r\n\r\n", b"Content-Length: 24\r\n\r\nUser-Agent: sipvicious\r\n"
        )
        self.assertEqual(glance(data), Glance("INVITE"))

    def test_folded(self) -> None:
        """A folded User-Agent is read joined, as the parser joins it."""
        data = _INVITE.replace(b"friendly-scanner", b"friendly-\r\n scanner")
        self.assertEqual(glance(data).user_agent, parse_datagram(data).headers.get("User-Agent"))  # type: ignore[union-attr]
