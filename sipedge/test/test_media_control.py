# -*- test-case-name: sipedge.test.test_media_control -*-
"""
Tests for L{sipedge.media._control}, the relay control protocol's wire
format: framing, values, calls, errors, events and the handshake's proofs.
No Twisted.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import (
    DROP_REASONS,
    END_REASONS,
    ControlProtocolError,
    DirectionStats,
    LegPolicy,
    MediaError,
    MediaLimits,
    MediaMode,
    MediaOffer,
    MediaOfferError,
    Party,
    PortsExhausted,
    RelayAllocation,
    RelayEndpoint,
    RelayPolicy,
    RelayStats,
    RelayTimeout,
    RelayUnavailable,
    ReofferUnsupported,
    SdesCrypto,
    SdesError,
    SessionEnd,
    SessionExists,
    SessionStats,
    SrtpError,
    StreamAllocation,
    StreamOffer,
    UnknownSession,
)
from sipedge.media._control import (
    ERROR_CLASSES,
    METHODS,
    LineFramer,
    client_proof,
    decode_error,
    decode_message,
    decode_session_end,
    decode_value,
    encode_error,
    encode_message,
    encode_value,
    error_message,
    hello_message,
    hex_field,
    request_id,
    request_message,
    result_message,
    server_proof,
    session_end_event,
)

# -- strategies ---------------------------------------------------------------

_text = st.text(max_size=20)
_ports = st.integers(0, 65535)
_hosts = st.sampled_from(["192.0.2.10", "0.0.0.0", "2001:db8::1", "::", "10.0.0.1"])
_counts = st.integers(0, 2**40)
_times = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)

cryptos = st.builds(
    SdesCrypto,
    tag=st.integers(0, 2**31),
    suite=st.sampled_from(["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM"]),
    key_params=_text,
    session_params=st.none() | _text,
)
stream_offers = st.builds(
    StreamOffer,
    host=_hosts,
    port=_ports,
    rtcp_port=st.none() | _ports,
    rtcp_mux=st.booleans(),
    crypto=st.lists(cryptos, max_size=3),
    media=st.sampled_from(["audio", "video"]),
)
limits = st.builds(
    MediaLimits,
    max_packet_rate=st.just(0.0) | st.floats(1, 1e6),
    packet_burst=st.floats(1, 1e6),
    max_bandwidth=st.just(0.0),
    max_packet_size=st.integers(0, 9000),
    idle_timeout=_times,
    nat_learn_packets=st.integers(0, 100),
)
legs = st.builds(LegPolicy, st.sampled_from(list(MediaMode)), _text, st.booleans())
policies = st.builds(RelayPolicy, legs, st.none() | legs, st.none() | limits)
offers = st.builds(
    MediaOffer, st.lists(stream_offers, max_size=3), st.none() | policies, st.none() | _hosts
)
endpoints = st.builds(
    RelayEndpoint, _hosts, _ports, st.none() | _ports, st.booleans(), st.lists(cryptos, max_size=2)
)
allocations = st.builds(
    RelayAllocation,
    _text,
    st.lists(
        st.builds(
            StreamAllocation,
            endpoints,
            endpoints,
            st.sampled_from(list(MediaMode)),
            st.sampled_from(list(MediaMode)),
        ),
        max_size=3,
    ).map(tuple),
    st.booleans(),
)
directions = st.builds(
    DirectionStats,
    _counts,
    _counts,
    st.dictionaries(st.sampled_from(DROP_REASONS), st.integers(1, 2**40)),
)
session_stats = st.builds(
    SessionStats,
    _text,
    st.sampled_from(["offered", "answered", "ended"]),
    st.sampled_from(list(MediaMode)),
    st.sampled_from(list(MediaMode)),
    _times,
    st.none() | _times,
    _times,
    st.lists(_ports, max_size=8).map(lambda p: tuple(sorted(p))),
    directions,
    directions,
)
relay_stats = st.builds(
    RelayStats,
    st.integers(0, 10**6),
    st.integers(0, 10**9),
    st.dictionaries(st.sampled_from(END_REASONS), st.integers(1, 10**9)),
    st.integers(0, 65536),
    directions,
    directions,
)
session_ends = st.builds(SessionEnd, _text, st.sampled_from(END_REASONS), session_stats)


def wire(value: Any) -> Any:
    """C{value} encoded, through a JSON line and back."""
    return decode_message(encode_message({"type": "x", "v": encode_value(value)}))["v"]


class ValueTests(SynchronousTestCase):
    """Every value of L{IMediaRelay} round-trips through JSON."""

    @given(offers)
    def test_offer(self, offer: MediaOffer) -> None:
        """A L{MediaOffer}, policy and keys included, decodes to an equal value."""
        self.assertEqual(decode_value(MediaOffer, wire(offer)), offer)

    @given(allocations)
    def test_allocation(self, allocation: RelayAllocation) -> None:
        """A L{RelayAllocation} decodes to an equal value."""
        self.assertEqual(decode_value(RelayAllocation, wire(allocation)), allocation)

    @given(session_stats)
    def test_session_stats(self, stats: SessionStats) -> None:
        """L{SessionStats}, drops by reason included, decode to an equal value."""
        decoded = decode_value(SessionStats, wire(stats))
        self.assertEqual(decoded, stats)
        self.assertEqual(decoded.a_to_b.drops, stats.a_to_b.drops)

    @given(relay_stats)
    def test_relay_stats(self, stats: RelayStats) -> None:
        """L{RelayStats} decode to an equal value, C{ended} included."""
        decoded = decode_value(RelayStats, wire(stats))
        self.assertEqual(decoded, stats)
        self.assertEqual(decoded.ended, stats.ended)

    @given(session_ends)
    def test_session_end(self, end: SessionEnd) -> None:
        """A L{SessionEnd} event decodes to an equal value."""
        event = decode_message(encode_message(session_end_event(end)))
        self.assertEqual(event["event"], "session-end")
        self.assertEqual(decode_session_end(event), end)

    def test_keys_travel(self) -> None:
        """SDES key parameters are carried (the relay needs them)."""
        crypto = SdesCrypto(1, "AES_CM_128_HMAC_SHA1_80", "inline:secret")
        self.assertEqual(encode_value(crypto)["key_params"], "inline:secret")

    def test_missing_defaults(self) -> None:
        """Fields with a default may be left out."""
        self.assertEqual(
            decode_value(StreamOffer, {"host": "192.0.2.1", "port": 4000}),
            StreamOffer("192.0.2.1", 4000),
        )

    def test_errors_name_the_path(self) -> None:
        """A value that does not decode raises C{bad-params} naming where it is."""
        cases = [
            ({"streams": [{"host": "192.0.2.1", "port": "x"}]}, "offer.streams[0].port"),
            ({"streams": [{"host": "192.0.2.1", "port": 70000}]}, "offer.streams[0]"),
            ({"streams": [{"host": "192.0.2.1", "port": True}]}, "offer.streams[0].port"),
            ({"streams": [], "extra": 1}, "unknown field 'extra'"),
            ({}, "needs the field 'streams'"),
            ({"streams": {}}, "offer.streams: expected an array"),
            ({"streams": [], "policy": {"a": {"mode": "loud"}}}, "offer.policy.a.mode"),
            ([], "offer: expected an object"),
        ]
        for data, where in cases:
            with self.assertRaises(ControlProtocolError) as raised:
                decode_value(MediaOffer, data, "offer")
            self.assertIn(where, str(raised.exception))
            self.assertEqual(raised.exception.code, "bad-params")


class FramingTests(SynchronousTestCase):
    """L{LineFramer} splits a stream into lines, within a limit."""

    @given(
        st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=8),
        st.lists(st.integers(0, 400), max_size=6),
    )
    def test_split_anywhere(self, lines: list[bytes], cuts: list[int]) -> None:
        """The same lines come out however the stream is cut."""
        stream = b"".join(line + b"\n" for line in lines)
        framer = LineFramer(100)
        got: list[bytes] = []
        start = 0
        for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
            got += framer.feed(stream[start:cut])
            start = cut
        self.assertEqual(got, [line[:-1] if line.endswith(b"\r") else line for line in lines])
        self.assertEqual(framer.buffered, b"")

    def test_too_long_line(self) -> None:
        """A line over the limit raises C{too-long}."""
        with self.assertRaises(ControlProtocolError) as raised:
            LineFramer(10).feed(b"x" * 11 + b"\n")
        self.assertEqual(raised.exception.code, "too-long")

    def test_too_long_without_newline(self) -> None:
        """More than the limit without a newline raises at once."""
        framer = LineFramer(10)
        self.assertEqual(framer.feed(b"x" * 10), [])
        with self.assertRaises(ControlProtocolError):
            framer.feed(b"y")

    def test_malformed_lines(self) -> None:
        """Lines that are not a JSON object with a string type are refused."""
        for line in [b"nope", b"[1]", b"{}", b'{"type": 3}', b"\xff", b'{"type":"x","v":NaN}']:
            with self.assertRaises(ControlProtocolError, msg=line):
                decode_message(line)

    def test_encode_is_one_line(self) -> None:
        """A message is one compact line."""
        line = encode_message({"type": "x", "text": "a\nb"})
        self.assertEqual(line.count(b"\n"), 1)
        self.assertTrue(line.endswith(b"\n"))


class CallTests(SynchronousTestCase):
    """Requests and results of every method."""

    def test_methods(self) -> None:
        """Every L{IMediaRelay} call is a method."""
        self.assertEqual(
            sorted(METHODS),
            ["allocate", "release", "reoffer", "sessions", "stats", "update", "withdraw"],
        )

    def test_request_round_trip(self) -> None:
        """A request's params decode to the arguments it was made with."""
        offer = MediaOffer([StreamOffer("192.0.2.1", 4000)], RelayPolicy())
        for method, args in [
            ("allocate", ("k", offer)),
            ("update", ("k", MediaOffer([StreamOffer("192.0.2.2", 5000)]))),
            ("reoffer", ("k", offer, Party.B)),
            ("withdraw", ("k",)),
            ("release", ("k",)),
            ("sessions", ()),
            ("stats", ()),
        ]:
            message = json.loads(encode_message(request_message(7, method, *args)))
            self.assertEqual(request_id(message), 7)
            self.assertEqual(message["method"], method)
            self.assertEqual(METHODS[method].decode_params(message["params"]), args)

    def test_bad_params(self) -> None:
        """Missing, unknown or mistyped parameters are C{bad-params}."""
        method = METHODS["release"]
        for params in [{}, {"session_key": 1}, {"session_key": "k", "x": 1}, []]:
            with self.assertRaises(ControlProtocolError) as raised:
                method.decode_params(params)
            self.assertEqual(raised.exception.code, "bad-params")

    def test_results(self) -> None:
        """Each method's result decodes as its type (release may be null)."""
        self.assertIsNone(METHODS["release"].decode_result(None))
        self.assertEqual(METHODS["sessions"].decode_result({}), {})
        with self.assertRaises(ControlProtocolError):
            METHODS["stats"].decode_result(None)

    def test_bad_ids(self) -> None:
        """An id must be an integer from 0 to 2**53 - 1."""
        for value in [None, -1, 2**53, True, "1", 1.5]:
            with self.assertRaises(ControlProtocolError):
                request_id({"id": value})
        self.assertEqual(result_message(3, "stats", None)["id"], 3)


