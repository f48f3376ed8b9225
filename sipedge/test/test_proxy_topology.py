"""
Tests for L{sipedge.proxy._seal} and L{sipedge.proxy._topology}: sealed
tokens round-trip and detect tampering; hiding then revealing gives back
what the internal side sent.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError, TokenError
from sipedge.media import DEFAULT_INTERNAL_NETWORKS
from sipedge.message import Headers, Request, Response
from sipedge.proxy import LocalIdentity, Sealer
from sipedge.proxy._topology import (
    CALL_ID_FLAG,
    PARAM,
    TOKEN_PREFIX,
    Refusal,
    Revealed,
    TopologyHider,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

SECRET = b"topology-hiding-test-secret-0123"
PROXY = "192.0.2.1"
LOCAL = LocalIdentity(["example.com"], [("UDP", PROXY, 5060)])
OURS = ("UDP", PROXY, 5060)
OUR_VIA = f"SIP/2.0/UDP {PROXY}:5060;branch=z9hG4bK-se-abc.0;rport"
OUR_RR = f"<sip:{PROXY}:5060;lr;se=0123456789abcdef0123>"

kinds = st.binary(min_size=1, max_size=1)
payloads = st.binary(max_size=300)


def hider(secret: bytes = SECRET) -> TopologyHider:
    """A hider with the default internal networks."""
    return TopologyHider(
        Sealer(secret), [ipaddress.ip_network(n) for n in DEFAULT_INTERNAL_NETWORKS]
    )


class SealerTests(SynchronousTestCase):
    """Tests for L{Sealer}."""

    @given(kinds, payloads, payloads)
    def test_round_trip(self, kind: bytes, plaintext: bytes, ad: bytes) -> None:
        """Opening a sealed token gives the plaintext back."""
        sealer = Sealer(SECRET)
        token = sealer.seal(kind, plaintext, ad)
        self.assertEqual(sealer.open(token, kind, ad), plaintext)
        self.assertEqual(sealer.kind_of(token), kind)

    @given(kinds, payloads, payloads)
    def test_token_chars(self, kind: bytes, plaintext: bytes, ad: bytes) -> None:
        """
        A token is base64url without padding: valid in a URI user part,
        a Call-ID and a header parameter.
        """
        token = Sealer(SECRET).seal(kind, plaintext, ad)
        allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        self.assertLessEqual(set(token), allowed)

    def test_deterministic(self) -> None:
        """The same plaintext and data give the same token (a stable mask)."""
        a, b = Sealer(SECRET), Sealer(SECRET)
        self.assertEqual(a.seal(b"i", b"call@10.0.0.5"), b.seal(b"i", b"call@10.0.0.5"))
        self.assertNotEqual(a.seal(b"i", b"call@10.0.0.5"), a.seal(b"i", b"call@10.0.0.6"))

    def test_hides_plaintext(self) -> None:
        """The plaintext cannot be read from the token."""
        token = Sealer(SECRET).seal(b"c", b"sip:alice@10.0.0.5:5060")
        self.assertNotIn("10.0.0.5", token)
        import base64

        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        self.assertNotIn(b"10.0.0.5", blob)

    @given(kinds, payloads, payloads, st.data())
    def test_tampering_detected(
        self, kind: bytes, plaintext: bytes, ad: bytes, data: st.DataObject
    ) -> None:
        """Any character of a token changed: it does not open."""
        sealer = Sealer(SECRET)
        token = sealer.seal(kind, plaintext, ad)
        i = data.draw(st.integers(0, len(token) - 1))
        replacement = data.draw(st.sampled_from("AQgw-_0z"))
        forged = token[:i] + replacement + token[i + 1 :]
        if forged == token:
            return
        try:
            opened = sealer.open(forged, kind, ad)
        except TokenError:
            return
        # Only a change in the unused low bits of the last character can
        # decode to the same bytes.
        self.assertEqual(opened, plaintext)
        self.assertEqual(i, len(token) - 1)

    def test_other_data(self) -> None:
        """A token presented with other associated data does not open."""
        sealer = Sealer(SECRET)
        token = sealer.seal(b"c", b"sip:alice@10.0.0.5", b"call-1")
        self.assertRaises(TokenError, sealer.open, token, b"c", b"call-2")

    def test_other_key(self) -> None:
        """A token made with another key does not open."""
        token = Sealer(b"another-secret-of-enough-length!").seal(b"c", b"x")
        self.assertRaises(TokenError, Sealer(SECRET).open, token, b"c")

    def test_other_kind(self) -> None:
        """A token of one kind does not open as another."""
        sealer = Sealer(SECRET)
        token = sealer.seal(b"c", b"x")
        self.assertRaises(TokenError, sealer.open, token, b"r")

    @given(st.text(max_size=200))
    def test_garbage(self, text: str) -> None:
        """Any text either opens or raises L{TokenError}, nothing else."""
        sealer = Sealer(SECRET)
        try:
            sealer.open(text, b"c")
        except TokenError:
            pass
        try:
            sealer.kind_of(text)
        except TokenError:
            pass

    def test_short_secret(self) -> None:
        """A secret shorter than 16 bytes is refused."""
        self.assertRaises(ValueError, Sealer, b"short")


call_ids = st.from_regex(
    r"[A-Za-z0-9.!%*_+`'~()<>:\\/\[\]?{}-]{1,40}(@[A-Za-z0-9.-]{1,30})?", fullmatch=True
)


class CallIdTests(SynchronousTestCase):
    """Masking and unmasking Call-IDs."""

    @given(call_ids)
    def test_round_trip(self, call_id: str) -> None:
        """Unmasking a masked Call-ID gives the original; masking is idempotent."""
        h = hider()
        masked = h.mask_call_id(call_id)
        self.assertTrue(masked.startswith(TOKEN_PREFIX))
        self.assertEqual(h.unmask_call_id(masked), call_id)
        self.assertEqual(h.mask_call_id(masked), masked)

    def test_not_masked(self) -> None:
        """A Call-ID that is not a mask unmasks to itself."""
        self.assertEqual(hider().unmask_call_id("abc@198.51.100.7"), "abc@198.51.100.7")

    def test_forged(self) -> None:
        """A Call-ID that looks masked but is not ours raises L{TokenError}."""
        self.assertRaises(
            TokenError,
            hider().unmask_call_id,
            TOKEN_PREFIX + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        other = hider(b"another-secret-of-enough-length!").mask_call_id("x@10.0.0.5")
        self.assertRaises(TokenError, hider().unmask_call_id, other)


class SidesTests(SynchronousTestCase):
    """Which addresses are internal."""

    def test_internal(self) -> None:
        """Private, loopback, link-local and ULA addresses are internal."""
        h = hider()
        for host in (
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "127.0.0.1",
            "::1",
            "[fd00::1]",
            "fe80::1%eth0",
            "::ffff:10.0.0.1",
        ):
            self.assertTrue(h.is_internal(host), host)

    def test_external(self) -> None:
        """Public addresses and host names are not internal."""
        h = hider()
        for host in ("198.51.100.7", "2001:db8::1", "pbx.example.com"):
            self.assertFalse(h.is_internal(host), host)
        self.assertTrue(h.is_external("198.51.100.7"))


vias = st.lists(
    st.builds(
        "SIP/2.0/{} {}:{};branch=z9hG4bK-{}{}".format,
        st.sampled_from(["UDP", "TCP", "TLS"]),
        st.sampled_from(["10.0.0.5", "pc33.corp.internal", "[fd00::5]", "192.168.1.9"]),
        st.integers(1, 65535),
        st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
        st.sampled_from(["", ";rport=5060;received=10.9.9.9", ";received=10.1.1.1"]),
    ),
    min_size=0,
    max_size=5,
)
rrs = st.lists(
    st.builds(
        "<sip:{}{};lr{}>".format,
        st.sampled_from(["10.0.0.1", "p1.corp.internal", "[fd00::1]", "172.16.0.9"]),
        st.sampled_from(["", ":5060", ":5080"]),
        st.sampled_from(["", ";transport=tcp", ";ftag=abc;did=1.2"]),
    ),
    min_size=0,
    max_size=4,
)


def internal_request(
    method: str, below_vias: list[str], below_rrs: list[str], contact: str
) -> Request:
    """A request as the core sends it outside: our Via and Record-Route on top."""
    r = request(
        method,
        "sip:bob@203.0.113.5",
        f"Contact: {contact}",
        call_id="c0ffee@10.0.0.5",
        via=f"{PROXY}:5060",
        branch="z9hG4bK-se-abc.0",
    )
    h = r.headers.removed("Via").removed("Contact")
    for v in [OUR_VIA, *below_vias]:
        h = h.added("Via", v)
    for v in [OUR_RR, *below_rrs]:
        h = h.added("Record-Route", v)
    h = h.added("Contact", contact)
    return r.with_headers(h)


class RoundTripTests(SynchronousTestCase):
    """Hiding a request and revealing what comes back."""

    @given(vias, rrs, st.booleans())
    def test_response_revealed(
        self, below_vias: list[str], below_rrs: list[str], mask: bool
    ) -> None:
        """
        A response to a hidden request, revealed, has the Vias, Record-Route
        and Call-ID the request had before hiding.
        """
        h = hider()
        original = internal_request("INVITE", below_vias, below_rrs, "<sip:alice@10.0.0.5>")
        hidden = h.hide_request(original, LOCAL, OURS, mask)
        self.assertEqual(len(hidden.headers.values("Via")), 1)
        self.assertEqual(len(hidden.headers.values("Record-Route")), 1)
        self.assertEqual(hidden.call_id.startswith(TOKEN_PREFIX), mask)
        response = answer(hidden, 200, ("Contact", "<sip:bob@203.0.113.5>"))
        revealed = h.reveal_response(response, LOCAL)
        assert isinstance(revealed, Response), revealed
        self.assertEqual(revealed.headers.values("Via"), original.headers.values("Via"))
        expected_rr = original.headers.values("Record-Route")
        if mask:
            expected_rr[0] = expected_rr[0].replace(">", f";{CALL_ID_FLAG}>")
        self.assertEqual(revealed.headers.values("Record-Route"), expected_rr)
        self.assertEqual(revealed.call_id, original.call_id)

    @given(rrs)
    def test_route_revealed(self, below_rrs: list[str]) -> None:
        """
        The callee's in-dialog request along the hidden route set, to the
        hidden Contact, is revealed into the route set and target the
        internal side gave.
        """
        h = hider()
        original = internal_request("INVITE", [], below_rrs, "<sip:alice@10.0.0.5;ob>")
        hidden = h.hide_request(original, LOCAL, OURS, True)
        contact = hidden.headers.get("Contact") or ""
        bye = request(
            "BYE",
            contact[1:-1],
            *(f"Route: {v}" for v in hidden.headers.values("Record-Route")),
            call_id=hidden.call_id,
            to="<sip:alice@example.com>;tag=a",
        )
        result = h.reveal_request(bye, LOCAL, True)
        assert isinstance(result, Revealed), result
        self.assertEqual(result.request.uri, "sip:alice@10.0.0.5;ob")
        self.assertEqual(result.request.call_id, "c0ffee@10.0.0.5")
        routes = result.request.headers.values("Route")
        self.assertEqual(routes[1:], below_rrs)
        self.assertNotIn(f";{PARAM}=", routes[0])
        self.assertTrue(result.mask_call_id)
        self.assertTrue(result.request.top_via.has_param(CALL_ID_FLAG))

    def test_response_route_above(self) -> None:
        """
        A 2xx going outside has the entries above ours folded into ours;
        the caller's Route brings them back in the order it will take.
        """
        h = hider()
        ok = answer(
            request("INVITE", "sip:dave@example.com", via="198.51.100.7:5060"),
            200,
            ("Record-Route", "<sip:10.0.0.2;lr>"),
            ("Record-Route", "<sip:10.0.0.1;lr>"),
            ("Record-Route", OUR_RR),
            ("Record-Route", "<sip:edge.example.net;lr>"),
            ("Contact", "<sip:dave@10.0.0.7>"),
        )
        hidden = h.hide_response(ok, LOCAL, OURS)
        rr = hidden.headers.values("Record-Route")
        self.assertEqual(len(rr), 2)
        self.assertEqual(rr[1], "<sip:edge.example.net;lr>")
        self.assertNotIn("10.0.0", str(hidden.headers))
        bye = request(
            "BYE",
            (hidden.headers.get("Contact") or "")[1:-1],
            *(f"Route: {v}" for v in reversed(rr)),
            to="<sip:dave@example.com>;tag=d",
        )
        bye = bye.with_headers(
            bye.headers.replaced("Route", "<sip:edge.example.net;lr>").added("Route", rr[0])
        )
        result = h.reveal_request(bye, LOCAL, True)
        assert isinstance(result, Revealed), result
        self.assertEqual(
            result.request.headers.values("Route")[2:], ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]
        )
        self.assertEqual(result.request.uri, "sip:dave@10.0.0.7")
        self.assertFalse(result.mask_call_id)

    def test_register_contact(self) -> None:
        """
        A REGISTER's Contact keeps its parameters, and its token holds the
        Path; it opens with any Call-ID (later calls have their own).
        """
        h = hider()
        register = internal_request("REGISTER", [], [], "<sip:alice@10.0.0.5>;expires=60;q=0.5")
        register = register.with_headers(
            register.headers.removed("Record-Route").added("Path", "<sip:10.0.0.1;lr>")
        )
        hidden = h.hide_request(register, LOCAL, OURS, True)
        contact = hidden.headers.get("Contact") or ""
        self.assertTrue(contact.endswith(">;expires=60;q=0.5"))
        self.assertNotIn("Path", hidden.headers)
        invite = request("INVITE", contact[1 : contact.index(">")], call_id="new-call")
        result = h.reveal_request(invite, LOCAL, True)
        assert isinstance(result, Revealed), result
        self.assertEqual(result.request.uri, "sip:alice@10.0.0.5")
        self.assertEqual(result.request.headers.values("Route"), ["<sip:10.0.0.1;lr>"])

    def test_no_record_route_of_ours(self) -> None:
        """Without an entry of ours, internal Record-Route entries are removed."""
        h = hider()
        r = internal_request("INVITE", [], ["<sip:10.0.0.1;lr>"], "<sip:a@10.0.0.5>")
        r = r.with_headers(
            r.headers.removed("Record-Route").added("Record-Route", "<sip:10.0.0.1;lr>")
        )
        self.assertNotIn("Record-Route", h.hide_request(r, LOCAL, OURS, False).headers)

    def test_star_contact(self) -> None:
        """C{Contact: *} (unregister all) passes unchanged."""
        h = hider()
        r = internal_request("REGISTER", [], [], "*")
        self.assertEqual(h.hide_request(r, LOCAL, OURS, False).headers.get("Contact"), "*")

    def test_tls_contact(self) -> None:
        """
        Towards a TLS peer, the masked Contact is C{sip:...;transport=tls},
        or a SIPS URI where the hidden Contact was one; towards TCP it
        names TCP.
        """
        h = hider()
        r = internal_request("INVITE", [], [], "<sip:a@10.0.0.5>")
        contact = h.hide_request(r, LOCAL, ("TLS", PROXY, 5061), False).headers.get("Contact")
        self.assertTrue((contact or "").startswith(f"<sip:{TOKEN_PREFIX}"))
        self.assertTrue((contact or "").endswith(";transport=tls>"))
        r = internal_request("INVITE", [], [], "<sips:a@10.0.0.5>")
        contact = h.hide_request(r, LOCAL, ("TLS", PROXY, 5061), False).headers.get("Contact")
        self.assertTrue((contact or "").startswith(f"<sips:{TOKEN_PREFIX}"))
        r = internal_request("INVITE", [], [], "<sip:a@10.0.0.5>")
        contact = h.hide_request(r, LOCAL, ("TCP", PROXY, 5060), False).headers.get("Contact")
        self.assertTrue((contact or "").endswith(";transport=tcp>"))


class RobustnessTests(SynchronousTestCase):
    """Hiding what does not fully parse."""

    def test_response_without_call_id(self) -> None:
        """
        A response with no Call-ID and a bad CSeq (our 400 to a broken
        request) is still hidden (Contact, Record-Route), not refused.
        """
        response = Response(
            400,
            "Bad Request",
            Headers.of(
                ("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1"),
                ("CSeq", "one INVITE"),
                ("Contact", "<sip:x@10.0.0.5>"),
                ("Record-Route", "<sip:10.0.0.1;lr>"),
            ),
        )
        hidden = hider().hide_response(response, LOCAL, OURS)
        self.assertNotIn("10.0.0", str(hidden.headers))

    def test_unreadable_contact_dropped(self) -> None:
        """A Contact that does not parse never goes out."""
        r = internal_request("INVITE", [], [], "<sip:a@10.0.0.5>")
        r = r.with_headers(r.headers.replaced("Contact", "<sip:a@10.0.0.5"))
        self.assertNotIn("Contact", hider().hide_request(r, LOCAL, OURS, False).headers)


header_values = st.one_of(
    st.sampled_from(
        [
            "<sip:10.0.0.1;lr>",
            f"<sip:{PROXY}:5060;lr;sth=AAAA>",
            f"<sip:{TOKEN_PREFIX}AAAA@{PROXY}:5060>",
            f"{TOKEN_PREFIX}abc",
            "<sip:a@b",
            "*",
            "",
            ",,",
            f"SIP/2.0/UDP {PROXY}:5060;branch=z9hG4bK-se-x;sth=@@",
            "SIP/2.0/UDP",
            "<tel:+123>;tag=x",
            "1 INVITE",
            "x INVITE",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
fields = st.lists(
    st.tuples(
        st.sampled_from(
            ["Via", "Route", "Record-Route", "Contact", "Call-ID", "To", "From", "CSeq", "Path"]
        ),
        header_values,
    ),
    max_size=8,
)


class FuzzTests(SynchronousTestCase):
    """Whatever comes in, hiding and revealing answer or raise L{MessageParseError}."""

    @given(
        fields,
        st.sampled_from(["sip:bob@example.com", f"sip:{TOKEN_PREFIX}x@{PROXY}:5060"]),
        st.booleans(),
    )
    def test_requests(self, pairs: list[tuple[str, str]], uri: str, external: bool) -> None:
        """No other exception from any request."""
        h = hider()
        r = Request("INVITE", uri, Headers.of(*pairs))
        for call in (
            lambda: h.reveal_request(r, LOCAL, external),
            lambda: h.hide_request(r, LOCAL, OURS, external),
        ):
            try:
                call()
            except MessageParseError:
                pass

    @given(fields)
    def test_responses(self, pairs: list[tuple[str, str]]) -> None:
        """No other exception from any response."""
        h = hider()
        r = Response(200, "OK", Headers.of(*pairs))
        for call in (
            lambda: h.reveal_response(r, LOCAL),
            lambda: h.hide_response(r, LOCAL, OURS),
        ):
            try:
                call()
            except MessageParseError:
                pass


class RevealRequestTests(SynchronousTestCase):
    """What L{TopologyHider.reveal_request} refuses."""

    @given(st.from_regex(r"[A-Za-z0-9_-]{0,80}", fullmatch=True))
    def test_garbage_contact_token(self, text: str) -> None:
        """A Request-URI of ours with any token of garbage is refused with 403."""
        r = request("BYE", f"sip:{TOKEN_PREFIX}{text}@{PROXY}:5060", to="<sip:a@example.com>;tag=x")
        result = hider().reveal_request(r, LOCAL, True)
        assert isinstance(result, Refusal), result
        self.assertEqual(result.status, 403)

    def test_ordinary_request(self) -> None:
        """A request without tokens passes unchanged."""
        r = request("INVITE", "sip:bob@example.com")
        result = hider().reveal_request(r, LOCAL, True)
        assert isinstance(result, Revealed), result
        self.assertEqual(result.request, r)
        self.assertFalse(result.mask_call_id)

    def test_initial_from_inside_masked(self) -> None:
        """A dialog-forming request from inside is to be masked outside."""
        r = request("INVITE", "sip:bob@example.com")
        result = hider().reveal_request(r, LOCAL, False)
        assert isinstance(result, Revealed), result
        self.assertTrue(result.mask_call_id)

    def test_clear_internal_maddr(self) -> None:
        """A Request-URI from outside with an internal maddr is refused."""
        r = request("OPTIONS", "sip:bob@example.com;maddr=10.0.0.9")
        result = hider().reveal_request(r, LOCAL, True)
        assert isinstance(result, Refusal), result
        self.assertEqual(result.status, 403)

    def test_clear_internal_from_inside(self) -> None:
        """From inside, internal addresses are fine."""
        r = request("OPTIONS", "sip:bob@10.0.0.9")
        self.assertIsInstance(hider().reveal_request(r, LOCAL, False), Revealed)

    def test_our_internal_address(self) -> None:
        """Our own address is not refused even if it is in an internal network."""
        local = LocalIdentity(["example.com"], [("UDP", "10.0.0.1", 5060)])
        r = request("OPTIONS", "sip:bob@10.0.0.1:5060")
        self.assertIsInstance(hider().reveal_request(r, local, True), Revealed)
