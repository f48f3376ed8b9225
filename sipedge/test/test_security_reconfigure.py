# -*- test-case-name: sipedge.test.test_security_reconfigure -*-
"""
Tests for L{sipedge.security.prepare_security},
L{sipedge.security.reread_bans} and L{sipedge.security.LIVE_KEYS}: new
settings for the running security services, their state kept.
"""

from __future__ import annotations

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.security import (
    LIVE_KEYS,
    Bans,
    Monitor,
    MonitorConfig,
    Security,
    SecurityConfig,
    SecurityUpdate,
    TollFraudConfig,
    TollFraudGuard,
    prepare_security,
    reread_bans,
)

SOURCE = "203.0.113.9"


class PrepareTests(SynchronousTestCase):
    """L{prepare_security} then L{SecurityUpdate.apply}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.security = Security(SecurityConfig(), clock=self.clock)
        self.addCleanup(self.security.close)
        self.monitor = Monitor(MonitorConfig(), clock=self.clock, security=self.security)
        self.guard = TollFraudGuard(TollFraudConfig(), clock=self.clock)

    def prepare(self, config: SecurityConfig) -> SecurityUpdate:
        return prepare_security(self.security, self.monitor, self.guard, config)

    def test_prepared_changes_nothing(self) -> None:
        """Until applied, the services run on their settings."""
        update = self.prepare(SecurityConfig(unauthenticated_burst=20.0, flood_threshold=9))
        self.assertEqual(update.changed, ("unauthenticated_burst", "flood_threshold"))
        self.assertEqual(self.security.limiter.budgets["unauthenticated"].burst, 10.0)
        bans = self.security.bans
        assert isinstance(bans, Bans)
        self.assertEqual(bans.thresholds["flood"], 3)

    def test_global_budget(self) -> None:
        """
        The global budget of unauthenticated work changes in place (its
        tokens kept), turns off with 0 and on again.
        """
        screener = self.security.screener
        bucket = screener.bucket
        assert bucket is not None
        bucket.take(0.0)
        self.prepare(SecurityConfig(unauthenticated_global_rate=50.0)).apply()
        self.assertIs(screener.bucket, bucket)
        self.assertEqual((bucket.budget.rate, bucket.tokens(0.0)), (50.0, 999.0))
        self.prepare(SecurityConfig(unauthenticated_global_rate=0.0)).apply()
        self.assertIsNone(screener.bucket)
        self.prepare(SecurityConfig(unauthenticated_global_burst=30.0)).apply()
        assert screener.bucket is not None
        self.assertEqual(screener.bucket.tokens(0.0), 30.0)

    def test_overload_and_kernel_need_restart(self) -> None:
        """The overload watch and kernel bans are set up at start: a restart changes them."""
        for config in (SecurityConfig(overload_lag=0.5), SecurityConfig(kernel_bans=True)):
            with self.assertRaises(ValueError):
                self.prepare(config)

    def test_budgets_and_bans(self) -> None:
        """
        The limiter and the ban list take the new budget and thresholds in
        place: a source's bucket and a ban in force are kept.
        """
        limiter, bans = self.security.limiter, self.security.bans
        assert isinstance(bans, Bans)
        for _ in range(10):
            limiter.take(SOURCE, "other", "unauthenticated", 0.0)
        self.security.ban("198.51.100.7", "test")
        config = SecurityConfig(unauthenticated_burst=20.0, flood_threshold=9, ban_base=30.0)
        self.prepare(config).apply()
        self.assertIs(self.security.config, config)
        self.assertIs(self.security.limiter, limiter)
        self.assertIs(self.security.bans, bans)
        self.assertEqual(limiter.tokens(SOURCE, "other", "unauthenticated", 0.0), 0.0)
        self.assertEqual(limiter.tokens(SOURCE, "other", "unauthenticated", 100.0), 20.0)
        self.assertEqual(bans.thresholds["flood"], 9)
        self.assertEqual(bans.base, 30.0)
        self.assertTrue(self.security.is_banned("198.51.100.7"))

    def test_scanners(self) -> None:
        """New scanner User-Agents are matched from then on."""
        self.prepare(SecurityConfig(scanner_user_agents=("probe-x",))).apply()
        self.assertTrue(self.security.scanners.match("Probe-X 1.0"))
        self.assertFalse(self.security.scanners.match("friendly-scanner"))

    def test_monitor(self) -> None:
        """The monitor's thresholds and restricted budget change; its restrictions stay."""
        self.monitor.restrict(SOURCE)
        monitor_config = MonitorConfig(request_rate=10, request_rate_action="rate-limit",
                                       restricted_rate=2.0)
        self.prepare(SecurityConfig(monitor=monitor_config)).apply()
        self.assertIs(self.monitor.config, monitor_config)
        self.assertEqual(self.monitor._rules["request-rate"], (10, "rate-limit"))
        self.assertTrue(self.monitor.is_restricted(SOURCE))
        self.assertEqual(self.monitor.limiter.budgets["unauthenticated"].rate, 2.0)

    def test_toll_fraud(self) -> None:
        """A larger calls_per_minute lets a user's remembered calls grow to it."""
        recent = self.guard._recent_calls("alice", 0.0)
        recent.extend([0.0] * 20)
        self.prepare(SecurityConfig(toll_fraud=TollFraudConfig(calls_per_minute=30))).apply()
        self.assertEqual(self.guard.config.calls_per_minute, 30)
        self.assertEqual(self.guard._recent["alice"].maxlen, 30)
        self.assertEqual(len(self.guard._recent["alice"]), 20)

    def test_restart_key(self) -> None:
        """A key that cannot change in place (the monitor's window) is refused."""
        config = SecurityConfig(monitor=MonitorConfig(window=120.0))
        self.assertRaises(ValueError, self.prepare, config)

    def test_purge_interval(self) -> None:
        """
        A new purge interval restarts the running purge with it, and
        nothing else (the overload watch keeps running).
        """
        self.security.start()
        self.addCleanup(self.security.stop)
        watch = self.security.watch
        assert watch is not None
        self.prepare(attrs.evolve(SecurityConfig(), purge_interval=2.0)).apply()
        self.assertEqual(
            sorted(call.getTime() for call in self.clock.getDelayedCalls()),
            [watch.interval, 2.0],
        )


