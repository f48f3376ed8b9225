"""
Calls a second through the real proxy, twistd sipedge, driven by SIPp.

SIPp calls through the proxy at rising rates; the result is the highest
rate held with under 1% failed calls.

Run: python benchmarks/cps.py [--mode registered|relay|auth] [--auth]
         [--seconds N] [--rates 100,200,...] [--no-kamailio] [--no-profile]
         [--gc-stats] [--workers 1,2]

Call flow: INVITE, 100, 180, 200, ACK, BYE, 200 over UDP, stateful,
record-routing, no call hold (SIPp -d 0). UAC on 127.0.0.10, proxy on
127.0.0.1, UAS on 127.0.0.20; sipedge's `trusted` is 127.0.0.10/32.
  registered (default): the UAS registers sip:service@sipedge.bench; the
      UAC calls that AOR, so every INVITE takes a location lookup.
  relay: the UAC calls sip:service@127.0.0.20:<uas port>; the proxy relays
      it because the UAC is trusted.
  auth (--auth): the registered mode first, then the same ladder with the
      caller one of our users: sip:caller@sipedge.bench, registered (with
      digest) from 127.0.0.30, which is not trusted. Every INVITE is
      challenged with 407, acknowledged, and sent again with MD5 digest
      credentials that sipedge verifies (uac_auth.xml); the summary puts
      the two top rates side by side. Kamailio is not run (its
      configuration has no authentication).

For each rate, SIPp's UAC places rate x seconds calls; the step is held if
under 1% of them failed and the successful calls kept up with the rate (at
least 90% of it). The ladder stops at the first step not held, or when the
proxy's SIP process used at least 95% of one core. Each step prints calls,
failures, retransmissions SIPp saw, INVITE->200 times (median, 99th
percentile), the proxy's CPU (% of one core, from /proc/PID/stat), peak RSS
(VmHWM), datagrams the kernel dropped at the proxy's socket, SIPp's own CPU,
and how busy the whole machine was; with --gc-stats, sipedge's longest
garbage collection. The UAS is uas.xml plus an answer to a retransmitted
INVITE (see _cps_sipp.UAS_XML).

Finished transactions stay 32 s (64*T1: Timers J, L, M) in a proxy that
follows RFC 3261 and 6026, so steps shorter than that do not reach the
steady state: --seconds 40 measures it, at a cost in time.

When Kamailio is installed, the same ladder runs through it (a generated
minimal tm/rr/registrar config, children=1) and the ratio is printed.
Last, sipedge runs once more under cProfile at its top rate, and the
functions that take the time are printed.

With --workers 1,2 (counts of [process] workers, doc/workers.md), the
ladder runs once per count, unpinned, SIPp beside the proxy on the same
cores, and the top rates are compared with the first count's (target: two
workers hold 1.5 times one worker's calls a second). The UAC then opens a
socket per call (SIPp -t un), for every count alike: the kernel spreads
sources, not calls, across workers. Kamailio and the profile are skipped.

This is a benchmark, not a test: numbers from a shared or small machine
(the load generator runs on the same cores) are indications only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cps_procs import (
    CpuMeter,
    Kamailio,
    SipEdge,
    checkout_version,
    kamailio_path,
    loadavg,
    status_kb,
    udp_drops,
)
from _cps_profile import print_profile
from _cps_report import (
    HEADER,
    LEGEND,
    MAX_FAIL_PCT,
    MIN_ACHIEVED,
    SATURATED_PCT,
    UNITS,
    Row,
    best,
    compare_auth,
    cpu_per_call,
    format_row,
    summary,
)
from _cps_sipp import Uas, register, run_uac

from sipedge.testing import free_port

UAC_IP = "127.0.0.10"
UAS_IP = "127.0.0.20"
CALLER_IP = "127.0.0.30"  # auth mode: one of our users' phone, not trusted
DOMAIN = "sipedge.bench"
SERVICE_AUTH = ("service", "cps-bench-secret")
CALLER_AUTH = ("caller", "cps-bench-caller-secret")
#: Appended to sipedge's configuration in every mode (it changes nothing for
#: the trusted UAC of the other modes: the flood stage gives it the trusted
#: budget and the monitor does not watch it). The authenticated caller is a
#: load generator: its address gets the authenticated budget once its
#: REGISTER is authenticated, raised so that no step reaches it (a call is 2
#: INVITEs and 3 other requests: 407's ACK, 200's ACK, BYE), and the
#: monitor's per-user call-rate rule (30 calls a minute) is off, as in the
#: end-to-end FloodTests.
SECURITY_CONFIG = """\
[security]
authenticated_rate = 100000
authenticated_burst = 200000
[security.monitor]
call_rate_action = "off"
"""
DEFAULT_RATES = "100,200,300,400,500,600,800,1000,1200,1500,2000,2500,3000"


class Caller:
    """The SIPp UAC of a ladder: its address, scenario and extra arguments."""

    def __init__(
        self, ip: str, scenario: str = "uac.xml", extra: tuple[str, ...] = (),
        transport: str = "u1",
    ) -> None:
        self.ip = ip
        self.scenario = scenario
        self.extra = extra
        self.transport = transport


def run_step(
    proxy: Any,
    uas: Uas,
    caller: Caller,
    sipp: str,
    workdir: Path,
    domain: str,
    rate: int,
    seconds: float,
    idle: float = 0.0,
) -> Row:
    meter = CpuMeter(proxy.pids())
    drops0 = udp_drops(proxy.host, proxy.port)
    uas0 = uas.cpu()
    t0 = time.time()
    address = f"{proxy.host}:{proxy.port}"
    step = run_uac(
        sipp,
        workdir,
        caller.ip,
        address,
        domain,
        rate,
        seconds,
        scenario=caller.scenario,
        extra=caller.extra,
        transport=caller.transport,
    )
    t1 = time.time()
    cpu = meter.stop()
    uas_cpu = 100.0 * (uas.cpu() - uas0) / cpu["wall"]
    hwm = max((status_kb(p, "VmHWM") or 0 for p in proxy.pids()), default=0)
    gc = proxy.gc_between(t0, t1) if hasattr(proxy, "gc_between") else None
    drops1 = udp_drops(proxy.host, proxy.port)
    drops = drops1 - drops0 if drops0 is not None and drops1 is not None else None
    return Row(step, cpu, hwm, uas_cpu, gc, drops, idle)


def idle_cpu(proxy: Any, seconds: float) -> float:
    """The proxy's CPU, % of one core, over C{seconds} with no calls."""
    meter = CpuMeter(proxy.pids())
    time.sleep(seconds)
    return meter.stop()["total"]


