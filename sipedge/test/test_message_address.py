# -*- test-case-name: sipedge.test.test_message_address -*-
"""Tests for L{sipedge.message._address}."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import (
    STAR,
    AbsoluteURI,
    NameAddress,
    SipURI,
    parse_contact,
    parse_name_addr,
    parse_name_addr_list,
    parse_uri,
    quote_text,
    unquote,
)
from sipedge.test.strategies import (
    absolute_uri_texts,
    ipv6_references,
    sip_uri_texts,
    tel_uri_texts,
    tokens,
)

SIPISH = st.text(
    alphabet='<>"; ,=:@sip/\\[]SIP2.0UDPbranch*?tagexpiresq.01\t\r\n%',
    max_size=60,
)
# Any code point but CR and LF, lone surrogates included.
_QUOTABLE = st.text(
    alphabet=st.characters(exclude_categories=(), exclude_characters="\r\n"), max_size=12
)


def uris() -> st.SearchStrategy[object]:
    """Parsed SIP, SIPS, tel and other absolute URIs."""
    return st.one_of(sip_uri_texts(), tel_uri_texts(), absolute_uri_texts()).map(parse_uri)


def display_names() -> st.SearchStrategy[str | None]:
    """No display name, a quoted-string, or tokens separated by LWS."""
    return st.one_of(
        st.none(),
        _QUOTABLE.map(quote_text),
        st.lists(tokens(max_size=6), min_size=1, max_size=3).map(" ".join),
    )


def header_params() -> st.SearchStrategy[tuple[tuple[str, str | None], ...]]:
    """C{*( SEMI generic-param )}: flags, tokens, hosts and quoted-strings."""
    return st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["tag", "Tag"]), tokens()),
            st.tuples(
                tokens(max_size=8).filter(lambda name: name.lower() != "tag"),
                st.none() | tokens() | ipv6_references() | _QUOTABLE.map(quote_text),
            ),
        ),
        max_size=4,
    ).map(tuple)


def addresses() -> st.SearchStrategy[NameAddress]:
    """L{NameAddress} values of every shape."""
    return st.builds(
        NameAddress,
        display_name=display_names(),
        uri=uris(),
        params=header_params(),
        bracketed=st.booleans(),
    )


def _sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


class ParseNameAddrTests(SynchronousTestCase):
    """Tests for L{parse_name_addr}."""

    def test_quoted_display_name(self) -> None:
        """
        If the value is C{"Alice" <sip:...>;tag=...}, L{parse_name_addr}
        gives the raw display name, the URI and the tag, and C{str()} gives
        the text back.
        """
        text = '"Alice" <sip:alice@atlanta.com>;tag=1928301774'
        address = parse_name_addr(text)
        self.assertEqual(address.display_name, '"Alice"')
        self.assertEqual(address.unquoted_display_name, "Alice")
        self.assertEqual(address.uri, _sip("sip:alice@atlanta.com"))
        self.assertEqual(address.params, (("tag", "1928301774"),))
        self.assertEqual(address.tag, "1928301774")
        self.assertTrue(address.bracketed)
        self.assertEqual(str(address), text)

    def test_token_display_name(self) -> None:
        """If the display name is tokens, it is kept as written."""
        address = parse_name_addr("Bob Smith <sip:bob@biloxi.com>")
        self.assertEqual(address.display_name, "Bob Smith")
        self.assertEqual(address.unquoted_display_name, "Bob Smith")
        self.assertIsNone(address.tag)
        self.assertEqual(str(address), "Bob Smith <sip:bob@biloxi.com>")

    def test_no_display_name(self) -> None:
        """If there is no display name, L{NameAddress.display_name} is C{None}."""
        address = parse_name_addr("<sip:bob@biloxi.com>;tag=a6c85cf")
        self.assertIsNone(address.display_name)
        self.assertIsNone(address.unquoted_display_name)
        self.assertEqual(str(address), "<sip:bob@biloxi.com>;tag=a6c85cf")

    def test_lwsdisp(self) -> None:
        """
        If there is no LWS between the display name and C{<} (RFC 4475
        3.1.1.6 lwsdisp), L{parse_name_addr} accepts it; C{str()} adds a space.
        """
        address = parse_name_addr("caller<sip:caller@example.com>;tag=323")
        self.assertEqual(address.display_name, "caller")
        self.assertEqual(address.tag, "323")
        self.assertEqual(str(address), "caller <sip:caller@example.com>;tag=323")

    def test_quoted_pairs(self) -> None:
        """
        If a quoted display name holds quoted-pairs of control characters,
        including NUL (RFC 4475 3.1.1.1 wsinv), they are resolved by
        L{NameAddress.unquoted_display_name}.
        """
        text = (
            '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
            "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>"
        )
        address = parse_name_addr(text)
        self.assertEqual(address.unquoted_display_name, "BEL:\x07 NUL:\x00 DEL:\x7f")
        self.assertEqual(
            address.uri, _sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com")
        )
        self.assertEqual(str(address), text)

    def test_wsinv_folded(self) -> None:
        """
        If the To, From, Contact and Route values of RFC 4475 3.1.1.1 wsinv
        are given with their line folding intact, they parse.
        """
        to = parse_name_addr("\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
        self.assertEqual(str(to), "sip:vivekg@chair-dnrc.example.com;tag=1918181833n")
        sender = parse_name_addr(
            '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8'
        )
        self.assertEqual(sender.unquoted_display_name, 'J Rosenberg \\"')
        self.assertEqual(sender.tag, "98asjd8")
        contacts = parse_contact(
            '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
            "      newvalue ;\r\n  secondparam ; q = 0.33"
        )
        assert isinstance(contacts, tuple)
        (contact,) = contacts
        self.assertEqual(contact.unquoted_display_name, 'Quoted string ""')
        self.assertEqual(
            contact.params, (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
        )
        self.assertEqual(contact.q, 0.33)
        (route,) = parse_name_addr_list(
            "\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
        )
        assert isinstance(route.uri, SipURI)
        self.assertTrue(route.uri.lr)

    def test_utf8_display_name(self) -> None:
        """If a quoted display name holds non-ASCII text, it is kept."""
        address = parse_name_addr('"J\u00e9r\u00f4me \u65e5\u672c" <sip:j@example.com>')
        self.assertEqual(address.unquoted_display_name, "J\u00e9r\u00f4me \u65e5\u672c")

    def test_escaped_quote_display_name(self) -> None:
        """If a display name holds C{\\"}, it does not end the quoted-string."""
        address = parse_name_addr('"a \\"b\\" <c>" <sip:a@b>')
        self.assertEqual(address.unquoted_display_name, 'a "b" <c>')

    def test_comma_in_quoted_display_name(self) -> None:
        """If a quoted display name holds a comma, that is fine."""
        address = parse_name_addr('"Watson, Thomas" <sip:t.watson@example.org>')
        self.assertEqual(address.unquoted_display_name, "Watson, Thomas")

    def test_addr_spec_params_are_header_params(self) -> None:
        """
        If the address has no angle brackets, everything after the first
        C{;} is a header parameter (RFC 3261 20.10; RFC 4475 3.3.12 cparam01).
        """
        address = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
        self.assertEqual(address.uri, _sip("sip:+19725552222@gw1.example.net"))
        assert isinstance(address.uri, SipURI)
        self.assertEqual(address.uri.params, ())
        self.assertEqual(address.params, (("unknownparam", None),))
        self.assertFalse(address.bracketed)
        self.assertEqual(str(address), "sip:+19725552222@gw1.example.net;unknownparam")

    def test_bracketed_params_are_uri_params(self) -> None:
        """
        If the address is in angle brackets, a C{;} inside them starts a URI
        parameter (RFC 4475 3.3.13 cparam02).
        """
        address = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
        assert isinstance(address.uri, SipURI)
        self.assertEqual(address.uri.params, (("unknownparam", None),))
        self.assertEqual(address.params, ())
        self.assertEqual(str(address), "<sip:+19725552222@gw1.example.net;unknownparam>")

    def test_addr_spec_with_tag(self) -> None:
        """
        If an addr-spec is followed by a tag (RFC 4475 3.1.1.4 escnull), the
        tag is a header parameter.
        """
        address = parse_name_addr("sip:null-%00-null@example.com;tag=839923423")
        self.assertEqual(address.uri, _sip("sip:null-%00-null@example.com"))
        self.assertEqual(address.tag, "839923423")
        self.assertEqual(str(address), "sip:null-%00-null@example.com;tag=839923423")

    def test_absolute_uris(self) -> None:
        """
        If the address is an absolute URI of another scheme (RFC 4475: To
        C{isbn:2983792873}, C{http://www.example.com}), it is accepted.
        """
        for text in ["isbn:2983792873", "<http://www.example.com>", "http://www.example.com"]:
            address = parse_name_addr(text)
            self.assertIsInstance(address.uri, AbsoluteURI)
            self.assertEqual(str(address), text)

    def test_lws_around(self) -> None:
        """If there is LWS around the address and its parameters, it is skipped."""
        address = parse_name_addr(' "A" <sip:a@b> ; tag = x ;lr ')
        self.assertEqual(address.params, (("tag", "x"), ("lr", None)))
        self.assertEqual(str(address), '"A" <sip:a@b>;tag=x;lr')

    def test_quoted_param_value(self) -> None:
        """If a parameter value is quoted, it is kept raw; C{param} unquotes it."""
        address = parse_name_addr('<sip:a@b>;x="1;2,3";y')
        self.assertEqual(address.params, (("x", '"1;2,3"'), ("y", None)))
        self.assertEqual(address.param("X"), "1;2,3")
        self.assertEqual(address.param("y"), "")
        self.assertIsNone(address.param("z"))
        self.assertTrue(address.has_param("Y"))

    def test_regbadct(self) -> None:
        """
        If an addr-spec without brackets holds C{?} or C{,} (RFC 4475
        3.1.2.13 regbadct), L{parse_name_addr} raises L{MessageParseError} (400).
        """
        error = self.assertRaises(
            MessageParseError,
            parse_name_addr,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        )
        self.assertEqual(error.status_hint, 400)
        self.assertRaises(MessageParseError, parse_name_addr, "sip:a@b,c")

    def test_quotbal(self) -> None:
        """
        If the display name's quote never closes (RFC 4475 3.1.2.6 quotbal),
        L{parse_name_addr} raises L{MessageParseError}.
        """
        self.assertRaises(
            MessageParseError, parse_name_addr, '"Mr. J. User <sip:j.user@example.com>'
        )

    def test_baddn(self) -> None:
        """
        If an unquoted display name holds a comma (RFC 4475 3.1.2.15 baddn), the
        From value is rejected, whole and as a list.
        """
        text = "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43"
        self.assertRaises(MessageParseError, parse_name_addr, text)
        self.assertRaises(MessageParseError, parse_name_addr_list, text)

    def test_badaspec(self) -> None:
        """
        If there is whitespace inside the angle brackets (RFC 4475
        3.1.2.14 badaspec), L{parse_name_addr} raises L{MessageParseError}.
        """
        self.assertRaises(
            MessageParseError,
            parse_name_addr,
            '"Watson, Thomas" < sip:t.watson@example.org >',
        )

    def test_badinv01(self) -> None:
        """
        If there are empty header parameters (RFC 4475 3.1.2.1 badinv01), the
        address is rejected.
        """
        self.assertRaises(MessageParseError, parse_name_addr, '"Joe" <sip:joe@example.org>;;;;')
        self.assertRaises(
            MessageParseError, parse_name_addr, "sip:caller@example.net;;tag=134161461246"
        )

    def test_bad_rejected(self) -> None:
        """If the value is not one address, L{parse_name_addr} raises."""
        for text in [
            "",
            "   ",
            "<>",
            "< >",
            "<sip:a@b",
            "sip:a@b>",
            "<sip:a@b>>",
            "<<sip:a@b>>",
            "<sip:a@b> junk",
            "<sip:a@b> <sip:c@d>",
            "<sip:a@b>;",
            "<sip:a@b>;tag",
            "<sip:a@b>;tag=",
            '<sip:a@b>;tag="x"',
            "<sip:a@b>;TAG=[2001:db8::1]",
            "<sip:a@b>;=x",
            "<sip:a@b>;a b=c",
            "<sip:a@b>;x=<y>",
            '<sip:a@b>;x="y',
            '"A" sip:a@b',
            'A "B" <sip:a@b>',
            '"a\x01" <sip:a@b>',
            '"a\\\r" <sip:a@b>',
            "Al\u00e9 <sip:a@b>",
            "sip:a b@c",
            "sip:a@b c",
            "notauri",
            "sip:",
            "sip:a@b, sip:c@d",
            "*",
        ]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_name_addr, text)

    @given(addresses())
    def test_round_trip(self, address: NameAddress) -> None:
        """
        If a L{NameAddress} is formatted, L{parse_name_addr} gives an equal
        value back, which formats to the same text.
        """
        text = str(address)
        parsed = parse_name_addr(text)
        self.assertEqual(parsed, address)
        self.assertEqual(str(parsed), text)

    @given(st.text() | SIPISH)
    def test_only_parse_errors(self, text: str) -> None:
        """If any text is parsed, only L{MessageParseError} is ever raised."""
        for parse in (parse_name_addr, parse_name_addr_list, parse_contact):
            try:
                result = parse(text)
            except MessageParseError:
                continue
            if result is STAR:
                continue
            for address in result if isinstance(result, tuple) else (result,):
                _touch(address)

    @given(_QUOTABLE | st.text(alphabet=st.characters(exclude_categories=())))
    def test_only_parse_errors_surrogates(self, text: str) -> None:
        """If the text holds lone surrogates, only L{MessageParseError} is raised."""
        for candidate in (
            text,
            f'"{text}" <sip:a@b>',
            f"<sip:{text}@b>;tag={text}",
            f"sip:a@b;x={text}",
            f"<sip:a@b>;q={text};expires={text}",
        ):
            try:
                _touch(parse_name_addr(candidate))
            except MessageParseError:
                pass


