# -*- test-case-name: sipedge.test.test_media_anchor_reoffer -*-
"""
The C{media-anchor} stage re-offers a call's relay session in place
(L{IMediaRelay.reoffer}): hold and resume by either party keep the relay
ports and the media flowing, and a relay that cannot re-offer (a version 1
remote relay) gets a new session as before.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from sipedge.interfaces import IMediaRelay
from sipedge.media import MediaRelay, ReofferUnsupported
from sipedge.testing import (
    A_HOST,
    A_TAG,
    B_HOST,
    B_TAG,
    B_UDP,
    CALL_ID,
    AnchorTestCase,
    rtp_packet,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_RELAY as RELAY
from sipedge.testing import anchor_request as request
from sipedge.testing import anchor_response as response

FIRST = f"{CALL_ID};{A_TAG}"


class HoldResumeTests(AnchorTestCase):
    """Hold and resume through the stage, media checked at every step."""

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.endpoint(A_HOST, 4000)
        self.bob = self.endpoint(B_HOST, 5000)

    def flows(self, sequence: int, a_to_b: bool = True, b_to_a: bool = True) -> None:
        """One packet each way through the call's first ports (20000 faces Alice)."""
        before_a, before_b = len(self.alice.received), len(self.bob.received)
        self.alice.socket.write(rtp_packet(sequence), (RELAY, 20000))
        self.bob.socket.write(rtp_packet(sequence + 1000), (RELAY, 20002))
        self.network.flush()
        got_b = [d for d, _ in self.bob.received[before_b:]]
        got_a = [d for d, _ in self.alice.received[before_a:]]
        self.assertEqual(got_b, [rtp_packet(sequence)] if a_to_b else [])
        self.assertEqual(got_a, [rtp_packet(sequence + 1000)] if b_to_a else [])

    def reinvite(
        self, body: bytes, cseq: int, caller: bool, answer: bytes, b_to_a: bool = True
    ) -> None:
        """
        A re-INVITE with C{body}, media checked before its 200 (flowing as
        before it), then the 200.
        """
        if caller:
            context = self.send(request("INVITE", body, cseq=cseq, to_tag=B_TAG))
        else:
            context = self.send(request("INVITE", body, cseq=cseq, caller=False), B_UDP)
        self.assertIn(b"m=audio 2000", context.request.body)
        self.flows(cseq * 10, b_to_a=b_to_a)  # the exchange under way changes nothing
        self.back(context, response(context.original, 200, answer))

    def test_hold_resume_by_callee(self) -> None:
        """
        Bob holds (sendonly), then resumes: every message keeps the relay's
        ports, the session is never replaced, and media flows at each step.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 200, sdp_b()))
        ports = self.relay.open_ports()
        self.flows(1)
        self.reinvite(
            sdp_b(version=9, extra="a=sendonly\r\n"), 1, False, sdp_a(extra="a=recvonly\r\n")
        )
        self.flows(2)
        self.reinvite(sdp_b(version=10), 2, False, sdp_a())
        self.flows(3)
        self.assertEqual(self.relay.open_ports(), ports)
        self.assertEqual(self.relay.session_keys, (FIRST,))
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.send(request("BYE", cseq=2, to_tag=B_TAG))

    def test_old_style_hold_by_caller(self) -> None:
        """
        Alice holds with c=0.0.0.0: once answered nothing goes to her, while
        what she sends still reaches Bob; resuming restores both ways on the
        same ports.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 200, sdp_b()))
        hold = sdp_a(host="0.0.0.0", version=6, extra="a=sendonly\r\n")
        self.reinvite(hold, 2, True, sdp_b(extra="a=recvonly\r\n"))
        self.flows(5, b_to_a=False)
        self.reinvite(sdp_a(version=7), 3, True, sdp_b(version=8), b_to_a=False)
        self.flows(6)
        self.assertEqual(self.relay.session_keys, (FIRST,))
        self.send(request("BYE", cseq=4, to_tag=B_TAG))


@implementer(IMediaRelay)
class NoReoffers:
    """An L{IMediaRelay} that cannot re-offer, as a version 1 remote relay."""

    def __init__(self, relay: MediaRelay) -> None:
        self.relay = relay
        self.reoffers = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.relay, name)

    def reoffer(self, session_key: str, offer: Any, offerer: Any) -> Deferred[Any]:
        self.reoffers += 1
        return fail(ReofferUnsupported("version 1"))

    def withdraw(self, session_key: str) -> Deferred[Any]:
        return fail(ReofferUnsupported("version 1"))


class NoReofferTests(AnchorTestCase):
    """A relay that cannot re-offer: a new session for each new offer, as before."""

    def stage_relay(self, relay: MediaRelay) -> Any:
        self.wrapper = NoReoffers(relay)
        return self.wrapper

    def test_falls_back_to_new_sessions(self) -> None:
        """
        The first re-INVITE is tried in place, refused as unsupported, and
        given a new session; the next goes to a new session at once.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 200, sdp_b()))
        reinvite = self.send(request("INVITE", sdp_a(version=6), cseq=2, to_tag=B_TAG))
        self.assertIn(b"m=audio 20006 ", reinvite.request.body)
        self.back(reinvite, response(reinvite.original, 200, sdp_b(version=8)))
        self.assertEqual(self.relay.session_keys, (f"{FIRST};1",))
        again = self.send(request("INVITE", sdp_a(version=7), cseq=3, to_tag=B_TAG))
        self.back(again, response(again.original, 200, sdp_b(version=9)))
        self.assertEqual(self.relay.session_keys, (f"{FIRST};2",))
        self.assertEqual(self.wrapper.reoffers, 1)
        self.send(request("BYE", cseq=4, to_tag=B_TAG))
