"""
Packets a second one core of the media relay forwards, on one core.

Run: python benchmarks/relay.py [--calls N] [--packets N] [--repeat N]
                                [--loopback] [--seconds N] [--profile MODE]

In process (the default): a L{MediaRelay} whose sockets are null transports
(C{write} only counts), driven straight through C{RelayLeg.datagramReceived}
with 172-byte packets (12-byte RTP header, 160 bytes of G.711: 20 ms),
round-robin over C{--calls} answered sessions, per-call limits on (they are
set high enough not to drop). Modes:

  plain             RTP in, RTP out
  terminate-in      SRTP in (AES_CM_128_HMAC_SHA1_80), unprotected, RTP out
  terminate-out     RTP in, protected, SRTP out (the other direction)
  rekey             SRTP in, unprotected, protected with the other leg's key

With C{--loopback}, the same relay also runs on the real reactor on
127.0.0.1: a child process blasts plain RTP at the relay's A ports, and
what the relay forwards in C{--seconds} is counted (the child's socket on
B's side is never read; the kernel drops what overflows).

Prints packets a second and the concurrent 20 ms calls that implies:
a call is 50 packets a second in each direction, 100 through the relay.
Targets (issue): 120,000 pps plain, 60,000 bridged, on one core.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import time
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.task import Clock
from zope.interface import implementer

from sipedge.media import (
    AES_CM_128_HMAC_SHA1_80,
    LegPolicy,
    MediaLimits,
    MediaMode,
    MediaOffer,
    MediaRelay,
    PortAllocator,
    RelayPolicy,
    SdesCrypto,
    SrtpContext,
    SrtpKey,
    StreamOffer,
    build_rtp,
)

PACKET_SIZE = 172
PPS_PER_CALL = 100  # 50 a second each way
TARGETS = {"plain": 120_000, "bridged": 60_000}
A_HOST, B_HOST, RELAY = "192.0.2.10", "198.51.100.20", "203.0.113.1"
# Generous per-call limits: on, but never reached at 50 pps per direction.
LIMITS = MediaLimits(max_packet_rate=5000, packet_burst=100_000,
                     max_bandwidth=10_000_000, bandwidth_burst=10_000_000)


@implementer(IListeningPort)
class _NullPort:
    """A bound UDP socket that only counts what is written."""

    def __init__(self, host: str, port: int, protocol: Any) -> None:
        self._address = IPv4Address("UDP", host, port)
        self.written = 0
        protocol.makeConnection(self)

    def write(self, data: bytes, addr: Any) -> None:
        self.written += 1

    def getHost(self) -> IPv4Address:
        return self._address

    def startListening(self) -> None:
        """Bound already."""

    def stopListening(self) -> None:
        return None


@implementer(IReactorUDP)
class _NullReactor(Clock):
    """C{listenUDP} to null ports, and the monotonic clock as time."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[_NullPort] = []

    def seconds(self) -> float:
        return time.monotonic()

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = 8192) -> _NullPort:
        bound = _NullPort(interface, port, protocol)
        self.ports.append(bound)
        return bound


def _rtp(sequence: int, ssrc: int) -> bytes:
    return build_rtp(payload_type=0, sequence=sequence & 0xFFFF, timestamp=160 * sequence,
                     ssrc=ssrc, payload=b"\xd5" * (PACKET_SIZE - 12))


def _modes(mode: str) -> tuple[MediaMode, MediaMode, str]:
    """(A's mode, B's mode, the side the packets come from)."""
    return {
        "plain": (MediaMode.PLAIN, MediaMode.PLAIN, "a"),
        "terminate-in": (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN, "a"),
        "terminate-out": (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN, "b"),
        "rekey": (MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY, "a"),
    }[mode]


