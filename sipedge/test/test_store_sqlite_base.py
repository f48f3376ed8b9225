# -*- test-case-name: sipedge.test.test_store_sqlite_base -*-
"""
Tests for L{sipedge.store._sqlite_base}: how the SQLite-backed stores open
their database, create and migrate its schema, and map errors.
"""

from __future__ import annotations

import os
import sqlite3
import stat

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import ConfigError
from sipedge.store import (
    closing_on_failure,
    open_database,
    read_schema_version,
    transaction,
)

SCHEMA = (
    "CREATE TABLE things (name TEXT NOT NULL)",
    "CREATE INDEX things_by_name ON things (name)",
)

MIGRATIONS = {
    1: ("ALTER TABLE things ADD COLUMN size INTEGER",),
    2: ("CREATE TABLE others (name TEXT NOT NULL)",),
}


class OpenDatabaseTests(SynchronousTestCase):
    """L{open_database}."""

    def open(
        self,
        path: str,
        version: int = 1,
        mode: int | None = None,
        log: Logger | None = None,
    ) -> sqlite3.Connection:
        db = open_database(
            path, "thing", schema=SCHEMA, version=version, migrations=MIGRATIONS, mode=mode, log=log
        )
        self.addCleanup(db.close)
        return db

    def tables(self, db: sqlite3.Connection) -> set[str]:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def test_new_file(self) -> None:
        """A new file gets schema version 1 and a version table."""
        path = self.mktemp()
        db = self.open(path)
        self.assertEqual(read_schema_version(db), 1)
        self.assertEqual(self.tables(db), {"schema_version", "things"})
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchall(), [(1,)])
        self.assertTrue(os.path.exists(path))

    def test_pragmas(self) -> None:
        """WAL, C{synchronous=NORMAL}, a busy timeout, and autocommit."""
        db = self.open(self.mktemp())
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], 1)  # NORMAL
        self.assertEqual(db.execute("PRAGMA busy_timeout").fetchone()[0], 5000)
        self.assertIsNone(db.isolation_level)
        self.assertFalse(db.in_transaction)

    def test_memory(self) -> None:
        """C{":memory:"} works, also with a mode, and creates no file."""
        db = self.open(":memory:", mode=0o600)
        self.assertEqual(read_schema_version(db), 1)
        self.assertFalse(os.path.exists(":memory:"))

    def test_reopen(self) -> None:
        """An existing file keeps its data; the schema is not created again."""
        path = self.mktemp()
        db = self.open(path)
        db.execute("INSERT INTO things (name) VALUES ('x')")
        db.close()
        db = self.open(path)
        self.assertEqual(db.execute("SELECT name FROM things").fetchall(), [("x",)])
        self.assertEqual(read_schema_version(db), 1)

    def test_migrate(self) -> None:
        """An older file is migrated step by step; each step is logged."""
        path = self.mktemp()
        self.open(path).close()
        events = EventLoggingObserver()
        db = self.open(path, version=3, log=Logger(namespace="test", observer=events))
        self.assertEqual(read_schema_version(db), 3)
        self.assertEqual(self.tables(db), {"schema_version", "things", "others"})
        db.execute("INSERT INTO things (name, size) VALUES ('x', 1)")
        self.assertEqual(
            [(e["log_format"], e["path"], e["version"]) for e in events],
            [
                ("Migrated thing database {path} to schema version {version}", path, 2),
                ("Migrated thing database {path} to schema version {version}", path, 3),
            ],
        )

    def test_migrate_new_file(self) -> None:
        """A new file gets schema version 1 and is then migrated."""
        db = self.open(self.mktemp(), version=2)
        self.assertEqual(read_schema_version(db), 2)
        self.assertEqual(db.execute("SELECT name, size FROM things").fetchall(), [])

    def test_migrate_unlogged(self) -> None:
        """Without a logger, migrations happen silently."""
        path = self.mktemp()
        self.open(path).close()
        self.assertEqual(read_schema_version(self.open(path, version=2)), 2)

    def test_newer_schema(self) -> None:
        """A file with a newer schema is refused, and left unchanged."""
        path = self.mktemp()
        self.open(path, version=3).close()
        error = self.assertRaises(ConfigError, self.open, path, version=2)
        self.assertEqual(
            str(error),
            f"thing database {path!r} has schema version 3,"
            " newer than this sipedge understands (2)",
        )
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        self.assertEqual(read_schema_version(db), 3)

    def test_not_a_database(self) -> None:
        """A file that is not SQLite cannot be used."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"this is not a database, just some text" * 100)
        error = self.assertRaises(ConfigError, self.open, path)
        self.assertTrue(str(error).startswith(f"cannot use thing database {path!r}: "), str(error))
        self.assertIsInstance(error.__cause__, sqlite3.DatabaseError)

    def test_cannot_open(self) -> None:
        """A file in a missing directory cannot be opened."""
        path = os.path.join(self.mktemp(), "missing", "thing.sqlite3")
        error = self.assertRaises(ConfigError, self.open, path)
        self.assertTrue(str(error).startswith(f"cannot open thing database {path!r}: "), str(error))
        self.assertIsInstance(error.__cause__, sqlite3.Error)

    def test_cannot_create_with_mode(self) -> None:
        """With a mode, failing to create the file is an OSError, mapped alike."""
        path = os.path.join(self.mktemp(), "missing", "thing.sqlite3")
        error = self.assertRaises(ConfigError, self.open, path, mode=0o600)
        self.assertTrue(str(error).startswith(f"cannot open thing database {path!r}: "), str(error))
        self.assertIsInstance(error.__cause__, OSError)

    def test_mode(self) -> None:
        """A new file is created with the mode given."""
        path = self.mktemp()
        self.open(path, mode=0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_mode_existing(self) -> None:
        """The mode does not change an existing file."""
        path = self.mktemp()
        self.open(path).close()
        os.chmod(path, 0o640)
        self.open(path, mode=0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)


class TransactionTests(SynchronousTestCase):
    """L{transaction}."""

    def setUp(self) -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.addCleanup(self.db.close)
        self.db.execute("CREATE TABLE t (x INTEGER)")

    def rows(self) -> list[tuple[int]]:
        return self.db.execute("SELECT x FROM t").fetchall()

    def test_commit(self) -> None:
        """A block that ends is committed."""
        with transaction(self.db) as db:
            self.assertIs(db, self.db)
            self.assertTrue(db.in_transaction)
            db.execute("INSERT INTO t VALUES (1)")
        self.assertFalse(self.db.in_transaction)
        self.assertEqual(self.rows(), [(1,)])

    def test_rollback(self) -> None:
        """A block that raises is rolled back; the exception passes."""
        with self.assertRaises(ZeroDivisionError):
            with transaction(self.db) as db:
                db.execute("INSERT INTO t VALUES (1)")
                1 / 0  # noqa: B018
        self.assertFalse(self.db.in_transaction)
        self.assertEqual(self.rows(), [])


class ClosingOnFailureTests(SynchronousTestCase):
    """L{closing_on_failure}."""

    def setUp(self) -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.addCleanup(self.db.close)

    def assertClosed(self) -> None:
        self.assertRaises(sqlite3.ProgrammingError, self.db.execute, "SELECT 1")

    def test_success(self) -> None:
        """A block that ends leaves the database open."""
        with closing_on_failure(self.db, "thing", "p"):
            pass
        self.assertEqual(self.db.execute("SELECT 1").fetchone(), (1,))

    def test_database_error(self) -> None:
        """An SQLite database error closes the database and is a ConfigError."""

        def fail() -> None:
            with closing_on_failure(self.db, "thing", "p"):
                self.db.execute("SELECT * FROM nowhere")

        error = self.assertRaises(ConfigError, fail)
        self.assertEqual(str(error), "cannot use thing database 'p': no such table: nowhere")
        self.assertIsInstance(error.__cause__, sqlite3.OperationalError)
        self.assertClosed()

    def test_other_error(self) -> None:
        """Any other exception closes the database and passes unchanged."""

        def fail() -> None:
            with closing_on_failure(self.db, "thing", "p"):
                raise ConfigError("other")

        error = self.assertRaises(ConfigError, fail)
        self.assertEqual(str(error), "other")
        self.assertClosed()