class RereadTests(SynchronousTestCase):
    """L{reread_bans}."""

    def test_changed_by_another(self) -> None:
        """A ban written by another connection is read at once; unchanged: C{None}."""
        path = self.mktemp()
        clock = Clock()
        security = Security(SecurityConfig(), clock=clock, bans=Bans(path))
        self.addCleanup(security.close)
        self.assertIsNone(reread_bans(security))
        other = Bans(path)
        other.ban("198.51.100.7", "by hand", 0.0)
        other.close()
        self.assertFalse(security.is_banned("198.51.100.7"))
        self.assertEqual(reread_bans(security), 1)
        self.assertTrue(security.is_banned("198.51.100.7"))


class LiveKeysTests(SynchronousTestCase):
    """L{LIVE_KEYS}."""

    def test_keys_exist(self) -> None:
        """Every key it names is a key of C{[security]} or of its sub-tables."""
        sections = {"monitor": MonitorConfig, "toll_fraud": TollFraudConfig}
        for key in LIVE_KEYS:
            section, _, name = key.rpartition(".")
            fields = attrs.fields_dict(sections[section] if section else SecurityConfig)
            self.assertIn(name, fields, key)

    def test_structure_not_live(self) -> None:
        """What the monitor and the call trackers are built with is not in it."""
        for key in ("monitor.window", "monitor.slots", "monitor.max_calls",
                    "toll_fraud.max_calls", "toll_fraud.call_setup_timeout"):
            self.assertNotIn(key, LIVE_KEYS)