def _touch(address: NameAddress) -> None:
    """Use every property; only L{MessageParseError} may escape."""
    str(address)
    address.tag  # noqa: B018
    address.unquoted_display_name  # noqa: B018
    for name in ("expires", "q"):
        try:
            getattr(address, name)
        except MessageParseError:
            pass


class ContactParamTests(SynchronousTestCase):
    """Tests for the Contact parameters C{expires} and C{q}."""

    def test_expires(self) -> None:
        """If C{expires} is delta-seconds, L{NameAddress.expires} is the int."""
        self.assertEqual(parse_name_addr("<sip:a@b>;expires=3600").expires, 3600)
        self.assertEqual(parse_name_addr("<sip:a@b>;expires=0").expires, 0)
        self.assertEqual(parse_name_addr("<sip:a@b>;expires=4294967295").expires, 2**32 - 1)
        self.assertIsNone(parse_name_addr("<sip:a@b>").expires)

    def test_expires_bad(self) -> None:
        """
        If C{expires} is not digits or is above 2**32-1 (RFC 4475 3.1.2.4 scalar02:
        C{expires=280297596632815}), L{NameAddress.expires} raises.
        """
        for value in ["280297596632815", "4294967296", "-1", "x", "1" * 10000, ""]:
            address = parse_name_addr(
                f"<sip:j.user@host.example.net>;expires={value}" if value else "<sip:a@b>;expires"
            )
            with self.subTest(value=value):
                self.assertRaises(MessageParseError, getattr, address, "expires")

    def test_q(self) -> None:
        """If C{q} is a qvalue (RFC 3261 20.10), L{NameAddress.q} is the float."""
        for value, q in [
            ("0", 0.0),
            ("0.7", 0.7),
            ("0.123", 0.123),
            ("1", 1.0),
            ("1.000", 1.0),
            ("0.", 0.0),
            ("1.", 1.0),
        ]:
            with self.subTest(value=value):
                self.assertEqual(parse_name_addr(f"<sip:a@b>;q={value}").q, q)
        self.assertIsNone(parse_name_addr("<sip:a@b>").q)

    def test_q_bad(self) -> None:
        """If C{q} is not a qvalue, L{NameAddress.q} raises."""
        for value in ["1.5", "2", "0.1234", "1.001", ".5", "-0", "x", "01"]:
            with self.subTest(value=value):
                address = parse_name_addr(f"<sip:a@b>;q={value}")
                self.assertRaises(MessageParseError, getattr, address, "q")


