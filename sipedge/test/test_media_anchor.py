# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
Tests for the C{media-anchor} stage (L{MediaAnchorStage}), its SDP
helpers (L{sipedge.media._anchor_sdp}) and its plugin factory.

The stage is driven directly, with L{RequestContext}s and parsed
messages, against a real in-process L{MediaRelay} on L{FakeReactor}'s
in-memory network. Every test ends with a leak check: no relay port
bound, no relay session, no anchored call, no delayed call left.
(L{sipedge.test.test_media_anchor_async} runs these tests again with a
relay whose answers come later.)
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.config import DEFAULT_CONFIG
from sipedge.error import ConfigError
from sipedge.flow import Flow
from sipedge.interfaces import (
    IBranchStage,
    IProxyObserver,
    IRequestStage,
    IResponseStage,
    IRoutedStage,
)
from sipedge.media import (
    AES_CM_128_HMAC_SHA1_80,
    MediaConfig,
    MediaMode,
    MediaOfferError,
    MediaRelay,
    OriginVersions,
    RelayAllocation,
    RelayEndpoint,
    SrtpContext,
    SrtpKey,
    StreamAllocation,
    build_rtp,
    offer_of,
    offers_srtp,
    reject,
    rewrite,
)
from sipedge.message import Request, parse_datagram, parse_sdp
from sipedge.pipeline import (
    Continue,
    Forward,
    RequestContext,
    Respond,
    StageServices,
    Target,
    stage_factories,
)
from sipedge.pipeline.stages import MediaAnchorStage
from sipedge.plugins import sipedge_media_stages
from sipedge.proxy import LocalIdentity
from sipedge.testing import (
    A_HOST,
    A_TAG,
    A_TLS,
    A_UDP,
    B_HOST,
    B_TAG,
    B_UDP,
    CALL_ID,
    INSIDE_HOST,
    KEY_A,
    AnchorTestCase,
    FakeReactor,
    LaterRelayMixin,
    RemoteRelayMixin,
    counting_random,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_CONFIG as CONFIG
from sipedge.testing import ANCHOR_PROXY as PROXY
from sipedge.testing import ANCHOR_RELAY as RELAY
from sipedge.testing import anchor_request as request
from sipedge.testing import anchor_response as response


def rtp(sequence: int) -> bytes:
    return build_rtp(
        payload_type=0,
        sequence=sequence,
        timestamp=160 * sequence,
        ssrc=0xA11CE,
        payload=bytes(160),
    )


class InterfaceTests(AnchorTestCase):
    """The stage's interfaces."""

    def test_provides(self) -> None:
        """The stage is a request stage, a response stage and a proxy observer."""
        self.assertTrue(verifyObject(IRequestStage, self.stage))
        self.assertTrue(verifyObject(IResponseStage, self.stage))
        self.assertTrue(verifyObject(IProxyObserver, self.stage))
        self.assertTrue(verifyObject(IRoutedStage, self.stage))
        self.assertTrue(verifyObject(IBranchStage, self.stage))
        self.assertEqual(self.stage.name, "media-anchor")

    def test_other_methods(self) -> None:
        """OPTIONS, REGISTER, MESSAGE (even with a body) pass untouched."""
        for method in ("OPTIONS", "REGISTER", "MESSAGE", "INFO"):
            message = request(method, sdp_a())
            context = self.send(message)
            self.assertIs(context.request, message)
        self.assertEqual(self.relay.open_ports(), [])

    def test_unknown_call_response(self) -> None:
        """A response of a call the stage does not know passes unchanged."""
        invite = request("INVITE", sdp_a())
        ok = response(invite, 200, sdp_b())
        self.assertIs(self.stage.process_response(None, ok), ok)


class OfferAnswerTests(AnchorTestCase):
    """The basic call: offer in the INVITE, answer in the 200, BYE."""

    def test_offer_in_invite(self) -> None:
        """
        The INVITE's SDP goes on with the relay's B side: c= (session and
        media level) the relay's address, m= its port, o= version one
        more; every other line as it was. The relay expects Alice's media
        from her address.
        """
        context = self.send(request("INVITE", sdp_a()))
        self.assertEqual(
            context.request.body,
            b"v=0\r\n"
            b"o=alice 2890844526 6 IN IP4 192.0.2.10\r\n"
            b"s=-\r\n"
            b"c=IN IP4 203.0.113.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 20002 RTP/AVP 0 8\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n"
            b"a=rtpmap:8 PCMA/8000\r\n",
        )
        self.assertEqual(context.request.content_type, "application/sdp")
        key = f"{CALL_ID};{A_TAG}"
        self.assertEqual(self.relay.session_keys, (key,))
        self.assertEqual(self.stage.calls, (key,))
        session: Any = self.relay.session(key)
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4000))
        self.back(context, response(context.original, 486))

    def test_answer_in_200(self) -> None:
        """
        The 200's SDP goes back with the relay's A side; media then flows
        through the relay both ways; the caller's BYE releases every port.
        """
        _, _, answer = self.call()
        self.assertEqual(
            answer,
            b"v=0\r\n"
            b"o=bob 2808844564 8 IN IP4 198.51.100.20\r\n"
            b"s=-\r\n"
            b"c=IN IP4 203.0.113.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 20000 RTP/AVP 0\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n",
        )
        self.relays_media(offer_port=20002, answer_port=20000)
        self.hang_up()
        self.assertEqual(self.ended, [])

    def test_bye_from_callee(self) -> None:
        """Bob's BYE (From his tag, To Alice's) releases the call too."""
        self.call()
        self.assertNotEqual(self.relay.open_ports(), [])
        self.hang_up(caller=False)

    def test_answer_in_183_then_200(self) -> None:
        """
        The answer in a 183 (early media) updates the relay and goes back
        rewritten; the same answer in the 200 goes back with the same
        bytes (the o= version unchanged: nothing changed).
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        early = self.back(context, response(invite, 183, sdp_b()))
        self.assertIn(b"m=audio 20000 RTP/AVP 0\r\n", early.body)
        self.assertIn(b"o=bob 2808844564 8 ", early.body)
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.state, "answered")
        ok = self.back(context, response(invite, 200, sdp_b()))
        self.assertEqual(ok.body, early.body)
        self.send(request("ACK", to_tag=B_TAG))
        self.hang_up()

    def test_changed_answer_in_200(self) -> None:
        """
        A 200 whose answer differs from the 183's updates the relay again;
        what Alice gets is the same (the relay's ports did not change), so
        is its o= version.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        early = self.back(context, response(invite, 183, sdp_b()))
        ok = self.back(context, response(invite, 200, sdp_b(port=5002, version=8)))
        self.assertEqual(ok.body, early.body)
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, (B_HOST, 5002))
        self.hang_up()

    def test_180_without_sdp(self) -> None:
        """A 180 without a body passes as it is."""
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        ringing = response(invite, 180)
        self.assertIs(self.back(context, ringing), ringing)
        self.back(context, response(invite, 487))

    def test_stray_2xx_retransmission(self) -> None:
        """
        A retransmitted 200 forwarded statelessly (no context) gets the
        very bytes the first one got; so does the ACK it causes.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        ok = response(invite, 200, sdp_b())
        first = self.back(context, ok)
        self.send(request("ACK", to_tag=B_TAG))
        again = self.back(None, ok)
        self.assertEqual(again.body, first.body)
        self.hang_up()

    def test_session_key(self) -> None:
        """
        The relay session is named Call-ID;from-tag, and the call is found
        from either party's requests.
        """
        context = self.send(request("INVITE", sdp_a()))
        self.assertEqual(self.relay.session_keys, (f"{CALL_ID};{A_TAG}",))
        self.back(context, response(context.original, 200, sdp_b()))
        bye = request("BYE", cseq=1, caller=False)
        self.send(bye, B_UDP)
        self.assertEqual(self.relay.session_keys, ())

    def test_two_calls(self) -> None:
        """Two calls have their own sessions and ports."""
        first = self.send(request("INVITE", sdp_a()))
        second = self.send(request("INVITE", sdp_a(port=4100), call_id="call-2"))
        self.assertIn(b"m=audio 20002 ", first.request.body)
        self.assertIn(b"m=audio 20006 ", second.request.body)
        self.assertEqual(len(self.relay.session_keys), 2)
        self.back(first, response(first.original, 486))
        self.back(second, response(second.original, 603))


class CallEndTests(AnchorTestCase):
    """Every way a call ends releases its ports."""

    def test_failure_final(self) -> None:
        """A final failure to the initial INVITE releases its session."""
        for status in (404, 486, 488, 500, 503, 603):
            context = self.send(request("INVITE", sdp_a(), call_id=f"c-{status}"))
            self.assertNotEqual(self.relay.open_ports(), [])
            self.back(context, response(context.original, status))
            self.assertEqual(self.relay.open_ports(), [], status)
            self.assertEqual(self.stage.calls, ())

    def test_487_after_cancel(self) -> None:
        """The 487 the proxy relays after a CANCEL releases the session."""
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 180))
        self.back(context, response(invite, 183, sdp_b()))
        self.back(context, response(invite, 487))

    def test_timeout(self) -> None:
        """The 408 the proxy makes up for a timeout releases the session."""
        context = self.send(request("INVITE", sdp_a()))
        self.back(context, response(context.original, 408))

    def test_later_stage_answers(self) -> None:
        """
        A stage after this one answers the INVITE (404 from location):
        told as an observer, the stage releases the session at once.
        """
        context = self.send(request("INVITE", sdp_a()))
        self.assertNotEqual(self.relay.open_ports(), [])
        self.stage.request_decided(context, Respond(404))
        self.assertEqual(self.relay.open_ports(), [])

    def test_forwarded_decision(self) -> None:
        """Forwarding changes nothing."""
        context = self.send(request("INVITE", sdp_a()))
        self.stage.request_decided(context, Forward([Target(f"sip:bob@{B_HOST}")]))
        self.assertEqual(len(self.relay.session_keys), 1)
        self.back(context, response(context.original, 480))

    def test_later_stage_answers_offerless(self) -> None:
        """An INVITE without SDP answered by a later stage is forgotten."""
        context = self.send(request("INVITE"))
        self.assertEqual(len(self.stage.calls), 1)
        self.stage.request_decided(context, Respond(403))

    def test_idle(self) -> None:
        """
        No media for the idle timeout: the relay ends the session, the
        stage forgets the call and tells C{on_media_ended} (so that the
        proxy can send BYE); the BYE that follows finds nothing to do.
        """
        self.call()
        self.reactor.advance(31)
        self.assertEqual(len(self.ended), 1)
        ended = self.ended[0]
        self.assertEqual(
            (ended.call_id, ended.caller_tag, ended.callee_tag, ended.reason),
            (CALL_ID, A_TAG, B_TAG, "idle"),
        )
        self.assertEqual(self.relay.open_ports(), [])
        self.hang_up()

    def test_setup_timeout(self) -> None:
        """
        No answer within the setup timeout: the relay ends the session; a
        200 that comes later has its streams rejected (nothing of Bob's
        leaks to Alice); the BYE ends the call.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.reactor.advance(121)
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.ended, [])
        ok = self.back(context, response(invite, 200, sdp_b()))
        self.assertIn(b"m=audio 0 RTP/AVP 0\r\n", ok.body)
        self.assertIn(b"c=IN IP4 0.0.0.0\r\n", ok.body)
        self.assertNotIn(B_HOST.encode(), ok.body.split(b"\r\n", 2)[2])
        self.hang_up()

    def test_relay_closed(self) -> None:
        """Closing the relay ends every call, each told as ended (closed)."""
        self.call()
        self.relay.close()
        self.assertEqual([e.reason for e in self.ended], ["closed"])
        self.assertEqual(self.stage.calls, ())

    def test_early_bye_ignored(self) -> None:
        """
        A BYE before any 2xx (an early dialog) leaves the session: the
        INVITE's final response ends the call.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 183, sdp_b()))
        self.send(request("BYE", cseq=2, to_tag=B_TAG))
        self.assertEqual(len(self.relay.session_keys), 1)
        self.back(context, response(invite, 487))

    def test_new_initial_invite(self) -> None:
        """
        A new INVITE with the same Call-ID and tag (the retry after a 407
        whose end went unseen) starts the call afresh.
        """
        self.send(request("INVITE", sdp_a()))
        context = self.send(request("INVITE", sdp_a(), cseq=2))
        self.assertEqual(len(self.relay.session_keys), 1)
        self.back(context, response(context.original, 486))


class LateOfferTests(AnchorTestCase):
    """An INVITE without SDP: the offer in the 2xx, the answer in the ACK."""

    def test_late_offer(self) -> None:
        """
        The INVITE goes on unchanged; Bob's offer in the 200 opens the
        session (Bob is side A) and reaches Alice with the relay's B side;
        Alice's answer in the ACK reaches Bob with the A side; media
        flows; Bob's BYE releases everything.
        """
        invite = request("INVITE")
        context = self.send(invite)
        self.assertIs(context.request, invite)
        self.assertEqual(self.relay.open_ports(), [])
        ok = self.back(context, response(invite, 200, sdp_b()))
        self.assertEqual(
            ok.body,
            b"v=0\r\n"
            b"o=bob 2808844564 8 IN IP4 198.51.100.20\r\n"
            b"s=-\r\n"
            b"c=IN IP4 203.0.113.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 20002 RTP/AVP 0\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n",
        )
        ack = self.send(request("ACK", sdp_a(), to_tag=B_TAG))
        self.assertEqual(
            ack.request.body,
            b"v=0\r\n"
            b"o=alice 2890844526 6 IN IP4 192.0.2.10\r\n"
            b"s=-\r\n"
            b"c=IN IP4 203.0.113.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 20000 RTP/AVP 0 8\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n"
            b"a=rtpmap:8 PCMA/8000\r\n",
        )
        # Alice sends where Bob's offer (as she got it) says: 20002;
        # Bob where Alice's answer (as he got it) says: 20000.
        self.relays_media(offer_port=20000, answer_port=20002)
        again = self.send(request("ACK", sdp_a(), to_tag=B_TAG))
        self.assertEqual(again.request.body, ack.request.body)
        self.hang_up(caller=False)

    def test_late_offer_failure(self) -> None:
        """An INVITE without SDP that fails leaves nothing."""
        context = self.send(request("INVITE"))
        self.back(context, response(context.original, 486))

    def test_ack_without_answer(self) -> None:
        """An ACK that does not answer the 200's offer releases its session."""
        invite = request("INVITE")
        context = self.send(invite)
        self.back(context, response(invite, 200, sdp_b()))
        self.send(request("ACK", to_tag=B_TAG))
        self.assertEqual(self.relay.open_ports(), [])
        self.hang_up()

    def test_offer_in_reliable_183(self) -> None:
        """
        The offer in a reliable 183 (RFC 3262), the answer in the PRACK;
        the 200 repeating the offer gets the same bytes.
        """
        invite = request("INVITE")
        context = self.send(invite)
        early = self.back(context, response(invite, 183, sdp_b()))
        self.assertIn(b"m=audio 20002 ", early.body)
        prack = self.send(request("PRACK", sdp_a(), cseq=2, to_tag=B_TAG))
        self.assertIn(b"m=audio 20000 ", prack.request.body)
        self.back(prack, response(prack.original, 200))
        ok = self.back(context, response(invite, 200, sdp_b()))
        self.assertEqual(ok.body, early.body)
        self.send(request("ACK", to_tag=B_TAG))
        self.assertEqual(len(self.relay.session_keys), 1)
        self.hang_up(cseq=3)


