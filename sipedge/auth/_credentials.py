# -*- test-case-name: sipedge.test.test_auth -*-
"""
Digest users through C{twisted.cred}: the credentials of one request
(L{SipDigestCredentials}), a checker over a credential store, the realm
that gives the avatar, and the stores themselves.

Stores keep H(username:realm:password) for each hash algorithm, never the
password (RFC 7616 5.2 says why that still deserves care: an H(A1) lets
anyone answer challenges of its realm, so the SQLite file is made mode
0600). One H(A1) per algorithm also serves its C{-sess} variant.

The SQLite store is synchronous like the location store (a local file,
short statements: see C{sipedge.store._sqlite}); the checker calls
C{lookup} through C{maybeDeferred}, so a remote store may return a
Deferred instead.

   portal = Portal(SipRealm(), [DigestCredentialsChecker(store)])
   portal.login(SipDigestCredentials(response, "INVITE"), None, ISipUser)
"""

from __future__ import annotations

import builtins
import os
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import attrs
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.auth import _digest
from sipedge.auth._interfaces import (
    IAlgorithmMemory,
    ICredentialStore,
    ISipDigestCredentials,
    ISipUser,
)
from sipedge.auth._offer import RememberedAlgorithms, floor_of
from sipedge.error import ConfigError
from sipedge.message import DigestCredentials
from sipedge.store import WalChanges, open_database, read_schema_version, transaction

__all__ = [
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "DigestCredentialsChecker",
    "MemoryCredentialStore",
    "SQLiteCredentialStore",
    "SipDigestCredentials",
    "SipRealm",
    "SipUser",
    "StoredUser",
    "make_portal",
]

_log = Logger()

#: The file name of the credentials database in the state directory.
DATABASE_NAME = "credentials.sqlite3"

#: The most users whose proven algorithm a store remembers at once.
PROVEN_CACHE_SIZE = 4096

#: The schema version this code writes (2: the algorithms users proved).
SCHEMA_VERSION = 2


# --------------------------------------------------------------------------
# twisted.cred
# --------------------------------------------------------------------------


@implementer(ISipDigestCredentials)
class SipDigestCredentials:
    """
    The digest response of one request, checked against a password or a
    stored H(A1) (cf. C{twisted.cred.credentials.DigestedCredentials}).

    @param response: the parsed Authorization or Proxy-Authorization value.
    @param method: the request's method (A2, RFC 3261 22.4).
    @param body: the request's body, hashed into A2 for qop C{auth-int}.
    @raise sipedge.auth.UnsupportedAlgorithm: for an unknown algorithm.
    """

    def __init__(self, response: DigestCredentials, method: str, body: bytes = b"") -> None:
        self.response = response
        self.method = method
        self.body = body
        self.username = response.username
        self.realm = response.realm
        self.algorithm = _digest.canonical_algorithm(response.algorithm)
        self.hash_algorithm = _digest.hash_algorithm(self.algorithm)

    def __repr__(self) -> str:
        return f"<SipDigestCredentials {self.username!r} {self.realm!r} {self.algorithm}>"

    def checkHash(self, digestHash: str | bytes) -> bool:
        """True if the response was made with the H(A1) C{digestHash}."""
        if isinstance(digestHash, bytes):
            try:
                digestHash = digestHash.decode("ascii")
            except UnicodeDecodeError:
                return False
        r = self.response
        try:
            expected = _digest.response(
                self.algorithm,
                digestHash.lower(),
                self.method,
                r.uri,
                r.nonce,
                qop=r.qop,
                nc=r.nc,
                cnonce=r.cnonce,
                body=self.body,
            )
        except ValueError:
            return False
        return _digest.responses_equal(expected, r.response)

    def checkPassword(self, password: str) -> bool:
        """True if the response was made with the plain C{password}."""
        return self.checkHash(_digest.ha1(self.hash_algorithm, self.username, self.realm, password))


@implementer(ICredentialsChecker)
class DigestCredentialsChecker:
    """
    Checks L{ISipDigestCredentials} against an L{ICredentialStore}; the
    avatar id is the user name, UTF-8 encoded (avatar ids are bytes).
    """

    credentialInterfaces = (ISipDigestCredentials,)

    def __init__(self, store: Any) -> None:
        self.store = store

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes | tuple[()]]:
        d = maybeDeferred(self.store.lookup, credentials.username, credentials.realm)
        d.addCallback(self._check, credentials)
        return d

    @staticmethod
    def _check(hashes: dict[str, str], credentials: Any) -> bytes | tuple[()]:
        stored = hashes.get(credentials.hash_algorithm)
        if stored is None:
            raise UnauthorizedLogin(f"no {credentials.hash_algorithm} credentials for this user")
        if not credentials.checkHash(stored):
            raise UnauthorizedLogin("wrong digest response")
        return str(credentials.username).encode("utf-8")


@implementer(ISipUser)
@attrs.frozen
class SipUser:
    """The avatar: a user who proved their identity."""

    username: str


