# -*- test-case-name: sipedge.test.test_garbage -*-
"""
A finished call leaves no garbage cycles: reference counting frees every
object of it, so the collector (tuned and frozen at start-up by the
service) has nothing to find. A cycle per call would keep a call's
messages alive until a collection of the oldest generation, which the
service runs rarely: memory would grow with the call rate.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.flow import Flow
from sipedge.interfaces import ITransactionUser
from sipedge.message import Headers, Message, Request, Response
from sipedge.testing import Phone, edge_in_memory
from sipedge.transaction import TimerWheel, TransactionLayer, make_response

#: What a new user configures: a domain, and the defaults for the rest.
CONFIG = """
[sip]
domains = ["lab.test"]
listen = ["udp:192.0.2.1:5060"]
"""
UDP = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)


class _CollectorOff:
    """Keep the collector off for a test: what it would free is what we count."""

    def __init__(self, case: SynchronousTestCase) -> None:
        gc.collect()
        self.was_enabled = gc.isenabled()
        gc.disable()
        case.addCleanup(self.restore)

    def restore(self) -> None:
        if self.was_enabled:
            gc.enable()


class CallThroughEdgeTests(SynchronousTestCase):
    """A call through a whole sipedge in memory, on its defaults."""

    def setUp(self) -> None:
        self.edge = edge_in_memory(CONFIG, Path(self.mktemp()).absolute())
        self.addCleanup(self.edge.stop)
        self.reactor = self.edge.reactor
        self.phones = []
        for user, host in (("alice", "192.0.2.10"), ("bob", "192.0.2.20")):
            self.edge.add_user(user, f"{user}-secret")
            phone = Phone(
                user, "lab.test", self.reactor, host=host, password=f"{user}-secret",
                outbound=self.edge.udp,
            )  # fmt: skip
            phone.listen(self.reactor, 5060)
            self.addCleanup(phone.stop)
            self.phones.append(phone)
        for phone in self.phones:
            phone.register()
        self.reactor.flush()

    def call(self) -> None:
        alice = self.phones[0]
        call = alice.invite("sip:bob@lab.test")
        self.reactor.flush()
        self.assertEqual(call.state, "confirmed", call.statuses)
        alice.bye(call)
        self.reactor.flush()
        self.reactor.advance_and_flush(64)  # Timers J, L, M run out

    def test_no_cycles(self) -> None:
        """
        After a call (digest-challenged INVITE, 180, 200, ACK, BYE, 200)
        and its transactions' timers, the collector finds no garbage.
        """
        self.call()  # first-time work: caches, registrations, lazy imports
        _CollectorOff(self)
        self.call()
        self.assertEqual(gc.collect(), 0)
        layer = self.edge.service.core.transactions
        self.assertEqual(len(layer.server_transactions) + len(layer.client_transactions), 0)


@implementer(ITransactionUser)
class _Answering:
    """A TU that answers every request 200 and forgets everything."""

    def request_received(self, request: Request, transaction: Any) -> None:
        if request.method != "ACK":
            transaction.respond(make_response(request, 200, to_tag="uas"))

    def response_received(self, response: Response, transaction: Any) -> None:
        pass

    def transaction_failed(self, transaction: Any, reason: Failure) -> None:
        pass

    def transaction_terminated(self, transaction: Any) -> None:
        pass

    def stray_message(self, message: Message, flow: Flow) -> None:
        pass


def _request(method: str, branch: str) -> Request:
    return Request(
        method,
        "sip:bob@example.com",
        Headers.of(
            ("Via", f"SIP/2.0/UDP 198.51.100.7:5060;branch={branch}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "garbage@example.com"),
            ("CSeq", f"1 {method}"),
        ),
    )


class TransactionLayerTests(SynchronousTestCase):
    """Transactions that run their course, on a timer wheel."""

    def test_no_cycles(self) -> None:
        """
        Server and client transactions, INVITE and not, through to
        TERMINATED on their timers, leave no garbage.
        """
        clock = Clock()
        wheel = TimerWheel(clock)
        sent: list[Message] = []
        layer = TransactionLayer(_Answering(), lambda m, f: sent.append(m), wheel)

        def run(n: int) -> None:
            for method in ("INVITE", "BYE"):
                layer.message_received(_request(method, f"z9hG4bK-s{n}{method}"), UDP)
                request = _request(method, f"z9hG4bK-c{n}{method}")
                layer.client_transaction(request, UDP)
                layer.message_received(make_response(request, 200, to_tag="b"), UDP)
            for _ in range(100):
                if not clock.getDelayedCalls():
                    break
                clock.advance(1)
            sent.clear()

        run(0)
        _CollectorOff(self)
        run(1)
        self.assertEqual(gc.collect(), 0)
        self.assertEqual(dict(layer.server_transactions), {})
        self.assertEqual(dict(layer.client_transactions), {})
        self.assertEqual(clock.getDelayedCalls(), [])
