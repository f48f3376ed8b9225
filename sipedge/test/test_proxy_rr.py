# -*- test-case-name: sipedge.test.test_proxy_rr -*-
"""
The signed Record-Route values: the remembered MACs are the MACs, the
table stays bounded, only the MAC of the request's own Call-ID counts, and
only for C{lifetime} after it was made.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import SipURI, parse_uri
from sipedge.proxy import RecordRouteSigner

SECRET = b"s" * 32

call_ids = st.text(min_size=1, max_size=40)


def _uri(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def _fresh(call_id: str, minute: int) -> str:
    """The C{se} value, as the definition makes it."""
    data = f"{call_id}\x00{minute:x}".encode("utf-8", "surrogateescape")
    return f"{minute:x}" + hmac.new(SECRET, data, hashlib.sha256).hexdigest()[:20]


class SignerTests(SynchronousTestCase):
    """L{RecordRouteSigner}."""

    @given(
        st.lists(st.tuples(call_ids, st.sampled_from((0.0, 1.0, 59.0, 3600.0))), max_size=30),
        st.integers(1, 8),
    )
    def test_memo_is_the_mac(self, steps: list[tuple[str, float]], size: int) -> None:
        """
        However the Call-IDs come and repeat, and the minutes pass, each
        value is the minute and the HMAC of its Call-ID and minute, it
        verifies, and the table never holds more than its size.
        """
        clock = Clock()
        clock.advance(1_000_000)
        signer = RecordRouteSigner(SECRET, clock, 86400.0, memo_size=size)
        for call_id, later in steps + steps[::-1]:
            clock.advance(later)
            value = signer.mac(call_id)
            self.assertEqual(value, _fresh(call_id, int(clock.seconds() // 60)))
            self.assertTrue(signer.verify(_uri(f"sip:192.0.2.1;lr;se={value}"), call_id))
            self.assertLessEqual(len(signer._made), size)
            self.assertLessEqual(len(signer._known), size)

    def test_lifetime(self) -> None:
        """
        A value counts for C{lifetime} (rounded up to whole minutes) after
        the minute it was made in; not after; not when dated more than
        five minutes ahead of our clock.
        """
        clock = Clock()
        clock.advance(6000)
        signer = RecordRouteSigner(SECRET, clock, 3600.0)
        uri = _uri(f"sip:192.0.2.1;lr;se={signer.mac('call-1')}")
        clock.advance(3600)
        self.assertTrue(signer.verify(uri, "call-1"))
        self.assertEqual(signer.check(uri, "call-1"), "fresh")
        clock.advance(60)
        self.assertFalse(signer.verify(uri, "call-1"))
        self.assertEqual(signer.check(uri, "call-1"), "stale")
        self.assertIsNone(signer.check(uri, "call-2"))
        now = int(clock.seconds() // 60)
        ahead = _uri(f"sip:192.0.2.1;lr;se={_fresh('call-1', now + 6)}")
        self.assertFalse(signer.verify(ahead, "call-1"))
        self.assertIsNone(signer.check(ahead, "call-1"))
        near = _uri(f"sip:192.0.2.1;lr;se={_fresh('call-1', now + 5)}")
        self.assertTrue(signer.verify(near, "call-1"))

    def test_forever(self) -> None:
        """With a lifetime of 0, or no clock, a value never expires."""
        clock = Clock()
        signer = RecordRouteSigner(SECRET, clock, 0.0)
        uri = _uri(f"sip:192.0.2.1;lr;se={signer.mac('call-1')}")
        clock.advance(10 * 365 * 86400)
        self.assertTrue(signer.verify(uri, "call-1"))
        timeless = RecordRouteSigner(SECRET)
        self.assertEqual(timeless.mac("call-1"), _fresh("call-1", 0))

    def test_short_secret(self) -> None:
        """A secret under 16 bytes is refused."""
        self.assertRaises(ValueError, RecordRouteSigner, b"short")

    def test_verify(self) -> None:
        """Our MAC of the Call-ID verifies; another call's, none, or junk do not."""
        signer = RecordRouteSigner(SECRET)
        good = _uri(f"sip:192.0.2.1;lr;se={signer.mac('call-1')}")
        self.assertTrue(signer.verify(good, "call-1"))
        self.assertFalse(signer.verify(good, "call-2"))
        self.assertFalse(signer.verify(_uri("sip:192.0.2.1;lr"), "call-1"))
        self.assertFalse(signer.verify(_uri("sip:192.0.2.1;lr;se"), "call-1"))
        self.assertFalse(signer.verify(_uri("sip:192.0.2.1;lr;se=00"), "call-1"))
        mac = signer.mac("call-1")[1:]
        for dated in ("", "+0", "0x0", "%200", "-1", "A", "0" * 13):
            # only lower-case hex digits date a value, twelve at most
            forged = _uri(f"sip:192.0.2.1;lr;se={dated}{mac}")
            self.assertFalse(signer.verify(forged, "call-1"), dated)

    def test_old_format(self) -> None:
        """A value of the old format (the Call-ID's MAC alone, undated) is stale."""
        signer = RecordRouteSigner(SECRET)
        old = hmac.new(SECRET, b"call-1", hashlib.sha256).hexdigest()[:20]
        self.assertFalse(signer.verify(_uri(f"sip:192.0.2.1;lr;se={old}"), "call-1"))

    def test_verify_not_ascii(self) -> None:
        """An C{se} that is not ASCII (escaped in the URI) is not ours, and no error."""
        signer = RecordRouteSigner(SECRET)
        uri = _uri("sip:192.0.2.1;lr;se=%C3%A9")
        self.assertFalse(signer.verify(uri, "call-1"))
