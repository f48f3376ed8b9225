# -*- test-case-name: sipedge.test.test_message_nat -*-
"""
Tests for L{sipedge.message._nat}: NAT detection.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import (
    NatVerdict,
    Request,
    Response,
    detect_nat,
    is_private_address,
    parse_datagram,
    parse_ip_address,
    parse_sdp,
)
from sipedge.transaction import make_response
from sipedge.transport import Flow, stamp_via

PROXY = "192.0.2.1"
ROUTER = Flow("UDP", PROXY, 5060, "203.0.113.9", 41234)

SDP = (
    "v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\n"
)


def request(
    flow: Flow,
    via: str = "10.0.0.5:5060",
    contact: str | None = "<sip:bob@10.0.0.5:5060>",
    sdp_address: str | None = None,
    extra_via: bool = False,
) -> Request:
    """An INVITE as a phone sent it, received (and stamped) on C{flow}."""
    body = SDP.format(addr=sdp_address) if sdp_address else ""
    lines = [
        "INVITE sip:alice@example.com SIP/2.0",
        *(["Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK-up"] if extra_via else []),
        f"Via: SIP/2.0/{flow.transport} {via};branch=z9hG4bK-1;rport",
        "From: <sip:bob@example.com>;tag=b",
        "To: <sip:alice@example.com>",
        "Call-ID: nat-1",
        "CSeq: 1 INVITE",
        *([f"Contact: {contact}"] if contact else []),
        *(["Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body)}",
        "",
        body,
    ]
    message = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return stamp_via(message, flow)


class PrivateAddressTests(SynchronousTestCase):
    """Tests for L{is_private_address}."""

    def test_ranges(self) -> None:
        """
        RFC 1918, RFC 6598 shared, link-local and unique local addresses are
        private; public, loopback addresses and host names are not.
        """
        for host in ("10.0.0.5", "172.16.1.1", "172.31.255.255", "192.168.1.10",
                     "100.64.0.1", "100.127.255.254", "169.254.3.4", "fd00::5",
                     "[fe80::1]", "::ffff:10.1.2.3"):
            self.assertTrue(is_private_address(host), host)
        for host in ("203.0.113.9", "172.32.0.1", "100.128.0.1", "127.0.0.1", "::1",
                     "2001:db8::1", "phone.example.com", ""):
            self.assertFalse(is_private_address(host), host)


class ParseAddressTests(SynchronousTestCase):
    """Tests for L{parse_ip_address}, which the security layer keys sources with too."""

    def test_addresses(self) -> None:
        """
        IPv4 and IPv6 addresses parse, with brackets or an IPv6 zone; an
        IPv4-mapped IPv6 address is its IPv4 address; a host name, or
        nothing, is C{None}.
        """
        cases = {
            "192.0.2.1": "192.0.2.1",
            "[2001:db8:0::1]": "2001:db8::1",
            "2001:DB8::1": "2001:db8::1",
            "fe80::1%eth0": "fe80::1",
            "::ffff:192.0.2.1": "192.0.2.1",
        }
        for host, expected in cases.items():
            address = parse_ip_address(host)
            self.assertEqual(None if address is None else address.compressed, expected, host)
        for host in ("phone.example.com", "", "192.0.2.256", "[]"):
            self.assertIsNone(parse_ip_address(host), host)

    @given(st.ip_addresses())
    def test_any_address(self, address: object) -> None:
        """Every address parses back to itself, also in brackets (IPv6 as in a URI)."""
        text = str(address)
        parsed = parse_ip_address(text)
        if parsed is not None and parsed.version == 4 and ":" in text:
            return  # IPv4-mapped: its IPv4 address, as test_addresses shows
        self.assertEqual(parsed, address)
        if ":" in text:
            self.assertEqual(parse_ip_address(f"[{text}]"), address)


class DetectTests(SynchronousTestCase):
    """Tests for L{detect_nat}."""

    def test_phone_behind_nat(self) -> None:
        """
        A phone behind a home router (private Via, Contact and SDP, the
        router's address and a random port as source) is behind NAT, for
        every reason.
        """
        verdict = detect_nat(request(ROUTER, sdp_address="10.0.0.5"), ROUTER)
        self.assertIsInstance(verdict, NatVerdict)
        self.assertTrue(verdict.behind_nat)
        self.assertEqual(
            verdict.reasons,
            ("via-address", "via-port", "contact-private", "contact-address", "sdp-private"),
        )
        self.assertEqual(verdict.source, ROUTER)
        self.assertIn("203.0.113.9:41234", str(verdict))

    def test_public_phone(self) -> None:
        """A phone that sends from the address and port it names is not behind NAT."""
        flow = Flow("UDP", PROXY, 5060, "203.0.113.9", 5060)
        verdict = detect_nat(
            request(flow, via="203.0.113.9", contact="<sip:bob@203.0.113.9>",
                    sdp_address="203.0.113.9"),
            flow,
        )
        self.assertFalse(verdict.behind_nat)
        self.assertEqual(verdict.reasons, ())
        self.assertIn("not behind NAT", str(verdict))

    def test_port_only(self) -> None:
        """
        A user agent that names its source address but another port than
        the source is reported (via-port, contact-port) but not behind NAT:
        it may listen on another socket than it sends from.
        """
        verdict = detect_nat(
            request(ROUTER, via="203.0.113.9:5060", contact="<sip:bob@203.0.113.9:5060>"),
            ROUTER,
        )
        self.assertEqual(verdict.reasons, ("via-port", "contact-port"))
        self.assertFalse(verdict.behind_nat)
        self.assertIn("via-port", str(verdict))

    def test_stun_learnt(self) -> None:
        """A phone that names exactly its public address and port is not detected."""
        verdict = detect_nat(
            request(ROUTER, via="203.0.113.9:41234", contact="<sip:bob@203.0.113.9:41234>"),
            ROUTER,
        )
        self.assertFalse(verdict.behind_nat)

    def test_tcp_ports(self) -> None:
        """
        Over TCP the source port is always ephemeral: only the addresses count.
        """
        flow = Flow("TCP", PROXY, 5060, "203.0.113.9", 50123)
        public = request(flow, via="203.0.113.9", contact="<sip:bob@203.0.113.9;transport=tcp>")
        self.assertFalse(detect_nat(public, flow).behind_nat)
        private = request(flow, contact="<sip:bob@10.0.0.5;transport=tcp>")
        self.assertEqual(
            detect_nat(private, flow).reasons,
            ("via-address", "contact-private", "contact-address"),
        )

    def test_shared_address_space(self) -> None:
        """A carrier-grade NAT's shared address (100.64.0.0/10) in the Contact counts."""
        flow = Flow("UDP", PROXY, 5060, "203.0.113.9", 5060)
        verdict = detect_nat(request(flow, via="203.0.113.9", contact="<sip:b@100.70.1.2>"), flow)
        self.assertEqual(verdict.reasons, ("contact-private", "contact-address"))

    def test_sdp_only(self) -> None:
        """A private SDP address alone is found (sdp-private)."""
        flow = Flow("UDP", PROXY, 5060, "203.0.113.9", 5060)
        verdict = detect_nat(
            request(flow, via="203.0.113.9", contact="<sip:b@203.0.113.9>",
                    sdp_address="192.168.1.20"),
            flow,
        )
        self.assertEqual(verdict.reasons, ("sdp-private",))

    def test_lan_peer(self) -> None:
        """
        A peer on the internal network (private, but exactly the source) is
        not behind NAT.
        """
        flow = Flow("UDP", PROXY, 5060, "10.1.2.3", 5060)
        verdict = detect_nat(
            request(flow, via="10.1.2.3", contact="<sip:pbx@10.1.2.3>", sdp_address="10.1.2.3"),
            flow,
        )
        self.assertFalse(verdict.behind_nat)

    def test_through_a_proxy(self) -> None:
        """A request that came through another proxy (two Vias) is not tested."""
        self.assertFalse(detect_nat(request(ROUTER, extra_via=True), ROUTER).behind_nat)

    def test_host_names(self) -> None:
        """A host name in the Via is no finding; in the Contact it names another host."""
        flow = Flow("UDP", PROXY, 5060, "203.0.113.9", 5060)
        verdict = detect_nat(
            request(flow, via="phone.example.com", contact="<sip:b@phone.example.com>"), flow
        )
        self.assertEqual(verdict.reasons, ("contact-address",))

    def test_no_contact(self) -> None:
        """Without a Contact, only the Via is tested."""
        self.assertTrue(detect_nat(request(ROUTER, contact=None), ROUTER).behind_nat)
        self.assertEqual(detect_nat(request(ROUTER, contact=None), ROUTER).reasons,
                         ("via-address", "via-port"))

    @given(
        via=st.sampled_from(["10.0.0.5", "203.0.113.9:41234", "[2001:db8::1]:5060", "x.invalid"]),
        contact=st.text(max_size=40),
        body=st.binary(max_size=80),
    )
    def test_never_raises(self, via: str, contact: str, body: bytes) -> None:
        """
        Whatever the Contact and the body, L{detect_nat} gives a verdict:
        what does not parse is not used.
        """
        message = request(ROUTER, via=via, contact=None)
        headers = message.headers.added("Contact", contact).added(
            "Content-Type", "application/sdp"
        )
        message = Request(message.method, message.uri, headers, body)
        verdict = detect_nat(message, ROUTER)
        self.assertEqual(verdict.source, ROUTER)
        self.assertEqual(
            verdict.behind_nat, bool(set(verdict.reasons) - {"via-port", "contact-port"})
        )


_C_ADDRESSES = st.sampled_from(
    [
        "203.0.113.9", "10.0.0.5", "10.0.0.5/127", "192.168.1.2/3/2", "100.64.0.1",
        "198.51.100.4", "fd00::1", "[fd00::1]", "fe80::1%eth0", "x.invalid", "::ffff:10.0.0.5",
        "bad..", "",
    ]
)
_C_LINES = st.builds(
    lambda net, kind, address, ws: f"c={net}{ws}{kind}{ws}{address}",
    st.sampled_from(["IN", "in", "ATM", "X-Y"]),
    st.sampled_from(["IP4", "ip6", "IP6", "NSAP"]),
    _C_ADDRESSES,
    st.sampled_from([" ", "  ", "\t"]),
)
_JUNK = st.sampled_from(["a=rtcp:4001 IN IP4 10.0.0.6", " c=IN IP4 10.0.0.6", "c=IN IP4", "x", ""])
# A well-formed skeleton (so that most bodies parse), its c= lines drawn,
# now and then a line that breaks it.
_SDP_LINES = st.builds(
    lambda session, media, junk: [
        "o=- 1 1 IN IP4 10.0.0.5", "s=-", *session, "t=0 0",
        *[line for m in media for line in ("m=audio 4000 RTP/AVP 0", *m)], *junk,
    ],
    st.lists(_C_LINES, max_size=2),
    st.lists(st.lists(_C_LINES, max_size=2), max_size=3),
    st.lists(_JUNK, max_size=1),
)


def _sdp_verdict(body: bytes, source: str) -> bool:
    """What C{sdp-private} means: a parsed connection at a private address not the source."""
    try:
        sdp = parse_sdp(body)
    except Exception:
        return False
    sources = {source, "::ffff:" + source}
    return any(
        c is not None and is_private_address(c.address) and c.address not in sources
        for c in (sdp.connection, *(m.connection for m in sdp.media))
    )


class SdpPrivateTests(SynchronousTestCase):
    """C{sdp-private} is found (or not) exactly as in the parsed SDP."""

    @given(
        lines=_SDP_LINES,
        eol=st.sampled_from(["\r\n", "\n"]),
        source=st.sampled_from(["203.0.113.9", "10.0.0.5"]),
    )
    def test_same_as_parsed(self, lines: list[str], eol: str, source: str) -> None:
        """
        Whatever the C{c=} lines (private, shared, public, the source's,
        with a TTL, of other network types, malformed), the request is
        found C{sdp-private} exactly when its parsed SDP has a connection
        at a private address that is not the source.
        """
        flow = Flow("UDP", PROXY, 5060, source, 5060)
        body = eol.join(["v=0", *lines]).encode() + eol.encode()
        message = request(flow, via=f"{source}:5060", contact=None)
        headers = message.headers.added("Content-Type", "application/sdp")
        message = Request(message.method, message.uri, headers, body)
        reasons = detect_nat(message, flow).reasons
        self.assertEqual("sdp-private" in reasons, _sdp_verdict(body, source))


class ResponseTests(SynchronousTestCase):
    """L{detect_nat} on a callee's response, on the flow its request was sent over."""

    def answer(self, contact: str | None, sdp_address: str | None) -> Response:
        invite = request(Flow("UDP", PROXY, 5060, "198.51.100.7", 5060), via="198.51.100.7")
        made = make_response(invite, 200, to_tag="t")
        if contact is not None:
            made = made.with_headers(made.headers.added("Contact", contact))
        if sdp_address is not None:
            made = made.with_body(SDP.format(addr=sdp_address).encode(), "application/sdp")
        return made

    def test_callee_behind_nat(self) -> None:
        """
        A callee behind a home router answers with its private Contact and
        SDP from the router's address: behind NAT. The Vias (the caller's)
        are not tested.
        """
        verdict = detect_nat(self.answer("<sip:bob@10.0.0.5:5060>", "10.0.0.5"), ROUTER)
        self.assertTrue(verdict.behind_nat)
        self.assertEqual(verdict.reasons, ("contact-private", "contact-address", "sdp-private"))
        self.assertEqual(verdict.source, ROUTER)

    def test_public_callee(self) -> None:
        """A callee answering from the address it names is not behind NAT."""
        verdict = detect_nat(self.answer("<sip:bob@203.0.113.9:41234>", "203.0.113.9"), ROUTER)
        self.assertEqual(verdict.reasons, ())

    def test_sdp_only(self) -> None:
        """A response without a Contact (a 183 may have none) is judged by its SDP."""
        self.assertEqual(detect_nat(self.answer(None, "10.0.0.5"), ROUTER).reasons,
                         ("sdp-private",))

    def test_sdp_given(self) -> None:
        """
        A session description the caller parsed already (a part of a
        multipart body) is judged instead of the body, and saves parsing.
        """
        answer = self.answer(None, None).with_body(b"--b\r\n...", "multipart/mixed;boundary=b")
        self.assertEqual(detect_nat(answer, ROUTER).reasons, ())
        sdp = parse_sdp(SDP.format(addr="10.0.0.5").encode())
        self.assertEqual(detect_nat(answer, ROUTER, sdp).reasons, ("sdp-private",))