@implementer(IRealm)
class SipRealm:
    """The trivial realm: the avatar of an avatar id is the L{SipUser} of that name."""

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> tuple[Any, SipUser, Any]:
        if ISipUser in interfaces:
            name = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else str(avatarId)
            return ISipUser, SipUser(name), _no_logout
        raise NotImplementedError("SipRealm only gives ISipUser avatars")


def _no_logout() -> None:
    pass


def make_portal(store: Any) -> Portal:
    """A portal that checks digest credentials against C{store}."""
    return Portal(SipRealm(), [DigestCredentialsChecker(store)])


# --------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------


@attrs.frozen
class StoredUser:
    """
    A user as a store lists it: no hashes.

    @ivar algorithms: the hash algorithms stored, strongest first.
    """

    username: str
    realm: str
    algorithms: tuple[str, ...]


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be text, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{what} must not contain control characters: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text: {value!r}") from None
    return value


def _hashes(username: str, realm: str, password: str) -> dict[str, str]:
    """H(A1) for each hash algorithm that works here."""
    _check_text("user name", username)
    _check_text("realm", realm)
    if not isinstance(password, str) or not password:
        raise ValueError("the password must not be empty")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the password is not valid Unicode text") from None
    return {
        algorithm: _digest.ha1(algorithm, username, realm, password)
        for algorithm in _digest.HASH_ALGORITHMS
    }


def _order(algorithms: Sequence[str]) -> tuple[str, ...]:
    rank = {name: i for i, name in enumerate(("SHA-512-256", "SHA-256", "MD5"))}
    return tuple(sorted(algorithms, key=lambda a: rank.get(a, len(rank))))


@implementer(ICredentialStore, IAlgorithmMemory)
class MemoryCredentialStore:
    """
    A credential store in a dict: for tests and short-lived labs. It is
    also the memory of the algorithms its users proved.
    """

    def __init__(self) -> None:
        self._users: dict[tuple[str, str], dict[str, str]] = {}
        self._proven = RememberedAlgorithms()

    def add(self, username: str, realm: str, password: str) -> bool:
        """Store the H(A1) of C{username}; true if the user is new."""
        hashes = _hashes(username, realm, password)
        new = (username, realm) not in self._users
        self._users[username, realm] = hashes
        return new

    def remove(self, username: str, realm: str) -> bool:
        """Forget C{username} in C{realm} (and the algorithm proved); true if it was there."""
        self._proven.forget(username, realm)
        return self._users.pop((username, realm), None) is not None

    def strongest(self, username: str, realm: str) -> str | None:
        """The strongest hash algorithm C{username} has proven, or C{None}."""
        return self._proven.strongest(username, realm)

    def record(self, username: str, realm: str, algorithm: str) -> None:
        """Note that C{username} authenticated with C{algorithm}."""
        self._proven.record(username, realm, algorithm)

    def list(self, realm: str | None = None) -> builtins.list[StoredUser]:
        """Every user (of C{realm}, if given), by realm then name."""
        return [
            StoredUser(user, user_realm, _order(list(hashes)))
            for (user, user_realm), hashes in sorted(self._users.items(), key=_by_realm)
            if realm is None or user_realm == realm
        ]

    def lookup(self, username: str, realm: str) -> dict[str, str]:
        """The H(A1) by hash algorithm; C{{}} for an unknown user."""
        return dict(self._users.get((username, realm), {}))


def _by_realm(item: tuple[tuple[str, str], Any]) -> tuple[str, str]:
    (user, realm), _ = item
    return (realm, user)


_SCHEMA_V1 = (
    """
    CREATE TABLE credentials (
        username  TEXT NOT NULL,
        realm     TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        ha1       TEXT NOT NULL,
        PRIMARY KEY (username, realm, algorithm)
    ) WITHOUT ROWID
    """,
)

_PROVEN_V2 = """
    CREATE TABLE proven_algorithms (
        username  TEXT NOT NULL,
        realm     TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        PRIMARY KEY (username, realm)
    ) WITHOUT ROWID
    """

#: Statements that take the schema from version N (the key) to N + 1.
_MIGRATIONS: dict[int, tuple[str, ...]] = {1: (_PROVEN_V2,)}


