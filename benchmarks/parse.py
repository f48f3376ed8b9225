"""
Parse and serialize rates of the sans-IO message core, on one core.

Run: python benchmarks/parse.py [--seconds N]

Measures, for a typical INVITE with SDP (about 900 bytes) and its 200 OK:
  - parse_datagram (framing, start line, header fields, Content-Length)
  - parse + the typed views a proxy reads for every message
    (top Via, CSeq, Call-ID, From/To tags, Max-Forwards, Request-URI)
  - serialize
and prints messages a second against the targets from issue 2
(60,000 parses and 60,000 serializations a second).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from sipedge.error import SipEdgeError
from sipedge.message import (
    parse_auth_header,
    parse_cseq,
    parse_datagram,
    parse_name_addr,
    parse_via,
    serialize,
)

_INVITE_HEAD = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO, UPDATE\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"User-Agent: Example Phone 4.2.1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n"
)
_INVITE_BODY = (
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

_OK_HEAD = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"
    b";rport=5060;received=192.0.2.101\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.4:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY\r\n"
    b"Supported: replaces, timer\r\n"
    b"Server: Example PBX 9.1\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n"
)
_OK_BODY = (
    b"v=0\r\n"
    b"o=bob 2808844564 2808844564 IN IP4 192.0.2.4\r\n"
    b"s=Session SDP\r\n"
    b"c=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\n"
    b"m=audio 3456 RTP/AVP 0 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
    b"a=rtcp:3457\r\n"
    b"a=maxptime:150\r\n"
)
INVITE = _INVITE_HEAD % len(_INVITE_BODY) + _INVITE_BODY
OK = _OK_HEAD % len(_OK_BODY) + _OK_BODY


def _rate(label: str, func, seconds: float) -> float:
    """Call func repeatedly for about `seconds`; print and return calls a second."""
    batch = 1000 if seconds >= 0.5 else 10
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            func()
        count += batch
        now = time.perf_counter()
        if now >= deadline:
            break
    rate = count / (now - start)
    print(f"  {label:<44} {rate:>10,.0f} /s  {1e6 / rate:6.2f} us")
    return rate


def _distinct(message: bytes, count: int) -> list[bytes]:
    """
    C{count} copies of C{message} with a different branch, From tag and
    Call-ID each, so that measurements see unique header values (the message
    core memoizes parsed Via, From, To and CSeq values by their text).
    """
    out = []
    for i in range(count):
        out.append(
            message.replace(b"z9hG4bK776asdhds", b"z9hG4bK%08d" % i)
            .replace(b"tag=1928301774", b"tag=%010d" % i)
            .replace(b"a84b4c76e66710", b"%014d" % i)
        )
    return out


def _cycle(messages: list[bytes], func: Callable[[bytes], None]) -> Callable[[], None]:
    """A callable that applies C{func} to the next message each call."""
    state = {"i": 0}
    n = len(messages)

    def call() -> None:
        i = state["i"]
        state["i"] = i + 1 if i + 1 < n else 0
        func(messages[i])

    return call


def _views(data: bytes) -> None:
    m = parse_datagram(data)
    m.top_via.branch  # noqa: B018
    m.cseq  # noqa: B018
    m.call_id  # noqa: B018
    m.from_address.tag  # noqa: B018
    m.to_address.tag  # noqa: B018
    m.max_forwards  # noqa: B018
    if hasattr(m, "request_uri"):
        m.request_uri  # noqa: B018


# Header values of the longest line the core accepts (Limits.max_line_length,
# 8192) shaped to make a backtracking parser work hardest: each one almost
# matches and fails at its last character.
_LINE = 8192
HOSTILE: list[tuple[str, Callable[[str], object], str]] = [
    ("name-addr, tokens and no '<'", parse_name_addr, "a " * (_LINE // 2)),
    ("name-addr, unterminated quote", parse_name_addr, '"' + "a\\" * (_LINE // 2 - 1)),
    (
        "name-addr, params failing at the end",
        parse_name_addr,
        "<sip:a@b>" + ";a=b" * (_LINE // 4 - 3) + "@",
    ),
    ("Via, long host then junk", parse_via, "SIP/2.0/UDP " + "a" * (_LINE - 20) + " x"),
    (
        "Via, params failing at the end",
        parse_via,
        "SIP/2.0/UDP h" + ";a=b" * (_LINE // 4 - 4) + "@",
    ),
    ("Via, unterminated quoted param", parse_via, 'SIP/2.0/UDP h;a="' + "\\x" * (_LINE // 2 - 10)),
    ("Digest, unterminated quote", parse_auth_header, 'Digest a="' + "x" * (_LINE - 12)),
    ("CSeq, digits, spaces, junk", parse_cseq, "1" * (_LINE // 2) + " " * (_LINE // 2 - 4) + "x @"),
]


def _hostile(label: str, func: Callable[[str], object], value: str, seconds: float) -> float:
    """Microseconds for one parse of a hostile value (it may be refused)."""

    def call() -> None:
        try:
            func(value)
        except SipEdgeError:
            pass

    return 1e6 / _rate(f"{label} ({len(value)} chars)", call, seconds / 4)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args(argv)
    assert len(INVITE) in range(850, 1000), len(INVITE)
    invite = parse_datagram(INVITE)
    ok = parse_datagram(OK)
    assert serialize(invite) == INVITE and serialize(ok) == OK
    print(f"sipedge message core, Python {sys.version.split()[0]}, one core")
    print(f"INVITE {len(INVITE)} bytes, 200 OK {len(OK)} bytes")
    results = {
        "parse INVITE": _rate(
            "parse_datagram(INVITE)", lambda: parse_datagram(INVITE), args.seconds
        ),
        "parse 200": _rate("parse_datagram(200 OK)", lambda: parse_datagram(OK), args.seconds),
        "views INVITE": _rate(
            "parse INVITE + proxy's typed views",
            _cycle(_distinct(INVITE, 8192), _views),
            args.seconds,
        ),
        "views 200": _rate(
            "parse 200 OK + proxy's typed views",
            _cycle(_distinct(OK, 8192), _views),
            args.seconds,
        ),
        "serialize INVITE": _rate("serialize(INVITE)", lambda: serialize(invite), args.seconds),
        "serialize 200": _rate("serialize(200 OK)", lambda: serialize(ok), args.seconds),
    }
    print("hostile header values, one line of the longest accepted (worst case per field):")
    worst = max(_hostile(label, func, value, args.seconds) for label, func, value in HOSTILE)
    print(f"  slowest hostile field: {worst:,.0f} us")
    target = 60_000
    print(f"target: {target:,} parses and {target:,} serializations a second (issue 2)")
    for name, rate in results.items():
        verdict = "meets" if rate >= target else "below"
        print(f"  {name:<20} {rate / target:5.2f} x target ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
