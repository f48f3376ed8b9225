"""
A user's calls under a distributed flood, through the real proxy, twistd
sipedge, on its defaults.

A SIPp caller places calls (INVITE/100/180/200/ACK/BYE/200 over UDP) at a
modest fixed rate through sipedge to a registered SIPp UAS, while many
sources on the loopback network (127.2.0.1 upwards; one socket each, from
one or two generator processes, benchmarks/_flood_gen.py) send OPTIONS,
REGISTERs for unknown users and INVITEs to unknown users, each source
within its own per-source budget (--per-source, 12 a second by default: 4
of each kind, the unauthenticated budget being 5 a second per kind). The
flood rate rises step by step; each step uses fresh sources.

Run: python benchmarks/flood.py [--rates 0,2000,4000,...] [--call-rate 10]
         [--seconds 20] [--auth] [--keep]

A step is held when at least 99% of its calls succeed. The summary prints
the highest total flood rate held (the rate the generators achieved, not
only the rate asked), the proxy's CPU at each step, how much of the flood
the proxy shed before parsing (sipedge_security_events{event="flood_shed"}
from its metrics endpoint), and the proxy's CPU per dropped packet: the
extra CPU between two held steps divided by the extra packets shed.

The caller is trusted (127.0.0.10/32 in sip.trusted), or with --auth one
of our users, registered with digest from 127.0.0.30 and challenged on
every INVITE (authenticated traffic). The UAS (127.0.0.20) registers
sip:service@sipedge.bench with digest. sipedge's configuration is its
defaults plus the domain, the trusted caller and a metrics endpoint.

This is a benchmark, not a test: on a shared machine the generators, SIPp
and other jobs take the same cores as the proxy; the load average is
printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import math
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _cps_procs import ROOT, CpuMeter, SipEdge, checkout_version, loadavg, udp_drops
from _cps_sipp import Step, Uas, register, run_uac

from sipedge.testing import free_port

BENCHMARKS = Path(__file__).resolve().parent
UAC_IP = "127.0.0.10"
UAS_IP = "127.0.0.20"
CALLER_IP = "127.0.0.30"
DOMAIN = "sipedge.bench"
SERVICE_AUTH = ("service", "flood-bench-secret")
CALLER_AUTH = ("caller", "flood-bench-caller-secret")
DEFAULT_RATES = "0,2000,4000,8000,12000,16000,20000,24000"
#: Sources per generator process at most (file descriptors, and one core).
PER_GENERATOR = 12000
MIN_OK = 0.99


def shed_count(metrics_url: str) -> int | None:
    """C{flood_shed} from the proxy's metrics endpoint, or C{None}."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=30) as response:
            text = response.read().decode()
    except OSError:
        return None
    match = re.search(r'sipedge_security_events_total\{event="flood_shed"\} ([0-9.e+]+)', text)
    return int(float(match.group(1))) if match else None


class Flood:
    """The generator processes of one step."""

    def __init__(
        self, proxy: SipEdge, rate: int, per_source: float, seconds: float, step: int
    ) -> None:
        self.processes: list[subprocess.Popen[str]] = []
        if rate <= 0:
            return
        generators = max(1, math.ceil(rate / PER_GENERATOR))
        sources = math.ceil(rate / per_source / generators)
        for g in range(generators):
            # Fresh sources for every step: 127.(2 + step).x.y.
            first = str(ipaddress.IPv4Address(f"127.{2 + step}.0.1") + g * sources)
            command = [
                sys.executable, str(BENCHMARKS / "_flood_gen.py"), proxy.host, str(proxy.port),
                DOMAIN, "--first", first, "--sources", str(sources),
                "--rate", str(rate / generators), "--seconds", str(seconds),
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    stdin=subprocess.DEVNULL,
                )
            )
        self.sources = sources * generators

    def wait(self, timeout: float) -> tuple[int, float]:
        """(packets sent, seconds) over all generators."""
        sent, seconds = 0, 0.0
        for process in self.processes:
            try:
                out, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            match = re.search(r"sent (\d+) errors (\d+) seconds ([0-9.]+)", out or "")
            if match is None:
                print(f"    generator: {out.strip()[-500:]}")
                continue
            sent += int(match.group(1))
            seconds = max(seconds, float(match.group(3)))
        return sent, seconds

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


