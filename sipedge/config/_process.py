# -*- test-case-name: sipedge.test.test_config -*-
"""
C{[process]}: how many processes serve SIP (see C{doc/workers.md}).
"""

from __future__ import annotations

import os

import attrs

from sipedge._config_values import InvalidValue as _InvalidValue
from sipedge._config_values import describe as _describe

__all__ = ["MAX_WORKERS", "ProcessConfig"]

#: More worker processes than this is a typo, not a machine.
MAX_WORKERS = 1024


def _check_workers(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise _InvalidValue(
            "workers",
            f'expected "auto" or an integer from 1 to {MAX_WORKERS}, got {_describe(value)}',
        )


@attrs.frozen
class ProcessConfig:
    """
    C{[process]}: the processes of C{twistd sipedge}.

    @ivar workers: the number of worker processes, or C{"auto"} for one per
        core this process may run on. C{1} runs everything in one process
        (no supervisor); more makes C{twistd sipedge} a supervisor of that
        many workers sharing the listening ports (C{SO_REUSEPORT}).
    """

    workers: int | str = attrs.field(default="auto", validator=_check_workers)

    def worker_count(self, cores: int | None = None) -> int:
        """
        The number of workers to run: C{workers}, or for C{"auto"}
        C{cores} (by default the cores this process may run on).
        """
        if isinstance(self.workers, int):
            return self.workers
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
                os.cpu_count() or 1
            )
        return max(1, min(cores, MAX_WORKERS))