def build(mode: str, calls: int, packets: int) -> tuple[MediaRelay, list[Any], _NullReactor]:
    """
    A relay with C{calls} answered sessions in C{mode}, and the work: a
    list of (datagramReceived, packet, source) round-robin over the calls.
    """
    reactor = _NullReactor()
    ports = PortAllocator(reactor, 10000, 10000 + 4 * calls + 3, RELAY)
    relay = MediaRelay(reactor, ports, limits=LIMITS)
    a_mode, b_mode, sender = _modes(mode)
    per_call = []
    for n in range(calls):
        a_key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80)
        crypto = [SdesCrypto(1, a_key.suite.name, a_key.to_sdes())] if a_mode.srtp else []
        a_addr = (A_HOST, 20000 + 2 * n)
        b_addr = (B_HOST, 30000 + 2 * n)
        offer = MediaOffer([StreamOffer(a_addr[0], a_addr[1], crypto=crypto)],
                           RelayPolicy(LegPolicy(a_mode), LegPolicy(b_mode)))
        relay.allocate_now(f"call-{n}", offer)
        b_crypto = []
        b_key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80)
        if b_mode.srtp:
            b_crypto = [SdesCrypto(1, b_key.suite.name, b_key.to_sdes())]
        relay.update_now(f"call-{n}", MediaOffer(
            [StreamOffer(b_addr[0], b_addr[1], crypto=b_crypto)]))
        stream = relay.session(f"call-{n}").streams[0]
        assert stream.a is not None and stream.b is not None
        if sender == "a":
            leg, source = stream.a.rtp, a_addr
            context = SrtpContext(None, a_key) if a_mode.srtp else None
        else:
            leg, source = stream.b.rtp, b_addr
            context = None
        ssrc = 0x1000 + n
        data = [_rtp(seq, ssrc) for seq in range(1, packets + 1)]
        if context is not None:
            data = [context.protect(p) for p in data]
        per_call.append((leg.datagramReceived, data, source))
    work = [(receive, data[i], source)
            for i in range(packets) for receive, data, source in per_call]
    return relay, work, reactor


def run(work: list[Any]) -> float:
    start = time.perf_counter()
    for receive, data, source in work:
        receive(data, source)
    return time.perf_counter() - start


