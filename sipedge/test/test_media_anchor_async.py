# -*- test-case-name: sipedge.test.test_media_anchor_async -*-
"""
The C{media-anchor} stage with an L{IMediaRelay} whose Deferreds fire
later, as a relay in another process does (L{sipedge.testing.LaterRelay},
under the fake reactor's clock; L{sipedge.test.test_media_anchor} runs
all its stage tests again with it): the interleavings only a late relay
allows (a retransmission, a crossing offer or the end of the call while
the relay has not answered), and the stage in a real L{ProxyCore} whose
request, response and ACK paths wait for it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import PortsExhausted, offer_of
from sipedge.message import Request, Response, parse_sdp
from sipedge.pipeline import Continue, RequestContext, Respond
from sipedge.testing import (
    A_TAG,
    A_UDP,
    ALICE,
    ANCHOR_CONFIG,
    B_TAG,
    B_UDP,
    BOB,
    BOB_UDP,
    CALL_ID,
    UPSTREAM,
    AnchoredHarness,
    AnchorTestCase,
    LaterRelay,
    LaterRelayMixin,
    anchor_request,
    anchor_response,
    sdp_a,
    sdp_b,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

CALL = f"{CALL_ID};{A_TAG}"
SDP = ("Content-Type: application/sdp",)


class LateRelayTests(LaterRelayMixin, AnchorTestCase):
    """What only a relay that answers later can show."""

    def test_offer_waits(self) -> None:
        """
        The INVITE's offer: the stage answers with a Deferred, and the
        request goes on with the relay's B side only once the relay has
        answered.
        """
        invite = anchor_request("INVITE", sdp_a())
        context = RequestContext(invite, A_UDP)
        result = self.run_request(context)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        self.assertIs(context.request, invite)
        self.assertEqual(self.later.asked, [("allocate", CALL)])
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(result), Continue())
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", context.request.body)
        self.back(context, anchor_response(invite, 486))

    def test_answers_wait(self) -> None:
        """The answer in a 183, then in the 200: each waits for the relay's update."""
        invite = anchor_request("INVITE", sdp_a())
        context = self.send(invite)
        early = self.stage.process_response(context, anchor_response(invite, 183, sdp_b()))
        assert isinstance(early, Deferred)
        self.assertNoResult(early)
        self.reactor.advance(0)
        self.assertIn(b"m=audio 20000 ", self.successResultOf(early).body)
        ok = self.stage.process_response(context, anchor_response(invite, 200, sdp_b()))
        assert isinstance(ok, Deferred)
        self.reactor.advance(0)
        self.assertIn(b"m=audio 20000 ", self.successResultOf(ok).body)
        self.assertEqual([op for op, _ in self.later.asked], ["allocate", "update", "update"])
        self.hang_up()

    def test_crossing_offer(self) -> None:
        """
        A re-INVITE's offer the relay has not allocated yet is outstanding:
        an UPDATE from the other party meanwhile gets 491.
        """
        self.call()
        self.later.hold = True
        reinvite = anchor_request("INVITE", sdp_a(version=6), cseq=2, to_tag=B_TAG)
        context = RequestContext(reinvite, A_UDP)
        pending = self.stage.process_request(context)
        assert isinstance(pending, Deferred)
        update = anchor_request("UPDATE", sdp_b(version=8), cseq=5, caller=False)
        self.assertEqual(self.refuse(update, B_UDP).status, 491)
        self.later.answer()
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(pending), Continue())
        self.back(context, anchor_response(reinvite, 200, sdp_b(version=8)))
        self.hang_up(cseq=3)

    def test_call_ends_while_allocating(self) -> None:
        """
        The call ends (BYE) while the relay allocates a re-INVITE's offer:
        the re-INVITE gets 500, and the new session is released once the
        relay has answered; nothing is left.
        """
        self.call()
        self.later.hold = True
        reinvite = anchor_request("INVITE", sdp_b(version=8), cseq=1, caller=False)
        context = RequestContext(reinvite, B_UDP)
        pending = self.stage.process_request(context)
        assert isinstance(pending, Deferred)
        self.hang_up()
        self.assertEqual(self.stage.calls, ())
        self.later.answer()
        self.reactor.advance(0)
        result = self.successResultOf(pending)
        assert isinstance(result, Respond)
        self.assertEqual(result.status, 500)
        self.reactor.advance(0)
        self.assertEqual(self.relay.session_keys, ())

    def test_retransmitted_ack_waits(self) -> None:
        """
        A late offer: a retransmitted ACK that comes while the relay takes
        the first ACK's answer waits for it, and goes on with the same
        bytes; the relay is asked once.
        """
        invite = anchor_request("INVITE")
        context = self.send(invite)
        self.back(context, anchor_response(invite, 200, sdp_b()))
        self.later.hold = True
        first = RequestContext(anchor_request("ACK", sdp_a(), to_tag=B_TAG), A_UDP)
        second = RequestContext(anchor_request("ACK", sdp_a(), to_tag=B_TAG), A_UDP)
        d1 = self.stage.process_request(first)
        d2 = self.stage.process_request(second)
        assert isinstance(d1, Deferred) and isinstance(d2, Deferred)
        self.assertNoResult(d2)
        self.later.answer()
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d1), Continue())
        self.assertEqual(self.successResultOf(d2), Continue())
        self.assertIn(b"m=audio 20000 ", first.request.body)
        self.assertEqual(second.request.body, first.request.body)
        self.assertEqual([op for op, _ in self.later.asked].count("update"), 1)
        self.hang_up(caller=False)

    def test_retransmitted_2xx(self) -> None:
        """
        A retransmitted 200 (the proxy runs it after the first: the response
        chain keeps order) gets the first one's bytes without asking the
        relay again.
        """
        invite = anchor_request("INVITE", sdp_a())
        context = self.send(invite)
        ok = anchor_response(invite, 200, sdp_b())
        first = self.back(context, ok)
        self.assertEqual(self.back(context, ok).body, first.body)
        self.assertEqual(self.back(None, ok).body, first.body)
        self.assertEqual([op for op, _ in self.later.asked], ["allocate", "update"])
        self.hang_up()

    def test_release_later(self) -> None:
        """BYE asks the relay to release; the stage forgets the call at once."""
        self.call()
        self.hang_up()
        self.assertEqual(self.stage.calls, ())
        self.assertEqual(self.later.asked[-1], ("release", CALL))


