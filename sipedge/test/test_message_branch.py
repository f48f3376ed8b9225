# -*- test-case-name: sipedge.test.test_message_branch -*-
"""
Tests for L{sipedge.message}'s branch hashing (RFC 3261 16.6 item 8 and
16.3 item 4): L{branch_digest}, L{make_branch}, L{digest_of_branch}.
"""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import (
    BRANCH_MAGIC_COOKIE,
    BRANCH_PREFIX,
    Headers,
    Request,
    branch_digest,
    digest_of_branch,
    make_branch,
)
from sipedge.message._branch import _tag


def invite(
    uri: str = "sip:bob@example.test",
    via: str = "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
    **extra: str,
) -> Request:
    fields = [
        ("Via", via),
        ("From", "<sip:alice@example.test>;tag=a1"),
        ("To", "<sip:bob@example.test>"),
        ("Call-ID", "c1@192.0.2.1"),
        ("CSeq", "1 INVITE"),
        ("Max-Forwards", "70"),
    ]
    fields += [(name.replace("_", "-"), value) for name, value in extra.items()]
    return Request("INVITE", uri, Headers.of(*fields))


class BranchDigestTests(SynchronousTestCase):
    """L{branch_digest} identifies a request as received, ignoring its top Via."""

    def test_stable(self) -> None:
        """The same request gives the same digest."""
        self.assertEqual(branch_digest(invite()), branch_digest(invite()))

    def test_top_via_ignored(self) -> None:
        """A request coming back through another proxy (other top Via) has the same digest."""
        other = invite(via="SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKother")
        self.assertEqual(branch_digest(invite()), branch_digest(other))

    def test_spiral_differs(self) -> None:
        """A changed Request-URI, Route or Proxy-Authorization gives another digest."""
        base = branch_digest(invite())
        self.assertNotEqual(base, branch_digest(invite(uri="sip:bob@192.0.2.9")))
        self.assertNotEqual(base, branch_digest(invite(Route="<sip:as.example.test;lr>")))
        self.assertNotEqual(
            base, branch_digest(invite(Proxy_Authorization='Digest username="alice"'))
        )


class MakeBranchTests(SynchronousTestCase):
    """L{make_branch} and L{digest_of_branch} are inverse."""

    def test_round_trip(self) -> None:
        """The digest is found again in the branch we made, for any index."""
        digest = branch_digest(invite())
        for index in (0, 1, 17):
            branch = make_branch(digest, index)
            self.assertTrue(branch.startswith(BRANCH_PREFIX))
            self.assertTrue(branch.startswith(BRANCH_MAGIC_COOKIE))
            self.assertEqual(digest_of_branch(branch), digest)
        self.assertNotEqual(make_branch(digest, 0), make_branch(digest, 1))

    def test_not_ours(self) -> None:
        """Another element's branch, or none, has no digest of ours."""
        self.assertIsNone(digest_of_branch("z9hG4bK776asdhds"))
        self.assertIsNone(digest_of_branch(None))
        self.assertIsNone(digest_of_branch(""))


def _digest_by_look_ups(request: Request) -> str:
    """The digest as first written, a look-up per field name: the reference."""
    h = request.headers
    parts = [
        request.uri,
        h.get("Call-ID") or "",
        h.get("CSeq", "").split(" ", 1)[0] if h.get("CSeq") else "",
        _tag(h.get("From")),
        _tag(h.get("To")),
        "\x00".join(h.get_all("Route")),
        "\x00".join(h.get_all("Proxy-Require")),
        "\x00".join(h.get_all("Proxy-Authorization")),
    ]
    data = "\x01".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.blake2s(data, digest_size=10).hexdigest()


_NAMES = st.sampled_from(
    ["Call-ID", "i", "CSeq", "From", "f", "To", "t", "Route", "ROUTE", "Proxy-Require",
     "Proxy-Authorization", "Via", "Max-Forwards", "X-Other"]
)
_VALUES = st.sampled_from(
    ["", "1 INVITE", " 2  BYE", "<sip:a@b>;tag=x", "<sip:a@b>;TAG=y;z", "c@h", "<sip:r;lr>",
     "a, b", "é\udcff"]
)


class DigestPropertyTests(SynchronousTestCase):
    """L{branch_digest} against the reference."""

    @given(st.lists(st.tuples(_NAMES, _VALUES), max_size=10), st.sampled_from(["sip:a", ""]))
    def test_same_as_look_ups(self, fields: list[tuple[str, str]], uri: str) -> None:
        """
        For any fields, in any order and number (repeated, missing, empty),
        the one-pass digest is the digest of a look-up per name.
        """
        request = Request("INVITE", uri, Headers.of(*fields))
        self.assertEqual(branch_digest(request), _digest_by_look_ups(request))
