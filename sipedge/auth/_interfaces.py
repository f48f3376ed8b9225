# -*- test-case-name: sipedge.test.test_auth -*-
"""
The interfaces of the authentication package.

They live here until the lead moves them to L{sipedge.interfaces}, where
every sipedge interface belongs; the names will stay the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.cred.credentials import IUsernameDigestHash, IUsernameHashedPassword
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    import builtins

    from twisted.internet.defer import Deferred

    from sipedge.auth._credentials import StoredUser
    from sipedge.auth._nonce import NonceStatus

__all__ = [
    "IAlgorithmMemory",
    "ICredentialStore",
    "INonceSource",
    "ISipDigestCredentials",
    "ISipUser",
]


class INonceSource(Interface):
    """
    Issues and checks the nonces of digest challenges (RFC 7616 3.3,
    RFC 3261 22.4), and refuses replayed responses (RFC 7616 3.4: the
    nonce count).
    """

    lifetime = Attribute("Seconds a nonce stays fresh; after that it is stale.")

    def issue(realm: str) -> str:
        """A new nonce for a challenge in C{realm}."""

    def validate(nonce: str, realm: str) -> NonceStatus:
        """
        Whether C{nonce} is one we issued for C{realm}: C{VALID}, C{STALE}
        (ours, but older than L{lifetime}) or C{INVALID} (not ours, or
        not for C{realm}).
        """

    def record_use(nonce: str, count: int | None) -> bool:
        """
        Record that a response with C{nonce} and nonce count C{count}
        (C{None} for a response without qop, RFC 2069) was accepted.
        Call it only once the response is known to be right.

        @return: C{False} if this is a replay: C{count} is not higher than
            the highest count already seen with C{nonce}; a nonce used
            without a count may be used only once.
        """


class ISipDigestCredentials(IUsernameHashedPassword, IUsernameDigestHash):
    """
    The digest response of one SIP request (RFC 3261 22.4, RFC 7616 3.4),
    ready for a C{twisted.cred} checker: C{checkPassword(password)} with
    the plain password, or C{checkHash(ha1)} with the stored H(A1) of the
    response's hash algorithm.
    """

    username = Attribute("The user name of the response (text).")
    realm = Attribute("The realm of the response.")
    algorithm = Attribute("The algorithm, canonical: 'MD5', 'SHA-256-sess', ...")
    hash_algorithm = Attribute(
        "The algorithm without '-sess': the key of the stored H(A1) to check with."
    )


class ISipUser(Interface):
    """The avatar of an authenticated SIP user (what C{Portal.login} gives)."""

    username = Attribute("The user name that authenticated.")


class ICredentialStore(Interface):
    """
    Where the H(A1) hashes of digest users live (never plain passwords).
    Only C{lookup} is needed to check credentials; the others are for
    C{sipedge user}. The built-in stores are synchronous.
    """

    def lookup(username: str, realm: str) -> dict[str, str] | Deferred[dict[str, str]]:
        """
        The stored H(A1) of C{username} in C{realm}, as lower-case hex by
        hash algorithm (C{'MD5'}, C{'SHA-256'}, C{'SHA-512-256'}); an empty
        dict for an unknown user. A remote store may return a Deferred.
        """

    def add(username: str, realm: str, password: str) -> bool | Deferred[bool]:
        """
        Store (or replace) the H(A1) hashes of C{username} in C{realm};
        true if the user is new.
        """

    def remove(username: str, realm: str) -> bool | Deferred[bool]:
        """Forget C{username} in C{realm}; true if it was there."""

    def list(
        realm: str | None = None,
    ) -> builtins.list[StoredUser] | Deferred[builtins.list[StoredUser]]:
        """
        The users (of C{realm}, or all), as L{sipedge.auth.StoredUser}
        values by realm then name: never their hashes.
        """


class IAlgorithmMemory(Interface):
    """
    The strongest digest hash algorithm each user has authenticated with:
    from then on that user is offered nothing weaker (downgrade
    protection, see C{sipedge.auth._offer}). The built-in credential
    stores keep it beside the users' hashes; forgetting a user forgets it.
    """

    def strongest(username: str, realm: str) -> str | None:
        """The strongest hash algorithm C{username} has proven, or C{None}."""

    def record(username: str, realm: str, algorithm: str) -> None:
        """
        Note that C{username} authenticated with C{algorithm} (a hash
        algorithm: C{'MD5'}, C{'SHA-256'}, C{'SHA-512-256'}); a weaker
        one than the strongest already noted changes nothing.
        """