@implementer(ICredentialStore, IAlgorithmMemory)
class SQLiteCredentialStore:
    """
    A credential store in an SQLite file, created (mode 0600, with its
    schema) on open; it also remembers the strongest algorithm each user
    proved (L{IAlgorithmMemory}), so a restart does not reopen a
    downgrade. The running proxy and C{sipedge user} share the file:
    WAL mode and a busy timeout let them, and a change is seen by the next
    look-up.

    What each user proved is asked on every challenge (to offer nothing
    weaker) and on every check: the answers are remembered while nothing
    commits to the file, from this process or any other (the wal-index
    header every commit rewrites tells, see L{sipedge.store.WalChanges}),
    so a flood of challenges for a few names does not read SQLite each
    time, and a stronger algorithm recorded by another worker is seen at
    once.

    @param path: the database file, or C{":memory:"}.
    @raise ConfigError: if the file cannot be opened, is not an SQLite
        database, or holds a schema newer than this code.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db = open_database(
            self.path,
            "credentials",
            schema=_SCHEMA_V1,
            version=SCHEMA_VERSION,
            migrations=_MIGRATIONS,
            mode=0o600,  # H(A1) values are password equivalents: keep them private.
            log=_log,
        )
        self._changes = WalChanges(self.path)
        #: (username, realm) -> the strongest algorithm proved, while the
        #: file's change stamp is C{_proven_stamp}.
        self._proven: dict[tuple[str, str], str | None] = {}
        self._proven_stamp: bytes | None = None

    @classmethod
    def in_state_directory(cls, directory: str | os.PathLike[str]) -> SQLiteCredentialStore:
        """The store in C{directory}/L{DATABASE_NAME}; the directory is created if needed."""
        directory = os.fspath(directory)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create state directory {directory!r}: {e.strerror}") from e
        return cls(os.path.join(directory, DATABASE_NAME))

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction: committed if the block ends, else rolled back."""
        return transaction(self._db)

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return read_schema_version(self._db)

    def add(self, username: str, realm: str, password: str) -> bool:
        """
        Store the H(A1) of C{username} in C{realm} for every hash
        algorithm, replacing what was there; true if the user is new.

        @raise ValueError: for an empty or malformed name, realm or password.
        """
        hashes = _hashes(username, realm, password)
        with self._transaction() as db:
            removed = db.execute(
                "DELETE FROM credentials WHERE username = ? AND realm = ?", (username, realm)
            ).rowcount
            db.executemany(
                "INSERT INTO credentials (username, realm, algorithm, ha1) VALUES (?, ?, ?, ?)",
                [(username, realm, algorithm, ha1) for algorithm, ha1 in hashes.items()],
            )
        return removed == 0

    def remove(self, username: str, realm: str) -> bool:
        """Forget C{username} in C{realm} (and the algorithm proved); true if it was there."""
        with self._transaction() as db:
            removed = db.execute(
                "DELETE FROM credentials WHERE username = ? AND realm = ?", (username, realm)
            ).rowcount
            db.execute(
                "DELETE FROM proven_algorithms WHERE username = ? AND realm = ?",
                (username, realm),
            )
        return removed > 0

    def strongest(self, username: str, realm: str) -> str | None:
        """The strongest hash algorithm C{username} has proven, or C{None}."""
        # The stamp is taken before the query: it can only be older than
        # what the query reads, so a remembered answer is never stale.
        stamp = self._changes.stamp()
        key = (username, realm)
        proven = self._proven
        if stamp is not None and stamp == self._proven_stamp and key in proven:
            return proven[key]
        try:
            username.encode("utf-8")
            realm.encode("utf-8")
        except UnicodeEncodeError:
            return None
        row = self._db.execute(
            "SELECT algorithm FROM proven_algorithms WHERE username = ? AND realm = ?",
            (username, realm),
        ).fetchone()
        found = None if row is None else str(row[0])
        if stamp is not None:
            if stamp != self._proven_stamp or len(proven) >= PROVEN_CACHE_SIZE:
                proven.clear()
                self._proven_stamp = stamp
            proven[key] = found
        return found

    def record(self, username: str, realm: str, algorithm: str) -> None:
        """
        Note that C{username} authenticated with C{algorithm}. A success
        that proves nothing new (every call of a user who proved this
        algorithm before) is one read, not a write: it takes no write lock
        that the other workers' registrations would wait for.
        """
        known = self.strongest(username, realm)
        if known is not None and floor_of(known, algorithm) == known:
            return
        with self._transaction() as db:
            row = db.execute(
                "SELECT algorithm FROM proven_algorithms WHERE username = ? AND realm = ?",
                (username, realm),
            ).fetchone()
            best = floor_of(None if row is None else row[0], algorithm)
            if row is None or best != row[0]:
                db.execute(
                    "INSERT OR REPLACE INTO proven_algorithms (username, realm, algorithm)"
                    " VALUES (?, ?, ?)",
                    (username, realm, best),
                )

    def list(self, realm: str | None = None) -> builtins.list[StoredUser]:
        """Every user (of C{realm}, if given), by realm then name; no hashes."""
        query = "SELECT username, realm, algorithm FROM credentials"
        args: tuple[str, ...] = ()
        if realm is not None:
            query += " WHERE realm = ?"
            args = (realm,)
        found: dict[tuple[str, str], list[str]] = {}
        for username, user_realm, algorithm in self._db.execute(query, args):
            found.setdefault((user_realm, username), []).append(algorithm)
        return [
            StoredUser(username, user_realm, _order(algorithms))
            for (user_realm, username), algorithms in sorted(found.items())
        ]

    def lookup(self, username: str, realm: str) -> dict[str, str]:
        """The H(A1) by hash algorithm; C{{}} for an unknown user."""
        try:
            username.encode("utf-8")
            realm.encode("utf-8")
        except UnicodeEncodeError:
            return {}  # never stored (see add): a name a peer made up
        rows = self._db.execute(
            "SELECT algorithm, ha1 FROM credentials WHERE username = ? AND realm = ?",
            (username, realm),
        )
        return dict(rows.fetchall())

    def close(self) -> None:
        """Close the database; later calls fail."""
        self._changes.close()
        self._proven.clear()
        self._db.close()
