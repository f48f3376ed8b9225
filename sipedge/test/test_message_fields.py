# -*- test-case-name: sipedge.test.test_message_fields -*-
"""Tests for L{sipedge.message._fields}."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message._fields import (
    MAX_CSEQ,
    CSeq,
    parse_cseq,
    parse_option_tags,
    parse_uint,
)
from sipedge.test.strategies import tokens

SIPISH = st.text(alphabet='0123456789 \t\r\n,-+INVITEack100rel;="', max_size=40)


class CSeqTests(SynchronousTestCase):
    """Tests for L{parse_cseq} and L{CSeq}."""

    def test_parse(self) -> None:
        """If the value is C{number method}, L{parse_cseq} gives both."""
        cseq = parse_cseq("314159 INVITE")
        self.assertEqual(cseq, CSeq(314159, "INVITE"))
        self.assertEqual(str(cseq), "314159 INVITE")

    def test_leading_zeros(self) -> None:
        """
        If the number has leading zeros and the method follows folded LWS
        (RFC 4475 3.1.1.1 wsinv: C{0009} then C{INVITE} on a continuation
        line),
        L{parse_cseq} accepts it.
        """
        self.assertEqual(parse_cseq("0009\r\n  INVITE"), CSeq(9, "INVITE"))
        self.assertEqual(parse_cseq(" 0009 INVITE "), CSeq(9, "INVITE"))
        self.assertEqual(str(parse_cseq("0009 INVITE")), "9 INVITE")

    def test_method_case_kept(self) -> None:
        """If the method is an unknown or lower-case token, it is kept as written."""
        self.assertEqual(
            parse_cseq("1 !interesting-Method0123456789_*+`.%'~").method,
            "!interesting-Method0123456789_*+`.%'~",
        )
        self.assertEqual(parse_cseq("1 invite").method, "invite")

    def test_limits(self) -> None:
        """
        If the number is 2**32-1 or less, it is accepted; above that (RFC
        4475 3.1.2.4 scalar02: C{36893488147419103232}; 3.1.2.5 scalarlg:
        C{9292394834772304023312}) it is rejected.
        """
        self.assertEqual(parse_cseq(f"{MAX_CSEQ} ACK").number, 2**32 - 1)
        self.assertEqual(parse_cseq("0 ACK").number, 0)
        self.assertEqual(parse_cseq("0" * 10000 + "7 ACK").number, 7)
        for text in [
            "4294967296 ACK",
            "36893488147419103232 REGISTER",
            "9292394834772304023312 OPTIONS",
            "9" * 10000 + " ACK",
        ]:
            with self.subTest(text=text[:30]):
                self.assertRaises(MessageParseError, parse_cseq, text)

    def test_bad(self) -> None:
        """If the value is not C{1*DIGIT LWS Method}, L{parse_cseq} raises."""
        for text in [
            "",
            "INVITE",
            "1",
            "1INVITE",
            "-1 INVITE",
            "1 INVITE x",
            "1 IN,VITE",
            "x INVITE",
            "\u0661 INVITE",
            "1 INV\u00c9TE",
            "1.0 INVITE",
        ]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_cseq, text)

    def test_next(self) -> None:
        """If C{next} is called, the number goes up by one, the method as given."""
        self.assertEqual(CSeq(1, "INVITE").next(), CSeq(2, "INVITE"))
        self.assertEqual(CSeq(1, "INVITE").next("BYE"), CSeq(2, "BYE"))

    @given(st.integers(0, MAX_CSEQ), tokens())
    def test_round_trip(self, number: int, method: str) -> None:
        """If a L{CSeq} is formatted, L{parse_cseq} gives it back."""
        cseq = CSeq(number, method)
        self.assertEqual(parse_cseq(str(cseq)), cseq)

    @given(st.text() | SIPISH)
    def test_only_parse_errors(self, text: str) -> None:
        """If any text is parsed, only L{MessageParseError} is ever raised."""
        try:
            parse_cseq(text)
        except MessageParseError:
            pass


class ParseUintTests(SynchronousTestCase):
    """Tests for L{parse_uint}."""

    def test_leading_zeros(self) -> None:
        """
        If the value has leading zeros (RFC 4475 3.1.1.1 wsinv: Max-Forwards
        C{0068}), they are ignored.
        """
        self.assertEqual(parse_uint("0068", "Max-Forwards", 255), 68)
        self.assertEqual(parse_uint("000000000000000", "Content-Length"), 0)
        self.assertEqual(parse_uint(" 70 ", "Max-Forwards", 255), 70)

    def test_maximum(self) -> None:
        """
        If the value is above the maximum (RFC 4475 3.1.2.4 scalar02: Max-Forwards
        300, an Expires of 1 followed by 100 zeros), L{parse_uint} raises
        with a reason naming the field.
        """
        self.assertEqual(parse_uint("255", "Max-Forwards", 255), 255)
        error = self.assertRaises(MessageParseError, parse_uint, "300", "Max-Forwards", 255)
        self.assertIn("Max-Forwards", error.reason)
        self.assertIn("255", error.reason)
        self.assertEqual(parse_uint("4294967295", "Expires"), 2**32 - 1)
        self.assertRaises(MessageParseError, parse_uint, "1" + "0" * 100, "Expires")
        self.assertRaises(MessageParseError, parse_uint, "9" * 10000, "Expires")

    def test_bad(self) -> None:
        """
        If the value is not digits (RFC 4475 3.1.2.3 ncl: Content-Length C{-999}),
        L{parse_uint} raises.
        """
        for text in ["", " ", "-999", "+1", "1 2", "0x10", "\u0661", "1.0", "1,2"]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_uint, text, "Content-Length")

    @given(st.integers(0, 2**32 - 1), st.integers(0, 3))
    def test_round_trip(self, value: int, zeros: int) -> None:
        """If a number is written with leading zeros, L{parse_uint} gives it back."""
        self.assertEqual(parse_uint("0" * zeros + str(value), "Expires"), value)

    @given(st.text() | SIPISH)
    def test_only_parse_errors(self, text: str) -> None:
        """If any text is parsed, only L{MessageParseError} is ever raised."""
        try:
            parse_uint(text, "X", 255)
        except MessageParseError:
            pass


class OptionTagsTests(SynchronousTestCase):
    """Tests for L{parse_option_tags}."""

    def test_list(self) -> None:
        """If the value is a comma list of tokens, L{parse_option_tags} gives them."""
        self.assertEqual(
            parse_option_tags("100rel, timer ,replaces,path"),
            ("100rel", "timer", "replaces", "path"),
        )

    def test_empty(self) -> None:
        """If the value is empty (a valid Supported), the result is empty."""
        self.assertEqual(parse_option_tags(""), ())
        self.assertEqual(parse_option_tags("  "), ())

    def test_bad(self) -> None:
        """If an element is empty or not a token, L{parse_option_tags} raises."""
        for text in ["a,,b", "a,", ",a", "a b", "a;b", '"a"', "a/b", "\u00e9"]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_option_tags, text)

    @given(st.lists(tokens(), min_size=1, max_size=5))
    def test_round_trip(self, tags: list[str]) -> None:
        """If tokens are joined with commas, L{parse_option_tags} gives them back."""
        self.assertEqual(parse_option_tags(" , ".join(tags)), tuple(tags))

    @given(st.text() | SIPISH)
    def test_only_parse_errors(self, text: str) -> None:
        """If any text is parsed, only L{MessageParseError} is ever raised."""
        try:
            parse_option_tags(text)
        except MessageParseError:
            pass
