# -*- test-case-name: sipedge.test.test_message_parser -*-
"""
Tests for L{sipedge.message._parser} and L{sipedge.message._serializer}.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import LocalProtocolError, MessageParseError
from sipedge.message import (
    DEFAULT_LIMITS,
    Headers,
    KeepAlivePing,
    KeepAlivePong,
    Limits,
    Request,
    Response,
    StreamParser,
    check_request,
    check_response,
    is_keepalive,
    parse_datagram,
    serialize,
)
from sipedge.message._parser import _parse_lines, _parse_lines_reference

DATA = Path(__file__).parent / "data"

OPTIONS = (
    b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@chicago.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _message_with(head_lines: list[bytes], body: bytes = b"") -> bytes:
    return b"\r\n".join(head_lines) + b"\r\n\r\n" + body


class DatagramTests(SynchronousTestCase):
    """Tests for L{parse_datagram}."""

    def test_request(self) -> None:
        """A request's start line, fields and empty body are read."""
        m = parse_datagram(OPTIONS)
        assert isinstance(m, Request)
        self.assertEqual(
            (m.method, m.uri, m.version),
            ("OPTIONS", "sip:carol@chicago.example.com", "SIP/2.0"),
        )
        self.assertEqual(m.headers.get("call-id"), "a84b4c76e66710")
        self.assertEqual(m.body, b"")
        self.assertNotIn("Content-Length", m.headers)

    def test_response(self) -> None:
        """A status line gives a L{Response}; an empty reason is allowed."""
        m = parse_datagram(b"SIP/2.0 100 \r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
        assert isinstance(m, Response)
        self.assertEqual((m.status, m.reason), (100, ""))
        m = parse_datagram(b"SIP/2.0 180\r\nVia: SIP/2.0/UDP h\r\n\r\n")
        assert isinstance(m, Response)
        self.assertEqual((m.status, m.reason), (180, ""))

    def test_leading_crlf(self) -> None:
        """CRLFs before the start line are skipped (RFC 3261 7.5)."""
        self.assertEqual(parse_datagram(b"\r\n\r\n" + OPTIONS), parse_datagram(OPTIONS))

    def test_folding(self) -> None:
        """A folded line is joined to the line before with one space."""
        m = parse_datagram(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"Subject: a\r\n  b\r\n\tc"]))
        self.assertEqual(m.headers.get("Subject"), "a b c")

    def test_compact_and_case(self) -> None:
        """Compact forms and any case find the same fields."""
        m = parse_datagram(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"v: x", b"VIA: y", b"i: z"]))
        self.assertEqual(m.headers.get_all("Via"), ("x", "y"))
        self.assertEqual(m.headers.get("call-ID"), "z")

    def test_common_names_shared(self) -> None:
        """
        The keys and usual spellings of the fields a proxy meets most are
        one string for every message parsed (a lingering call holds many
        messages); other spellings and unknown fields are kept as written.
        """
        first = parse_datagram(OPTIONS)
        second = parse_datagram(OPTIONS.replace(b"63104", b"63105"))
        for a, b in zip(first.headers.fields, second.headers.fields, strict=True):
            self.assertIs(a[0], b[0])
            self.assertIs(a[1], b[1])
        data = _message_with([b"OPTIONS sip:a@b SIP/2.0", b"vIA: x", b"v: y", b"X-Odd: z"])
        odd, again = parse_datagram(data), parse_datagram(data)
        self.assertEqual(
            [(key, name) for key, name, _ in odd.headers.fields],
            [("via", "vIA"), ("via", "v"), ("x-odd", "X-Odd")],
        )
        self.assertIs(odd.headers.fields[0][0], again.headers.fields[1][0])
        self.assertIs(odd.headers.fields[1][1], again.headers.fields[1][1])

    def test_space_before_colon(self) -> None:
        """Spaces and tabs between a field name and its colon are allowed."""
        m = parse_datagram(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"Via \t : x"]))
        self.assertEqual(m.headers.get("via"), "x")

    def test_trailing_bytes_ignored(self) -> None:
        """Bytes after Content-Length are ignored in a datagram (18.3)."""
        m = parse_datagram(
            _message_with([b"MESSAGE sip:a@b SIP/2.0", b"Content-Length: 3"], b"abcdef")
        )
        self.assertEqual(m.body, b"abc")

    def test_no_content_length(self) -> None:
        """Without Content-Length, a datagram's body is the rest of it."""
        m = parse_datagram(_message_with([b"MESSAGE sip:a@b SIP/2.0"], b"abcdef"))
        self.assertEqual(m.body, b"abcdef")

    def assertParseError(
        self, data: bytes, status: int = 400, limits: Limits | None = None
    ) -> MessageParseError:
        with self.assertRaises(MessageParseError) as caught:
            if limits is None:
                parse_datagram(data)
            else:
                parse_datagram(data, limits)
        self.assertEqual(caught.exception.status_hint, status, caught.exception.reason)
        return caught.exception

    def test_content_length_too_large(self) -> None:
        """
        A Content-Length larger than the datagram is an error that still
        carries the parsed request, so it can be answered.
        """
        e = self.assertParseError(_message_with([b"MESSAGE sip:a@b SIP/2.0", b"l: 10"], b"abc"))
        assert isinstance(e.message, Request)
        self.assertEqual(e.message.method, "MESSAGE")

    def test_content_length_bad(self) -> None:
        """Negative, non-numeric, huge or conflicting lengths are errors."""
        for value in (b"-1", b"five", b"1" * 50, b"1 2"):
            self.assertParseError(
                _message_with([b"MESSAGE sip:a@b SIP/2.0", b"Content-Length: " + value])
            )
        self.assertParseError(
            _message_with([b"MESSAGE sip:a@b SIP/2.0", b"Content-Length: 1", b"l: 2"], b"ab")
        )

    def test_agreeing_content_lengths(self) -> None:
        """Two Content-Length fields with the same value are tolerated."""
        m = parse_datagram(
            _message_with([b"MESSAGE sip:a@b SIP/2.0", b"Content-Length: 2", b"l: 2"], b"ab")
        )
        self.assertEqual(m.body, b"ab")

    def test_start_line_errors(self) -> None:
        """Malformed start lines are 400; other SIP versions are 505."""
        self.assertParseError(b"INVITE  sip:a@b SIP/2.0\r\n\r\n")
        self.assertParseError(b"INVITE sip:a@b SIP/2.0 \r\n\r\n")
        self.assertParseError(b"INVITE sip:a@b; lr SIP/2.0\r\n\r\n")
        self.assertParseError(b"IN(VITE sip:a@b SIP/2.0\r\n\r\n")
        self.assertParseError(b"INVITE sip:a@b SIP/7.0\r\n\r\n", 505)
        self.assertParseError(b"INVITE sip:a@b HTTP/1.1\r\n\r\n")
        self.assertParseError(b"SIP/2.0 4294967301 Huge\r\n\r\n")
        self.assertParseError(b"SIP/2.0 099 Low\r\n\r\n")
        self.assertParseError(b"SIP/2.0 700 High\r\n\r\n")

    def test_header_errors(self) -> None:
        """A line without colon, a bad name, or a bare LF is an error."""
        self.assertParseError(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"NoColon"]))
        self.assertParseError(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"Bad Name: x"]))
        self.assertParseError(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"A: x\nB: y"]))
        self.assertParseError(_message_with([b"OPTIONS sip:a@b SIP/2.0", b"A: x\rB: y"]))

    def test_no_end_of_head(self) -> None:
        """Bytes with no header section end are an error."""
        self.assertParseError(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x")
        self.assertParseError(b"")
        self.assertParseError(b"\r\n\r\n")

    def test_limits(self) -> None:
        """Each limit gives its status: 513, 413, 414 or 513."""
        small = Limits(
            max_message_size=100,
            max_body_size=10,
            max_header_fields=2,
            max_line_length=20,
            max_uri_length=10,
        )
        self.assertParseError(b"x" * 101, 513, small)
        self.assertParseError(_message_with([b"M sip:a@b SIP/2.0"], b"b" * 11), 413, small)
        self.assertParseError(b"M sip:aaaaaaaa@b SIP/2.0\r\n\r\n", 414, small)
        self.assertParseError(
            _message_with([b"M sip:a@b SIP/2.0", b"A: 1", b"B: 2", b"C: 3"]), 513, small
        )
        self.assertParseError(_message_with([b"M sip:a@b SIP/2.0", b"A: " + b"1" * 30]), 513, small)

    def test_non_utf8_round_trip(self) -> None:
        """Bytes that are not UTF-8 in a header survive parse and serialize."""
        data = _message_with(
            [b"OPTIONS sip:a@b SIP/2.0", b"X-Odd: \xff\xfe\xc3", b"Content-Length: 0"]
        )
        self.assertEqual(serialize(parse_datagram(data)), data)

    def test_keepalive(self) -> None:
        """Datagrams of CRLFs only are keep-alives."""
        self.assertTrue(is_keepalive(b"\r\n\r\n"))
        self.assertTrue(is_keepalive(b"\r\n"))
        self.assertFalse(is_keepalive(OPTIONS))


class SalvageTests(SynchronousTestCase):
    """
    A request head that does not parse still leaves a stand-in request on
    the error, so that it can be answered with its status.
    """

    def error(self, data: bytes) -> MessageParseError:
        return self.assertRaises(MessageParseError, parse_datagram, data)

    def test_bad_request_line(self) -> None:
        """
        RFC 4475 lwsruri (whitespace inside the Request-URI): 400, with the
        method, the Request-URI as written, and the header fields.
        """
        error = self.error((DATA / "rfc4475" / "lwsruri.dat").read_bytes())
        self.assertEqual(error.status_hint, 400)
        request = error.message
        assert isinstance(request, Request)
        self.assertEqual((request.method, request.uri), ("INVITE", "sip:user@example.com; lr"))
        self.assertEqual(request.call_id, "lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423")
        self.assertEqual(request.cseq.method, "INVITE")
        self.assertTrue(request.headers.get_all("Via"))

    def test_uri_too_long(self) -> None:
        """A Request-URI over the limit: 414, with the stand-in."""
        data = (
            b"OPTIONS sip:" + b"a" * 5000 + b"@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-long\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
            b"Call-ID: long@192.0.2.9\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        error = self.error(data)
        self.assertEqual(error.status_hint, 414)
        assert isinstance(error.message, Request)
        self.assertEqual(error.message.call_id, "long@192.0.2.9")

    def test_bad_lines_left_out(self) -> None:
        """
        Header lines that do not split into a token name and a value are
        left out of the stand-in; the others stay.
        """
        data = (
            b"OPTIONS  sip:x@example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK-bad\r\n"
            b"this line has no colon\r\n"
            b"Bad Name: value\r\n"
            b"Call-ID: bad@192.0.2.9\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        request = self.error(data).message
        assert isinstance(request, Request)
        self.assertEqual(
            [name for _, name, _ in request.headers.fields], ["Via", "Call-ID", "CSeq"]
        )

    def test_nothing_to_answer(self) -> None:
        """
        No stand-in without a Via (nothing to answer to), without a token
        method, or for a response.
        """
        self.assertIsNone(self.error(b"HELLO WORLD\r\n\r\n").message)
        self.assertIsNone(
            self.error(b"<bad> sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
            .message
        )
        self.assertIsNone(self.error(b"SIP/2.0 2000 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n").message)


class SerializeTests(SynchronousTestCase):
    """Tests for L{serialize}."""

    def test_content_length_written(self) -> None:
        """The serializer writes the body's real length, last."""
        m = Request("MESSAGE", "sip:a@b", Headers.of(("To", "<sip:a@b>")), b"hello")
        self.assertEqual(
            serialize(m),
            b"MESSAGE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\nContent-Length: 5\r\n\r\nhello",
        )

    def test_response(self) -> None:
        """A response's status line is written from status and reason."""
        m = Response(404, "Not Found", Headers.of(("Via", "SIP/2.0/UDP h")))
        self.assertEqual(
            serialize(m),
            b"SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 0\r\n\r\n",
        )

    def test_injection_refused(self) -> None:
        """A value, reason or URI that would add a line is refused."""
        for m in (
            Request("OPTIONS", "sip:a@b", Headers.of(("X", "a\r\nVia: evil"))),
            Request("OPTIONS", "sip:a@b", Headers.of(("X\r\nVia", "evil"))),
            Request("OPTIONS", "sip:a@b", Headers.of(("X", "a\nb"))),
            Request("OPTIONS", "sip:a@b\r\nVia: x", Headers()),
            Request("OPTIONS", "sip:a@b SIP/2.0", Headers()),
            Response(200, "OK\r\nVia: x", Headers()),
        ):
            self.assertRaises(LocalProtocolError, serialize, m)


class StreamParserTests(SynchronousTestCase):
    """Tests for L{StreamParser}."""

    def test_messages_and_keepalives(self) -> None:
        """Messages and keep-alive pings and pongs come out in order."""
        parser = StreamParser()
        events = parser.feed(b"\r\n\r\n" + OPTIONS + b"\r\n" + OPTIONS)
        self.assertEqual(
            events,
            [KeepAlivePing(), parse_datagram(OPTIONS), KeepAlivePong(), parse_datagram(OPTIONS)],
        )
        self.assertEqual(parser.buffered, 0)

    def test_partial_ping_waits(self) -> None:
        """A CRLF at the end of the buffer may still become a ping."""
        parser = StreamParser()
        self.assertEqual(parser.feed(b"\r\n"), [])
        self.assertEqual(parser.feed(b"\r\n"), [KeepAlivePing()])

    def test_body_waits(self) -> None:
        """A message is held until its whole body has arrived."""
        data = _message_with([b"MESSAGE sip:a@b SIP/2.0", b"Content-Length: 5"], b"hello")
        parser = StreamParser()
        self.assertEqual(parser.feed(data[:-2]), [])
        [m] = parser.feed(data[-2:])
        assert isinstance(m, Request)
        self.assertEqual(m.body, b"hello")

    def test_missing_content_length(self) -> None:
        """Content-Length is mandatory on streams; the error stays."""
        parser = StreamParser()
        data = _message_with([b"MESSAGE sip:a@b SIP/2.0"])
        e = self.assertRaises(MessageParseError, parser.feed, data)
        self.assertIsInstance(e.message, Request)
        self.assertRaises(MessageParseError, parser.feed, OPTIONS)
        self.assertEqual(parser.buffered, 0)

    def test_unbounded_head(self) -> None:
        """A header section that never ends is refused past the limit."""
        parser = StreamParser(Limits(max_message_size=1000))
        parser.feed(b"OPTIONS sip:a@b SIP/2.0\r\n")
        for _ in range(20):
            try:
                parser.feed(b"X-Filler: " + b"a" * 40 + b"\r\n")
            except MessageParseError as e:
                self.assertEqual(e.status_hint, 513)
                break
        else:
            self.fail("no error")
        self.assertLessEqual(parser.buffered, 1000)

    def test_body_too_large(self) -> None:
        """A Content-Length over the body limit is refused at once."""
        parser = StreamParser(Limits(max_body_size=10))
        e = self.assertRaises(
            MessageParseError,
            parser.feed,
            _message_with([b"MESSAGE sip:a@b SIP/2.0", b"Content-Length: 11"]),
        )
        self.assertEqual(e.status_hint, 413)


# -- generated messages ------------------------------------------------------

_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_tokens = st.text(_TOKEN_ALPHABET, min_size=1, max_size=12)
_value_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")
_values = st.text(_value_chars, max_size=30).map(lambda v: v.strip(" \t"))
_header_names = _tokens.filter(lambda n: n.lower() not in ("content-length", "l"))
_headers = st.lists(st.tuples(_header_names, _values), max_size=12).map(lambda p: Headers.of(*p))
_uris = st.text(st.characters(exclude_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=40)


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    """Generated requests and responses (any fields, not necessarily valid SIP)."""
    headers = draw(_headers)
    body = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        return Request(draw(_tokens), draw(_uris), headers, body)
    reason = draw(st.text(_value_chars, max_size=20))
    return Response(draw(st.integers(100, 699)), reason, headers, body)


class PropertyTests(SynchronousTestCase):
    """Hypothesis properties of the parser and serializer."""

    @given(messages())
    def test_round_trip(self, m: Request | Response) -> None:
        """C{parse(serialize(m)) == m} for generated messages, on both framings."""
        wire = serialize(m)
        self.assertEqual(parse_datagram(wire), m)
        self.assertEqual(StreamParser().feed(wire), [m])

    @given(st.lists(messages(), min_size=1, max_size=4), st.data())
    def test_framing_invariance(self, ms: list[Request | Response], data: st.DataObject) -> None:
        """
        A stream fed whole, byte by byte, or in random chunks gives the
        same events, and nothing stays buffered.
        """
        pieces = []
        for m in ms:
            if data.draw(st.booleans()):
                pieces.append(b"\r\n\r\n")
            pieces.append(serialize(m))
        stream = b"".join(pieces)
        whole = StreamParser().feed(stream)
        self.assertEqual([e for e in whole if not isinstance(e, KeepAlivePing)], ms)

        bytewise = StreamParser()
        events = []
        for i in range(len(stream)):
            events.extend(bytewise.feed(stream[i : i + 1]))
        self.assertEqual(events, whole)

        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
        chunked = StreamParser()
        events = []
        previous = 0
        for cut in [*cuts, len(stream)]:
            events.extend(chunked.feed(stream[previous:cut]))
            previous = cut
        self.assertEqual(events, whole)
        self.assertEqual(chunked.buffered, 0)

    @given(st.binary(max_size=300))
    def test_random_bytes(self, data: bytes) -> None:
        """Random bytes raise nothing but L{MessageParseError}."""
        _parse_everything(data)

    @given(
        st.sampled_from(
            sorted((DATA / "rfc4475").glob("*.dat")) + sorted((DATA / "rfc5118").glob("*.dat"))
        ),
        st.data(),
    )
    def test_mutated_corpus(self, path: Path, data: st.DataObject) -> None:
        """
        Torture messages with bytes flipped, inserted or deleted raise
        nothing but L{MessageParseError}, parsed and checked.
        """
        message = bytearray(path.read_bytes())
        for _ in range(data.draw(st.integers(1, 6))):
            if not message:
                break
            where = data.draw(st.integers(0, len(message) - 1))
            action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
            byte = data.draw(st.sampled_from(b'\x00\r\n \t:;,<>"\\@[]%=\xff'))
            if action == "flip":
                message[where] = byte
            elif action == "insert":
                message.insert(where, byte)
            else:
                del message[where]
        _parse_everything(bytes(message))


def _parse_everything(data: bytes) -> None:
    """Parse C{data} every way there is; only MessageParseError may escape."""
    try:
        m = parse_datagram(data)
        if isinstance(m, Request):
            check_request(m, supported=frozenset())
        else:
            check_response(m)
        serialize(m)
    except MessageParseError:
        pass
    try:
        StreamParser().feed(data)
    except MessageParseError:
        pass


# Header lines a fast path may mistake: usual spellings with and without
# space before the colon, Content-Length, unknown and bad names, no colon.
_HEAD_LINES = st.one_of(
    st.sampled_from(
        [
            "Via: SIP/2.0/UDP a;branch=z9hG4bKx", "v: SIP/2.0/UDP b", "VIA:x",
            "Via :x", "Via\t: y", "Call-ID: 1", "i:2", "Content-Length: 0", "l: 3",
            "content-length:4", "To: <sip:a@b>", "t:x", "X-Foo: bar", "x y: z",
            "Via", "Via;", ": value", "CSeq: 1 INVITE", "cseq:2 BYE", "Max-Forwards: 70",
            "Route: <sip:r;lr>", "Contact: *", "Via: " + "a" * 30,
        ]
    ),
    st.text(alphabet="VvIiAa:-; \tCcl\r\nx", max_size=12),
)
_START_LINES = st.sampled_from(
    ["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "BAD", "INVITE sip:" + "u" * 40 + " SIP/2.0"]
)


def _outcome(parse, text: str, lines: list[str], limits: Limits) -> object:
    """What a C{_parse_lines} gives: the message and lengths, or the error."""
    try:
        return parse(text, lines, limits)
    except MessageParseError as e:
        return (e.reason, e.status_hint, e.message)


class FastPathTests(SynchronousTestCase):
    """The parser's fast path against the rule-by-rule reference."""

    @given(_START_LINES, st.lists(_HEAD_LINES, max_size=8), st.booleans())
    def test_same_as_reference(self, start: str, fields: list[str], short: bool) -> None:
        """
        For any head, L{_parse_lines} gives what L{_parse_lines_reference}
        gives: the same fields (keys, spellings, values), Content-Length
        values and message, or the same error and status.
        """
        limits = Limits(max_line_length=30) if short else DEFAULT_LIMITS
        text = "\r\n".join([start, *fields])
        lines = text.split("\r\n")
        self.assertEqual(
            _outcome(_parse_lines, text, lines, limits),
            _outcome(_parse_lines_reference, text, lines, limits),
        )

    def test_shared_spellings(self) -> None:
        """A usual spelling parsed on the fast path is the shared string and key."""
        first = parse_datagram(OPTIONS)
        second = parse_datagram(OPTIONS)
        self.assertIs(first.headers.fields[0][1], second.headers.fields[0][1])
        self.assertEqual(first.headers.fields[0][:2], ("via", "Via"))
