# -*- test-case-name: sipedge.test.test_auth_offer -*-
"""
Tests for the algorithms a challenge offers (L{sipedge.auth.challenge_algorithms})
and the memory of what users proved (L{sipedge.auth.IAlgorithmMemory}):
no downgrade after a success.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.auth import (
    ALGORITHMS,
    IAlgorithmMemory,
    MemoryCredentialStore,
    RememberedAlgorithms,
    SQLiteCredentialStore,
    challenge_algorithms,
    floor_of,
    parse_auth_config,
    strength,
)
from sipedge.error import ConfigError

REALM = "example.com"
HASHES = ("MD5", "SHA-256", "SHA-512-256")


class ChallengeAlgorithmsTests(SynchronousTestCase):
    """Tests for L{challenge_algorithms}, L{floor_of} and L{strength}."""

    def test_strength(self) -> None:
        """MD5 < SHA-256 < SHA-512-256; a -sess variant ranks with its hash."""
        self.assertEqual([strength(a) for a in HASHES], [0, 1, 2])
        self.assertEqual(strength("sha-256-sess"), 1)

    def test_floor_of(self) -> None:
        """The strongest hash named, C{None}s ignored; MD5 if none."""
        self.assertEqual(floor_of(), "MD5")
        self.assertEqual(floor_of(None, "MD5"), "MD5")
        self.assertEqual(floor_of("SHA-512-256-sess", None, "SHA-256"), "SHA-512-256")

    def test_defaults(self) -> None:
        """
        With every algorithm configured: MD5 alone at floor MD5; SHA-256
        then SHA-512-256 at floor SHA-256; SHA-512-256 alone at its own.
        """
        configured = ("SHA-512-256", "SHA-256", "MD5")
        self.assertEqual(challenge_algorithms(configured, "MD5"), ("MD5",))
        self.assertEqual(challenge_algorithms(configured, "SHA-256"), ("SHA-256", "SHA-512-256"))
        self.assertEqual(challenge_algorithms(configured, "SHA-512-256"), ("SHA-512-256",))

    def test_sess(self) -> None:
        """A configured -sess variant follows its hash."""
        configured = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
        self.assertEqual(challenge_algorithms(configured, "MD5"), ("MD5", "MD5-sess"))
        self.assertEqual(challenge_algorithms(configured, "SHA-256"), ("SHA-256", "SHA-256-sess"))

    def test_floor_above_configured(self) -> None:
        """A floor above everything configured offers the strongest configured."""
        self.assertEqual(challenge_algorithms(("SHA-256", "MD5"), "SHA-512-256"), ("SHA-256",))

    def test_nothing_configured(self) -> None:
        """Nothing configured is a programming error."""
        self.assertRaises(ValueError, challenge_algorithms, (), "MD5")

    @given(
        st.sets(st.sampled_from(ALGORITHMS), min_size=1).map(sorted),
        st.sampled_from(HASHES),
    )
    def test_properties(self, configured: list[str], floor: str) -> None:
        """
        Whatever is configured and whatever the floor: something configured
        is offered, each once; MD5 never beside a stronger algorithm; nothing
        below the floor unless nothing configured reaches it; SHA-256 before
        SHA-512-256.
        """
        offered = challenge_algorithms(configured, floor)
        self.assertTrue(offered)
        self.assertEqual(len(set(offered)), len(offered))
        self.assertTrue(set(offered) <= set(configured))
        ranks = [strength(a) for a in offered]
        self.assertFalse(0 in ranks and max(ranks) > 0, offered)
        if any(strength(a) >= strength(floor) for a in configured):
            self.assertTrue(all(r >= strength(floor) for r in ranks), offered)
        else:
            self.assertEqual(set(ranks), {max(strength(a) for a in configured)})
        self.assertEqual(ranks, sorted(ranks))


class MemoryTests(SynchronousTestCase):
    """The three L{IAlgorithmMemory} providers remember the strongest algorithm."""

    def memories(self) -> list[Any]:
        store = SQLiteCredentialStore(":memory:")
        self.addCleanup(store.close)
        return [RememberedAlgorithms(), MemoryCredentialStore(), store]

    def test_interface(self) -> None:
        """Each provides L{IAlgorithmMemory}."""
        for memory in self.memories():
            verifyObject(IAlgorithmMemory, memory)

    @given(st.lists(st.tuples(st.sampled_from(("alice", "bob")), st.sampled_from(HASHES))))
    def test_never_lower(self, proofs: list[tuple[str, str]]) -> None:
        """
        After any sequence of successes, each user's strongest algorithm is
        the strongest they proved: a weaker success never lowers it.
        """
        for memory in self.memories():
            for user, algorithm in proofs:
                memory.record(user, REALM, algorithm)
            for user in ("alice", "bob"):
                mine = [a for u, a in proofs if u == user]
                expected = floor_of(*mine) if mine else None
                self.assertEqual(memory.strongest(user, REALM), expected)
                self.assertIsNone(memory.strongest(user, "other.realm"))

    def test_remove_forgets(self) -> None:
        """Removing a user from a store forgets what the user proved."""
        for store in self.memories()[1:]:
            store.add("alice", REALM, "secret")
            store.record("alice", REALM, "SHA-256")
            store.remove("alice", REALM)
            self.assertIsNone(store.strongest("alice", REALM))

    def test_sqlite_persists(self) -> None:
        """The SQLite store keeps the memory across a restart."""
        state = self.mktemp()
        store = SQLiteCredentialStore.in_state_directory(state)
        store.record("alice", REALM, "SHA-256")
        store.close()
        reopened = SQLiteCredentialStore.in_state_directory(state)
        self.addCleanup(reopened.close)
        self.assertEqual(reopened.strongest("alice", REALM), "SHA-256")

    def test_sqlite_no_write_for_nothing_new(self) -> None:
        """
        A success with an algorithm no stronger than the one the user
        proved before is not written (no write transaction); a stronger
        one is, and another process sees it.
        """
        path = self.mktemp()
        store, other = SQLiteCredentialStore(path), SQLiteCredentialStore(path)
        self.addCleanup(store.close)
        self.addCleanup(other.close)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        store.record("alice", REALM, "MD5")
        self.assertIn("BEGIN IMMEDIATE", statements)
        del statements[:]
        store.record("alice", REALM, "MD5")
        self.assertNotIn("BEGIN IMMEDIATE", statements)
        other.record("alice", REALM, "SHA-256")
        store.record("alice", REALM, "MD5")
        self.assertNotIn("BEGIN IMMEDIATE", statements)
        self.assertEqual(store.strongest("alice", REALM), "SHA-256")
        store.record("alice", REALM, "SHA-512-256")
        self.assertIn("BEGIN IMMEDIATE", statements)
        self.assertEqual(other.strongest("alice", REALM), "SHA-512-256")

    def test_sqlite_remembered_while_unchanged(self) -> None:
        """
        What a user proved is read from the file once while nothing commits
        to it; a commit by another store on the file (another worker, or
        C{sipedge user}) is seen by the next question.
        """
        path = os.path.abspath(self.mktemp())
        store, other = SQLiteCredentialStore(path), SQLiteCredentialStore(path)
        self.addCleanup(store.close)
        self.addCleanup(other.close)
        other.add("alice", REALM, "secret")
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        self.assertIsNone(store.strongest("alice", REALM))
        self.assertIsNone(store.strongest("alice", REALM))
        self.assertIsNone(store.strongest("mallory", REALM))
        self.assertIsNone(store.strongest("mallory", REALM))
        self.assertEqual(len([s for s in statements if "proven_algorithms" in s]), 2)
        other.record("alice", REALM, "SHA-256")
        self.assertEqual(store.strongest("alice", REALM), "SHA-256")
        other.remove("alice", REALM)
        self.assertIsNone(store.strongest("alice", REALM))

    @given(st.lists(st.tuples(st.booleans(), st.sampled_from(("alice", "bob")),
                              st.sampled_from((*HASHES, "forget"))), max_size=20))
    def test_sqlite_never_stale(self, steps: list[tuple[bool, str, str]]) -> None:
        """
        Two stores on one file, each recording (or forgetting) in turn:
        each always answers what the file holds.
        """
        path = os.path.join(tempfile.mkdtemp(), "c.sqlite3")
        stores = (SQLiteCredentialStore(path), SQLiteCredentialStore(path))
        try:
            truth: dict[str, str | None] = {}
            for which, user, algorithm in steps:
                store = stores[which]
                if algorithm == "forget":
                    store.remove(user, REALM)
                    truth[user] = None
                else:
                    store.record(user, REALM, algorithm)
                    known = truth.get(user)
                    truth[user] = floor_of(known, algorithm) if known else algorithm
                for reader in stores:
                    for name in ("alice", "bob"):
                        self.assertEqual(reader.strongest(name, REALM), truth.get(name))
        finally:
            for store in stores:
                store.close()
            shutil.rmtree(os.path.dirname(path))

    def test_sqlite_migrates(self) -> None:
        """A schema 1 file (before the memory) is migrated and keeps its users."""
        path = self.mktemp()
        store = SQLiteCredentialStore(path)
        store.add("alice", REALM, "secret")
        store.close()
        db = sqlite3.connect(path)
        db.execute("DROP TABLE proven_algorithms")
        db.execute("UPDATE schema_version SET version = 1")
        db.commit()
        db.close()
        migrated = SQLiteCredentialStore(path)
        self.addCleanup(migrated.close)
        self.assertEqual(migrated.schema_version, 2)
        self.assertIn("MD5", migrated.lookup("alice", REALM))
        self.assertIsNone(migrated.strongest("alice", REALM))
        migrated.record("alice", REALM, "SHA-256")
        self.assertEqual(migrated.strongest("alice", REALM), "SHA-256")


class ConfigTests(SynchronousTestCase):
    """C{[auth] minimum_algorithm}."""

    def test_default(self) -> None:
        """MD5 by default: every measured client can register."""
        self.assertEqual(parse_auth_config({}).minimum_algorithm, "MD5")

    def test_canonical(self) -> None:
        """Names are case-insensitive and come out canonical."""
        self.assertEqual(
            parse_auth_config({"minimum_algorithm": "sha-512-256"}).minimum_algorithm,
            "SHA-512-256",
        )

    def test_errors(self) -> None:
        """A -sess name, an unknown name, a non-string, or a minimum above
        every configured algorithm are errors naming the key."""
        for bad in (
            {"minimum_algorithm": "MD5-sess"},
            {"minimum_algorithm": "SHA-1"},
            {"minimum_algorithm": 256},
            {"minimum_algorithm": "SHA-256", "algorithms": ["MD5"]},
        ):
            error = self.assertRaises(ConfigError, parse_auth_config, bad)
            self.assertIn("auth.minimum_algorithm:", str(error))
