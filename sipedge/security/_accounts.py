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

The failures and the known sources live in an SQLite file in the state
directory (C{accounts.sqlite3}, WAL mode), so every worker process of one
proxy counts against one budget per account (a botnet spread over the
workers gets no more guesses than one process would let through), and a
restart forgets neither the failures nor where each user authenticated
from. Each failure is one short write transaction (which also decides,
for all processes at once, which failure reached the budget); a check is
one indexed read; a success is written when its source is new to the
account, or at most every C{_REFRESH} seconds for one source, so the
calls of registered users do not each cost a write.
"""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import attrs

from sipedge._log import NamedLogger
from sipedge.security._address import canonical_ip
from sipedge.store import closing_on_failure, open_database, transaction

__all__ = ["ACCOUNT_STAT_KEYS", "DATABASE_NAME", "AccountGuard", "AccountState"]

#: The file name of the guard's database in the state directory.
DATABASE_NAME = "accounts.sqlite3"

#: The schema version this code writes.
SCHEMA_VERSION = 1

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
            self.path, "account", schema=_SCHEMA_V1, version=SCHEMA_VERSION, migrations={}
        )
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

    def may_check(self, user: str, source: str, now: float, *, trusted: bool = False) -> bool:
        """
        Whether the credentials C{user} sent from C{source} may be checked
        at C{now}: C{False} (refuse them unchecked) if the account is over
        its budget and C{source} is neither trusted nor known. A refusal is
        counted (C{account_refused}); the caller logs it, naming the user
        and the source.
        """
        if trusted:
            return True

        def ask() -> bool:
            return not self._locked(user, now) or self._is_known(user, source, now)

        if self._safely("read", ask, True):
            return True
        self.stats["account_refused"] += 1
        return False

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

    def note_failure(self, user: str, source: str, now: float) -> bool:
        """
        C{user}'s credentials from C{source} were checked and wrong at
        C{now}. Return C{True} if this failure took the account over its
        budget (that is logged, once per lock, by the process whose
        failure it was).
        """
        self.stats["account_failures"] += 1

        def write() -> bool:
            with self._transaction() as db:
                was_locked = self._locked(user, now)
                self._touch(db, user, now)
                db.execute(
                    "INSERT INTO failures (user, at, source) VALUES (?, ?, ?)",
                    (user, now, canonical_ip(source) or source),
                )
                db.execute(
                    "DELETE FROM failures WHERE user = ? AND rowid NOT IN"
                    " (SELECT rowid FROM failures WHERE user = ? ORDER BY at DESC LIMIT ?)",
                    (user, user, self.budget),
                )
                return not was_locked and self._locked(user, now)

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
