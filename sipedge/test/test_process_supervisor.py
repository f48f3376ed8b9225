# -*- test-case-name: sipedge.test.test_process_supervisor -*-
"""
Tests for L{sipedge.process._supervisor}: starting, restarting, signalling
and stopping workers, on a clock and a fake process reactor.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipedge.process import READY_MARK, RELEASE, WorkerSupervisor, wait_released, worker_record


class _Process:
    """A spawned process: what it was told and the signals it got."""

    def __init__(self, reactor: _ProcessReactor, protocol: Any, argv: list[str],
                 fds: dict[int, Any]) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.argv = argv
        self.fds = fds
        self.pid = 1000 + len(reactor.spawned)
        self.signals: list[str] = []
        self.written = b""
        protocol.makeConnection(self)

    def write(self, data: bytes) -> None:
        self.written += data

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def say(self, text: str) -> None:
        self.protocol.childDataReceived(1, text.encode())

    def end(self, code: int = 0) -> None:
        reason = ProcessDone(0) if code == 0 else ProcessTerminated(code)
        self.protocol.processEnded(Failure(reason))


class _ProcessReactor(Clock):
    """A clock that records C{spawnProcess}."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[_Process] = []
        self.fail_spawn = False

    def spawnProcess(self, protocol: Any, executable: str, args: list[str], env: Any = None,
                     childFDs: Any = None) -> _Process:
        if self.fail_spawn:
            raise OSError("no such program")
        process = _Process(self, protocol, list(args), dict(childFDs or {}))
        self.spawned.append(process)
        return process


