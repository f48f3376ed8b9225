# -*- test-case-name: sipedge.test.test_proxy_dialogs -*-
"""
Tests for L{sipedge.proxy._dialogs} (the dialog tracker: BYE when the
proxy ends a call, RFC 4028 session timers) and L{sipedge.proxy._originate}
(requests the proxy sends itself), driven through a L{ProxyCore} in memory
as in L{sipedge.test.test_proxy_core}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipedge.error import OriginateError
from sipedge.interfaces import CALLEE, CALLER, IDialogListener
from sipedge.message import Headers, Request, Response
from sipedge.pipeline import Forward, Target
from sipedge.proxy import DialogTracker
from sipedge.proxy._dialogs import session_expires
from sipedge.testing import (
    ALICE,
    ALICE_CONTACT,
    BOB,
    BOB_CONTACT,
    BOB_TCP,
    BOB_UDP,
    CAROL,
    CAROL_UDP,
    PROXY,
    UPSTREAM,
    ProxyHarness,
    capture_log,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

P1 = "<sip:p1.example.net;lr>"  # a proxy between Alice and us
P2 = "<sip:p2.example.org;lr>"  # a proxy between us and Bob


def counting(n: int) -> bytes:
    """Not random: the same bytes each time (branches stay unique by counting below)."""
    counting.count += 1  # type: ignore[attr-defined]
    return counting.count.to_bytes(n, "big")  # type: ignore[attr-defined]


counting.count = 0  # type: ignore[attr-defined]



@implementer(IDialogListener)
class _Recorder:
    """An L{IDialogListener} that records what it is told."""

    def __init__(self, ended: list[tuple[str, ...]]) -> None:
        self.ended = ended

    def dialog_ended(self, call_id: str, caller_tag: str, callee_tag: str, reason: str) -> None:
        self.ended.append((call_id, caller_tag, callee_tag, reason))

class DialogHarness(ProxyHarness):
    """A proxy core with a L{DialogTracker}."""

    session_timers = True
    max_lifetime = 43200.0
    max_dialogs = 100
    record_route = True

    def build(self) -> None:
        super().build()
        self.tracker = DialogTracker(
            self.clock,
            max_lifetime=self.max_lifetime,
            max_dialogs=self.max_dialogs,
            session_timers=self.session_timers,
        )
        self.core = self.make_core(
            record_route=self.record_route, dialogs=self.tracker, random=counting
        )
        self.tracker.originate = self.core.originate
        self.ended: list[tuple[str, ...]] = []
        self.tracker.add_listener(_Recorder(self.ended))

    def assert_clean(self) -> None:
        super().assert_clean()
        self.assertEqual(len(self.core.originator), 0)

    def call(
        self,
        *,
        invite_fields: tuple[str, ...] = (),
        ok_fields: tuple[tuple[str, str], ...] = (),
        downstream: tuple[str, ...] = (),
        flow: Any = BOB_UDP,
        cseq: int = 1,
    ) -> tuple[Request, Response]:
        """
        Alice calls Bob (registered at C{flow}), Bob answers 200; the
        Record-Route values of C{downstream} proxies are on top of ours.
        """
        self.register(f"sip:bob@203.0.113.5:5060{';transport=tcp' if flow.reliable else ''}", flow)
        if flow.reliable:
            self.transports.connections.add(flow)
        self.receive(
            request(
                "INVITE",
                "sip:bob@example.com",
                f"Contact: {ALICE_CONTACT}",
                *invite_fields,
                cseq=cseq,
            ),
            ALICE,
        )
        forwarded = self.only(flow.remote, "INVITE")
        rr = (*downstream, *forwarded.headers.get_all("Record-Route"))
        ok_fields = (*(("Record-Route", v) for v in rr), *ok_fields)
        self.receive(
            answer(forwarded, 200, ("Contact", BOB_CONTACT), *ok_fields, record_route=False), flow
        )
        ok = self.only(UPSTREAM, 200)
        self.take()
        return forwarded, ok

    def in_dialog(
        self, method: str, ok: Response, *fields: str, from_bob: bool = True, cseq: int = 2
    ) -> Request:
        """An in-dialog request along the route set; returns it as forwarded."""
        rr = ok.headers.values("Record-Route")
        if from_bob:
            message = request(
                method,
                "sip:alice@198.51.100.7:5060",
                *(f"Route: {v}" for v in rr),
                *fields,
                branch=f"z9hG4bK-bob-{method.lower()}-{cseq}",
                via="203.0.113.5:5060",
                from_="<sip:bob@example.com>;tag=bob-tag",
                to="<sip:alice@example.com>;tag=alice-tag",
                cseq=cseq,
            )
            self.receive(message, BOB_UDP)
            return self.only(UPSTREAM, method)
        message = request(
            method,
            "sip:bob@203.0.113.5:5060",
            *(f"Route: {v}" for v in reversed(rr)),
            *fields,
            branch=f"z9hG4bK-alice-{method.lower()}-{cseq}",
            to="<sip:bob@example.com>;tag=bob-tag",
            cseq=cseq,
        )
        self.receive(message, ALICE)
        return self.only(BOB, method)

    def byes(self) -> tuple[Request, Request]:
        """The BYE sent to Alice and the one sent to Bob."""
        return self.only(UPSTREAM, "BYE"), self.only(BOB, "BYE")

    def answer_byes(self, to_alice: Request, to_bob: Request, status: int = 200) -> None:
        self.receive(answer(to_alice, status, to_tag=None), ALICE)
        self.receive(answer(to_bob, status, to_tag=None), BOB_UDP)


class EndTests(DialogHarness, SynchronousTestCase):
    """Tests for L{DialogTracker.end}: a BYE to each party."""

    def test_tracked(self) -> None:
        """
        The 2xx of an INVITE we record-route confirms a dialog, known by
        its Call-ID and tags in either order.
        """
        self.call()
        self.assertEqual(len(self.tracker), 1)
        dialog = self.tracker.find("call-1@198.51.100.7", "bob-tag", "alice-tag")
        assert dialog is not None
        self.assertEqual((dialog.caller_tag, dialog.callee_tag), ("alice-tag", "bob-tag"))
        self.assertIs(self.tracker.find("call-1@198.51.100.7", "alice-tag", "bob-tag"), dialog)
        self.assertIsNone(self.tracker.find("call-1@198.51.100.7", "alice-tag", "other"))
        self.tracker.stop()

    def test_bye_to_both(self) -> None:
        """
        L{DialogTracker.end} sends a BYE to each party, as the other party
        would send it: Request-URI its Contact, From the other party with
        its tag, To itself with its tag, the Call-ID, a CSeq one above the
        other party's highest, our Via with a fresh branch, Max-Forwards,
        and the Reason (RFC 3326); each on the flow the party is reached
        on. The dialog is forgotten and the listeners told.
        """
        self.call(cseq=4)
        self.assertTrue(
            self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "media timeout")
        )
        to_alice, to_bob = self.byes()
        self.assertEqual(to_alice.uri, "sip:alice@198.51.100.7:5060")
        self.assertEqual(to_alice.from_address.tag, "bob-tag")
        self.assertEqual(str(to_alice.from_address.uri), "sip:bob@example.com")
        self.assertEqual(to_alice.to_address.tag, "alice-tag")
        self.assertEqual(str(to_alice.to_address.uri), "sip:alice@example.com")
        self.assertEqual(to_alice.cseq.number, 1)
        self.assertEqual(to_alice.headers.get_all("Route"), ())
        self.assertEqual(to_bob.uri, "sip:bob@203.0.113.5:5060")
        self.assertEqual(to_bob.from_address.tag, "alice-tag")
        self.assertEqual(to_bob.to_address.tag, "bob-tag")
        self.assertEqual(to_bob.cseq.number, 5)
        for bye in (to_alice, to_bob):
            self.assertEqual(bye.call_id, "call-1@198.51.100.7")
            self.assertEqual(bye.max_forwards, 70)
            self.assertEqual(bye.headers.get("Reason"), 'SIP;cause=200;text="media timeout"')
            [via] = bye.vias
            self.assertEqual((via.host, via.port), (PROXY, 5060))
            self.assertTrue((via.branch or "").startswith("z9hG4bK-se-o"))
        self.assertNotEqual(to_alice.top_via.branch, to_bob.top_via.branch)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(
            self.ended,
            [("call-1@198.51.100.7", "alice-tag", "bob-tag", "ended: media timeout")],
        )
        self.assertFalse(self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "again"))
        self.answer_byes(to_alice, to_bob)

    def test_logged(self) -> None:
        """
        Ending a call logs one event naming the Call-ID and the reason, and
        one per BYE with its outcome.
        """
        events = capture_log(self)
        self.call()
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "media timeout")
        to_alice, to_bob = self.byes()
        self.receive(answer(to_alice, 200, to_tag=None), ALICE)
        self.receive(answer(to_bob, 481, to_tag=None), BOB_UDP)
        [ending] = [e for e in events if e.get("log_format", "").startswith("Ending call")]
        self.assertEqual(
            (ending["call_id"], ending["reason"]), ("call-1@198.51.100.7", "media timeout")
        )
        answered = sorted(
            (e["role"], e["status"])
            for e in events
            if e.get("log_format", "").startswith("BYE to the") and "status" in e
        )
        self.assertEqual(answered, [("callee", 481), ("caller", 200)])

    def test_route_sets(self) -> None:
        """
        With a proxy before us (P1) and one after us (P2) that
        record-route, the BYE to Alice goes through P1 and the BYE to Bob
        through P2 (loose routes), and neither carries our own Route.
        """
        self.call(invite_fields=(f"Record-Route: {P1}",), downstream=(P2,))
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        to_alice, to_bob = self.byes()
        self.assertEqual(to_alice.headers.values("Route"), [P1])
        self.assertEqual(to_bob.headers.values("Route"), [P2])
        self.answer_byes(to_alice, to_bob)

    def test_strict_router(self) -> None:
        """
        A strict router (no C{lr}) next to a party gets the BYE with its
        URI as Request-URI and the party's Contact at the end of the Route
        set (RFC 3261 12.2.1.1).
        """
        self.call(downstream=("<sip:203.0.113.5:5070>",))
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        to_alice, to_bob = self.byes()
        self.assertEqual(to_bob.uri, "sip:203.0.113.5:5070")
        self.assertEqual(to_bob.headers.values("Route"), ["<sip:bob@203.0.113.5:5060>"])
        self.answer_byes(to_alice, to_bob)

    def test_cseq_tracked(self) -> None:
        """
        In-dialog requests raise each party's CSeq: a BYE to a party uses
        one more than the other party's highest.
        """
        _, ok = self.call()
        info = self.in_dialog("INFO", ok, cseq=7)
        self.receive(answer(info, 200, to_tag=None), ALICE)
        info = self.in_dialog("INFO", ok, from_bob=False, cseq=3)
        self.receive(answer(info, 200, to_tag=None), BOB_UDP)
        self.take()
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        to_alice, to_bob = self.byes()
        self.assertEqual((to_alice.cseq.number, to_bob.cseq.number), (8, 4))
        self.answer_byes(to_alice, to_bob)

    def test_target_refresh(self) -> None:
        """
        A 2xx to a re-INVITE refreshes both remote targets: the requester's
        from its Contact, the other party's from the 2xx's.
        """
        _, ok = self.call()
        reinvite = self.in_dialog("INVITE", ok, "Contact: <sip:bob@203.0.113.5:6000>")
        self.receive(answer(reinvite, 200, ("Contact", "<sip:alice@198.51.100.7:7000>")), ALICE)
        self.take()
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        to_alice, to_bob = self.byes()
        self.assertEqual(to_alice.uri, "sip:alice@198.51.100.7:7000")
        self.assertEqual(to_bob.uri, "sip:bob@203.0.113.5:6000")
        self.assertEqual(to_alice.cseq.number, 3)
        self.answer_byes(to_alice, to_bob)

    def test_bye_forgets(self) -> None:
        """A BYE of the dialog (from either party) forgets it."""
        _, ok = self.call()
        bye = self.in_dialog("BYE", ok)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual([e[3] for e in self.ended], ["bye"])
        [listener] = self.tracker.listeners
        self.assertTrue(verifyObject(IDialogListener, listener))
        self.receive(answer(bye, 200, to_tag=None), ALICE)

    def test_481_forgets(self) -> None:
        """A 481 to an in-dialog request forgets the dialog (RFC 5057)."""
        _, ok = self.call()
        info = self.in_dialog("INFO", ok)
        self.receive(answer(info, 481, to_tag=None), ALICE)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(
            self.ended, [("call-1@198.51.100.7", "alice-tag", "bob-tag", "gone: 481")]
        )

    def test_failure_not_tracked(self) -> None:
        """An INVITE answered with a failure leaves no dialog."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com", f"Contact: {ALICE_CONTACT}"), ALICE)
        self.receive(answer(self.only(BOB, "INVITE"), 486), BOB_UDP)
        self.assertEqual(len(self.tracker), 0)

    def test_retransmitted_2xx(self) -> None:
        """A retransmitted 2xx leaves the dialog as it was (one dialog, same CSeqs)."""
        forwarded, _ = self.call()
        self.receive(answer(forwarded, 200, ("Contact", BOB_CONTACT)), BOB_UDP)
        self.assertEqual(len(self.tracker), 1)
        self.tracker.stop()

    def test_without_contact(self) -> None:
        """A 2xx without Contact gives nothing to send a BYE to: not tracked."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com", f"Contact: {ALICE_CONTACT}"), ALICE)
        self.receive(answer(self.only(BOB, "INVITE"), 200), BOB_UDP)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(self.tracker.stats["untracked"], 1)

    def test_bad_contact(self) -> None:
        """
        A Contact that does not parse (it is read only when a BYE is
        sent): that party gets no BYE (logged), the other one does.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com", f"Contact: {ALICE_CONTACT}"), ALICE)
        self.receive(answer(self.only(BOB, "INVITE"), 200, ("Contact", "<bad uri>")), BOB_UDP)
        self.take()
        self.assertTrue(self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x"))
        self.assertEqual(self.sent_to(BOB, "BYE"), [])
        self.receive(answer(self.only(UPSTREAM, "BYE"), 200, to_tag=None), ALICE)

    def test_max_dialogs(self) -> None:
        """Beyond C{max_dialogs}, new dialogs are not tracked (and a warning is logged)."""
        self.tracker.max_dialogs = 0
        self.call()
        self.assertEqual(len(self.tracker), 0)

    def test_bye_fails(self) -> None:
        """
        A BYE that gets no answer fails after Timer F; that is logged, and
        nothing is left.
        """
        events = capture_log(self)
        self.call()
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        self.settle(40)
        failed = [e for e in events if e.get("log_format", "").startswith("BYE to the")]
        self.assertEqual(len(failed), 2)
        self.assertTrue(all("error" in e for e in failed))

    def test_tcp_flow(self) -> None:
        """
        The BYE to a party reached over a TCP connection goes on that
        connection.
        """
        self.call(flow=BOB_TCP)
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        [(to_bob, flow)] = [(m, f) for m, f in self.transports.sent if f.remote == BOB_TCP.remote]
        assert isinstance(to_bob, Request)
        self.assertEqual(flow, BOB_TCP)
        self.receive(answer(self.only(UPSTREAM, "BYE"), 200, to_tag=None), ALICE)
        self.receive(answer(to_bob, 200, to_tag=None), BOB_TCP)

    def test_tcp_flow_gone(self) -> None:
        """
        If the TCP connection a party was reached on is gone, the BYE goes
        to where its next hop (its Contact) resolves.
        """
        self.call(flow=BOB_TCP)
        self.transports.connections.clear()
        self.tracker.end("call-1@198.51.100.7", "alice-tag", "bob-tag", "x")
        [(to_bob, flow)] = [(m, f) for m, f in self.transports.sent if f.remote[0] == BOB[0]]
        assert isinstance(to_bob, Request)
        self.assertEqual((flow.transport, flow.remote), ("UDP", BOB))  # as its Contact says
        self.receive(answer(self.only(UPSTREAM, "BYE"), 200, to_tag=None), ALICE)
        self.receive(answer(to_bob, 200, to_tag=None), flow)

    def test_media_ended(self) -> None:
        """
        L{DialogTracker.media_ended} ends the call with the relay's reason
        as text; a call without a dialog (no 2xx came) is only logged.
        """
        from sipedge.media import SessionStats
        from sipedge.pipeline.stages import MediaEnded

        self.call()
        stats: Any = SessionStats.__new__(SessionStats)
        self.tracker.media_ended(
            MediaEnded("call-1@198.51.100.7", "alice-tag", "bob-tag", "idle", stats)
        )
        to_alice, to_bob = self.byes()
        self.assertEqual(to_bob.headers.get("Reason"), 'SIP;cause=200;text="media timeout"')
        self.answer_byes(to_alice, to_bob)
        self.tracker.media_ended(MediaEnded("other", "alice-tag", None, "max-duration", stats))
        self.assertEqual(self.sent_to(BOB, "BYE"), [self.only(BOB, "BYE")])


class LateDialogTests(DialogHarness, SynchronousTestCase):
    """
    A 2xx of a second dialog (a forking proxy downstream: another phone
    answers) that comes once the fork has let go of its request.
    """

    def second_2xx(self, forwarded: Request, to_tag: str = "carol-tag") -> Response:
        """Carol's 200 to C{forwarded}, behind P2, on the client transaction of Bob's."""
        rr = (P2, *forwarded.headers.get_all("Record-Route"))
        return answer(
            forwarded,
            200,
            ("Contact", "<sip:carol@203.0.113.9:5060>"),
            *(("Record-Route", v) for v in rr),
            to_tag=to_tag,
            record_route=False,
        )

    def test_late_second_dialog_tracked(self) -> None:
        """
        The fork is let go of once Bob's 200 has answered it; Carol's 200
        that follows on the same client transaction is relayed upstream and
        its dialog tracked too, reached on the flow it came on, with the
        caller's side from the INVITE.
        """
        forwarded, _ = self.call(downstream=(P2,))
        self.assertEqual(self.core.forking.forks, {})
        self.assertEqual(len(self.core.forking.seeds), 1)
        self.receive(self.second_2xx(forwarded), BOB_UDP)
        relayed = self.only(UPSTREAM, 200)
        self.assertEqual(relayed.to_address.tag, "carol-tag")
        self.assertEqual(len(self.tracker), 2)
        bob = self.tracker.find("call-1@198.51.100.7", "alice-tag", "bob-tag")
        carol = self.tracker.find("call-1@198.51.100.7", "alice-tag", "carol-tag")
        assert bob is not None and carol is not None
        self.assertEqual(carol.parties[CALLEE].contact, "<sip:carol@203.0.113.9:5060>")
        self.assertEqual(carol.parties[CALLEE].route, (P2,))
        self.assertEqual(carol.parties[CALLEE].flow, BOB_UDP)
        caller, bobs_caller = carol.parties[CALLER], bob.parties[CALLER]
        self.assertEqual(
            (caller.contact, caller.route, caller.flow, caller.to),
            (bobs_caller.contact, bobs_caller.route, bobs_caller.flow, bobs_caller.to),
        )
        self.assertEqual(caller.from_, '<sip:bob@example.com>;tag=carol-tag')
        self.assertEqual(carol.cseq, {CALLER: 1, CALLEE: 0})
        self.tracker.stop()

    def test_late_dialog_ended(self) -> None:
        """The late dialog can be ended like any other: a BYE to each party."""
        forwarded, _ = self.call()
        self.receive(self.second_2xx(forwarded), BOB_UDP)
        self.take()
        self.assertTrue(
            self.tracker.end("call-1@198.51.100.7", "alice-tag", "carol-tag", "media timeout")
        )
        to_alice, to_carol = self.byes()
        self.assertEqual(to_carol.uri, "sip:carol@203.0.113.9:5060")
        self.assertEqual(to_carol.to_address.tag, "carol-tag")
        self.assertEqual(to_alice.from_address.tag, "carol-tag")
        self.answer_byes(to_alice, to_carol)
        self.tracker.stop()

    def test_retransmitted_2xx_not_doubled(self) -> None:
        """Bob's 200 again after the fork is let go of confirms nothing new."""
        forwarded, _ = self.call()
        again = answer(
            forwarded,
            200,
            ("Contact", BOB_CONTACT),
            *(("Record-Route", v) for v in forwarded.headers.get_all("Record-Route")),
            record_route=False,
        )
        self.receive(again, BOB_UDP)
        self.assertEqual(self.only(UPSTREAM, 200).to_address.tag, "bob-tag")
        self.assertEqual(len(self.tracker), 1)
        self.assertEqual(self.tracker.stats["confirmed"], 1)
        self.tracker.stop()

    def test_seed_forgotten_with_transaction(self) -> None:
        """
        What the tracker needs is kept as long as the client transaction
        (Timer M): after it, a 2xx is relayed statelessly and not tracked.
        """
        forwarded, _ = self.call()
        self.clock.advance(32)
        self.assertEqual(self.core.forking.seeds, {})
        self.assertEqual(self.core.forking.accepted, {})
        self.receive(self.second_2xx(forwarded), BOB_UDP)
        self.assertEqual(len(self.tracker), 1)
        self.tracker.stop()

    def test_not_record_routed_late_dialog(self) -> None:
        """A late 2xx without our Record-Route is relayed and counted untracked."""
        forwarded, _ = self.call()
        late = answer(
            forwarded, 200, ("Contact", "<sip:carol@203.0.113.9>"), to_tag="carol-tag",
            record_route=False,
        )
        self.receive(late, BOB_UDP)
        self.assertEqual(self.only(UPSTREAM, 200).to_address.tag, "carol-tag")
        self.assertEqual(len(self.tracker), 1)
        self.assertEqual(self.tracker.stats["untracked"], 1)
        self.tracker.stop()


class GivenUpBranchTests(DialogHarness, SynchronousTestCase):
    """A 2xx from a branch Timer C gave up on, while the fork goes on."""

    timer_c = 20.0

    def test_late_2xx_tracked(self) -> None:
        """
        If the branch Timer C failed (no provisional response) answers 200
        while the next serial group rings, the 2xx goes upstream and its
        dialog is tracked, reached on the flow the 2xx came on.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP, q=1.0)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, q=0.5, call_id="r2")
        self.receive(
            request("INVITE", "sip:bob@example.com", f"Contact: {ALICE_CONTACT}"), ALICE
        )
        first = self.only(BOB, "INVITE")
        self.clock.advance(20)
        second = self.only(CAROL, "INVITE")
        self.receive(answer(second, 180, to_tag="carol"), CAROL_UDP)
        self.receive(answer(first, 200, ("Contact", BOB_CONTACT)), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 180, 200])
        [dialog] = self.tracker.dialogs
        self.assertEqual((dialog.caller_tag, dialog.callee_tag), ("alice-tag", "bob-tag"))
        self.assertEqual(dialog.parties[CALLEE].flow, BOB_UDP)
        self.assertEqual(dialog.parties[CALLEE].contact, BOB_CONTACT)
        self.receive(answer(self.only(CAROL, "CANCEL"), 200, to_tag="carol"), CAROL_UDP)
        self.receive(answer(second, 487, to_tag="carol"), CAROL_UDP)
        self.tracker.stop()


class NotRecordRoutedTests(DialogHarness, SynchronousTestCase):
    """Without Record-Route, later requests do not come through us."""

    record_route = False

    def test_not_tracked(self) -> None:
        """A dialog we do not record-route is not tracked."""
        self.call()
        self.assertEqual(len(self.tracker), 0)


class SessionTimerTests(DialogHarness, SynchronousTestCase):
    """Tests for RFC 4028 session expiry."""

    def test_parse(self) -> None:
        """L{session_expires} reads the delta-seconds, compact form too."""
        for value, expected in (
            ("1800", 1800),
            ("90;refresher=uac", 90),
            (" 120 ; refresher=uas", 120),
            ("0", None),
            ("abc", None),
            ("-5", None),
            ("\u00b2", None),  # a digit to str.isdigit, not to int()
            ("\u0661\u0662\u0660", None),  # Arabic-Indic digits: not RFC 4028 DIGITs
        ):
            message = request("INVITE", "sip:bob@example.com", f"Session-Expires: {value}")
            self.assertEqual(session_expires(message), expected, value)
        compact = request("INVITE", "sip:bob@example.com", "x: 300")
        self.assertEqual(session_expires(compact), 300)
        self.assertIsNone(session_expires(request("INVITE", "sip:bob@example.com")))

    def test_unreadable_interval(self) -> None:
        """
        A 2xx whose Session-Expires is a non-ASCII digit does not raise out
        of the core: the dialog is tracked for its lifetime only.
        """
        self.call(ok_fields=(("Session-Expires", "\u00b2"),))
        [dialog] = self.tracker.dialogs
        self.assertIsNone(dialog.session_expires)
        self.assertFalse(dialog.expiring)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.clock.advance(self.max_lifetime)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(self.tracker.stats["forgotten"], 1)

    def test_expiry(self) -> None:
        """
        A 2xx with Session-Expires 90 and no refresh: the call is ended at
        90 - min(32, 90/3) = 60 s (RFC 4028 10), with a BYE to both.
        """
        self.call(ok_fields=(("Session-Expires", "90;refresher=uac"),))
        self.clock.advance(59.9)
        self.assertEqual(self.take(), [])
        self.clock.advance(0.1)
        to_alice, to_bob = self.byes()
        self.assertEqual(to_bob.headers.get("Reason"), 'SIP;cause=408;text="session expired"')
        self.assertEqual(self.ended[0][3], "ended: session expired")
        self.assertEqual(self.tracker.stats["expired"], 1)
        self.answer_byes(to_alice, to_bob)

    def test_long_interval(self) -> None:
        """For 1800 s the margin is 32 s: the call ends at 1768 s."""
        self.call(ok_fields=(("Session-Expires", "1800"),))
        self.clock.advance(1767)
        self.assertEqual(self.take(), [])
        self.clock.advance(1)
        self.answer_byes(*self.byes())

    def test_refresh(self) -> None:
        """A re-INVITE answered with a new Session-Expires restarts the timer."""
        _, ok = self.call(ok_fields=(("Session-Expires", "90"),))
        self.clock.advance(50)
        reinvite = self.in_dialog("INVITE", ok, "Session-Expires: 90")
        self.receive(answer(reinvite, 200, ("Session-Expires", "90;refresher=uas")), ALICE)
        self.take()
        self.clock.advance(59)
        self.assertEqual(self.sent_to(BOB, "BYE"), [])
        self.clock.advance(1)
        self.answer_byes(*self.byes())

    def test_update_refresh(self) -> None:
        """An UPDATE answered with Session-Expires refreshes too (RFC 3311, 4028)."""
        _, ok = self.call(ok_fields=(("Session-Expires", "90"),))
        self.clock.advance(50)
        update = self.in_dialog("UPDATE", ok, "Session-Expires: 120", from_bob=False)
        self.receive(answer(update, 200, ("Session-Expires", "120")), BOB_UDP)
        self.take()
        self.clock.advance(87)
        self.assertEqual(self.sent_to(BOB, "BYE"), [])
        self.clock.advance(1)
        self.answer_byes(*self.byes())

    def test_refresh_without_timer(self) -> None:
        """A refresh whose 2xx has no Session-Expires turns the timer off."""
        _, ok = self.call(ok_fields=(("Session-Expires", "90"),))
        reinvite = self.in_dialog("INVITE", ok)
        self.receive(answer(reinvite, 200), ALICE)
        self.clock.advance(1000)
        self.assertEqual(self.sent_to(BOB, "BYE"), [])
        self.assertEqual(len(self.tracker), 1)
        self.tracker.stop()

    def test_no_session_expires(self) -> None:
        """Without Session-Expires in the 2xx there is no expiry."""
        self.call()
        self.clock.advance(3600)
        self.assertEqual(len(self.tracker), 1)
        self.tracker.stop()


class SessionTimersOffTests(DialogHarness, SynchronousTestCase):
    """With C{session_timers} off, Session-Expires is not enforced."""

    session_timers = False

    def test_not_enforced(self) -> None:
        """The call is not ended at the session expiry."""
        self.call(ok_fields=(("Session-Expires", "90"),))
        self.clock.advance(600)
        self.assertEqual(self.sent_to(BOB, "BYE"), [])
        self.tracker.stop()


class LifetimeTests(DialogHarness, SynchronousTestCase):
    """Dialogs that never end are forgotten."""

    max_lifetime = 3600.0

    def test_forgotten(self) -> None:
        """After C{max_lifetime} without a refresh, the dialog is forgotten, no BYE sent."""
        self.call()
        self.clock.advance(3599)
        self.assertEqual(len(self.tracker), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(self.sent_to(BOB, "BYE"), [])
        self.assertEqual(self.tracker.stats["forgotten"], 1)
        self.assertEqual([e[3] for e in self.ended], ["forgotten"])

    def test_session_timer_longer(self) -> None:
        """A session interval beyond the lifetime: the lifetime wins (forgotten, no BYE)."""
        self.call(ok_fields=(("Session-Expires", "86400"),))
        self.clock.advance(3600)
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(self.sent_to(BOB, "BYE"), [])


class OriginateTests(DialogHarness, SynchronousTestCase):
    """Tests for L{ProxyCore.originate}."""

    def bye(self, uri: str = "sip:bob@203.0.113.5:5060") -> Request:
        return request("BYE", uri, max_forwards=None, to="<sip:bob@example.com>;tag=b")

    def test_located(self) -> None:
        """
        Without a flow, the request goes to where its Request-URI
        resolves; the Deferred fires with the final response, not the
        provisional ones.
        """
        d = self.core.originate(self.bye())
        sent = self.only(BOB, "BYE")
        self.assertEqual(sent.max_forwards, 70)
        self.assertNoResult(d)
        self.receive(answer(sent, 100, to_tag=None), BOB_UDP)
        self.assertNoResult(d)
        self.receive(answer(sent, 200, to_tag=None), BOB_UDP)
        self.assertEqual(self.successResultOf(d).status, 200)

    def test_not_found(self) -> None:
        """A next hop that does not resolve fails the Deferred."""
        d = self.core.originate(self.bye("sip:bob@unknown.invalid"))
        self.failureResultOf(d, OriginateError)
        self.assertEqual(self.take(), [])

    def test_no_locator(self) -> None:
        """Without a flow and a locator, the Deferred fails."""
        self.core.locator = None
        self.failureResultOf(self.core.originate(self.bye()), OriginateError)

    def test_send_fails(self) -> None:
        """A send that fails at once fails the Deferred."""
        self.transports.fail_send.add(BOB)
        d = self.core.originate(self.bye(), BOB_UDP)
        failure: Failure = self.failureResultOf(d, OriginateError)
        self.assertIsInstance(failure.value, OriginateError)

    def test_stop(self) -> None:
        """Stopping the core fails what is pending."""
        d = self.core.originate(self.bye(), BOB_UDP)
        self.core.stop()
        self.failureResultOf(d, OriginateError)


class _Context:
    """What the tracker reads of a L{RequestContext}."""

    def __init__(self, original: Request, flow: Any = ALICE) -> None:
        self.original = original
        self.flow = flow


class TrackerPropertyTests(SynchronousTestCase):
    """Properties of the tracker, driven directly (no core)."""

    @given(st.text(max_size=40))
    def test_session_expires_total(self, text: str) -> None:
        """
        L{session_expires} never raises: it gives a positive number of
        seconds or C{None}, for any header value.
        """
        message = Request("INVITE", "sip:b@example.com", Headers.of(("Session-Expires", text)))
        value = session_expires(message)
        self.assertTrue(value is None or (isinstance(value, int) and value > 0))

    @given(st.integers(1, 10**9), st.sampled_from(["", ";refresher=uac", " ;refresher=uas"]))
    def test_session_expires_value(self, seconds: int, params: str) -> None:
        """The delta-seconds is read whatever parameters follow."""
        message = Request(
            "INVITE", "sip:b@example.com", Headers.of(("Session-Expires", f"{seconds}{params}"))
        )
        self.assertEqual(session_expires(message), seconds)

    @given(
        st.integers(1, 1000),
        st.lists(st.tuples(st.booleans(), st.integers(1, 2**31 - 1)), max_size=12),
    )
    def test_bye_cseq_above(self, invite_cseq: int, requests: list[tuple[bool, int]]) -> None:
        """
        Whatever in-dialog requests pass, in any order, the BYE to each
        party has a CSeq above every CSeq the other party used (and the
        caller's INVITE).
        """
        clock = Clock()
        tracker = DialogTracker(clock)
        invite = request(
            "INVITE", "sip:bob@example.com", f"Contact: {ALICE_CONTACT}", cseq=invite_cseq
        )
        sent = invite.with_headers(
            invite.headers.prepended("Record-Route", "<sip:192.0.2.1;lr;se=x>")
        )
        ok = answer(sent, 200, ("Contact", BOB_CONTACT))
        tracker.response_received(_Context(invite), sent, ok, BOB_UDP)
        [dialog] = tracker.dialogs
        for from_bob, cseq in requests:
            if from_bob:
                message = request(
                    "INFO",
                    "sip:alice@198.51.100.7",
                    cseq=cseq,
                    from_="<sip:bob@example.com>;tag=bob-tag",
                    to="<sip:alice@example.com>;tag=alice-tag",
                )
            else:
                message = request(
                    "INFO", "sip:bob@203.0.113.5", cseq=cseq, to="<sip:bob@example.com>;tag=bob-tag"
                )
            tracker.request_decided(_Context(message), Forward((Target(message.uri),)))
        to_alice = tracker.bye(dialog, "caller", "x")
        to_bob = tracker.bye(dialog, "callee", "x")
        assert to_alice is not None and to_bob is not None
        bob_max = max([c for b, c in requests if b], default=0)
        alice_max = max([c for b, c in requests if not b] + [invite_cseq])
        self.assertEqual(to_alice.cseq.number, bob_max + 1)
        self.assertEqual(to_bob.cseq.number, alice_max + 1)
        tracker.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
