# -*- test-case-name: sipedge.test.test_message_uri -*-
"""
Tests for L{sipedge.message._uri}, L{sipedge.message._sip_uri} and
L{sipedge.message._uri_grammar}.
"""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message._sip_uri import SipURI
from sipedge.message._uri import _URI_MEMO, AbsoluteURI, TelURI, parse_sip_uri, parse_uri
from sipedge.message._uri_grammar import (
    escape_header,
    escape_param,
    escape_user,
    unescape,
)
from sipedge.test.strategies import (
    absolute_uri_texts,
    decoded_text,
    hosts,
    sip_uri_texts,
    sip_uris,
    tel_uri_texts,
)

# RFC 4475 3.1.1.2
UNUSUAL = (
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
)


class ParseSipURITests(SynchronousTestCase):
    """Tests for L{parse_uri} and L{parse_sip_uri} with SIP and SIPS URIs."""

    def assertRoundTrip(self, text: str) -> SipURI:
        """Parse C{text} as a SIP URI and check it formats back unchanged."""
        uri = parse_sip_uri(text)
        self.assertEqual(str(uri), text)
        self.assertEqual(parse_uri(text), uri)
        return uri

    def test_typical(self) -> None:
        """
        If a URI has a user, an IPv4 host, a port and a parameter,
        L{parse_uri} returns a L{SipURI} with each component.
        """
        uri = self.assertRoundTrip("sip:alice@192.0.2.1:5060;transport=udp")
        self.assertEqual(
            uri,
            SipURI("sip", "alice", None, "192.0.2.1", 5060, (("transport", "udp"),)),
        )

    def test_host_only(self) -> None:
        """If a URI has only a host, user, password and port are C{None}."""
        uri = self.assertRoundTrip("sip:example.com")
        self.assertEqual(uri, SipURI("sip", None, None, "example.com"))

    def test_sips(self) -> None:
        """If the scheme is C{sips}, L{SipURI.scheme} is C{"sips"}."""
        uri = self.assertRoundTrip("sips:bob@biloxi.example.com")
        self.assertEqual(uri.scheme, "sips")

    def test_scheme_case(self) -> None:
        """
        If the scheme is written in upper or mixed case, L{SipURI.scheme} is
        lower-cased but C{str} gives back the text as written.
        """
        uri = self.assertRoundTrip("SIP:ALICE@AtLanTa.CoM;Transport=udp")
        self.assertEqual(uri.scheme, "sip")
        self.assertEqual(uri.user, "ALICE")
        self.assertEqual(uri.host, "AtLanTa.CoM")
        self.assertEqual(parse_uri("SiPs:a@b").scheme, "sips")

    def test_password(self) -> None:
        """
        If the userinfo has a C{:}, what follows is the password, which may
        be empty.
        """
        uri = self.assertRoundTrip("sip:+1-212-555-1212:1234@gateway.com;user=phone")
        self.assertEqual(uri.user, "+1-212-555-1212")
        self.assertEqual(uri.password, "1234")
        self.assertEqual(uri.user_param, "phone")
        uri = self.assertRoundTrip("sip:alice:@example.com")
        self.assertEqual(uri.password, "")
        self.assertNotEqual(uri, parse_uri("sip:alice@example.com"))

    def test_port_leading_zeros(self) -> None:
        """
        If the port has leading zeros, L{SipURI.port} is its value and
        C{str} keeps the zeros.
        """
        uri = self.assertRoundTrip("sip:a@b.example:05060")
        self.assertEqual(uri.port, 5060)

    def test_port_limits(self) -> None:
        """Ports 0 and 65535 are accepted."""
        self.assertEqual(self.assertRoundTrip("sip:h:0").port, 0)
        self.assertEqual(self.assertRoundTrip("sip:h:65535").port, 65535)

    def test_params(self) -> None:
        """
        Parameters are kept raw, in order; one without C{=} has the value
        C{None}.
        """
        uri = self.assertRoundTrip("sip:services.example.com;lr;unknownwith=value;unknown-no-value")
        self.assertEqual(
            uri.params,
            (("lr", None), ("unknownwith", "value"), ("unknown-no-value", None)),
        )

    def test_headers_verbatim(self) -> None:
        """
        If a URI has escaped headers, they are kept raw and C{str} gives the
        URI back unchanged (RFC 4475 3.3.14).
        """
        uri = self.assertRoundTrip("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
        self.assertEqual(uri.headers, (("Route", "%3Csip:sip.example.com%3E"),))
        self.assertEqual(uri.unescaped_headers, (("Route", "<sip:sip.example.com>"),))

    def test_headers(self) -> None:
        """Several headers are split at C{&}; a header value may be empty."""
        uri = self.assertRoundTrip("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com&x=&y=?/")
        self.assertEqual(uri.headers, (("to", "alice%40atlanta.com"), ("x", ""), ("y", "?/")))

    def test_unusual_characters(self) -> None:
        """
        The odd but legal user and password of RFC 4475 3.1.1.2 are parsed.
        """
        uri = self.assertRoundTrip(UNUSUAL)
        self.assertEqual(uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.params, ())

    def test_semicolon_in_user(self) -> None:
        """
        If a C{;} comes before the C{@}, it belongs to the user part (RFC
        4475 3.1.1.9).
        """
        uri = self.assertRoundTrip("sip:user;par=u%40example.net@example.com")
        self.assertEqual(uri.user, "user;par=u%40example.net")
        self.assertEqual(uri.unescaped_user, "user;par=u@example.net")
        self.assertEqual(uri.host, "example.com")
        self.assertEqual(uri.params, ())

    def test_escaped_user(self) -> None:
        """
        An escaped user part is kept raw and unescaped on demand (RFC 4475
        3.1.1.3).
        """
        uri = self.assertRoundTrip("sip:sips%3Auser%40example.com@example.net")
        self.assertEqual(uri.user, "sips%3Auser%40example.com")
        self.assertEqual(uri.unescaped_user, "sips:user@example.com")
        self.assertEqual(uri.host, "example.net")
        uri = self.assertRoundTrip("sip:I%20have%20spaces@example.net")
        self.assertEqual(uri.unescaped_user, "I have spaces")

    def test_escaped_null(self) -> None:
        """
        C{%00} survives unescaping, so C{sip:%00@x} and C{sip:%00%00@x} have
        different users (RFC 4475 3.1.1.4).
        """
        one = self.assertRoundTrip("sip:%00@host5.example.com")
        two = self.assertRoundTrip("sip:%00%00@host5.example.com")
        self.assertEqual(one.unescaped_user, "\x00")
        self.assertEqual(two.unescaped_user, "\x00\x00")
        self.assertNotEqual(one, two)
        self.assertFalse(one.equivalent(two))
        uri = self.assertRoundTrip("sip:null-%00-null@example.com")
        self.assertEqual(uri.unescaped_user, "null-\x00-null")

    def test_escaped_params(self) -> None:
        """
        Escaped parameter names and values are unescaped exactly once (RFC
        4475 3.1.1.1).
        """
        uri = self.assertRoundTrip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
        self.assertEqual(uri.unescaped_user, "caller")
        self.assertEqual(uri.param("name"), "value%41")
        self.assertTrue(uri.lr)
        self.assertEqual(uri.unescaped_params, (("lr", None), ("name", "value%41")))

    def test_telephone_subscriber(self) -> None:
        """
        A telephone-subscriber user part is accepted, including an unescaped
        C{#} (RFC 2806).
        """
        uri = self.assertRoundTrip("sip:+358-555-1234567;postd=pp22@foo.com;user=phone")
        self.assertEqual(uri.user, "+358-555-1234567;postd=pp22")
        self.assertEqual(uri.params, (("user", "phone"),))
        self.assertEqual(self.assertRoundTrip("sip:*21#@example.com").user, "*21#")

    def test_trailing_dot(self) -> None:
        """A host name may end with a dot."""
        self.assertEqual(self.assertRoundTrip("sip:a@example.com.").host, "example.com.")

    def test_long_user(self) -> None:
        """A long user part is parsed (RFC 4475 3.1.1.7)."""
        user = "amazinglylongcallprefix" * 20 + "-user"
        uri = self.assertRoundTrip(f"sip:{user}@host5.example.net")
        self.assertEqual(uri.user, user)

    def test_ipv6(self) -> None:
        """An IPv6 reference keeps its brackets (RFC 5118 4.1)."""
        uri = self.assertRoundTrip("sip:[2001:db8::10]")
        self.assertEqual(uri.host, "[2001:db8::10]")
        self.assertIsNone(uri.port)
        self.assertEqual(self.assertRoundTrip("sip:user@[2001:db8::10]").user, "user")

    def test_ipv6_port_inside_brackets(self) -> None:
        """
        In C{[2001:db8::10:5070]}, 5070 is part of the address, not a port
        (RFC 5118 4.3).
        """
        uri = self.assertRoundTrip("sip:[2001:db8::10:5070]")
        self.assertEqual(uri.host, "[2001:db8::10:5070]")
        self.assertIsNone(uri.port)

    def test_ipv6_port(self) -> None:
        """In C{[2001:db8::10]:5070}, 5070 is the port (RFC 5118 4.4)."""
        uri = self.assertRoundTrip("sip:[2001:db8::10]:5070")
        self.assertEqual(uri.host, "[2001:db8::10]")
        self.assertEqual(uri.port, 5070)

    def test_ipv4_mapped(self) -> None:
        """An IPv4-mapped IPv6 address is accepted (RFC 5118 4.8)."""
        uri = self.assertRoundTrip("sip:user@[::ffff:192.0.2.10]")
        self.assertEqual(uri.host, "[::ffff:192.0.2.10]")

    def test_ipv6_three_colons(self) -> None:
        """
        Both C{2001:db8::192.0.2.1} and the C{2001:db8:::192.0.2.1} form
        the RFC 3261 ABNF allows are accepted (RFC 5118 4.9, 4.10).
        """
        self.assertRoundTrip("sip:user@[2001:db8:::192.0.2.1]")
        self.assertRoundTrip("sip:user@[2001:db8::192.0.2.1]")

    def test_ipv6_forms(self) -> None:
        """Full, compressed and upper-case IPv6 addresses are accepted."""
        for host in [
            "[::]",
            "[::1]",
            "[1::]",
            "[1:2:3:4:5:6:7:8]",
            "[1:2:3:4:5:6:7::]",
            "[1:2:3:4:5:6:1.2.3.4]",
            "[::1.2.3.4]",
            "[:::1.2.3.4]",
            "[2001:DB8::ABCD]",
        ]:
            self.assertEqual(self.assertRoundTrip(f"sip:{host}").host, host)

    def test_parse_sip_uri_other_scheme(self) -> None:
        """
        If L{parse_sip_uri} is given a valid URI of another scheme, it raises
        L{MessageParseError} with the status hint 416.
        """
        for text in ["tel:+1-201-555-0123", "http://www.example.com"]:
            error = self.assertRaises(MessageParseError, parse_sip_uri, text)
            self.assertEqual(error.status_hint, 416)

    def test_parse_sip_uri_invalid(self) -> None:
        """
        If L{parse_sip_uri} is given text that is no URI, it raises
        L{MessageParseError} with the status hint 400.
        """
        error = self.assertRaises(MessageParseError, parse_sip_uri, "sip:a@b c")
        self.assertEqual(error.status_hint, 400)


class InvalidSipURITests(SynchronousTestCase):
    """Tests for the SIP URIs L{parse_uri} rejects."""

    def assertInvalid(self, text: str) -> MessageParseError:
        """Check that C{text} is rejected with a 400."""
        error = self.assertRaises(MessageParseError, parse_uri, text)
        self.assertEqual(error.status_hint, 400)
        self.assertRaises(MessageParseError, parse_sip_uri, text)
        return error

    def test_whitespace(self) -> None:
        """
        If a URI contains whitespace anywhere, it is rejected (RFC 4475
        3.1.2.8).
        """
        for text in [
            "sip:user@example.com; lr",
            " sip:a@b",
            "sip:a@b ",
            "sip: a@b",
            "sip:a @b",
            "sip:a@b\t",
            "sip:a@b\r\n",
            "sip:a@b\n",
            "sip:a@b?x=\u00a0",
        ]:
            self.assertInvalid(text)
        self.assertIn("whitespace", self.assertInvalid("sip:user@example.com; lr").reason)

    def test_angle_brackets(self) -> None:
        """
        If the text is enclosed in angle brackets, it is a name-addr, not a
        URI (RFC 4475 3.1.2.7).
        """
        self.assertIn("angle", self.assertInvalid("<sip:user@example.com>").reason)
        self.assertInvalid("sip:user@example.com>")
        self.assertInvalid("sip:<user@example.com")

    def test_empty_host(self) -> None:
        """If the host is empty, the URI is rejected."""
        for text in ["sip:", "sip:alice@", "sip:alice@:5060", "sip:;lr", "sip:?a=b"]:
            self.assertInvalid(text)
        self.assertIn("empty host", self.assertInvalid("sip:alice@").reason)

    def test_empty_user(self) -> None:
        """If the userinfo has an empty user, the URI is rejected."""
        self.assertInvalid("sip:@example.com")
        self.assertInvalid("sip::password@example.com")

    def test_bad_port(self) -> None:
        """
        If the port is empty, not digits or above 65535, the URI is rejected.
        """
        for text in [
            "sip:a@b:",
            "sip:a@b:x",
            "sip:a@b:50x",
            "sip:a@b:-1",
            "sip:a@b:65536",
            "sip:a@b:99999999999999999999",
            "sip:a@b:" + "9" * 5000,
            "sip:a@b:5060:5060",
            "sip:a@b:\u0665\u0660",
            "sip:[::1]:",
            "sip:[::1]x",
        ]:
            self.assertInvalid(text)

    def test_unbracketed_ipv6(self) -> None:
        """
        If an IPv6 address is not in brackets, the URI is rejected (RFC 5118
        4.2).
        """
        for text in ["sip:2001:db8::10", "sip:user@2001:db8::10", "sip:[2001:db8::10"]:
            self.assertInvalid(text)
        self.assertIn("brackets", self.assertInvalid("sip:2001:db8::10").reason)

    def test_bad_ipv6(self) -> None:
        """If the address in brackets is not an IPv6 address, it is rejected."""
        for host in [
            "[]",
            "[:]",
            "[1:2:3:4:5:6:7]",
            "[1:2:3:4:5:6:7:8:9]",
            "[1::2::3]",
            "[12345::]",
            "[1:2:3:4:5:6:7:8::]",
            "[::1.2.3]",
            "[1.2.3.4]",
            "[1:2:3:4:5:6:7:1.2.3.4]",
            "[::1.2.3.4:5]",
            "[::::1.2.3.4]",
            "[192.0.2.1]",
            "[::g]",
            "[example.com]",
        ]:
            self.assertInvalid(f"sip:{host}")

    def test_bad_escape(self) -> None:
        """
        If a C{%} is not followed by two hex digits, the URI is rejected.
        """
        for text in [
            "sip:%@b",
            "sip:%4@b",
            "sip:%zz@b",
            "sip:a%4g@b",
            "sip:a:%@b",
            "sip:b;x=%",
            "sip:b;%=1",
            "sip:b?x=%2",
        ]:
            self.assertInvalid(text)
        self.assertIn("escape", self.assertInvalid("sip:%zz@b").reason)

    def test_empty_params(self) -> None:
        """If a parameter is empty, the URI is rejected."""
        for text in ["sip:a@b;;x", "sip:a@b;", "sip:a@b;x;", "sip:a@b;?x=1", "sip:a@b;=1"]:
            self.assertInvalid(text)
        self.assertIn("empty", self.assertInvalid("sip:a@b;;x").reason)

    def test_bad_params(self) -> None:
        """
        If a parameter has an empty value, or characters that are not
        paramchars, the URI is rejected.
        """
        for text in [
            "sip:a@b;x=",
            "sip:a@b;x==1",
            "sip:a@b;x=a=b",
            "sip:a@b;x=a`b",
            'sip:a@b;x="a"',
            "sip:a@b;x=a,b",
            "sip:a@b;x@y",
        ]:
            self.assertInvalid(text)

    def test_token_param_values(self) -> None:
        """
        The C{transport}, C{user} and C{method} parameters take a token,
        which may hold a C{`}.
        """
        uri = parse_sip_uri("sip:a@b;transport=x`y;user=a`;method=`M")
        self.assertEqual(uri.transport, "x`y")

    def test_bad_headers(self) -> None:
        """
        If the headers are empty, lack a C{=} or hold characters that are not
        allowed, the URI is rejected.
        """
        for text in [
            "sip:a@b?",
            "sip:a@b?x",
            "sip:a@b?=1",
            "sip:a@b?x=1&",
            "sip:a@b?x=1&&y=2",
            "sip:a@b?x=1=2",
            "sip:a@b?x=a;b",
            "sip:a@b?x=<a>",
        ]:
            self.assertInvalid(text)

    def test_bad_user(self) -> None:
        """
        If the userinfo has characters that are not allowed, or more than
        one C{@}, the URI is rejected.
        """
        for text in [
            "sip:a@b@c",
            'sip:a"b@c',
            "sip:a[b@c",
            "sip:a:b:c@d",
            "sip:a:b;c@d",
            "sip:\u00e9@example.com",
            "sip:a\udcff@example.com",
            "sip:a\x00@example.com",
        ]:
            self.assertInvalid(text)

    def test_bad_hosts(self) -> None:
        """If the host is not a hostname, IPv4 or IPv6 reference, it is rejected."""
        for host in [
            "-example.com",
            "example-.com",
            "exa_mple.com",
            "example..com",
            ".example.com",
            "example.com..",
            "123",
            "example.123",
            "1.2.3",
            "1.2.3.4.5",
            "1234.1.1.1",
            "\u0665.1.1.1",
            "b\u212a.example.com",
            "//example.com",
        ]:
            self.assertInvalid(f"sip:{host}")
            self.assertInvalid(f"sip:alice@{host}")

    def test_bad_scheme(self) -> None:
        """
        If the scheme is C{sip}/C{sips} but the text is not a SIP URI, it is
        not taken as an L{AbsoluteURI}.
        """
        self.assertInvalid("sip://example.com")
        self.assertInvalid("sips:")
        self.assertInvalid("sip")


class UnescapeTests(SynchronousTestCase):
    """Tests for L{unescape} and the C{escape_*} functions."""

    def test_unescape_once(self) -> None:
        """L{unescape} decodes each escape exactly once."""
        self.assertEqual(unescape("v%61lue%25%34%31"), "value%41")
        self.assertEqual(unescape("plain"), "plain")

    def test_unescape_null_and_bad_utf8(self) -> None:
        """
        L{unescape} keeps C{%00} and decodes octets that are not UTF-8 as
        lone surrogates.
        """
        self.assertEqual(unescape("%00%00"), "\x00\x00")
        self.assertEqual(unescape("%C3%A9%FF"), "\u00e9\udcff")

    def test_escape_user(self) -> None:
        """
        L{escape_user} escapes what a user part may not hold, and
        L{unescape} reverses it.
        """
        self.assertEqual(escape_user("a b@c#%;"), "a%20b%40c%23%25;")
        self.assertEqual(unescape(escape_user("\u00e9\udcff\x00")), "\u00e9\udcff\x00")

    def test_escape_param_header(self) -> None:
        """L{escape_param} and L{escape_header} escape for their grammars."""
        self.assertEqual(escape_param("a=b;c[]"), "a%3Db%3Bc[]")
        self.assertEqual(escape_header("<sip:a@b>?&"), "%3Csip:a%40b%3E?%26")

    @given(decoded_text())
    def test_escape_round_trip(self, text: str) -> None:
        """For any text, unescaping the escaped text gives it back."""
        for escape in (escape_user, escape_param, escape_header):
            self.assertEqual(unescape(escape(text)), text)

    @given(decoded_text().filter(bool))
    def test_escaped_user_parses(self, text: str) -> None:
        """For any non-empty text, the escaped text is a valid user part."""
        uri = parse_sip_uri(f"sip:{escape_user(text)}@example.com")
        self.assertEqual(uri.unescaped_user, text)


class SipURIParamTests(SynchronousTestCase):
    """Tests for the parameter accessors of L{SipURI}."""

    def test_param(self) -> None:
        """
        L{SipURI.param} finds a parameter by name, case-insensitively, and
        gives its unescaped value, C{""} for a flag and C{None} if absent.
        """
        uri = parse_sip_uri("sip:a@b;Transport=TCP;lr;x=%41;x=second")
        self.assertEqual(uri.param("transport"), "TCP")
        self.assertEqual(uri.param("TRANSPORT"), "TCP")
        self.assertEqual(uri.param("lr"), "")
        self.assertEqual(uri.param("x"), "A")
        self.assertIsNone(uri.param("maddr"))
        self.assertTrue(uri.has_param("LR"))
        self.assertFalse(uri.has_param("maddr"))

    def test_typed(self) -> None:
        """
        The typed accessors give the C{transport} (lower-cased), C{maddr},
        C{lr}, C{ttl}, C{user} (lower-cased) and C{method} parameters.
        """
        uri = parse_sip_uri(
            "sip:a@b;transport=TLS;maddr=239.255.255.1;ttl=15;lr;user=Phone;method=INVITE"
        )
        self.assertEqual(uri.transport, "tls")
        self.assertEqual(uri.maddr, "239.255.255.1")
        self.assertTrue(uri.lr)
        self.assertEqual(uri.ttl, 15)
        self.assertEqual(uri.user_param, "phone")
        self.assertEqual(uri.method_param, "INVITE")

    def test_typed_absent(self) -> None:
        """If the parameters are absent, the typed accessors give C{None}."""
        uri = parse_sip_uri("sip:a@b")
        self.assertIsNone(uri.transport)
        self.assertIsNone(uri.maddr)
        self.assertFalse(uri.lr)
        self.assertIsNone(uri.ttl)
        self.assertIsNone(uri.user_param)
        self.assertIsNone(uri.method_param)

    def test_bad_ttl(self) -> None:
        """If C{ttl} is not a number in 0..255, L{SipURI.ttl} is C{None}."""
        for value in ["256", "abc", "1000", "\u0661"]:
            uri = SipURI("sip", None, None, "b", params=(("ttl", value),))
            self.assertIsNone(uri.ttl)
        self.assertEqual(parse_sip_uri("sip:b;ttl=%31").ttl, 1)

    def test_ipv6_maddr(self) -> None:
        """C{maddr} may hold an IPv6 reference."""
        uri = parse_sip_uri("sip:b;maddr=[2001:db8::1]")
        self.assertEqual(uri.maddr, "[2001:db8::1]")


class SipURIHostTests(SynchronousTestCase):
    """Tests for the host accessors of L{SipURI}."""

    def test_hostname(self) -> None:
        """A host name is neither IPv4 nor IPv6."""
        uri = parse_sip_uri("sip:a@Example.COM:5061")
        self.assertEqual(uri.host_lower, "example.com")
        self.assertEqual(uri.hostport, "Example.COM:5061")
        self.assertEqual(uri.bare_host, "Example.COM")
        self.assertFalse(uri.is_ip)
        self.assertFalse(uri.is_ipv6)

    def test_ipv4(self) -> None:
        """An IPv4 address is an IP address but not IPv6."""
        uri = parse_sip_uri("sip:192.0.2.1")
        self.assertEqual(uri.hostport, "192.0.2.1")
        self.assertTrue(uri.is_ip)
        self.assertFalse(uri.is_ipv6)

    def test_ipv6(self) -> None:
        """
        An IPv6 reference is an IPv6 address; L{SipURI.bare_host} drops the
        brackets.
        """
        uri = parse_sip_uri("sip:[2001:DB8::1]:5060")
        self.assertEqual(uri.host_lower, "[2001:db8::1]")
        self.assertEqual(uri.hostport, "[2001:DB8::1]:5060")
        self.assertEqual(uri.bare_host, "2001:DB8::1")
        self.assertTrue(uri.is_ip)
        self.assertTrue(uri.is_ipv6)


class SipURIBuilderTests(SynchronousTestCase):
    """Tests for the C{with_*} and C{without_*} builders of L{SipURI}."""

    def test_with_params(self) -> None:
        """L{SipURI.with_params} replaces every parameter."""
        uri = parse_sip_uri("SIP:a@b;x=1;y").with_params([("lr", None), ("t", "%41")])
        self.assertEqual(uri.params, (("lr", None), ("t", "%41")))
        self.assertEqual(str(uri), "sip:a@b;lr;t=%41")

    def test_with_param_replace(self) -> None:
        """
        L{SipURI.with_param} replaces the first parameter of that name in
        place and drops the others.
        """
        uri = parse_sip_uri("sip:a@b;Transport=udp;x;transport=tcp")
        self.assertEqual(str(uri.with_param("transport", "tls")), "sip:a@b;transport=tls;x")

    def test_with_param_append(self) -> None:
        """L{SipURI.with_param} appends a parameter that is not there."""
        uri = parse_sip_uri("sip:a@b:5060?h=v")
        self.assertEqual(str(uri.with_param("lr")), "sip:a@b:5060;lr?h=v")

    def test_with_param_escaped_name(self) -> None:
        """
        L{SipURI.with_param} and L{SipURI.without_param} match escaped
        names.
        """
        uri = parse_sip_uri("sip:b;%6C%72")
        self.assertEqual(uri.with_param("lr").params, (("lr", None),))
        self.assertEqual(uri.without_param("LR").params, ())

    def test_with_param_invalid(self) -> None:
        """
        If the name or value is not a valid C{pname}/C{pvalue},
        L{SipURI.with_param} and L{SipURI.with_params} raise
        L{MessageParseError}.
        """
        uri = parse_sip_uri("sip:b")
        for name, value in [("", None), ("a b", None), ("x", ""), ("x", "a;b"), ("x", "%")]:
            self.assertRaises(MessageParseError, uri.with_param, name, value)
            self.assertRaises(MessageParseError, uri.with_params, [(name, value)])

    def test_without_param(self) -> None:
        """
        L{SipURI.without_param} removes every parameter of that name,
        case-insensitively.
        """
        uri = parse_sip_uri("sip:a@b;LR;x=1;lr")
        self.assertEqual(str(uri.without_param("lr")), "sip:a@b;x=1")
        self.assertIs(uri.without_param("y"), uri)

    def test_with_host(self) -> None:
        """
        L{SipURI.with_host} replaces host and port, bracketing a bare IPv6
        address.
        """
        uri = parse_sip_uri("sips:alice@atlanta.com:5061;lr")
        self.assertEqual(str(uri.with_host("192.0.2.1", 5070)), "sips:alice@192.0.2.1:5070;lr")
        self.assertEqual(str(uri.with_host("biloxi.com")), "sips:alice@biloxi.com;lr")
        self.assertEqual(
            str(uri.with_host("2001:db8::1", 5061)), "sips:alice@[2001:db8::1]:5061;lr"
        )
        self.assertEqual(uri.with_host("[2001:db8::1]").host, "[2001:db8::1]")

    def test_with_host_invalid(self) -> None:
        """
        If the host or port is invalid, L{SipURI.with_host} raises
        L{MessageParseError}.
        """
        uri = parse_sip_uri("sip:b")
        for host, port in [
            ("", None),
            ("a b", None),
            ("[::1", None),
            ("1::2::3", None),
            ("b", 65536),
            ("b", -1),
        ]:
            self.assertRaises(MessageParseError, uri.with_host, host, port)

    def test_without_headers(self) -> None:
        """L{SipURI.without_headers} drops the headers."""
        uri = parse_sip_uri("sip:user@host?Route=%3Csip:sip.example.com%3E")
        self.assertEqual(str(uri.without_headers()), "sip:user@host")
        bare = parse_sip_uri("sip:user@host")
        self.assertIs(bare.without_headers(), bare)

    def test_evolve_reformats(self) -> None:
        """
        A value changed with C{attrs.evolve} is formatted from its
        components, not from the text it was parsed from.
        """
        uri = parse_sip_uri("SIP:a@b:05060")
        self.assertEqual(str(uri), "SIP:a@b:05060")
        self.assertEqual(str(attrs.evolve(uri)), "sip:a@b:5060")
        self.assertEqual(str(attrs.evolve(uri, port=None)), "sip:a@b")
        self.assertEqual(str(attrs.evolve(uri, scheme="sips")), "sips:a@b:5060")

    def test_constructed(self) -> None:
        """A L{SipURI} built from components formats to the URI text."""
        uri = SipURI("sip", "alice", "", "[::1]", 5060, (("lr", None), ("x", "1")), (("h", ""),))
        self.assertEqual(str(uri), "sip:alice:@[::1]:5060;lr;x=1?h=")
        self.assertEqual(parse_uri(str(uri)), uri)


class SipURIEquivalenceTests(SynchronousTestCase):
    """Tests for L{SipURI.equivalent} (RFC 3261 section 19.1.4)."""

    def assertEquivalent(self, a: str, b: str) -> None:
        """Check that C{a} and C{b} are equivalent, both ways."""
        ua, ub = parse_uri(a), parse_uri(b)
        self.assertTrue(ua.equivalent(ub), f"{a} should equal {b}")
        self.assertTrue(ub.equivalent(ua), f"{b} should equal {a}")

    def assertNotEquivalent(self, a: str, b: str) -> None:
        """Check that C{a} and C{b} are not equivalent, both ways."""
        ua, ub = parse_uri(a), parse_uri(b)
        self.assertFalse(ua.equivalent(ub), f"{a} should not equal {b}")
        self.assertFalse(ub.equivalent(ua), f"{b} should not equal {a}")

    def test_rfc3261_equivalent(self) -> None:
        """The URIs in each RFC 3261 19.1.4 example set are equivalent."""
        self.assertEquivalent(
            "sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"
        )
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5")
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assertEquivalent(
            "sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"
        )
        self.assertEquivalent(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        )
        self.assertEquivalent(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        )

    def test_rfc3261_not_equivalent(self) -> None:
        """The URIs in each RFC 3261 19.1.4 counter-example set are not equivalent."""
        self.assertNotEquivalent(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"
        )
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060")
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp")
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp")
        self.assertNotEquivalent(
            "sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"
        )
        self.assertNotEquivalent("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4")

    def test_not_transitive(self) -> None:
        """
        Equivalence is not transitive: C{security=on} and C{security=off}
        both equal the URI without it, but not each other.
        """
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=off")
        self.assertNotEquivalent(
            "sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"
        )

    def test_scheme(self) -> None:
        """A SIP and a SIPS URI are never equivalent."""
        self.assertNotEquivalent("sip:alice@atlanta.com", "sips:alice@atlanta.com")
        self.assertEquivalent("SIPS:alice@atlanta.com", "sips:alice@atlanta.com")

    def test_userinfo(self) -> None:
        """
        User and password are compared case-sensitively; a missing user or
        password does not equal a present one.
        """
        self.assertNotEquivalent("sip:alice@a.com", "sip:Alice@a.com")
        self.assertNotEquivalent("sip:alice@a.com", "sip:a.com")
        self.assertNotEquivalent("sip:alice:pw@a.com", "sip:alice:PW@a.com")
        self.assertNotEquivalent("sip:alice:pw@a.com", "sip:alice@a.com")
        self.assertNotEquivalent("sip:alice:@a.com", "sip:alice@a.com")
        self.assertEquivalent("sip:alice:p%77@a.com", "sip:alice:pw@a.com")

    def test_escapes(self) -> None:
        """
        Escapes of unreserved characters equal the characters; escapes of
        reserved characters do not (RFC 3261 19.1.4, RFC 2396 2.2); the hex
        digits' case does not matter.
        """
        self.assertEquivalent("sip:%41%7e@a.com", "sip:A~@a.com")
        self.assertEquivalent("sip:%3b@a.com", "sip:%3B@a.com")
        self.assertNotEquivalent("sip:a%3Bb@a.com", "sip:a;b@a.com")
        self.assertEquivalent("sip:a%23@a.com", "sip:a#@a.com")
        self.assertEquivalent("sip:%C3%A9@a.com", "sip:%c3%a9@a.com")
        self.assertEquivalent("sip:a.com;%78=%79", "sip:a.com;X=Y")
        self.assertEquivalent("sip:a.com?%68=%76", "sip:a.com?H=v")
        self.assertNotEquivalent("sip:a.com?h=%76", "sip:a.com?h=V")

    def test_strict_params(self) -> None:
        """
        A C{user}, C{ttl}, C{method}, C{maddr} or C{transport} parameter in
        only one URI makes them differ, even with its default value.
        """
        for param in ["user=ip", "ttl=1", "method=INVITE", "maddr=192.0.2.1", "transport=udp"]:
            self.assertNotEquivalent("sip:a@b", f"sip:a@b;{param}")
        self.assertNotEquivalent("sip:a@b;ttl=1", "sip:a@b;ttl=2")
        self.assertEquivalent("sip:a@b;maddr=EXAMPLE.com", "sip:a@b;MADDR=example.COM")

    def test_other_params(self) -> None:
        """
        Other parameters are ignored unless in both URIs, where a flag does
        not equal a value.
        """
        self.assertEquivalent("sip:a@b;lr", "sip:a@b")
        self.assertNotEquivalent("sip:a@b;x", "sip:a@b;x=1")
        self.assertEquivalent("sip:a@b;x=1;lr", "sip:a@b;lr;X=1")

    def test_headers(self) -> None:
        """
        Headers must all match, in any order: names case-insensitively,
        values case-sensitively.
        """
        self.assertEquivalent("sip:a@b?Subject=x&To=y", "sip:a@b?to=y&subject=x")
        self.assertNotEquivalent("sip:a@b?subject=x", "sip:a@b?subject=X")
        self.assertNotEquivalent("sip:a@b?s=x", "sip:a@b?s=x&s=x")

    def test_host_and_port(self) -> None:
        """Hosts compare case-insensitively; ports must be equal."""
        self.assertEquivalent("sip:[2001:DB8::1]:5060", "sip:[2001:db8::1]:5060")
        self.assertNotEquivalent("sip:a.com:5060", "sip:a.com:5061")
        self.assertEquivalent("sip:a.com:05060", "sip:a.com:5060")

    def test_other_types(self) -> None:
        """A L{SipURI} is not equivalent to another kind of URI."""
        self.assertFalse(parse_uri("sip:a@b").equivalent(parse_uri("tel:+1234")))
        self.assertFalse(parse_uri("sip:a@b").equivalent("sip:a@b"))


class TelURITests(SynchronousTestCase):
    """Tests for L{TelURI} (RFC 3966)."""

    def test_global(self) -> None:
        """A global number starts with C{+}; visual separators are kept."""
        uri = parse_uri("tel:+1-201-555-0123")
        self.assertIsInstance(uri, TelURI)
        assert isinstance(uri, TelURI)
        self.assertEqual(uri.number, "+1-201-555-0123")
        self.assertEqual(uri.digits, "+12015550123")
        self.assertTrue(uri.is_global)
        self.assertEqual(uri.params, ())
        self.assertEqual(uri.scheme, "tel")
        self.assertEqual(str(uri), "tel:+1-201-555-0123")

    def test_local(self) -> None:
        """A local number has a C{phone-context}."""
        text = "tel:7042;phone-context=example.com"
        uri = parse_uri(text)
        assert isinstance(uri, TelURI)
        self.assertFalse(uri.is_global)
        self.assertEqual(uri.phone_context, "example.com")
        self.assertEqual(str(uri), text)
        uri = parse_uri("TEL:863-1234;Phone-Context=+1-914-555")
        assert isinstance(uri, TelURI)
        self.assertEqual(uri.phone_context, "+1-914-555")
        self.assertEqual(str(uri), "TEL:863-1234;Phone-Context=+1-914-555")

    def test_params(self) -> None:
        """C{ext}, C{isub} and other parameters are kept raw, in order."""
        text = "tel:+1-201-555-0123;ext=1234;isub=a/b?c@d;foo;bar=%41"
        uri = parse_uri(text)
        assert isinstance(uri, TelURI)
        self.assertEqual(
            uri.params,
            (("ext", "1234"), ("isub", "a/b?c@d"), ("foo", None), ("bar", "%41")),
        )
        self.assertEqual(uri.extension, "1234")
        self.assertEqual(uri.param("BAR"), "A")
        self.assertEqual(uri.param("foo"), "")
        self.assertTrue(uri.has_param("Foo"))
        self.assertIsNone(uri.param("baz"))
        self.assertEqual(str(uri), text)

    def test_invalid(self) -> None:
        """Malformed tel URIs are rejected."""
        for text in [
            "tel:",
            "tel:+",
            "tel:+-",
            "tel:+1 234",
            "tel:+12a",
            "tel:1234",
            "tel:1234;phone-context=",
            "tel:1234;phone-context=-x",
            "tel:+1234;",
            "tel:+1234;;a",
            "tel:+1234;a_b",
            "tel:+1234;a=",
            "tel:+1234;a=%",
            "tel:+1234;a=\u00e9",
            "tel:x;phone-context=example.com",
            "<tel:+1234>",
        ]:
            self.assertRaises(MessageParseError, parse_uri, text)

    def test_equivalent(self) -> None:
        """
        Tel URIs compare by digits without visual separators and by the same
        set of parameters in any order (RFC 3966 section 4).
        """
        a = parse_uri("tel:+1-201-555-0123;ext=12;foo=Bar")
        self.assertTrue(a.equivalent(parse_uri("tel:+1(201)5550123;FOO=bar;ext=1-2")))
        self.assertFalse(a.equivalent(parse_uri("tel:+1-201-555-0123;ext=12")))
        self.assertFalse(a.equivalent(parse_uri("tel:+1-201-555-0124;ext=12;foo=Bar")))
        self.assertFalse(parse_uri("tel:1234;phone-context=+1").equivalent(parse_uri("tel:+1234")))
        self.assertTrue(
            parse_uri("tel:12AB;phone-context=+1-2").equivalent(
                parse_uri("tel:1-2ab;phone-context=+12")
            )
        )
        self.assertTrue(
            parse_uri("tel:1;phone-context=Example.com").equivalent(
                parse_uri("tel:1;phone-context=example.COM")
            )
        )
        self.assertFalse(a.equivalent(parse_uri("sip:a@b")))


class AbsoluteURITests(SynchronousTestCase):
    """Tests for L{AbsoluteURI}."""

    def test_schemes(self) -> None:
        """
        URIs of other schemes become L{AbsoluteURI}s that format back
        unchanged (RFC 4475 3.3.2 to 3.3.4).
        """
        for text, scheme, opaque in [
            (
                "nobodyKnowsThisScheme:totallyopaquecontent",
                "nobodyknowsthisscheme",
                "totallyopaquecontent",
            ),
            ("isbn:2983792873", "isbn", "2983792873"),
            ("http://www.example.com", "http", "//www.example.com"),
            ("name:John_Smith", "name", "John_Smith"),
            ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
            ("Mailto:a@b", "mailto", "a@b"),
        ]:
            uri = parse_uri(text)
            self.assertEqual(uri, AbsoluteURI(scheme, opaque))
            self.assertEqual(str(uri), text)

    def test_invalid(self) -> None:
        """
        If the scheme is malformed or the rest is empty or holds whitespace,
        C{<}, C{>} or C{"}, the text is rejected.
        """
        for text in [
            "",
            ":",
            "x:",
            "1x:y",
            "-x:y",
            "x y:z",
            "http://a b",
            "http://a\tb",
            "<http://a>",
            "http://a>",
            'http://"a"',
            "noscheme",
            "h\u00e9:x",
            "x:\u00e9",
            "x:\udcff",
        ]:
            self.assertRaises(MessageParseError, parse_uri, text)

    def test_equivalent(self) -> None:
        """Schemes compare case-insensitively, the rest case-sensitively."""
        a = parse_uri("HTTP://www.example.com")
        self.assertTrue(a.equivalent(parse_uri("http://www.example.com")))
        self.assertFalse(a.equivalent(parse_uri("http://WWW.example.com")))
        self.assertFalse(a.equivalent(parse_uri("sip:www.example.com")))


# Characters that get deep into the parser.
_URI_ALPHABET = "sipSIPtelTEL:@;=?&%[]0123456789abcdefABCDEF.-+<>\" \t/,$!*'()~_#`\x00\u00e9\udcff"


def _mutations(text: str) -> st.SearchStrategy[str]:
    """C{text} with a character inserted, deleted or replaced."""
    return st.builds(
        lambda index, char, kind: (
            text[:index] + char + text[index:]
            if kind == 0
            else text[:index] + text[index + 1 :]
            if kind == 1
            else text[:index] + char + text[index + 1 :]
        ),
        st.integers(0, len(text)),
        st.sampled_from(_URI_ALPHABET),
        st.integers(0, 2),
    )


class URIPropertyTests(SynchronousTestCase):
    """Hypothesis properties of L{parse_uri} and the URI values."""

    def assertOnlyParseError(self, text: str) -> None:
        """
        Check that C{text} either parses to a URI that formats back to it and
        whose accessors work, or raises L{MessageParseError}.
        """
        try:
            uri = parse_uri(text)
        except MessageParseError as error:
            self.assertEqual(error.status_hint, 400)
            return
        self.assertEqual(str(uri), text)
        self.assertEqual(parse_uri(str(attrs.evolve(uri))), uri)
        self.assertTrue(uri.equivalent(uri))
        if isinstance(uri, SipURI):
            for name in [
                "unescaped_user",
                "unescaped_password",
                "unescaped_params",
                "unescaped_headers",
                "transport",
                "maddr",
                "lr",
                "ttl",
                "user_param",
                "method_param",
                "host_lower",
                "bare_host",
                "hostport",
                "is_ip",
                "is_ipv6",
            ]:
                getattr(uri, name)

    @given(sip_uris())
    def test_sip_uri_round_trip(self, uri: SipURI) -> None:
        """For any L{SipURI}, parsing its text gives it back."""
        self.assertEqual(parse_uri(str(uri)), uri)

    @given(sip_uri_texts())
    def test_sip_text_round_trip(self, text: str) -> None:
        """
        For any valid SIP URI text, C{str} of the parsed value gives the text
        back, and formatting its components gives an equal value.
        """
        uri = parse_sip_uri(text)
        self.assertEqual(str(uri), text)
        self.assertEqual(parse_uri(str(attrs.evolve(uri))), uri)

    @given(tel_uri_texts())
    def test_tel_text_round_trip(self, text: str) -> None:
        """For any valid tel URI text, C{str} gives the text back."""
        uri = parse_uri(text)
        self.assertIsInstance(uri, TelURI)
        self.assertEqual(str(uri), text)
        self.assertEqual(parse_uri(str(attrs.evolve(uri))), uri)

    @given(absolute_uri_texts())
    def test_absolute_text_round_trip(self, text: str) -> None:
        """For any valid absoluteURI text, C{str} gives the text back."""
        uri = parse_uri(text)
        self.assertIsInstance(uri, AbsoluteURI)
        self.assertEqual(str(uri), text)

    @given(sip_uris(), sip_uris())
    def test_equivalent_reflexive_symmetric(self, a: SipURI, b: SipURI) -> None:
        """L{SipURI.equivalent} is reflexive and symmetric."""
        self.assertTrue(a.equivalent(a))
        self.assertEqual(a.equivalent(b), b.equivalent(a))

    @given(sip_uris())
    def test_equivalent_escaped_unreserved(self, uri: SipURI) -> None:
        """
        Escaping an unreserved character of the user part gives an
        equivalent URI.
        """
        if uri.user is None or not uri.user[0].isalnum():
            return
        escaped = attrs.evolve(uri, user=f"%{ord(uri.user[0]):02x}{uri.user[1:]}")
        self.assertTrue(uri.equivalent(escaped))
        self.assertTrue(escaped.equivalent(uri))

    @given(tel_uri_texts(), tel_uri_texts())
    def test_tel_equivalent_reflexive_symmetric(self, a: str, b: str) -> None:
        """L{TelURI.equivalent} is reflexive and symmetric."""
        ua, ub = parse_uri(a), parse_uri(b)
        self.assertTrue(ua.equivalent(ua))
        self.assertEqual(ua.equivalent(ub), ub.equivalent(ua))

    @given(hosts())
    def test_hosts(self, host: str) -> None:
        """Any generated host makes a valid URI with that host."""
        uri = parse_sip_uri(f"sip:{host}:5060")
        self.assertEqual((uri.host, uri.port), (host, 5060))
        self.assertEqual(uri.with_host(host).host, host)

    @given(decoded_text())
    def test_any_text(self, text: str) -> None:
        """For any text, L{parse_uri} raises nothing but L{MessageParseError}."""
        self.assertOnlyParseError(text)

    @given(st.text(alphabet=_URI_ALPHABET))
    def test_uri_alphabet(self, text: str) -> None:
        """
        For text made of URI characters, L{parse_uri} raises nothing but
        L{MessageParseError}.
        """
        self.assertOnlyParseError(text)
        self.assertOnlyParseError("sip:" + text)
        self.assertOnlyParseError("tel:+1" + text)

    @given(st.one_of(sip_uri_texts(), tel_uri_texts()).flatmap(_mutations))
    def test_mutated(self, text: str) -> None:
        """
        For valid URI text with a character inserted, deleted or replaced,
        L{parse_uri} raises nothing but L{MessageParseError}.
        """
        self.assertOnlyParseError(text)


class ParseURIMemoTests(SynchronousTestCase):
    """L{parse_uri} keeps what it parsed, bounded, and never an error."""

    def test_same_value(self) -> None:
        """A text parsed again gives the value parsed the first time."""
        text = "sip:memo-1@192.0.2.1;transport=udp"
        first = parse_uri(text)
        self.assertIs(parse_uri(text), first)
        self.assertEqual(first, parse_sip_uri(text))

    def test_errors_raised_again(self) -> None:
        """A text that does not parse raises each time."""
        for _ in range(2):
            self.assertRaises(MessageParseError, parse_uri, "sip:bad uri@")

    def test_bounded(self) -> None:
        """
        The memo keeps the 4,096 latest texts, first in first out: an older
        text is parsed again (to an equal value, not the same object).
        """
        text = "sip:memo-2@192.0.2.1"
        first = parse_uri(text)
        for i in range(4096):
            parse_uri(f"sip:fill-{i}@192.0.2.1")
        again = parse_uri(text)
        self.assertIsNot(again, first)
        self.assertEqual(again, first)
        self.assertLessEqual(len(_URI_MEMO), 4096)

    def test_long_not_kept(self) -> None:
        """A text over 512 characters is parsed each time, not kept."""
        text = "sip:" + "u" * 600 + "@192.0.2.1"
        first = parse_uri(text)
        self.assertIsNot(parse_uri(text), first)
        self.assertEqual(parse_uri(text), first)
        self.assertNotIn(text, _URI_MEMO)