class ErrorTests(SynchronousTestCase):
    """Errors travel as their class, message and status hint."""

    def test_every_class(self) -> None:
        """Each known class comes back as itself, with its status hint."""
        samples: list[MediaError] = [
            MediaError("m"),
            MediaOfferError("bad offer"),
            PortsExhausted("none left"),
            SessionExists("k"),
            UnknownSession("no session 'k'"),
            SdesError("bad key"),
            SrtpError("auth", "srtp-auth"),
            RelayUnavailable("down"),
            RelayTimeout("slow"),
            ReofferUnsupported("version 1"),
            ControlProtocolError("what", "unknown-method"),
        ]
        for error in samples:
            back = decode_error(json.loads(encode_message(error_message(1, error)))["error"])
            self.assertIs(type(back), type(error))
            self.assertEqual(str(back), str(error))
            self.assertEqual(back.status_hint, error.status_hint)
        protocol_error = decode_error(encode_error(ControlProtocolError("x", "too-long")))
        assert isinstance(protocol_error, ControlProtocolError)
        self.assertEqual(protocol_error.code, "too-long")
        names = {type(e).__name__ for e in samples} | {"RtpParseError"}
        self.assertEqual(set(ERROR_CLASSES), names)

    def test_status_hints(self) -> None:
        """The status hints the stage answers with survive the trip."""
        self.assertEqual(decode_error(encode_error(MediaOfferError("x"))).status_hint, 488)
        self.assertEqual(decode_error(encode_error(PortsExhausted("x"))).status_hint, 503)
        self.assertEqual(decode_error(encode_error(RelayTimeout("x"))).status_hint, 503)

    def test_unknown_class(self) -> None:
        """An unknown class is a L{MediaError} with the status hint given."""
        error = decode_error({"class": "FutureError", "message": "later", "status_hint": 480})
        self.assertIs(type(error), MediaError)
        self.assertEqual(error.status_hint, 480)
        self.assertEqual(str(error), "later")

    def test_not_media_error(self) -> None:
        """A bug in the relay is reported without detail, 500."""
        self.assertEqual(
            encode_error(ZeroDivisionError("secret detail")),
            {"class": "MediaError", "message": "internal relay error", "status_hint": 500},
        )

    def test_subclass(self) -> None:
        """An unknown subclass is sent as its nearest known class."""

        class Special(PortsExhausted):
            pass

        self.assertEqual(encode_error(Special("x"))["class"], "PortsExhausted")

    def test_garbage(self) -> None:
        """An error member that is not an object is a protocol error."""
        self.assertIsInstance(decode_error("x"), ControlProtocolError)
        self.assertEqual(decode_error({"class": 3, "status_hint": True}).status_hint, 500)


