"""
The flood generator of benchmarks/flood.py: many UDP sources on one
loopback network send OPTIONS, REGISTERs for unknown users and INVITEs to
unknown users to the proxy, spread evenly, at a total rate, for a bounded
time. Prints one line at the end: "sent N errors E seconds S".

Run: python _flood_gen.py PROXY_HOST PROXY_PORT DOMAIN --first 127.2.0.1
         --sources N --rate R --seconds S

Source i is 127.x.y.z counted from --first (all of 127/8 is on lo on
Linux). Each source sends the three kinds in turn, so at R total a source
sends R/N a second, R/(3N) of each kind: the caller keeps R/N under the
proxy's per-source budget. Responses are not read (nothing is ACKed: a
flood tool does not), and the sockets' receive buffers are small.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time

OPTIONS = (
    "OPTIONS sip:{domain} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{n}x;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:probe@{ip}>;tag={n}\r\n"
    "To: <sip:{domain}>\r\n"
    "Call-ID: {n}-{ip}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "User-Agent: flood\r\n"
    "Content-Length: 0\r\n\r\n"
)
REGISTER = (
    "REGISTER sip:{domain} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{n}r;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:u{u}@{domain}>;tag={n}\r\n"
    "To: <sip:u{u}@{domain}>\r\n"
    "Call-ID: {n}-r-{ip}\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:u{n}@{ip}:{port}>\r\n"
    "Expires: 3600\r\n"
    "User-Agent: flood\r\n"
    "Content-Length: 0\r\n\r\n"
)
INVITE = (
    "INVITE sip:nobody{u}@{domain} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK{n}i;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:caller{n}@{ip}>;tag={n}\r\n"
    "To: <sip:nobody{u}@{domain}>\r\n"
    "Call-ID: {n}-i-{ip}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:caller@{ip}:{port}>\r\n"
    "User-Agent: flood\r\n"
    "Content-Length: 0\r\n\r\n"
)
KINDS = (OPTIONS, REGISTER, INVITE)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("domain")
    parser.add_argument("--first", default="127.2.0.1")
    parser.add_argument("--sources", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    first = ipaddress.IPv4Address(args.first)
    sockets = []
    for i in range(args.sources):
        ip = str(first + i)
        if not ip.startswith("127."):
            raise SystemExit(f"source {ip} is not on loopback")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((ip, 0))
        s.setblocking(False)
        sockets.append((s, ip, s.getsockname()[1]))
    target = (args.host, args.port)
    n_sources = len(sockets)
    sent = errors = 0
    # A few templates per source, so most packets cost one format only.
    t0 = time.monotonic()
    end = t0 + args.seconds
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            due = int(args.rate * (now - t0))
            batch = min(due - sent, 5000)  # bounded per pass
            for _ in range(batch):
                j = sent
                s, ip, port = sockets[j % n_sources]
                turn = j // n_sources
                kind = KINDS[turn % 3]
                # At most 8 unknown users per source: the behaviour monitor bans
                # a source that gets 404 for 20 different users in a minute
                # (an extension scan); this flood stays within every limit.
                data = kind.format(
                    domain=args.domain, ip=ip, port=port, n=j, u=turn % 8
                ).encode()
                try:
                    s.sendto(data, target)
                except OSError:
                    errors += 1
                sent += 1
            time.sleep(0.002)
    finally:
        elapsed = time.monotonic() - t0
        for s, _, _ in sockets:
            s.close()
        print(f"sent {sent} errors {errors} seconds {elapsed:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
