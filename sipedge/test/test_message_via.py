# -*- test-case-name: sipedge.test.test_message_via -*-
"""Tests for L{sipedge.message._via}."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import Via, parse_via, parse_via_list
from sipedge.test.strategies import hosts, ipv4_addresses, ipv6_references, tokens

SIPISH = st.text(
    alphabet='<>"; ,=:@sip/\\[]SIP2.0UDPbranchz9hG4bK.\t\r\n-rportreceived',
    max_size=60,
)


def _param_values() -> st.SearchStrategy[tuple[str, str | None]]:
    """One via-params element, of every kind the grammar has."""
    return st.one_of(
        st.tuples(st.just("branch"), tokens()),
        st.tuples(st.just("rport"), st.none() | st.integers(0, 65535).map(str)),
        st.tuples(
            st.just("received"),
            st.one_of(
                ipv4_addresses(),
                ipv6_references(),
                ipv6_references().map(lambda r: r[1:-1]),
            ),
        ),
        st.tuples(st.just("maddr"), hosts()),
        st.tuples(st.just("ttl"), st.integers(0, 255).map(str)),
        st.tuples(
            tokens().map(lambda t: "x-" + t),
            st.none()
            | tokens()
            | st.text(alphabet="abc ;,=\\\"'<>", max_size=8).map(
                lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'
            ),
        ),
    )


def vias() -> st.SearchStrategy[Via]:
    """L{Via} values with every kind of host, port and parameter."""
    return st.builds(
        Via,
        protocol=st.just("SIP/2.0") | st.builds(lambda a, b: f"{a}/{b}", tokens(), tokens()),
        transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]) | tokens(),
        host=hosts(),
        port=st.none() | st.integers(0, 65535),
        params=st.lists(_param_values(), max_size=5).map(tuple),
    )


def _spaced(draw: Any, via: Via) -> str:
    """C{via} written with random LWS wherever the grammar allows it."""

    def ws() -> str:
        return draw(st.sampled_from(["", "", " ", "  ", "\t", "\r\n "]))

    name, version = via.protocol.split("/")
    text = f"{ws()}{name}{ws()}/{ws()}{version}{ws()}/{ws()}{via.transport}"
    text += draw(st.sampled_from([" ", "  ", "\t", "\r\n "])) + via.host
    if via.port is not None:
        text += f"{ws()}:{ws()}{via.port}"
    for pname, value in via.params:
        text += f"{ws()};{ws()}{pname}"
        if value is not None:
            text += f"{ws()}={ws()}{value}"
    return text + ws()


class ParseViaTests(SynchronousTestCase):
    """Tests for L{parse_via}."""

    def test_typical(self) -> None:
        """
        If the Via is the common C{SIP/2.0/UDP host:port;branch;rport},
        L{parse_via} gives every part, and C{str()} gives the text back.
        """
        text = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport"
        via = parse_via(text)
        self.assertEqual(via.protocol, "SIP/2.0")
        self.assertEqual(via.transport, "UDP")
        self.assertEqual(via.host, "192.0.2.1")
        self.assertEqual(via.port, 5060)
        self.assertEqual(via.params, (("branch", "z9hG4bK776asdhds"), ("rport", None)))
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertIs(via.rport, True)
        self.assertIsNone(via.received)
        self.assertEqual(via.sent_by, "192.0.2.1:5060")
        self.assertTrue(via.is_rfc3261_branch)
        self.assertEqual(str(via), text)

    def test_no_port(self) -> None:
        """If the sent-by has no port, L{Via.port} is C{None}."""
        via = parse_via("SIP/2.0/TCP pc33.atlanta.com;branch=z9hG4bK776asdhds")
        self.assertIsNone(via.port)
        self.assertEqual(via.sent_by, "pc33.atlanta.com")

    def test_transport_upper_cased(self) -> None:
        """If the transport is in lower case, L{Via.transport} upper-cases it."""
        self.assertEqual(parse_via("SIP/2.0/udp h;branch=z9hG4bKx").transport, "UDP")
        self.assertEqual(Via(transport="ws", host="h").transport, "WS")

    def test_protocol_case_kept(self) -> None:
        """If the protocol name is written in lower case, it is kept as written."""
        self.assertEqual(parse_via("sip/2.0/UDP h").protocol, "sip/2.0")

    def test_transports(self) -> None:
        """
        If the transport is UDP, SCTP, TLS, TCP or an unknown token (RFC 4475
        3.1.1.10 transports), or WSS (RFC 7118), L{parse_via} accepts it.
        """
        for text, transport in [
            ("SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw", "UDP"),
            ("SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf", "SCTP"),
            ("SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj", "TLS"),
            ("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en", "UNKNOWN"),
            ("SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee", "TCP"),
            ("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks", "WSS"),
        ]:
            via = parse_via(text)
            self.assertEqual(via.transport, transport)
            self.assertEqual(str(via), text)

    def test_wsinv_spacing(self) -> None:
        """
        If there is LWS around C{/} (RFC 4475 3.1.1.1 wsinv), L{parse_via}
        accepts it and C{str()} normalises it.
        """
        via = parse_via("SIP  /   2.0   / UDP    192.0.2.2;branch=390skdjuw")
        self.assertEqual(via.protocol, "SIP/2.0")
        self.assertEqual(via.host, "192.0.2.2")
        self.assertEqual(via.branch, "390skdjuw")
        self.assertFalse(via.is_rfc3261_branch)
        self.assertEqual(str(via), "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw")

    def test_wsinv_list(self) -> None:
        """
        If a header value holds two Vias with LWS around C{;}, C{=} and the
        comma (RFC 4475 3.1.1.1 wsinv), L{parse_via_list} gives both.
        """
        vias = parse_via_list(
            "SIP/2.0/TCP spindle.example.com   ;branch  =   z9hG4bK9ikj8  ,\n"
            " SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239"
        )
        self.assertEqual(
            vias,
            (
                Via(
                    transport="TCP",
                    host="spindle.example.com",
                    params=(("branch", "z9hG4bK9ikj8"),),
                ),
                Via(
                    transport="UDP",
                    host="192.168.255.111",
                    params=(("branch", "z9hG4bK30239"),),
                ),
            ),
        )
        self.assertEqual(
            [str(v) for v in vias],
            [
                "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8",
                "SIP/2.0/UDP 192.168.255.111;branch=z9hG4bK30239",
            ],
        )

    def test_wsinv_folded(self) -> None:
        """
        If the Via values of RFC 4475 3.1.1.1 wsinv are given with their
        line folding (CRLF and indentation) intact, they parse.
        """
        self.assertEqual(
            str(parse_via("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw")),
            "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw",
        )
        vias = parse_via_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
            "  branch  =   z9hG4bK9ikj8  ,\r\n"
            " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
            " z9hG4bK30239"
        )
        self.assertEqual([v.branch for v in vias], ["z9hG4bK9ikj8", "z9hG4bK30239"])

    def test_bare_magic_cookie(self) -> None:
        """
        If the branch is exactly C{z9hG4bK} ("syntactically well-formed,
        semantically defective", RFC 4475 3.2.1 badbranch), L{parse_via}
        accepts it but L{Via.is_rfc3261_branch} is false.
        """
        via = parse_via("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK")
        self.assertEqual(via.branch, "z9hG4bK")
        self.assertFalse(via.is_rfc3261_branch)

    def test_no_branch(self) -> None:
        """If there is no branch, L{Via.branch} is C{None}."""
        via = parse_via("SIP/2.0/UDP 192.0.2.1")
        self.assertIsNone(via.branch)
        self.assertFalse(via.is_rfc3261_branch)

    def test_param_names_case_insensitive(self) -> None:
        """If a parameter name is in upper case, the properties still find it."""
        via = parse_via("SIP/2.0/UDP h;BRANCH=z9hG4bKa;Received=192.0.2.9;RPORT=7")
        self.assertEqual(via.branch, "z9hG4bKa")
        self.assertEqual(via.received, "192.0.2.9")
        self.assertEqual(via.rport, 7)

    def test_received_ipv6(self) -> None:
        """
        If C{received} holds an IPv6 address with or without brackets (RFC
        5118 4.5 via-received-param-with-delim and -no-delim), L{parse_via}
        accepts it and keeps it as written.
        """
        via = parse_via(
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111"
        )
        self.assertEqual(via.host, "[2001:db8::9:1]")
        self.assertEqual(via.received, "[2001:db8::9:255]")
        via = parse_via(
            "SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=z9hG4bKas3"
        )
        self.assertEqual(via.port, 6050)
        self.assertEqual(via.received, "2001:db8::9:255")
        self.assertEqual(
            str(via),
            "SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=z9hG4bKas3",
        )

    def test_ipv4_mapped(self) -> None:
        """If sent-by is an IPv4-mapped IPv6 reference (RFC 5118 4.9), it parses."""
        via = parse_via("SIP/2.0/UDP [::ffff:192.0.2.1]:5060;branch=z9hG4bKbh19")
        self.assertEqual(via.host, "[::ffff:192.0.2.1]")
        self.assertEqual(via.port, 5060)

    def test_rport_value(self) -> None:
        """If C{rport} has a value (RFC 3581 4), L{Via.rport} is the port."""
        via = parse_via("SIP/2.0/UDP h;rport=5061;received=192.0.2.1")
        self.assertEqual(via.rport, 5061)
        self.assertIsNone(parse_via("SIP/2.0/UDP h").rport)

    def test_maddr_ttl(self) -> None:
        """If C{maddr} and C{ttl} are present, the properties give them."""
        via = parse_via("SIP/2.0/UDP h;maddr=224.2.0.1;ttl=16;branch=z9hG4bKx")
        self.assertEqual(via.maddr, "224.2.0.1")
        self.assertEqual(via.ttl, 16)
        self.assertIsNone(parse_via("SIP/2.0/UDP h").ttl)

    def test_extension_params(self) -> None:
        """
        If there are unknown parameters with and without values (RFC 4475
        3.1.1.7 longreq), they are kept in order, with quoted values as
        written.
        """
        text = 'SIP/2.0/TCP sip33.example.com;branch=z9hG4bKx;unknown;x="a;b,c";y=[2001:db8::1]'
        via = parse_via(text)
        self.assertEqual(
            via.params,
            (
                ("branch", "z9hG4bKx"),
                ("unknown", None),
                ("x", '"a;b,c"'),
                ("y", "[2001:db8::1]"),
            ),
        )
        self.assertEqual(via.param("x"), '"a;b,c"')
        self.assertEqual(via.param("unknown"), "")
        self.assertTrue(via.has_param("UNKNOWN"))
        self.assertEqual(str(via), text)

    def test_quoted_value_with_comma_in_list(self) -> None:
        """If a quoted value holds a comma, L{parse_via_list} does not split there."""
        vias = parse_via_list('SIP/2.0/UDP a;x="1,2", SIP/2.0/UDP b')
        self.assertEqual([v.host for v in vias], ["a", "b"])

    def test_empty_params_rejected(self) -> None:
        """
        If there are empty parameters and empty list elements (RFC 4475
        3.1.2.1 badinv01: C{SIP/2.0/UDP 192.0.2.15;;,;,,}), L{parse_via_list} raises
        L{MessageParseError} with status 400.
        """
        error = self.assertRaises(MessageParseError, parse_via_list, "SIP/2.0/UDP 192.0.2.15;;,;,,")
        self.assertEqual(error.status_hint, 400)
        self.assertRaises(MessageParseError, parse_via, "SIP/2.0/UDP 192.0.2.15;;")
        self.assertRaises(MessageParseError, parse_via, "SIP/2.0/UDP 192.0.2.15;")
        self.assertRaises(MessageParseError, parse_via_list, "SIP/2.0/UDP a,")
        self.assertRaises(MessageParseError, parse_via_list, ",SIP/2.0/UDP a")

    def test_bad_rejected(self) -> None:
        """
        If the Via lacks a sent-by, has a bad port, an unbracketed IPv6 host,
        an empty or bad value of a known parameter, or junk, L{parse_via}
        raises L{MessageParseError}.
        """
        for text in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ;branch=z9hG4bKx",
            "SIP/2.0 192.0.2.1",
            "SIP/2.0/UDP/X 192.0.2.1",
            "SIP/2.0/UDP 192.0.2.1:",
            "SIP/2.0/UDP 192.0.2.1:65536",
            "SIP/2.0/UDP 192.0.2.1:" + "9" * 10000,
            "SIP/2.0/UDP 192.0.2.1:5060:5060",
            "SIP/2.0/UDP 2001:db8::1",
            "SIP/2.0/UDP 2001:db8::1:5060",
            "SIP/2.0/UDP [2001:db8::1",
            "SIP/2.0/UDP [2001:db8:::::1]",
            "SIP/2.0/UDP [example.com]",
            "SIP/2.0/UDP -bad-.example.com",
            "SIP/2.0/UDP host..example.com",
            "SIP/2.0/UDP 192.0.2.300",
            "SIP/2.0/UDP h;branch=",
            "SIP/2.0/UDP h;branch",
            'SIP/2.0/UDP h;branch="z9hG4bKx"',
            "SIP/2.0/UDP h;branch=[2001:db8::1]",
            "SIP/2.0/UDP h;received",
            "SIP/2.0/UDP h;maddr",
            "SIP/2.0/UDP h;ttl",
            "SIP/2.0/UDP h;received=example.com",
            "SIP/2.0/UDP h;received=2001:db8::g",
            "SIP/2.0/UDP h;rport=",
            "SIP/2.0/UDP h;rport=65536",
            "SIP/2.0/UDP h;rport=x",
            "SIP/2.0/UDP h;ttl=256",
            "SIP/2.0/UDP h;ttl=0001",
            "SIP/2.0/UDP h;maddr=a..b",
            'SIP/2.0/UDP h;x="unterminated',
            "SIP/2.0/UDP h;x=a b",
            "SIP/2.0/UDP h;x=<a>",
            "SIP/2.0/UDP h;x y",
            "SIP/2.0/UDP h junk",
            "SIP/2.0/UDP h, SIP/2.0/UDP i",
            "SIP/2.0/UDP h\u00e9",
        ]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_via, text)

    def test_error_status(self) -> None:
        """If a Via is malformed, the error carries status 400."""
        error = self.assertRaises(MessageParseError, parse_via, "SIP/2.0/UDP")
        self.assertEqual(error.status_hint, 400)

    def test_single_value_list(self) -> None:
        """If the value holds one Via, L{parse_via_list} gives a 1-tuple."""
        self.assertEqual(
            parse_via_list("SIP/2.0/UDP h;branch=z9hG4bKx"),
            (parse_via("SIP/2.0/UDP h;branch=z9hG4bKx"),),
        )

    @given(vias())
    def test_round_trip(self, via: Via) -> None:
        """If a L{Via} is formatted, L{parse_via} gives an equal value back."""
        text = str(via)
        self.assertEqual(parse_via(text), via)
        self.assertEqual(str(parse_via(text)), text)

    @given(st.data(), vias())
    def test_spacing_round_trip(self, data: st.DataObject, via: Via) -> None:
        """
        If a L{Via} is written with LWS wherever allowed, L{parse_via} gives
        an equal value, whose C{str()} reparses to it too.
        """
        parsed = parse_via(_spaced(data.draw, via))
        self.assertEqual(parsed, via)
        self.assertEqual(parse_via(str(parsed)), via)

    @given(st.lists(vias(), min_size=1, max_size=4))
    def test_list_round_trip(self, vias: list[Via]) -> None:
        """If Vias are joined with commas, L{parse_via_list} gives them all back."""
        self.assertEqual(parse_via_list(" , ".join(str(v) for v in vias)), tuple(vias))

    @given(st.text() | SIPISH)
    def test_only_parse_errors(self, text: str) -> None:
        """If any text is parsed, only L{MessageParseError} is ever raised."""
        for parse in (parse_via, parse_via_list):
            try:
                result = parse(text)
            except MessageParseError:
                continue
            for via in result if isinstance(result, tuple) else (result,):
                self._touch(via)

    @given(st.text(alphabet=st.characters(exclude_categories=())))
    def test_only_parse_errors_surrogates(self, text: str) -> None:
        """
        If the text holds lone surrogates (undecodable octets), only
        L{MessageParseError} is raised.
        """
        for tail in (text, ";" + text, ";x=" + text, ";received=" + text):
            try:
                self._touch(parse_via("SIP/2.0/UDP h" + tail))
            except MessageParseError:
                pass

    def _touch(self, via: Via) -> None:
        """Use every property; only L{MessageParseError} may escape."""
        str(via)
        for name in ("branch", "received", "rport", "maddr", "ttl", "sent_by"):
            try:
                getattr(via, name)
            except MessageParseError:
                pass
        via.is_rfc3261_branch  # noqa: B018


class ViaBuilderTests(SynchronousTestCase):
    """Tests for the L{Via} builders."""

    def setUp(self) -> None:
        self.via = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport")

    def test_with_received(self) -> None:
        """If C{with_received} is called, C{received} is appended."""
        via = self.via.with_received("198.51.100.7")
        self.assertEqual(via.received, "198.51.100.7")
        self.assertEqual(
            str(via),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=198.51.100.7",
        )
        self.assertIsNone(self.via.received)

    def test_with_received_ipv6(self) -> None:
        """If C{with_received} gets an IPv6 address, it is kept as given."""
        self.assertEqual(self.via.with_received("2001:db8::1").received, "2001:db8::1")
        self.assertEqual(self.via.with_received("[2001:db8::1]").received, "[2001:db8::1]")

    def test_with_received_bad(self) -> None:
        """If C{with_received} gets something that is not an address, it raises."""
        self.assertRaises(MessageParseError, self.via.with_received, "host.example.com")

    def test_with_rport(self) -> None:
        """
        If C{with_rport} gets a port, the C{rport} flag is replaced in place
        by C{rport=port} (RFC 3581 4); without one it is a flag.
        """
        via = self.via.with_rport(61234)
        self.assertEqual(via.rport, 61234)
        self.assertEqual(str(via), "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport=61234")
        self.assertIs(via.with_rport().rport, True)

    def test_with_branch(self) -> None:
        """If C{with_branch} is called, the branch is replaced in place."""
        via = self.via.with_branch("z9hG4bKnew")
        self.assertEqual(str(via), "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnew;rport")

    def test_with_param_drops_duplicates(self) -> None:
        """If a parameter appears twice, C{with_param} keeps one, at the first place."""
        via = parse_via("SIP/2.0/UDP h;x=1;y;X=2").with_param("x", "3")
        self.assertEqual(via.params, (("x", "3"), ("y", None)))

    def test_with_param_bad(self) -> None:
        """If C{with_param} gets a bad name or value, it raises."""
        self.assertRaises(MessageParseError, self.via.with_param, "a b", "c")
        self.assertRaises(MessageParseError, self.via.with_param, "x", "a;b")
        self.assertRaises(MessageParseError, self.via.with_param, "ttl", "300")

    def test_without_param(self) -> None:
        """If C{without_param} is called, every parameter of that name goes."""
        self.assertEqual(
            str(self.via.without_param("RPORT")),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds",
        )

    def test_values_are_hashable(self) -> None:
        """If two Vias are equal, they hash alike."""
        other = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport")
        self.assertEqual(hash(other), hash(self.via))

    def test_defaults(self) -> None:
        """If only transport and host are given, a minimal Via is built."""
        self.assertEqual(str(Via(transport="tls", host="h.example")), "SIP/2.0/TLS h.example")


Params = tuple[tuple[str, str | None], ...]


def _cased(params: Params, draw: Any) -> Params:
    """C{params} with their names in upper or mixed case now and then."""
    return tuple(
        (draw(st.sampled_from([name, name.upper(), name.capitalize()])), value)
        for name, value in params
    )


class StampedTests(SynchronousTestCase):
    """L{Via.stamped}, the one-pass stamp, against the two C{with_*} calls."""

    @given(
        st.data(),
        vias(),
        ipv4_addresses() | ipv6_references().map(lambda r: r[1:-1]),
        st.none() | st.integers(0, 65535),
    )
    def test_same_as_with_rport_and_received(
        self, data: st.DataObject, via: Via, received: str, rport: int | None
    ) -> None:
        """
        C{via.stamped(received, rport)} equals C{via.with_rport(rport)}
        (when C{rport} is given) then C{.with_received(received)}, whatever
        case, order and repetition the parameters have, and formats the same.
        """
        via = via._with_params(_cased(via.params, data.draw))
        expected = via if rport is None else via.with_rport(rport)
        expected = expected.with_received(received)
        stamped = via.stamped(received, rport)
        self.assertEqual(stamped, expected)
        self.assertEqual(str(stamped), str(expected))

    def test_refuses_what_with_param_refuses(self) -> None:
        """A received that is not an address, or a port out of range, raises as before."""
        via = parse_via("SIP/2.0/UDP h;rport")
        for received, rport in (("example.com", 5060), ("192.0.2.1", 70000), ("", None)):
            with self.assertRaises(MessageParseError) as slow:
                via.with_rport(rport).with_received(received) if rport is not None else (
                    via.with_received(received)
                )
            with self.assertRaises(MessageParseError) as fast:
                via.stamped(received, rport)
            self.assertEqual(fast.exception.reason, slow.exception.reason)