class NameAddressBuilderTests(SynchronousTestCase):
    """Tests for the L{NameAddress} builders and formatting."""

    def test_with_tag(self) -> None:
        """If C{with_tag} is called, the tag is added, or replaced in place."""
        address = parse_name_addr("<sip:bob@biloxi.com>;x=1")
        self.assertEqual(str(address.with_tag("a6c85cf")), "<sip:bob@biloxi.com>;x=1;tag=a6c85cf")
        address = parse_name_addr("<sip:bob@biloxi.com>;tag=1;x=1")
        self.assertEqual(str(address.with_tag("2")), "<sip:bob@biloxi.com>;tag=2;x=1")
        self.assertEqual(str(address.without_tag()), "<sip:bob@biloxi.com>;x=1")

    def test_with_param(self) -> None:
        """If C{with_param} is called, the parameter is set; C{without_param} removes it."""
        address = parse_name_addr("sip:a@b")
        self.assertEqual(str(address.with_param("lr")), "sip:a@b;lr")
        self.assertEqual(str(address.with_param("x", "1").without_param("X")), "sip:a@b")

    def test_with_display_name(self) -> None:
        """If C{with_display_name} is called, the name is quoted and escaped."""
        address = parse_name_addr("sip:a@b").with_display_name('Say "hi"\\')
        self.assertEqual(str(address), '"Say \\"hi\\"\\\\" <sip:a@b>')
        self.assertEqual(address.unquoted_display_name, 'Say "hi"\\')
        self.assertEqual(parse_name_addr(str(address)), address)
        self.assertIsNone(address.with_display_name(None).display_name)

    def test_with_display_name_crlf(self) -> None:
        """If a display name holds CR or LF, C{with_display_name} raises."""
        address = parse_name_addr("sip:a@b")
        self.assertRaises(MessageParseError, address.with_display_name, "a\r\nb")

    def test_with_uri(self) -> None:
        """If C{with_uri} is called, the URI is replaced."""
        address = parse_name_addr('"A" <sip:a@b>;tag=1').with_uri(_sip("sip:c@d"))
        self.assertEqual(str(address), '"A" <sip:c@d>;tag=1')

    def test_brackets_added_when_needed(self) -> None:
        """
        If an address without brackets gets a URI with parameters, headers
        or a comma, C{str()} writes brackets; the bracketing is not compared.
        """
        address = parse_name_addr("sip:a@b;tag=1").with_uri(_sip("sip:a@b;lr"))
        self.assertEqual(str(address), "<sip:a@b;lr>;tag=1")
        self.assertEqual(parse_name_addr(str(address)), address)
        built = NameAddress(uri=_sip("sip:a@b"), bracketed=False)
        self.assertEqual(str(built), "sip:a@b")
        self.assertEqual(built, NameAddress(uri=_sip("sip:a@b")))
        self.assertEqual(str(NameAddress(uri=_sip("sip:a@b"))), "<sip:a@b>")

    def test_display_name_forces_brackets(self) -> None:
        """If there is a display name, C{str()} uses brackets."""
        built = NameAddress(display_name='"A"', uri=_sip("sip:a@b"), bracketed=False)
        self.assertEqual(str(built), '"A" <sip:a@b>')

    def test_hashable(self) -> None:
        """If two addresses are equal, they hash alike."""
        self.assertEqual(
            hash(parse_name_addr("sip:a@b;tag=1")), hash(parse_name_addr("<sip:a@b>;tag=1"))
        )

    @given(_QUOTABLE)
    def test_quote_text(self, text: str) -> None:
        """If text is quoted with L{quote_text}, L{unquote} gives it back."""
        self.assertEqual(unquote(quote_text(text)), text)


