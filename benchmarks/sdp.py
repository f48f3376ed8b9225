"""
Cost of the SDP work the media relay does for every offer and answer.

Run: python benchmarks/sdp.py [--offers N]
     valgrind --tool=callgrind python benchmarks/sdp.py --offers 200

With ``[media] anchor = true`` the media-anchor stage parses each offer and
answer and rewrites it to point at the relay. This does the same with the
message core's public API, on a typical G.711 offer (14 lines): parse,
session c= to the relay's address, per media the relay's port, a=rtcp,
a=rtcp-mux off and the ICE attributes dropped, o= with a new version, then
serialize. It prints CPU microseconds per offer. Instruction counts from
callgrind (two runs with different --offers; the difference divided by
the difference of offers) do not depend on the machine's load, and
compare the pure and the compiled (SIPEDGE_MYPYC=1) builds.
"""

from __future__ import annotations

import argparse
import sys
import time

import attrs

from sipedge.message import COMPILED, Connection, Rtcp, parse_sdp

OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
    b"s=Session SDP\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0 8 9 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
    b"a=rtcp:49173\r\n"
)
RELAY = Connection("IN", "IP4", "127.0.0.1")


def relay_offer(body: bytes, port: int, version: int) -> bytes:
    """Parse C{body} and rewrite it for the relay at C{port}."""
    sdp = parse_sdp(body)
    out = sdp.with_connection(RELAY)
    for index, media in enumerate(out.media):
        new = media.with_port(port).with_rtcp(Rtcp(port + 1)).with_rtcp_mux(False)
        out = out.with_media(index, new.without_attributes("candidate", "ice-ufrag", "ice-pwd"))
    origin = out.origin
    if origin is not None:
        out = out.with_origin(attrs.evolve(origin, sess_version=version))
    return out.to_bytes()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--offers", type=int, default=20000, help="offers to rewrite")
    args = parser.parse_args(argv)
    relay_offer(OFFER, 40000, 1)  # imports and caches warm
    start = time.process_time()
    for i in range(args.offers):
        relay_offer(OFFER, 40000 + 2 * (i % 1000), i)
    spent = time.process_time() - start
    build = "compiled" if COMPILED else "pure"
    per_offer = spent / max(args.offers, 1) * 1e6
    print(f"{args.offers} offers, {build} build: {per_offer:.1f} us per offer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
