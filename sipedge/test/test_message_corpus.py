# -*- test-case-name: sipedge.test.test_message_corpus -*-
"""
The RFC 4475 and RFC 5118 torture messages against the message core.

Each message in C{data/rfc4475} and C{data/rfc5118} (a byte-exact copy of
the shared corpus) is parsed as a datagram and checked as a proxy checks it;
the outcome must be one that C{EXPECTED.json} allows. Decisions that belong
to the proxy core (483 for Max-Forwards 0, 404 for unknown users, dropping a
response sent to a broadcast address) are not the message core's: for those
the message core must I{accept} the message so the proxy can decide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import (
    Request,
    Response,
    SipURI,
    StreamParser,
    check_request,
    check_response,
    parse_datagram,
    serialize,
)

DATA = Path(__file__).parent / "data"

# Tokens of EXPECTED.json that name what a proxy decides about a message the
# message core must accept.
_PROXY_DECISIONS = frozenset(
    ("accept", "accept_normalized", "404", "483", "401", "405", "drop", "drop_stray",
     "200_options_as_uas", "501")
)


def _outcome(data: bytes) -> str:
    """Parse and check C{data} as a datagram; C{'accept'} or the status."""
    try:
        message = parse_datagram(data)
        if isinstance(message, Request):
            check_request(message, supported=frozenset())
        else:
            check_response(message)
    except MessageParseError as e:
        if e.message is not None and isinstance(e.message, Response):
            return "drop"
        if e.message is None and data.startswith(b"SIP/"):
            return "drop"
        return str(e.status_hint)
    return "accept"


class _Entry(TypedDict):
    """The fields of an C{EXPECTED.json} entry that these tests read."""

    file: str
    size: int
    valid: bool
    proxy_expect: list[str]


def _load(corpus: str) -> dict[str, _Entry]:
    with (DATA / corpus / "EXPECTED.json").open() as f:
        return json.load(f)


def _sip_uri(uri: object) -> SipURI:
    """C{uri}, which the test expects to be a SIP URI."""
    assert isinstance(uri, SipURI), uri
    return uri


def _allowed(expect: list[str]) -> set[str]:
    allowed = set(expect)
    if allowed & _PROXY_DECISIONS:
        allowed.add("accept")
    return allowed


class CorpusTests(SynchronousTestCase):
    """Every torture message gives an outcome its RFC allows."""

    def _check_corpus(self, corpus: str) -> None:
        entries = _load(corpus)
        self.assertTrue(entries)
        failures = []
        for name, entry in sorted(entries.items()):
            data = (DATA / corpus / str(entry["file"])).read_bytes()
            self.assertEqual(len(data), entry["size"], f"{name}: corpus copy damaged")
            outcome = _outcome(data)
            allowed = _allowed(list(entry["proxy_expect"]))
            if outcome not in allowed:
                failures.append(f"{name}: got {outcome}, RFC allows {sorted(allowed)}")
            if entry["valid"] and outcome not in ("accept", "416", "420", "501"):
                # A valid message may be refused only for policy reasons.
                if not (set(entry["proxy_expect"]) & {"400"}):
                    failures.append(f"{name}: valid message refused with {outcome}")
        self.assertEqual(failures, [])

    def test_rfc4475(self) -> None:
        """Every RFC 4475 message is accepted or refused as the RFC says."""
        self._check_corpus("rfc4475")

    def test_rfc5118(self) -> None:
        """Every RFC 5118 message is accepted or refused as the RFC says."""
        self._check_corpus("rfc5118")

    def test_rfc5118_length_fixed_variants(self) -> None:
        """
        The RFC 5118 SDP messages with their Content-Length corrected are
        accepted, bodies whole.
        """
        for path in sorted((DATA / "rfc5118" / "variants").glob("*.cl-fixed.dat")):
            data = path.read_bytes()
            self.assertEqual(_outcome(data), "accept", path.name)
            message = parse_datagram(data)
            self.assertTrue(message.body.startswith(b"v=0"), path.name)
            self.assertTrue(message.body.endswith(b"\r\n"), path.name)

    def test_baddn_terminated(self) -> None:
        """
        With the missing empty line added, baddn is refused for its unquoted
        display name with a comma.
        """
        data = (DATA / "rfc4475" / "variants" / "baddn.terminated.dat").read_bytes()
        self.assertEqual(_outcome(data), "400")

    def test_round_trip_keeps_fields(self) -> None:
        """
        For every message that parses, serializing and parsing again gives
        an equal message, and every header field line other than
        Content-Length comes out byte for byte, in order.
        """
        for corpus in ("rfc4475", "rfc5118"):
            for path in sorted((DATA / corpus).glob("*.dat")):
                data = path.read_bytes()
                try:
                    message = parse_datagram(data)
                except MessageParseError:
                    continue
                wire = serialize(message)
                self.assertEqual(parse_datagram(wire), message, path.name)
                if b"\r\n " in data or b"\r\n\t" in data:
                    continue  # folded lines come out unfolded
                original = [
                    line
                    for line in data.split(b"\r\n\r\n", 1)[0].rstrip(b"\r\n").split(b"\r\n")[1:]
                    if not line.lower().startswith((b"content-length", b"l:", b"l "))
                ]
                written = wire.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:-1]
                self.assertEqual(
                    [line.replace(b" ", b"") for line in written],
                    [line.replace(b" ", b"") for line in original],
                    path.name,
                )


class CorpusFieldTests(SynchronousTestCase):
    """Fields of the valid torture messages read back right."""

    def _parse(self, name: str, corpus: str = "rfc4475") -> Request | Response:
        return parse_datagram((DATA / corpus / f"{name}.dat").read_bytes())

    def test_wsinv(self) -> None:
        """
        wsinv: folded lines, LWS around separators, mixed-case and compact
        names, leading zeros, and an unknown header kept as an opaque value.
        """
        m = self._parse("wsinv")
        assert isinstance(m, Request)
        self.assertEqual(m.max_forwards, 68)
        self.assertEqual((m.cseq.number, m.cseq.method), (9, "INVITE"))
        self.assertEqual(m.to_address.tag, "1918181833n")
        self.assertEqual(m.from_address.tag, "98asjd8")
        self.assertEqual(m.from_address.unquoted_display_name, 'J Rosenberg \\"')
        self.assertEqual(
            m.headers.get("NewFangledHeader"),
            "newfangled value continued newfangled value",
        )
        self.assertEqual(m.headers.get("UnknownHeaderWithUnusualValue"), ";;,,;;,;")
        self.assertEqual(
            [(v.transport, v.host, v.branch) for v in m.vias],
            [
                ("UDP", "192.0.2.2", "390skdjuw"),
                ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
                ("UDP", "192.168.255.111", "z9hG4bK30239"),
            ],
        )
        self.assertEqual(m.headers.get("Subject"), "")
        self.assertEqual(m.content_type, "application/sdp")
        self.assertEqual(len(m.body), 150)

    def test_intmeth(self) -> None:
        """intmeth: an extension method made of every token character."""
        m = self._parse("intmeth")
        assert isinstance(m, Request)
        self.assertEqual(m.method, "!interesting-Method0123456789_*+`.%indeed'~")
        self.assertEqual(m.cseq.method, m.method)
        uri = _sip_uri(m.request_uri)
        self.assertEqual(uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")

    def test_esc02_contacts(self) -> None:
        """esc02: only two Contact values; C%6Fntact is another header."""
        m = self._parse("esc02")
        self.assertEqual(len(m.contacts), 2)
        self.assertIsNotNone(m.headers.get("C%6Fntact"))
        self.assertEqual(getattr(m, "method", None), "RE%47IST%45R")

    def test_escnull(self) -> None:
        """escnull: two distinct Contacts, %00 and %00%00, both kept whole."""
        m = self._parse("escnull")
        contacts = m.contacts
        assert not isinstance(contacts, str)
        users = [_sip_uri(c.uri).unescaped_user for c in contacts]
        self.assertEqual(users, ["\x00", "\x00\x00"])
        self.assertEqual(_sip_uri(m.to_address.uri).unescaped_user, "null-\x00-null")

    def test_semiuri(self) -> None:
        """semiuri: the ;par= before the @ belongs to the user part."""
        m = self._parse("semiuri")
        assert isinstance(m, Request)
        uri = _sip_uri(m.request_uri)
        self.assertEqual(uri.user, "user;par=u%40example.net")
        self.assertEqual(uri.host, "example.com")

    def test_dblreq(self) -> None:
        """dblreq: the octets after Content-Length 0 are ignored on UDP."""
        m = self._parse("dblreq")
        assert isinstance(m, Request)
        self.assertEqual(m.method, "REGISTER")
        self.assertEqual(m.body, b"")

    def test_dblreq_stream(self) -> None:
        """
        dblreq: on a stream the same bytes are two messages (then garbage:
        the INVITE's body is 5 octets longer than its Content-Length, and
        the stream breaks there, after both messages are handed over).
        """
        data = (DATA / "rfc4475" / "dblreq.dat").read_bytes()
        parser = StreamParser()
        events = [e for e in parser.feed(data) if isinstance(e, Request)]
        self.assertEqual([e.method for e in events], ["REGISTER", "INVITE"])
        self.assertIsNotNone(parser.error)
        self.assertRaises(MessageParseError, parser.feed, b"")

    def test_mpart01(self) -> None:
        """mpart01: a binary body with NULs is framed by Content-Length."""
        m = self._parse("mpart01")
        self.assertEqual(len(m.body), 553)
        self.assertIn(b"\x00", m.body)

    def test_inv2543(self) -> None:
        """inv2543: no branch, no Content-Length, no Max-Forwards, yet valid."""
        m = self._parse("inv2543")
        self.assertIsNone(m.max_forwards)
        self.assertIsNone(m.top_via.branch)
        self.assertTrue(m.body.startswith(b"v=0"))

    def test_inv2543_stream(self) -> None:
        """inv2543 on a stream: a missing Content-Length breaks framing."""
        data = (DATA / "rfc4475" / "inv2543.dat").read_bytes()
        self.assertRaises(MessageParseError, StreamParser().feed, data)

    def test_clerr_stream(self) -> None:
        """clerr on a stream: the parser waits for the rest of the body."""
        data = (DATA / "rfc4475" / "clerr.dat").read_bytes()
        parser = StreamParser()
        self.assertEqual(parser.feed(data), [])
        self.assertEqual(parser.buffered, len(data))

    def test_zeromf(self) -> None:
        """zeromf parses with Max-Forwards 0 (the proxy answers 483)."""
        self.assertEqual(self._parse("zeromf").max_forwards, 0)

    def test_bext01(self) -> None:
        """bext01: the 420 names the unsupported Proxy-Require tags."""
        m = self._parse("bext01")
        assert isinstance(m, Request)
        with self.assertRaises(MessageParseError) as caught:
            check_request(m, supported=frozenset(("path",)))
        self.assertEqual(caught.exception.status_hint, 420)
        self.assertEqual(
            caught.exception.headers,
            (("Unsupported", "noProxiesSupportThis, norDoAnyProxiesSupportThis"),),
        )

    def test_badbranch(self) -> None:
        """badbranch: z9hG4bK alone is parsed, but is not an RFC 3261 branch."""
        via = self._parse("badbranch").top_via
        self.assertEqual(via.branch, "z9hG4bK")
        self.assertFalse(via.is_rfc3261_branch)

    def test_ipv6(self) -> None:
        """RFC 5118 IPv6 references: brackets kept, ports split right."""
        good = self._parse("ipv6-good", "rfc5118")
        assert isinstance(good, Request)
        self.assertEqual(_sip_uri(good.request_uri).host, "[2001:db8::10]")
        ambiguous = self._parse("port-ambiguous", "rfc5118")
        assert isinstance(ambiguous, Request)
        self.assertEqual(_sip_uri(ambiguous.request_uri).host, "[2001:db8::10:5070]")
        self.assertIsNone(_sip_uri(ambiguous.request_uri).port)
        unambiguous = self._parse("port-unambiguous", "rfc5118")
        assert isinstance(unambiguous, Request)
        self.assertEqual(_sip_uri(unambiguous.request_uri).host, "[2001:db8::10]")
        self.assertEqual(_sip_uri(unambiguous.request_uri).port, 5070)

    def test_via_received(self) -> None:
        """RFC 5118 4.5: received= with and without brackets both parse."""
        with_delim = self._parse("via-received-param-with-delim", "rfc5118")
        no_delim = self._parse("via-received-param-no-delim", "rfc5118")
        self.assertEqual(with_delim.top_via.received, "[2001:db8::9:255]")
        self.assertEqual(no_delim.top_via.received, "2001:db8::9:255")