def ladder(
    proxy: Any,
    sipp: str,
    workdir: Path,
    args: argparse.Namespace,
    deadline: float,
    rates: list[int] | None = None,
    mode: str | None = None,
) -> list[Row]:
    """
    Start C{proxy}, the UAS (registered unless C{mode} is relay) and, in
    auth mode, register the caller; run the steps; stop all. C{mode} is
    registered, relay or auth (default: C{args.mode}).
    """
    rows: list[Row] = []
    rates = rates or args.rates
    mode = mode or args.mode
    transport = "un" if args.workers else "u1"
    caller = Caller(UAC_IP, transport=transport)
    with contextlib.ExitStack() as stack:
        stack.callback(proxy.stop)
        proxy.start()
        uas = Uas(sipp, workdir, UAS_IP)
        stack.callback(uas.stop)
        address = f"{proxy.host}:{proxy.port}"
        if mode in ("registered", "auth"):
            auth = None
            if "digest-auth" in getattr(proxy, "stages", ()):
                auth = SERVICE_AUTH
                proxy.add_user(*auth)
            register(sipp, workdir, UAS_IP, address, DOMAIN, uas.port, auth=auth)
            domain = DOMAIN
        else:
            domain = f"{UAS_IP}:{uas.port}"
        who = f"UAC {UAC_IP} (trusted)"
        if mode == "auth":
            # One of our users: its REGISTER (digest) allow-lists its address
            # for the authenticated budget; SIPp hashes the digest uri
            # "sip:" + -auth_uri, which must be the Request-URI.
            user, password = CALLER_AUTH
            proxy.add_user(user, password)
            contact = free_port(CALLER_IP)  # nobody calls the caller
            register(sipp, workdir, CALLER_IP, address, DOMAIN, contact, CALLER_AUTH, user)
            caller = Caller(
                CALLER_IP,
                "uac_auth.xml",
                ("-key", "caller", user, "-key", "caller_domain", DOMAIN,
                 "-au", user, "-ap", password, "-auth_uri", f"service@{domain}"),
                transport=transport,
            )  # fmt: skip
            who = (
                f"caller sip:{user}@{DOMAIN} from {CALLER_IP} (registered, not trusted;"
                " 407 + digest on every INVITE)"
            )
        print(
            f"  proxy {proxy.host}:{proxy.port}, UAS {UAS_IP}:{uas.port}, "
            f"Request-URI sip:service@{domain}; {who}"
        )
        idle = idle_cpu(proxy, max(args.settle, 2.0))
        print(f"  the proxy idle, before the first step: {idle:.1f}% of one core")
        print("  " + HEADER)
        print("  " + UNITS, flush=True)
        for rate in rates:
            if time.monotonic() + args.seconds + args.settle + 30 > deadline:
                print(f"  (time budget of {args.max_minutes:g} min spent: stop before {rate} cps)")
                break
            time.sleep(args.settle)
            row = run_step(proxy, uas, caller, sipp, workdir, domain, rate, args.seconds, idle)
            rows.append(row)
            print("  " + format_row(row), flush=True)
            if proxy.process is None or proxy.process.poll() is not None:
                print("  (the proxy exited)")
                break
            if not row.held or row.saturated:
                break
    return rows


