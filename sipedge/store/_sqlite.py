# -*- test-case-name: sipedge.test.test_store -*-
"""
The location service in an SQLite file in the state directory, so a restart
loses no registration.

Queries run synchronously in the reactor thread, on one connection in WAL
mode, and the methods return already-fired Deferreds. Why not
C{adbapi.ConnectionPool}: a REGISTER costs one small transaction on an
indexed local file (well under a millisecond with C{synchronous=NORMAL},
which in WAL mode syncs only at checkpoints), less than handing the work to
a thread and back; a single connection in the one reactor thread makes the
read-check-write of a REGISTER atomic with no locking of our own; and tests
stay synchronous. What this costs: a stalled disk stalls the reactor, and a
power cut (not a process crash or restart) may lose the last few commits.
A store that must share state between hosts belongs behind the same
interface in another backend (Redis), not here.

A look-up (one per INVITE to a user) is remembered per AOR while nothing
commits to the database, from this process or any other worker: the
wal-index header every commit rewrites tells (L{sipedge.store._wal}), at
the cost of a 96-byte copy instead of a read transaction. A remembered
look-up is used only until the first of its bindings expires.

Text is stored as UTF-8 bytes with C{surrogateescape}, so every string the
message parser can produce (lone surrogates stand for undecodable octets)
comes back unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.flow import Flow
from sipedge.interfaces import ILocationStore
from sipedge.store._binding import Binding, binding_order
from sipedge.store._memory import apply_update
from sipedge.store._sqlite_base import open_database, read_schema_version, transaction
from sipedge.store._wal import WalChanges

__all__ = ["DATABASE_NAME", "SCHEMA_VERSION", "SQLiteLocationStore"]

_log = Logger()

#: The file name of the location database in the state directory.
DATABASE_NAME = "location.sqlite3"

#: The schema version this code writes.
SCHEMA_VERSION = 1

_SCHEMA_V1 = (
    """
    CREATE TABLE bindings (
        id               INTEGER PRIMARY KEY,
        aor              BLOB    NOT NULL,
        contact          BLOB    NOT NULL,
        expires_at       REAL    NOT NULL,
        q                REAL    NOT NULL,
        call_id          BLOB    NOT NULL,
        cseq             INTEGER NOT NULL,
        flow_transport   TEXT,
        flow_local_host  TEXT,
        flow_local_port  INTEGER,
        flow_remote_host TEXT,
        flow_remote_port INTEGER,
        path             TEXT    NOT NULL,
        instance         BLOB,
        reg_id           INTEGER,
        user_agent       BLOB,
        received         BLOB
    )
    """,
    "CREATE INDEX bindings_by_aor ON bindings (aor)",
    "CREATE INDEX bindings_by_expiry ON bindings (expires_at)",
)

#: Statements that take the schema from version N (the key) to N + 1.
_MIGRATIONS: dict[int, tuple[str, ...]] = {}

_COLUMNS = (
    "aor, contact, expires_at, q, call_id, cseq, flow_transport, flow_local_host,"
    " flow_local_port, flow_remote_host, flow_remote_port, path, instance, reg_id,"
    " user_agent, received"
)
_INSERT = f"INSERT INTO bindings ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"
_SELECT = f"SELECT id, {_COLUMNS} FROM bindings WHERE aor = ?"


def _blob(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")


def _text(blob: bytes) -> str:
    return bytes(blob).decode("utf-8", "surrogateescape")


def _optional_text(blob: bytes | None) -> str | None:
    return None if blob is None else _text(blob)


def _row(binding: Binding) -> tuple[Any, ...]:
    flow = binding.flow
    return (
        _blob(binding.aor),
        _blob(binding.contact),
        binding.expires_at,
        binding.q,
        _blob(binding.call_id),
        binding.cseq,
        None if flow is None else flow.transport,
        None if flow is None else flow.local_host,
        None if flow is None else flow.local_port,
        None if flow is None else flow.remote_host,
        None if flow is None else flow.remote_port,
        # ensure_ascii writes lone surrogates as \\udcxx, which loads back.
        json.dumps(list(binding.path)),
        _blob(binding.instance),
        binding.reg_id,
        _blob(binding.user_agent),
        _blob(binding.received),
    )


def _binding(row: tuple[Any, ...]) -> Binding:
    (
        aor,
        contact,
        expires_at,
        q,
        call_id,
        cseq,
        transport,
        local_host,
        local_port,
        remote_host,
        remote_port,
        path,
        instance,
        reg_id,
        user_agent,
        received,
    ) = row
    flow = None
    if transport is not None:
        flow = Flow(transport, local_host, local_port, remote_host, remote_port)
    return Binding(
        aor=_text(aor),
        contact=_text(contact),
        expires_at=expires_at,
        q=q,
        call_id=_text(call_id),
        cseq=cseq,
        flow=flow,
        path=tuple(json.loads(path)),
        instance=_optional_text(instance),
        reg_id=reg_id,
        user_agent=_optional_text(user_agent),
        received=_optional_text(received),
    )


# Bindings are frozen values and a row is its binding: a look-up (an INVITE
# to a registered user) reuses the binding of a row it has read before
# instead of decoding it again. Only look-ups: an update tells rows apart
# by the identity of their bindings.
_cached_binding = functools.lru_cache(maxsize=4096)(_binding)

#: The most AORs whose look-up is remembered (L{SQLiteLocationStore.lookup}).
LOOKUP_CACHE_SIZE = 4096


@implementer(ILocationStore)
class SQLiteLocationStore:
    """
    An L{ILocationStore} in an SQLite file (created, with its schema, on
    open). See the module docstring for why the queries are synchronous.

    @param path: the database file, or C{":memory:"}.
    @param reactor: unused by this synchronous implementation; accepted so
        the composition root can pass it to any store alike.
    @raise ConfigError: if the file holds a schema newer than this code, or
        is not an SQLite database.
    """

    def __init__(self, path: str | os.PathLike[str], *, reactor: object = None) -> None:
        self.path = os.fspath(path)
        self._reactor = reactor
        self._db = open_database(
            self.path,
            "location",
            schema=_SCHEMA_V1,
            version=SCHEMA_VERSION,
            migrations=_MIGRATIONS,
            log=_log,
        )
        #: Whether the database changed since a look-up, in any process.
        self._changes = WalChanges(self.path)
        #: AOR -> (change stamp, when, its unexpired bindings then, when
        #: the first of them expires): look-ups while nothing committed.
        self._looked_up: dict[str, tuple[bytes, float, tuple[Binding, ...], float]] = {}
        #: The most AORs remembered at once.
        self.lookup_cache_size = LOOKUP_CACHE_SIZE

    @classmethod
    def in_state_directory(
        cls, directory: str | os.PathLike[str], *, reactor: object = None
    ) -> SQLiteLocationStore:
        """The store in C{directory}/L{DATABASE_NAME}."""
        return cls(os.path.join(os.fspath(directory), DATABASE_NAME), reactor=reactor)

    # -- schema --------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction: committed if the block ends, else rolled back."""
        return transaction(self._db)

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return read_schema_version(self._db)

    # -- ILocationStore ----------------------------------------------------

    def _select(self, aor: str) -> list[tuple[int, Binding]]:
        rows = self._db.execute(_SELECT, (_blob(aor),)).fetchall()
        return [(row[0], _binding(row[1:])) for row in rows]

    def _update(self, aor: str, bindings: list[Binding], now: float) -> list[Binding]:
        for binding in bindings:
            if binding.aor != aor:
                raise ValueError(f"binding for {binding.aor!r}, not {aor!r}")
        with self._transaction() as db:
            current = self._select(aor)
            result = apply_update((b for _, b in current), bindings, now)
            # Bindings are values: a stored one still in the result is kept
            # as it is, the others are deleted, the new ones inserted.
            kept = {id(b) for b in result}
            stale = [(rowid,) for rowid, b in current if id(b) not in kept]
            stored = {id(b) for _, b in current}
            db.executemany("DELETE FROM bindings WHERE id = ?", stale)
            db.executemany(_INSERT, [_row(b) for b in result if id(b) not in stored])
        return sorted((b for b in result if not b.is_expired(now)), key=binding_order)

    def update(self, aor: str, bindings: Iterable[Binding], now: float) -> Deferred[list[Binding]]:
        """
        Apply the bindings of one REGISTER to C{aor} in one transaction
        (see L{apply_update}); fire with the unexpired bindings, highest q
        first.
        """
        return defer.maybeDeferred(self._update, aor, list(bindings), now)

    def _remove_all(self, aor: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM bindings WHERE aor = ?", (_blob(aor),))

    def remove_all(self, aor: str) -> Deferred[None]:
        """Remove every binding of C{aor}."""
        return defer.maybeDeferred(self._remove_all, aor)

    def _lookup(self, aor: str, now: float) -> list[Binding]:
        # The stamp is taken before the query: it can only be older than
        # what the query reads (see sipedge.store._wal).
        stamp = self._changes.stamp()
        if stamp is not None:
            cached = self._looked_up.get(aor)
            if cached is not None and cached[0] == stamp and cached[1] <= now < cached[3]:
                return list(cached[2])
        rows = self._db.execute(_SELECT, (_blob(aor),)).fetchall()
        bindings = (_cached_binding(row[1:]) for row in rows)
        found = sorted((b for b in bindings if not b.is_expired(now)), key=binding_order)
        if stamp is not None:
            looked_up = self._looked_up
            if len(looked_up) >= self.lookup_cache_size and aor not in looked_up:
                looked_up.clear()
            first_expiry = min((b.expires_at for b in found), default=float("inf"))
            looked_up[aor] = (stamp, now, tuple(found), first_expiry)
        return found

    def lookup(self, aor: str, now: float) -> Deferred[list[Binding]]:
        """Fire with the unexpired bindings of C{aor}, highest q first."""
        return defer.maybeDeferred(self._lookup, aor, now)

    def _all(self, now: float) -> list[Binding]:
        rows = self._db.execute(
            f"SELECT id, {_COLUMNS} FROM bindings WHERE expires_at > ? ORDER BY aor", (now,)
        ).fetchall()
        return [_binding(row[1:]) for row in rows]

    def bindings(self, now: float) -> Deferred[list[Binding]]:
        """Fire with every unexpired binding of every AOR, by AOR."""
        return defer.maybeDeferred(self._all, now)

    def counts(self, now: float) -> tuple[int, int]:
        """C{(AORs registered, bindings)} unexpired at C{now}, at once (for metrics)."""
        aors, bindings = self._db.execute(
            "SELECT COUNT(DISTINCT aor), COUNT(*) FROM bindings WHERE expires_at > ?", (now,)
        ).fetchone()
        return int(aors), int(bindings)

    def _expire(self, now: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,)).rowcount

    def expire(self, now: float) -> Deferred[int]:
        """Remove every binding expired at C{now}; fire with how many."""
        return defer.maybeDeferred(self._expire, now)

    def close(self) -> None:
        """Close the database; later calls fail."""
        self._changes.close()
        self._looked_up.clear()
        self._db.close()
