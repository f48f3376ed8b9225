# -*- test-case-name: sipedge.test.test_e2e_fault -*-
"""
End to end: the C{fault} stage in the real C{twistd sipedge}, put there
by its configuration as a lab would, and a scripted L{UAC} on real
loopback sockets talking to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipedge.message import Response
from sipedge.testing import UAC, SipEdgeProcess

_CONFIG = """
[sip]
listen = ["udp:127.0.0.1:0"]
domains = ["lab.test"]

[pipeline]
stages = ["fault", "ban-check", "scanner", "flood", "monitor", "filter", "sanity",
          "max-forwards", "loop-detect", "route", "digest-auth", "responsibility",
          "toll-fraud", "media-anchor", "registrar", "location", "static-route", "forward"]

[[pipeline.options.fault.rules]]
action = "drop"
method = "OPTIONS"
header = "Subject"
match = "^drop me$"

[[pipeline.options.fault.rules]]
action = "delay"
method = "OPTIONS"
header = "Subject"
match = "^hold me$"
seconds = 1.5
"""


class RunningFaultStageTests(TestCase):
    """The fault stage configured into a running sipedge."""

    timeout = 60

    def setUp(self) -> None:
        work = Path(self.mktemp())
        work.mkdir(parents=True)
        self.proxy = SipEdgeProcess(work, _CONFIG)
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.agent = UAC("alice", "example.org", reactor, outbound=("127.0.0.1",
                                                                    self.proxy.ports["UDP"]))
        port = self.agent.listen(reactor, 0)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.agent.stop)

    def options(self, subject: str) -> str:
        """Send OPTIONS (Max-Forwards 0: sipedge answers it) with C{subject}; its branch."""
        request = self.agent.request(
            "OPTIONS", "sip:lab.test", f"Subject: {subject}", max_forwards=0
        )
        self.agent.send_request(request)
        return request.top_via.branch or ""

    def answered_at(self, branch: str, sent: float) -> float | None:
        for message, at in self.arrivals:
            if isinstance(message, Response) and message.top_via.branch == branch:
                return at - sent
        return None

    def test_drop_and_delay(self) -> None:
        """
        Configured by C{[pipeline.options.fault]}: the OPTIONS whose
        Subject is "drop me" gets no answer (nor do its retransmissions),
        "hold me" is answered 1.5 s late, any other at once.
        """
        self.arrivals: list[tuple[Any, float]] = []
        received = self.agent.datagramReceived

        def note(data: bytes, addr: Any) -> None:
            received(data, addr)
            self.arrivals.append((self.agent.received[-1], reactor.seconds()))

        self.agent.datagramReceived = note  # type: ignore[method-assign]
        sent = reactor.seconds()
        dropped = self.options("drop me")
        held = self.options("hold me")
        plain = self.options("hello")
        done: Deferred[None] = Deferred()
        reactor.callLater(4.0, done.callback, None)

        def check(_: None) -> None:
            self.assertIsNone(self.answered_at(dropped, sent))
            late = self.answered_at(held, sent)
            soon = self.answered_at(plain, sent)
            assert late is not None and soon is not None, self.arrivals
            self.assertLess(soon, 1.0)
            self.assertGreaterEqual(late, 1.4)
            self.assertIn("Fault injection: drop OPTIONS sip:lab.test", self.proxy.log())

        return done.addCallback(check)  # type: ignore[return-value]
