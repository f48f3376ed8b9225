"""
Tests for L{sipedge.store._wal} (whether a database in WAL mode changed,
read from its wal-index) and the look-up cache of L{SQLiteLocationStore}
built on it.
"""

from __future__ import annotations

import sqlite3
import struct

from twisted.trial.unittest import SynchronousTestCase

from sipedge.store import Binding, SQLiteLocationStore
from sipedge.store._wal import WalChanges

AOR = "sip:alice@example.com"


def _binding(contact: str = "sip:alice@192.0.2.1", expires_at: float = 3600.0) -> Binding:
    return Binding(aor=AOR, contact=contact, expires_at=expires_at, call_id="c", cseq=1)


def _header(version: int = 3007000, change: int = 1, initialised: int = 1) -> bytes:
    return struct.pack("=IIIB", version, 0, change, initialised).ljust(48, b"\x07")


class WalChangesTests(SynchronousTestCase):
    """Tests for L{WalChanges}."""

    def shm(self, data: bytes) -> WalChanges:
        path = self.mktemp()
        with open(path + "-shm", "wb") as f:
            f.write(data)
        changes = WalChanges(path)
        self.addCleanup(changes.close)
        return changes

    def test_header(self) -> None:
        """Two equal copies of a 3.7.0 header, initialised: the stamp is the header."""
        header = _header()
        changes = self.shm(header + header + b"\x00" * 40)
        self.assertTrue(changes.usable)
        self.assertEqual(changes.stamp(), header)

    def test_copies_differ(self) -> None:
        """While a commit rewrites the header (the copies differ): no stamp."""
        self.assertIsNone(self.shm(_header(change=2) + _header(change=1)).stamp())

    def test_unknown_format(self) -> None:
        """Another format version, or a header not initialised: no stamp."""
        for header in (_header(version=3007001), _header(initialised=0)):
            self.assertIsNone(self.shm(header + header).stamp(), header)

    def test_unusable(self) -> None:
        """In memory, without a wal-index, or one too short to hold it: never a stamp."""
        short = self.shm(_header())
        for changes in (WalChanges(":memory:"), WalChanges(self.mktemp()), short):
            self.assertFalse(changes.usable)
            self.assertIsNone(changes.stamp())
        changes.close()

    def test_commit_changes_stamp(self) -> None:
        """
        On a real database, the stamp is the same across reads and changes
        with every commit, from any connection; closed, it is C{None}.
        """
        path = self.mktemp()
        db = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(db.close)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE t (x)")
        changes = WalChanges(path)
        self.addCleanup(changes.close)
        other = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(other.close)
        before = changes.stamp()
        self.assertIsNotNone(before)
        other.execute("SELECT * FROM t").fetchall()
        self.assertEqual(changes.stamp(), before)
        stamps = {before}
        for connection in (other, db, other):
            connection.execute("INSERT INTO t VALUES (1)")
            stamp = changes.stamp()
            self.assertNotIn(stamp, stamps)
            stamps.add(stamp)
        changes.close()
        self.assertIsNone(changes.stamp())


class LookupCacheTests(SynchronousTestCase):
    """The look-ups of L{SQLiteLocationStore} while nothing commits."""

    def setUp(self) -> None:
        self.path = self.mktemp()
        self.store = SQLiteLocationStore(self.path)
        self.addCleanup(self.store.close)
        self.other = SQLiteLocationStore(self.path)  # another worker
        self.addCleanup(self.other.close)
        self.queries: list[str] = []
        self.store._db.set_trace_callback(self.queries.append)

    def lookup(self, now: float = 0.0) -> list[Binding]:
        d = self.store.lookup(AOR, now)
        return self.successResultOf(d)

    def test_cached(self) -> None:
        """A second look-up with nothing committed in between does not query."""
        self.successResultOf(self.other.update(AOR, [_binding()], 0.0))
        self.assertEqual(self.lookup(), [_binding()])
        self.assertEqual(len(self.queries), 1)
        self.assertEqual(self.lookup(1.0), [_binding()])
        self.assertEqual(len(self.queries), 1)

    def test_unknown_cached(self) -> None:
        """So is a look-up that found nothing (an INVITE to a user not registered)."""
        self.assertEqual(self.lookup(), [])
        self.assertEqual(self.lookup(), [])
        self.assertEqual(len(self.queries), 1)

    def test_other_worker_commits(self) -> None:
        """A binding another worker adds or removes is seen at the next look-up."""
        self.assertEqual(self.lookup(), [])
        self.successResultOf(self.other.update(AOR, [_binding()], 0.0))
        self.assertEqual(self.lookup(), [_binding()])
        self.successResultOf(self.other.remove_all(AOR))
        self.assertEqual(self.lookup(), [])
        self.assertEqual(len(self.queries), 3)

    def test_own_commits(self) -> None:
        """A binding this store adds is seen at the next look-up."""
        self.assertEqual(self.lookup(), [])
        self.successResultOf(self.store.update(AOR, [_binding()], 0.0))
        self.assertEqual(self.lookup(), [_binding()])

    def test_expiry(self) -> None:
        """
        A cached binding is not returned once it has expired, and a look-up
        at an earlier time (the clock stepped back) queries again.
        """
        short, long = _binding("sip:a@192.0.2.1", 10.0), _binding("sip:b@192.0.2.1", 20.0)
        self.successResultOf(self.other.update(AOR, [short, long], 0.0))

        def contacts(now: float) -> set[str]:
            return {b.contact for b in self.lookup(now)}

        self.assertEqual(contacts(5.0), {short.contact, long.contact})
        self.assertEqual(contacts(10.0), {long.contact})
        self.assertEqual(contacts(5.0), {short.contact, long.contact})
        self.assertEqual(contacts(9.0), {short.contact, long.contact})
        self.assertEqual(contacts(20.0), set())

    def test_bounded(self) -> None:
        """At most C{lookup_cache_size} AORs are remembered."""
        self.store.lookup_cache_size = 3
        for n in range(10):
            self.successResultOf(self.store.lookup(f"sip:u{n}@example.com", 0.0))
            self.assertLessEqual(len(self.store._looked_up), 3)
