# -*- test-case-name: sipedge.test.test_store_wal -*-
"""
Whether an SQLite database in WAL mode has changed, without a query.

Every connection to a database in WAL mode, in any process, shares its
wal-index (the C{-shm} file next to it, mapped in memory). Its header
(U{https://www.sqlite.org/walformat.html}, "The WAL-Index Header") is
rewritten by every commit: a change counter (C{iChange}), the last frame
and the checksums change. SQLite itself compares this header with its own
copy at the start of each read transaction to decide whether its page
cache is still good (and C{PRAGMA data_version} is computed from the
same comparison). L{WalChanges} reads it from the mapping, which costs a
copy of 96 bytes, where C{PRAGMA data_version} or a C{SELECT} costs a
read transaction (file locks, and much cold SQLite code: about 40 to 60
us each in a proxy's busy loop).

The header is kept twice; a writer rewrites the second copy, then the
first. L{WalChanges.stamp} returns the header only when both copies agree
and the header says it is the format of SQLite 3.7.0 and later (version
3007000, initialised); otherwise C{None}, and the caller must query.

A stamp taken before a query and equal to a later stamp proves that no
transaction committed in between (the change counter is 32 bits: 2**32
commits between two look-ups would wrap it). Taken before the query, a
stamp can only be older than what the query read, never newer: a cache
keyed on it is refreshed one look-up too early at worst, never served
stale.

The mapping stays valid while our connection is open: SQLite truncates
the wal-index only when the first connection opens the database, and ours
is open. L{WalChanges.close} unmaps it before the connection closes.
"""

from __future__ import annotations

import mmap
import os
import struct

__all__ = ["WalChanges"]

#: The header's size; the wal-index starts with two copies of it.
_HEADER = 48
#: The wal-index format version SQLite has written since 3.7.0.
_VERSION = 3007000
_FIELDS = struct.Struct("=IIIB")


class WalChanges:
    """
    The change stamp of the SQLite database at C{path} (in WAL mode, with a
    connection of ours open to it).

    @ivar usable: False when the database has no wal-index to read (in
        memory, not in WAL mode, or the file could not be mapped): every
        L{stamp} is then C{None}.
    """

    def __init__(self, path: str) -> None:
        self._map: mmap.mmap | None = None
        if path == ":memory:" or not path:
            return
        try:
            fd = os.open(path + "-shm", os.O_RDONLY)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size >= 2 * _HEADER:
                self._map = mmap.mmap(fd, 2 * _HEADER, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError):
            self._map = None
        finally:
            os.close(fd)

    @property
    def usable(self) -> bool:
        return self._map is not None

    def stamp(self) -> bytes | None:
        """
        The wal-index header now, or C{None} if it cannot be read
        consistently (a commit is rewriting it, or the format is unknown).
        """
        mapped = self._map
        if mapped is None:
            return None
        both = mapped[: 2 * _HEADER]
        first = both[:_HEADER]
        if first != both[_HEADER:]:
            return None
        version, _, _, initialised = _FIELDS.unpack_from(first)
        if version != _VERSION or initialised != 1:
            return None
        return first

    def close(self) -> None:
        """Unmap the wal-index (before the connection closes)."""
        if self._map is not None:
            self._map.close()
            self._map = None
