# -*- test-case-name: sipedge.test.test_security_accounts -*-
"""
Tests for the per-account password-guessing guard (L{AccountGuard}) and its
place in L{Security}. The C{digest-auth} stage's use of it is tested in
L{sipedge.test.test_stage_digest_auth}.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import ConfigError
from sipedge.security import (
    ACCOUNT_STAT_KEYS,
    AccountCheck,
    AccountGuard,
    AccountState,
    Security,
    SecurityConfig,
    parse_security_config,
)
from sipedge.testing import capture_log

USER = "alice"
HOME = "198.51.100.7"
TRUSTED = "10.0.0.5"


def bot(n: int) -> str:
    """The address of the C{n}th guessing source."""
    return f"203.0.113.{n}"


def may_check(guard: AccountGuard, source: str, now: float) -> bool:
    """Whether C{guard} lets a check of C{USER} from C{source} happen at C{now} (a right one)."""
    check = guard.begin_check(USER, source, now)
    if check is None:
        return False
    guard.end_check(check)
    return True


class AccountGuardTests(SynchronousTestCase):
    """L{AccountGuard}: a sliding-window failure budget per account, on a clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.stats: dict[str, int] = {}
        self.guard = AccountGuard(failures=3, window=60.0, stats=self.stats)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def now(self) -> float:
        return self.clock.seconds()

    def fail_from(self, *sources: str) -> list[bool]:
        return [self.guard.note_failure(USER, s, self.now()) for s in sources]

    def may_check(self, source: str) -> bool:
        """Whether a check from C{source} may happen now (a right password if so)."""
        return may_check(self.guard, source, self.now())

    def test_under_budget(self) -> None:
        """Under its budget, an account's credentials are checked from anywhere."""
        self.fail_from(bot(1), bot(2))
        self.assertFalse(self.guard.is_locked(USER, self.now()))
        self.assertTrue(self.may_check(bot(3)))
        self.assertEqual(self.stats["account_refused"], 0)

    def test_budget_across_sources(self) -> None:
        """
        Failures from different sources add up; the one that reaches the
        budget reports the lock, once.
        """
        self.assertEqual(self.fail_from(bot(1), bot(2), bot(3)), [False, False, True])
        self.assertTrue(self.guard.is_locked(USER, self.now()))
        self.assertFalse(self.may_check(bot(4)))
        self.assertEqual(self.fail_from(HOME), [False])  # still locked: not a new lock
        self.assertEqual((self.stats["account_failures"], self.stats["account_locks"]), (4, 1))

    def test_known_source_checked(self) -> None:
        """A source the account authenticated from before is still checked when locked."""
        self.guard.note_success(USER, HOME, self.now())
        self.clock.advance(3600)
        self.fail_from(bot(1), bot(2), bot(3))
        self.assertTrue(self.may_check(HOME))
        self.assertFalse(self.may_check(bot(1)))
        self.assertEqual(self.stats["account_refused"], 1)

    def test_trusted_checked(self) -> None:
        """A trusted source is checked even when locked and unknown."""
        self.fail_from(bot(1), bot(2), bot(3))
        self.assertEqual(
            self.guard.begin_check(USER, TRUSTED, self.now(), trusted=True),
            AccountCheck(USER, TRUSTED),
        )

    def test_other_account_unaffected(self) -> None:
        """The lock is the account's: other users are checked as before."""
        self.fail_from(bot(1), bot(2), bot(3))
        self.assertIsNotNone(self.guard.begin_check("bob", bot(1), self.now()))

    def test_window_slides(self) -> None:
        """
        The lock lifts when the oldest counted failure leaves the window; one
        failure then locks it again while the later ones are still in it.
        """
        self.fail_from(bot(1))
        self.clock.advance(30)
        self.fail_from(bot(2), bot(3))
        self.clock.advance(29.9)
        self.assertTrue(self.guard.is_locked(USER, self.now()))
        self.clock.advance(0.2)
        self.assertFalse(self.guard.is_locked(USER, self.now()))
        check = self.guard.begin_check(USER, bot(4), self.now())
        assert check is not None
        self.assertEqual(self.guard.note_failure(USER, bot(4), self.now(), check), True)
        self.clock.advance(30)
        self.assertFalse(self.guard.is_locked(USER, self.now()))

    def test_refusals_do_not_extend(self) -> None:
        """Refused attempts check nothing, so they do not keep the account locked."""
        self.fail_from(bot(1), bot(2), bot(3))
        for n in range(10, 40):
            self.clock.advance(1)
            self.assertFalse(self.may_check(bot(n)))
        self.clock.advance(30.1)
        self.assertTrue(self.may_check(bot(99)))

    def test_known_sources_forgotten(self) -> None:
        """
        A known source is forgotten after C{memory} seconds, and the oldest
        once there are more than C{known_sources}.
        """
        guard = AccountGuard(failures=1, window=60, memory=100, known_sources=2)
        guard.note_success(USER, "192.0.2.1", 0)
        guard.note_success(USER, "192.0.2.2", 50)
        guard.note_success(USER, "192.0.2.3", 60)
        self.assertFalse(guard.is_known(USER, "192.0.2.1", 60))
        self.assertTrue(guard.is_known(USER, "192.0.2.2", 149))
        self.assertFalse(guard.is_known(USER, "192.0.2.2", 150))
        self.assertTrue(guard.is_known(USER, "192.0.2.3", 150))

    def test_canonical_source(self) -> None:
        """An IPv6 source is known however it is written."""
        self.guard.note_success(USER, "2001:db8::1", self.now())
        self.assertTrue(self.guard.is_known(USER, "2001:DB8:0::1", self.now()))

    def test_state(self) -> None:
        """L{AccountGuard.state} and C{locked_accounts} show what the monitor may report."""
        self.guard.note_success(USER, HOME, self.now())
        self.fail_from(bot(1), bot(2), bot(3))
        state = self.guard.state(USER, self.now())
        self.assertEqual(
            state,
            AccountState(
                user=USER, failures=3, locked=True, until=self.now() + 60, known_sources=(HOME,)
            ),
        )
        self.assertEqual(self.guard.locked_accounts(self.now()), [state])
        self.assertIsNone(self.guard.state("nobody", self.now()))

    def test_bounded(self) -> None:
        """At most C{max_accounts} accounts are kept, the least recently used evicted."""
        guard = AccountGuard(failures=2, window=60, max_accounts=2, stats=self.stats)
        guard.note_failure("a", bot(1), 0)
        guard.note_failure("b", bot(1), 0)
        guard.note_failure("a", bot(1), 1)
        guard.note_failure("c", bot(1), 2)
        self.assertEqual(len(guard), 2)
        self.assertTrue(guard.is_locked("a", 2))
        self.assertIsNone(guard.state("b", 2))
        self.assertEqual(self.stats["account_evicted"], 1)

    def test_purge(self) -> None:
        """Purging forgets accounts with no recent failure and no known source."""
        self.fail_from(bot(1))
        self.guard.note_success("bob", HOME, self.now())
        self.clock.advance(61)
        self.assertEqual(self.guard.purge(self.now()), 1)
        self.assertIsNone(self.guard.state(USER, self.now()))
        self.assertIsNotNone(self.guard.state("bob", self.now()))

    def test_lock_logged(self) -> None:
        """The lock is one warning naming the user and the last source."""
        events = capture_log(self)
        self.fail_from(bot(1), bot(2), bot(3), bot(4))
        locks = [e for e in events if e.get("rule") == "account-guard"]
        self.assertEqual(len(locks), 1)
        self.assertEqual(
            (locks[0]["user"], locks[0]["source"], locks[0]["log_level"]),
            (USER, bot(3), LogLevel.warn),
        )

    def test_bad_arguments(self) -> None:
        """A budget, window or bound below one is refused."""
        for kwargs in ({"failures": 0}, {"window": 0}, {"max_accounts": 0}, {"memory": -1}):
            self.assertRaises(ValueError, AccountGuard, **kwargs)

    @given(st.lists(st.tuples(st.floats(0, 30), st.integers(0, 9), st.booleans()), max_size=60))
    def test_at_most_budget_per_window(self, steps: list[tuple[float, int, bool]]) -> None:
        """
        Whatever the attack's timing, no window of C{window} seconds holds
        more than C{failures} checked failures from sources never known.
        """
        guard = AccountGuard(failures=3, window=60)
        now = 0.0
        checked: list[float] = []
        for delay, source, succeed in steps:
            now += delay
            if succeed and source == 0:
                guard.note_success(USER, HOME, now)
            else:
                check = guard.begin_check(USER, bot(source), now)
                if check is not None:
                    guard.note_failure(USER, bot(source), now, check)
                    checked.append(now)
        for i, start in enumerate(checked):
            inside = [t for t in checked[i:] if t < start + 60]
            self.assertLessEqual(len(inside), 3, checked)

    @given(
        st.lists(
            st.tuples(st.sampled_from(["begin", "wrong", "right"]), st.integers(0, 20),
                      st.floats(0, 20)),
            max_size=80,
        )
    )
    def test_concurrent_checks(self, steps: list[tuple[str, int, float]]) -> None:
        """
        With checks under way at once (begun, not yet ended: an asynchronous
        credential store, or several workers), still no window holds more
        than C{failures} wrong guesses checked from sources never known, and
        a right password costs the budget nothing: the place each check
        takes in the budget is taken when it begins, in the same step that
        finds room for it.
        """
        guard = AccountGuard(failures=3, window=60)
        now = 0.0
        open_checks: list[tuple[float, AccountCheck]] = []
        wrong: list[float] = []
        for action, n, delay in steps:
            now += delay
            if action == "begin":
                check = guard.begin_check(USER, bot(n), now)
                if check is not None:
                    self.assertIsNotNone(check.pending)
                    open_checks.append((now, check))
            elif open_checks:
                began, check = open_checks.pop(n % len(open_checks))
                if action == "wrong":
                    guard.note_failure(USER, check.source, now, check)
                    wrong.append(began)
                else:
                    guard.end_check(check)
        for began, check in open_checks:  # the rest turn out wrong, at the end
            guard.note_failure(USER, check.source, now, check)
            wrong.append(began)
        wrong.sort()
        for i, start in enumerate(wrong):
            inside = [t for t in wrong[i:] if t < start + 60]
            self.assertLessEqual(len(inside), 3, wrong)

    def test_same_instant(self) -> None:
        """
        Two guesses checked at the same instant cannot both take the last
        place in the budget: the second is refused while the first is
        under way, and checked once the first turns out right.
        """
        self.fail_from(bot(1), bot(2))
        first = self.guard.begin_check(USER, bot(3), self.now())
        self.assertIsNotNone(first)
        self.assertIsNone(self.guard.begin_check(USER, bot(4), self.now()))
        self.assertTrue(self.guard.is_locked(USER, self.now()))
        assert first is not None
        self.guard.end_check(first)
        self.assertFalse(self.guard.is_locked(USER, self.now()))
        second = self.guard.begin_check(USER, bot(4), self.now())
        assert second is not None
        self.assertTrue(self.guard.note_failure(USER, bot(4), self.now(), second))
        self.assertEqual(
            self.guard.state(USER, self.now()),
            AccountState(user=USER, failures=3, locked=True, until=self.now() + 60,
                         known_sources=()),
        )

    def test_lock_reported_when_confirmed(self) -> None:
        """
        Checks under way count against the budget but do not report a lock:
        the failure that confirms the budget-th one does, once.
        """
        events = capture_log(self)
        checks = [self.guard.begin_check(USER, bot(n), self.now()) for n in range(3)]
        self.assertIsNone(self.guard.begin_check(USER, bot(9), self.now()))
        results = []
        for n, check in enumerate(checks):
            assert check is not None
            results.append(self.guard.note_failure(USER, bot(n), self.now(), check))
        self.assertEqual(results, [False, False, True])
        self.assertEqual(len([e for e in events if e.get("rule") == "account-guard"]), 1)
        self.assertEqual(self.stats["account_failures"], 3)

    def test_known_and_trusted_take_no_place(self) -> None:
        """
        A check from a known or trusted source is not counted in advance
        (no write): those sources are checked even when the account is over
        its budget. A failure from them still counts.
        """
        self.guard.note_success(USER, HOME, self.now())
        self.assertEqual(self.guard.begin_check(USER, HOME, self.now()), AccountCheck(USER, HOME))
        check = self.guard.begin_check(USER, TRUSTED, self.now(), trusted=True)
        assert check is not None
        self.guard.note_failure(USER, TRUSTED, self.now(), check)
        self.assertEqual(self.guard.state(USER, self.now()).failures, 1)  # type: ignore[union-attr]

    def test_unfinished_check_ages_out(self) -> None:
        """A check that never ends counts as a failure until it leaves the window."""
        for n in range(3):
            self.assertIsNotNone(self.guard.begin_check(USER, bot(n), self.now()))
        self.assertFalse(self.may_check(bot(5)))
        self.clock.advance(60)
        self.assertTrue(self.may_check(bot(5)))
        self.assertEqual(self.guard.purge(self.now()), 0)  # never an account: nothing to forget


