# -*- test-case-name: sipedge.test.test_security_accounts -*-
"""
The password-guessing guard of each account: distributed guessing is
stopped per account, not only per source.

Per-source limits (the C{auth-failure} offence threshold, the monitor's
failure ratio) ban one address after a few wrong passwords, but a botnet
of 10,000 addresses still gets a few guesses each. So each account also
has a budget of authentication failures across all sources: at most
C{failures} in any C{window} seconds (a sliding window). Past it, the
account's credentials are checked only from sources it has authenticated
from before (within C{memory} seconds) and from trusted networks; other
sources get 403, unchecked, until the window has passed over enough of
the failures. The real user, at an address it used before, is not locked
out by the attack.

Refusals are not failures: they check nothing, so they do not extend the
window; a botnet that keeps guessing gets at most C{failures} checked
guesses per C{window}.

The check and the count are one step: before credentials from a source
that is neither trusted nor known are checked, L{AccountGuard.begin_check}
counts a failure for them in advance, in one write transaction that
first makes sure the budget has room (so two guesses checked at the same
instant, in one process or in two workers, cannot both take the last
place). A right password takes that failure back
(L{AccountGuard.end_check}); a wrong one confirms it
(L{AccountGuard.note_failure}). A check that never ends (its process died
while checking) stays counted as a failure until it leaves the window.

The failures and the known sources live in an SQLite file in the state
directory (C{accounts.sqlite3}, WAL mode), so every worker process of one
proxy counts against one budget per account (a botnet spread over the
workers gets no more guesses than one process would let through), and a
restart forgets neither the failures nor where each user authenticated
from. A check from a known source is one indexed read; a check from
another source is one short write transaction to count it in advance,
and one more to confirm it or take it back; a success is written when its
source is new to the account, or at most every C{_REFRESH} seconds for
one source, so the calls of registered users do not each cost a write.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import attrs

from sipedge._log import NamedLogger
from sipedge.security._address import canonical_ip
from sipedge.store import closing_on_failure, open_database, transaction

__all__ = [
    "ACCOUNT_STAT_KEYS",
    "DATABASE_NAME",
    "AccountCheck",
    "AccountGuard",
    "AccountState",
]

#: The file name of the guard's database in the state directory.
DATABASE_NAME = "accounts.sqlite3"

#: The schema version this code writes.
SCHEMA_VERSION = 2

_SCHEMA_V1 = (
    "CREATE TABLE accounts (user TEXT PRIMARY KEY, used REAL NOT NULL)",
    "CREATE INDEX accounts_by_use ON accounts (used)",
    "CREATE TABLE failures (user TEXT NOT NULL, at REAL NOT NULL, source TEXT NOT NULL)",
    "CREATE INDEX failures_by_user ON failures (user, at)",
    """
    CREATE TABLE known (
        user   TEXT NOT NULL,
        source TEXT NOT NULL,
        seen   REAL NOT NULL,
        PRIMARY KEY (user, source)
    )
    """,
)

#: Statements that take the schema from version N (the key) to N + 1:
#: version 2 marks the failures counted in advance for a check under way
#: (C{pending}: the check's token; C{NULL} once it is a confirmed failure).
_MIGRATIONS: dict[int, tuple[str, ...]] = {1: ("ALTER TABLE failures ADD COLUMN pending TEXT",)}

#: Seconds between two writes of one known source's time (at most).
_REFRESH = 300.0

#: The counters of L{AccountGuard.stats}, each from 0.
ACCOUNT_STAT_KEYS = (
    "account_failures",
    "account_locks",
    "account_refused",
    "account_evicted",
    "account_store_errors",
)

_T = TypeVar("_T")


@attrs.frozen
class AccountCheck:
    """
    A password check the guard let happen (L{AccountGuard.begin_check}):
    hand it back with the outcome, to L{AccountGuard.note_failure} (wrong)
    or L{AccountGuard.end_check} (right).

    @ivar user: the user name the credentials gave.
    @ivar source: the address they came from.
    @ivar pending: the token of the failure counted in advance for this
        check, or C{None} if it took no place in the budget (a trusted or
        known source, or the store failed).
    """

    user: str
    source: str
    pending: str | None = None


@attrs.frozen
class AccountState:
    """
    What the guard knows of one account, for the monitor and the logs.

    @ivar user: the user name the credentials gave.
    @ivar failures: failures in the window now.
    @ivar locked: C{True} if past the budget: only known sources and
        trusted networks are checked.
    @ivar until: when the oldest counted failure leaves the window (the
        lock lifts then, unless more failures came), or C{None}.
    @ivar known_sources: the addresses it authenticated from, most recent
        last.
    """

    user: str
    failures: int
    locked: bool
    until: float | None
    known_sources: tuple[str, ...]


class AccountGuard:
    """
    Failures per account in a sliding window, and the sources each account
    authenticated from, in an SQLite file shared by every process that
    opens it. The caller passes the time (C{now}, the wall clock: the
    processes compare their times) and whether the source is trusted; the
    guard holds no timer.

    Storage is bounded: at most about C{max_accounts} accounts (the least
    recently used forgotten first; each process counts the accounts it
    added, and recounts the file when its count reaches the bound),
    C{failures} failures and C{known_sources} sources each.

    If the file cannot be read or written (a full disk, a lock held past
    the busy timeout), the error is logged (C{rule="account-guard"}) and
    counted (C{account_store_errors}), and the guard lets the check happen:
    the per-source defences still apply.
    """

    _log = NamedLogger(namespace="sipedge.security.accounts")

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        failures: int = 10,
        window: float = 600.0,
        memory: float = 30 * 86400.0,
        known_sources: int = 16,
        max_accounts: int = 100_000,
        stats: MutableMapping[str, int] | None = None,
    ) -> None:
        """
        @param path: the database file (shared by the processes that open
            it), or C{":memory:"} for this process alone.
        @raise ConfigError: if the file cannot be opened or holds a newer
            schema.
        """
        if failures < 1 or known_sources < 1 or max_accounts < 1:
            raise ValueError("failures, known_sources and max_accounts must be at least 1")
        if window <= 0 or memory <= 0:
            raise ValueError("window and memory must be positive")
        self.path = os.fspath(path)
        self.budget = failures
        self.window = window
        self.memory = memory
        self.known_sources = known_sources
        self.max_accounts = max_accounts
        self.stats = stats if stats is not None else {}
        for key in ACCOUNT_STAT_KEYS:
            self.stats.setdefault(key, 0)
        # (user, source) -> when this process last wrote it as known.
        self._written: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._db = open_database(
            self.path,
            "account",
            schema=_SCHEMA_V1,
            version=SCHEMA_VERSION,
            migrations=_MIGRATIONS,
        )
        # Tokens of the checks under way: unique across the processes of a file.
        self._tokens = (f"{os.getpid()}.{secrets.token_hex(4)}.{n}" for n in itertools.count())
        with closing_on_failure(self._db, "account", self.path):
            self._count = self._db.execute("SELECT count(*) FROM accounts").fetchone()[0]

    @classmethod
    def in_state_directory(cls, directory: str | os.PathLike[str], **kwargs: Any) -> AccountGuard:
        """The guard of C{directory}/L{DATABASE_NAME}."""
        return cls(os.path.join(os.fspath(directory), DATABASE_NAME), **kwargs)

    def close(self) -> None:
        """Close the database; later calls fail."""
        self._db.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM accounts").fetchone()[0])

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    def _safely(self, what: str, action: Callable[[], _T], fallback: _T) -> _T:
        """C{action()}, or C{fallback} if the database failed (logged and counted)."""
        try:
            return action()
        except sqlite3.Error as e:
            self.stats["account_store_errors"] += 1
            self._log.error(
                "Account guard: cannot {what} in {path}: {error}",
                what=what, path=self.path, error=str(e), rule="account-guard",
            )
            return fallback

    # -- queries ---------------------------------------------------------------

    def _locked(self, user: str, now: float) -> bool:
        # Over the budget while the budget-th most recent failure is in the window.
        row = self._db.execute(
            "SELECT at FROM failures WHERE user = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
            (user, self.budget - 1),
        ).fetchone()
        return row is not None and row[0] > now - self.window

    def is_locked(self, user: str, now: float) -> bool:
        """True if C{user} is over its failure budget at C{now}."""
        return self._safely("read", lambda: self._locked(user, now), False)

    def _is_known(self, user: str, source: str, now: float) -> bool:
        key = canonical_ip(source) or source
        row = self._db.execute(
            "SELECT seen FROM known WHERE user = ? AND source = ?", (user, key)
        ).fetchone()
        return row is not None and row[0] > now - self.memory

    def is_known(self, user: str, source: str, now: float) -> bool:
        """True if C{user} authenticated from C{source} within C{memory} seconds."""
        return self._safely("read", lambda: self._is_known(user, source, now), False)

    def begin_check(
        self, user: str, source: str, now: float, *, trusted: bool = False
    ) -> AccountCheck | None:
        """
        Whether the credentials C{user} sent from C{source} may be checked
        at C{now}: C{None} (refuse them unchecked) if the account is over
        its budget and C{source} is neither trusted nor known. A refusal is
        counted (C{account_refused}); the caller logs it, naming the user
        and the source.

        From a source neither trusted nor known, the check is counted as a
        failure in advance, in the same write transaction that found the
        budget had room: hand the L{AccountCheck} back to L{note_failure}
        or L{end_check}.
        """
        if trusted:
            return AccountCheck(user, source)

        def ask() -> bool | None:
            # Known: checked. Locked (a read: a refusal writes nothing): refused.
            if self._is_known(user, source, now):
                return True
            return None if not self._locked(user, now) else False

        verdict: bool | None = True  # if the store fails: let the check happen
        verdict = self._safely("read", ask, verdict)
        if verdict:
            return AccountCheck(user, source)
        if verdict is False:
            self.stats["account_refused"] += 1
            return None
        token = next(self._tokens)

        def reserve() -> bool:
            with self._transaction() as db:
                return bool(
                    db.execute(
                        "INSERT INTO failures (user, at, source, pending) SELECT ?, ?, ?, ?"
                        " WHERE NOT EXISTS (SELECT 1 FROM failures WHERE user = ? AND at > ?"
                        " LIMIT 1 OFFSET ?)",
                        (
                            user, now, canonical_ip(source) or source, token,
                            user, now - self.window, self.budget - 1,
                        ),
                    ).rowcount
                )

        reserved = self._safely("write", reserve, None)
        if reserved is None:  # the store failed: let the check happen
            return AccountCheck(user, source)
        if reserved:
            return AccountCheck(user, source, token)
        self.stats["account_refused"] += 1
        return None

    def end_check(self, check: AccountCheck) -> None:
        """
        The credentials of C{check} were right: take back the failure
        counted for it in advance. (Whether the user is then authenticated,
        a known source from now on, is L{note_success}'s business: a right
        digest on a stale nonce is not.)
        """
        token = check.pending
        if token is None:
            return

        def write() -> None:
            with self._transaction() as db:
                db.execute(
                    "DELETE FROM failures WHERE user = ? AND pending = ?", (check.user, token)
                )

        self._safely("write", write, None)

    def _state(self, user: str, now: float) -> AccountState | None:
        db = self._db
        if db.execute("SELECT 1 FROM accounts WHERE user = ?", (user,)).fetchone() is None:
            return None
        recent = [
            at
            for (at,) in db.execute(
                "SELECT at FROM failures WHERE user = ? ORDER BY at DESC LIMIT ?",
                (user, self.budget),
            )
            if at > now - self.window
        ]
        known = db.execute(
            "SELECT source FROM known WHERE user = ? AND seen > ? ORDER BY seen, rowid",
            (user, now - self.memory),
        ).fetchall()
        return AccountState(
            user=user,
            failures=len(recent),
            locked=len(recent) >= self.budget,
            until=recent[-1] + self.window if recent else None,
            known_sources=tuple(source for (source,) in known),
        )

    def state(self, user: str, now: float) -> AccountState | None:
        """What the guard knows of C{user} at C{now}, or C{None}."""
        return self._safely("read", lambda: self._state(user, now), None)

    def locked_accounts(self, now: float) -> list[AccountState]:
        """The accounts over their budget at C{now}."""

        def locked() -> list[AccountState]:
            users = self._db.execute(
                "SELECT DISTINCT user FROM failures WHERE at > ? ORDER BY user",
                (now - self.window,),
            ).fetchall()
            states = (self._state(user, now) for (user,) in users)
            return [s for s in states if s is not None and s.locked]

        return self._safely("read", locked, [])

    # -- reports -------------------------------------------------------------

    def _touch(self, db: sqlite3.Connection, user: str, now: float) -> None:
        """Mark C{user} used at C{now} (in a write transaction), evicting if full."""
        updated = db.execute(
            "UPDATE accounts SET used = max(used, ?) WHERE user = ?", (now, user)
        ).rowcount
        if updated:
            return
        db.execute("INSERT INTO accounts (user, used) VALUES (?, ?)", (user, now))
        self._count += 1
        if self._count <= self.max_accounts:
            return
        self._count = db.execute("SELECT count(*) FROM accounts").fetchone()[0]
        excess = self._count - self.max_accounts
        if excess <= 0:
            return
        gone = [
            u
            for (u,) in db.execute(
                "SELECT user FROM accounts WHERE user != ? ORDER BY used, rowid LIMIT ?",
                (user, excess),
            ).fetchall()
        ]
        for u in gone:
            db.execute("DELETE FROM accounts WHERE user = ?", (u,))
            db.execute("DELETE FROM failures WHERE user = ?", (u,))
            db.execute("DELETE FROM known WHERE user = ?", (u,))
        self._count -= len(gone)
        self.stats["account_evicted"] += len(gone)

    def note_failure(
        self, user: str, source: str, now: float, check: AccountCheck | None = None
    ) -> bool:
        """
        C{user}'s credentials from C{source} were checked and wrong at
        C{now} (C{check}: the L{AccountCheck} that let them be checked, if
        one did). Return C{True} if this failure took the account over its
        budget (that is logged, once per lock, by the process whose
        failure it was).
        """
        self.stats["account_failures"] += 1
        token = None if check is None else check.pending

        def confirmed(db: sqlite3.Connection) -> int:
            return int(
                db.execute(
                    "SELECT count(*) FROM failures WHERE user = ? AND at > ? AND pending IS NULL",
                    (user, now - self.window),
                ).fetchone()[0]
            )

        def write() -> bool:
            with self._transaction() as db:
                self._touch(db, user, now)
                if token is None or not db.execute(
                    "UPDATE failures SET pending = NULL WHERE user = ? AND pending = ?",
                    (user, token),
                ).rowcount:
                    db.execute(
                        "INSERT INTO failures (user, at, source) VALUES (?, ?, ?)",
                        (user, now, canonical_ip(source) or source),
                    )
                # The failure whose confirmation makes the budget-th confirmed
                # one in the window reports the lock.
                reached = confirmed(db) == self.budget
                db.execute(
                    "DELETE FROM failures WHERE user = ? AND rowid NOT IN"
                    " (SELECT rowid FROM failures WHERE user = ? ORDER BY at DESC LIMIT ?)",
                    (user, user, self.budget),
                )
                return reached

        if not self._safely("write", write, False):
            return False
        self.stats["account_locks"] += 1
        self._log.warn(
            "Account {user} had {failures} authentication failures in {window} s, the"
            " last from {source}: its credentials are checked only from sources it"
            " authenticated from before and trusted networks until the failures age out",
            rule="account-guard",
            user=user,
            source=source,
            failures=self.budget,
            window=self.window,
        )
        return True

    def note_success(self, user: str, source: str, now: float) -> None:
        """C{user} authenticated from C{source} at C{now}: a known source from now on."""
        key = canonical_ip(source) or source
        written = self._written
        last = written.get((user, key))
        if last is not None and now - last < min(_REFRESH, self.memory / 100):
            return

        def write() -> None:
            with self._transaction() as db:
                self._touch(db, user, now)
                db.execute(
                    "INSERT OR REPLACE INTO known (user, source, seen) VALUES (?, ?, ?)",
                    (user, key, now),
                )
                db.execute(
                    "DELETE FROM known WHERE user = ? AND rowid NOT IN (SELECT rowid FROM"
                    " known WHERE user = ? ORDER BY seen DESC, rowid DESC LIMIT ?)",
                    (user, user, self.known_sources),
                )
            written.pop((user, key), None)
            written[(user, key)] = now
            while len(written) > self.max_accounts:
                written.popitem(last=False)

        self._safely("write", write, None)

    def purge(self, now: float) -> int:
        """Forget accounts with no failure in the window and no known source; return how many."""

        def sweep() -> int:
            with self._transaction() as db:
                db.execute("DELETE FROM known WHERE seen <= ?", (now - self.memory,))
                db.execute("DELETE FROM failures WHERE at <= ?", (now - self.window,))
                gone = db.execute(
                    "DELETE FROM accounts WHERE user NOT IN (SELECT user FROM failures)"
                    " AND user NOT IN (SELECT user FROM known)"
                ).rowcount
                self._count = db.execute("SELECT count(*) FROM accounts").fetchone()[0]
            for pair, at in list(self._written.items()):
                if at <= now - self.memory:
                    del self._written[pair]
            return int(gone)

        return self._safely("purge", sweep, 0)
