"""
CPU per call on sipedge's request path, in process: no sockets, no SIPp.

Run: python benchmarks/callpath.py [--calls N] [--rate R] [--profile] [--top N]
     valgrind --tool=callgrind python benchmarks/callpath.py --calls 300

A whole sipedge service (``sipedge.testing.edge_in_memory``, the cps.py
configuration: a domain, the trusted UAC, default chain) runs on a fake
reactor. A UAS registers ``service@sipedge.bench`` (digest, as a phone
does); then a UAC placed on 127.0.0.10 (trusted) sends, for each call, the
ladder of cps.py: INVITE, 100, 180, 200, ACK, BYE, 200, with the ACK and
BYE following the Record-Route. The UAC and UAS are raw datagram protocols
that build their messages with byte templates, so almost all the time is
sipedge's. The fake clock moves 1/rate seconds between calls, so timers
(Timer C, J, K, the dialogs' housekeeping) fire as they would at that rate.

It prints microseconds of CPU per call (process time, after a warm-up), and
with ``--profile`` the top functions of a cProfile run by own and
cumulative time. Instruction counts from callgrind are stable on a loaded
machine where wall and CPU figures are not.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import itertools
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import globalLogBeginner, textFileLogObserver

from sipedge.testing import FakeReactor, Phone, edge_in_memory

DOMAIN = "sipedge.bench"
PROXY = ("127.0.0.1", 5060)
UAC_ADDR = ("127.0.0.10", 5070)
UAS_ADDR = ("127.0.0.20", 5080)

CONFIG = f"""
[sip]
domains = ["{DOMAIN}"]
listen = ["udp:{PROXY[0]}:{PROXY[1]}"]
trusted = ["{UAC_ADDR[0]}/32"]
record_route = true
[security]
authenticated_rate = 100000
authenticated_burst = 200000
[security.monitor]
call_rate_action = "off"
"""

SDP = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class HeapReactor(FakeReactor):
    """
    A L{FakeReactor} whose timers live in a heap: C{Clock} sorts its whole
    list on every C{callLater}, which at thousands of live timers would
    cost more than sipedge does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = itertools.count()

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> DelayedCall:
        call = DelayedCall(
            self.seconds() + delay, callable, args, kw,
            self._cancelled, self._reset, seconds=self.seconds,
        )
        heapq.heappush(self._heap, (call.time, next(self._seq), call))
        return call

    def _cancelled(self, call: DelayedCall) -> None:
        pass  # skipped when popped

    def _reset(self, call: DelayedCall) -> None:
        heapq.heappush(self._heap, (call.time, next(self._seq), call))

    def getDelayedCalls(self) -> list[DelayedCall]:
        return [c for t, _, c in self._heap if c.active() and c.time == t]

    def _due(self) -> bool:
        now = self.seconds()
        heap = self._heap
        while heap and (not heap[0][2].active() or heap[0][2].time != heap[0][0]):
            heapq.heappop(heap)
        return bool(heap) and heap[0][0] <= now

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            when, _, call = heapq.heappop(heap)
            if not call.active() or call.time != when:
                continue
            call.called = 1
            call.func(*call.args, **call.kw)


_VIA = re.compile(rb"^Via:.*\r\n", re.M | re.I)
_RR = re.compile(rb"^Record-Route:.*\r\n", re.M | re.I)
_LINE = {
    name: re.compile(rb"^" + name + rb":.*\r\n", re.M | re.I)
    for name in (b"From", b"To", b"Call-ID", b"CSeq")
}


def _lines(data: bytes, name: bytes) -> bytes:
    match = _LINE[name].search(data)
    assert match is not None, (name, data)
    return match.group(0)


class RawUAS(DatagramProtocol):
    """Answers INVITE with 180 and 200 (SDP), BYE with 200; as SIPp's uas.xml."""

    transport: Any

    def __init__(self) -> None:
        self.calls = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        method = data.split(b" ", 1)[0]
        if method == b"ACK":
            return
        head = b"".join(m.group(0) for m in _VIA.finditer(data))
        if method == b"INVITE":
            self.calls += 1
            tag = b";tag=uas%d" % self.calls
            rr = b"".join(m.group(0) for m in _RR.finditer(data))
            to = _lines(data, b"To")[:-2] + tag + b"\r\n"
            common = (
                head + rr + _lines(data, b"From") + to + _lines(data, b"Call-ID")
                + _lines(data, b"CSeq")
                + b"Contact: <sip:%s:%d;transport=UDP>\r\n" % (UAS_ADDR[0].encode(), UAS_ADDR[1])
            )
            ringing = b"SIP/2.0 180 Ringing\r\n" + common + b"Content-Length: 0\r\n\r\n"
            self.transport.write(ringing, addr)
            sdp = SDP.replace(b"{ip}", UAS_ADDR[0].encode())
            self.transport.write(
                b"SIP/2.0 200 OK\r\n" + common + b"Content-Type: application/sdp\r\n"
                b"Content-Length: %d\r\n\r\n" % len(sdp) + sdp,
                addr,
            )
        elif method == b"BYE":
            self.transport.write(
                b"SIP/2.0 200 OK\r\n" + head + _lines(data, b"From") + _lines(data, b"To")
                + _lines(data, b"Call-ID") + _lines(data, b"CSeq") + b"Content-Length: 0\r\n\r\n",
                addr,
            )


