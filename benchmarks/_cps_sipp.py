"""
SIPp for cps.py: the UAS (in the background for a whole ladder), the
REGISTER of the UAS, and one UAC step at a fixed rate, with its counts
read from SIPp's C{-trace_stat} file.

The scenarios are the end-to-end tier's (sipedge/test/data/sipp): uac.xml
calls C{sip:[service]@[domain]} through the proxy (the remote host
argument), follows Record-Route for ACK and BYE; uas.xml answers 180, 200
and the BYE.
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from _cps_procs import cpu_seconds

from sipedge.test._e2e import SIPP_SCENARIOS, free_port


def free_media_port(host: str) -> int:
    """A base for SIPp's C{-mp}: it binds the port and the three above it."""
    for _ in range(100):
        base = free_port(host)
        if base % 2 or base > 65530:
            continue
        socks = []
        try:
            for p in range(base, base + 4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError(f"no four free UDP ports in a row on {host}")


def _base(sipp: str, scenario: str, host: str, port: int, errors: Path) -> list[str]:
    return [
        sipp,
        "-sf",
        str(SIPP_SCENARIOS / scenario),
        "-i",
        host,
        "-p",
        str(port),
        "-t",
        "u1",
        "-mp",
        str(free_media_port(host)),
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(errors),
        "-max_log_size",
        "2000000",
    ]


class Uas:
    """uas.xml in the background until L{stop}."""

    def __init__(self, sipp: str, workdir: Path, host: str) -> None:
        self.host = host
        self.port = free_port(host)
        self.out_path = workdir / f"uas-{self.port}.out"
        self._out = self.out_path.open("wb")
        self.process = subprocess.Popen(
            [
                *_base(sipp, "uas.xml", host, self.port, workdir / f"uas-{self.port}-errors.log"),
                "-l",
                "1000000",
                "-timeout",
                "3600s",
            ],
            cwd=workdir,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(
                f"SIPp UAS exited: {self.out_path.read_text(errors='replace')[-2000:]}"
            )

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) or 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._out.close()


def register(
    sipp: str, workdir: Path, host: str, proxy: str, domain: str, contact_port: int
) -> None:
    """Register C{sip:service@domain} -> C{sip:service@host:contact_port} (from C{host})."""
    port = free_port(host)
    result = subprocess.run(
        [
            *_base(sipp, "register.xml", host, port, workdir / f"register-{port}-errors.log"),
            proxy,
            "-s",
            "service",
            "-key",
            "domain",
            domain,
            "-key",
            "contact_port",
            str(contact_port),
            "-key",
            "expires",
            "3600",
            "-m",
            "1",
            "-timeout",
            "15s",
            "-timeout_error",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"REGISTER through {proxy} failed (SIPp exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}"
        )


@dataclass
class Step:
    rate: int
    calls: int  # asked for (-m)
    created: int = 0
    ok: int = 0
    failed: int = 0  # calls - ok: failed, timed out or never finished
    retrans: int = 0
    wall: float = 0.0  # seconds from SIPp start to exit
    creation_rate: float = 0.0  # SIPp's cumulative call rate
    setup_ms: float = 0.0  # mean INVITE -> 200 (SIPp's ResponseTime1)
    exit: int = 0
    uac_cpu: float = 0.0  # % of one core

    @property
    def fail_pct(self) -> float:
        return 100.0 * self.failed / max(self.calls, 1)

    @property
    def achieved(self) -> float:
        """Successful calls a second over the step."""
        return self.ok / self.wall if self.wall else 0.0


def _duration_ms(text: str) -> float:
    """SIPp's C{HH:MM:SS:usec} as milliseconds."""
    try:
        h, m, s, us = (int(x) for x in text.split(":"))
    except ValueError:
        return 0.0
    return ((h * 60 + m) * 60 + s) * 1000.0 + us / 1000.0


def run_uac(
    sipp: str,
    workdir: Path,
    host: str,
    proxy: str,
    domain: str,
    rate: int,
    seconds: float,
    recv_timeout_ms: int = 5000,
) -> Step:
    """
    One step: C{rate} calls a second for C{seconds} (C{-m rate*seconds},
    C{-d 0}), open loop (C{-l} far above what the step needs, so an
    overloaded proxy shows up as failures, not as SIPp slowing down).
    A call that waits more than C{recv_timeout_ms} for a message fails.
    """
    calls = max(1, int(rate * seconds))
    port = free_port(host)
    stat = workdir / f"uac-{rate}-{port}.csv"
    limit = max(1000, rate * (recv_timeout_ms // 1000 + 5))
    budget = int(seconds + recv_timeout_ms / 1000 + 20)
    cmd = [
        *_base(sipp, "uac.xml", host, port, workdir / f"uac-{rate}-{port}-errors.log"),
        proxy,
        "-s",
        "service",
        "-key",
        "domain",
        domain,
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-d",
        "0",
        "-l",
        str(limit),
        "-recv_timeout",
        str(recv_timeout_ms),
        "-timeout",
        f"{budget}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    result = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=budget + 30,
        stdin=subprocess.DEVNULL,
    )
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    step = Step(
        rate=rate, calls=calls, wall=wall, exit=result.returncode, uac_cpu=100.0 * cpu / wall
    )
    try:
        lines = [line for line in stat.read_text().splitlines() if line.strip()]
    except OSError:
        lines = []
    if len(lines) >= 2:
        names = lines[0].rstrip(";").split(";")
        values = dict(zip(names, lines[-1].rstrip(";").split(";"), strict=False))
        step.created = int(values.get("TotalCallCreated", 0))
        step.ok = int(values.get("SuccessfulCall(C)", 0))
        step.retrans = int(values.get("Retransmissions(C)", 0))
        step.creation_rate = float(values.get("CallRate(C)", 0) or 0)
        step.setup_ms = _duration_ms(values.get("ResponseTime1(C)", ""))
    step.failed = calls - step.ok
    return step
