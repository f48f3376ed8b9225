# -*- test-case-name: sipedge.test.test_auth_challenge -*-
"""
Cached challenges: the C{WWW-Authenticate} / C{Proxy-Authenticate} values
of our 401s and 407s, built once per realm, algorithm list, qop and
C{stale} flag, and filled with a fresh nonce for each challenge.

Every REGISTER or INVITE without credentials costs a challenge, so a flood
of them from unknown sources (each within its budget) is mostly challenges.
Formatting one challenge per algorithm (quoting the realm, the nonce and
the qop list, joining the parameters) cost more than making the nonce; the
templates leave one string concatenation per header field. The nonce
itself stays fresh per challenge (its count is tracked per nonce for
replay protection, RFC 7616 3.4, so clients must not share one).
"""

from __future__ import annotations

from collections.abc import Sequence

from sipedge.message import DigestChallenge

__all__ = ["ChallengeCache"]

#: A stand-in nonce with the characters of ours (unpadded URL-safe base64,
#: which quoting leaves alone), unlikely in a realm.
_MARK = "-_" * 26


class ChallengeCache:
    """
    Digest challenge values by template. L{values} returns exactly what
    C{str(DigestChallenge(realm=..., nonce=..., algorithm=..., qop=...,
    stale=...))} would for each algorithm; the templates are built on first
    use and kept (a handful: one per algorithm list a floor gives, times
    C{stale}).
    """

    def __init__(self, qop: Sequence[str] = ("auth", "auth-int"), max_templates: int = 256) -> None:
        self.qop = tuple(qop)
        self.max_templates = max_templates
        self._templates: dict[tuple[str, tuple[str, ...], bool], tuple[tuple[str, str], ...]] = {}

    def _render(self, realm: str, algorithm: str, stale: bool, nonce: str) -> str:
        challenge = DigestChallenge(
            realm=realm, nonce=nonce, algorithm=algorithm, qop=self.qop, stale=stale
        )
        return str(challenge)

    def _template(
        self, realm: str, algorithms: tuple[str, ...], stale: bool
    ) -> tuple[tuple[str, str], ...] | None:
        key = (realm, algorithms, stale)
        template = self._templates.get(key)
        if template is None:
            parts = []
            for algorithm in algorithms:
                text = self._render(realm, algorithm, stale, _MARK)
                if text.count(_MARK) != 1:
                    return None  # a realm holding the mark: format each time
                head, _, tail = text.partition(_MARK)
                parts.append((head, tail))
            if len(self._templates) >= self.max_templates:
                self._templates.clear()
            template = self._templates[key] = tuple(parts)
        return template

    def values(
        self, realm: str, algorithms: tuple[str, ...], nonce: str, *, stale: bool = False
    ) -> tuple[str, ...]:
        """The challenge values for C{algorithms}, in order, with C{nonce}."""
        template = self._template(realm, algorithms, stale)
        if template is None:
            return tuple(self._render(realm, a, stale, nonce) for a in algorithms)
        return tuple(head + nonce + tail for head, tail in template)