class HandshakeTests(SynchronousTestCase):
    """The proofs of the handshake."""

    def test_proofs_differ(self) -> None:
        """Client and server proofs differ, and depend on secret and challenges."""
        a, b = bytes(32), bytes([1]) * 32
        proof = client_proof(b"s", 1, a, b)
        self.assertNotEqual(proof, server_proof(b"s", 1, a, b))
        self.assertNotEqual(proof, client_proof(b"t", 1, a, b))
        self.assertNotEqual(proof, client_proof(b"s", 1, b, a))
        self.assertEqual(len(proof), 32)

    def test_known_vector(self) -> None:
        """The client proof is HMAC-SHA256 of the documented text."""
        import hashlib
        import hmac

        relay, client = bytes(32), bytes([255]) * 32
        text = b"sipedge-relay/1 client " + b"00" * 32 + b" " + b"ff" * 32
        self.assertEqual(
            client_proof(b"secret", 1, relay, client),
            hmac.new(b"secret", text, hashlib.sha256).digest(),
        )

    def test_hello(self) -> None:
        """C{hello} names the protocol, its versions and the challenge in hex."""
        self.assertEqual(
            hello_message(b"\x01" * 32),
            {
                "type": "hello",
                "protocol": "sipedge-relay",
                "versions": [1, 2],
                "challenge": "01" * 32,
            },
        )

    def test_hex_field(self) -> None:
        """A hex member must have the right size."""
        self.assertEqual(hex_field({"c": "0a0b"}, "c", 2), b"\n\x0b")
        for value in [None, "0a", "zz0b", 3]:
            with self.assertRaises(ControlProtocolError):
                hex_field({"c": value}, "c", 2)

    def test_documented_vector(self) -> None:
        """The test vector of C{doc/relay-protocol.md}."""
        secret = b"example-secret-0123456789abcdef"
        relay, client = bytes(range(32)), bytes(range(32, 64))
        self.assertEqual(
            client_proof(secret, 1, relay, client).hex(),
            "a9b34b721244e6e67d5d3aa2ab5dae22545a089877fbdca54b556b93480593d4",
        )
        self.assertEqual(
            server_proof(secret, 1, relay, client).hex(),
            "20be30ab0af7a31a4a9d8edeed2baa76227c5b442dd2c9d8bc64f3fc82589975",
        )