class NewOfferTests(AnchorTestCase):
    """re-INVITE and UPDATE: a new offer in the call."""

    def test_reinvite_from_callee(self) -> None:
        """
        Bob's re-INVITE with a new address re-offers the call's session in
        place (L{IMediaRelay.reoffer}, Bob as its party B): Alice is offered
        the relay port she already sends to, Bob answered the one he already
        uses, and the relay sends to Bob's new address once answered. What
        each party gets is what it got before, so the o= versions stay
        (RFC 3264 8).
        """
        self.call()
        first = f"{CALL_ID};{A_TAG}"
        reinvite = request("INVITE", sdp_b(port=5010, version=8), cseq=1, caller=False)
        context = self.send(reinvite, B_UDP)
        self.assertEqual(
            context.request.body,
            b"v=0\r\n"
            b"o=bob 2808844564 8 IN IP4 198.51.100.20\r\n"
            b"s=-\r\n"
            b"c=IN IP4 203.0.113.1\r\n"
            b"t=0 0\r\n"
            b"m=audio 20000 RTP/AVP 0\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n",
        )
        self.assertEqual(self.relay.session_keys, (first,))
        self.assertEqual(self.relay.open_ports(), [("default", p) for p in range(20000, 20004)])
        ok = self.back(context, response(reinvite, 200, sdp_a(version=6)))
        self.assertIn(b"o=alice 2890844526 6 ", ok.body)
        self.assertIn(b"m=audio 20002 ", ok.body)
        self.assertEqual(self.relay.session_keys, (first,))
        session: Any = self.relay.session(first)
        self.assertEqual(session.streams[0].b.rtp.remote, (B_HOST, 5010))
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.send(request("ACK", cseq=1, caller=False), B_UDP)
        self.hang_up()

    def test_reinvite_same_sdp(self) -> None:
        """
        A session refresh (re-INVITE with the party's SDP unchanged) keeps
        the session and its ports: the other party gets the same
        description again.
        """
        _, offer, answer = self.call()
        context = self.send(request("INVITE", sdp_a(), cseq=2, to_tag=B_TAG))
        self.assertEqual(context.request.body, offer)
        ok = self.back(context, response(context.original, 200, sdp_b()))
        self.assertEqual(ok.body, answer)
        self.assertEqual(self.relay.session_keys, (f"{CALL_ID};{A_TAG}",))
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.hang_up(cseq=3)

    def test_reinvite_refused(self) -> None:
        """
        A re-INVITE refused (488): the re-offer is withdrawn, the call goes
        on on its session as it was.
        """
        self.call()
        first = f"{CALL_ID};{A_TAG}"
        context = self.send(request("INVITE", sdp_a(port=4010), cseq=2, to_tag=B_TAG))
        self.assertEqual(self.relay.session_keys, (first,))
        self.assertTrue(self.relay.session(first).reoffered)
        self.back(context, response(context.original, 488))
        self.assertEqual(self.relay.session_keys, (first,))
        self.assertFalse(self.relay.session(first).reoffered)
        session: Any = self.relay.session(first)
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4000))
        self.assertEqual(self.stage.calls, (first,))
        self.hang_up(cseq=3)

    def test_reinvite_481(self) -> None:
        """A 481 to a re-INVITE (the dialog is gone) ends the call."""
        self.call()
        context = self.send(request("INVITE", sdp_a(port=4010), cseq=2, to_tag=B_TAG))
        self.back(context, response(context.original, 481))

    def test_reinvite_without_sdp(self) -> None:
        """
        A re-INVITE without SDP: the offer in the 200 (Bob as side A of a
        new session), the answer in the ACK; then the old session goes.
        """
        self.call()
        reinvite = request("INVITE", cseq=2, to_tag=B_TAG)
        context = self.send(reinvite)
        self.assertIs(context.request, reinvite)
        ok = self.back(context, response(reinvite, 200, sdp_b(version=8)))
        self.assertIn(b"m=audio 20006 ", ok.body)
        self.assertEqual(len(self.relay.session_keys), 2)
        ack = self.send(request("ACK", sdp_a(version=6), cseq=2, to_tag=B_TAG))
        self.assertIn(b"m=audio 20004 ", ack.request.body)
        self.assertEqual(self.relay.session_keys, (f"{CALL_ID};{A_TAG};1",))
        self.hang_up(cseq=3)

    def test_update(self) -> None:
        """An UPDATE's offer, answered in its 200, keeps the call on its session and ports."""
        self.call()
        update = request("UPDATE", sdp_a(port=4020, version=6), cseq=2, to_tag=B_TAG)
        context = self.send(update)
        self.assertIn(b"m=audio 20002 ", context.request.body)
        ok = self.back(context, response(update, 200, sdp_b(version=8)))
        self.assertIn(b"m=audio 20000 ", ok.body)
        first = f"{CALL_ID};{A_TAG}"
        self.assertEqual(self.relay.session_keys, (first,))
        session: Any = self.relay.session(first)
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4020))
        self.hang_up(cseq=3)

    def test_2xx_without_answer(self) -> None:
        """
        A 200 to a re-INVITE that carries no answer: that exchange failed,
        its re-offer is withdrawn, the call stays as it was and a new offer
        is not refused as glare.
        """
        self.call()
        first = f"{CALL_ID};{A_TAG}"
        context = self.send(request("INVITE", sdp_a(port=4010), cseq=2, to_tag=B_TAG))
        self.back(context, response(context.original, 200))
        self.assertEqual(self.relay.session_keys, (first,))
        self.assertFalse(self.relay.session(first).reoffered)
        update = self.send(request("UPDATE", sdp_a(port=4012), cseq=3, to_tag=B_TAG))
        self.back(update, response(update.original, 200, sdp_b(version=8)))
        self.assertEqual(self.relay.session_keys, (first,))
        session: Any = self.relay.session(first)
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4012))
        self.hang_up(cseq=4)

    def test_offerless_2xx_without_offer(self) -> None:
        """A 200 to an INVITE without SDP that has no offer either: no media."""
        invite = request("INVITE")
        context = self.send(invite)
        self.back(context, response(invite, 200))
        self.send(request("ACK", to_tag=B_TAG))
        self.assertEqual(self.relay.open_ports(), [])
        self.hang_up()

    def test_update_refused(self) -> None:
        """An UPDATE answered 500 leaves the call on its session."""
        self.call()
        context = self.send(request("UPDATE", sdp_a(port=4020), cseq=2, to_tag=B_TAG))
        self.back(context, response(context.original, 500))
        self.assertEqual(self.relay.session_keys, (f"{CALL_ID};{A_TAG}",))
        self.hang_up(cseq=3)

    def test_update_in_early_dialog(self) -> None:
        """
        An UPDATE after the answer in a 183: the INVITE's exchange becomes
        the current one, the UPDATE's replaces it when answered.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 183, sdp_b()))
        update = request("UPDATE", sdp_a(version=6), cseq=2, to_tag=B_TAG)
        updated = self.send(update)
        self.back(updated, response(update, 200, sdp_b(version=8)))
        self.assertEqual(self.relay.session_keys, (f"{CALL_ID};{A_TAG}",))
        ok = self.back(context, response(invite, 200))
        self.assertIsNone(ok.body or None)
        self.hang_up(cseq=3)

    def test_glare(self) -> None:
        """A new offer while one is outstanding is answered 491."""
        context = self.send(request("INVITE", sdp_a()))
        result = self.refuse(request("UPDATE", sdp_a(), cseq=2, to_tag=B_TAG))
        self.assertEqual(result.status, 491)
        self.back(context, response(context.original, 486))

    def test_hold(self) -> None:
        """
        Hold (sendonly with c=0.0.0.0, RFC 3264 8.4) passes through: the
        direction as it was, the unspecified address kept, the relay still
        anchoring (ports in m=); the answer (recvonly) comes back through
        the relay. Resuming works the same way.
        """
        self.call()
        hold = sdp_a(host="0.0.0.0", version=6, extra="a=sendonly\r\n").replace(
            b"o=alice 2890844526 6 IN IP4 0.0.0.0", b"o=alice 2890844526 6 IN IP4 192.0.2.10"
        )
        context = self.send(request("INVITE", hold, cseq=2, to_tag=B_TAG))
        body = context.request.body
        self.assertIn(b"c=IN IP4 0.0.0.0\r\n", body)
        self.assertIn(b"m=audio 20002 RTP/AVP 0 8\r\n", body)
        self.assertTrue(body.endswith(b"a=sendonly\r\n"))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4000))  # until answered
        ok = self.back(context, response(context.original, 200, sdp_b(extra="a=recvonly\r\n")))
        self.assertIsNone(session.streams[0].a.rtp.remote)
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", ok.body)
        self.assertTrue(ok.body.endswith(b"a=recvonly\r\n"))
        resume = self.send(request("INVITE", sdp_a(version=7), cseq=3, to_tag=B_TAG))
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", resume.request.body)
        self.back(resume, response(resume.original, 200, sdp_b(version=8)))
        self.assertEqual(self.relay.session_keys, (f"{CALL_ID};{A_TAG}",))
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4000))
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.hang_up(cseq=4)

    def test_hold_inactive(self) -> None:
        """a=inactive passes through unchanged, the relay anchoring."""
        self.call()
        context = self.send(
            request("INVITE", sdp_a(version=6, extra="a=inactive\r\n"), cseq=2, to_tag=B_TAG)
        )
        self.assertTrue(context.request.body.endswith(b"a=inactive\r\n"))
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", context.request.body)
        self.back(context, response(context.original, 200, sdp_b(extra="a=inactive\r\n")))
        self.hang_up(cseq=3)


class ForkTests(AnchorTestCase):
    """Several dialogs from one INVITE."""

    def test_second_2xx(self) -> None:
        """
        A 2xx from another fork after the first: its SDP goes on with every
        stream rejected and no address of its own (the caller will BYE
        it); that BYE leaves the anchored call alone.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 200, sdp_b()))
        other = self.back(
            None, response(invite, 200, sdp_b(host="198.51.100.99"), to_tag="carol-tag")
        )
        self.assertIn(b"m=audio 0 RTP/AVP 0\r\n", other.body)
        self.assertIn(b"c=IN IP4 0.0.0.0\r\n", other.body)
        self.send(request("BYE", cseq=2, to_tag="carol-tag"))
        self.assertEqual(len(self.relay.session_keys), 1)
        self.hang_up(cseq=3)

    def test_early_dialogs(self) -> None:
        """Answers in 183s of two forks: the last one is where media goes."""
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 183, sdp_b(), to_tag="b1"))
        self.back(context, response(invite, 183, sdp_b(host="198.51.100.99"), to_tag="b2"))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, ("198.51.100.99", 5000))
        self.back(context, response(invite, 200, sdp_b(), to_tag="b1"))
        self.assertEqual(session.streams[0].b.rtp.remote, (B_HOST, 5000))
        self.send(request("BYE", cseq=2, to_tag="b1"))


