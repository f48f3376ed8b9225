# -*- test-case-name: sipedge.test.test_proxy_branch -*-
"""
Tests for the per-branch hook of L{sipedge.proxy._core.ProxyCore}: stages
that provide L{IBranchStage} see each request on the flow chosen for it,
and may change it or refuse that destination
(L{sipedge.pipeline._chain.RequestChain.run_branch}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipedge.flow import Flow
from sipedge.interfaces import IBranchStage, IRequestStage
from sipedge.message import Request, Response
from sipedge.pipeline import Continue, RequestChain, Respond
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    CAROL_UDP,
    PROXY,
    TRUSTED,
    UPSTREAM,
    ProxyHarness,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

BOB_TLS = Flow("TLS", PROXY, 5061, "203.0.113.5", 40002)
WARNING = '399 sipedge "not over plain signalling"'


@implementer(IRequestStage, IBranchStage)
class PlainGuard:
    """
    A stage that refuses to send requests marked C{X-Secret} on a flow
    that is not TLS, and stamps the others with the transport it saw.
    """

    name = "plain-guard"

    def __init__(self, *, fail: bool = False) -> None:
        self.seen: list[tuple[str, Flow]] = []
        self.fail = fail

    def process_request(self, context: Any) -> Any:
        return Continue()

    def process_branch(self, context: Any, request: Request, flow: Flow) -> Any:
        self.seen.append((request.method, flow))
        if self.fail:
            raise RuntimeError("a bug")
        if request.headers.get("X-Secret") is not None and not flow.secure:
            return Respond(488, None, (("Warning", WARNING),))
        return request.with_headers(request.headers.added("X-Checked", flow.transport))


class BranchStageTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{IBranchStage} stages in L{ProxyCore}."""

    def guard(self, **kw: Any) -> PlainGuard:
        guard = PlainGuard(**kw)
        verifyObject(IBranchStage, guard)
        self.core.chain = RequestChain([guard, *self.core.chain.stages])
        return guard

    def invite(self, *fields: str, flow: Flow = ALICE, uri: str = "sip:bob@example.com") -> None:
        self.receive(request("INVITE", uri, *fields), flow)

    def finals(self, remote: tuple[str, int] = UPSTREAM) -> list[Response]:
        return [
            m
            for m in self.sent_to(remote)
            if isinstance(m, Response) and m.status >= 200 and m.headers.get("CSeq") != "1 ACK"
        ]

    def test_no_branch_stages(self) -> None:
        """
        A chain without a stage that provides L{IBranchStage} has no branch
        stages: the core sends the request as it was.
        """
        self.assertEqual(self.core.chain.branch_stages, ())
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite("X-Secret: 1")
        self.assertIsNone(self.only(BOB, "INVITE").headers.get("X-Checked"))

    def test_changed(self) -> None:
        """
        What the branch stage returns is what is sent, with our Via on
        top, and it saw the flow the core chose.
        """
        guard = self.guard()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.assertEqual(forwarded.headers.get("X-Checked"), "UDP")
        self.assertEqual(forwarded.top_via.host, PROXY)
        self.assertEqual(guard.seen, [("INVITE", BOB_UDP)])
        self.receive(answer(forwarded, 486), BOB_UDP)

    def test_refused_over_udp(self) -> None:
        """
        A branch refused on a UDP flow: nothing is sent to the callee and
        the caller gets the refusal's status and Warning.
        """
        self.guard()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite("X-Secret: 1")
        self.assertEqual(self.sent_to(BOB), [])
        [final] = self.finals()
        self.assertEqual(final.status, 488)
        self.assertEqual(final.headers.get("Warning"), WARNING)
        self.assertEqual(final.headers.get("Call-ID"), "call-1@198.51.100.7")

    def test_allowed_over_tls(self) -> None:
        """A branch on a registered TLS connection is not refused."""
        self.guard()
        self.register("sip:bob@203.0.113.5:40002;transport=tls", BOB_TLS)
        self.transports.connections.add(BOB_TLS)
        self.invite("X-Secret: 1")
        forwarded = self.only(BOB_TLS.remote, "INVITE")
        self.assertEqual(forwarded.headers.get("X-Checked"), "TLS")
        self.receive(answer(forwarded, 200), BOB_TLS)
        self.assertEqual([m.status for m in self.finals()], [200])

    def test_fork_tls_and_udp(self) -> None:
        """
        A fork with a TLS and a UDP branch: the UDP branch fails at once,
        the TLS one rings and answers; the caller gets its 180 and 200.
        """
        self.guard()
        self.register("sip:bob@203.0.113.5:40002;transport=tls", BOB_TLS, call_id="reg-1")
        self.transports.connections.add(BOB_TLS)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, call_id="reg-2")
        self.invite("X-Secret: 1")
        self.assertEqual(self.sent_to(CAROL_UDP.remote), [])
        forwarded = self.only(BOB_TLS.remote, "INVITE")
        self.assertEqual(self.finals(), [])
        self.receive(answer(forwarded, 180), BOB_TLS)
        self.receive(answer(forwarded, 200), BOB_TLS)
        self.assertEqual(self.statuses(UPSTREAM), [100, 180, 200])

    def test_fork_tls_busy(self) -> None:
        """
        If the TLS branch of such a fork answers 486, the caller gets the
        best of 486 and the refused branch's 488 (RFC 3261 16.7: the
        lowest class, then the lowest code).
        """
        self.guard()
        self.register("sip:bob@203.0.113.5:40002;transport=tls", BOB_TLS, call_id="reg-1")
        self.transports.connections.add(BOB_TLS)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, call_id="reg-2")
        self.invite("X-Secret: 1")
        self.receive(answer(self.only(BOB_TLS.remote, "INVITE"), 486), BOB_TLS)
        self.assertEqual([m.status for m in self.finals()], [486])

    def test_every_branch_refused(self) -> None:
        """If every branch is refused, the caller gets the refusal."""
        self.guard()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP, call_id="reg-1")
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, call_id="reg-2")
        self.invite("X-Secret: 1")
        self.assertEqual(self.sent_to(BOB) + self.sent_to(CAROL_UDP.remote), [])
        self.assertEqual([m.status for m in self.finals()], [488])

    def test_failover_to_tls(self) -> None:
        """
        A refusal on one DNS destination fails over to the next (RFC 3263
        4.3): a UDP destination refused, the TLS one after it gets the
        request.
        """
        guard = self.guard()
        self.locator.add(
            "other.example.net", ("UDP", "203.0.113.10", 5060), ("TLS", "203.0.113.11", 5061)
        )
        self.invite("X-Secret: 1", flow=TRUSTED, uri="sip:bob@other.example.net")
        self.assertEqual(self.sent_to(("203.0.113.10", 5060)), [])
        forwarded = self.only(("203.0.113.11", 5061), "INVITE")
        self.assertEqual([flow.transport for _, flow in guard.seen], ["UDP", "TLS"])
        self.assertEqual(self.transports.server_names[-1], "other.example.net")
        tls = Flow("TLS", PROXY, 5061, "203.0.113.11", 5061)
        self.receive(answer(forwarded, 200), tls)
        self.assertEqual([m.status for m in self.finals(TRUSTED.remote)], [200])

    def test_failover_exhausted(self) -> None:
        """If every DNS destination is refused, the branch fails with the refusal."""
        self.guard()
        self.locator.add(
            "other.example.net", ("UDP", "203.0.113.10", 5060), ("TCP", "203.0.113.11", 5060)
        )
        self.invite("X-Secret: 1", flow=TRUSTED, uri="sip:bob@other.example.net")
        self.assertEqual(self.sent_to(("203.0.113.10", 5060)), [])
        self.assertEqual(self.sent_to(("203.0.113.11", 5060)), [])
        [final] = self.finals(TRUSTED.remote)
        self.assertEqual((final.status, final.headers.get("Warning")), (488, WARNING))

    def test_failover_after_503_refused(self) -> None:
        """
        A fail-over after a 503 asks the branch stages again: the next
        destination, plain, is refused, and the caller gets the 488
        (a 4xx is better than the 503).
        """
        guard = self.guard()
        self.locator.add(
            "other.example.net", ("TLS", "203.0.113.11", 5061), ("UDP", "203.0.113.10", 5060)
        )
        self.invite("X-Secret: 1", flow=TRUSTED, uri="sip:bob@other.example.net")
        forwarded = self.only(("203.0.113.11", 5061), "INVITE")
        self.receive(answer(forwarded, 503), Flow("TLS", PROXY, 5061, "203.0.113.11", 5061))
        self.assertEqual([flow.transport for _, flow in guard.seen], ["TLS", "UDP"])
        self.assertEqual(self.sent_to(("203.0.113.10", 5060)), [])
        self.assertEqual([m.status for m in self.finals(TRUSTED.remote)], [488])

    def test_in_dialog(self) -> None:
        """
        In-dialog requests are checked on their flow too: a BYE along the
        dialog to Bob's UDP contact, marked, is refused with the 488.
        """
        guard = self.guard()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        [rr] = self.only(UPSTREAM, 200).headers.get_all("Record-Route")
        self.take()
        bye = request(
            "BYE",
            "sip:bob@203.0.113.5:5060",
            f"Route: {rr}",
            "X-Secret: 1",
            branch="z9hG4bK-alice-bye",
            cseq=2,
            to="<sip:bob@example.com>;tag=bob-tag",
        )
        self.receive(bye, ALICE)
        self.assertEqual(self.sent_to(BOB), [])
        self.assertEqual(self.statuses(UPSTREAM), [488])
        self.assertEqual(guard.seen[-1], ("BYE", BOB_UDP))

    def test_stateless_ack(self) -> None:
        """
        The ACK of a 2xx, forwarded statelessly, passes the branch stages:
        sent as they changed it; an ACK they refuse is not sent (an ACK
        cannot be answered).
        """
        guard = self.guard()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        [rr] = self.only(UPSTREAM, 200).headers.get_all("Record-Route")
        self.take()

        def ack(branch: str, *fields: str) -> Request:
            return request(
                "ACK",
                "sip:bob@203.0.113.5:5060",
                f"Route: {rr}",
                *fields,
                branch=branch,
                to="<sip:bob@example.com>;tag=bob-tag",
            )

        self.receive(ack("z9hG4bK-alice-ack"), ALICE)
        self.assertEqual(self.only(BOB, "ACK").headers.get("X-Checked"), "UDP")
        self.take()
        self.receive(ack("z9hG4bK-alice-ack2", "X-Secret: 1"), ALICE)
        self.assertEqual(self.take(), [])
        self.assertEqual([m for m, _ in guard.seen], ["INVITE", "ACK", "ACK"])

    def test_stage_fails(self) -> None:
        """
        A branch stage that raises refuses the branch with 500 (logged):
        nothing leaves unchecked.
        """
        self.guard(fail=True)
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        self.assertEqual(self.sent_to(BOB), [])
        self.assertEqual([m.status for m in self.finals()], [500])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bad_result(self) -> None:
        """A branch stage that returns something else refuses with 500."""
        guard = self.guard()
        guard.process_branch = lambda context, request, flow: "yes"  # type: ignore[method-assign]
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        self.assertEqual(self.sent_to(BOB), [])
        self.assertEqual([m.status for m in self.finals()], [500])

    def test_cancel_after_refusal(self) -> None:
        """
        A CANCEL while the TLS branch rings, the UDP one refused: the
        ringing branch is cancelled and the caller gets 487.
        """
        self.guard()
        self.register("sip:bob@203.0.113.5:40002;transport=tls", BOB_TLS, call_id="reg-1")
        self.transports.connections.add(BOB_TLS)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, call_id="reg-2")
        self.invite("X-Secret: 1")
        forwarded = self.only(BOB_TLS.remote, "INVITE")
        self.receive(answer(forwarded, 180), BOB_TLS)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        cancel = self.only(BOB_TLS.remote, "CANCEL")
        self.receive(answer(cancel, 200), BOB_TLS)
        self.receive(answer(forwarded, 487), BOB_TLS)
        self.assertEqual([m.status for m in self.finals() if m.status != 200], [487])
