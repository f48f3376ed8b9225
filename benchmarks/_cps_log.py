"""
A log observer factory for C{twistd --logger=_cps_log.observer}, used by
cps.py when it is asked to look inside the sipedge process:

- C{--sipedge-log LEVEL}: twistd's text log on stdout, keeping only events
  at or above C{$SIPEDGE_BENCH_LOG_LEVEL}. Under twistd, sipedge does not
  apply C{[log] level}, so the default observer formats and writes every
  debug event (several transaction state changes a call); this shows what
  the proxy does without that cost.
- C{--gc-stats} (C{$SIPEDGE_BENCH_GC=1}): a C{gc.callbacks} hook that
  writes, to the same log, one C{cps-gc} line for every collection of the
  oldest generation or any collection over 10 ms, and a running total at
  most twice a second; cps.py reads them back per step.

The default benchmark run uses neither: it runs twistd as the end-to-end
harness does.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)

_state = {"start": 0.0, "total": 0.0, "count": 0, "written": 0.0, "collected": 0}


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    now = time.perf_counter()
    if phase == "start":
        _state["start"] = now
        return
    took = now - _state["start"]
    _state["total"] += took
    _state["count"] += 1
    _state["collected"] += info["collected"]
    out = sys.__stdout__
    if out is None:
        return
    wall = time.time()
    if info["generation"] == 2 or took > 0.010:
        out.write(
            f"cps-gc t={wall:.3f} gen={info['generation']} ms={took * 1000:.1f}"
            f" collected={info['collected']}\n"
        )
    if wall - _state["written"] >= 0.5:
        _state["written"] = wall
        out.write(
            f"cps-gc-total t={wall:.3f} ms={_state['total'] * 1000:.1f} n={_state['count']}"
            f" collected={_state['collected']}\n"
        )
    out.flush()


def observer() -> Any:
    if os.environ.get("SIPEDGE_BENCH_GC") == "1":
        gc.callbacks.append(_gc_callback)
    level = LogLevel.levelWithName(os.environ.get("SIPEDGE_BENCH_LOG_LEVEL", "debug"))
    stream = sys.__stdout__
    assert stream is not None, "twistd runs with a standard output"
    return FilteringLogObserver(
        textFileLogObserver(stream),
        [LogLevelFilterPredicate(defaultLogLevel=level)],
    )
