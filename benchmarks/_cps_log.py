"""
A log observer factory for C{twistd --logger=_cps_log.observer}, used by
C{cps.py --sipedge-log LEVEL}: twistd's text log on stdout, keeping only
events at or above C{$SIPEDGE_BENCH_LOG_LEVEL} (default C{info}).

Why it exists: under twistd, sipedge does not apply C{[log] level}, so the
default log observer formats and writes every debug event (several
transaction state changes a call). This factory shows what the proxy does
without that cost; the default benchmark run does not use it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    textFileLogObserver,
)


def observer() -> Any:
    level = LogLevel.levelWithName(os.environ.get("SIPEDGE_BENCH_LOG_LEVEL", "info"))
    return FilteringLogObserver(
        textFileLogObserver(sys.__stdout__),
        [LogLevelFilterPredicate(defaultLogLevel=level)],
    )
