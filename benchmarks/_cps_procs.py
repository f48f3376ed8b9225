"""
Process helpers for cps.py: CPU time and memory from /proc, and the two
proxies under test (C{twistd sipedge} and Kamailio) as child processes.

Every wait is bounded; every process started here is stopped by its id in
C{stop()} (SIGTERM, then SIGKILL).
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

from sipedge.testing import ROOT, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
BENCHMARKS = Path(__file__).resolve().parent


# --------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of C{pid} so far, or C{None} if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def status_kb(pid: int, key: str) -> int | None:
    """A C{kB} value (C{VmHWM}, C{VmRSS}) of /proc/PID/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """C{pid} and all its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 10_000:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # up to steal; guest time is already in user
    return total - idle, total


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class CpuMeter:
    """CPU time of a set of processes between two snapshots, per process."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._start = {p: cpu_seconds(p) or 0.0 for p in pids}
        self._machine = machine_ticks()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        """C{total} and C{busiest} CPU %% of one core, C{machine} busy %%, C{wall} s."""
        wall = max(time.monotonic() - self._t0, 1e-6)
        deltas = []
        for p in self.pids:
            now = cpu_seconds(p)
            if now is not None:
                deltas.append(now - self._start[p])
        busy0, total0 = self._machine
        busy1, total1 = machine_ticks()
        return {
            "wall": wall,
            "total": 100.0 * sum(deltas) / wall,
            "busiest": 100.0 * max(deltas, default=0.0) / wall,
            "machine": 100.0 * (busy1 - busy0) / max(total1 - total0, 1),
        }


def udp_bound(host: str, port: int) -> bool:
    """True if some socket is bound to UDP C{host:port} (from /proc/net/udp)."""
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(host), 'big')):08X}:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == want for line in lines)


def udp_drops(host: str, port: int) -> int | None:
    """Datagrams the kernel dropped at the UDP sockets bound to C{host:port} (full buffer)."""
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(host), 'big')):08X}:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    found = None
    for line in lines:  # with worker processes, one socket per worker (SO_REUSEPORT)
        fields = line.split()
        if len(fields) >= 13 and fields[1] == want:
            found = (found or 0) + int(fields[12])
    return found


def checkout_version() -> str:
    """The sipedge commit benchmarked, and whether the checkout has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %cd", "--date=short"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "sipedge"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (" + uncommitted changes in sipedge/" if dirty else "")


def _stop_pid(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --------------------------------------------------------------------------
# sipedge
# --------------------------------------------------------------------------

_LISTENING = re.compile(r"Listening for SIP on UDP (\S+) port (\d+)")


class SipEdge:
    """
    C{twistd -n sipedge --config FILE} in a child process, started the way
    C{sipedge.testing.SipEdgeProcess} starts it (PYTHONPATH has the
    checkout, the log goes to a file and tells the port), plus optional
    C{--profile} and C{--logger}. C{extra_config} is TOML text appended to
    the generated configuration (whole tables, such as C{[security]}).
    """

    name = "sipedge"

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str,
        trusted: str,
        profile: Path | None = None,
        log_level: str | None = None,
        gc_stats: bool = False,
        stages: list[str] | None = None,
        extra_config: str = "",
        workers: int = 1,
    ) -> None:
        self.workdir = workdir
        self.workers = workers
        # Always said: the default is one worker per core ("auto").
        extra_config += f"[process]\nworkers = {workers}\n"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "sipedge.toml"
        text = (
            "[sip]\n"
            f'domains = ["{domain}"]\n'
            'listen = ["udp:127.0.0.1:0"]\n'
            f'trusted = ["{trusted}"]\n'
            "record_route = true\n"
            "[state]\n"
            'path = "state"\n'
        )
        if stages:
            text += "[pipeline]\nstages = [" + ", ".join(f'"{s}"' for s in stages) + "]\n"
        text += extra_config
        self.config_path.write_text(text)
        from sipedge.config import load_config

        #: The request chain this configuration runs (sipedge's default unless C{stages}).
        self.stages: tuple[str, ...] = tuple(load_config(self.config_path).pipeline.stages)
        # [auth] stays at its default: sipedge offers MD5 first, the one
        # challenge SIPp answers (doc/interop.md).
        self.log_path = workdir / "sipedge.log"
        self.profile = profile
        self.log_level = log_level
        self.gc_stats = gc_stats
        self.process: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def describe(self) -> str:
        import twisted

        log = (
            f"log filtered at {self.log_level} (--sipedge-log)"
            if self.log_level
            else "sipedge's log observer at [log] level (info by default), "
            "standard output to the log file"
        )
        if self.gc_stats:
            log += "; gc.callbacks timing collections (--gc-stats)"
        log += "\n   chain: " + ", ".join(self.stages)
        return (
            f"twistd -n sipedge, Python {sys.version.split()[0]}, Twisted {twisted.__version__}, "
            + (f"a supervisor and {self.workers} worker processes ([process] workers); "
               if self.workers > 1 else "one process, one thread; ")
            + log
        )

    def command(self) -> list[str]:
        twistd = Path(sys.executable).parent / "twistd"
        cmd = [sys.executable, str(twistd), "-n", "--pidfile="]
        if self.log_level or self.gc_stats:
            cmd.append("--logger=_cps_log.observer")
        else:
            cmd.append("--logfile=-")
        if self.profile is not None:
            cmd += [f"--profile={self.profile}", "--profiler=cprofile", "--savestats"]
        return [*cmd, "sipedge", "--config", str(self.config_path)]

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        path = [str(ROOT), str(BENCHMARKS), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
        env["SIPEDGE_BENCH_LOG_LEVEL"] = self.log_level or "debug"
        env["SIPEDGE_BENCH_GC"] = "1" if self.gc_stats else "0"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if "sipedge started" in text:
                match = _LISTENING.search(text)
                if match is None:
                    break
                self.host, self.port = match.group(1), int(match.group(2))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"sipedge did not start within {timeout} s:\n{tail}")

    def pids(self) -> list[int]:
        """The process, and with workers its children (the workers) too."""
        if self.process is None:
            return []
        pids = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids += [int(p) for p in children.read_text().split()]
        except OSError:
            pass
        return pids

    def add_user(self, user: str, password: str) -> None:
        """C{sipedge user add} (the password on standard input), as the e2e harness does."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        result = subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "user", "add", "--config",
             str(self.config_path), user],
            input=password + "\n", capture_output=True, text=True, timeout=60, env=env,
            cwd=self.workdir,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"sipedge user add {user} failed: {result.stderr.strip()}")

    def gc_between(self, t0: float, t1: float) -> dict[str, float] | None:
        """
        Garbage collection in the wall-clock interval C{[t0, t1]} from the
        C{cps-gc} lines (C{--gc-stats}): C{total} ms, C{max} ms of one
        collection, C{full} collections of the oldest generation.
        """
        if not self.gc_stats:
            return None
        longest, full = 0.0, 0
        total0 = total1 = None
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("cps-gc"):
                continue
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            t = float(fields.get("t", 0))
            if line.startswith("cps-gc-total"):
                if t <= t0:
                    total0 = float(fields["ms"])
                if t <= t1:
                    total1 = float(fields["ms"])
            elif t0 <= t <= t1:
                longest = max(longest, float(fields["ms"]))
                full += fields.get("gen") == "2"
        total = (total1 or 0.0) - (total0 or 0.0)
        return {"total": total, "max": longest, "full": full}

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (twistd stops the reactor and writes the profile), then SIGKILL."""
        if self.process is not None:
            _stop_pid(self.process, timeout)
            self.process = None
            self._log.close()


# --------------------------------------------------------------------------
# Kamailio
# --------------------------------------------------------------------------

KAMAILIO_CFG = """\
#!KAMAILIO
# Generated by sipedge benchmarks/cps.py: a minimal stateful, record-routing
# proxy, the same job as sipedge's default chain for this call flow.
debug=2
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
listen=udp:127.0.0.1:{port}
alias="{domain}"

mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"

modparam("usrloc", "db_mode", 0)

request_route {{
    if (!mf_process_maxfwd_header("70")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE|SUBSCRIBE|REFER|NOTIFY")) {{
        record_route();
    }}
    if (uri == myself) {{
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
    }} else if ($si != "{trusted_ip}") {{
        sl_send_reply("403", "Relaying Denied");
        exit;
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"""


#: Kamailio's shared memory (-m) and per-process memory (-M), MB. Debian's
#: default of 64 MB shared runs out near 500 cps here (transactions linger
#: for tm's wait timer, about 5 s), which is a setting, not Kamailio's limit.
KAMAILIO_SHM_MB = 1024
KAMAILIO_PKG_MB = 16


def kamailio_path() -> str | None:
    return shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if os.path.exists(p)), None
    )


def _kamailio_modules() -> str:
    for path in (
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
        "/usr/local/lib64/kamailio/modules",
        "/usr/local/lib/kamailio/modules",
    ):
        if os.path.exists(os.path.join(path, "tm.so")):
            return path
    import glob

    found = glob.glob("/usr/lib/*/kamailio/modules/tm.so")
    if found:
        return os.path.dirname(found[0])
    raise RuntimeError("Kamailio's modules (tm.so) not found")


class Kamailio:
    """
    Kamailio with the generated configuration, in the foreground (C{-DD}:
    the creator stays attached; it forks one UDP worker, C{children=1},
    plus its timer and attendant processes). Its CPU is summed over all its
    processes; C{busiest} is the SIP worker.
    """

    name = "kamailio"

    def __init__(self, workdir: Path, *, domain: str, trusted_ip: str) -> None:
        binary = kamailio_path()
        if binary is None:
            raise RuntimeError("kamailio is not installed")
        self.binary: str = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.config_path = workdir / "kamailio.cfg"
        self.config_path.write_text(
            KAMAILIO_CFG.format(
                port=self.port, domain=domain, modules=_kamailio_modules(), trusted_ip=trusted_ip
            )
        )
        self.log_path = workdir / "kamailio.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._pids: list[int] = []

    def version(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].removeprefix("version: ").strip() if out.stdout else "?"

    def describe(self) -> str:
        return (
            f"{self.version()}, children=1 (one UDP worker) + timer/attendant processes, "
            f"-m {KAMAILIO_SHM_MB} MB shm, -M {KAMAILIO_PKG_MB} MB pkg,"
            " tm+rr+registrar/usrloc db_mode 0"
        )

    def start(self, timeout: float = 30.0) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "-f",
                str(self.config_path),
                "-DD",
                "-E",
                "-m",
                str(KAMAILIO_SHM_MB),
                "-M",
                str(KAMAILIO_PKG_MB),
                "-Y",
                str(self.workdir),
                "-P",
                str(self.workdir / "kamailio.pid"),
                "-w",
                str(self.workdir),
            ],
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if udp_bound(self.host, self.port) and len(descendants(self.process.pid)) >= 3:
                time.sleep(0.5)  # let the children finish their init
                self._pids = descendants(self.process.pid)
                return
            time.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"kamailio did not start within {timeout} s:\n{tail}")

    def pids(self) -> list[int]:
        return list(self._pids)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        pids = descendants(self.process.pid) if self.process.poll() is None else []
        _stop_pid(self.process, timeout)
        for pid in pids:  # children that outlived the main process, by id
            if pid != self.process.pid and _comm(pid) == "kamailio":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None
        self._log.close()