class SdpShapeTests(AnchorTestCase):
    """What the rewriting does to each kind of line."""

    def test_rtcp_mux(self) -> None:
        """
        Alice offers a=rtcp-mux: Bob gets it with the relay's fallback
        RTCP port (RFC 5761 5.1.1); Alice's answer keeps mux and no
        a=rtcp (her side is the even port alone).
        """
        context = self.send(request("INVITE", sdp_a(extra="a=rtcp-mux\r\n")))
        self.assertTrue(
            context.request.body.endswith(
                b"m=audio 20002 RTP/AVP 0 8\r\n"
                b"a=rtpmap:0 PCMU/8000\r\n"
                b"a=rtpmap:8 PCMA/8000\r\n"
                b"a=rtcp-mux\r\n"
                b"a=rtcp:20003\r\n"
            ),
            context.request.body,
        )
        ok = self.back(context, response(context.original, 200, sdp_b(extra="a=rtcp-mux\r\n")))
        self.assertIn(b"m=audio 20000 RTP/AVP 0\r\n", ok.body)
        self.assertIn(b"a=rtcp-mux\r\n", ok.body)
        self.assertNotIn(b"a=rtcp:", ok.body)
        self.back(context, response(context.original, 200, sdp_b(extra="a=rtcp-mux\r\n")))
        self.hang_up()

    def test_rtcp_attribute(self) -> None:
        """
        An a=rtcp (RFC 3605) is honoured (the relay expects RTCP there) and
        rewritten to the relay's RTCP port, without an address.
        """
        context = self.send(request("INVITE", sdp_a(extra="a=rtcp:4011 IN IP4 192.0.2.10\r\n")))
        self.assertTrue(context.request.body.endswith(b"a=rtcp:20003\r\n"))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].a.rtcp.remote, (A_HOST, 4011))
        self.back(context, response(context.original, 603))

    def test_media_level_connection(self) -> None:
        """c= at media level only is rewritten at media level."""
        body = (
            sdp_a()
            .replace(b"c=IN IP4 192.0.2.10\r\n", b"")
            .replace(
                b"m=audio 4000 RTP/AVP 0 8\r\n",
                b"m=audio 4000 RTP/AVP 0 8\r\nc=IN IP4 192.0.2.10\r\n",
            )
        )
        context = self.send(request("INVITE", body))
        self.assertIn(
            b"m=audio 20002 RTP/AVP 0 8\r\nc=IN IP4 203.0.113.1\r\n", context.request.body
        )
        self.assertEqual(context.request.body.count(b"c="), 1)
        self.back(context, response(context.original, 486))

    def test_non_rtp_stream(self) -> None:
        """
        A stream the relay cannot carry (T.38 udptl) goes to Bob rejected
        (port 0); a video stream is relayed with its own ports.
        """
        extra = "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=image 4004 udptl t38\r\n"
        context = self.send(request("INVITE", sdp_a() + extra.encode()))
        body = context.request.body
        self.assertIn(b"m=audio 20002 RTP/AVP 0 8\r\n", body)
        self.assertIn(b"m=video 20006 RTP/AVP 96\r\n", body)
        self.assertIn(b"m=image 0 udptl t38\r\n", body)
        answer = (
            sdp_b()
            + b"m=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=image 0 udptl t38\r\n"
        )
        ok = self.back(context, response(context.original, 200, answer))
        self.assertIn(b"m=video 20004 RTP/AVP 96\r\n", ok.body)
        self.assertIn(b"m=image 0 udptl t38\r\n", ok.body)
        self.hang_up()

    def test_ice_removed(self) -> None:
        """ICE candidates and credentials are removed (media goes via the relay)."""
        extra = (
            "a=ice-ufrag:F7gI\r\n"
            "a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
            "a=candidate:1 1 UDP 2130706431 192.0.2.10 4000 typ host\r\n"
        )
        context = self.send(request("INVITE", sdp_a(extra=extra, session="a=ice-lite\r\n")))
        self.assertNotIn(b"a=ice-", context.request.body)
        self.assertNotIn(b"a=candidate", context.request.body)
        self.back(context, response(context.original, 486))

    def test_ipv6(self) -> None:
        """An IPv6 description on an IPv6 relay: c=IN IP6 with the relay's address."""
        self.stage.close()
        self.relay.close()
        config = attrs.evolve(self.config, address="2001:db8::1")
        self.relay = config.build_relay(self.reactor, random=counting_random(1))
        self.stage = MediaAnchorStage(self.stage_relay(self.relay), config)
        context = self.send(request("INVITE", sdp_a(host="2001:db8::a")))
        self.assertIn(b"c=IN IP6 2001:db8::1\r\n", context.request.body)
        self.assertIn(b"o=alice 2890844526 6 IN IP6 2001:db8::a\r\n", context.request.body)
        ok = self.back(context, response(context.original, 200, sdp_b(host="2001:db8::b")))
        self.assertIn(b"c=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 20000 ", ok.body)
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, ("2001:db8::b", 5000))
        self.hang_up()

    def test_ipv6_on_ipv4_relay(self) -> None:
        """An IPv6 offer to an IPv4 relay is refused: 488 with a Warning."""
        result = self.refuse(request("INVITE", sdp_a(host="2001:db8::a")))
        self.assertEqual(result.status, 488)
        (warning,) = [v for n, v in result.headers if n == "Warning"]
        self.assertTrue(warning.startswith('305 sipedge "'), warning)
        self.assertIn("IPv6", warning)

    def test_host_name(self) -> None:
        """A host name in c= is refused with 488 (the relay needs addresses)."""
        body = sdp_a().replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 media.example.com")
        self.assertEqual(self.refuse(request("INVITE", body)).status, 488)

    def test_bad_sdp(self) -> None:
        """An INVITE whose SDP does not parse is answered 400."""
        result = self.refuse(request("INVITE", b"v=0\r\nm=audio x RTP/AVP 0\r\n"))
        self.assertEqual(result.status, 400)

    def test_multipart(self) -> None:
        """SDP inside a multipart body cannot be anchored: 488."""
        body = b"--b\r\nContent-Type: application/sdp\r\n\r\n" + sdp_a() + b"\r\n--b--\r\n"
        message = request("INVITE", body, content_type="multipart/mixed;boundary=b")
        self.assertEqual(self.refuse(message).status, 488)

    def test_no_media(self) -> None:
        """An offer whose streams are all rejected opens no ports."""
        context = self.send(request("INVITE", sdp_a(port=0)))
        self.assertIn(b"m=audio 0 RTP/AVP 0 8\r\n", context.request.body)
        self.assertEqual(self.relay.open_ports(), [])
        self.back(context, response(context.original, 486))

    def test_refused_answer(self) -> None:
        """
        A 200 whose answer does not fit the offer (another number of
        streams): the session is released and Alice gets the answer with
        every stream rejected.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        bad = sdp_b() + b"m=video 5002 RTP/AVP 96\r\n"
        ok = self.back(context, response(invite, 200, bad))
        self.assertIn(b"m=audio 0 RTP/AVP 0\r\n", ok.body)
        self.assertIn(b"m=video 0 RTP/AVP 96\r\n", ok.body)
        self.assertEqual(self.relay.open_ports(), [])
        self.hang_up()

    def test_refused_early_answer(self) -> None:
        """A 183 whose answer does not fit loses its body; the 200 may still fit."""
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        early = self.back(context, response(invite, 183, sdp_b() + b"m=video 5002 RTP/AVP 96\r\n"))
        self.assertEqual(early.body, b"")
        self.assertIsNone(early.content_type)
        ok = self.back(context, response(invite, 200, sdp_b()))
        self.assertIn(b"m=audio 20000 ", ok.body)
        self.hang_up()

    def test_ports_exhausted(self) -> None:
        """No ports left: 503, and nothing stays bound."""
        self.stage.close()
        self.relay.close()
        config = attrs.evolve(self.config, ports="20000-20003")
        self.relay = config.build_relay(self.reactor)
        self.stage = MediaAnchorStage(self.stage_relay(self.relay), config)
        first = self.send(request("INVITE", sdp_a()))
        ports = self.relay.open_ports()
        result = self.refuse(request("INVITE", sdp_a(), call_id="call-2"))
        self.assertEqual(result.status, 503)
        self.assertEqual(self.relay.open_ports(), ports)
        self.back(first, response(first.original, 486))


class SrtpTests(AnchorTestCase):
    """SDES keys: the SRTP policy, and TLS."""

    config = attrs.evolve(CONFIG, srtp="terminate")

    def savp_offer(self, suite: str = "AES_CM_128_HMAC_SHA1_80") -> bytes:
        return sdp_a(proto="RTP/SAVP", extra=f"a=crypto:1 {suite} {KEY_A}\r\n")

    def test_terminate_over_tls(self) -> None:
        """
        An external caller over TLS offers SRTP to an internal callee:
        the callee gets plain RTP/AVP without keys, the caller an
        RTP/SAVP answer with the relay's key for its suite and tag.
        """
        invite = request("INVITE", self.savp_offer(), uri=f"sip:bob@{INSIDE_HOST}")
        context = self.send(invite, A_TLS)
        self.assertIn(b"m=audio 20002 RTP/AVP 0 8\r\n", context.request.body)
        self.assertNotIn(b"crypto", context.request.body)
        ok = self.back(context, response(invite, 200, sdp_b(host=INSIDE_HOST)))
        self.assertIn(b"m=audio 20000 RTP/SAVP 0\r\n", ok.body)
        (line,) = [x for x in ok.body.split(b"\r\n") if x.startswith(b"a=crypto:")]
        self.assertTrue(line.startswith(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"), line)
        self.assertNotIn(KEY_A.encode(), ok.body)
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.modes, (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN))
        self.send(request("ACK", to_tag=B_TAG), A_TLS)
        # Alice's SRTP (her key) reaches Bob as RTP; Bob's RTP reaches
        # Alice as SRTP under the relay's key from her answer.
        relay_key = line.split(b" ")[2].decode()
        alice_srtp = SrtpContext(
            SrtpKey.from_sdes(relay_key, AES_CM_128_HMAC_SHA1_80),
            SrtpKey.from_sdes(KEY_A, AES_CM_128_HMAC_SHA1_80),
        )
        alice = self.endpoint(A_HOST, 4000)
        bob = self.endpoint(INSIDE_HOST, 5000)
        alice.socket.write(alice_srtp.protect(rtp(1)), (RELAY, 20000))
        self.network.flush()
        bob.socket.write(rtp(2), (RELAY, 20002))
        self.network.flush()
        self.assertEqual([d for d, _ in bob.received], [rtp(1)])
        self.assertEqual([alice_srtp.unprotect(d) for d, _ in alice.received], [rtp(2)])
        self.hang_up()

    def test_terminate_towards_external_callee(self) -> None:
        """
        An internal caller's RTP towards an external callee: Bob gets
        RTP/SAVP with one a=crypto per enabled suite.
        """
        message = request("INVITE", sdp_a(host="10.0.0.10"))
        context = self.send(message, Flow("UDP", PROXY, 5060, "10.0.0.10", 5060))
        body = context.request.body
        self.assertIn(b"m=audio 20002 RTP/SAVP 0 8\r\n", body)
        self.assertIn(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", body)
        self.assertIn(b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:", body)
        self.back(context, response(message, 488))

    def test_sdes_over_plain_refused(self) -> None:
        """The same SRTP offer over UDP is refused: 488, keys need TLS."""
        result = self.refuse(request("INVITE", self.savp_offer(), uri=f"sip:bob@{INSIDE_HOST}"))
        self.assertEqual(result.status, 488)
        (warning,) = [v for n, v in result.headers if n == "Warning"]
        self.assertIn("TLS", warning)

    def test_sdes_over_plain_allowed(self) -> None:
        """With C{sdes_over_plain = true}, the offer over UDP is anchored."""
        self.stage.close()
        self.stage = MediaAnchorStage(
            self.stage_relay(self.relay), attrs.evolve(self.config, sdes_over_plain=True)
        )
        context = self.send(request("INVITE", self.savp_offer(), uri=f"sip:bob@{INSIDE_HOST}"))
        self.back(context, response(context.original, 486))

    def test_external_without_srtp(self) -> None:
        """
        terminate requires SRTP from external parties: an RTP/AVP offer
        from outside is refused with 488 and a 305 Warning.
        """
        result = self.refuse(request("INVITE", sdp_a(), uri=f"sip:bob@{INSIDE_HOST}"), A_TLS)
        self.assertEqual(result.status, 488)
        (warning,) = [v for n, v in result.headers if n == "Warning"]
        self.assertIn("305 sipedge", warning)
        self.assertIn("no usable SRTP key", warning)

    def test_refused_crypto(self) -> None:
        """An SRTP offer with only an unknown suite is refused: 488."""
        result = self.refuse(
            request("INVITE", self.savp_offer("F8_128_HMAC_SHA1_80"), uri=f"sip:bob@{INSIDE_HOST}"),
            A_TLS,
        )
        self.assertEqual(result.status, 488)

    def test_offerless_invite_over_udp(self) -> None:
        """
        An external caller's INVITE without SDP over UDP: its leg will get
        the relay's keys in the 2xx, so it is refused up front.
        """
        result = self.refuse(request("INVITE", uri=f"sip:bob@{INSIDE_HOST}"))
        self.assertEqual(result.status, 488)

    def test_passthrough(self) -> None:
        """
        srtp = passthrough: a=crypto and RTP/SAVP pass between the parties
        unchanged (over TLS), only addresses and ports are the relay's.
        """
        self.stage.close()
        self.stage = MediaAnchorStage(
            self.stage_relay(self.relay), attrs.evolve(self.config, srtp="passthrough")
        )
        context = self.send(request("INVITE", self.savp_offer()), A_TLS)
        self.assertIn(b"m=audio 20002 RTP/SAVP 0 8\r\n", context.request.body)
        self.assertIn(
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY_A}\r\n".encode(), context.request.body
        )
        self.back(context, response(context.original, 486))

    def test_passthrough_over_plain(self) -> None:
        """srtp = passthrough still keeps keys off plain signalling: 488."""
        self.stage.close()
        self.stage = MediaAnchorStage(
            self.stage_relay(self.relay), attrs.evolve(self.config, srtp="passthrough")
        )
        self.assertEqual(self.refuse(request("INVITE", self.savp_offer())).status, 488)

    def test_answer_without_crypto(self) -> None:
        """
        The relay offered SRTP to an external callee who answers RTP/AVP:
        the answer is refused, the session released, Alice gets every
        stream rejected.
        """
        message = request("INVITE", sdp_a(host="10.0.0.10"))
        context = self.send(message, Flow("UDP", PROXY, 5060, "10.0.0.10", 5060))
        ok = self.back(context, response(message, 200, sdp_b()))
        self.assertIn(b"m=audio 0 ", ok.body)
        self.assertEqual(self.relay.open_ports(), [])
        bye = request("BYE", cseq=2, to_tag=B_TAG)
        self.send(bye, Flow("UDP", PROXY, 5060, "10.0.0.10", 5060))


class SidesTests(AnchorTestCase):
    """Two relay addresses: internal parties get one, external ones the other."""

    config = attrs.evolve(CONFIG, internal_address="10.0.0.1", external_address=RELAY)

    def test_external_to_internal(self) -> None:
        """
        An external caller to an internal callee (by Request-URI address):
        the offer to Bob names the internal address, the answer to Alice
        the external one.
        """
        invite = request("INVITE", sdp_a(), uri=f"sip:bob@{INSIDE_HOST}")
        context = self.send(invite)
        self.assertIn(b"c=IN IP4 10.0.0.1\r\n", context.request.body)
        ok = self.back(context, response(invite, 200, sdp_b(host=INSIDE_HOST)))
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", ok.body)
        self.assertEqual(
            self.relay.open_ports(),
            [("external", 20000), ("external", 20001), ("internal", 20000), ("internal", 20001)],
        )
        self.hang_up()

    def test_callee_by_registration(self) -> None:
        """
        A call to one of our users: the callee's side is where its
        registration came from, the flow of the target C{location} chose
        (the stage is handed the decision, it does not look it up).
        """
        invite = request("INVITE", sdp_a(), uri="sip:bob@example.com")
        context = RequestContext(invite, A_UDP)
        flow = Flow("UDP", PROXY, 5060, INSIDE_HOST, 5060)
        forward = Forward((Target("sip:bob@bob-phone.example.com", flow=flow),))
        self.assertEqual(self.resolved(self.run_request(context, forward)), Continue())
        self.assertIn(b"c=IN IP4 10.0.0.1\r\n", context.request.body)
        self.back(context, response(invite, 404))

    def test_callee_by_route(self) -> None:
        """
        A call a static route sends to an internal next hop: the callee is
        internal, by the target's route, whatever its Request-URI says.
        """
        invite = request("INVITE", sdp_a(), uri="sip:+15551234@trunk.example.net")
        context = RequestContext(invite, A_UDP)
        forward = Forward(
            (Target("sip:+15551234@trunk.example.net", route=(f"<sip:{INSIDE_HOST};lr>",)),)
        )
        self.assertEqual(self.resolved(self.run_request(context, forward)), Continue())
        self.assertIn(b"c=IN IP4 10.0.0.1\r\n", context.request.body)
        self.back(context, response(invite, 486))

    def test_no_offer_before_routing(self) -> None:
        """
        The offer of a new call waits for the routing decision: nothing is
        allocated if the chain answers the request itself (a 404).
        """
        invite = request("INVITE", sdp_a(), uri="sip:nobody@example.com")
        context = RequestContext(invite, A_UDP)
        self.assertEqual(self.stage.process_request(context), Continue())
        self.assertIs(context.request, invite)
        self.stage.request_decided(context, Respond(404))
        self.assertEqual(self.relay.session_keys, ())

    def test_callee_by_default_side(self) -> None:
        """A callee named by a host name is on C{default_side} (external)."""
        invite = request("INVITE", sdp_a(), uri="sip:+15551234@trunk.example.net")
        context = self.send(invite)
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", context.request.body)
        self.back(context, response(invite, 486))


class DisabledTests(SynchronousTestCase):
    """C{anchor = false}: the stage does nothing, and needs no relay."""

    def test_passes(self) -> None:
        """Requests and responses pass unchanged."""
        stage = MediaAnchorStage(None, MediaConfig(anchor=False))
        invite = request("INVITE", sdp_a())
        context = RequestContext(invite, A_UDP)
        self.assertEqual(stage.process_request(context), Continue())
        self.assertIs(context.request, invite)
        ok = response(invite, 200, sdp_b())
        self.assertIs(stage.process_response(context, ok), ok)
        stage.request_decided(context, Respond(404))
        stage.close()


class SdpHelperTests(SynchronousTestCase):
    """L{offer_of}, L{rewrite}, L{reject}, L{OriginVersions}."""

    def test_offer_of(self) -> None:
        """
        Each m= line becomes a stream: address, port, a=rtcp, a=rtcp-mux,
        a=crypto; a stream that is not RTP has port 0.
        """
        body = sdp_a(
            proto="RTP/SAVPF",
            extra="a=rtcp:4001\r\na=rtcp-mux\r\n"
            f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 {KEY_A}|2^20\r\n"
            "m=image 4004 udptl t38\r\n",
        )
        offer = offer_of(parse_sdp(body))
        audio, image = offer.streams
        self.assertEqual(
            (audio.host, audio.port, audio.rtcp_port, audio.rtcp_mux), (A_HOST, 4000, 4001, True)
        )
        (crypto,) = audio.crypto
        self.assertEqual(
            (crypto.tag, crypto.suite, crypto.key_params),
            (2, "AES_CM_128_HMAC_SHA1_32", KEY_A + "|2^20"),
        )
        self.assertEqual((image.port, image.media), (0, "image"))
        self.assertTrue(offers_srtp(parse_sdp(body)))
        self.assertFalse(offers_srtp(parse_sdp(sdp_a())))

    def test_offer_of_errors(self) -> None:
        """No c=, a host name, multicast: L{MediaOfferError}."""
        for old, new in (
            (b"c=IN IP4 192.0.2.10\r\n", b""),
            (b"c=IN IP4 192.0.2.10", b"c=IN IP4 media.example.com"),
            (b"c=IN IP4 192.0.2.10", b"c=IN IP4 224.2.1.1/127"),
        ):
            self.assertRaises(MediaOfferError, offer_of, parse_sdp(sdp_a().replace(old, new)))

    def allocation(self, mode: MediaMode, crypto: tuple[Any, ...] = ()) -> RelayAllocation:
        end = RelayEndpoint(RELAY, 20000, 20001, False, crypto)
        return RelayAllocation("k", (StreamAllocation(end, end, mode, mode),))

    def test_profile(self) -> None:
        """
        An SRTP leg gets RTP/SAVP(F), a plain one RTP/AVP(F); the F stays;
        passthrough leaves the profile and a=crypto alone.
        """
        avpf = parse_sdp(sdp_a(proto="RTP/AVPF"))
        out = rewrite(avpf, self.allocation(MediaMode.SRTP_TERMINATE), "a")
        self.assertIn(b"RTP/SAVPF", out.to_bytes())
        savp = parse_sdp(
            sdp_a(proto="RTP/SAVP", extra=f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY_A}\r\n")
        )
        plain = rewrite(savp, self.allocation(MediaMode.PLAIN), "b").to_bytes()
        self.assertIn(b"m=audio 20000 RTP/AVP 0 8\r\n", plain)
        self.assertNotIn(b"crypto", plain)
        through = rewrite(savp, self.allocation(MediaMode.PASSTHROUGH), "b").to_bytes()
        self.assertIn(b"m=audio 20000 RTP/SAVP 0 8\r\n", through)
        self.assertIn(KEY_A.encode(), through)

    def test_stream_count(self) -> None:
        """Another number of streams than the allocation's: L{MediaOfferError}."""
        body = parse_sdp(sdp_a() + b"m=video 4002 RTP/AVP 96\r\n")
        self.assertRaises(MediaOfferError, rewrite, body, self.allocation(MediaMode.PLAIN), "a")
        self.assertRaises(
            ValueError, rewrite, parse_sdp(sdp_a()), self.allocation(MediaMode.PLAIN), "c"
        )

    def test_reject(self) -> None:
        """L{reject}: ports 0, addresses unspecified, no keys; IPv6 stays IPv6."""
        body = sdp_a(proto="RTP/SAVP", extra=f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY_A}\r\n")
        out = reject(parse_sdp(body)).to_bytes()
        self.assertIn(b"c=IN IP4 0.0.0.0\r\n", out)
        self.assertIn(b"m=audio 0 RTP/SAVP 0 8\r\n", out)
        self.assertNotIn(b"crypto", out)
        six = reject(parse_sdp(sdp_a(host="2001:db8::a"))).to_bytes()
        self.assertIn(b"c=IN IP6 ::\r\n", six)

    def test_versions(self) -> None:
        """
        The first description of an origin: its version plus one; the same
        again: the same; a changed one: the last plus one; another origin:
        its own version plus one, and the first origin goes on from where
        it was.
        """
        versions = OriginVersions()

        def stamped(body: bytes) -> int:
            origin = versions.stamp(parse_sdp(body)).origin
            assert origin is not None
            return origin.sess_version

        self.assertEqual(stamped(sdp_a(version=5)), 6)
        self.assertEqual(stamped(sdp_a(version=5)), 6)
        self.assertEqual(stamped(sdp_a(version=9)), 6)
        self.assertEqual(stamped(sdp_a(port=4002, version=9)), 7)
        self.assertEqual(stamped(sdp_b(version=1)), 2)
        self.assertEqual(stamped(sdp_a(port=4004, version=1)), 8)
        no_origin = parse_sdp(b"v=0\r\ns=-\r\n")
        self.assertIs(versions.stamp(no_origin), no_origin)


