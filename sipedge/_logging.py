# -*- test-case-name: sipedge.test.test_logging -*-
"""
C{[log] level} and C{format} applied to everything twistd logs: one log
observer, filtered by level, writing text (twistd's classic lines) or JSON
(one object per line, with every field of the event) to where twistd
would have written (C{--logfile}, or standard output with C{-n}).

Used by the composition root only (L{sipedge.tap}, L{sipedge.service}).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from constantly import NamedConstant
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile

__all__ = ["log_observer", "twistd_log_output"]


#: Keys of legacy (twisted.python.log) events that repeat what the record has.
_LEGACY_KEYS = frozenset(("message", "system", "isError", "time", "format", "why"))


def _plain(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _json_line(event: LogEvent) -> str:
    """
    The event as one JSON object on one line: C{time} (ISO 8601, UTC),
    C{level}, C{namespace}, the rendered C{text}, then every field the event
    was logged with (C{source}, C{user}, C{rule}, C{call_id}, ...) as JSON
    values or their text, and C{traceback} for a failure. A worker's record
    relayed by its supervisor is written as the worker wrote it, with its
    C{worker} index.
    """
    relayed = event.get("worker_record")
    if isinstance(relayed, dict):
        # A worker's record, relayed by the supervisor: passed on whole.
        return json.dumps({**relayed, "worker": event.get("worker")}, ensure_ascii=False) + "\n"
    try:
        text = formatEvent(event)
    except Exception:  # a broken format string must not lose the event
        text = repr(event.get("log_format"))
    level = event.get("log_level")
    record: dict[str, object] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0.0), UTC).isoformat(
            timespec="milliseconds"
        ),
        "level": level.name if isinstance(level, NamedConstant) else "info",
        "namespace": event.get("log_namespace", ""),
        "text": text,
    }
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY_KEYS or key in record:
            continue
        record[key] = _plain(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False) + "\n"


def log_observer(level: LogLevel, format: str, out: IO[str]) -> ILogObserver:
    """
    An observer that writes events at C{level} or above to C{out}, as
    C{"text"} (twistd's format) or C{"json"} (one object per line).
    """
    inner: ILogObserver
    if format == "json":
        inner = FileLogObserver(out, _json_line)
    else:
        inner = textFileLogObserver(out)
    return FilteringLogObserver(inner, [LogLevelFilterPredicate(defaultLogLevel=level)])


def twistd_log_output(server_options: Mapping[str, Any] | None) -> IO[str] | None:
    """
    Where twistd would log, given its parsed options: standard output for
    C{--logfile=-} or C{-n} without C{--logfile}, else the log file
    (C{twistd.log} by default, rotated on SIGUSR1 as twistd does).
    C{None} if twistd logs elsewhere on purpose (C{--logger}, C{--syslog})
    or its options are unknown: then twistd's own observer is kept.
    """
    if server_options is None:
        return None
    if server_options.get("logger") or server_options.get("syslog"):
        return None
    name = server_options.get("logfile") or ""
    nodaemon = bool(server_options.get("nodaemon"))
    if name == "-":
        return sys.stdout if nodaemon else None  # twistd refuses a daemon on stdout
    if nodaemon and not name:
        return sys.stdout
    output = LogFile.fromFullPath(name or "twistd.log")
    if not signal.getsignal(signal.SIGUSR1):

        def rotate(signum: int, frame: Any) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(output.rotate)  # type: ignore[attr-defined]

        signal.signal(signal.SIGUSR1, rotate)
    return output