class _Broken:
    """A relay that lost its connection: every operation fails."""

    def __init__(self, relay: LaterRelay, operations: tuple[str, ...]) -> None:
        self.relay = relay
        self.operations = operations

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self.relay, name)
        if name not in self.operations:
            return operation

        def broken(*args: Any) -> Deferred[Any]:
            operation(*args)  # the work is done (or not): the answer is lost
            return self.relay._later(fail(ConnectionLost("relay gone")))

        return broken


class RelayFailureTests(LaterRelayMixin, AnchorTestCase):
    """A relay that fails with something other than a refusal (a lost connection)."""

    def break_relay(self, *operations: str) -> None:
        self.stage.relay = _Broken(self.later, operations)

    def test_offer(self) -> None:
        """The offer's allocation fails: 503, logged, nothing kept by the stage."""
        self.break_relay("allocate")
        result = self.refuse(anchor_request("INVITE", sdp_a()))
        self.assertEqual((result.status, result.reason), (503, "Media Relay Unavailable"))
        self.assertEqual(len(self.flushLoggedErrors(ConnectionLost)), 1)
        self.assertEqual(self.stage.calls, ())
        self.relay.release_now(CALL)  # what the lost relay would have done

    def test_offer_refused_later(self) -> None:
        """The relay's refusal, later, maps as it does at once: 488 for a bad offer."""
        invite = anchor_request("INVITE", sdp_a(host="media.example.com"))
        self.assertEqual(self.refuse(invite).status, 488)

    def test_answer_in_200(self) -> None:
        """
        The answer's update fails: the 200 goes on with every stream
        rejected, the exchange is dropped and its session released.
        """
        invite = anchor_request("INVITE", sdp_a())
        context = self.send(invite)
        self.break_relay("update")
        ok = self.back(context, anchor_response(invite, 200, sdp_b()))
        self.assertIn(b"m=audio 0 RTP/AVP 0\r\n", ok.body)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionLost)), 1)
        self.reactor.advance(0)
        self.assertEqual(self.relay.session_keys, ())
        self.hang_up()

    def test_release(self) -> None:
        """A release that fails is logged; the stage forgets the call anyway."""
        self.call()
        self.break_relay("release")
        self.hang_up()
        self.reactor.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionLost)), 1)
        self.assertEqual(self.stage.calls, ())


