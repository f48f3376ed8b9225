# -*- test-case-name: sipedge.test.test_pipeline_dialog -*-
"""
Requests within a dialog set up through us skip the stages that declare
L{IDialogNeutralStage}; the built-in stages that declare it really cannot
change such a request's fate.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.auth import MemoryCredentialStore, NonceSource
from sipedge.config import DEFAULT_STAGES
from sipedge.flow import Flow
from sipedge.interfaces import IDialogNeutralStage, IRequestStage
from sipedge.message import Request, parse_datagram
from sipedge.pipeline import (
    Continue,
    Forward,
    RequestChain,
    RequestContext,
    StageServices,
    Target,
    build_chain,
)
from sipedge.proxy import LocalIdentity, RecordRouteSigner, Registrar
from sipedge.security import Monitor, Security, TollFraudGuard
from sipedge.store import MemoryLocationStore

FLOW = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)
FORWARD = Forward((Target("sip:bob@203.0.113.5"),))


def _request(method: str, uri: str = "sip:bob@203.0.113.5:5060", *extra: str) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-dlg",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=a",
        "To: <sip:bob@example.com>;tag=b",
        "Call-ID: dialog-1",
        f"CSeq: 2 {method}",
        *extra,
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


@implementer(IRequestStage)
class _Recording:
    """Notes that it ran; marks the request in-dialog if told to (as C{route} does)."""

    def __init__(self, name: str, calls: list[str], mark: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.mark = mark

    def process_request(self, context: RequestContext) -> Any:
        self.calls.append(self.name)
        if self.mark:
            context.annotations["route"] = "dialog"
        return Continue()


@implementer(IRequestStage, IDialogNeutralStage)
class _Neutral(_Recording):
    """A stage that declares it cannot change an in-dialog request's fate."""


@implementer(IRequestStage)
class _Decide(_Recording):
    def process_request(self, context: RequestContext) -> Any:
        super().process_request(context)
        return FORWARD


class ChainSkipTests(SynchronousTestCase):
    """The chain skips neutral stages for requests within our dialogs, and only for them."""

    def run_chain(self, request: Request, mark: bool) -> list[str]:
        calls: list[str] = []
        chain = RequestChain(
            [
                _Neutral("before", calls),
                _Recording("route", calls, mark=mark),
                _Neutral("neutral", calls),
                _Recording("other", calls),
                _Decide("decide", calls),
            ]
        )
        self.assertEqual(chain.dialog_neutral, (True, False, True, False, False))
        self.assertIs(chain.run(RequestContext(request, FLOW)), FORWARD)
        return calls

    def test_in_dialog_skips(self) -> None:
        """
        Once a request is known to be in a dialog through us, the neutral
        stages after that point are not run; the others are.
        """
        self.assertEqual(
            self.run_chain(_request("BYE"), mark=True), ["before", "route", "other", "decide"]
        )

    def test_not_in_dialog(self) -> None:
        """A request outside our dialogs runs every stage."""
        self.assertEqual(
            self.run_chain(_request("BYE"), mark=False),
            ["before", "route", "neutral", "other", "decide"],
        )

    def test_register_never_in_dialog(self) -> None:
        """A REGISTER carrying our signed Route still runs every stage."""
        self.assertEqual(
            self.run_chain(_request("REGISTER", "sip:example.com"), mark=True),
            ["before", "route", "neutral", "other", "decide"],
        )


class BuiltInNeutralTests(SynchronousTestCase):
    """The built-in stages that declare the marker continue on every in-dialog request."""

    def setUp(self) -> None:
        clock = Clock()
        store = MemoryLocationStore()
        security = Security(clock=clock)
        self.addCleanup(security.close)
        services = StageServices(
            clock=clock,
            local=LocalIdentity(("example.com",), (("UDP", "192.0.2.1", 5060),)),
            trusted=(ipaddress.ip_network("10.0.0.0/8"),),
            location=store,
            registrar=Registrar(store, clock),
            signer=RecordRouteSigner(b"k" * 32),
            security=security,
            credentials=MemoryCredentialStore(),
            nonces=NonceSource(b"k" * 32, clock),
            monitor=Monitor(clock=clock, security=security),
            toll_fraud=TollFraudGuard(clock=clock),
        )
        self.services = services
        chain = build_chain(DEFAULT_STAGES, {}, services)
        self.neutral: list[Any] = [s for s in chain.stages if IDialogNeutralStage.providedBy(s)]

    def test_declared(self) -> None:
        """In the default chain, digest-auth and registrar declare it, and no security stage."""
        self.assertEqual([s.name for s in self.neutral], ["digest-auth", "registrar"])

    @given(
        method=st.sampled_from(
            ("INVITE", "ACK", "BYE", "OPTIONS", "INFO", "UPDATE", "MESSAGE", "NOTIFY", "PRACK")
        ),
        uri=st.sampled_from(
            ("sip:bob@203.0.113.5:5060", "sip:bob@example.com", "sip:192.0.2.1;lr")
        ),
        responsibility=st.sampled_from((None, "local", "relay")),
        source=st.sampled_from(("198.51.100.7", "10.1.2.3")),
        credentials=st.booleans(),
    )
    def test_continue_unchanged(
        self, method: str, uri: str, responsibility: str | None, source: str, credentials: bool
    ) -> None:
        """
        On any request within a dialog through us (not a REGISTER), each
        declaring stage continues and changes nothing: skipping it is the
        same as running it.
        """
        extra = (
            ('Proxy-Authorization: Digest username="alice", realm="example.com",'
             ' nonce="x", uri="sip:bob@example.com", response="00"',)
            if credentials
            else ()
        )
        request = _request(method, uri, *extra)
        for stage in self.neutral:
            context = RequestContext(request, Flow("UDP", "192.0.2.1", 5060, source, 5060),
                                     self.services)
            context.annotations["route"] = "dialog"
            if responsibility is not None:
                context.annotations["responsibility"] = responsibility
            before = dict(context.annotations)
            self.assertEqual(stage.process_request(context), Continue(), stage.name)
            self.assertIs(context.request, request)
            self.assertEqual(context.annotations, before)
            self.assertIsNone(context.identity)
