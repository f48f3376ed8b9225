"""
Calls a second through the real proxy: SIPp calls through C{twistd sipedge}
at rising rates; the result is the highest rate held with under 1% failed
calls.

Run: python benchmarks/cps.py [--mode registered|relay] [--seconds N]
                              [--rates 100,200,...] [--no-kamailio] [--no-profile]

Call flow: INVITE, 100, 180, 200, ACK, BYE, 200 over UDP, stateful,
record-routing, no call hold (SIPp -d 0). UAC on 127.0.0.10, proxy on
127.0.0.1, UAS on 127.0.0.20; sipedge's C{trusted} is 127.0.0.10/32.
  registered (default): the UAS registers sip:service@sipedge.bench; the
      UAC calls that AOR, so every INVITE takes a location lookup.
  relay: the UAC calls sip:service@127.0.0.20:<uas port>; the proxy relays
      it because the UAC is trusted.

For each rate, SIPp's UAC places rate x seconds calls; the step is held if
under 1% of them failed and the successful calls kept up with the rate
(at least 90% of it). The ladder stops at the first step not held, or when
the proxy's SIP process used at least 95% of one core. Each step prints
calls, failures, retransmissions, mean INVITE->200 time, the proxy's CPU
(%% of one core, from /proc/PID/stat) and peak RSS (VmHWM), SIPp's own
CPU, and how busy the whole machine was.

When Kamailio is installed, the same ladder runs through it (a generated
minimal tm/rr/registrar config, children=1) and the ratio is printed.
Last, sipedge is run once more under cProfile at its top rate, and the
functions that take the time are printed.

This is a benchmark, not a test: numbers from a shared or small machine
(the load generator runs on the same cores) are indications only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cps_procs import ROOT, CpuMeter, Kamailio, SipEdge, kamailio_path, loadavg, status_kb
from _cps_sipp import Step, Uas, register, run_uac

UAC_IP = "127.0.0.10"
UAS_IP = "127.0.0.20"
DOMAIN = "sipedge.bench"
DEFAULT_RATES = "100,200,300,400,500,600,800,1000,1200,1500,2000,2500,3000"
MAX_FAIL_PCT = 1.0
MIN_ACHIEVED = 0.90
SATURATED_PCT = 95.0


class Row:
    def __init__(
        self, step: Step, cpu: dict[str, float], rss_kb: int, hwm_kb: int, uas_cpu: float
    ) -> None:
        self.step = step
        self.cpu = cpu
        self.rss_kb = rss_kb
        self.hwm_kb = hwm_kb
        self.uas_cpu = uas_cpu

    @property
    def held(self) -> bool:
        s = self.step
        return s.fail_pct < MAX_FAIL_PCT and s.achieved >= MIN_ACHIEVED * s.rate

    @property
    def saturated(self) -> bool:
        return self.cpu["busiest"] >= SATURATED_PCT


HEADER = (
    f"{'rate':>6} {'calls':>6} {'ok':>6} {'fail%':>6} {'retr':>5} {'done/s':>7} {'setup':>7}"
    f" {'proxy':>6} {'worker':>6} {'peakRSS':>8} {'uac':>5} {'uas':>5} {'box':>5}  verdict"
)
UNITS = (
    f"{'cps':>6} {'':>6} {'':>6} {'':>6} {'':>5} {'cps':>7} {'ms':>7}"
    f" {'%core':>6} {'%core':>6} {'MB':>8} {'%':>5} {'%':>5} {'%':>5}"
)


def format_row(row: Row) -> str:
    s = row.step
    verdict = "held" if row.held else "NOT held"
    if row.saturated:
        verdict += ", CPU saturated"
    if s.exit not in (0, 1):
        verdict += f" (SIPp exit {s.exit})"
    setup = f"{s.setup_ms:.1f}" if s.setup_ms or not s.ok else "<1"
    return (
        f"{s.rate:>6} {s.calls:>6} {s.ok:>6} {s.fail_pct:>6.2f} {s.retrans:>5} {s.achieved:>7.0f}"
        f" {setup:>7} {row.cpu['total']:>6.0f} {row.cpu['busiest']:>6.0f}"
        f" {row.hwm_kb / 1024:>8.1f} {s.uac_cpu:>5.0f} {row.uas_cpu:>5.0f}"
        f" {row.cpu['machine']:>5.0f}  {verdict}"
    )


def run_step(
    proxy: Any, uas: Uas, sipp: str, workdir: Path, domain: str, rate: int, seconds: float
) -> Row:
    meter = CpuMeter(proxy.pids())
    uas0 = uas.cpu()
    step = run_uac(sipp, workdir, UAC_IP, f"{proxy.host}:{proxy.port}", domain, rate, seconds)
    cpu = meter.stop()
    uas_cpu = 100.0 * (uas.cpu() - uas0) / cpu["wall"]
    pids = proxy.pids()
    rss = sum(status_kb(p, "VmRSS") or 0 for p in pids)
    hwm = max((status_kb(p, "VmHWM") or 0 for p in pids), default=0)
    return Row(step, cpu, rss, hwm, uas_cpu)


def ladder(
    proxy: Any,
    sipp: str,
    workdir: Path,
    args: argparse.Namespace,
    deadline: float,
    rates: list[int] | None = None,
) -> list[Row]:
    """Start C{proxy}, the UAS (registered if asked), run the steps; stop all."""
    rows: list[Row] = []
    rates = rates or args.rates
    with contextlib.ExitStack() as stack:
        proxy.start()
        stack.callback(proxy.stop)
        uas = Uas(sipp, workdir, UAS_IP)
        stack.callback(uas.stop)
        if args.mode == "registered":
            register(sipp, workdir, UAS_IP, f"{proxy.host}:{proxy.port}", DOMAIN, uas.port)
            domain = DOMAIN
        else:
            domain = f"{UAS_IP}:{uas.port}"
        print(
            f"  proxy {proxy.host}:{proxy.port}, UAS {UAS_IP}:{uas.port}, "
            f"Request-URI sip:service@{domain}",
            flush=True,
        )
        print("  " + HEADER)
        print("  " + UNITS, flush=True)
        for rate in rates:
            if time.monotonic() + args.seconds + 10 > deadline:
                print(
                    f"  (time budget of {args.max_minutes} min spent: stopping before {rate} cps)"
                )
                break
            time.sleep(args.settle)
            row = run_step(proxy, uas, sipp, workdir, domain, rate, args.seconds)
            rows.append(row)
            print("  " + format_row(row), flush=True)
            if proxy.process is None or proxy.process.poll() is not None:
                print("  (the proxy exited)")
                break
            if not row.held or row.saturated:
                break
    return rows


def best(rows: list[Row]) -> Row | None:
    held = [r for r in rows if r.held]
    return max(held, key=lambda r: r.step.rate) if held else None


def summary(name: str, rows: list[Row]) -> tuple[int, bool]:
    """Print the summary line; return (highest held rate, whether it is only a lower bound)."""
    top = best(rows)
    if top is None:
        print(f"{name}: held no rate (first step {rows[0].step.rate if rows else '-'} cps failed)")
        return 0, False
    ended_by_limit = rows[-1].held and not rows[-1].saturated
    more = " or more (the ladder ended before the proxy did)" if ended_by_limit else ""
    print(
        f"{name}: highest held {top.step.rate} cps{more}; at that rate: "
        f"{top.cpu['total']:.0f}% of one core (SIP worker {top.cpu['busiest']:.0f}%), "
        f"peak RSS {top.hwm_kb / 1024:.1f} MB, mean INVITE->200 {top.step.setup_ms:.1f} ms, "
        f"{top.step.fail_pct:.2f}% failed"
    )
    return top.step.rate, ended_by_limit


# --------------------------------------------------------------------------
# profile
# --------------------------------------------------------------------------


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    for prefix in (str(ROOT) + "/", "site-packages/", "/lib/python3"):
        if prefix in path:
            path = path.split(prefix, 1)[1]
            break
    return f"{path}:{line}({func})"


#: Reactor frames whose cumulative time includes waiting in epoll: left out.
_PLUMBING = {
    ("base.py", "run"),
    ("base.py", "mainLoop"),
    ("epollreactor.py", "doPoll"),
    ("log.py", "callWithLogger"),
    ("log.py", "callWithContext"),
    ("context.py", "callWithContext"),
    ("posixbase.py", "_doReadOrWrite"),
}


def _plumbing(key: tuple[str, int, str]) -> bool:
    path, _, func = key
    if path == "~":
        return "poll" in func or func in ("<built-in method builtins.exec>",)
    return "twisted" in path and (os.path.basename(path), func) in _PLUMBING


def print_profile(stats_path: Path, ok_calls: int, top: int) -> None:
    stats = pstats.Stats(str(stats_path), stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values())
    idle = sum(
        tt for key, (_, _, tt, _, _) in entries.items() if "poll" in key[2] and key[0] == "~"
    )
    busy = total - idle
    per_call = 1e6 / max(ok_calls, 1)
    print(
        f"  profiled run: {total:.1f} s in the reactor, {idle:.1f} s waiting in epoll, "
        f"{busy:.1f} s busy = {busy * per_call:.0f} us per successful call ({ok_calls} calls)"
    )
    print("  (cProfile slows Python code down, roughly 1.5-2x; the shares are what matters)")
    for title, index in (("by own time (tottime)", 2), ("by cumulative time (cumtime)", 3)):
        print(f"\n  top {top} {title}; us/call = microseconds per successful call")
        print(
            f"  {'ncalls':>9} {'tottime':>8} {'%busy':>6} {'cumtime':>8} {'us/call':>8}  function"
        )
        ranked = sorted(entries.items(), key=lambda kv: kv[1][index], reverse=True)
        shown = 0
        for key, (_cc, nc, tt, ct, _callers) in ranked:
            if _plumbing(key):
                continue
            value = tt if index == 2 else ct
            print(
                f"  {nc:>9} {tt:>8.2f} {100 * value / max(busy, 1e-9):>6.1f} {ct:>8.2f}"
                f" {value * per_call:>8.1f}  {_where(key)}"
            )
            shown += 1
            if shown >= top:
                break


def profile_sipedge(sipp: str, workdir: Path, args: argparse.Namespace, rate: int) -> None:
    stats_path = workdir / "sipedge.pstats"
    proxy = SipEdge(
        workdir / "sipedge-profile",
        domain=DOMAIN,
        trusted=f"{UAC_IP}/32",
        profile=stats_path,
        log_level=args.sipedge_log,
    )
    print(f"\n== sipedge under cProfile, one step at {rate} cps ({args.seconds:g} s) ==")
    deadline = time.monotonic() + args.seconds + 120
    rows = ladder(proxy, sipp, workdir / "sipedge-profile", args, deadline, rates=[rate])
    if not stats_path.exists():
        print("  no profile written (twistd did not stop cleanly?)")
        return
    if rows and not rows[0].held:
        print(
            "  (not held under cProfile's overhead: the profile includes overload work,"
            " such as retransmissions and timeouts)"
        )
    print_profile(stats_path, rows[0].step.ok if rows else 0, args.top)


# --------------------------------------------------------------------------


def sipp_version(sipp: str) -> str:
    try:
        out = subprocess.run([sipp, "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "SIPp"
    match = re.search(r"SIPp v[\w.\-]+", out)
    return match.group(0) if match else "SIPp"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mode",
        choices=("registered", "relay"),
        default="registered",
        help="call a registered AOR (location lookup) or relay to the UAS's address",
    )
    parser.add_argument(
        "--rates",
        default=DEFAULT_RATES,
        help=f"comma-separated calls a second, rising (default {DEFAULT_RATES})",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of each step (default 10)"
    )
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before each step")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=20.0,
        help="time budget for each proxy's ladder (default 20)",
    )
    parser.add_argument(
        "--no-kamailio", action="store_true", help="skip Kamailio even if installed"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    parser.add_argument("--top", type=int, default=25, help="profile entries to print (default 25)")
    parser.add_argument(
        "--sipedge-log",
        choices=("debug", "info", "warn", "error"),
        default=None,
        help="filter sipedge's log at this level through benchmarks/_cps_log.py "
        "(default: twistd's own observer, which writes every level)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, stats)")
    args = parser.parse_args(argv)
    try:
        args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated integers")
    if not args.rates or any(r <= 0 for r in args.rates) or args.rates != sorted(args.rates):
        parser.error("--rates: positive and rising")
    if len(args.rates) > 40:
        parser.error("--rates: at most 40 steps")
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds: 1 to 120")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        print("SIPp is not installed (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sipedge-cps-"))
    print(
        f"sipedge calls a second, {args.mode} mode: INVITE/180/200/ACK/BYE/200 over UDP, "
        f"stateful, record-routing, no hold"
    )
    print(
        f"UAC {UAC_IP} -> proxy 127.0.0.1 -> UAS {UAS_IP}; steps of {args.seconds:g} s at "
        f"{','.join(map(str, args.rates))} cps; held = <{MAX_FAIL_PCT:g}% failed and >= "
        f"{MIN_ACHIEVED:.0%} of the rate completed; stop when not held or worker >= "
        f"{SATURATED_PCT:g}% CPU"
    )
    print(f"load generator: {sipp_version(sipp)}, on the same machine")
    print(
        f"machine: {os.cpu_count()} cores, load average {loadavg()} at start "
        "(shared machines skew results)"
    )
    print(
        "columns: proxy = all its processes, worker = busiest one (sipedge has one), "
        "uac/uas = SIPp's CPU, box = whole machine busy"
    )
    results: dict[str, tuple[int, bool]] = {}
    try:
        proxy = SipEdge(
            workdir / "sipedge", domain=DOMAIN, trusted=f"{UAC_IP}/32", log_level=args.sipedge_log
        )
        print(f"\n== sipedge ({proxy.describe()}) ==")
        rows = ladder(
            proxy, sipp, workdir / "sipedge", args, time.monotonic() + 60 * args.max_minutes
        )
        results["sipedge"] = summary("sipedge", rows)
        sipedge_rows = rows

        if args.no_kamailio:
            print("\n(Kamailio skipped: --no-kamailio)")
        elif kamailio_path() is None:
            print("\n(Kamailio not installed, no comparison; Debian: apt-get install kamailio)")
        else:
            kam = Kamailio(workdir / "kamailio", domain=DOMAIN, trusted_ip=UAC_IP)
            print(f"\n== Kamailio ({kam.describe()}) ==")
            rows = ladder(
                kam, sipp, workdir / "kamailio", args, time.monotonic() + 60 * args.max_minutes
            )
            results["kamailio"] = summary("kamailio", rows)

        if "kamailio" in results:
            (s, s_open), (k, k_open) = results["sipedge"], results["kamailio"]
            if k:
                qual = ""
                if k_open and not s_open:
                    qual = " at most (Kamailio's true limit is above the ladder)"
                elif s_open and not k_open:
                    qual = " at least"
                ratio = s / k
                verdict = "meets" if ratio >= 0.5 else "below"
                print(
                    f"\nsipedge / Kamailio = {s} / {k} cps = {ratio:.2f}{qual} "
                    f"(target 0.5: {verdict}); same machine, same run, one SIP worker each"
                )
            else:
                print("\nKamailio held no rate: no ratio")

        if not args.no_profile:
            top = best(sipedge_rows)
            rate = top.step.rate if top else args.rates[0]
            profile_sipedge(sipp, workdir, args, rate)
        print(f"\nload average at end: {loadavg()}")
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
