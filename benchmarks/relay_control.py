"""
Calls a second the relay control protocol carries: a real
C{twistd sipedge-relay} in a child process on loopback, and a
L{RemoteMediaRelay} in this process doing C{allocate}, C{update} and
C{release} for each call (three round trips), C{--concurrency} calls in
flight at a time.

Run: python benchmarks/relay_control.py [--calls N] [--concurrency N] [--tls]

Prints calls a second, the median and 99th-percentile time of one
round trip (each of the three calls), and the relay process's CPU time.
The relay's ports are bound and closed for real (one plain audio stream a
call: four UDP ports).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from sipedge.media import MediaOffer, RelayPolicy, RemoteMediaRelay, StreamOffer
from sipedge.testing import RelayProcess, free_port_range

SECRET = "benchmark-secret-0123456789abcdef"


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def _run(reactor: Any, args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="relay-control-"))
    (work / "relay.key").write_text(SECRET)
    low, high = free_port_range(4 * args.concurrency + 8)
    control = "tcp:127.0.0.1:0"
    extra = ""
    media_extra: dict[str, Any] = {}
    if args.tls:
        from sipedge.testing import make_certificates

        certificates = make_certificates(ip_addresses=["127.0.0.1"], common_name="relay")
        (work / "relay.pem").write_bytes(certificates.cert_pem + certificates.key_pem)
        (work / "ca.pem").write_bytes(certificates.ca_pem)
        control = "tls:127.0.0.1:0"
        extra = 'certificate = "relay.pem"\n'
        media_extra = {"relay_ca": str(work / "ca.pem")}
    relay = RelayProcess(work, f"""
[media]
address = "127.0.0.1"
ports = "{low}-{high}"
[relay]
control = "{control}"
secret_file = "relay.key"
max_pending = {max(64, args.concurrency * 2)}
{extra}""")
    relay.start()
    try:
        host, port = relay.control
        if args.tls:
            from sipedge.config import parse_config

            remote = parse_config({"media": {
                "relay": f"tls:{host}:{port}", "relay_secret": SECRET, **media_extra,
            }}).media.build_remote_relay(reactor)
        else:
            remote = RemoteMediaRelay(
                TCP4ClientEndpoint(reactor, host, port), SECRET.encode(), reactor, timeout=10
            )
        remote.start()
        for _ in range(200):
            if remote.connected:
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        times: list[float] = []

        async def one(n: int) -> None:
            key = f"bench-{n}"
            offer = MediaOffer([StreamOffer("127.0.0.1", 4000 + 2 * (n % 1000))], RelayPolicy())
            for call in (
                lambda: remote.allocate(key, offer),
                lambda: remote.update(key, MediaOffer([StreamOffer("127.0.0.1", 6000)])),
                lambda: remote.release(key),
            ):
                start = time.perf_counter()
                await call()
                times.append(time.perf_counter() - start)

        async def worker(first: int) -> None:
            for n in range(first, args.calls, args.concurrency):
                await one(n)

        assert relay.process is not None
        cpu_before = _cpu(relay.process.pid)
        started = time.perf_counter()
        await defer.gatherResults(
            [defer.Deferred.fromCoroutine(worker(i)) for i in range(args.concurrency)]
        )
        elapsed = time.perf_counter() - started
        cpu = _cpu(relay.process.pid) - cpu_before
        times.sort()
        print(
            f"{'tls' if args.tls else 'tcp'}: {args.calls} calls, {args.concurrency} at a time: "
            f"{args.calls / elapsed:,.0f} calls/s "
            f"({3 * args.calls / elapsed:,.0f} requests/s); round trip median "
            f"{1000 * times[len(times) // 2]:.2f} ms, 99th percentile "
            f"{1000 * times[int(len(times) * 0.99)]:.2f} ms; relay CPU {cpu:.2f} s "
            f"({1e6 * cpu / (3 * args.calls):.0f} us a request, ports included)"
        )
        await remote.close()
    finally:
        relay.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(_run(reactor, args)))


if __name__ == "__main__":
    main()
