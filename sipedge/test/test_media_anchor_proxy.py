# -*- test-case-name: sipedge.test.test_media_anchor_proxy -*-
"""
The C{media-anchor} stage in a real L{ProxyCore}: its request side in the
request chain, its response side in the response chain, and its observer
side told of the chain's decisions. Every test ends with the core's own
clean check and the relay's leak check.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Request
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    UPSTREAM,
    AnchoredHarness,
    sdp_a,
    sdp_b,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

SDP = ("Content-Type: application/sdp",)


class AnchoredProxyTests(AnchoredHarness, SynchronousTestCase):
    """A proxy whose chain anchors media before C{registrar}/C{location}."""

    def invite_with_sdp(self) -> Request:
        """Alice's INVITE with her offer; the one forwarded to Bob."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com", *SDP, body=sdp_a().decode()), ALICE)
        forwarded: Request = self.only(BOB, "INVITE")
        self.take()
        return forwarded

    def test_call(self) -> None:
        """
        The INVITE reaches Bob with the relay's address and port, the 180
        passes, the 200 reaches Alice with the relay's; the BYE along the
        dialog releases the relay's ports.
        """
        forwarded = self.invite_with_sdp()
        self.assertIn(b"c=IN IP4 203.0.113.1\r\n", forwarded.body)
        self.assertIn(b"m=audio 20002 RTP/AVP 0 8\r\n", forwarded.body)
        self.receive(answer(forwarded, 180), BOB_UDP)
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"))
        ok = ok.with_body(sdp_b(), "application/sdp")
        self.receive(ok, BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [180, 200])
        relayed = self.only(UPSTREAM, 200)
        self.assertIn(b"m=audio 20000 RTP/AVP 0\r\n", relayed.body)
        self.assertNotIn(b"198.51.100.20", relayed.body.split(b"\r\n", 2)[2])
        self.take()
        [rr] = relayed.headers.get_all("Record-Route")
        dialog = ("To: <sip:bob@example.com>;tag=bob-tag",)
        ack = request(
            "ACK",
            "sip:bob@203.0.113.5:5060",
            f"Route: {rr}",
            branch="z9hG4bK-alice-ack",
            to=dialog[0][4:],
        )
        self.receive(ack, ALICE)
        self.only(BOB, "ACK")
        self.assertEqual(len(self.relay.session_keys), 1)
        bye = request(
            "BYE",
            "sip:bob@203.0.113.5:5060",
            f"Route: {rr}",
            branch="z9hG4bK-alice-bye",
            cseq=2,
            to=dialog[0][4:],
        )
        self.receive(bye, ALICE)
        self.assertEqual(self.relay.open_ports(), [])
        forwarded_bye = self.only(BOB, "BYE")
        self.receive(answer(forwarded_bye, 200), BOB_UDP)

    def test_not_found(self) -> None:
        """
        An INVITE for a user with no registration: location answers 404,
        the stage (an observer) releases what it opened.
        """
        self.receive(
            request("INVITE", "sip:nobody@example.com", *SDP, body=sdp_a().decode()), ALICE
        )
        self.assertEqual(self.statuses(UPSTREAM), [404])
        self.assertEqual(self.relay.open_ports(), [])

    def test_busy(self) -> None:
        """Bob's 486 reaches Alice and releases the session."""
        forwarded = self.invite_with_sdp()
        self.receive(answer(forwarded, 486), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [486])
        self.assertEqual(self.relay.open_ports(), [])

    def test_cancel(self) -> None:
        """A CANCEL: the 487 the proxy sends Alice releases the session."""
        forwarded = self.invite_with_sdp()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.receive(answer(forwarded, 487), BOB_UDP)
        self.assertIn(487, self.statuses(UPSTREAM))
        self.assertEqual(self.relay.open_ports(), [])

    def test_refused_offer(self) -> None:
        """
        An offer the relay refuses is answered 488 by the proxy, nothing
        forwarded (the offer is given to the relay once C{location} has
        decided; this relay answers at once, so no 100 Trying goes first).
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        body = sdp_a(host="2001:db8::a").decode()
        self.receive(request("INVITE", "sip:bob@example.com", *SDP, body=body), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [488])
        refusal: Any = self.only(UPSTREAM, 488)
        self.assertTrue(refusal.headers.get("Warning").startswith("305 sipedge "))
        self.assertEqual(self.sent_to(BOB, "INVITE"), [])

    def test_late_offer(self) -> None:
        """
        An INVITE without SDP: Bob's offer in the 200 reaches Alice with
        the relay's address; Alice's answer in the ACK (forwarded
        statelessly) reaches Bob with the relay's; Bob's BYE releases.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "INVITE")
        self.assertEqual(forwarded.body, b"")
        self.take()
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"))
        self.receive(ok.with_body(sdp_b(), "application/sdp"), BOB_UDP)
        relayed = self.only(UPSTREAM, 200)
        self.assertIn(b"m=audio 20002 RTP/AVP 0\r\n", relayed.body)
        self.take()
        [rr] = relayed.headers.get_all("Record-Route")
        ack = request(
            "ACK",
            "sip:bob@203.0.113.5:5060",
            f"Route: {rr}",
            *SDP,
            branch="z9hG4bK-alice-ack",
            to="<sip:bob@example.com>;tag=bob-tag",
            body=sdp_a().decode(),
        )
        self.receive(ack, ALICE)
        out = self.only(BOB, "ACK")
        self.assertIn(b"m=audio 20000 RTP/AVP 0 8\r\n", out.body)
        self.take()
        bye = request(
            "BYE",
            "sip:alice@198.51.100.7:5060",
            f"Route: {rr}",
            branch="z9hG4bK-bob-bye",
            via="203.0.113.5:5060",
            from_="<sip:bob@example.com>;tag=bob-tag",
            to="<sip:alice@example.com>;tag=alice-tag",
        )
        self.receive(bye, BOB_UDP)
        self.assertEqual(self.relay.open_ports(), [])
        self.receive(answer(self.only(UPSTREAM, "BYE"), 200), ALICE)