class ParseListTests(SynchronousTestCase):
    """Tests for L{parse_name_addr_list} and L{parse_contact}."""

    def test_list(self) -> None:
        """If the value holds several addresses, each is parsed."""
        addresses = parse_name_addr_list(
            '"Bell, A" <sip:a,1@b;x=1>;q=0.5, sip:c@d;expires=60 ,<sip:e@f>'
        )
        self.assertEqual(
            [str(a) for a in addresses],
            ['"Bell, A" <sip:a,1@b;x=1>;q=0.5', "sip:c@d;expires=60", "<sip:e@f>"],
        )

    def test_empty_elements(self) -> None:
        """If the list has an empty element, L{parse_name_addr_list} raises."""
        for text in ["", "<sip:a@b>,", ",<sip:a@b>", "<sip:a@b>,,<sip:c@d>", " , "]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_name_addr_list, text)

    def test_brackets_required(self) -> None:
        """
        If brackets are required (Route, Record-Route), an addr-spec is
        rejected.
        """
        self.assertEqual(
            len(parse_name_addr_list("<sip:p1;lr>,<sip:p2;lr>", brackets_required=True)), 2
        )
        self.assertRaises(
            MessageParseError,
            parse_name_addr_list,
            "<sip:p1;lr>, sip:p2",
            brackets_required=True,
        )

    def test_star(self) -> None:
        """If the Contact is C{*}, L{parse_contact} gives L{STAR}."""
        self.assertIs(parse_contact("*"), STAR)
        self.assertIs(parse_contact(" * "), STAR)
        self.assertEqual(str(STAR), "*")

    def test_star_not_alone(self) -> None:
        """If C{*} is not alone or has parameters, L{parse_contact} raises."""
        for text in ["*, <sip:a@b>", "<sip:a@b>, *", "*;expires=0", "**", "*,*"]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_contact, text)

    def test_contacts(self) -> None:
        """If the Contact holds addresses, L{parse_contact} gives them."""
        contacts = parse_contact("<sip:a@b>;q=0.7;expires=3600, sip:c@d;q=0.1")
        self.assertIsInstance(contacts, tuple)
        assert isinstance(contacts, tuple)
        self.assertEqual([c.q for c in contacts], [0.7, 0.1])
        self.assertEqual(contacts[0].expires, 3600)

    @given(st.lists(addresses(), min_size=1, max_size=4))
    def test_list_round_trip(self, addresses: list[NameAddress]) -> None:
        """If addresses are joined with commas, they parse back."""
        text = ", ".join(str(a) for a in addresses)
        self.assertEqual(parse_name_addr_list(text), tuple(addresses))
        self.assertEqual(parse_contact(text), tuple(addresses))
