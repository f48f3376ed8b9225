# -*- test-case-name: sipedge.test.test_proxy_rr -*-
"""
The signed Record-Route values: the remembered MACs are the MACs, the
table stays bounded, and only the MAC of the request's own Call-ID counts.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import SipURI, parse_uri
from sipedge.proxy import RecordRouteSigner

SECRET = b"s" * 32

call_ids = st.text(min_size=1, max_size=40)


def _uri(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def _fresh(call_id: str) -> str:
    mac = hmac.new(SECRET, call_id.encode("utf-8", "surrogateescape"), hashlib.sha256)
    return mac.hexdigest()[:20]


class SignerTests(SynchronousTestCase):
    """L{RecordRouteSigner}."""

    @given(st.lists(call_ids, min_size=1, max_size=30), st.integers(1, 8))
    def test_memo_is_the_mac(self, ids: list[str], size: int) -> None:
        """
        However the Call-IDs come and repeat, each MAC is the HMAC of its
        Call-ID, and the table never holds more than its size.
        """
        signer = RecordRouteSigner(SECRET, memo_size=size)
        for call_id in ids + ids[::-1]:
            self.assertEqual(signer.mac(call_id), _fresh(call_id))
            self.assertLessEqual(len(signer._memo), size)

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

    def test_verify_not_ascii(self) -> None:
        """An C{se} that is not ASCII (escaped in the URI) is not ours, and no error."""
        signer = RecordRouteSigner(SECRET)
        uri = _uri("sip:192.0.2.1;lr;se=%C3%A9")
        self.assertFalse(signer.verify(uri, "call-1"))
