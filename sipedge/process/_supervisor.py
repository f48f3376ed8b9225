# -*- test-case-name: sipedge.test.test_process_supervisor -*-
"""
The supervisor of worker processes: starts them, starts again one that
ends (after a back-off that grows while it keeps failing), passes signals
on to all of them, and stops them all when it stops.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

__all__ = ["READY_MARK", "RELEASE", "WorkerSupervisor", "wait_released", "worker_record"]

#: What a worker writes to its output once it serves (followed by its index).
READY_MARK = "sipedge worker ready:"

#: What the supervisor writes to the standard input of a worker that waits
#: for the shared state (L{wait_released}) once worker 0 has made it.
RELEASE = b"sipedge: shared state made\n"


def wait_released(fd: int = 0) -> None:
    """
    Wait until the supervisor writes L{RELEASE} on C{fd} (a worker's
    standard input): the shared state (keys, databases, a generated
    certificate) is made, so this worker may use it. Bounded by the
    supervisor's life: its end closes the pipe.

    @raise SystemExit: if the pipe closes first, or says something else.
    """
    said = b""
    while not said.endswith(b"\n") and len(said) < len(RELEASE):
        chunk = os.read(fd, len(RELEASE) - len(said))
        if not chunk:
            raise SystemExit("sipedge: worker: the supervisor ended before the shared state"
                             " was made")
        said += chunk
    if said != RELEASE:
        raise SystemExit(f"sipedge: worker: expected the supervisor's release on standard"
                         f" input, got {said[:80]!r}")

#: Bytes of a worker's output line kept; longer lines are cut.
_MAX_LINE = 64 * 1024

#: The time twistd's text log starts a line with (ours says it again).
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT[0-9:.+-]+ ")


def worker_record(line: str) -> dict[str, Any] | None:
    """
    The JSON object a worker's line is (C{[log] format = "json"}), if it
    is one with a C{text}; else C{None} (a text line).
    """
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        return None
    return record


def _level(record: dict[str, Any]) -> LogLevel:
    try:
        return LogLevel.levelWithName(str(record.get("level")))
    except Exception:  # InvalidLogLevelError (a NamedConstant lookup)
        return LogLevel.info


class _WorkerProtocol(ProcessProtocol):
    """One worker process: its output is logged line by line."""

    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self._supervisor = supervisor
        self.index = index
        self._buffers = {1: b"", 2: b""}
        self.ended = False

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        buffer = self._buffers.get(childFD, b"") + data
        *lines, rest = buffer.split(b"\n")
        if len(rest) > _MAX_LINE:
            lines.append(rest[:_MAX_LINE])
            rest = b""
        self._buffers[childFD] = rest
        for line in lines:
            self._supervisor.worker_said(self.index, line.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason: Failure) -> None:
        for fd, rest in self._buffers.items():
            if rest:
                self.childDataReceived(fd, b"\n")
        self.ended = True
        self._supervisor.worker_ended(self, reason)


class WorkerSupervisor(Service):
    """
    Runs C{count} worker processes and keeps them running.

    A worker that ends while the supervisor runs is started again after
    C{min_backoff} seconds; each time it ends again within C{stable_after}
    seconds of its start the wait doubles, up to C{max_backoff}.

    @ivar started: per worker index, how many times it was started.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        count: int,
        command: Callable[[int], Sequence[str]],
        *,
        child_fds: Callable[[int], Mapping[int, int | str]] = lambda index: {},
        env: Mapping[str, str] | None = None,
        on_ready: Callable[[], None] | None = None,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        stable_after: float = 10.0,
        stop_timeout: float = 10.0,
        first_alone: bool = True,
    ) -> None:
        """
        @param reactor: provides C{IReactorProcess} and C{IReactorTime}.
        @param count: the number of workers.
        @param command: the command line of worker C{index} (the program
            first).
        @param child_fds: the file descriptors worker C{index} inherits
            (child fd -> parent fd), beyond its standard input (a pipe it
            may watch: it closes when the supervisor ends) and outputs
            (read and logged by the supervisor).
        @param env: the workers' environment (by default none).
        @param on_ready: called once, when every worker has said it serves
            (L{READY_MARK}).
        @param first_alone: worker 0 alone makes the state shared by all
            (keys, databases, a generated certificate): the others start
            at the same time (their start-up, mostly imports, overlaps
            its), but their command line makes them wait
            (L{wait_released}) until the supervisor writes L{RELEASE} to
            their standard input, which it does once worker 0 serves (at
            once for a worker started later).
        """
        self._reactor = reactor
        self.count = count
        self._command = command
        self._child_fds = child_fds
        self._env = dict(env or {})
        self._on_ready = on_ready
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stable_after = stable_after
        self._stop_timeout = stop_timeout
        self._first_alone = first_alone
        #: Whether worker 0 has served once (the shared state is made).
        self._state_made = not first_alone
        self._held: set[int] = set()
        self._workers: dict[int, _WorkerProtocol] = {}
        self._started_at: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        self._restarts: dict[int, Any] = {}
        self._ready: set[int] = set()
        self._stopping: Deferred[None] | None = None
        self._kill_call: Any = None
        self.started = [0] * count

    @property
    def pids(self) -> dict[int, int]:
        """The process id of each running worker, by index."""
        found = {}
        for index, worker in self._workers.items():
            pid = getattr(worker.transport, "pid", None)
            if pid is not None:
                found[index] = pid
        return found

    @property
    def serving(self) -> list[int]:
        """The indexes of the workers running and serving (said L{READY_MARK})."""
        return sorted(index for index in self._ready if index in self._workers)

    def startService(self) -> None:
        super().startService()
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        argv = list(self._command(index))
        protocol = _WorkerProtocol(self, index)
        child_fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        child_fds.update(self._child_fds(index))
        self._workers[index] = protocol
        self._started_at[index] = self._reactor.seconds()
        self.started[index] += 1
        try:
            self._reactor.spawnProcess(
                protocol, argv[0], argv, env=self._env, childFDs=child_fds
            )
        except Exception as e:
            self._log.error("Cannot start worker {index}: {error}", index=index, error=str(e))
            del self._workers[index]
            self._schedule(index)
            return
        self._log.info(
            "Started worker {index} (pid {pid})",
            index=index,
            pid=getattr(protocol.transport, "pid", "?"),
        )
        if self._first_alone and index != 0:
            self._held.add(index)
            if self._state_made:
                self._release()

    def _release(self) -> None:
        """Tell the workers waiting for the shared state that it is made."""
        held, self._held = self._held, set()
        for index in sorted(held):
            worker = self._workers.get(index)
            if worker is not None and worker.transport is not None and not worker.ended:
                worker.transport.write(RELEASE)

    def worker_said(self, index: int, line: str) -> None:
        """A line of worker C{index}'s output: logged; notes when it serves."""
        if READY_MARK in line:
            if index not in self._ready:
                self._ready.add(index)
                if index == 0 and not self._state_made:
                    self._state_made = True
                    self._release()
                if len(self._ready) == self.count and self._on_ready is not None:
                    on_ready, self._on_ready = self._on_ready, None
                    on_ready()
        if not line:
            return
        record = worker_record(line)
        if record is not None:
            # Passed on whole (with the worker's index): the JSON observer
            # writes C{worker_record} as it is (L{sipedge._logging}).
            self._log.emit(_level(record), "worker {worker}: {text}", worker=index,
                           text=record["text"], worker_record=record)
            return
        line = _TIMESTAMP.sub("", line, count=1)
        self._log.info("worker {index}: {line}", index=index, line=line)

    def worker_ended(self, protocol: _WorkerProtocol, reason: Failure) -> None:
        """Worker C{protocol} ended: start it again, unless we are stopping."""
        index = protocol.index
        if self._workers.get(index) is protocol:
            del self._workers[index]
            self._ready.discard(index)
        if self._stopping is not None:
            self._log.info("Worker {index} stopped", index=index)
            if not self._workers:
                self._stopped()
            return
        self._log.warn(
            "Worker {index} ended ({reason}); starting it again",
            index=index,
            reason=reason.getErrorMessage(),
        )
        ran = self._reactor.seconds() - self._started_at.get(index, 0.0)
        if ran >= self._stable_after:
            self._backoff.pop(index, None)
        self._schedule(index)

    def _schedule(self, index: int) -> None:
        delay = self._backoff.get(index)
        delay = self._min_backoff if delay is None else min(delay * 2, self._max_backoff)
        self._backoff[index] = delay
        self._restarts[index] = self._reactor.callLater(delay, self._spawn, index)

    def signal_all(self, name: str) -> None:
        """Send signal C{name} (C{"HUP"}, C{"TERM"}, ...) to every running worker."""
        for worker in list(self._workers.values()):
            if worker.transport is None:
                continue
            try:
                worker.transport.signalProcess(name)
            except (ProcessExitedAlready, OSError):
                pass

    def stopService(self) -> Deferred[None]:
        super().stopService()
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        if not self._workers:
            return succeed(None)
        self._stopping = Deferred()
        self.signal_all("TERM")
        self._kill_call = self._reactor.callLater(self._stop_timeout, self._kill)
        return self._stopping

    def _kill(self) -> None:
        self._kill_call = None
        self._log.warn("Workers {indexes} did not stop in time: killing them",
                       indexes=sorted(self._workers))
        self.signal_all("KILL")

    def _stopped(self) -> None:
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self._kill_call = None
        stopping, self._stopping = self._stopping, None
        assert stopping is not None
        stopping.callback(None)