def _Services(
    clock: Any, media: Any = None, config: Any = DEFAULT_CONFIG
) -> StageServices:
    """Stage services with what the media factory looks at."""
    return StageServices(clock=clock, local=LocalIdentity((), ()), media=media, config=config)


class FactoryTests(SynchronousTestCase):
    """The C{media-anchor} plugin factory."""

    def test_registered(self) -> None:
        """The factory is found as a plugin, in its own module."""
        factory = stage_factories()["media-anchor"]
        self.assertIs(factory, sipedge_media_stages.media_anchor)
        self.assertTrue(factory.description)

    def test_builds(self) -> None:
        """With a relay in the services, the stage uses it."""
        reactor = FakeReactor()
        relay = CONFIG.build_relay(reactor)
        stage = stage_factories()["media-anchor"].build_stage(
            {"anchor": True}, _Services(reactor, relay)
        )
        self.assertIsInstance(stage, MediaAnchorStage)
        self.assertIs(stage.relay, relay)
        self.assertTrue(verifyObject(IResponseStage, stage))
        stage.close()

    def test_options(self) -> None:
        """Stage options override [media] keys; a bad one names its key."""
        reactor = FakeReactor()
        relay = CONFIG.build_relay(reactor)
        factory = stage_factories()["media-anchor"]
        stage = factory.build_stage({"srtp": "rekey"}, _Services(reactor, relay))
        self.assertEqual(stage.config.srtp, "rekey")
        stage.close()
        error = self.assertRaises(
            ConfigError, factory.build_stage, {"srtp": "maybe"}, _Services(reactor, relay)
        )
        self.assertIn("pipeline.options.media-anchor.srtp", str(error))
        error = self.assertRaises(
            ConfigError, factory.build_stage, {"sprt": "rekey"}, _Services(reactor, relay)
        )
        self.assertIn("unknown option 'sprt'", str(error))

    def test_disabled(self) -> None:
        """C{anchor = false} needs no relay."""
        stage = stage_factories()["media-anchor"].build_stage({"anchor": False}, _Services(Clock()))
        self.assertFalse(stage.config.anchor)

    def test_no_relay(self) -> None:
        """No relay and a clock that is no reactor: ConfigError."""
        self.assertRaises(
            ConfigError,
            stage_factories()["media-anchor"].build_stage,
            {"anchor": True},
            _Services(Clock()),
        )

    def test_own_relay(self) -> None:
        """No relay but a reactor: the stage builds one from [media]."""
        reactor = FakeReactor()
        stage = stage_factories()["media-anchor"].build_stage({"anchor": True}, _Services(reactor))
        self.assertIsInstance(stage.relay, MediaRelay)
        stage.close()


