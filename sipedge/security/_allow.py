# -*- test-case-name: sipedge.test.test_security -*-
"""
The dynamic allow-list: sources that have authenticated.

The registrar (or the digest stage) calls L{AllowList.note_authenticated}
when a user proves who it is from a source address; the source then counts
as authenticated (the larger rate budget) until that registration expires.
A source with several users (phones behind one NAT) stays authenticated
while any of them does.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from twisted.logger import Logger

from sipedge.security._address import canonical_ip

__all__ = ["AllowList"]


class AllowList:
    """
    Source address -> user -> expiry time.

    Memory is bounded: at most C{max_sources} addresses, the one noted
    longest ago evicted first.
    """

    _log = Logger()

    def __init__(
        self, *, max_sources: int = 100_000, stats: MutableMapping[str, int] | None = None
    ) -> None:
        if max_sources < 1:
            raise ValueError(f"max_sources must be at least 1, not {max_sources}")
        self.max_sources = max_sources
        self.stats = stats if stats is not None else {}
        for key in ("allow_noted", "allow_evicted"):
            self.stats.setdefault(key, 0)
        self._entries: dict[str, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def note_authenticated(self, source_ip: str, user: str, expires_at: float) -> None:
        """
        C{user} authenticated from C{source_ip}, until C{expires_at} (its
        registration's expiry). A later note for the same pair replaces the
        expiry, so a de-registration (C{expires_at} now or earlier) ends
        it.
        """
        key = canonical_ip(source_ip)
        if key is None:
            self._log.warn(
                "Not allow-listing {source} for {user}: not an IP address",
                source=source_ip,
                user=user,
            )
            return
        users = self._entries.pop(key, None)
        if users is None:
            users = {}
            if len(self._entries) >= self.max_sources:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self.stats["allow_evicted"] += 1
        users[user] = expires_at
        # Re-inserted: the dict's order is the order of the last note.
        self._entries[key] = users
        self.stats["allow_noted"] += 1

    def is_authenticated(self, source_ip: str, now: float) -> bool:
        """True if some user's authentication from C{source_ip} is unexpired."""
        entries = self._entries
        if not entries:
            return False
        users = entries.get(source_ip)
        if users is None:
            key = canonical_ip(source_ip)
            if key is None or key not in entries:
                return False
            users = entries[key]
            source_ip = key
        for user, expires_at in list(users.items()):
            if expires_at > now:
                return True
            del users[user]
        del entries[source_ip]
        return False

    def users(self, source_ip: str, now: float) -> dict[str, float]:
        """The unexpired users of C{source_ip} and their expiry times."""
        key = canonical_ip(source_ip)
        users = self._entries.get(key, {}) if key is not None else {}
        return {user: at for user, at in users.items() if at > now}

    def entries(self, now: float) -> list[tuple[str, str, float]]:
        """Every unexpired C{(source, user, expires_at)}, the oldest noted first."""
        return [
            (source, user, at)
            for source, users in self._entries.items()
            for user, at in users.items()
            if at > now
        ]

    def purge(self, now: float) -> int:
        """Forget every expired entry; return how many sources went."""
        gone = 0
        for source, users in list(self._entries.items()):
            for user, expires_at in list(users.items()):
                if expires_at <= now:
                    del users[user]
            if not users:
                del self._entries[source]
                gone += 1
        return gone
