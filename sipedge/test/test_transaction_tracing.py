# -*- test-case-name: sipedge.test.test_transaction_tracing -*-
"""Tests for L{sipedge.transaction.set_tracing}."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.interfaces import ITransactionUser
from sipedge.message import Request, parse_datagram
from sipedge.testing import capture_log
from sipedge.transaction import TransactionLayer, make_response, set_tracing
from sipedge.transport import Flow

OPTIONS = (
    b"OPTIONS sip:a@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKtrace\r\n"
    b"From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\n"
    b"Call-ID: trace@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@implementer(ITransactionUser)
class _User:
    """Answers every request with 200 and ignores the rest."""

    def request_received(self, request: Request, transaction: Any) -> None:
        transaction.respond(make_response(request, 200))

    def response_received(self, response: Any, transaction: Any) -> None:
        pass

    def transaction_failed(self, transaction: Any, reason: Any) -> None:
        pass

    def transaction_terminated(self, transaction: Any) -> None:
        pass

    def stray_message(self, message: Any, flow: Any) -> None:
        pass


class TracingTests(SynchronousTestCase):
    """Transaction transitions are logged only while tracing is on."""

    def transitions(self, enabled: bool) -> int:
        set_tracing(enabled)
        self.addCleanup(set_tracing, False)
        clock = Clock()
        events = capture_log(self)
        layer = TransactionLayer(_User(), lambda message, flow: None, clock)
        flow = Flow("UDP", "192.0.2.9", 5060, "192.0.2.1", 5060)
        layer.message_received(parse_datagram(OPTIONS), flow)
        clock.advance(64)
        self.assertEqual(clock.getDelayedCalls(), [])
        return sum(1 for e in events if "->" in e.get("log_format", ""))

    def test_off_by_default(self) -> None:
        """If tracing is off, a transaction logs none of its transitions."""
        self.assertEqual(self.transitions(False), 0)

    def test_on(self) -> None:
        """If tracing is on, every transition is logged at debug level."""
        self.assertGreater(self.transitions(True), 0)

    def strays(self, enabled: bool) -> int:
        set_tracing(enabled)
        self.addCleanup(set_tracing, False)
        events = capture_log(self)
        layer = TransactionLayer(_User(), lambda message, flow: None, Clock())
        flow = Flow("UDP", "192.0.2.9", 5060, "192.0.2.1", 5060)
        ack = OPTIONS.replace(b"OPTIONS", b"ACK").replace(b"z9hG4bKtrace", b"z9hG4bKack")
        layer.message_received(parse_datagram(ack), flow)
        self.assertEqual(layer.stats["stray"], 1)
        return sum(1 for e in events if "No transaction" in e.get("log_format", ""))

    def test_stray_logged_only_when_tracing(self) -> None:
        """
        A request with no transaction (an ACK for a 2xx, one a call) is
        logged at debug level only while tracing is on.
        """
        self.assertEqual(self.strays(False), 0)
        self.assertEqual(self.strays(True), 1)