# --------------------------------------------------------------------------
# profile
# --------------------------------------------------------------------------


def profile_sipedge(sipp: str, workdir: Path, args: argparse.Namespace, rate: int) -> None:
    stats_path = workdir / "sipedge.pstats"
    proxy = SipEdge(
        workdir / "sipedge-profile",
        domain=DOMAIN,
        trusted=f"{UAC_IP}/32",
        profile=stats_path,
        log_level=args.sipedge_log,
        gc_stats=args.gc_stats,
        stages=args.stages,
        extra_config=SECURITY_CONFIG,
    )
    print(
        f"\n== sipedge under cProfile (twistd --profile --profiler=cprofile), {args.mode} mode,"
        f" one step at {rate} cps ({args.seconds:g} s) =="
    )
    deadline = time.monotonic() + args.seconds + args.settle + 120
    rows = ladder(proxy, sipp, workdir / "sipedge-profile", args, deadline, rates=[rate])
    if not stats_path.exists():
        print("  no profile written (twistd did not stop cleanly?)")
        return
    if rows and not rows[0].held:
        print(
            "  (not held under cProfile's overhead: the profile includes overload work,"
            " such as retransmissions)"
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
    add = parser.add_argument
    add(
        "--mode",
        choices=("registered", "relay", "auth"),
        default="registered",
        help="call a registered AOR (location lookup; default), relay to the UAS's address,"
        " or auth: registered, then again with the caller one of our users (digest on every"
        " INVITE)",
    )
    add("--auth", action="store_true", help="the same as --mode auth")
    add("--rates", default=DEFAULT_RATES, help=f"rising calls a second (default {DEFAULT_RATES})")
    add("--seconds", type=float, default=10.0, help="length of each step (default 10)")
    add("--settle", type=float, default=2.0, help="idle seconds before each step (default 2)")
    add(
        "--max-minutes",
        type=float,
        default=15.0,
        help="time budget of each proxy's ladder (default 15)",
    )
    add("--no-kamailio", action="store_true", help="skip Kamailio even if it is installed")
    add("--no-profile", action="store_true", help="skip the cProfile run")
    add(
        "--profile-rate",
        type=int,
        default=None,
        help="rate of the cProfile run (default: sipedge's highest held rate)",
    )
    add("--top", type=int, default=25, help="profile entries to print (default 25)")
    add(
        "--sipedge-log",
        choices=("debug", "info", "warn", "error"),
        default=None,
        help="filter sipedge's log at this level (benchmarks/_cps_log.py); default: twistd's"
        " own observer, which writes every level",
    )
    add(
        "--gc-stats",
        action="store_true",
        help="time sipedge's garbage collections (gc.callbacks, via benchmarks/_cps_log.py)",
    )
    add(
        "--stages",
        default=None,
        help="sipedge's request chain, comma-separated (default: sipedge's default chain)",
    )
    add("--keep", action="store_true", help="keep the work directory (logs, SIPp files)")
    add(
        "--workers",
        default=None,
        help="compare counts of [process] workers, e.g. 1,2 (a ladder each, UAC socket per"
        " call; Kamailio and the profile skipped)",
    )
    args = parser.parse_args(argv)
    if args.workers is not None:
        try:
            args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
        except ValueError:
            parser.error("--workers: comma-separated integers")
        if not args.workers or any(not 1 <= w <= 64 for w in args.workers):
            parser.error("--workers: counts from 1 to 64")
        if args.mode == "auth":
            parser.error("--workers: registered or relay mode")
    if args.auth:
        if args.mode not in ("registered", "auth"):
            parser.error(f"--auth is --mode auth, not --mode {args.mode}")
        args.mode = "auth"
    try:
        args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates: comma-separated integers")
    if not args.rates or any(r <= 0 for r in args.rates) or args.rates != sorted(args.rates):
        parser.error("--rates: positive and rising")
    if len(args.rates) > 40 or max(args.rates) > 20_000:
        parser.error("--rates: at most 40 steps, at most 20000 cps")
    if not 1 <= args.seconds <= 120 or not 0 <= args.settle <= 60:
        parser.error("--seconds: 1 to 120; --settle: 0 to 60")
    if args.stages is not None:
        args.stages = [name.strip() for name in args.stages.split(",") if name.strip()]
    if not 1 <= args.max_minutes <= 120:
        parser.error("--max-minutes: 1 to 120")
    return args


def compare_workers(sipp: str, workdir: Path, args: argparse.Namespace) -> int:
    """A ladder per count of workers; the top rates against the first count's."""
    print(f"\nworker counts {args.workers}: UAC with a socket per call (SIPp -t un), unpinned")
    tops: list[tuple[int, int, bool]] = []
    for count in args.workers:
        proxy = SipEdge(
            workdir / f"sipedge-{count}w",
            domain=DOMAIN,
            trusted=f"{UAC_IP}/32",
            log_level=args.sipedge_log,
            gc_stats=args.gc_stats,
            stages=args.stages,
            extra_config=SECURITY_CONFIG,
            workers=count,
        )
        print(f"\n== sipedge, {count} worker(s), {args.mode} mode ({proxy.describe()}) ==")
        rows = ladder(
            proxy, sipp, proxy.workdir, args, time.monotonic() + 60 * args.max_minutes
        )
        top, open_ended = summary(f"sipedge with {count} worker(s)", rows)
        tops.append((count, top, open_ended))
    base_count, base, base_open = tops[0]
    for count, top, open_ended in tops[1:]:
        if not base:
            print(f"\n{base_count} worker(s) held no rate: no ratio")
            continue
        ratio = top / base
        qual = " (or more: the ladder ended first)" if open_ended else ""
        if base_open:
            qual += f" ({base_count} worker(s) held every rate: ratio uncertain)"
        print(
            f"\n{count} workers / {base_count} = {top} / {base} cps = {ratio:.2f}{qual};"
            f" target 1.5 for 2 against 1: {'met' if ratio >= 1.5 else 'not met'}"
        )
    print(f"\nload average at end: {loadavg()}")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        print("SIPp is not installed (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="sipedge-cps-"))
    auth_mode = args.mode == "auth"
    print(
        f"sipedge calls a second, {args.mode} mode: INVITE/100/180/200/ACK/BYE/200 over UDP,"
        " stateful, record-routing, no call hold"
    )
    if auth_mode:
        print(
            "auth mode: the registered ladder, then the same one with the caller one of our"
            " users, challenged on every INVITE: INVITE/100/407/ACK, INVITE (digest)/100/180/"
            "200/ACK/BYE/200"
        )
    callers = f"UAC {UAC_IP}" + (f" (plain) or {CALLER_IP} (auth)" if auth_mode else "")
    print(
        f"{callers} -> proxy 127.0.0.1 -> UAS {UAS_IP}; steps of {args.seconds:g} s at"
        f" {','.join(map(str, args.rates))} cps"
    )
    print(
        f"held = under {MAX_FAIL_PCT:g}% of calls failed and at least {MIN_ACHIEVED:.0%} of the"
        f" rate done; the ladder stops at the first step not held or at >= {SATURATED_PCT:g}%"
        " CPU in the SIP worker"
    )
    print(
        f"sipedge: {checkout_version()}; load generator: {sipp_version(sipp)} UAC and UAS,"
        " on the same machine"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {loadavg()} at start"
        " (other jobs on a shared machine skew the results)"
    )
    print(LEGEND)
    if auth_mode:
        print(
            "  auth mode: p50, p99 = from the first INVITE to the 200, the 407 round trip included"
        )
    results: dict[str, tuple[int, bool]] = {}
    ladders: dict[str, list[Row]] = {}
    if args.workers:
        try:
            return compare_workers(sipp, workdir, args)
        finally:
            if args.keep:
                print(f"work directory kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    try:
        for mode in ("registered", "auth") if auth_mode else (args.mode,):
            name = "sipedge, digest on every INVITE" if mode == "auth" else "sipedge"
            proxy = SipEdge(
                workdir / ("sipedge-auth" if mode == "auth" else "sipedge"),
                domain=DOMAIN,
                trusted=f"{UAC_IP}/32",
                log_level=args.sipedge_log,
                gc_stats=args.gc_stats,
                stages=args.stages,
                extra_config=SECURITY_CONFIG,
            )
            if auth_mode and not {"digest-auth", "registrar", "location"} <= set(proxy.stages):
                print(
                    "auth mode needs digest-auth, registrar and location in the chain",
                    file=sys.stderr,
                )
                return 2
            print(f"\n== {name}, {mode} mode ({proxy.describe()}) ==")
            rows = ladder(
                proxy,
                sipp,
                proxy.workdir,
                args,
                time.monotonic() + 60 * args.max_minutes,
                mode=mode,
            )
            results[mode] = summary(name, rows)
            ladders[mode] = rows
        top_rows = ladders["auth" if auth_mode else args.mode]
        if auth_mode:
            compare_auth(
                ladders["registered"], ladders["auth"], results["registered"], results["auth"]
            )
        results["sipedge"] = results["auth" if auth_mode else args.mode]
        sipedge_top = best(top_rows)
        kamailio_top = None

        if auth_mode:
            print(
                "\n(Kamailio skipped in auth mode: its configuration authenticates nothing;"
                " a run without --auth compares the plain figure)"
            )
        elif args.no_kamailio:
            print("\n(Kamailio skipped: --no-kamailio)")
        elif kamailio_path() is None:
            print("\n(Kamailio is not installed: no comparison. Debian: apt-get install kamailio)")
        else:
            kam = Kamailio(workdir / "kamailio", domain=DOMAIN, trusted_ip=UAC_IP)
            print(f"\n== Kamailio ({kam.describe()}) ==")
            rows = ladder(
                kam, sipp, workdir / "kamailio", args, time.monotonic() + 60 * args.max_minutes
            )
            results["kamailio"] = summary("kamailio", rows)
            kamailio_top = best(rows)

        if "kamailio" in results:
            (s, s_open), (k, k_open) = results["sipedge"], results["kamailio"]
            if s_open and k_open:
                print(f"\nboth held every rate up to {s} cps: no ratio (give higher --rates)")
            elif k:
                qual = ""
                if k_open and not s_open:
                    qual = " or less (Kamailio's limit is above the ladder)"
                elif s_open and not k_open:
                    qual = " or more (sipedge's limit is above the ladder)"
                ratio = s / k
                verdict = f"{'met' if ratio >= 0.5 else 'not met'} (same machine, same run)"
                per_call = cpu_per_call(kamailio_top)
                if k_open and per_call != "-" and float(per_call) > 0:
                    # Kamailio's own limit is unknown: an upper bound is no verdict.
                    # Estimate it from its CPU per call (one core = 1,000,000 us a second).
                    capacity = 1e6 / float(per_call)
                    estimate = s / capacity
                    qual += (
                        f"; at {per_call} us of CPU a call (its top step) Kamailio would hold"
                        f" about {capacity:.0f} cps on one core: ratio about {estimate:.2f}"
                    )
                    verdict = f"{'met' if estimate >= 0.5 else 'not met'} (estimated)"
                elif k_open:
                    verdict = "unknown (give higher --rates)"
                line = f"sipedge / Kamailio = {s} / {k} cps = {ratio:.2f}{qual}"
                print(f"\n{line}; target 0.5: {verdict}")
            else:
                print("\nKamailio held no rate: no ratio")

        if not args.no_profile:
            rate = args.profile_rate or (sipedge_top.step.rate if sipedge_top else args.rates[0])
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
