# -*- test-case-name: sipedge.test.test_store_lost -*-
"""
Tests for L{sipedge.store.LostBindings}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.store import LostBindings

AOR = "sip:bob@example.com"


class LostBindingsTests(SynchronousTestCase):
    """Which users lost their phones, and until when."""

    def test_until_expiry(self) -> None:
        """A lost AOR is lost until its binding would have expired, then forgotten."""
        lost = LostBindings()
        self.assertFalse(lost.is_lost(AOR, 100.0))
        lost.lost(AOR, 220.0)
        self.assertTrue(lost.is_lost(AOR, 100.0))
        self.assertTrue(lost.is_lost(AOR, 219.9))
        self.assertFalse(lost.is_lost(AOR, 220.0))
        self.assertEqual(len(lost), 0)

    def test_latest_binding(self) -> None:
        """Two lost bindings of one AOR: until the later one would have expired."""
        lost = LostBindings()
        lost.lost(AOR, 300.0)
        lost.lost(AOR, 200.0)
        self.assertTrue(lost.is_lost(AOR, 250.0))

    def test_forget(self) -> None:
        """A new registration forgets it; forgetting an unknown AOR is no error."""
        lost = LostBindings()
        lost.lost(AOR, 300.0)
        lost.forget(AOR)
        lost.forget("sip:nobody@example.com")
        self.assertFalse(lost.is_lost(AOR, 100.0))

    def test_limit(self) -> None:
        """Beyond C{limit} AORs, the oldest is forgotten; a limit below 1 is refused."""
        lost = LostBindings(limit=2)
        for n in range(3):
            lost.lost(f"sip:u{n}@example.com", 500.0)
        self.assertEqual(len(lost), 2)
        self.assertFalse(lost.is_lost("sip:u0@example.com", 100.0))
        self.assertTrue(lost.is_lost("sip:u2@example.com", 100.0))
        self.assertRaises(ValueError, LostBindings, 0)

    @given(st.lists(st.tuples(st.integers(0, 5), st.floats(0, 1000)), max_size=40),
           st.floats(0, 1000))
    def test_bounded_and_exact(self, events: list[tuple[int, float]], now: float) -> None:
        """Whatever is lost, at most C{limit} are kept, and only those not yet expired count."""
        lost = LostBindings(limit=4)
        latest: dict[str, float] = {}
        for user, until in events:
            aor = f"sip:u{user}@example.com"
            lost.lost(aor, until)
            latest[aor] = max(until, latest.get(aor, until))
        self.assertLessEqual(len(lost), 4)
        for aor, until in latest.items():
            if lost.is_lost(aor, now):
                self.assertGreater(until, now)
