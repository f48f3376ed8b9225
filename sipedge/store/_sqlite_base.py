# -*- test-case-name: sipedge.test.test_store_sqlite_base -*-
"""
What the SQLite-backed stores (locations, credentials, bans) share: opening
a database file the same way, and write transactions on it.

Each store keeps one connection in autocommit mode (C{isolation_level=None}:
transactions are explicit, see L{transaction}) in WAL mode with
C{synchronous=NORMAL} and a busy timeout, so a CLI process and the running
proxy can share the file; see C{sipedge.store._sqlite} for why the queries
are synchronous. A C{schema_version} table holds the version of the schema;
a new file gets the current schema, an older one is migrated, and a newer
one (or a file that is not an SQLite database) is refused with a
L{ConfigError} naming the store.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from twisted.logger import Logger

from sipedge.error import ConfigError

__all__ = ["closing_on_failure", "open_database", "read_schema_version", "transaction"]


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed if the block ends, else rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def read_schema_version(db: sqlite3.Connection) -> int:
    """The schema version of the open file."""
    return int(db.execute("SELECT version FROM schema_version").fetchone()[0])


@contextmanager
def closing_on_failure(db: sqlite3.Connection, what: str, path: str) -> Iterator[None]:
    """
    Close C{db} if the block fails; an SQLite database error becomes a
    L{ConfigError} ("cannot use C{what} database C{path}"), anything else
    passes unchanged.
    """
    try:
        yield
    except sqlite3.DatabaseError as e:
        db.close()
        raise ConfigError(f"cannot use {what} database {path!r}: {e}") from e
    except BaseException:
        db.close()
        raise


def open_database(
    path: str,
    what: str,
    *,
    schema: Sequence[str],
    version: int,
    migrations: Mapping[int, Sequence[str]],
    mode: int | None = None,
    log: Logger | None = None,
) -> sqlite3.Connection:
    """
    Open (creating it if need be) the SQLite database C{path} of a store,
    with the pragmas of every store, and create or migrate its schema.

    @param path: the database file, or C{":memory:"}.
    @param what: the store's database in messages, e.g. C{"location"}.
    @param schema: the statements that create schema version 1.
    @param version: the schema version the store's code writes.
    @param migrations: the statements that take the schema from version N
        (the key) to N + 1.
    @param mode: if given, a file that does not exist yet is first created
        empty with these permissions (for files that hold secrets).
    @param log: if given, each migration step is logged to it.
    @return: the connection, in autocommit mode.
    @raise ConfigError: if the file cannot be opened, is not an SQLite
        database, or holds a schema newer than C{version}.
    """
    try:
        if mode is not None and path != ":memory:" and not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, mode))
        db = sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"cannot open {what} database {path!r}: {e}") from e
    with closing_on_failure(db, what, path):
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        _open_schema(db, path, what, schema, version, migrations, log)
    return db


def _open_schema(
    db: sqlite3.Connection,
    path: str,
    what: str,
    schema: Sequence[str],
    current: int,
    migrations: Mapping[int, Sequence[str]],
    log: Logger | None,
) -> None:
    """Create the schema of a new file, or migrate an older one."""
    with transaction(db):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            for statement in schema:
                db.execute(statement)
            version = 1
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        else:
            version = row[0]
        if version > current:
            raise ConfigError(
                f"{what} database {path!r} has schema version {version},"
                f" newer than this sipedge understands ({current})"
            )
        while version < current:
            for statement in migrations[version]:
                db.execute(statement)
            version += 1
            db.execute("UPDATE schema_version SET version = ?", (version,))
            if log is not None:
                log.info(
                    f"Migrated {what} database {{path}} to schema version {{version}}",
                    path=path,
                    version=version,
                )
