"""
What a call leaves behind in sipedge, in process: the memory the proxy
holds per call while its transactions linger (Timers J, L, M: 64*T1 =
32 s), and the garbage cycles a call makes. (CPU per call in process:
callpath.py.)

Run: python benchmarks/calls_memory.py [--calls N] [--top N] [--fill N]

The whole service of C{twistd sipedge} is built in memory
(L{sipedge.testing.edge_in_memory}) with the configuration cps.py gives
it (a domain, a trusted caller, the default chain); a UAC on the trusted
address calls a registered UAS through it with the call flow of cps.py
(INVITE with SDP, 100, 180, 200, ACK, BYE, 200), on the fake network, so
the figures do not depend on how busy the machine is (CPU time aside).
The calls are placed 2 ms apart on the fake clock: all of them are still
lingering when the memory is measured, as at 500 calls a second. The test
agents' own records are cleared after each call so that only the proxy's
memory is counted. The bounded parse caches are filled first, while
tracing (C{--fill} calls), as in a proxy that has run a while.

It prints:
- bytes held per lingering call (tracemalloc: Python allocations; RSS adds
  the allocator's overhead), and what RSS that makes at 500 calls a second
  (16,000 calls lingering), with the proxy at rest added;
- where those bytes were allocated (the innermost sipedge frame outside the
  message core, which allocates the messages themselves), top N;
- garbage cycles per call: what C{gc.collect()} finds after the calls
  (sipedge aims at none: a finished call is freed by reference counting).
"""

from __future__ import annotations

import argparse
import collections
import gc
import resource
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from sipedge.testing import UAC, Phone, edge_in_memory

DOMAIN = "sipedge.bench"
PROXY, CALLER, CALLEE = "192.0.2.1", "192.0.2.10", "192.0.2.20"
CONFIG = f"""
[sip]
domains = ["{DOMAIN}"]
listen = ["udp:{PROXY}:5060"]
trusted = ["{CALLER}/32"]
[security]
authenticated_rate = 100000
authenticated_burst = 200000
[security.monitor]
call_rate_action = "off"
"""
SDP = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
LINGER_CALLS_AT_500 = 500 * 32


class Lab:
    """The proxy, a trusted caller and a registered callee on one fake network."""

    def __init__(self) -> None:
        self.edge = edge_in_memory(CONFIG, Path(tempfile.mkdtemp(prefix="sipedge-mem-")))
        self.reactor = self.edge.reactor
        self.edge.add_user("service", "service-secret")
        # From outside our domain, as SIPp's: not challenged (it is trusted).
        self.caller = UAC("sipp", "caller.test", self.reactor, host=CALLER, outbound=self.edge.udp)
        self.callee = Phone(
            "service", DOMAIN, self.reactor, host=CALLEE, password="service-secret",
            outbound=self.edge.udp,
        )  # fmt: skip
        for agent in (self.caller, self.callee):
            agent.listen(self.reactor, 5060)
        self.callee.register()
        self.reactor.flush()
        if not self.callee.registered:
            raise SystemExit("the callee did not register")

    def call(self) -> None:
        call = self.caller.invite(f"sip:service@{DOMAIN}", SDP, "Content-Type: application/sdp")
        self.reactor.flush()
        if call.state != "confirmed":
            raise SystemExit(f"a call failed: {call.statuses}")
        self.caller.bye(call)
        self.reactor.flush()
        self.reactor.advance(0.002)
        self.forget()

    def forget(self) -> None:
        """Clear what the test agents and the fake network record."""
        for agent in (self.caller, self.callee):
            agent.received.clear()
            agent.sent.clear()
            agent.calls.clear()
            agent._last_response.clear()
            agent._finished.clear()
        network = self.reactor.network
        for records in (network.sent, network.dropped, network.undeliverable):
            records.clear()

    def stop(self) -> None:
        self.reactor.advance(64)
        self.reactor.flush()
        self.edge.stop()


def where(trace: Any) -> str:
    for frame in reversed(trace.traceback):
        name = frame.filename
        if "/sipedge/" in name and "/message/" not in name and "/testing/" not in name:
            return f"{name.split('/sipedge/', 1)[1]}:{frame.lineno}"
    for frame in reversed(trace.traceback):
        if "/sipedge/" in frame.filename:
            return f"{frame.filename.split('/sipedge/', 1)[1]}:{frame.lineno}"
    return "(outside sipedge)"


