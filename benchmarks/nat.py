"""
What NAT traversal costs a call, in process: NAT detection on an INVITE
and on a callee's 200 with SDP (done for each SDP-carrying message when
media is anchored), sealing the flows into the Record-Route (once per dialog-creating request)
and opening them (once per in-dialog request), and the bytes the token adds
to each Record-Route value.

    .venv/bin/python benchmarks/nat.py [--seconds N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from sipedge.message import Request, Response, detect_nat, parse_datagram, parse_sdp
from sipedge.proxy import DialogFlows, FlowTokens, PartyFlow, Sealer
from sipedge.transport import Flow

EDGE = "198.51.100.1"
CALLER = Flow("UDP", EDGE, 5060, "203.0.113.9", 41234)
CALLEE = Flow("TCP", EDGE, 5060, "203.0.113.20", 50123)

SDP = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-1;rport=41234;received=203.0.113.9\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1b2c3\r\n"
    "To: <sip:bob@example.com>\r\nCall-ID: 4f9d3a8c-bench@10.0.0.5\r\nCSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@10.0.0.5:5060>\r\nContent-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
)

OK = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1;received=198.51.100.7\r\n"
    "From: <sip:alice@example.com>;tag=a1b2c3\r\nTo: <sip:bob@example.com>;tag=b9\r\n"
    "Call-ID: 4f9d3a8c-bench@10.0.0.5\r\nCSeq: 1 INVITE\r\n"
    "Contact: <sip:bob@10.0.0.5:5060>\r\nContent-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
)


def rate(name: str, function: Callable[[], object], seconds: float) -> None:
    """Call C{function} for C{seconds}; print calls a second and microseconds a call."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            function()
        count += 100
    elapsed = time.perf_counter() - start
    print(f"{name:<34} {count / elapsed:>10,.0f}/s {elapsed / count * 1e6:>8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    seconds = parser.parse_args().seconds
    invite = parse_datagram(INVITE.encode())
    assert isinstance(invite, Request)
    tokens = FlowTokens(Sealer(b"k" * 32))
    flows = DialogFlows("a1b2c3", PartyFlow(CALLER), PartyFlow(CALLEE, 430))
    call_id = invite.call_id
    token = tokens.seal(flows, call_id)
    print(f"NAT verdict: {detect_nat(invite, CALLER)}")
    print(f"flow token for two parties: {len(token)} bytes in each Record-Route value "
          f"(';ft=' adds {len(token) + 4})")
    ok = parse_datagram(OK.encode())
    assert isinstance(ok, Response)
    rate("detect_nat (INVITE with SDP)", lambda: detect_nat(invite, CALLER), seconds)
    rate("detect_nat (200 with SDP)", lambda: detect_nat(ok, CALLER), seconds)
    sdp = parse_sdp(ok.body)
    rate("detect_nat (200, SDP parsed already)", lambda: detect_nat(ok, CALLER, sdp), seconds)
    rate("seal both flows", lambda: tokens.seal(flows, call_id), seconds)
    rate("open and pick the flow", lambda: tokens.open(token, call_id).toward("x", "a1b2c3"),
         seconds)


if __name__ == "__main__":
    main()
