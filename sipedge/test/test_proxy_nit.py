"""
RFC 4320 in the proxy core: the non-INVITE transaction. A non-INVITE gets
no provisional response from us (4.1) and never a 408 (4.2): when none of
its branches answers, nothing goes upstream and its server transaction
ends silently. Timing on a C{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.interfaces import IRequestStage, IResponseStage
from sipedge.message import Response
from sipedge.pipeline import Continue, RequestChain, build_chain
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    CAROL,
    CAROL_UDP,
    STAGES,
    UPSTREAM,
    ProxyHarness,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request


@implementer(IRequestStage, IResponseStage)
class _Seen:
    """A response stage that records the statuses it sees, optionally replacing a 408."""

    name = "seen"

    def __init__(self, replace_408: int | None = None) -> None:
        self.seen: list[int] = []
        self.replace_408 = replace_408

    def process_request(self, context: Any) -> Any:
        return Continue()

    def process_response(self, context: Any, response: Response) -> Any:
        self.seen.append(response.status)
        if response.status == 408 and self.replace_408 is not None:
            return Response(self.replace_408, "Replaced", response.headers, b"")
        return response


class NonInviteTimeoutTests(ProxyHarness, SynchronousTestCase):
    """RFC 4320 4.2: no 408 to a non-INVITE."""

    def test_no_408_upstream(self) -> None:
        """
        If the only branch of a MESSAGE never answers, nothing is sent
        upstream when our Timer F fires (64*T1, 32 s), and no transaction
        or timer is left: the client's own Timer F ends its side.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.assertEqual(len(self.sent_to(BOB, "MESSAGE")), 1)
        self.clock.pump([0.5] * 63)
        self.assertNotEqual(dict(self.core.transactions.client_transactions), {})
        self.clock.advance(0.5)
        self.assertEqual(dict(self.core.transactions.client_transactions), {})
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.assertEqual(dict(self.core.transactions.server_transactions), {})
        self.assertEqual(self.core.forking.forks, {})

    def test_retransmission_absorbed(self) -> None:
        """
        While the branch is still trying, a retransmission of the request
        is absorbed by its server transaction (not forwarded again), and
        still nothing is answered.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        message = request("MESSAGE", "sip:bob@example.com")
        self.receive(message, ALICE)
        self.clock.pump([0.5] * 8)
        forwarded = len(self.sent_to(BOB, "MESSAGE"))
        self.receive(message, ALICE)
        self.assertEqual(len(self.sent_to(BOB, "MESSAGE")), forwarded)
        self.settle(40)
        self.assertEqual(self.statuses(UPSTREAM), [])

    def test_another_answer_wins(self) -> None:
        """
        If one branch times out and another answers 404, the 404 goes
        upstream: the timeout is no answer, not a 408 candidate.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP, call_id="r1")
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, call_id="r2")
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.receive(answer(self.only(CAROL, "MESSAGE"), 404), CAROL_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.clock.pump([0.5] * 64)
        self.assertEqual(self.statuses(UPSTREAM), [404])

    def test_408_from_downstream_not_relayed(self) -> None:
        """A 408 that a next hop sends for a non-INVITE is not relayed either."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.receive(answer(self.only(BOB, "MESSAGE"), 408), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [])
        methods = [key.method for key in self.core.transactions.server_transactions]
        self.assertNotIn("MESSAGE", methods)

    def test_invite_still_408(self) -> None:
        """An INVITE that times out still gets 408 (RFC 4320 is about non-INVITE)."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.clock.pump([0.5] * 64)
        self.assertEqual(self.statuses(UPSTREAM), [100, 408])

    def test_response_chain_sees_the_end(self) -> None:
        """
        The response stages see the 408 of a non-INVITE that nobody
        answered (a stage that holds something for it releases it), though
        nothing goes upstream; if a stage makes another response of it,
        that one is sent.
        """
        for replace, expected in ((None, []), (500, [500])):
            self.build()
            stage = _Seen(replace)
            self.core = self.make_core(
                RequestChain([*build_chain(STAGES, {}, self.services).stages, stage])
            )
            self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
            self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
            self.clock.pump([0.5] * 64)
            self.assertEqual(stage.seen[-1:], [408])
            self.assertEqual(self.statuses(UPSTREAM), expected)


class NonInviteProvisionalTests(ProxyHarness, SynchronousTestCase):
    """RFC 4320 4.1: no provisional response to a non-INVITE."""

    def test_no_100_trying(self) -> None:
        """A forwarded non-INVITE gets no 100 Trying from us, over UDP, at any time."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.clock.pump([0.5] * 20)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.receive(answer(self.sent_to(BOB, "MESSAGE")[0], 200), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [200])

    def test_provisional_not_relayed(self) -> None:
        """
        A provisional response a next hop sends to a non-INVITE (180, 183)
        is not relayed upstream; its final response is.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("OPTIONS", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "OPTIONS")
        for status in (180, 183):
            self.receive(answer(forwarded, status), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [200])

    def test_invite_provisional_relayed(self) -> None:
        """An INVITE's 180 is still relayed."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.receive(answer(self.only(BOB, "INVITE"), 180), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 180])
        self.receive(answer(self.only(BOB, "INVITE"), 486), BOB_UDP)
