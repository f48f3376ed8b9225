# -*- test-case-name: sipedge.test.test_transport_corpus -*-
"""
The RFC 4475 and RFC 5118 torture messages over the wire: each datagram goes
through sipedge's UDP transport into a whole proxy (transaction layer,
default stages, proxy core; fake sockets and DNS). Every invalid request
whose Via can be read gets the status its RFC expects (400, 414, 416, 420,
505, 513: what the message core's error carries) on the flow it came on,
or whatever else C{EXPECTED.json} allows it; every valid request is
processed (answered or forwarded, never with 400).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Response
from sipedge.testing import PROXY, ProxyHarness
from sipedge.transport import SipDatagramProtocol

DATA = Path(__file__).parent / "data"
SOURCE = ("192.0.2.99", 5999)


class _FakeUDP:
    def write(self, data: bytes, addr: Any) -> None:  # the harness's transports send
        raise AssertionError("the proxy sends through its transports")


def _requests(corpus: str) -> list[tuple[str, bytes, dict[str, Any]]]:
    entries = json.loads((DATA / corpus / "EXPECTED.json").read_text())
    out = []
    for name, entry in sorted(entries.items()):
        data = (DATA / corpus / entry["file"]).read_bytes()
        if data.lstrip(b"\r\n").startswith(b"SIP/"):
            continue  # responses: not requests to answer
        out.append((f"{corpus}/{name}", data, entry))
    return out


class WireCorpusTests(ProxyHarness, SynchronousTestCase):
    """Each torture request, as a datagram, against a whole proxy."""

    def deliver(self, data: bytes) -> list[Any]:
        """Feed C{data} to a UDP transport of the proxy; what it sent back to the source."""
        self.take()
        protocol = SipDatagramProtocol(self.core.transactions, local_host=PROXY)
        protocol.transport = _FakeUDP()
        protocol.local_port = 5060
        protocol.datagramReceived(data, SOURCE)
        self.clock.advance(0)
        return self.take()

    def check(self, corpus: str) -> None:
        failures = []
        for name, data, entry in _requests(corpus):
            self.build()
            sent = self.deliver(data)
            # Over UDP without rport a response goes to the sent-by port of
            # the source address (RFC 3261 18.2.2): the host is what counts.
            answers = [
                m.status for m, flow in sent
                if isinstance(m, Response) and flow.remote_host == SOURCE[0] and m.status >= 200
            ]
            elsewhere = [
                (m.status, flow.remote) for m, flow in sent
                if isinstance(m, Response) and flow.remote_host != SOURCE[0]
            ]
            if elsewhere:
                failures.append(f"{name}: responses sent away from the source: {elsewhere}")
            forwarded = [m for m, flow in sent if not isinstance(m, Response)]
            expect = set(entry["proxy_expect"])
            if entry["valid"]:
                if 400 in answers and "400" not in expect:
                    failures.append(f"{name}: valid, answered 400")
                elif not answers and not forwarded and "drop" not in expect:
                    failures.append(f"{name}: valid, not processed")
                continue
            statuses = {str(s) for s in answers}
            if statuses & expect:
                continue
            if expect & {"accept", "accept_normalized"} and (forwarded or answers):
                continue
            if "drop" in expect and not answers:
                continue
            failures.append(f"{name}: invalid, got {sorted(statuses) or 'silence'}, "
                            f"expected one of {sorted(expect)}")
        self.assertEqual(failures, [])

    def test_rfc4475(self) -> None:
        """RFC 4475: invalid requests get their status, valid ones are processed."""
        self.check("rfc4475")

    def test_rfc5118(self) -> None:
        """RFC 5118 (IPv6): the same."""
        self.check("rfc5118")