class RawUAC(DatagramProtocol):
    """Places calls as SIPp's uac.xml does (no call hold)."""

    transport: Any

    def __init__(self) -> None:
        self.n = 0
        self.done = 0
        self.statuses: dict[int, int] = {}

    def invite(self) -> None:
        self.n += 1
        ip, port = UAC_ADDR
        sdp = SDP.replace(b"{ip}", ip.encode())
        msg = (
            b"INVITE sip:service@%s SIP/2.0\r\n" % DOMAIN.encode()
            + self._common(b"z9hG4bK-i%d" % self.n, self.n)
            + b"To: <sip:service@%s>\r\nCSeq: 1 INVITE\r\n" % DOMAIN.encode()
            + b"Contact: <sip:sipp@%s:%d;transport=UDP>\r\n" % (ip.encode(), port)
            + b"Max-Forwards: 70\r\n"
            + b"Subject: sipedge benchmark\r\nContent-Type: application/sdp\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(sdp) + sdp
        )
        self.transport.write(msg, PROXY)

    def _common(self, branch: bytes, n: int) -> bytes:
        ip, port = UAC_ADDR
        return (
            b"Via: SIP/2.0/UDP %s:%d;branch=%s;rport\r\n" % (ip.encode(), port, branch)
            + b"From: sipp <sip:sipp@%s:%d>;tag=uac%d\r\n" % (ip.encode(), port, n)
            + b"Call-ID: call-%d@bench\r\n" % n
        )

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        status = int(data[8:11])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        cseq = _lines(data, b"CSeq")
        n = int(re.search(rb"call-(\d+)@bench", data).group(1))  # type: ignore[union-attr]
        if status != 200:
            return
        if b"INVITE" in cseq:
            rr = [m.group(0)[len(b"Record-Route:"):].strip() for m in _RR.finditer(data)]
            routes = b"".join(b"Route: %s\r\n" % r for r in rr)
            to = _lines(data, b"To")
            contact = re.search(rb"^Contact:\s*<([^>]*)>", data, re.M).group(1)  # type: ignore[union-attr]
            for method, cseq_n, branch in ((b"ACK", 1, b"a"), (b"BYE", 2, b"b")):
                msg = (
                    b"%s %s SIP/2.0\r\n" % (method, contact)
                    + self._common(b"z9hG4bK-%s%d" % (branch, n), n)
                    + routes + to + b"CSeq: %d %s\r\n" % (cseq_n, method)
                    + b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                )
                self.transport.write(msg, PROXY)
        elif b"BYE" in cseq:
            self.done += 1


class Bench:
    """The edge, the registered UAS and the UAC."""

    def __init__(self, state_dir: Path) -> None:
        self.reactor = HeapReactor()
        self.edge = edge_in_memory(CONFIG, state_dir, reactor=self.reactor)
        self.edge.add_user("service", "bench-secret")
        phone = Phone(
            "service", DOMAIN, self.reactor, host=UAS_ADDR[0],
            password="bench-secret", outbound=PROXY,
        )
        listening = phone.listen(self.reactor, UAS_ADDR[1])
        phone.register()
        self.reactor.flush()
        assert phone.registered, "the UAS did not register"
        phone.stop()
        listening.stopListening()
        self.reactor.flush()
        self.uas = RawUAS()
        self.uac = RawUAC()
        self.reactor.listenUDP(UAS_ADDR[1], self.uas, interface=UAS_ADDR[0])
        self.reactor.listenUDP(UAC_ADDR[1], self.uac, interface=UAC_ADDR[0])
        # As under twistd: the service's collector tuning (edge_in_memory
        # leaves it out), and every log event formatted and written.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        self._devnull = open(os.devnull, "w")
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(self._devnull)], redirectStandardIO=False
        )

    def calls(self, count: int, rate: float) -> None:
        step = 1.0 / rate
        reactor = self.reactor
        uac = self.uac
        for _ in range(count):
            uac.invite()
            reactor.advance(step)
            reactor.flush()

    def stop(self) -> None:
        self.edge.stop()
        self._devnull.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--calls", type=int, default=3000, help="measured calls (default 3000)")
    parser.add_argument("--warmup", type=int, default=300, help="calls before measuring")
    parser.add_argument("--rate", type=float, default=500.0, help="fake-clock calls a second")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured calls")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime,cumulative")
    parser.add_argument("--save", default=None, help="write the cProfile stats to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.calls(args.warmup, args.rate)
            done0 = bench.uac.done
            # CPU time, not wall time: on a loaded machine the wall clock
            # charges other processes' time to whatever function was running.
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            start = time.process_time()
            if profiler is not None:
                profiler.enable()
            bench.calls(args.calls, args.rate)
            if profiler is not None:
                profiler.disable()
            cpu = time.process_time() - start
            done = bench.uac.done - done0
        finally:
            bench.stop()
    print(f"calls {args.calls}, completed {done}, statuses at the UAC {bench.uac.statuses}")
    print(f"CPU per call: {cpu / max(done, 1) * 1e6:.0f} us"
          + (" (under cProfile)" if profiler is not None else ""))
    if done != args.calls:
        print("WARNING: not every call completed", file=sys.stderr)
    if profiler is not None:
        if args.save:
            profiler.dump_stats(args.save)
        stats = pstats.Stats(profiler)
        stats.strip_dirs()
        for key in args.sort.split(","):
            stats.sort_stats(key).print_stats(args.top)
    return 0 if done == args.calls else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