C_HOST = "198.51.100.30"
C_UDP = Flow("UDP", PROXY, 5060, C_HOST, 5060)


def sdp_c(port: int = 6000, version: int = 3, extra: str = "") -> bytes:
    """Carol's description."""
    return sdp_b(port=port, host=C_HOST, version=version, extra=extra).replace(
        b"o=bob 2808844564", b"o=carol 2808849999"
    )


def dialog_request(
    method: str,
    call_id: str,
    from_: tuple[str, str],
    to: tuple[str, str | None],
    cseq: int,
    body: bytes = b"",
    *fields: str,
    uri: str | None = None,
) -> Request:
    """
    A request of any party: C{from_} and C{to} are C{(user, tag)}; users
    are alice, bob and carol at their hosts.
    """
    hosts = {"alice": A_HOST, "bob": B_HOST, "carol": C_HOST}
    user, from_tag = from_
    to_user, to_tag = to
    lines = [
        f"{method} {uri or f'sip:{to_user}@{hosts[to_user]}'} SIP/2.0",
        f"Via: SIP/2.0/UDP {hosts[user]}:5060;branch=z9hG4bK-{user}-{method.lower()}-{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@example.com>;tag={from_tag}",
        f"To: <sip:{to_user}@example.com>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{user}@{hosts[user]}:5060>",
        *fields,
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines += [f"Content-Length: {len(body)}", "", ""]
    message = parse_datagram("\r\n".join(lines).encode() + body)
    assert isinstance(message, Request)
    return message


class TransferTests(AnchorTestCase):
    """
    Call transfer (RFC 5589) as the proxy sees it: REFER passes the stage
    untouched; the INVITE it triggers (with Replaces, RFC 3891, for an
    attended transfer) is a new call, anchored on its own; each old call
    ends with its BYE. Alice calls Bob (call 1); Bob transfers Alice to
    Carol.
    """

    CALL_1 = CALL_ID
    CALL_2 = "call-2@198.51.100.20"  # Bob's consultation call to Carol
    CALL_3 = "call-3@192.0.2.10"  # Alice's INVITE to Carol

    def call_1(self) -> None:
        """Alice calls Bob; Bob puts Alice on hold (re-INVITE, sendonly)."""
        self.call()
        hold = self.send(
            request("INVITE", sdp_b(version=8, extra="a=sendonly\r\n"), cseq=1, caller=False),
            B_UDP,
        )
        self.back(
            hold, response(hold.original, 200, sdp_a(version=6, extra="a=recvonly\r\n"), A_TAG)
        )

    def refer(self, refer_to: str) -> None:
        """Bob REFERs Alice (call 1); she accepts (202) and is told it went (NOTIFY)."""
        refer = dialog_request(
            "REFER",
            self.CALL_1,
            ("bob", B_TAG),
            ("alice", A_TAG),
            2,
            b"",
            f"Refer-To: {refer_to}",
            "Referred-By: <sip:bob@example.com>",
        )
        context = self.send(refer, B_UDP)
        self.assertIs(context.request, refer)
        accepted = response(refer, 202, to_tag=A_TAG)
        self.assertIs(self.back(context, accepted), accepted)

    def carol_answers(self, replaces: str | None = None) -> RequestContext:
        """Alice INVITEs Carol (call 3), Carol answers, Alice ACKs."""
        fields: tuple[str, ...] = ("Referred-By: <sip:bob@example.com>",)
        if replaces is not None:
            fields += (f"Replaces: {replaces}",)
        invite = dialog_request(
            "INVITE",
            self.CALL_3,
            ("alice", "alice-3"),
            ("carol", None),
            1,
            sdp_a(version=7),
            *fields,
        )
        context = self.send(invite)
        self.assertIn(b"c=IN IP4 203.0.113.1", context.request.body)
        ok = self.back(context, response(invite, 200, sdp_c(), to_tag="carol-3"))
        self.assertIn(b"c=IN IP4 203.0.113.1", ok.body)
        self.send(dialog_request("ACK", self.CALL_3, ("alice", "alice-3"), ("carol", "carol-3"), 1))
        return context

    def alice_and_carol_talk(self) -> None:
        """Media flows Alice <-> Carol through call 3's relay session."""
        session: Any = self.relay.session(f"{self.CALL_3};alice-3")
        self.assertEqual(session.streams[0].a.rtp.remote, (A_HOST, 4000))
        self.assertEqual(session.streams[0].b.rtp.remote, (C_HOST, 6000))
        alice = self.endpoint(A_HOST, 4000)
        carol = self.endpoint(C_HOST, 6000)
        alice.socket.write(rtp(1), (RELAY, session.streams[0].a.rtp.port))
        self.network.flush()
        carol.socket.write(rtp(2), (RELAY, session.streams[0].b.rtp.port))
        self.network.flush()
        self.assertEqual([d for d, _ in carol.received], [rtp(1)])
        self.assertEqual([d for d, _ in alice.received], [rtp(2)])

    def test_blind(self) -> None:
        """
        Blind transfer: Bob REFERs Alice to Carol and hangs up; Alice's
        INVITE to Carol is a call of its own, its media relayed; call 1 is
        released by Bob's BYE, call 3 by its own.
        """
        self.call_1()
        self.refer("<sip:carol@example.com>")
        self.carol_answers()
        self.assertEqual(
            set(self.stage.calls), {f"{self.CALL_1};{A_TAG}", f"{self.CALL_3};alice-3"}
        )
        self.send(dialog_request("BYE", self.CALL_1, ("bob", B_TAG), ("alice", A_TAG), 3), B_UDP)
        self.assertEqual(self.stage.calls, (f"{self.CALL_3};alice-3",))
        self.alice_and_carol_talk()
        self.send(
            dialog_request("BYE", self.CALL_3, ("carol", "carol-3"), ("alice", "alice-3"), 1),
            C_UDP,
        )

    def test_attended(self) -> None:
        """
        Attended transfer: Bob holds Alice, calls Carol (call 2), then
        REFERs Alice to Carol with Replaces naming call 2; Alice's INVITE
        with Replaces is anchored as a new call; Carol BYEs call 2, Bob
        BYEs call 1: each releases only its own call.
        """
        self.call_1()
        consult = dialog_request(
            "INVITE", self.CALL_2, ("bob", "bob-2"), ("carol", None), 1, sdp_b(port=5002)
        )
        context = self.send(consult, B_UDP)
        self.back(context, response(consult, 200, sdp_c(port=6002), to_tag="carol-2"))
        self.send(dialog_request("ACK", self.CALL_2, ("bob", "bob-2"), ("carol", "carol-2"), 1))
        replaces = f"{self.CALL_2};to-tag=carol-2;from-tag=bob-2"
        self.refer(
            "<sip:carol@example.com?Replaces=call-2%40198.51.100.20%3Bto-tag%3Dcarol-2"
            "%3Bfrom-tag%3Dbob-2>"
        )
        self.carol_answers(replaces)
        self.assertEqual(len(self.stage.calls), 3)
        self.send(
            dialog_request("BYE", self.CALL_2, ("carol", "carol-2"), ("bob", "bob-2"), 1), C_UDP
        )
        self.send(dialog_request("BYE", self.CALL_1, ("bob", B_TAG), ("alice", A_TAG), 3), B_UDP)
        self.assertEqual(self.stage.calls, (f"{self.CALL_3};alice-3",))
        self.alice_and_carol_talk()
        self.send(dialog_request("BYE", self.CALL_3, ("alice", "alice-3"), ("carol", "carol-3"), 2))

    def test_attended_before_answer(self) -> None:
        """
        Attended transfer while Carol still rings (call 2 early): Alice's
        INVITE with Replaces ends it at Carol, who answers call 2 with 487;
        that releases call 2's offer.
        """
        self.call_1()
        consult = dialog_request(
            "INVITE", self.CALL_2, ("bob", "bob-2"), ("carol", None), 1, sdp_b(port=5002)
        )
        context = self.send(consult, B_UDP)
        self.back(context, response(consult, 180, to_tag="carol-2"))
        self.refer("<sip:carol@example.com>")
        self.carol_answers(f"{self.CALL_2};to-tag=carol-2;from-tag=bob-2;early-only")
        self.back(context, response(consult, 487, to_tag="carol-2"))
        self.send(dialog_request("BYE", self.CALL_1, ("bob", B_TAG), ("alice", A_TAG), 3), B_UDP)
        self.assertEqual(self.stage.calls, (f"{self.CALL_3};alice-3",))
        self.send(dialog_request("BYE", self.CALL_3, ("alice", "alice-3"), ("carol", "carol-3"), 2))


class ForkedEarlyDialogTests(AnchorTestCase):
    """
    One INVITE forked to two phones, each answering in an early dialog
    with its own SDP, then a 200 from one of them.
    """

    def ring_both(self) -> tuple[RequestContext, Request]:
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        first = self.back(context, response(invite, 183, sdp_b(), to_tag="b1"))
        second = self.back(
            context, response(invite, 183, sdp_b(host="198.51.100.99", port=5010), to_tag="b2")
        )
        # Both early answers name the relay, and the same A-side port.
        self.assertIn(b"c=IN IP4 203.0.113.1", first.body)
        self.assertIn(b"c=IN IP4 203.0.113.1", second.body)
        return context, invite

    def test_200_from_first_with_sdp(self) -> None:
        """
        The 200 comes from the first fork (whose early answer was
        overtaken by the second's), repeating its answer: media goes to
        it, both ways.
        """
        context, invite = self.ring_both()
        ok = self.back(context, response(invite, 200, sdp_b(), to_tag="b1"))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, (B_HOST, 5000))
        self.send(request("ACK", to_tag="b1"))
        self.relays_media(
            session.streams[0].b.rtp.port,
            int(ok.body.split(b"m=audio ")[1].split(b" ")[0]),
        )
        self.send(request("BYE", cseq=2, to_tag="b1"))

    def test_200_from_second(self) -> None:
        """The 200 comes from the fork whose answer is current: media goes to it."""
        context, invite = self.ring_both()
        self.back(
            context, response(invite, 200, sdp_b(host="198.51.100.99", port=5010), to_tag="b2")
        )
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, ("198.51.100.99", 5010))
        self.send(request("BYE", cseq=2, to_tag="b2"))

    def test_200_without_sdp_from_first(self) -> None:
        """
        With reliable 183s (RFC 3262) the 200 repeats no answer: the 200
        of the first fork, without SDP, makes the first fork's early
        answer the one media goes to, not the last one received.
        """
        context, invite = self.ring_both()
        self.back(context, response(invite, 200, to_tag="b1"))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, (B_HOST, 5000))
        self.send(request("BYE", cseq=2, to_tag="b1"))

    def test_200_without_sdp_from_silent_fork(self) -> None:
        """
        A 200 without SDP from a fork that never answered owes an answer:
        the exchange fails (no media, a warning), and the BYE ends the call.
        """
        context, invite = self.ring_both()
        self.back(context, response(invite, 200, to_tag="b3"))
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.stage.calls, (f"{CALL_ID};{A_TAG}",))
        self.send(request("BYE", cseq=2, to_tag="b3"))

    def test_cancelled_after_early_media(self) -> None:
        """Both forks ring with early media, the caller CANCELs: the 487 releases."""
        context, invite = self.ring_both()
        self.back(context, response(invite, 487, to_tag="b1"))


