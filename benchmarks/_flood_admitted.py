"""
What the flood's admitted work costs sipedge in process (benchmarks/flood.py
prints it): the requests the global budget lets through (500 a second by
default) are parsed, get a transaction, run the chain and are answered,
so their cost is what the flood takes from the calls.

A whole sipedge in memory (``sipedge.testing.edge_in_memory``, the
benchmark's domain, defaults otherwise except that the per-source and
global budgets are lifted so that every request is admitted) on a fake
network: 200 sources send the flood's OPTIONS, REGISTERs for unknown users
(each answered 401 with a challenge) and INVITEs to unknown users, and the
process CPU per request (with the fake network's delivery, a few percent)
is the best of several runs. The fake clock moves on between runs so that
transactions end as they would. Logging is as under twistd: info and
above, formatted and written (to /dev/null).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from typing import Any

from _flood_gen import INVITE, OPTIONS, REGISTER
from callpath import HeapReactor
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from sipedge.testing import edge_in_memory

_CONFIG = """
[sip]
domains = ["{domain}"]
listen = ["udp:127.0.0.1:5060"]
[security]
unauthenticated_rate = 1000000
unauthenticated_burst = 1000000
unauthenticated_global_rate = 0
overload_lag = 0
"""

_SOURCES = 200


class _Sink(DatagramProtocol):
    answers = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        _Sink.answers += 1


def admitted_costs(domain: str, *, number: int = 1000, repeat: int = 7) -> dict[str, float]:
    """Microseconds of CPU per admitted flood request of each kind, best of C{repeat}."""
    devnull = open(os.devnull, "w")
    at_info = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(devnull), [at_info])], redirectStandardIO=False
    )
    reactor = HeapReactor()
    state = tempfile.mkdtemp(prefix="sipedge-flood-admitted-")
    edge = edge_in_memory(_CONFIG.format(domain=domain), state, reactor=reactor)
    ports: list[Any] = []
    for k in range(_SOURCES):
        ports.append(reactor.listenUDP(5070, _Sink(), interface=f"127.2.0.{k + 1}"))
    gc.collect()
    gc.freeze()
    counter = iter(range(10**9))
    costs: dict[str, float] = {}
    try:
        for name, template in (("OPTIONS", OPTIONS), ("REGISTER", REGISTER), ("INVITE", INVITE)):
            best = None
            for _ in range(repeat + 1):  # the first run warms up
                start = time.process_time()
                for _ in range(number):
                    n = next(counter)
                    k = n % _SOURCES
                    data = template.format(
                        domain=domain, ip=f"127.2.0.{k + 1}", port=5070, n=n, u=n % 7
                    ).encode()
                    ports[k].write(data, ("127.0.0.1", 5060))
                    if n % 50 == 0:
                        reactor.flush()
                reactor.flush()
                spent = time.process_time() - start
                best = spent if best is None else min(best, spent)
                reactor.advance(40.0)  # transactions end between runs
                reactor.flush()
            assert best is not None
            costs[name] = best / number * 1e6
    finally:
        edge.stop()
        devnull.close()
    return costs
