# -*- test-case-name: sipedge.test.test_accounting -*-
"""
Writing call records as JSON lines without blocking the reactor: records
are queued in memory and a worker thread appends them to the file, at most
one batch in flight at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

__all__ = ["JsonLinesWriter"]


class JsonLinesWriter:
    """
    @ivar written: records on disk.
    @ivar errors: batches that could not be written (logged).
    @ivar dropped: records dropped because the queue was full (the disk
        is slower than the calls, or gone).
    """

    _log = Logger(namespace="sipedge.accounting")

    def __init__(self, path: Path, reactor: Any, *, max_queue: int = 100_000) -> None:
        """
        @param reactor: provides C{IReactorThreads}-style C{callFromThread}
            and runs the pool's results.
        """
        self._path = path
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="sipedge-accounting")
        self._queue: list[str] = []
        self._busy: Deferred[None] | None = None
        self._waiters: list[Deferred[None]] = []
        self._max_queue = max_queue
        self.written = 0
        self.errors = 0
        self.dropped = 0

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> Deferred[None]:
        """Write what is queued, then stop the thread."""
        if self._busy is None and not self._queue:
            self._pool.stop()
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        def stopped(result: object) -> object:
            self._pool.stop()
            return result

        d.addBoth(stopped)
        return d

    def __call__(self, record: dict[str, Any]) -> None:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(json.dumps(record, ensure_ascii=False) + "\n")
        if self._busy is None:
            self._busy = self._write_batch()

    def _write_batch(self) -> Deferred[None]:
        batch, self._queue = self._queue, []
        d: Deferred[None] = deferToThreadPool(self._reactor, self._pool, self._append, batch)

        def done(result: object) -> None:
            if isinstance(result, Failure):
                self.errors += 1
                self._log.error("Cannot write call records to {path}: {error}",
                                path=str(self._path), error=result)
            else:
                self.written += len(batch)
            self._busy = None
            if self._queue:
                self._busy = self._write_batch()
            else:
                waiters, self._waiters = self._waiters, []
                for waiter in waiters:
                    waiter.callback(None)

        d.addBoth(done)
        return d

    def _append(self, lines: list[str]) -> None:
        # Whole batches under an exclusive lock: the workers of one sipedge
        # ([process] workers) append to the same file, and a batch written
        # in several pieces must not have another's records inside it.
        data = memoryview("".join(lines).encode("utf-8"))
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)  # and the lock with it
