# -*- test-case-name: sipedge.test.test_message_branch -*-
"""
Tests for L{sipedge.message}'s branch hashing (RFC 3261 16.6 item 8 and
16.3 item 4): L{branch_digest}, L{make_branch}, L{digest_of_branch}.
"""

from __future__ import annotations

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
