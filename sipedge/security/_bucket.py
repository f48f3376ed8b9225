# -*- test-case-name: sipedge.test.test_security -*-
"""
Token-bucket rate limits per source address and method class.

Each C{(source, class)} pair has a bucket that holds at most C{burst}
tokens and gains C{rate} tokens a second; a request takes one token or is
over budget. So in any interval of C{t} seconds a key gets at most
C{rate * t + burst} requests through. The budget (rate and burst) depends on
who the source is when the request arrives: a configured trusted network, a
source that has authenticated, or anyone else (L{TIERS}).

Memory is bounded: at most C{max_keys} buckets, the least recently used
evicted first; and a bucket idle long enough to be full again is dropped,
which loses nothing (a new bucket starts full).
"""

from __future__ import annotations

import enum
import math
from collections import Counter, OrderedDict
from collections.abc import Mapping, MutableMapping

import attrs

__all__ = [
    "AUTHENTICATED",
    "METHOD_CLASSES",
    "TIERS",
    "TRUSTED",
    "UNAUTHENTICATED",
    "Budget",
    "RateLimiter",
    "SharedBucket",
    "Verdict",
    "method_class",
]

TRUSTED = "trusted"
AUTHENTICATED = "authenticated"
UNAUTHENTICATED = "unauthenticated"

#: The budgets, most generous first.
TIERS = (TRUSTED, AUTHENTICATED, UNAUTHENTICATED)

#: Method classes: each has its own bucket, so a REGISTER storm does not
#: starve a source's calls.
METHOD_CLASSES = ("invite", "register", "other")

_CLASSES = {"INVITE": "invite", "REGISTER": "register"}


def method_class(method: str) -> str:
    """C{"invite"}, C{"register"} or C{"other"}."""
    return _CLASSES.get(method, "other")


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{attribute.name} must be a number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be positive and finite, not {value!r}")


@attrs.frozen
class Budget:
    """
    One token bucket's size.

    @ivar rate: tokens (requests) gained per second.
    @ivar burst: the most tokens the bucket holds: how many requests may
        come at once after a quiet spell.
    """

    rate: float = attrs.field(validator=_positive)
    burst: float = attrs.field(validator=[_positive])

    @burst.validator
    def _at_least_one(self, attribute: attrs.Attribute, value: float) -> None:
        if value < 1:
            raise ValueError(f"burst must be at least 1, not {value!r}")

    @property
    def refill_time(self) -> float:
        """Seconds an empty bucket takes to fill up."""
        return self.burst / self.rate


#: The defaults: small for strangers, generous for authenticated users,
#: and enough for a trunk at thousands of calls a second.
DEFAULT_BUDGETS: Mapping[str, Budget] = {
    UNAUTHENTICATED: Budget(5.0, 10.0),
    AUTHENTICATED: Budget(50.0, 100.0),
    TRUSTED: Budget(5000.0, 10000.0),
}


class Verdict(enum.Enum):
    """What L{RateLimiter.take} decides."""

    #: Within budget: a token was taken.
    ADMIT = "admit"
    #: Over budget.
    OVER = "over"
    #: Over budget, and the first time for this key in the report interval:
    #: worth a log line at info level and an offence.
    OVER_REPORT = "over-report"


