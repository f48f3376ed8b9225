# -*- test-case-name: sipedge.test.test_e2e -*-
"""
The real C{twistd sipedge} and C{twistd sipedge-relay} in child processes
on loopback: every port chosen by the OS (the process listens on port 0
and its log says which port it got), every wait bounded, every process
stopped by L{_TwistdProcess.stop} (call it in a cleanup).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["RelayProcess", "SipEdgeProcess", "add_user"]

_LISTENING = re.compile(r"Listening for SIP on (UDP|TCP|TLS) (\S+) port (\d+)")
_OWN_SOCKET = re.compile(r"Worker (\d+)'s own (UDP|TCP|TLS) socket: (\S+) (\d+)")
_STARTED_WORKER = re.compile(r"Started worker (\d+) \(pid (\d+)\)")
_STARTED_COUNT = re.compile(r"sipedge started: (\d+) workers")


def _twistd() -> list[str]:
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class _TwistdProcess:
    """
    C{twistd -n <plugin> --config FILE} in a child process, its output in a
    log file of the work directory (kept across restarts).
    """

    #: What the command line starts with (C{ip netns exec NS}: in a namespace).
    command_prefix: tuple[str, ...] = ()
    #: The twistd plugin, the configuration and log file names.
    plugin = ""
    config_name = ""
    log_name = ""

    def __init__(self, workdir: Path, config_text: str) -> None:
        workdir = workdir.absolute()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / self.config_name
        self.config_path.write_text(config_text)
        self.log_path = workdir / self.log_name
        self.process: subprocess.Popen[bytes] | None = None

    def _ready(self, text: str) -> bool:
        """Whether this run's log C{text} says the process is up (and note what it says)."""
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it listens (at most C{timeout} s)."""
        env = dict(os.environ)  # sipedge is installed (also editable): no PYTHONPATH needed
        self._log = self.log_path.open("ab")
        offset = self._log.tell()  # this run's lines only (the log is kept across restarts)
        self._offset = offset
        self.process = subprocess.Popen(
            [*self.command_prefix, *_twistd(), "-n", "--pidfile=", "--logfile=-",
             self.plugin, "--config", str(self.config_path)],
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            if self._ready(text):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(
            f"{self.plugin} did not start within {timeout} s:\n{self.log()[-3000:]}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 20.0) -> str:
        """
        The first match of the regular expression C{pattern} in the log,
        waiting for it (bounded): a worker's lines reach the log through
        its supervisor a moment after the worker acted.

        @raise AssertionError: if it is not logged within C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found is not None:
                return found.group(0)
            if time.monotonic() >= deadline:
                raise AssertionError(f"{pattern!r} not logged within {timeout} s:\n"
                                     + self.log()[-3000:])
            time.sleep(0.1)

    def run_log(self) -> str:
        """The log of this run (since the last L{start})."""
        return self.log_path.read_bytes()[getattr(self, "_offset", 0):].decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after C{timeout} s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        self._log.close()


class SipEdgeProcess(_TwistdProcess):
    """
    C{twistd -n sipedge --config FILE} in a child process.

    @ivar ports: C{{"UDP": port, ...}} as sipedge logged them (the last
        listener of each transport).
    @ivar listeners: C{{("UDP", "127.0.0.1"): port, ("UDP", "::1"): port,
        ...}}: every listener, by transport and address (dual stack).
    """

    plugin = "sipedge"
    config_name = "sipedge.toml"
    log_name = "sipedge.log"

    def __init__(self, workdir: Path, config_text: str) -> None:
        super().__init__(workdir, config_text)
        self.ports: dict[str, int] = {}
        self.listeners: dict[tuple[str, str], int] = {}

    def _ready(self, text: str) -> bool:
        if "sipedge started" not in text:
            return False
        found = _LISTENING.findall(text)
        self.ports = {t: int(p) for t, _, p in found}
        self.listeners = {(t, h): int(p) for t, h, p in found}
        return True

    def worker_ports(self) -> dict[int, dict[str, int]]:
        """
        With C{[process] workers} above 1: each worker's own port per
        transport (named in its Via and Record-Route), as this run logged them.
        """
        found: dict[int, dict[str, int]] = {}
        for index, transport, _, port in _OWN_SOCKET.findall(self.run_log()):
            found.setdefault(int(index), {})[transport] = int(port)
        return found

    @property
    def worker_count(self) -> int:
        """How many processes serve SIP: the workers this run started, or 1 (no supervisor)."""
        found = _STARTED_COUNT.search(self.run_log())
        return int(found.group(1)) if found else 1

    def worker_pids(self) -> dict[int, int]:
        """With workers: the process id of each worker's latest start in this run."""
        return {int(i): int(pid) for i, pid in _STARTED_WORKER.findall(self.run_log())}


_RELAY_STARTED = re.compile(r"sipedge-relay started: control on (tcp|tls):(\S+):(\d+)")


class RelayProcess(_TwistdProcess):
    """
    C{twistd -n sipedge-relay --config FILE} in a child process.

    @ivar control: C{(host, port)} of the control port, as the relay logged it.
    """

    plugin = "sipedge-relay"
    config_name = "relay.toml"
    log_name = "relay.log"

    def __init__(self, workdir: Path, config_text: str) -> None:
        super().__init__(workdir, config_text)
        self.control: tuple[str, int] = ("", 0)

    def _ready(self, text: str) -> bool:
        found = _RELAY_STARTED.search(text)
        if found is None:
            return False
        self.control = (found.group(2).strip("[]"), int(found.group(3)))
        return True


def add_user(config_path: Path, user: str, password: str) -> None:
    """C{sipedge user add} in a child process, the password on standard input."""
    result = subprocess.run(
        [sys.executable, "-m", "sipedge.cli", "user", "add", "--config", str(config_path), user],
        input=password + "\n", capture_output=True, text=True, timeout=30,
    )
    if result.returncode != 0:
        raise AssertionError(f"sipedge user add failed: {result.stderr}")
