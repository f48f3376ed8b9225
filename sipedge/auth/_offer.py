# -*- test-case-name: sipedge.test.test_auth_offer -*-
"""
Which digest algorithms a challenge offers to a user, and in what order:
the rules that let the clients people use register on the defaults while
a user who has proven a strong algorithm is never offered a weaker one
again (downgrade protection).

What the clients measured on loopback do with several challenges
(C{doc/interop.md} has the whole matrix):
 - baresip 1.0 (libre) refuses the whole response ("Function not
   implemented") if any challenge in it names an algorithm other than
   MD5, wherever it stands;
 - SIPp 3.6, sipsak 0.9.8 and SIPVicious 0.3.3 read only the first
   challenge, and know only MD5;
 - linphone 5.1 (belle-sip) takes the topmost challenge, as RFC 8760 2.4
   says, and knows MD5 and SHA-256: a topmost SHA-512-256 makes it fail.

So:
 - a user's I{floor} is the strongest of the configured minimum
   (C{[auth] minimum_algorithm}, MD5 by default) and the strongest
   algorithm that user has authenticated with (L{IAlgorithmMemory});
 - at floor MD5 the challenge offers MD5 alone (and MD5-sess if it is
   configured): the one offer every measured client answers;
 - above MD5 it offers every configured algorithm at least as strong as
   the floor, SHA-256 before SHA-512-256 (both are strong; the other order
   locks linphone out), and never MD5;
 - a response with an algorithm weaker than its user's floor is refused,
   whatever the challenge said (a man in the middle may have rewritten it).
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from sipedge.auth._digest import hash_algorithm
from sipedge.auth._interfaces import IAlgorithmMemory

__all__ = ["MD5", "RememberedAlgorithms", "challenge_algorithms", "floor_of", "strength"]

MD5 = "MD5"

#: Hash algorithms from weakest to strongest.
_STRENGTH = ("MD5", "SHA-256", "SHA-512-256")

#: The order of preference among the strong hash algorithms.
_PREFERENCE = ("SHA-256", "SHA-512-256")


def strength(algorithm: str | None) -> int:
    """
    The rank of C{algorithm}'s hash (MD5 0, SHA-256 1, SHA-512-256 2); a
    C{-sess} variant ranks with its hash.

    @raise sipedge.auth.UnsupportedAlgorithm: for an unknown algorithm.
    """
    return _STRENGTH.index(hash_algorithm(algorithm))


def floor_of(*algorithms: str | None) -> str:
    """The strongest hash algorithm among C{algorithms} (C{None}s ignored); MD5 if none."""
    known = [hash_algorithm(a) for a in algorithms if a is not None]
    return max(known, key=strength, default=MD5)


def challenge_algorithms(configured: Sequence[str], floor: str) -> tuple[str, ...]:
    """
    The algorithms to challenge a user with, in order (one header field
    each): see the module docstring.

    @param configured: the algorithms sipedge accepts (C{[auth] algorithms}).
    @param floor: the user's floor (L{floor_of}). A floor stronger than
        everything configured offers the strongest configured algorithms
        (the user cannot authenticate with a weaker one anyway).
    """
    if not configured:
        raise ValueError("no algorithm configured")
    ranks = [strength(a) for a in configured]
    level = min(max(strength(floor), min(ranks)), max(ranks))
    usable = [a for a in configured if strength(a) >= level]
    if level == 0:
        return tuple(a for a in usable if strength(a) == 0)

    def preference(algorithm: str) -> tuple[int, bool]:
        return _PREFERENCE.index(hash_algorithm(algorithm)), algorithm.endswith("-sess")

    return tuple(sorted(usable, key=preference))


@implementer(IAlgorithmMemory)
class RememberedAlgorithms:
    """
    An L{IAlgorithmMemory} in a dict: for stages whose credential store
    keeps none, and for tests. It forgets everything on restart.
    """

    def __init__(self) -> None:
        self._proven: dict[tuple[str, str], str] = {}

    def strongest(self, username: str, realm: str) -> str | None:
        """The strongest hash algorithm C{username} has proven, or C{None}."""
        return self._proven.get((username, realm))

    def record(self, username: str, realm: str, algorithm: str) -> None:
        """Note that C{username} authenticated with C{algorithm}."""
        key = (username, realm)
        self._proven[key] = floor_of(self._proven.get(key), algorithm)

    def forget(self, username: str, realm: str) -> None:
        """Forget what C{username} proved (the user was removed)."""
        self._proven.pop((username, realm), None)