class SecurityAccountsTests(SynchronousTestCase):
    """L{Security} holds the guard, configured from C{[security]}."""

    def test_config(self) -> None:
        """The C{account_*} keys configure the guard; their defaults are 10 in 600 s."""
        clock = Clock()
        security = Security(clock=clock, trusted=["10.0.0.0/8"])
        self.addCleanup(security.close)
        guard = security.accounts
        self.assertEqual((guard.budget, guard.window), (10, 600.0))
        config = parse_security_config(
            {
                "account_failures": 3,
                "account_window": 30,
                "account_known_sources": 2,
                "account_memory": 3600,
                "max_account_keys": 50,
            }
        )
        other = Security(config, clock=clock)
        self.addCleanup(other.close)
        self.assertEqual(
            (
                other.accounts.budget,
                other.accounts.window,
                other.accounts.known_sources,
                other.accounts.memory,
                other.accounts.max_accounts,
            ),
            (3, 30.0, 2, 3600.0, 50),
        )
        for key in ACCOUNT_STAT_KEYS:
            self.assertEqual(security.stats[key], 0)

    def test_bad_config(self) -> None:
        """A bad value names its key."""
        with self.assertRaises(ConfigError) as caught:
            parse_security_config({"account_failures": 0}, "x.toml")
        self.assertIn("security.account_failures", str(caught.exception))

    def test_on_clock_and_trusted(self) -> None:
        """L{Security} asks its guard at its clock's time, with C{sip.trusted}."""
        clock = Clock()
        security = Security(SecurityConfig(account_failures=2), clock=clock, trusted=["10.0.0.0/8"])
        self.addCleanup(security.close)
        security.password_ok(USER, HOME)
        security.password_failed(USER, bot(1))
        security.password_failed(USER, bot(2))
        self.assertFalse(security.may_check_password(USER, bot(3)))
        self.assertTrue(security.may_check_password(USER, HOME))
        self.assertTrue(security.may_check_password(USER, TRUSTED))
        clock.advance(600)
        self.assertTrue(security.may_check_password(USER, bot(3)))
        security.purge()
        self.assertEqual(clock.getDelayedCalls(), [])


