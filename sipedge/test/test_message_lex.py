# -*- test-case-name: sipedge.test.test_message_lex -*-
"""Tests for L{sipedge.message._lex}."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message._lex import (
    format_params,
    param_value,
    parse_params,
    quote,
    split_comma_list,
    unquote,
)


class SplitCommaListTests(SynchronousTestCase):
    def test_plain(self) -> None:
        """Elements are split at commas and stripped."""
        self.assertEqual(split_comma_list("a , b,c"), ["a", "b", "c"])

    def test_quotes_and_angles(self) -> None:
        """Commas inside quotes or angle brackets do not split."""
        self.assertEqual(
            split_comma_list('"Bell, A" <sip:a@b;x=1,2>, <sip:c@d>'),
            ['"Bell, A" <sip:a@b;x=1,2>', "<sip:c@d>"],
        )

    def test_escaped_quote(self) -> None:
        """A quoted-pair does not end the quoted-string."""
        self.assertEqual(split_comma_list('"a\\",b", c'), ['"a\\",b"', "c"])

    def test_unterminated(self) -> None:
        """An unterminated quoted-string raises L{MessageParseError}."""
        self.assertRaises(MessageParseError, split_comma_list, '"abc, d')

    def test_unbalanced_angle(self) -> None:
        """An unclosed C{<} raises L{MessageParseError}."""
        self.assertRaises(MessageParseError, split_comma_list, "<sip:a@b, c")


class ParamsTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """Parameters keep their raw text, so formatting gives the input back."""
        text = ';branch=z9hG4bK1;rport;received=[2001:db8::1];x="a;b"'
        params = parse_params(text)
        self.assertEqual(
            params,
            (
                ("branch", "z9hG4bK1"),
                ("rport", None),
                ("received", "[2001:db8::1]"),
                ("x", '"a;b"'),
            ),
        )
        self.assertEqual(format_params(params), text)

    def test_empty_param(self) -> None:
        """An empty parameter (C{;;}) is an error."""
        self.assertRaises(MessageParseError, parse_params, ";;")
        self.assertRaises(MessageParseError, parse_params, ";a;;b")

    def test_empty_value(self) -> None:
        """C{name=} with nothing after it is an error unless allowed."""
        self.assertRaises(MessageParseError, parse_params, ";a=")
        self.assertEqual(parse_params(";a=", allow_empty_value=True), (("a", ""),))

    def test_param_value(self) -> None:
        """L{param_value} looks up names case-insensitively and unquotes."""
        params = parse_params(';Tag=abc;lr;q="x\\"y"')
        self.assertEqual(param_value(params, "tag"), "abc")
        self.assertEqual(param_value(params, "LR"), "")
        self.assertEqual(param_value(params, "q"), 'x"y')
        self.assertIsNone(param_value(params, "nope"))

    @given(st.text())
    def test_never_crashes(self, text: str) -> None:
        """Any text either parses or raises L{MessageParseError}."""
        try:
            parse_params(text)
        except MessageParseError:
            pass

    @given(st.text())
    def test_quote_round_trip(self, text: str) -> None:
        """L{unquote} undoes L{quote}."""
        self.assertEqual(unquote(quote(text)), text)