def measure(mode: str, calls: int, packets: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        relay, work, reactor = build(mode, calls, packets)
        elapsed = run(work)
        written = sum(port.written for port in reactor.ports)
        stats = relay.stats_now()
        dropped = stats.a_to_b.dropped + stats.b_to_a.dropped
        if written != len(work) or dropped:
            raise SystemExit(f"{mode}: forwarded {written} of {len(work)}, dropped {dropped}")
        relay.close()
        best = max(best, len(work) / elapsed)
    return best


def baseline(packets: int) -> float:
    """The loop alone, calling a function that does nothing."""
    work = [(lambda data, source: None, b"x", ("h", 1))] * packets
    return len(work) / run(work)


def _loopback_child(relay_ports: list[int], seconds: float) -> str:
    return f"""
import socket, time, struct
relay_ports = {relay_ports!r}
socks = []
for port in relay_ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", port))
    socks.append(s)
sinks = []
for _ in relay_ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    sinks.append(s)
print(",".join(str(s.getsockname()[1]) for s in socks), flush=True)
print(",".join(str(s.getsockname()[1]) for s in sinks), flush=True)
input()
deadline = time.monotonic() + {seconds} + 1
seq = 0
payload = b"\\xd5" * 160
while time.monotonic() < deadline:
    for s in socks:
        seq += 1
        try:
            s.send(struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, 7) + payload)
        except OSError:
            pass
"""


def loopback(calls: int, seconds: float, bare: bool = False) -> tuple[float, int]:
    """
    Plain RTP through the real reactor on 127.0.0.1: packets forwarded a
    second, and dropped. With C{bare}, A's legs are replaced by a forwarder
    that only calls C{sendto} (Twisted and the kernel, no relay logic): the
    ceiling this machine allows.
    """
    from twisted.internet import reactor

    ports = PortAllocator(cast(IReactorUDP, reactor), 41000, 41000 + 4 * calls + 3, "127.0.0.1")
    relay = MediaRelay(reactor, ports, limits=LIMITS)
    allocations = [relay.allocate_now(f"call-{n}", MediaOffer([StreamOffer("127.0.0.1", 1)]))
                   for n in range(calls)]
    child = subprocess.Popen(
        [sys.executable, "-c", _loopback_child(
            [a.streams[0].a.port for a in allocations], seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    sources = [int(p) for p in child.stdout.readline().split(",")]
    b_ports = [int(p) for p in child.stdout.readline().split(",")]
    counted = [0]
    for n, source in enumerate(sources):
        stream = relay.session(f"call-{n}").streams[0]
        assert stream.a is not None and stream.b is not None
        stream.a.rtp.expect(("127.0.0.1", source))
        relay.update_now(f"call-{n}", MediaOffer([StreamOffer("127.0.0.1", b_ports[n])]))
        if bare:
            sendto = stream.b.rtp.transport.getHandle().sendto
            destination = ("127.0.0.1", b_ports[n])

            def forward(data: bytes, addr: Any, sendto: Any = sendto,
                        destination: Any = destination) -> None:
                sendto(data, destination)
                counted[0] += 1

            stream.a.rtp.datagramReceived = forward  # type: ignore[method-assign]
    child.stdin.write("go\n")
    child.stdin.flush()
    marks: dict[str, Any] = {}

    def forwarded() -> int:
        return counted[0] if bare else int(relay.stats_now().a_to_b.packets)

    def begin() -> None:
        marks["start"] = (time.monotonic(), forwarded())
        reactor.callLater(seconds, end)

    def end() -> None:
        marks["end"] = (time.monotonic(), forwarded())
        marks["drops"] = relay.stats_now().a_to_b.dropped
        relay.close()
        reactor.stop()

    reactor.callLater(0.5, begin)  # let the child get going
    reactor.run()
    child.wait()
    (t0, n0), (t1, n1) = marks["start"], marks["end"]
    return (n1 - n0) / (t1 - t0), marks["drops"]


def _loopback_in_child(calls: int, seconds: float, bare: bool) -> tuple[float, int]:
    """Run L{loopback} in a fresh process (a reactor runs once per process)."""
    out = subprocess.run(
        [sys.executable, __file__, "--calls", str(calls), "--seconds", str(seconds),
         "--loopback-child", "bare" if bare else "relay"],
        capture_output=True, text=True, check=True)
    pps, drops = out.stdout.split()
    return float(pps), int(drops)


def report(name: str, pps: float, target: int | None = None) -> None:
    calls = pps / PPS_PER_CALL
    line = f"  {name:<16} {pps:>10,.0f} pps  = {calls:>7,.0f} concurrent 20 ms calls"
    if target:
        line += f"   (target {target:,}: {'met' if pps >= target else 'MISSED'})"
    print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--packets", type=int, default=1000, help="per call per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loopback", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", choices=["plain", "terminate-in", "terminate-out", "rekey"])
    parser.add_argument("--loopback-child", choices=["relay", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loopback_child:
        pps, drops = loopback(args.calls, args.seconds, bare=args.loopback_child == "bare")
        print(pps, drops)
        return

    print(f"Python {sys.version.split()[0]}, pid {os.getpid()}, "
          f"{args.calls} calls x {args.packets} packets of {PACKET_SIZE} bytes, best of "
          f"{args.repeat}")
    if args.profile:
        _, work, _ = build(args.profile, args.calls, args.packets)
        profile = cProfile.Profile()
        profile.runcall(run, work)
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)
        return
    print("In process, datagramReceived with a null transport:")
    report("loop alone", baseline(args.calls * args.packets))
    targets: dict[str, int | None] = {
        "plain": TARGETS["plain"], "terminate-in": TARGETS["bridged"],
        "terminate-out": TARGETS["bridged"], "rekey": TARGETS["bridged"],
    }
    for mode, target in targets.items():
        report(mode, measure(mode, args.calls, args.packets, args.repeat), target)
    if args.loopback:
        calls = min(args.calls, 50)
        print(f"Real UDP on 127.0.0.1 (epoll reactor, {calls} calls, {args.seconds:g} s):")
        pps, drops = _loopback_in_child(calls, args.seconds, bare=True)
        report("sendto only", pps)
        pps, drops = _loopback_in_child(calls, args.seconds, bare=False)
        report("plain", pps, TARGETS["plain"])
        if drops:
            print(f"  ({drops} dropped by the relay)")

if __name__ == "__main__":
    main()
