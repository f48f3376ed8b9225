"""
Helpers for the end-to-end tier: the real C{twistd sipedge} in a child
process on loopback, and real SIP peers (SIPp from Debian's C{sip-tester}).

Every port is chosen by the OS (sipedge listens on port 0 and its log says
which port it got), every wait is bounded, and every process is stopped in
a cleanup. A missing tool skips the test with the reason, unless
C{SIPEDGE_REQUIRE_TOOLS=1} (set by C{.ci/run}), where it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

import sipedge

ROOT = Path(sipedge.__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
SIPP_SCENARIOS = DATA / "sipp"

_LISTENING = re.compile(r"Listening for SIP on (UDP|TCP|TLS) (\S+) port (\d+)")


def require_tool(name: str) -> str:
    """The path of program C{name}; skip (or fail, in CI) without it."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install {_PACKAGES.get(name, name)})"
        if os.environ.get("SIPEDGE_REQUIRE_TOOLS") == "1":
            raise AssertionError(f"SIPEDGE_REQUIRE_TOOLS=1 but {reason}")
        raise SkipTest(reason)
    return path


_PACKAGES = {"sipp": "sip-tester", "sipsak": "sipsak", "baresip": "baresip-core",
             "sslscan": "sslscan"}


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_DGRAM) -> int:
    """A port the OS says is free now on C{host} for both UDP and TCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        return int(port)
    raise RuntimeError("no free port found")


def sipp_counter(output: str, name: str) -> int:
    """The cumulative value of counter C{name} in SIPp's last statistics screen."""
    found = re.findall(rf"{re.escape(name)}\s+\|\s+\d+\s+\|\s+(\d+)", output)
    if not found:
        raise AssertionError(f"no {name!r} counter in SIPp's output:\n{output[-2000:]}")
    return int(found[-1])


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
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._log = self.log_path.open("ab")
        offset = self._log.tell()  # this run's lines only (the log is kept across restarts)
        self.process = subprocess.Popen(
            [*_twistd(), "-n", "--pidfile=", "--logfile=-",
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

    @ivar ports: C{{"UDP": port, ...}} as sipedge logged them.
    """

    plugin = "sipedge"
    config_name = "sipedge.toml"
    log_name = "sipedge.log"

    def __init__(self, workdir: Path, config_text: str) -> None:
        super().__init__(workdir, config_text)
        self.ports: dict[str, int] = {}

    def _ready(self, text: str) -> bool:
        if "sipedge started" not in text:
            return False
        self.ports = {t: int(p) for t, _, p in _LISTENING.findall(text)}
        return True


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


def free_port_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """
    C{count} consecutive UDP ports (from an even one) that are free now on
    C{host}, for a relay's port range.
    """
    for _ in range(50):
        start = free_port(host)
        start -= start % 2
        sockets = []
        try:
            for port in range(start, start + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind((host, port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return start, start + count - 1
    raise RuntimeError(f"no {count} free consecutive ports found")


class Sipp:
    """Runs SIPp with bounded time and collects its output."""

    def __init__(self, workdir: Path) -> None:
        self.path = require_tool("sipp")
        self.workdir = workdir.absolute()
        self._background: list[subprocess.Popen[bytes]] = []

    def command(self, scenario: str, *args: Any, local_ip: str = "127.0.0.1",
                port: int | None = None, transport: str = "u1", timeout: float = 60.0) -> list[str]:
        port = port or free_port(local_ip)
        return [
            self.path, "-sf", str(SIPP_SCENARIOS / scenario), "-i", local_ip, "-p", str(port),
            "-t", transport, "-mp", str(free_port(local_ip)), "-nostdin",
            "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err",
            "-error_file", str(self.workdir / f"{scenario}-{port}-errors.log"),
            *map(str, args),
        ]

    def run(
        self, scenario: str, *args: Any, timeout: float = 60.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a scenario to the end (C{-m} must be among C{args})."""
        return subprocess.run(
            self.command(scenario, *args, timeout=timeout, **kw),
            cwd=self.workdir, capture_output=True, text=True, timeout=timeout + 30,
            stdin=subprocess.DEVNULL,
        )

    def start(
        self, scenario: str, *args: Any, timeout: float = 60.0, **kw: Any
    ) -> subprocess.Popen[bytes]:
        """Start a scenario in the background (a UAS); stopped by L{stop_all}."""
        out = (self.workdir / f"{scenario}-{len(self._background)}.out").open("wb")
        process = subprocess.Popen(
            self.command(scenario, *args, timeout=timeout, **kw),
            cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._background.append(process)
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


def add_user(config_path: Path, user: str, password: str) -> None:
    """C{sipedge user add} in a child process, the password on standard input."""
    result = subprocess.run(
        [sys.executable, "-m", "sipedge.cli", "user", "add", "--config", str(config_path), user],
        input=password + "\n", capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        raise AssertionError(f"sipedge user add failed: {result.stderr}")


# -- SIPVicious (Debian: sipvicious) ------------------------------------------------

_PACKAGES.update({
    "svmap": "sipvicious", "svwar": "sipvicious", "svcrack": "sipvicious",
    "sipvicious_svmap": "sipvicious", "sipvicious_svwar": "sipvicious",
    "sipvicious_svcrack": "sipvicious",
})

# Runs a SIPVicious tool's main() with its own arguments, with two repairs
# an attacker would make too, and one for the tests' time budget:
# - svwar and svcrack 0.3.3 ignore -b (they never pass it on), so their
#   socket is bound to the address given here (the attacker's loopback
#   address) instead of all interfaces;
# - svcrack 0.3.3 crashes (KeyError 'noncecount') on a challenge whose qop
#   is a list such as "auth,auth-int": the nonce count starts at 1 (each of
#   its answers uses a fresh nonce);
# - their socket timeout (how long they wait for stragglers at the end,
#   10 s for svcrack) is cut to 2 s.
_SIPVICIOUS_LAUNCHER = r"""
import importlib, os, sys
tool_path, bind, *argv = sys.argv[1:]
real = os.path.realpath(tool_path)
sys.path.insert(0, os.path.dirname(real))
name = os.path.basename(real)
name = name[len("sipvicious_"):] if name.startswith("sipvicious_") else name
module = importlib.import_module("sipvicious." + name)
from sipvicious.libs import svhelper
for cls_name in ("TakeASip", "ASipOfRedWine"):
    cls = getattr(module, cls_name, None)
    if cls is None:
        continue
    def __init__(self, *args, _init=cls.__init__, **kwargs):
        kwargs["bindingip"] = bind
        _init(self, *args, **kwargs)
        self.sock.settimeout(2)
    cls.__init__ = __init__
_challenge_response = svhelper.challengeResponse
def challenge_response(auth, method, uri):
    auth.setdefault("noncecount", 1)
    return _challenge_response(auth, method, uri)
svhelper.challengeResponse = challenge_response
sys.argv = [name, *argv]
sys.exit(module.main())
"""


def sipvicious_tool(name: str) -> str:
    """
    The path of SIPVicious' C{name} (C{svmap}, C{svwar}, C{svcrack}):
    C{sipvicious_<name>} (newer packages) or C{<name>} (Debian's 0.3.3);
    skip (or fail, in CI) without it.
    """
    for candidate in (f"sipvicious_{name}", name):
        path = shutil.which(candidate)
        if path is not None:
            return path
    return require_tool(name)


def run_sipvicious(
    name: str, bind: str, *args: Any, timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run SIPVicious' C{name} with C{args}, its socket bound to C{bind}
    (see L{_SIPVICIOUS_LAUNCHER}), under the interpreter of its own script,
    for at most C{timeout} seconds. Its report is on stdout, its log
    (C{-v}) on stderr.
    """
    path = sipvicious_tool(name)
    with open(os.path.realpath(path), "rb") as script:
        first = script.readline().decode(errors="replace")
    interpreter = first[2:].strip().split()[0] if first.startswith("#!") else "python3"
    if os.path.basename(interpreter) == "env":
        interpreter = first[2:].strip().split()[1]
    return subprocess.run(
        [interpreter, "-c", _SIPVICIOUS_LAUNCHER, path, bind, *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(cwd) if cwd is not None else os.environ.get("HOME", "/")},
    )


def sipvicious_table(output: str) -> list[tuple[str, str]]:
    """The rows of the table a SIPVicious tool prints (its header left out)."""
    rows = re.findall(r"^\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$", output, re.MULTILINE)
    return [row for row in rows if row not in (
        ("SIP Device", "User Agent"), ("Extension", "Authentication"), ("Extension", "Password"),
    )]