def peak_rss(lab: Lab, calls: int, rest_kb: int) -> int:
    """
    Place C{calls} calls 2 ms apart with no tracing (the fake clock's 500
    calls a second: the calls of the last 32 s linger) and print the peak
    RSS, the allocator's overhead included.
    """
    for _ in range(calls):
        lab.call()
    layer = lab.edge.service.core.transactions
    lingering = len(layer.server_transactions) + len(layer.client_transactions)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"sipedge in memory, {calls} calls 2 ms apart: {lingering} transactions lingering")
    print(f"  peak RSS {peak_kb / 1024:.0f} MiB ({rest_kb / 1024:.0f} MiB at rest)")
    lab.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--calls", type=int, default=500, help="calls measured (default 500)")
    parser.add_argument("--top", type=int, default=15, help="allocation sites shown (default 15)")
    parser.add_argument(
        "--fill",
        type=int,
        default=2500,
        help="calls that fill the bounded parse caches first (default 2500)",
    )
    parser.add_argument(
        "--rss",
        type=int,
        default=0,
        help="instead: place N calls 2 ms apart untraced and print the peak RSS"
        " (20000: 500 calls a second for 40 s, 16,000 lingering)",
    )
    args = parser.parse_args(argv)
    if not 10 <= args.calls <= 10_000 or not 0 <= args.top <= 100 or not 0 <= args.fill <= 10_000:
        parser.error("--calls: 10 to 10000; --top: 0 to 100; --fill: 0 to 10000")
    n = args.calls

    lab = Lab()
    for _ in range(20):  # first-time allocations
        lab.call()
    lab.reactor.advance(64)
    lab.reactor.flush()
    gc.collect()
    rest_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.rss:
        return peak_rss(lab, args.rss, rest_kb)

    # Memory held per lingering call. The parse caches (of Via, From and
    # To values: a few thousand entries each) are full in a proxy that has
    # run a while: fill them while tracing, so that an entry a call adds
    # counts against the one it pushes out rather than as held by the call.
    tracemalloc.start(12)
    for _ in range(args.fill):
        lab.call()
    lab.reactor.advance(64)
    lab.reactor.flush()
    gc.collect()
    before = tracemalloc.take_snapshot()
    for _ in range(n):
        lab.call()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    layer = lab.edge.service.core.transactions
    lingering = len(layer.server_transactions) + len(layer.client_transactions)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    held = sum(s.size_diff for s in stats) / n
    print(f"sipedge in memory, {n} calls 2 ms apart (INVITE with SDP/100/180/200/ACK/BYE/200)")
    print(f"  transactions lingering after them: {lingering} ({lingering / n:.1f} a call)")
    print(f"  memory held per lingering call: {held / 1024:.1f} KiB (Python allocations)")
    print(
        f"  at 500 calls a second ({LINGER_CALLS_AT_500} calls lingering for 32 s):"
        f" {held * LINGER_CALLS_AT_500 / 2**20:.0f} MiB, with a proxy of"
        f" {rest_kb / 1024:.0f} MiB at rest (peak RSS of this process so far): about"
        f" {(held * LINGER_CALLS_AT_500 / 1024 + rest_kb) / 1024:.0f} MiB before allocator"
        " overhead"
    )
    sites: collections.Counter[str] = collections.Counter()
    for s in stats:
        sites[where(s)] += s.size_diff
    if args.top:
        print(f"  allocated at (innermost sipedge frame outside the message core), top {args.top}:")
        for site, size in sites.most_common(args.top):
            print(f"    {size / n:8.0f} B/call  {site}")

    # Garbage cycles per call.
    lab.reactor.advance(64)
    lab.reactor.flush()
    gc.collect()
    gc.disable()
    for _ in range(n):
        lab.call()
    lab.reactor.advance(64)
    lab.reactor.flush()
    found = gc.collect()
    gc.enable()
    print(f"  garbage cycles: gc.collect() found {found} objects after {n} calls ended")

    lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