class SupervisorTests(SynchronousTestCase):
    """L{WorkerSupervisor}."""

    def setUp(self) -> None:
        self.reactor = _ProcessReactor()
        self.ready: list[bool] = []
        self.supervisor = WorkerSupervisor(
            self.reactor,
            3,
            lambda index: ["worker", str(index)],
            child_fds=lambda index: {10 + index: 10 + index},
            on_ready=lambda: self.ready.append(True),
        )

    def tearDown(self) -> None:
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def running(self) -> dict[int, _Process]:
        """The live process of each worker index."""
        live = {}
        for process in self.reactor.spawned:
            live[int(process.argv[1])] = process
        pids = self.supervisor.pids
        return {index: p for index, p in live.items() if pids.get(index) == p.pid}

    def start_all(self) -> dict[int, _Process]:
        self.supervisor.startService()
        self.reactor.spawned[0].say(f"{READY_MARK} 0\n")
        for process in self.reactor.spawned[1:]:
            process.say(f"log line\n{READY_MARK} {process.argv[1]}\n")
        return self.running()

    def stop(self) -> None:
        d = self.supervisor.stopService()
        for process in self.running().values():
            process.end()
        self.successResultOf(d)

    def test_first_makes_the_state(self) -> None:
        """
        Every worker starts at once, but only worker 0 goes on: the others
        wait for L{RELEASE} on their standard input, written once worker 0
        says it serves (it made the shared state); C{on_ready} runs once
        all serve.
        """
        self.supervisor.startService()
        self.assertEqual([p.argv for p in self.reactor.spawned],
                         [["worker", "0"], ["worker", "1"], ["worker", "2"]])
        self.assertEqual([p.written for p in self.reactor.spawned], [b"", b"", b""])
        self.reactor.spawned[1].say(f"{READY_MARK} 1\n")  # not the maker: releases nobody
        self.assertEqual(self.reactor.spawned[2].written, b"")
        self.reactor.spawned[0].say(f"2026-12-07T10:00:00+0000 [x#info] {READY_MARK} 0 of 3\n")
        self.assertEqual([p.written for p in self.reactor.spawned], [b"", RELEASE, RELEASE])
        self.assertEqual(self.ready, [])
        self.reactor.spawned[2].say(f"{READY_MARK} 2\n")
        self.assertEqual(self.ready, [True])
        self.reactor.spawned[0].say(f"{READY_MARK} 0\n")  # said again: released once
        self.assertEqual(self.reactor.spawned[1].written, RELEASE)
        self.stop()

    def test_restarted_released_at_once(self) -> None:
        """
        A worker started again once the state is made is released as it
        starts; before, it waits like the others (worker 0 ended before
        serving: nobody is released until its successor serves).
        """
        self.supervisor.startService()
        self.reactor.spawned[0].end(1)
        self.reactor.spawned[1].end(1)
        self.reactor.advance(0.5)
        first, second = self.reactor.spawned[3:]
        self.assertEqual((first.argv, second.argv), (["worker", "0"], ["worker", "1"]))
        self.assertEqual(second.written, b"")
        first.say(f"{READY_MARK} 0\n")
        self.assertEqual((second.written, self.reactor.spawned[2].written), (RELEASE, RELEASE))
        second.end(1)
        self.reactor.advance(1.0)
        self.assertEqual(self.reactor.spawned[-1].argv, ["worker", "1"])
        self.assertEqual(self.reactor.spawned[-1].written, RELEASE)
        self.stop()

    def test_all_free_without_first_alone(self) -> None:
        """With C{first_alone=False} nobody waits: nothing is written to any worker."""
        supervisor = WorkerSupervisor(self.reactor, 2, lambda index: ["worker", str(index)],
                                      first_alone=False)
        supervisor.startService()
        self.assertEqual([p.written for p in self.reactor.spawned], [b"", b""])
        d = supervisor.stopService()
        for process in self.reactor.spawned:
            process.end()
        self.successResultOf(d)

    def test_file_descriptors(self) -> None:
        """Each worker inherits its own descriptors; its outputs are read, its input a pipe."""
        running = self.start_all()
        self.assertEqual(running[2].fds, {0: "w", 1: "r", 2: "r", 12: 12})
        self.stop()

    def test_output_logged(self) -> None:
        """A worker's lines are logged with its index, twistd's time stamp taken off."""
        self.supervisor.startService()
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.reactor.spawned[0].say("2026-12-07T10:00:00+0000 [sipedge#info] hello\npart")
        self.reactor.spawned[0].say("ial\n")
        lines = [(e.get("index"), e.get("line")) for e in events if "line" in e]
        self.assertEqual(lines, [(0, "[sipedge#info] hello"), (0, "partial")])
        self.stop()

    def test_json_record_passed_whole(self) -> None:
        """
        A worker's JSON record (C{[log] format = "json"}) is logged at its
        own level with the record itself (C{worker_record}), not as a line.
        """
        self.supervisor.startService()
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        record = {"time": "t", "level": "warn", "namespace": "n", "text": "Malformed x",
                  "source": "192.0.2.1:5060"}
        self.reactor.spawned[0].say(json.dumps(record) + "\n")
        [event] = [e for e in events if "worker_record" in e]
        self.assertEqual(event["worker_record"], record)
        self.assertEqual((event["worker"], event["log_level"]), (0, LogLevel.warn))
        self.assertEqual(formatEvent(event), "worker 0: Malformed x")
        self.assertEqual([e for e in events if "line" in e], [])
        self.stop()

    def test_worker_record(self) -> None:
        """Only a JSON object with a text is a worker's record; anything else is a line."""
        self.assertEqual(worker_record('{"text": "x", "level": "bogus"}'),
                         {"text": "x", "level": "bogus"})
        for line in ("hello", "{not json}", '{"level": "info"}', '{"text": 1}', "[1]",
                     '{"text": "x"', "{}"):
            self.assertIsNone(worker_record(line), line)

    def test_record_unknown_level(self) -> None:
        """A record with a level that is not one is logged at info, not dropped."""
        self.supervisor.startService()
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.reactor.spawned[0].say('{"text": "x", "level": "bogus"}\n')
        [event] = [e for e in events if "worker_record" in e]
        self.assertEqual(event["log_level"], LogLevel.info)
        self.stop()

    def test_restart_with_backoff(self) -> None:
        """
        A worker that ends is started again after a wait that doubles while
        it keeps ending soon after its start; the others are left alone.
        """
        running = self.start_all()
        others = (running[0], running[2])
        running[1].end(1)
        self.assertNotIn(1, self.running())
        self.reactor.advance(0.5)
        self.assertEqual(self.supervisor.started, [1, 2, 1])
        self.running()[1].end(1)
        self.reactor.advance(0.5)
        self.assertEqual(self.supervisor.started[1], 2)
        self.reactor.advance(0.5)
        self.assertEqual(self.supervisor.started[1], 3)
        self.assertEqual((self.running()[0], self.running()[2]), others)
        self.assertEqual([p.signals for p in others], [[], []])
        self.stop()

    def test_serving(self) -> None:
        """
        C{serving} lists the workers that said they serve: a worker that
        ends leaves it, and comes back once its successor says it serves.
        """
        self.supervisor.startService()
        self.assertEqual(self.supervisor.serving, [])
        self.reactor.spawned[0].say(f"{READY_MARK} 0\n")
        self.assertEqual(self.supervisor.serving, [0])
        for process in self.reactor.spawned[1:]:
            process.say(f"{READY_MARK} {process.argv[1]}\n")
        self.assertEqual(self.supervisor.serving, [0, 1, 2])
        self.running()[1].end(1)
        self.assertEqual(self.supervisor.serving, [0, 2])
        self.reactor.advance(0.5)
        self.assertEqual(self.supervisor.serving, [0, 2])
        self.running()[1].say(f"{READY_MARK} 1\n")
        self.assertEqual(self.supervisor.serving, [0, 1, 2])
        self.assertEqual(self.ready, [True])
        self.stop()

    def test_backoff_capped_and_reset(self) -> None:
        """The wait stops growing at C{max_backoff}; a worker that ran long starts afresh."""
        running = self.start_all()
        delays = []
        for _ in range(8):
            running[1].end(1)
            (call,) = self.reactor.getDelayedCalls()
            delays.append(call.getTime() - self.reactor.seconds())
            self.reactor.advance(delays[-1])
            running = self.running()
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])
        self.reactor.advance(60)
        running[1].end(1)
        (call,) = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime() - self.reactor.seconds(), 0.5)
        self.reactor.advance(0.5)
        self.stop()

    def test_spawn_fails(self) -> None:
        """A worker that cannot be started is tried again later."""
        self.reactor.fail_spawn = True
        self.supervisor.startService()
        self.assertEqual(self.reactor.spawned, [])
        self.reactor.fail_spawn = False
        self.reactor.advance(0.5)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.stop()

    def test_signal_all(self) -> None:
        """L{WorkerSupervisor.signal_all} reaches every running worker (SIGHUP: reload)."""
        running = self.start_all()
        self.supervisor.signal_all("HUP")
        self.assertEqual([running[i].signals for i in range(3)], [["HUP"]] * 3)
        self.stop()

    def test_stop(self) -> None:
        """
        Stopping sends SIGTERM to every worker, starts none again, and is
        done when the last one has ended.
        """
        running = self.start_all()
        running[0].end(1)  # ended on its own: a restart is due
        d = self.supervisor.stopService()
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)  # the kill timer only
        self.assertEqual([running[i].signals for i in (1, 2)], [["TERM"], ["TERM"]])
        running[1].end()
        self.assertNoResult(d)
        running[2].end()
        self.successResultOf(d)
        self.assertEqual(self.supervisor.started, [1, 1, 1])

    def test_stop_kills_stragglers(self) -> None:
        """A worker still running C{stop_timeout} seconds after SIGTERM gets SIGKILL."""
        running = self.start_all()
        d = self.supervisor.stopService()
        for process in (running[0], running[1]):
            process.end()
        self.reactor.advance(10)
        self.assertEqual(running[2].signals, ["TERM", "KILL"])
        running[2].end(-9)
        self.successResultOf(d)

    def test_stop_while_held(self) -> None:
        """Stopping while the others wait for worker 0: all are stopped, none released."""
        self.supervisor.startService()
        d = self.supervisor.stopService()
        self.assertEqual([p.signals for p in self.reactor.spawned], [["TERM"]] * 3)
        self.reactor.spawned[0].say(f"{READY_MARK} 0\n")
        for process in self.reactor.spawned:
            process.end()
        self.successResultOf(d)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.assertEqual([p.written for p in self.reactor.spawned[1:]], [RELEASE, RELEASE])

    def test_stop_with_none_running(self) -> None:
        """Stopping with no worker running is done at once, restarts cancelled."""
        self.supervisor.startService()
        for process in self.reactor.spawned:
            process.end(1)
        self.successResultOf(self.supervisor.stopService())


class WaitReleasedTests(SynchronousTestCase):
    """L{wait_released}: a held worker waits for the supervisor's word."""

    def pipe(self, data: bytes) -> int:
        """A pipe that holds C{data}, its writing end closed: the reading end."""
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        os.write(write, data)
        os.close(write)
        return read

    def test_released(self) -> None:
        """L{RELEASE} on the pipe: it returns, reading nothing after it."""
        fd = self.pipe(RELEASE + b"more")
        wait_released(fd)  # returns (raising nothing) on RELEASE
        self.assertEqual(os.read(fd, 100), b"more")

    def test_supervisor_gone(self) -> None:
        """The pipe closes first (the supervisor ended): the worker ends, saying why."""
        for data in (b"", RELEASE[:5]):
            error = self.assertRaises(SystemExit, wait_released, self.pipe(data))
            self.assertIn("the supervisor ended before the shared state was made", str(error))

    def test_something_else(self) -> None:
        """Another line: the worker ends, saying what it got."""
        error = self.assertRaises(SystemExit, wait_released, self.pipe(b"hello\n"))
        self.assertIn("b'hello\\n'", str(error))