class Row:
    def __init__(self, rate: int, achieved: float, sources: int, step: Step, cpu: dict[str, float],
                 shed: int | None, drops: int | None, cpu_seconds: float) -> None:  # fmt: skip
        self.rate = rate
        self.achieved = achieved
        self.sources = sources
        self.step = step
        self.cpu = cpu
        self.shed = shed
        self.drops = drops
        self.cpu_seconds = cpu_seconds

    @property
    def held(self) -> bool:
        return self.step.ok >= MIN_OK * self.step.calls


HEADER = (
    f"{'flood':>6} {'sent/s':>7} {'srcs':>5} {'calls':>5} {'ok':>5} {'fail%':>6} {'p50':>5}"
    f" {'p99':>6} {'proxy':>5} {'shed/s':>7} {'kdrop':>6} {'box':>4}  verdict"
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_row(row: Row) -> str:
    s = row.step
    shed = "-" if row.shed is None else f"{row.shed / row.cpu['wall']:.0f}"
    drops = "-" if row.drops is None else str(row.drops)
    return (
        f"{row.rate:>6} {row.achieved:>7.0f} {row.sources:>5} {s.calls:>5} {s.ok:>5}"
        f" {s.fail_pct:>6.2f} {_ms(s.setup_p50):>5} {_ms(s.setup_p99):>6}"
        f" {row.cpu['total']:>5.0f} {shed:>7} {drops:>6} {row.cpu['machine']:>4.0f}"
        f"  {'held' if row.held else 'NOT held'}"
    )


def run(args: argparse.Namespace, sipp: str, workdir: Path) -> list[Row]:
    metrics_port = free_port("127.0.0.1")
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    proxy = SipEdge(
        workdir / "sipedge",
        domain=DOMAIN,
        trusted=f"{UAC_IP}/32",
        extra_config=f'[metrics]\nlisten = "tcp:127.0.0.1:{metrics_port}"\n',
        profile=workdir / "sipedge.pstats" if args.profile else None,
    )
    rows: list[Row] = []
    deadline = time.monotonic() + args.max_minutes * 60
    with contextlib.ExitStack() as stack:
        stack.callback(proxy.stop)
        proxy.start()
        uas = Uas(sipp, workdir, UAS_IP)
        stack.callback(uas.stop)
        address = f"{proxy.host}:{proxy.port}"
        proxy.add_user(*SERVICE_AUTH)
        register(sipp, workdir, UAS_IP, address, DOMAIN, uas.port, auth=SERVICE_AUTH)
        caller_ip, scenario = UAC_IP, "uac.xml"
        extra: tuple[str, ...] = ()
        who = f"caller {UAC_IP} (trusted)"
        if args.auth:
            user, password = CALLER_AUTH
            proxy.add_user(user, password)
            register(sipp, workdir, CALLER_IP, address, DOMAIN, free_port(CALLER_IP),
                     CALLER_AUTH, user)  # fmt: skip
            caller_ip, scenario = CALLER_IP, "uac_auth.xml"
            extra = ("-key", "caller", user, "-key", "caller_domain", DOMAIN,
                     "-au", user, "-ap", password, "-auth_uri", f"service@{DOMAIN}")  # fmt: skip
            who = f"caller sip:{user}@{DOMAIN} from {CALLER_IP} (registered; digest per INVITE)"
        print(f"  proxy {address}, UAS {UAS_IP}:{uas.port}, {who}, {args.call_rate} calls/s")
        print("  " + HEADER, flush=True)
        for index, rate in enumerate(args.rates):
            if time.monotonic() + args.seconds + args.settle + 40 > deadline:
                print(f"  (time budget of {args.max_minutes:g} min spent: stop before {rate})")
                break
            flood = Flood(proxy, rate, args.per_source, args.settle + args.seconds + 8, index)
            stack.callback(flood.stop)
            time.sleep(args.settle)
            meter = CpuMeter(proxy.pids())
            shed0 = shed_count(metrics_url)
            drops0 = udp_drops(proxy.host, proxy.port)
            step = run_uac(sipp, workdir, caller_ip, address, DOMAIN, args.call_rate,
                           args.seconds, scenario=scenario, extra=extra)  # fmt: skip
            cpu = meter.stop()
            shed1 = shed_count(metrics_url)
            drops1 = udp_drops(proxy.host, proxy.port)
            sent, seconds = flood.wait(timeout=args.settle + args.seconds + 60)
            achieved = sent / seconds if seconds else 0.0
            row = Row(
                rate, achieved, getattr(flood, "sources", 0), step, cpu,
                None if shed0 is None or shed1 is None else shed1 - shed0,
                None if drops0 is None or drops1 is None else drops1 - drops0,
                cpu["total"] / 100 * cpu["wall"],
            )  # fmt: skip
            rows.append(row)
            print("  " + format_row(row), flush=True)
            if proxy.process is None or proxy.process.poll() is not None:
                print("  (the proxy exited)")
                break
            if not row.held and args.stop_at_failure:
                break
            time.sleep(2)  # the last step's sources fall silent
    return rows


def summary(rows: list[Row]) -> None:
    held = [r for r in rows if r.held and r.rate > 0]
    if not rows:
        return
    if held:
        top = max(held, key=lambda r: r.achieved)
        print(
            f"highest flood held: {top.achieved:.0f} packets a second (asked {top.rate}) from"
            f" {top.sources} sources, {top.step.ok}/{top.step.calls} calls ok"
            f" ({100 - top.step.fail_pct:.2f}%), proxy at {top.cpu['total']:.0f}% of one core"
        )
    else:
        print("no flood rate held (>= 99% of calls)")
    # Marginal CPU per shed packet: between the lowest and the highest step
    # that both shed (so the admitted work is the same: the global budget).
    shedding = [r for r in rows if r.shed and r.shed > 0]
    if len(shedding) >= 2:
        low, high = shedding[0], shedding[-1]
        dcpu = high.cpu_seconds - low.cpu_seconds
        dshed = high.shed - low.shed  # type: ignore[operator]
        if dshed > 0:
            print(
                f"CPU per dropped packet: {dcpu / dshed * 1e6:.1f} us (extra proxy CPU"
                f" {dcpu:.2f} s for {dshed} more packets shed, {low.rate} -> {high.rate} asked)"
            )
    for r in rows:
        if r.rate > 0 and r.achieved:
            per_packet = r.cpu_seconds / r.cpu["wall"] * 1e6 / r.achieved
            print(
                f"  at {r.achieved:.0f}/s: proxy CPU {per_packet:.1f} us per flood packet"
                " (all its work, the calls' included)"
            )


def print_profile(path: Path, top: int) -> None:
    """The functions that took sipedge's time, by their own time."""
    if not path.exists():
        print("no profile written (twistd did not stop cleanly?)")
        return
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print("sipedge under cProfile, by own time (all steps together):")
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    for line in lines[start : start + top + 1]:
        print("  " + line.replace(str(ROOT) + "/", ""))


def in_process(repeat: int = 15, number: int = 2000) -> None:
    """
    What one shed datagram costs sipedge in this process, best of
    C{repeat} runs (the least disturbed by other jobs): a flood INVITE from
    an unauthenticated source with the global budget spent, through the UDP
    transport's receive path (admission, keep-alive and STUN checks, the
    screen), against the full parse of the same datagram alone.
    """
    import timeit

    from twisted.internet.task import Clock

    from sipedge.message import parse_datagram
    from sipedge.security import Security
    from sipedge.testing import RecordingReceiver
    from sipedge.transport import SipDatagramProtocol

    sys.path.insert(0, str(BENCHMARKS))
    from _flood_gen import INVITE

    data = INVITE.format(domain=DOMAIN, ip="127.2.0.1", port=5060, n=1, u=1).encode()
    if not hasattr(Security, "screen"):  # a checkout from before the screen
        print("in process: this checkout has no pre-parse screen")
        return
    security = Security(clock=Clock())
    protocol = SipDatagramProtocol(
        RecordingReceiver(), admission=security.admit, screen=security.screen
    )
    protocol.local_host, protocol.local_port = "127.0.0.1", 5060
    sources = [(f"127.2.{i // 250}.{i % 250 + 1}", 5060) for i in range(1000)]
    for source in sources * 2:  # spend the burst
        protocol.datagramReceived(data, source)

    def best(work: Any) -> float:
        runs = timeit.repeat(work, number=1, repeat=repeat)
        return min(runs) / number * 1e6

    def shed() -> None:
        receive = protocol.datagramReceived
        for k in range(number):
            receive(data, sources[k % 1000])

    def parse() -> None:
        for _ in range(number):
            parse_datagram(data)

    admitted = protocol.received
    shed_us, parse_us = best(shed), best(parse)
    assert protocol.received == admitted, "the flood INVITEs were meant to be shed"
    print(
        f"in process (best of {repeat}): a shed flood INVITE costs the UDP receive path"
        f" {shed_us:.1f} us (admission, keep-alive/STUN checks, the screen); the full parse of"
        f" it alone {parse_us:.1f} us"
    )
    from _flood_admitted import admitted_costs

    costs = admitted_costs(DOMAIN)
    print(
        "in process (best of 7): an admitted flood request costs, parse to answer,"
        + "; ".join(f" {kind} {us:.0f} us" for kind, us in costs.items())
        + " (REGISTER: a 401 challenge; INVITE: a 404 for an unknown user)"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--rates", default=DEFAULT_RATES, help=f"flood packets a second (default {DEFAULT_RATES})")
    add("--call-rate", type=int, default=10, help="the user's calls a second (default 10)")
    add("--seconds", type=float, default=20.0, help="calls per step, in seconds (default 20)")
    add("--settle", type=float, default=3.0, help="seconds of flood before the calls (default 3)")
    add("--per-source", type=float, default=12.0,
        help="packets a second from each source (default 12: 4 of each kind)")  # fmt: skip
    add("--auth", action="store_true", help="the caller is a registered user (digest per INVITE)")
    add("--stop-at-failure", action="store_true", help="stop at the first step not held")
    add("--max-minutes", type=float, default=15.0, help="time budget (default 15)")
    add("--keep", action="store_true", help="keep the work directory")
    add("--profile", action="store_true",
        help="run sipedge under cProfile (twistd --profile) and print where its time went")
    add("--top", type=int, default=20, help="profile entries to print (default 20)")
    args = parser.parse_args(argv)
    try:
        args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated integers")
    if not args.rates or any(r < 0 or r > 60000 for r in args.rates) or len(args.rates) > 20:
        parser.error("--rates: at most 20 steps of 0 to 60000")
    if not 1 <= args.call_rate <= 200 or not 5 <= args.seconds <= 120:
        parser.error("--call-rate: 1 to 200; --seconds: 5 to 120")
    if not 1 <= args.per_source <= 1000 or not 1 <= args.max_minutes <= 60:
        parser.error("--per-source: 1 to 1000; --max-minutes: 1 to 60")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        print("SIPp is not installed (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    print(
        "a user's calls under a distributed flood (OPTIONS, REGISTERs for unknown users,"
        " INVITEs to unknown users), sipedge on its defaults, one process"
    )
    print(f"sipedge: {checkout_version()}; {os.cpu_count()} cores, load average {loadavg()}")
    print(
        "columns: flood = packets/s asked, sent/s = sent; srcs = sources; p50/p99 = INVITE->200"
        " ms; proxy = % of one core; shed/s = dropped unparsed over the global budget; kdrop ="
        " datagrams the kernel dropped at the proxy's socket; box = whole machine busy %"
    )
    in_process()
    workdir = Path(tempfile.mkdtemp(prefix="sipedge-flood-"))
    try:
        rows = run(args, sipp, workdir)
        summary(rows)
        if args.profile:
            print_profile(workdir / "sipedge.pstats", args.top)
        print(f"load average at the end: {loadavg()}")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
