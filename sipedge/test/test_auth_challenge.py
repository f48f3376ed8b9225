# -*- test-case-name: sipedge.test.test_auth_challenge -*-
"""Tests for L{sipedge.auth.ChallengeCache}: challenge values by template."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.auth import ALGORITHMS, ChallengeCache
from sipedge.message import DigestChallenge

QOP = ("auth", "auth-int")
NONCES = st.from_regex(r"[A-Za-z0-9_-]{52}", fullmatch=True)


def formatted(realm: str, algorithms: tuple[str, ...], nonce: str, stale: bool) -> tuple[str, ...]:
    """What formatting each challenge in full gives."""
    return tuple(
        str(DigestChallenge(realm=realm, nonce=nonce, algorithm=a, qop=QOP, stale=stale))
        for a in algorithms
    )


class ChallengeCacheTests(SynchronousTestCase):
    """The templates give exactly what formatting each challenge would."""

    @given(
        realm=st.text(max_size=30).filter(lambda r: "\r" not in r and "\n" not in r),
        algorithms=st.lists(st.sampled_from(ALGORITHMS), min_size=1, max_size=4, unique=True),
        nonces=st.lists(NONCES, min_size=1, max_size=3),
        stale=st.booleans(),
    )
    def test_same_as_formatted(
        self, realm: str, algorithms: list[str], nonces: list[str], stale: bool
    ) -> None:
        """
        For any realm a configuration can give (quotes and backslashes too),
        algorithms, nonce and stale flag.
        """
        cache = ChallengeCache(QOP)
        for nonce in nonces:
            self.assertEqual(
                cache.values(realm, tuple(algorithms), nonce, stale=stale),
                formatted(realm, tuple(algorithms), nonce, stale),
            )

    def test_templates_kept(self) -> None:
        """One template per realm, algorithm list and stale flag, reused."""
        cache = ChallengeCache(QOP)
        for nonce in ("a" * 52, "b" * 52):
            cache.values("example.com", ("MD5",), nonce)
            cache.values("example.com", ("MD5",), nonce, stale=True)
            cache.values("example.com", ("SHA-256", "SHA-512-256"), nonce)
        self.assertEqual(len(cache._templates), 3)

    def test_bounded(self) -> None:
        """At most C{max_templates} are kept (all dropped when full: they are few)."""
        cache = ChallengeCache(QOP, max_templates=2)
        for realm in ("a", "b", "c"):
            cache.values(realm, ("MD5",), "n" * 52)
        self.assertEqual(len(cache._templates), 1)

    def test_realm_with_mark(self) -> None:
        """A realm holding the template's stand-in nonce is formatted in full each time."""
        realm = "x" + "-_" * 26
        cache = ChallengeCache(QOP)
        nonce = "N" * 52
        self.assertEqual(
            cache.values(realm, ("MD5",), nonce), formatted(realm, ("MD5",), nonce, False)
        )
        self.assertEqual(cache._templates, {})
