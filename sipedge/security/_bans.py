# -*- test-case-name: sipedge.test.test_security -*-
"""
Bans: source addresses whose traffic is dropped before it is parsed, for a
time that grows with each repeated offence, kept in an SQLite file in the
state directory (C{bans.sqlite3}) so a restart forgets none.

A ban lasts C{base} seconds the first time, twice as long each time the same
address is banned again while its previous ban is remembered (until
C{memory} seconds after it ended), and never longer than C{maximum}. Bans
expire by themselves: L{Bans.is_banned} notices an expired one, and
L{Bans.purge} (run periodically by L{sipedge.security.Security}) sweeps them
and forgets old history.

Offences lead to bans: L{Bans.offence} counts each kind of offence per
source in a sliding window and bans once a kind's threshold is reached
(e.g. 1 scanner hit, 3 floods or 5 authentication failures in 60 seconds).

An address in a configured trusted network is never banned; the refusal
is logged.

L{Bans.is_banned} runs for every packet, so it reads an in-memory mirror of
the active bans, never the file. The mirror is loaded on open and reloaded
by L{Bans.purge} when another process (C{sipedge ban add}/C{remove}) has
changed the file. The SQLite access is synchronous, as in
L{sipedge.store.SQLiteLocationStore} (see there for why): a ban is one small
write, and bans are rare next to the packets they stop.
"""

from __future__ import annotations

import builtins
import math
import os
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.interfaces import IBanStore
from sipedge.security._address import Network, TrustedNetworks, canonical_ip
from sipedge.store import (
    closing_on_failure,
    open_database,
    read_schema_version,
    transaction,
)

__all__ = [
    "DATABASE_NAME",
    "DEFAULT_THRESHOLDS",
    "OFFENCE_KINDS",
    "SCHEMA_VERSION",
    "Ban",
    "Bans",
]

#: The file name of the ban database in the state directory.
DATABASE_NAME = "bans.sqlite3"

#: The schema version this code writes.
SCHEMA_VERSION = 1

#: The kinds of offence the built-in components report.
OFFENCE_KINDS = ("flood", "scanner", "auth-failure", "monitor", "filter")

#: Offences of each kind within the window that earn a ban.
DEFAULT_THRESHOLDS: Mapping[str, int] = {
    "flood": 3,
    "scanner": 1,
    "auth-failure": 5,
    "monitor": 1,
    "filter": 1,
}

_SCHEMA_V1 = (
    """
    CREATE TABLE bans (
        source     TEXT    PRIMARY KEY,
        reason     BLOB    NOT NULL,
        banned_at  REAL    NOT NULL,
        expires_at REAL    NOT NULL,
        count      INTEGER NOT NULL
    )
    """,
    "CREATE INDEX bans_by_expiry ON bans (expires_at)",
)

#: Statements that take the schema from version N (the key) to N + 1.
_MIGRATIONS: dict[int, tuple[str, ...]] = {}

_COLUMNS = "source, reason, banned_at, expires_at, count"


def _stat_name(kind: str) -> str:
    return "offences_" + kind.replace("-", "_")


@attrs.frozen
class Ban:
    """
    One ban.

    @ivar source: the banned IP address (canonical text).
    @ivar reason: why, for people.
    @ivar banned_at: when it began.
    @ivar expires_at: when it ends (C{inf} for never).
    @ivar count: how many times the address has been banned while its
        previous ban was remembered, this one included (1 for a first ban).
    """

    source: str
    reason: str
    banned_at: float
    expires_at: float
    count: int = 1

    @property
    def permanent(self) -> bool:
        return math.isinf(self.expires_at)

    @property
    def duration(self) -> float:
        return self.expires_at - self.banned_at

    def remaining(self, now: float) -> float:
        """Seconds left at C{now} (0 once expired)."""
        return max(0.0, self.expires_at - now)


def _ban(row: tuple[Any, ...]) -> Ban:
    source, reason, banned_at, expires_at, count = row
    return Ban(
        source, bytes(reason).decode("utf-8", "surrogateescape"), banned_at, expires_at, count
    )


