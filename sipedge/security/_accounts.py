# -*- test-case-name: sipedge.test.test_security_accounts -*-
"""
The password-guessing guard of each account: distributed guessing is
stopped per account, not only per source.

Per-source limits (the C{auth-failure} offence threshold, the monitor's
failure ratio) ban one address after a few wrong passwords, but a botnet
of 10,000 addresses still gets a few guesses each. So each account also
has a budget of authentication failures across all sources: at most
C{failures} in any C{window} seconds (a sliding window). Past it, the
account's credentials are checked only from sources it has authenticated
from before (within C{memory} seconds) and from trusted networks; other
sources get 403, unchecked, until the window has passed over enough of
the failures. The real user, at an address it used before, is not locked
out by the attack.

Refusals are not failures: they check nothing, so they do not extend the
window; a botnet that keeps guessing gets at most C{failures} checked
guesses per C{window}.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import MutableMapping

import attrs

from sipedge._log import NamedLogger
from sipedge.security._address import canonical_ip

__all__ = ["ACCOUNT_STAT_KEYS", "AccountGuard", "AccountState"]

#: The counters of L{AccountGuard.stats}, each from 0.
ACCOUNT_STAT_KEYS = (
    "account_failures",
    "account_locks",
    "account_refused",
    "account_evicted",
)


@attrs.frozen
class AccountState:
    """
    What the guard knows of one account, for the monitor and the logs.

    @ivar user: the user name the credentials gave.
    @ivar failures: failures in the window now.
    @ivar locked: C{True} if past the budget: only known sources and
        trusted networks are checked.
    @ivar until: when the oldest counted failure leaves the window (the
        lock lifts then, unless more failures came), or C{None}.
    @ivar known_sources: the addresses it authenticated from, most recent
        last.
    """

    user: str
    failures: int
    locked: bool
    until: float | None
    known_sources: tuple[str, ...]


class _Account:
    __slots__ = ("failures", "known")

    def __init__(self, budget: int) -> None:
        # The times of the last `budget` failures: the account is over its
        # budget while the oldest of them is in the window.
        self.failures: deque[float] = deque(maxlen=budget)
        self.known: OrderedDict[str, float] = OrderedDict()


class AccountGuard:
    """
    Failures per account in a sliding window, and the sources each account
    authenticated from. The caller passes the time (C{now}) and whether the
    source is trusted; the guard holds no timer.

    Memory is bounded: at most C{max_accounts} accounts (the least recently
    used forgotten first) and C{known_sources} sources each.
    """

    _log = NamedLogger(namespace="sipedge.security.accounts")

    def __init__(
        self,
        *,
        failures: int = 10,
        window: float = 600.0,
        memory: float = 30 * 86400.0,
        known_sources: int = 16,
        max_accounts: int = 100_000,
        stats: MutableMapping[str, int] | None = None,
    ) -> None:
        if failures < 1 or known_sources < 1 or max_accounts < 1:
            raise ValueError("failures, known_sources and max_accounts must be at least 1")
        if window <= 0 or memory <= 0:
            raise ValueError("window and memory must be positive")
        self.budget = failures
        self.window = window
        self.memory = memory
        self.known_sources = known_sources
        self.max_accounts = max_accounts
        self.stats = stats if stats is not None else {}
        for key in ACCOUNT_STAT_KEYS:
            self.stats.setdefault(key, 0)
        self._accounts: OrderedDict[str, _Account] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accounts)

    # -- queries ---------------------------------------------------------------

    def _locked(self, account: _Account, now: float) -> bool:
        failures = account.failures
        return len(failures) == self.budget and failures[0] > now - self.window

    def is_locked(self, user: str, now: float) -> bool:
        """True if C{user} is over its failure budget at C{now}."""
        account = self._accounts.get(user)
        return account is not None and self._locked(account, now)

    def is_known(self, user: str, source: str, now: float) -> bool:
        """True if C{user} authenticated from C{source} within C{memory} seconds."""
        account = self._accounts.get(user)
        if account is None:
            return False
        key = canonical_ip(source) or source
        seen = account.known.get(key)
        return seen is not None and seen > now - self.memory

    def may_check(self, user: str, source: str, now: float, *, trusted: bool = False) -> bool:
        """
        Whether the credentials C{user} sent from C{source} may be checked
        at C{now}: C{False} (refuse them unchecked) if the account is over
        its budget and C{source} is neither trusted nor known. A refusal is
        counted (C{account_refused}); the caller logs it, naming the user
        and the source.
        """
        account = self._accounts.get(user)
        if account is None or trusted or not self._locked(account, now):
            return True
        if self.is_known(user, source, now):
            return True
        self.stats["account_refused"] += 1
        return False

    def state(self, user: str, now: float) -> AccountState | None:
        """What the guard knows of C{user} at C{now}, or C{None}."""
        account = self._accounts.get(user)
        if account is None:
            return None
        recent = [t for t in account.failures if t > now - self.window]
        locked = self._locked(account, now)
        return AccountState(
            user=user,
            failures=len(recent),
            locked=locked,
            until=recent[0] + self.window if recent else None,
            known_sources=tuple(s for s, t in account.known.items() if t > now - self.memory),
        )

    def locked_accounts(self, now: float) -> list[AccountState]:
        """The accounts over their budget at C{now}."""
        states = (self.state(user, now) for user in list(self._accounts))
        return [s for s in states if s is not None and s.locked]

    # -- reports -------------------------------------------------------------

    def _account(self, user: str) -> _Account:
        account = self._accounts.pop(user, None)
        if account is None:
            account = _Account(self.budget)
            if len(self._accounts) >= self.max_accounts:
                self._accounts.popitem(last=False)
                self.stats["account_evicted"] += 1
        self._accounts[user] = account  # most recently used last
        return account

    def note_failure(self, user: str, source: str, now: float) -> bool:
        """
        C{user}'s credentials from C{source} were checked and wrong at
        C{now}. Return C{True} if this failure took the account over its
        budget (that is logged, once per lock).
        """
        account = self._account(user)
        was_locked = self._locked(account, now)
        account.failures.append(now)
        self.stats["account_failures"] += 1
        if was_locked or not self._locked(account, now):
            return False
        self.stats["account_locks"] += 1
        self._log.warn(
            "Account {user} had {failures} authentication failures in {window} s, the"
            " last from {source}: its credentials are checked only from sources it"
            " authenticated from before and trusted networks until the failures age out",
            rule="account-guard",
            user=user,
            source=source,
            failures=self.budget,
            window=self.window,
        )
        return True

    def note_success(self, user: str, source: str, now: float) -> None:
        """C{user} authenticated from C{source} at C{now}: a known source from now on."""
        account = self._account(user)
        key = canonical_ip(source) or source
        known = account.known
        known.pop(key, None)
        known[key] = now
        while len(known) > self.known_sources:
            known.popitem(last=False)

    def purge(self, now: float) -> int:
        """Forget accounts with no failure in the window and no known source; return how many."""
        gone = 0
        for user, account in list(self._accounts.items()):
            for source, seen in list(account.known.items()):
                if seen <= now - self.memory:
                    del account.known[source]
            if not account.known and not (
                account.failures and account.failures[-1] > now - self.window
            ):
                del self._accounts[user]
                gone += 1
        return gone