def _later(case: type) -> type:
    return type(
        f"Later{case.__name__}",
        (LaterRelayMixin, case),
        {"__doc__": f"{(case.__doc__ or '').strip()} (the relay answers later)"},
    )


# Every stage test above again, with a relay that answers later
# (sipedge.test.test_media_anchor_async has what only such a relay shows).
LaterOfferAnswerTests = _later(OfferAnswerTests)
LaterCallEndTests = _later(CallEndTests)
LaterLateOfferTests = _later(LateOfferTests)
LaterNewOfferTests = _later(NewOfferTests)
LaterForkTests = _later(ForkTests)
LaterSdpShapeTests = _later(SdpShapeTests)
LaterSrtpTests = _later(SrtpTests)
LaterSidesTests = _later(SidesTests)
LaterTransferTests = _later(TransferTests)
LaterForkedEarlyDialogTests = _later(ForkedEarlyDialogTests)


def _remote(case: type) -> type:
    return type(
        f"Remote{case.__name__}",
        (RemoteRelayMixin, case),
        {"__doc__": f"{(case.__doc__ or '').strip()} (through the control protocol)"},
    )


# Every stage test above again, through the relay control protocol
# (sipedge.test.test_media_anchor_remote has what only a remote relay shows).
RemoteOfferAnswerTests = _remote(OfferAnswerTests)


