# -*- test-case-name: sipedge.test.test_monitor -*-
"""
What the L{Monitor<sipedge.security._monitor.Monitor>} keeps per source or
user (a ring of time slots counting each quantity) and the checks of one
decision against its rules.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipedge.security._monitor import Monitor

__all__: list[str] = []


# Quantities counted per record, in one ring of slots.
_REQUESTS = 0
_AUTH_OK = 1
_AUTH_FAILED = 2
_NOT_FOUND = 3
_PREMIUM = 4
_CALLS = 5
_QUANTITIES = 6


class _Record:
    """
    What is known of one source or user: counts of each quantity in each
    of the last C{slots} time slots (index 0 the newest), the Request-URI
    users answered 404 (user -> slot last seen), and when each rule last
    triggered.
    """

    __slots__ = ("counts", "fired", "newest", "not_found_users", "seen")

    def __init__(self, slots: int, slot: int, now: float) -> None:
        self.newest = slot
        self.seen = now
        self.counts = [[0] * _QUANTITIES for _ in range(slots)]
        self.not_found_users: OrderedDict[str, int] | None = None
        self.fired: dict[str, float] = {}

    def advance(self, slot: int) -> None:
        """Move the ring on to C{slot}, dropping the slots that fell out."""
        gap = slot - self.newest
        if gap <= 0:
            return
        counts = self.counts
        size = len(counts)
        if gap >= size:
            for row in counts:
                row[:] = [0] * _QUANTITIES
        else:
            # rotate right by gap: the oldest rows become the new, zeroed ones
            counts[:] = counts[-gap:] + counts[:-gap]
            for row in counts[:gap]:
                row[:] = [0] * _QUANTITIES
        self.newest = slot

    def add(self, quantity: int) -> int:
        """Count one C{quantity} in the newest slot; the total in the window."""
        self.counts[0][quantity] += 1
        return self.total(quantity)

    def total(self, quantity: int) -> int:
        return sum(row[quantity] for row in self.counts)


class _Check:
    """The checks of one decision, sharing its context."""

    __slots__ = ("context", "monitor", "now", "source")

    def __init__(self, monitor: Monitor, context: Any, source: str, now: float) -> None:
        self.monitor = monitor
        self.context = context
        self.source = source
        self.now = now

    def count(self, record: _Record, rule: str, scope: str, user: str | None, value: float) -> None:
        """Trigger C{rule} (once per window) if C{value} reached its threshold."""
        found = self.monitor._rules.get(rule)
        if found is not None and value >= found[0]:
            self.monitor._trigger(
                record, rule, scope, self.context, self.source, user, value, self.now
            )

    def ratio(self, record: _Record, rule: str, scope: str, user: str | None) -> None:
        """Judge the failure ratio of C{record} once it has enough outcomes."""
        if rule not in self.monitor._rules:
            return
        failed = record.total(_AUTH_FAILED)
        samples = failed + record.total(_AUTH_OK)
        if samples >= self.monitor.config.min_samples:
            self.count(record, rule, scope, user, failed / samples)