class LateAnchoredProxyTests(AnchoredHarness, SynchronousTestCase):
    """
    The stage in a real L{ProxyCore} with a relay that answers 10 ms
    later: the request chain, the response chain and the ACK wait for it.
    """

    DELAY = 0.01

    def anchored_relay(self) -> Any:
        """The relay behind a L{LaterRelay} that answers C{DELAY} later."""
        self.later = LaterRelay(self.relay, self.clock, self.DELAY)
        return self.later

    def wait(self) -> None:
        """Let the relay answer."""
        self.clock.advance(self.DELAY)

    def invite(self, body: bytes | None = None) -> Request:
        """Alice's INVITE (with her offer unless C{body}); the one Bob gets."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        sdp = sdp_a() if body is None else body
        fields = SDP if sdp else ()
        self.receive(request("INVITE", "sip:bob@example.com", *fields, body=sdp.decode()), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100])
        if sdp:
            self.assertEqual(self.sent_to(BOB, "INVITE"), [])
            self.wait()
        forwarded: Request = self.only(BOB, "INVITE")
        self.take()
        return forwarded

    def in_dialog(self, method: str, relayed: Any, cseq: int = 1, body: bytes = b"") -> Request:
        [rr] = relayed.headers.get_all("Record-Route")
        return request(
            method,
            "sip:bob@203.0.113.5:5060",
            f"Route: {rr}",
            *(SDP if body else ()),
            branch=f"z9hG4bK-alice-{method.lower()}-{cseq}",
            cseq=cseq,
            to="<sip:bob@example.com>;tag=bob-tag",
            body=body.decode(),
        )

    def test_call(self) -> None:
        """
        The INVITE waits for the allocation (Alice has her 100 at once);
        the 183 with Bob's answer and the 200 behind it reach Alice in
        order, both anchored; BYE releases the relay's ports.
        """
        forwarded = self.invite()
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", forwarded.body)
        early = answer(forwarded, 183).with_body(sdp_b(), "application/sdp")
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"))
        ok = ok.with_body(sdp_b(), "application/sdp")
        self.receive(early, BOB_UDP)
        self.receive(ok, BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.wait()
        self.assertEqual(self.statuses(UPSTREAM), [183])
        self.wait()
        self.assertEqual(self.statuses(UPSTREAM), [183, 200])
        relayed = self.only(UPSTREAM, 200)
        self.assertIn(b"m=audio 20000 RTP/AVP 0\r\n", relayed.body)
        self.take()
        self.receive(self.in_dialog("ACK", relayed), ALICE)
        self.only(BOB, "ACK")
        self.receive(self.in_dialog("BYE", relayed, cseq=2), ALICE)
        self.wait()
        self.assertEqual(self.relay.open_ports(), [])
        self.receive(answer(self.only(BOB, "BYE"), 200), BOB_UDP)

    def test_late_offer(self) -> None:
        """
        An INVITE without SDP: Bob's offer in the 200 waits for the
        allocation, and Alice's answer in the ACK (forwarded statelessly)
        waits for the update before it goes to Bob.
        """
        forwarded = self.invite(b"")
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"))
        self.receive(ok.with_body(sdp_b(), "application/sdp"), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.wait()
        relayed = self.only(UPSTREAM, 200)
        self.assertIn(b"m=audio 20002 RTP/AVP 0\r\n", relayed.body)
        self.take()
        self.receive(self.in_dialog("ACK", relayed, body=sdp_a()), ALICE)
        self.assertEqual(self.sent_to(BOB, "ACK"), [])
        self.wait()
        ack = self.only(BOB, "ACK")
        self.assertIn(b"m=audio 20000 RTP/AVP 0 8\r\n", ack.body)
        self.receive(self.in_dialog("BYE", relayed, cseq=2), ALICE)
        self.wait()
        self.receive(answer(self.only(BOB, "BYE"), 200), BOB_UDP)

    def test_refused_offer(self) -> None:
        """
        An offer the relay refuses, later (no ports left): Alice gets 503,
        Bob nothing.
        """
        offer = offer_of(parse_sdp(sdp_a()), ANCHOR_CONFIG.policy(True, True, False))
        hogs: list[str] = []
        with self.assertRaises(PortsExhausted):
            while True:
                self.relay.allocate_now(f"hog-{len(hogs)}", offer)
                hogs.append(f"hog-{len(hogs)}")
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        invite = request("INVITE", "sip:bob@example.com", *SDP, body=sdp_a().decode())
        self.receive(invite, ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100])
        self.wait()
        self.assertEqual(self.statuses(UPSTREAM), [100, 503])
        self.assertEqual(self.sent_to(BOB, "INVITE"), [])
        for key in hogs:
            self.relay.release_now(key)

    def test_cancel_while_200_waits(self) -> None:
        """
        Alice CANCELs while Bob's 200 waits for the relay: the CANCEL gets
        200 and Alice the anchored 200, not a 487.
        """
        forwarded = self.invite()
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"))
        self.receive(ok.with_body(sdp_b(), "application/sdp"), BOB_UDP)
        self.receive(request("CANCEL", "sip:bob@example.com", branch="z9hG4bK-alice-1"), ALICE)
        self.wait()
        relayed = [m for m in self.sent_to(UPSTREAM) if isinstance(m, Response) and m.status >= 200]
        self.assertEqual(
            [(m.status, m.cseq.method) for m in relayed], [(200, "CANCEL"), (200, "INVITE")]
        )
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", relayed[1].body)
        self.take()
        self.receive(self.in_dialog("ACK", relayed[1]), ALICE)
        self.receive(self.in_dialog("BYE", relayed[1], cseq=2), ALICE)
        self.wait()
        self.receive(answer(self.only(BOB, "BYE"), 200), BOB_UDP)

    def test_relay_never_answers(self) -> None:
        """
        The relay never answers the 200's update: after
        C{response_chain_timeout} the chain is cancelled, the stage sends the
        200 on with every stream rejected (the callee's addresses never
        reach the caller) and releases the exchange.
        """
        forwarded = self.invite()
        self.later.hold = True
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"))
        self.receive(ok.with_body(sdp_b(), "application/sdp"), BOB_UDP)
        self.clock.advance(4.9)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.clock.advance(0.1)
        relayed = self.only(UPSTREAM, 200)
        self.assertIn(b"m=audio 0 RTP/AVP 0\r\n", relayed.body)
        self.assertNotIn(b"198.51.100.20", relayed.body.split(b"\r\n", 2)[2])
        self.flushLoggedErrors(CancelledError)
        self.later.answer()
        self.wait()
        self.take()
        self.receive(self.in_dialog("ACK", relayed), ALICE)
        self.receive(self.in_dialog("BYE", relayed, cseq=2), ALICE)
        self.wait()
        self.receive(answer(self.only(BOB, "BYE"), 200), BOB_UDP)

    def test_cancel_while_allocating(self) -> None:
        """
        Alice CANCELs while the relay allocates her offer: she gets 487,
        Bob nothing, and the session is released once the relay answers.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        invite = request("INVITE", "sip:bob@example.com", *SDP, body=sdp_a().decode())
        self.receive(invite, ALICE)
        self.receive(request("CANCEL", "sip:bob@example.com", branch="z9hG4bK-alice-1"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 200, 487])
        self.assertEqual(self.anchor.calls, ())
        self.wait()
        self.wait()
        self.assertEqual(self.sent_to(BOB, "INVITE"), [])
        self.assertEqual(self.relay.session_keys, ())
