# -*- test-case-name: sipedge.test.test_security_reconfigure -*-
"""
A new C{[security]} section for the running security services
(L{Security}, L{Monitor}, L{TollFraudGuard}), applied in place so that
what they hold survives: token buckets, bans and offence counts, the
allow-list, account failures, monitor scores and restrictions, tracked
calls. Only the settings change.

Two steps, so a reload is all or nothing: L{prepare_security} builds what
can fail (a scanner pattern that does not compile) and touches nothing;
L{SecurityUpdate.apply} then only assigns. L{LIVE_KEYS} lists the keys
applied so; any other (the monitor's window and slots, call trackers' sizes
and timeouts, and any key added later that nobody wired here) needs a
restart, and the caller keeps its running value (see
C{sipedge._reload_keys}).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from sipedge.security._bans import Bans
from sipedge.security._bucket import TIERS, Budget, SharedBucket
from sipedge.security._config import (
    MONITOR_RULES,
    MonitorConfig,
    SecurityConfig,
    TollFraudConfig,
)
from sipedge.security._useragent import UserAgentMatcher

__all__ = ["LIVE_KEYS", "SecurityUpdate", "prepare_security", "reread_bans"]

#: Keys of C{[security]} (dotted below it) that L{prepare_security} applies
#: in place; the others need a restart.
LIVE_KEYS = frozenset({
    "unauthenticated_rate",
    "unauthenticated_burst",
    "authenticated_rate",
    "authenticated_burst",
    "trusted_rate",
    "trusted_burst",
    "max_rate_keys",
    "flood_offence_interval",
    "max_authenticated_sources",
    "unauthenticated_global_rate",
    "unauthenticated_global_burst",
    "ban_base",
    "ban_max",
    "ban_memory",
    "offence_window",
    "flood_threshold",
    "scanner_threshold",
    "auth_failure_threshold",
    "monitor_threshold",
    "filter_threshold",
    "max_offence_keys",
    "purge_interval",
    "account_failures",
    "account_window",
    "account_known_sources",
    "account_memory",
    "max_account_keys",
    "scanner_user_agents",
    "scanner_user_agent_patterns",
    "monitor.min_samples",
    "monitor.max_sources",
    "monitor.max_users",
    "monitor.restrict_duration",
    "monitor.restricted_rate",
    "monitor.restricted_burst",
    "monitor.premium_prefixes",
    *(f"monitor.{key}{suffix}" for key in MONITOR_RULES.values() for suffix in ("", "_action")),
    "toll_fraud.max_concurrent_calls",
    "toll_fraud.calls_per_minute",
    "toll_fraud.deny_prefixes",
    "toll_fraud.allow_prefixes",
    "toll_fraud.trusted_prefix_checks",
    "toll_fraud.max_users",
})

_log = Logger()


@attrs.frozen
class SecurityUpdate:
    """
    A prepared change of the security settings.

    @ivar changed: the keys below C{[security]} that change (dotted, such
        as C{flood_threshold} or C{monitor.request_rate}).
    """

    changed: tuple[str, ...]
    _steps: tuple[Callable[[], None], ...]

    def apply(self) -> None:
        """Assign the new settings; nothing here can fail."""
        for step in self._steps:
            step()


def _changed_fields(old: Any, new: Any, prefix: str = "") -> list[str]:
    return [
        f"{prefix}{field.name}"
        for field in attrs.fields(type(old))
        if getattr(old, field.name) != getattr(new, field.name)
        and not attrs.has(type(getattr(old, field.name)))
    ]


def prepare_security(
    security: Any, monitor: Any, toll_fraud: Any, config: SecurityConfig
) -> SecurityUpdate:
    """
    What applying C{config} to the running services takes.

    @param security: the L{Security} (its C{config} is the running section).
    @param monitor: the L{Monitor} of C{[security.monitor]}, or C{None}.
    @param toll_fraud: the L{TollFraudGuard}, or C{None}.
    @param config: the new section, which may differ from the running one
        in L{LIVE_KEYS} only (the caller keeps the others).
    @raise ValueError: if a key not in L{LIVE_KEYS} differs.
    """
    old: SecurityConfig = security.config
    changed = _changed_fields(old, config)
    changed += _changed_fields(old.monitor, config.monitor, "monitor.")
    changed += _changed_fields(old.toll_fraud, config.toll_fraud, "toll_fraud.")
    fixed = sorted(set(changed) - LIVE_KEYS)
    if fixed:
        raise ValueError(f"cannot change in place: {', '.join(fixed)}")
    steps: list[Callable[[], None]] = []
    if any(not key.startswith(("monitor.", "toll_fraud.")) for key in changed):
        steps.append(_security_step(security, config))
    if monitor is not None and any(key.startswith("monitor.") for key in changed):
        steps.append(_monitor_step(monitor, config.monitor))
    if toll_fraud is not None and any(key.startswith("toll_fraud.") for key in changed):
        steps.append(_toll_fraud_step(toll_fraud, config.toll_fraud))
    return SecurityUpdate(tuple(changed), tuple(steps))


def _security_step(security: Any, config: SecurityConfig) -> Callable[[], None]:
    scanners = UserAgentMatcher(config.scanner_user_agents, config.scanner_user_agent_patterns)

    def apply() -> None:
        old = security.config
        security.config = config
        limiter = security.limiter
        limiter.budgets = config.budgets
        limiter.max_keys = config.max_rate_keys
        limiter.report_interval = config.flood_offence_interval
        limiter._idle = max(budget.refill_time for budget in limiter.budgets.values())
        security.allow.max_sources = config.max_authenticated_sources
        screener = security.screener
        budget = config.global_budget
        if budget is None:
            screener.bucket = None
        elif screener.bucket is None:
            screener.bucket = SharedBucket(budget, security.clock.seconds())
        else:
            screener.bucket.budget = budget
        bans = security.bans
        if isinstance(bans, Bans):  # a shared store keeps its own settings
            bans.base = config.ban_base
            bans.maximum = config.ban_max
            bans.memory = config.ban_memory
            bans.window = config.offence_window
            bans.thresholds = dict(config.thresholds)
            bans.max_tracked = config.max_offence_keys
        security.scanners = scanners
        accounts = security.accounts
        accounts.budget = config.account_failures
        accounts.window = config.account_window
        accounts.memory = config.account_memory
        accounts.known_sources = config.account_known_sources
        accounts.max_accounts = config.max_account_keys
        purger = security._purger
        if config.purge_interval != old.purge_interval and purger is not None:
            security.restart_purge()

    return apply


def _monitor_step(monitor: Any, config: MonitorConfig) -> Callable[[], None]:
    rules = {
        rule: (threshold, action)
        for rule, (threshold, action) in config.rules.items()
        if action != "off"
    }
    budget = Budget(config.restricted_rate, config.restricted_burst)

    def apply() -> None:
        monitor.config = config
        monitor._rules = rules
        monitor.limiter.budgets = dict.fromkeys(TIERS, budget)
        monitor.limiter.max_keys = config.max_sources
        monitor.limiter._idle = budget.refill_time

    return apply


def _toll_fraud_step(guard: Any, config: TollFraudConfig) -> Callable[[], None]:
    def apply() -> None:
        old = guard.config
        guard.config = config
        if config.calls_per_minute != old.calls_per_minute:
            for user, recent in guard._recent.items():
                guard._recent[user] = deque(recent, maxlen=config.calls_per_minute)

    return apply


def reread_bans(security: Any) -> int | None:
    """
    Read the ban database of C{security} again now if another process
    (C{sipedge ban}, the admin API of another worker) changed it, rather
    than at the next purge.

    @return: how many bans are then in force, or C{None} if nothing was
        read (unchanged, a shared store, or a database error, logged).
    """
    bans = security.bans
    if not isinstance(bans, Bans):
        return None
    try:
        if bans._reload_if_changed(security.clock.seconds()):
            return len(bans)
    except sqlite3.Error as e:
        _log.error("Cannot read the ban database {path} again: {error}", path=bans.path, error=e)
    return None