class SharedAccountGuardTests(SynchronousTestCase):
    """
    L{AccountGuard} on a file: every process that opens it (each worker of
    one proxy) counts against one budget per account, and a restart
    forgets nothing.
    """

    def setUp(self) -> None:
        self.path = os.path.join(os.path.abspath(self.mktemp()), "accounts.sqlite3")
        os.makedirs(os.path.dirname(self.path))
        self.one = self.open()
        self.two = self.open()

    def open(self, **kwargs: Any) -> AccountGuard:
        guard = AccountGuard(self.path, failures=3, window=60.0, **kwargs)
        self.addCleanup(guard.close)
        return guard

    def test_budget_shared(self) -> None:
        """
        Failures noted by two guards on one file add up: the one that
        reaches the budget locks the account for both, and only that one
        reports (and logs) the lock.
        """
        events = capture_log(self)
        self.assertEqual(self.one.note_failure(USER, bot(1), 1000), False)
        self.assertEqual(self.two.note_failure(USER, bot(2), 1001), False)
        self.assertEqual(self.one.note_failure(USER, bot(3), 1002), True)
        self.assertFalse(may_check(self.two, bot(4), 1003))
        self.assertTrue(self.two.is_locked(USER, 1003))
        self.assertEqual(self.two.note_failure(USER, bot(5), 1003), False)
        locks = [e for e in events if e.get("rule") == "account-guard"]
        self.assertEqual([e["source"] for e in locks], [bot(3)])
        self.assertEqual((self.one.stats["account_locks"], self.two.stats["account_locks"]),
                         (1, 0))
        self.assertEqual(self.two.stats["account_refused"], 1)
        self.assertTrue(may_check(self.one, bot(4), 1061.5))

    def test_same_instant_across_workers(self) -> None:
        """
        Two workers checking guesses for one account at the same instant:
        the budget's last place goes to one of them, the other refuses
        unchecked (the check and the count are one write transaction).
        """
        self.one.note_failure(USER, bot(1), 1000)
        self.two.note_failure(USER, bot(2), 1000)
        first = self.one.begin_check(USER, bot(3), 1001)
        self.assertIsNotNone(first)
        self.assertIsNone(self.two.begin_check(USER, bot(4), 1001))
        self.assertEqual(self.two.stats["account_refused"], 1)
        assert first is not None
        self.two.end_check(first)  # any process may end it: the token is in the file
        self.assertTrue(may_check(self.two, bot(4), 1001))

    def test_schema_migrated(self) -> None:
        """
        A file of schema version 1 (before checks were counted in advance)
        is migrated on open and keeps its failures and known sources.
        """
        import sqlite3

        path = os.path.join(os.path.dirname(self.path), "old.sqlite3")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        for statement in (
            "CREATE TABLE accounts (user TEXT PRIMARY KEY, used REAL NOT NULL)",
            "CREATE INDEX accounts_by_use ON accounts (used)",
            "CREATE TABLE failures (user TEXT NOT NULL, at REAL NOT NULL, source TEXT NOT NULL)",
            "CREATE INDEX failures_by_user ON failures (user, at)",
            "CREATE TABLE known (user TEXT NOT NULL, source TEXT NOT NULL,"
            " seen REAL NOT NULL, PRIMARY KEY (user, source))",
        ):
            db.execute(statement)
        db.execute("INSERT INTO accounts VALUES (?, 1000)", (USER,))
        db.executemany(
            "INSERT INTO failures VALUES (?, 1000, ?)", [(USER, bot(n)) for n in range(3)]
        )
        db.execute("INSERT INTO known VALUES (?, ?, 1000)", (USER, HOME))
        db.close()
        guard = AccountGuard(path, failures=3, window=60.0)
        self.addCleanup(guard.close)
        self.assertFalse(may_check(guard, bot(9), 1010))
        self.assertTrue(may_check(guard, HOME, 1010))
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchone(), (2,))

    def test_known_shared(self) -> None:
        """A source the account authenticated from through one guard is known to the other."""
        self.one.note_success(USER, HOME, 1000)
        for n in range(3):
            self.two.note_failure(USER, bot(n), 1010)
        self.assertTrue(may_check(self.two, HOME, 1011))
        self.assertEqual(self.two.state(USER, 1011),
                         AccountState(user=USER, failures=3, locked=True, until=1070,
                                      known_sources=(HOME,)))
        self.assertEqual([s.user for s in self.one.locked_accounts(1011)], [USER])

    def test_restart(self) -> None:
        """A guard opened again on the file has the failures and the known sources."""
        self.one.note_success(USER, HOME, 1000)
        for n in range(3):
            self.one.note_failure(USER, bot(n), 1010)
        self.one.close()
        again = self.open()
        self.assertFalse(may_check(again, bot(9), 1020))
        self.assertTrue(may_check(again, HOME, 1020))
        self.assertEqual(len(again), 1)

    def test_success_written_sparingly(self) -> None:
        """
        Repeated successes from one source are written at most every
        C{memory / 100} seconds (here 10), so a user's every call is not a
        write; a new source always is.
        """
        guard, reader = self.open(memory=1000), self.open(memory=1000)
        guard.note_success(USER, HOME, 0)
        guard.note_success(USER, HOME, 5)  # not written: the file says 0
        self.assertFalse(reader.is_known(USER, HOME, 1002))
        guard.note_success(USER, HOME, 20)
        self.assertTrue(reader.is_known(USER, HOME, 1002))
        guard.note_success(USER, bot(1), 21)
        self.assertTrue(reader.is_known(USER, bot(1), 22))

    def test_store_error(self) -> None:
        """
        A database that fails is logged and counted, and the credentials
        are checked (the per-source defences still apply): never a crash.
        """
        events = capture_log(self)
        for n in range(3):
            self.one.note_failure(USER, bot(n), 1000)
        self.one.close()
        self.assertTrue(may_check(self.one, bot(9), 1001))
        self.assertFalse(self.one.note_failure(USER, bot(9), 1001))
        self.one.note_success(USER, HOME, 1001)
        self.assertIsNone(self.one.state(USER, 1001))
        self.assertEqual(self.one.purge(1001), 0)
        self.assertEqual(self.one.stats["account_store_errors"], 5)
        errors = [e for e in events if e.get("rule") == "account-guard"
                  and e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 5)
        self.assertIn(self.path, errors[0]["path"])

    def test_security_password_right(self) -> None:
        """
        L{Security.password_right} takes back the failure its check was
        counted as; L{Security.password_failed} with the check confirms it.
        """
        clock = Clock()
        clock.advance(1000)
        security = Security(SecurityConfig(account_failures=1), clock=clock)
        self.addCleanup(security.close)
        check = security.may_check_password(USER, bot(1))
        assert check is not None
        self.assertIsNone(security.may_check_password(USER, bot(2)))
        security.password_right(check)
        check = security.may_check_password(USER, bot(2))
        assert check is not None
        security.password_failed(USER, bot(2), check)
        self.assertEqual(security.stats["account_locks"], 1)
        self.assertIsNone(security.may_check_password(USER, bot(3)))

    def test_security_state_directory(self) -> None:
        """
        Two L{Security} services on one state directory (two workers) share
        the guard: failures through one lock the account in the other.
        """
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        clock = Clock()
        clock.advance(1000)
        config = SecurityConfig(account_failures=2)
        workers = [Security(config, clock=clock, state_dir=state) for _ in range(2)]
        for worker in workers:
            self.addCleanup(worker.close)
        workers[0].password_ok(USER, HOME)
        workers[0].password_failed(USER, bot(1))
        workers[1].password_failed(USER, bot(2))
        self.assertFalse(workers[0].may_check_password(USER, bot(3)))
        self.assertTrue(workers[1].may_check_password(USER, HOME))
        self.assertTrue(os.path.exists(os.path.join(state, "accounts.sqlite3")))