@implementer(IBanStore)
class Bans:
    """
    The ban list (an L{IBanStore}), in an SQLite file with an in-memory
    mirror.

    @ivar stats: counters: C{bans_created}, C{bans_refused_trusted},
        C{bans_expired}, C{bans_removed} and C{offences_<kind>} (C{-} as
        C{_}).
    @raise ConfigError: (from the constructor) if the file cannot be opened
        or holds a newer schema.
    """

    _log = Logger()

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        base: float = 60.0,
        maximum: float = 86400.0,
        memory: float = 86400.0,
        window: float = 60.0,
        thresholds: Mapping[str, int] = DEFAULT_THRESHOLDS,
        trusted: TrustedNetworks | Iterable[Network | str] = (),
        max_tracked: int = 100_000,
        stats: MutableMapping[str, int] | None = None,
        now: float | None = None,
    ) -> None:
        """
        @param path: the database file, or C{":memory:"}.
        @param base: seconds of a first ban.
        @param maximum: the longest ban that repeated offences earn.
        @param memory: seconds after a ban ends during which a new ban of
            the same address counts as a repeat (and lasts twice as long).
        @param window: the sliding window offences are counted in, seconds.
        @param thresholds: offences of each kind in C{window} that earn a
            ban; the keys are the kinds L{offence} accepts.
        @param trusted: networks never banned.
        @param max_tracked: the most C{(source, kind)} offence counters kept
            (the least recently offending evicted first).
        @param stats: counters to bump; a new dict by default.
        @param now: the time now, so that bans that ended while we were not
            running are not loaded (and logged as expiring) at all.
        """
        if not 0 < base <= maximum:
            raise ValueError(f"need 0 < base <= maximum, not {base} and {maximum}")
        for kind, threshold in thresholds.items():
            if threshold < 1:
                raise ValueError(f"threshold of {kind!r} must be at least 1, not {threshold}")
        self.path = os.fspath(path)
        self.base = base
        self.maximum = maximum
        self.memory = memory
        self.window = window
        self.thresholds = dict(thresholds)
        self.trusted = trusted if isinstance(trusted, TrustedNetworks) else TrustedNetworks(trusted)
        self.max_tracked = max_tracked
        self.stats = stats if stats is not None else {}
        for key in ("bans_created", "bans_refused_trusted", "bans_expired", "bans_removed"):
            self.stats.setdefault(key, 0)
        for kind in self.thresholds:
            self.stats.setdefault(_stat_name(kind), 0)
        self._active: dict[str, float] = {}
        self._offences: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._db = open_database(
            self.path,
            "ban",
            schema=_SCHEMA_V1,
            version=SCHEMA_VERSION,
            migrations=_MIGRATIONS,
        )
        with closing_on_failure(self._db, "ban", self.path):
            self._data_version = self._current_data_version()
            self._load(now)

    @classmethod
    def in_state_directory(cls, directory: str | os.PathLike[str], **kwargs: Any) -> Bans:
        """The bans in C{directory}/L{DATABASE_NAME}."""
        return cls(os.path.join(os.fspath(directory), DATABASE_NAME), **kwargs)

    # -- schema --------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    @property
    def schema_version(self) -> int:
        return read_schema_version(self._db)

    def _current_data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _load(self, now: float | None) -> None:
        """Load the mirror: the bans in force at C{now} (all if C{None})."""
        rows = self._db.execute(
            "SELECT source, expires_at FROM bans WHERE expires_at > ?",
            (-math.inf if now is None else now,),
        ).fetchall()
        self._active = {source: expires_at for source, expires_at in rows}

    def _reload_if_changed(self, now: float) -> bool:
        """Reload the mirror if another connection changed the file."""
        version = self._current_data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        self._load(now)
        self._log.info(
            "Reloaded {count} bans from {path}: changed by another process",
            count=len(self._active),
            path=self.path,
        )
        return True

    # -- bans -------------------------------------------------------------------

    def _row(self, source: str) -> Ban | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM bans WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else _ban(row)

    def duration_for(self, count: int) -> float:
        """The length of ban number C{count}: C{base} doubled per repeat, capped."""
        return min(self.base * 2.0 ** min(count - 1, 64), self.maximum)

    def ban(
        self,
        source: str,
        reason: str,
        now: float,
        *,
        duration: float | None = None,
        rule: str = "ban",
    ) -> Ban | None:
        """
        Ban C{source} from C{now}: for C{duration} seconds (C{inf}: for
        ever), or by default for as long as its record earns
        (L{duration_for}). A source already banned stays banned at least
        until its current ban ends.

        @param rule: the log event's C{rule} field (the offence kind).
        @return: the ban, or C{None} if C{source} is in a trusted network
            (refused, and logged).
        @raise ValueError: if C{source} is not an IP address, or
            C{duration} is not positive.
        """
        key = canonical_ip(source)
        if key is None:
            raise ValueError(f"not an IP address: {source!r}")
        if duration is not None and not duration > 0:
            raise ValueError(f"a ban's duration must be positive, not {duration!r}")
        if key in self.trusted:
            self.stats["bans_refused_trusted"] += 1
            self._log.warn(
                "Not banning {source}: it is in a trusted network ({reason})",
                source=key,
                reason=reason,
                rule="trusted",
            )
            return None
        with self._transaction() as db:
            previous = self._row(key)
            count = 1
            if previous is not None and previous.expires_at + self.memory > now:
                count = previous.count + 1
            if duration is None:
                duration = self.duration_for(count)
            expires_at = now + duration
            if previous is not None and previous.expires_at > now:
                expires_at = max(expires_at, previous.expires_at)
            ban = Ban(key, reason, now, expires_at, count)
            db.execute(
                f"INSERT OR REPLACE INTO bans ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (key, reason.encode("utf-8", "surrogateescape"), now, expires_at, count),
            )
        self._active[key] = expires_at
        self.stats["bans_created"] += 1
        self._log.warn(
            "Banning {source} for {duration} s (ban {count}): {reason}",
            source=key,
            reason=reason,
            duration=round(expires_at - now, 3) if not ban.permanent else "ever",
            count=count,
            expires_at=expires_at,
            rule=rule,
        )
        return ban

    def is_banned(self, source: str, now: float) -> bool:
        """True if C{source} is banned at C{now}. Fast: a dict look-up."""
        active = self._active
        if not active:
            return False
        expires_at = active.get(source)
        if expires_at is None:
            key = canonical_ip(source)
            if key is None or key == source:
                return False
            expires_at = active.get(key)
            if expires_at is None:
                return False
            source = key
        if expires_at > now:
            return True
        self._expired(source)
        return False

    def _expired(self, source: str) -> None:
        del self._active[source]
        self.stats["bans_expired"] += 1
        self._log.info("Ban of {source} expired", source=source, rule="ban")

    def get(self, source: str, now: float) -> Ban | None:
        """The ban of C{source} in force at C{now}, or C{None}."""
        key = canonical_ip(source)
        if key is None:
            return None
        ban = self._row(key)
        return ban if ban is not None and ban.expires_at > now else None

    def unban(self, source: str) -> bool:
        """
        Lift the ban of C{source} and forget its record (a later ban is a
        first ban again); True if there was one.
        """
        key = canonical_ip(source)
        if key is None:
            return False
        with self._transaction() as db:
            removed = db.execute("DELETE FROM bans WHERE source = ?", (key,)).rowcount
        was_active = self._active.pop(key, None) is not None
        for kind in self.thresholds:
            self._offences.pop((key, kind), None)
        if removed or was_active:
            self.stats["bans_removed"] += 1
            self._log.info("Ban of {source} lifted", source=key, rule="ban")
            return True
        return False

    # -- offences -------------------------------------------------------------

    def offence(self, source: str, kind: str, now: float, detail: str | None = None) -> Ban | None:
        """
        Count one offence of C{kind} by C{source}; ban it if that makes
        C{thresholds[kind]} within the window. Offences of a source already
        banned (requests that were in flight) are not counted.

        @param detail: what happened, for the log and the ban's reason.
        @return: the ban this offence caused, or C{None}.
        @raise ValueError: for a kind with no threshold.
        """
        threshold = self.thresholds.get(kind)
        if threshold is None:
            raise ValueError(f"unknown offence kind {kind!r} (known: {', '.join(self.thresholds)})")
        key = canonical_ip(source)
        if key is None:
            self._log.warn(
                "Ignoring {kind} offence by {source}: not an IP address",
                kind=kind,
                source=source,
                rule=kind,
            )
            return None
        self.stats[_stat_name(kind)] += 1
        if self.is_banned(key, now):
            return None
        offences = self._offences
        track = (key, kind)
        times = offences.get(track)
        if times is None:
            if len(offences) >= self.max_tracked:
                offences.popitem(last=False)
            times = offences[track] = deque()
        else:
            offences.move_to_end(track)
        since = now - self.window
        while times and times[0] <= since:
            times.popleft()
        times.append(now)
        count = len(times)
        self._log.info(
            "Offence by {source}: {kind} ({count} of {threshold} in {window} s){detail}",
            source=key,
            kind=kind,
            count=count,
            threshold=threshold,
            window=self.window,
            detail=f": {detail}" if detail else "",
            rule=kind,
        )
        if count < threshold:
            return None
        del offences[track]
        what = f"{count} {kind} offence{'s' if count != 1 else ''} in {self.window:g} s"
        return self.ban(key, f"{what}: {detail}" if detail else what, now, rule=kind)

    def offences(self, source: str, kind: str, now: float) -> int:
        """Offences of C{kind} by C{source} within the window at C{now}."""
        key = canonical_ip(source)
        times = self._offences.get((key, kind), ()) if key is not None else ()
        return sum(1 for t in times if t > now - self.window)

    # -- upkeep ---------------------------------------------------------------

    def purge(self, now: float) -> int:
        """
        Expire ended bans, forget records past their memory and stale
        offence counters, and reload the mirror if another process changed
        the file. Return how many bans expired.
        """
        self._reload_if_changed(now)
        ended = [source for source, at in self._active.items() if at <= now]
        for source in ended:
            self._expired(source)
        with self._transaction() as db:
            db.execute("DELETE FROM bans WHERE expires_at <= ?", (now - self.memory,))
        since = now - self.window
        offences = self._offences
        stale = [track for track, times in offences.items() if not times or times[-1] <= since]
        for track in stale:
            del offences[track]
        return len(ended)

    def close(self) -> None:
        """Close the database; later calls fail."""
        self._db.close()

    def __len__(self) -> int:
        """The bans in the mirror (some may have just expired)."""
        return len(self._active)

    def list(self, now: float) -> builtins.list[Ban]:
        """The bans in force at C{now}, soonest to end first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM bans WHERE expires_at > ? ORDER BY expires_at, source",
            (now,),
        ).fetchall()
        return [_ban(row) for row in rows]