class _Bucket:
    __slots__ = ("reported", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.reported: float | None = None


class RateLimiter:
    """
    Token buckets keyed by C{(source, method class)}.

    Time is passed in (C{now}, from the caller's clock), so the limiter
    itself holds no timer.

    @ivar stats: counters; C{limiter_evicted} counts buckets evicted to keep
        within C{max_keys}.
    @ivar refused: requests over budget, by C{(tier, method class)}.
    """

    def __init__(
        self,
        budgets: Mapping[str, Budget] = DEFAULT_BUDGETS,
        *,
        max_keys: int = 100_000,
        report_interval: float = 1.0,
        stats: MutableMapping[str, int] | None = None,
    ) -> None:
        """
        @param budgets: a L{Budget} for each of L{TIERS}.
        @param max_keys: the most buckets kept.
        @param report_interval: over-budget requests of one key are
            reported (L{Verdict.OVER_REPORT}) at most once in this many
            seconds.
        @param stats: the counters to bump (shared with the other
            security components); a new dict by default.
        """
        missing = [tier for tier in TIERS if tier not in budgets]
        if missing:
            raise ValueError(f"no budget for {', '.join(missing)}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.budgets = dict(budgets)
        self.max_keys = max_keys
        self.report_interval = report_interval
        self.stats = stats if stats is not None else {}
        self.stats.setdefault("limiter_evicted", 0)
        self.refused: Counter[tuple[str, str]] = Counter()
        # A bucket idle this long is full, whatever its tier: forgetting it
        # changes nothing.
        self._idle = max(budget.refill_time for budget in self.budgets.values())
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: str, klass: str, tier: str, now: float) -> Verdict:
        """
        Take a token from the bucket of C{(source, klass)} under the budget
        of C{tier} (which may differ from one call to the next: a source
        that authenticates gets the larger budget from then on).
        """
        budget = self.budgets[tier]
        key = (source, klass)
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            self._forget_idle(now)
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
                self.stats["limiter_evicted"] += 1
            bucket = buckets[key] = _Bucket(budget.burst, now)
        else:
            buckets.move_to_end(key)
            elapsed = now - bucket.stamp
            tokens = bucket.tokens
            if elapsed > 0:
                tokens += elapsed * budget.rate
                bucket.stamp = now
            bucket.tokens = tokens if tokens < budget.burst else budget.burst
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return Verdict.ADMIT
        self.refused[(tier, klass)] += 1
        reported = bucket.reported
        if reported is None or now - reported >= self.report_interval:
            bucket.reported = now
            return Verdict.OVER_REPORT
        return Verdict.OVER

    def _forget_idle(self, now: float, most: int = 2) -> None:
        """Drop up to C{most} of the least recently used buckets if idle."""
        buckets = self._buckets
        for _ in range(most):
            if not buckets:
                return
            key = next(iter(buckets))
            if now - buckets[key].stamp < self._idle:
                return
            del buckets[key]

    def purge(self, now: float) -> int:
        """Drop every bucket idle long enough to be full; return how many."""
        buckets = self._buckets
        idle = self._idle
        stale = []
        # Least recently used first, so the first busy one ends the scan.
        for key, bucket in buckets.items():
            if now - bucket.stamp < idle:
                break
            stale.append(key)
        for key in stale:
            del buckets[key]
        return len(stale)

    def tokens(self, source: str, klass: str, tier: str, now: float) -> float:
        """The tokens C{(source, klass)} would have now (for tests and tools)."""
        budget = self.budgets[tier]
        bucket = self._buckets.get((source, klass))
        if bucket is None:
            return budget.burst
        elapsed = max(0.0, now - bucket.stamp)
        return min(budget.burst, bucket.tokens + elapsed * budget.rate)


class SharedBucket:
    """
    One token bucket for many sources together: the global budget of
    unauthenticated work (L{sipedge.security.Screen}). Time is passed in.

    @ivar budget: its L{Budget}.
    """

    __slots__ = ("_stamp", "_tokens", "budget")

    def __init__(self, budget: Budget, now: float) -> None:
        self.budget = budget
        self._tokens = budget.burst
        self._stamp = now

    def take(self, now: float) -> bool:
        """Take a token if there is one; C{False} if the budget is spent."""
        elapsed = now - self._stamp
        tokens = self._tokens
        if elapsed > 0:
            tokens += elapsed * self.budget.rate
            burst = self.budget.burst
            if tokens > burst:
                tokens = burst
            self._stamp = now
        if tokens >= 1:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        return False

    def tokens(self, now: float) -> float:
        """The tokens there would be at C{now} (for tests and tools)."""
        elapsed = max(0.0, now - self._stamp)
        return min(self.budget.burst, self._tokens + elapsed * self.budget.rate)
