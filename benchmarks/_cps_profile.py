"""
The cProfile report of benchmarks/cps.py: where sipedge's busy time goes,
the reactor's waiting in epoll and its plumbing frames left out.
"""

from __future__ import annotations

import io
import os
import pstats
from pathlib import Path

from _cps_procs import ROOT


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    for prefix in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/", "/lib/python3"):
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


def _idle(key: tuple[str, int, str]) -> bool:
    return key[0] == "~" and "poll" in key[2]


def _plumbing(key: tuple[str, int, str]) -> bool:
    path, _, func = key
    if path == "~":
        return _idle(key) or func == "<built-in method builtins.exec>"
    return "twisted" in path and (os.path.basename(path), func) in _PLUMBING


def print_profile(stats_path: Path, ok_calls: int, top: int) -> None:
    stats = pstats.Stats(str(stats_path), stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values())
    idle = sum(tt for key, (_, _, tt, _, _) in entries.items() if _idle(key))
    busy = total - idle
    per_call = 1e6 / max(ok_calls, 1)
    print(
        f"  profiled: {total:.1f} s in the reactor, {idle:.1f} s of it waiting in epoll,"
        f" {busy:.1f} s busy = {busy * per_call:.0f} us per successful call ({ok_calls})"
    )
    print("  (cProfile slows Python code down, roughly 1.5-2x: read the shares, not the times)")
    for title, index in (("own time (tottime)", 2), ("cumulative time (cumtime)", 3)):
        print(
            f"\n  top {top} by {title}; %busy = share of the busy time;"
            " us/call = per successful call"
        )
        print(
            f"  {'ncalls':>8} {'tottime':>7} {'cumtime':>7} {'%busy':>5} {'us/call':>7}  function"
        )
        ranked = sorted(entries.items(), key=lambda kv: kv[1][index], reverse=True)
        shown = 0
        for key, (_cc, nc, tt, ct, _callers) in ranked:
            if _plumbing(key):
                continue
            value = tt if index == 2 else ct
            print(
                f"  {nc:>8} {tt:>7.2f} {ct:>7.2f} {100 * value / max(busy, 1e-9):>5.1f}"
                f" {value * per_call:>7.0f}  {_where(key)}"
            )
            shown += 1
            if shown >= top:
                break
