# -*- test-case-name: sipedge.test.test_e2e -*-
"""
SIPp (Debian: C{sip-tester}) as a scripted peer: the scenarios shipped in
C{sipedge/testing/sipp/}, run with bounded time, their counters read back.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from sipedge.testing._processes import SipEdgeProcess
from sipedge.testing._tools import free_port, require_tool, tcp_listening, udp_ports_free

__all__ = ["SIPP_SCENARIOS", "Sipp", "media_port", "sipp_counter", "start_with_sipp"]

#: The SIPp scenarios that come with sipedge (C{uac.xml}, C{uas.xml}, ...).
SIPP_SCENARIOS = Path(__file__).parent / "sipp"


def sipp_counter(output: str, name: str) -> int:
    """The cumulative value of counter C{name} in SIPp's last statistics screen."""
    found = re.findall(rf"{re.escape(name)}\s+\|\s+\d+\s+\|\s+(\d+)", output)
    if not found:
        raise AssertionError(f"no {name!r} counter in SIPp's output:\n{output[-2000:]}")
    return int(found[-1])


#: Where SIPp's RTP echo ports (C{-mp}) are chosen: below the kernel's
#: ephemeral range (32768 on), which other tests' C{bind(("", 0))} and
#: L{free_port} draw from, and outside the relay's default 30000-30999.
#: A port from the ephemeral range was free when chosen but could be taken
#: by another test before SIPp bound it ("Unable to bind audio RTP socket",
#: errno 98), which failed a test now and then when suites ran side by side.
_MEDIA_PORTS = (20000, 29990)


def media_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """
    An even port for SIPp's C{-mp} on C{host}: it and the three above it
    (SIPp binds audio on it and video two above, RTCP beside each) free now
    for UDP.
    """
    choose = rng or random.SystemRandom()
    for _ in range(100):
        start = choose.randrange(_MEDIA_PORTS[0], _MEDIA_PORTS[1], 2)
        if udp_ports_free(host, start, 4):
            return start
    raise RuntimeError(f"no four free UDP ports for SIPp's media on {host}")


#: What SIPp prints when a port it was given is taken.
_PORT_TAKEN = re.compile(r"Unable to bind .*errno = 98")


class Sipp:
    """Runs SIPp with bounded time and collects its output."""

    def __init__(self, workdir: Path, rng: random.Random | None = None) -> None:
        """
        @param rng: chooses the media ports (L{media_port}); a seeded one
            makes the choice known to a test.
        """
        self.path = require_tool("sipp")
        self.workdir = workdir.absolute()
        self._rng = rng
        self._background: list[subprocess.Popen[bytes]] = []

    def command(self, scenario: str, *args: Any, local_ip: str = "127.0.0.1",
                port: int | None = None, transport: str = "u1", timeout: float = 60.0) -> list[str]:
        port = port or free_port(local_ip)
        return [
            self.path, "-sf", str(SIPP_SCENARIOS / scenario), "-i", local_ip, "-p", str(port),
            "-t", transport, "-mp", str(media_port(local_ip, self._rng)), "-nostdin",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err",
            "-error_file", str(self.workdir / f"{scenario}-{port}-errors.log"),
            *map(str, args),
        ]

    def run(
        self, scenario: str, *args: Any, timeout: float = 60.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """
        Run a scenario to the end (C{-m} must be among C{args}). If SIPp
        could not bind a port it was given (taken in between by another
        process), it is run again on new ports, at most twice more: SIPp
        did not start, so nothing of the scenario was sent. (A port the
        caller chose, C{port=}, is tried again as it is.)
        """
        for _ in range(3):
            result = subprocess.run(
                self.command(scenario, *args, timeout=timeout, **kw),
                cwd=self.workdir, capture_output=True, text=True, timeout=timeout + 30,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode == 0 or not _PORT_TAKEN.search(result.stdout + result.stderr):
                break
            time.sleep(0.5)  # a port the caller chose may be free again in a moment
        return result

    def start(
        self, scenario: str, *args: Any, timeout: float = 60.0, **kw: Any
    ) -> subprocess.Popen[bytes]:
        """
        Start a scenario in the background (a UAS); stopped by L{stop_all}.
        Over TCP or TLS, return once it listens on its port (at most 10 s:
        a caller started at once was refused under load), or has ended.
        """
        out = (self.workdir / f"{scenario}-{len(self._background)}.out").open("wb")
        command = self.command(scenario, *args, timeout=timeout, **kw)
        process = subprocess.Popen(
            command,
            cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._background.append(process)
        if command[command.index("-t") + 1][0] in "tl":  # t1, tn, l1, ln: it listens
            port = int(command[command.index("-p") + 1])
            deadline = time.monotonic() + 10
            while (time.monotonic() < deadline and process.poll() is None
                   and not tcp_listening(port)):
                time.sleep(0.05)
        return process

    def stop_all(self) -> None:
        for process in self._background:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self._background.clear()


def start_with_sipp(test: Any, config_text: str) -> tuple[Path, SipEdgeProcess, Sipp]:
    """
    For an end-to-end C{test} (skipped without SIPp): a new work directory,
    sipedge started on C{config_text} in it and a L{Sipp} there, both
    stopped by C{test}'s cleanups. Returns the directory (absolute), the
    process and the L{Sipp}.
    """
    require_tool("sipp")
    work = Path(test.mktemp())
    work.mkdir(parents=True)
    proxy = SipEdgeProcess(work, config_text)
    test.addCleanup(proxy.stop)
    proxy.start()
    sipp = Sipp(work)
    test.addCleanup(sipp.stop_all)
    return proxy.workdir, proxy, sipp
