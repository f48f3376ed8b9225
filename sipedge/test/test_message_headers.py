# -*- test-case-name: sipedge.test.test_message_headers -*-
"""Tests for L{sipedge.message._headers}: look-ups through the index."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Headers, header_key

# Names in every spelling a look-up meets: long, compact, odd case, unknown.
NAMES = st.sampled_from(
    ["Via", "v", "V", "VIA", "via", "Call-ID", "i", "call-id", "CSeq", "Route",
     "Record-Route", "Contact", "m", "X-Thing", "x-thing", "Max-Forwards", "To", "t"]
)
VALUES = st.text(alphabet="ab ,;=:@", max_size=8)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=12)


def _scan(headers: Headers, name: str) -> tuple[str, ...]:
    """The values of the fields called C{name}, by a linear scan: the reference."""
    key = header_key(name)
    return tuple(value for fkey, _, value in headers.fields if fkey == key)


class IndexTests(SynchronousTestCase):
    """Look-ups by the index give what a scan of the fields gives."""

    @given(PAIRS, st.lists(NAMES, min_size=1, max_size=6))
    def test_lookups_match_a_scan(self, pairs: list[tuple[str, str]], names: list[str]) -> None:
        """
        C{get}, C{get_all}, C{count} and C{in} agree with a linear scan, in
        any order of look-ups, for any spelling of the name.
        """
        headers = Headers.of(*pairs)
        for name in names:
            expected = _scan(headers, name)
            self.assertEqual(headers.get_all(name), expected)
            self.assertEqual(headers.get(name), expected[0] if expected else None)
            self.assertEqual(headers.get(name, "-"), expected[0] if expected else "-")
            self.assertEqual(headers.count(name), len(expected))
            self.assertEqual(name in headers, bool(expected))

    @given(PAIRS, NAMES, VALUES)
    def test_copies_have_their_own_index(
        self, pairs: list[tuple[str, str]], name: str, value: str
    ) -> None:
        """
        A copy made after a look-up on the original (prepended, replaced,
        removed, first element removed) answers for its own fields.
        """
        headers = Headers.of(*pairs)
        headers.get_all(name)
        for copy in (
            headers.prepended(name, value),
            headers.added(name, value),
            headers.replaced(name, value),
            headers.removed(name),
            headers.first_removed(name),
        ):
            self.assertEqual(copy.get_all(name), _scan(copy, name))

    def test_index_is_not_part_of_the_value(self) -> None:
        """Two equal headers stay equal, with the same hash, after one is read."""
        first = Headers.of(("Via", "a"), ("To", "b"))
        second = Headers.of(("Via", "a"), ("To", "b"))
        self.assertEqual(first.get_all("v"), ("a",))
        self.assertEqual(first, second)
        self.assertEqual(hash(first), hash(second))
        self.assertNotIn("index", repr(first))
        self.assertEqual(repr(first), repr(second))

    def test_absent(self) -> None:
        """A name with no field gives nothing, and the default to C{get}."""
        headers = Headers.of(("Via", "a"))
        self.assertEqual(headers.get_all("Route"), ())
        self.assertIsNone(headers.get("Route"))
        self.assertEqual(headers.get("Route", "x"), "x")
        self.assertNotIn("Route", headers)
        self.assertNotIn(3, headers)