class RemoteCallEndTests(_remote(CallEndTests)):  # type: ignore[misc]
    """
    CallEndTests through the control protocol; the two tests that
    call the stage and the relay directly move the bytes before looking.
    """

    def test_later_stage_answers(self) -> None:
        """
        A stage after this one answers the INVITE (404 from location):
        told as an observer, the stage releases the session at once.
        """
        context = self.send(request("INVITE", sdp_a()))
        self.assertNotEqual(self.relay.open_ports(), [])
        self.stage.request_decided(context, Respond(404))
        self.reactor.flush()
        self.assertEqual(self.relay.open_ports(), [])

    def test_relay_closed(self) -> None:
        """Closing the relay ends every call, each told as ended (closed)."""
        self.call()
        self.relay.close()
        self.reactor.flush()
        self.assertEqual([e.reason for e in self.ended], ["closed"])
        self.assertEqual(self.stage.calls, ())

RemoteLateOfferTests = _remote(LateOfferTests)
RemoteNewOfferTests = _remote(NewOfferTests)
RemoteForkTests = _remote(ForkTests)
RemoteSdpShapeTests = _remote(SdpShapeTests)
RemoteSrtpTests = _remote(SrtpTests)
RemoteSidesTests = _remote(SidesTests)
RemoteTransferTests = _remote(TransferTests)
RemoteForkedEarlyDialogTests = _remote(ForkedEarlyDialogTests)
