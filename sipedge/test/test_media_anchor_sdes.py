# -*- test-case-name: sipedge.test.test_media_anchor_sdes -*-
"""
SDES keys never cross signalling that is not TLS (C{[media]
sdes_over_plain = false}), on the flow the proxy core chose for the other
party too: the C{media-anchor} stage as an L{IBranchStage}, driven
directly, and in a real L{ProxyCore} (forks, fail-over).
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.flow import Flow
from sipedge.interfaces import IBranchStage
from sipedge.message import Request, Response
from sipedge.pipeline import RequestContext, Respond
from sipedge.pipeline.stages import MediaAnchorStage
from sipedge.testing import (
    A_TLS,
    A_UDP,
    B_HOST,
    B_TAG,
    INSIDE_HOST,
    KEY_A,
    AnchoredHarness,
    AnchorTestCase,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_CONFIG as CONFIG
from sipedge.testing import ANCHOR_PROXY as PROXY
from sipedge.testing import PROXY as CORE_PROXY
from sipedge.testing import anchor_request as request
from sipedge.testing import anchor_response as response
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as core_request

B_UDP = Flow("UDP", PROXY, 5060, B_HOST, 5060)
B_TLS = Flow("TLS", PROXY, 5061, B_HOST, 40002)
INSIDE_UDP = Flow("UDP", PROXY, 5060, INSIDE_HOST, 5060)
CALLER_INSIDE = Flow("UDP", PROXY, 5060, "10.0.0.10", 5060)
WARNING = '399 sipedge "SDES keys over a non-TLS transport refused"'
CRYPTO = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY_A}\r\n"


def savp_a(**kw: Any) -> bytes:
    """Alice's SRTP offer (or answer), with her key."""
    return sdp_a(proto="RTP/SAVP", extra=CRYPTO, **kw)


def savp_b(**kw: Any) -> bytes:
    """Bob's SRTP description, with a key (tag 1, the first suite)."""
    return sdp_b(proto="RTP/SAVP", extra=CRYPTO, **kw)


class BranchTests(AnchorTestCase):
    """L{MediaAnchorStage.process_branch}, driven directly."""

    def use(self, **changes: Any) -> None:
        """Replace the stage with one on C{CONFIG} with C{changes}."""
        self.stage.close()
        self.stage = MediaAnchorStage(self.relay, attrs.evolve(CONFIG, **changes))

    def branch(self, context: RequestContext, flow: Flow) -> Any:
        return self.stage.process_branch(context, context.request, flow)

    def assert_refused(self, result: Any) -> None:
        self.assertEqual(result, Respond(488, None, (("Warning", WARNING),)))

    def test_provides(self) -> None:
        """The stage provides L{IBranchStage}."""
        self.assertTrue(verifyObject(IBranchStage, self.stage))

    def test_terminate_towards_plain(self) -> None:
        """
        terminate: an internal caller's RTP towards an external callee gets
        the relay's keys: refused on a UDP flow, sent unchanged on TLS; the
        INVITE's failure (the 488 the core makes) releases the session.
        """
        self.use(srtp="terminate")
        invite = request("INVITE", sdp_a(host="10.0.0.10"))
        context = self.send(invite, CALLER_INSIDE)
        self.assertIn(b"a=crypto:", context.request.body)
        self.assert_refused(self.branch(context, B_UDP))
        self.assert_refused(self.branch(context, Flow("TCP", PROXY, 5060, B_HOST, 40003)))
        self.assertIs(self.branch(context, B_TLS), context.request)
        self.back(context, response(invite, 488))

    def test_terminate_plain_leg(self) -> None:
        """
        terminate: an external caller (over TLS) towards an internal
        callee: Bob's leg is plain, no keys: a UDP flow is fine.
        """
        self.use(srtp="terminate")
        invite = request("INVITE", savp_a(), uri=f"sip:bob@{INSIDE_HOST}")
        context = self.send(invite, A_TLS)
        self.assertNotIn(b"a=crypto:", context.request.body)
        self.assertIs(self.branch(context, INSIDE_UDP), context.request)
        self.back(context, response(invite, 486))

    def test_rekey(self) -> None:
        """rekey: the relay's keys towards Bob: refused over UDP, not over TLS."""
        self.use(srtp="rekey")
        invite = request("INVITE", savp_a())
        context = self.send(invite, A_TLS)
        self.assert_refused(self.branch(context, B_UDP))
        self.assertIs(self.branch(context, B_TLS), context.request)
        self.back(context, response(invite, 488))

    def test_passthrough(self) -> None:
        """
        passthrough: Alice's keys go to Bob as they are: refused over UDP,
        not over TLS; an offer without keys goes anywhere.
        """
        self.use(srtp="passthrough")
        invite = request("INVITE", savp_a())
        context = self.send(invite, A_TLS)
        self.assertIn(KEY_A.encode(), context.request.body)
        self.assert_refused(self.branch(context, B_UDP))
        self.assertIs(self.branch(context, B_TLS), context.request)
        self.back(context, response(invite, 488))
        invite = request("INVITE", sdp_a(), cseq=2)
        context = self.send(invite, A_UDP)
        self.assertIs(self.branch(context, B_UDP), context.request)
        self.back(context, response(invite, 486))

    def test_sdes_over_plain(self) -> None:
        """With C{sdes_over_plain = true}, keys go over UDP."""
        self.use(srtp="rekey", sdes_over_plain=True)
        invite = request("INVITE", savp_a())
        context = self.send(invite, A_UDP)
        self.assertIs(self.branch(context, B_UDP), context.request)
        self.back(context, response(invite, 486))

    def test_not_anchoring(self) -> None:
        """With C{anchor = false}, the stage refuses nothing."""
        stage = MediaAnchorStage(None, attrs.evolve(CONFIG, anchor=False))
        invite = request("INVITE", savp_a())
        context = RequestContext(invite, A_TLS)
        self.assertIs(stage.process_branch(context, invite, B_UDP), invite)

    def test_in_dialog(self) -> None:
        """
        A re-INVITE from Bob (over TLS) with keys, towards Alice over
        UDP, is refused; the 488 keeps the call on its session.
        """
        self.use(srtp="passthrough")
        invite = request("INVITE", savp_a())
        context = self.send(invite, A_TLS)
        self.back(context, response(invite, 200, savp_b()))
        self.send(request("ACK", to_tag=B_TAG), A_TLS)
        reinvite = request("INVITE", savp_b(version=8), caller=False, cseq=1)
        context = self.send(reinvite, B_TLS)
        self.assert_refused(self.branch(context, A_UDP))
        self.back(context, response(reinvite, 488, to_tag=B_TAG))
        self.assertEqual(len(self.relay.session_keys), 1)
        self.hang_up()

    def test_late_offer_rekey(self) -> None:
        """
        rekey: an INVITE without SDP towards Bob over UDP is refused: the
        relay's keys would reach Bob in the ACK. Over TLS it goes.
        """
        self.use(srtp="rekey")
        invite = request("INVITE")
        context = self.send(invite, A_TLS)
        self.assert_refused(self.branch(context, B_UDP))
        self.assertIs(self.branch(context, B_TLS), context.request)
        self.back(context, response(invite, 488))

    def test_late_offer_terminate_internal(self) -> None:
        """
        terminate: an INVITE without SDP towards an internal callee over
        UDP goes (its leg is plain unless it offers SRTP).
        """
        self.use(srtp="terminate")
        invite = request("INVITE", uri=f"sip:bob@{INSIDE_HOST}")
        context = self.send(invite, A_TLS)
        self.assertIs(self.branch(context, INSIDE_UDP), context.request)
        self.back(context, response(invite, 486))

    def test_late_offer_to_plain_caller(self) -> None:
        """
        passthrough: Bob's offer with keys in the 200 of an INVITE without
        SDP that Alice sent over UDP: the 200 reaches her with every stream
        rejected and no key; the exchange is dropped (no relay session).
        A 183 with such an offer loses its SDP.
        """
        self.use(srtp="passthrough")
        invite = request("INVITE")
        context = self.send(invite, A_UDP)
        self.assertIs(self.branch(context, B_UDP), context.request)
        early = self.back(context, response(invite, 183, savp_b()))
        self.assertEqual(early.body, b"")
        self.assertIsNone(early.content_type)
        ok = self.back(context, response(invite, 200, savp_b()))
        self.assertNotIn(b"crypto", ok.body)
        self.assertNotIn(KEY_A.encode(), ok.body)
        self.assertIn(b"m=audio 0 RTP/SAVP 0\r\n", ok.body)
        self.assertEqual(self.relay.session_keys, ())
        self.send(request("ACK", sdp_a(port=0), to_tag=B_TAG), A_UDP)
        self.hang_up()

    def test_late_offer_to_tls_caller(self) -> None:
        """
        passthrough: the same offer goes to Alice with its key when she
        sent the INVITE over TLS; her answer with keys in the ACK goes to
        Bob over TLS too.
        """
        self.use(srtp="passthrough")
        invite = request("INVITE")
        context = self.send(invite, A_TLS)
        ok = self.back(context, response(invite, 200, savp_b()))
        self.assertIn(KEY_A.encode(), ok.body)
        ack = self.send(request("ACK", savp_a(), to_tag=B_TAG), A_TLS)
        self.assertIs(self.branch(ack, B_TLS), ack.request)
        self.assertEqual(len(self.relay.session_keys), 1)
        self.hang_up()

    def test_ack_with_keys_over_plain(self) -> None:
        """
        An ACK with keys (Alice's answer to Bob's offer in the 200), on a
        UDP flow to Bob: it cannot be refused, so it goes with every
        stream rejected, no key, and the call's media is released.
        """
        self.use(srtp="passthrough")
        invite = request("INVITE", uri=f"sip:bob@{INSIDE_HOST}")
        context = self.send(invite, A_TLS)
        self.assertIs(self.branch(context, INSIDE_UDP), context.request)
        self.back(context, response(invite, 200, savp_b(host=INSIDE_HOST)))
        ack = self.send(request("ACK", savp_a(), to_tag=B_TAG), A_TLS)
        self.assertIn(KEY_A.encode(), ack.request.body)
        out = self.branch(ack, INSIDE_UDP)
        self.assertIsInstance(out, Request)
        self.assertNotIn(b"crypto", out.body)
        self.assertIn(b"m=audio 0 RTP/SAVP 0 8\r\n", out.body)
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.stage.calls, ())
        self.hang_up()

    def test_stray_2xx(self) -> None:
        """
        A stray 2xx (no context) with keys whose top Via is UDP gets every
        stream rejected; one whose top Via is TLS keeps them.
        """
        self.use(srtp="passthrough")
        invite = request("INVITE")
        self.send(invite, A_UDP)
        ok = self.back(None, response(invite, 200, savp_b()))
        self.assertNotIn(b"crypto", ok.body)
        via = invite.headers.get_all("Via")[0].replace("UDP", "TLS")
        tls_invite = invite.with_headers(invite.headers.first_removed("Via").prepended("Via", via))
        ok = self.back(None, response(tls_invite, 200, savp_b()))
        self.assertIn(KEY_A.encode(), ok.body)
        self.hang_up()


class AnchoredCoreTests(AnchoredHarness, SynchronousTestCase):
    """The stage's branch side in a real L{ProxyCore}, srtp = terminate."""

    config = attrs.evolve(CONFIG, srtp="terminate")

    def bob(self, transport: str, port: int, call_id: str = "reg-1") -> Flow:
        """Register Bob (external) over C{transport}; its flow."""
        local_port = 5061 if transport == "TLS" else 5060
        flow = Flow(transport, CORE_PROXY, local_port, "203.0.113.5", port)
        params = ";transport=tls" if transport == "TLS" else ""
        self.register(f"sip:bob@203.0.113.5:{port}{params}", flow, call_id=call_id)
        if flow.reliable:
            self.transports.connections.add(flow)
        return flow

    def invite(self) -> None:
        """Alice (internal) calls Bob with RTP: Bob's leg will get the relay's keys."""
        body = sdp_a(host="10.0.0.10").decode()
        self.receive(
            core_request(
                "INVITE",
                "sip:bob@example.com",
                "Content-Type: application/sdp",
                via="10.0.0.10:5060",
                body=body,
            ),
            CALLER_INSIDE,
        )

    def finals(self) -> list[Response]:
        return [
            m
            for m in self.sent_to(CALLER_INSIDE.remote)
            if isinstance(m, Response) and m.status >= 200
        ]

    def test_udp_refused(self) -> None:
        """
        Bob registered over UDP: the INVITE with the relay's keys is not
        sent; Alice gets 488 with the Warning; the session is released.
        """
        udp = self.bob("UDP", 5060)
        self.invite()
        self.assertEqual(self.sent_to(udp.remote), [])
        [final] = self.finals()
        self.assertEqual((final.status, final.headers.get("Warning")), (488, WARNING))
        self.assertEqual(self.relay.open_ports(), [])

    def test_tls_allowed(self) -> None:
        """Bob registered over TLS gets the INVITE with the relay's keys."""
        tls = self.bob("TLS", 40002)
        self.invite()
        forwarded = self.only(tls.remote, "INVITE")
        self.assertIn(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", forwarded.body)
        self.receive(answer(forwarded, 486), tls)
        self.assertEqual([m.status for m in self.finals()], [486])

    def test_fork(self) -> None:
        """
        Bob registered over TLS and UDP: the UDP branch fails at once (no
        keys leave over UDP), the TLS branch rings and answers; the call
        is relayed; its BYE releases the relay.
        """
        tls = self.bob("TLS", 40002, "reg-1")
        udp = self.bob("UDP", 5060, "reg-2")
        self.invite()
        self.assertEqual(self.sent_to(udp.remote), [])
        forwarded = self.only(tls.remote, "INVITE")
        self.receive(answer(forwarded, 180), tls)
        ok = answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:40002;transport=tls>"))
        self.receive(ok.with_body(savp_b(host="203.0.113.5"), "application/sdp"), tls)
        self.assertEqual([m.status for m in self.finals()], [200])
        relayed = self.only(CALLER_INSIDE.remote, 200)
        self.assertNotIn(b"crypto", relayed.body)
        self.assertEqual(len(self.relay.session_keys), 1)
        [rr, *_] = relayed.headers.get_all("Record-Route")
        self.take()
        bye = core_request(
            "BYE",
            "sip:bob@203.0.113.5:40002;transport=tls",
            f"Route: {rr}",
            via="10.0.0.10:5060",
            branch="z9hG4bK-alice-bye",
            cseq=2,
            to="<sip:bob@example.com>;tag=bob-tag",
        )
        self.receive(bye, CALLER_INSIDE)
        self.assertEqual(self.relay.open_ports(), [])
        self.receive(answer(self.only(tls.remote, "BYE"), 200), tls)

    def test_failover(self) -> None:
        """
        Bob's contact resolves to a UDP then a TLS destination: the UDP one
        is skipped, the TLS one gets the INVITE.
        """
        self.locator.add(
            "bob.example.net", ("UDP", "203.0.113.10", 5060), ("TLS", "203.0.113.11", 5061)
        )
        # Registered over a TCP connection that is gone: the core locates.
        self.register(
            "sip:bob@bob.example.net", Flow("TCP", CORE_PROXY, 5060, "203.0.113.10", 40009)
        )
        self.invite()
        forwarded = self.sent_to(("203.0.113.11", 5061), "INVITE")
        self.assertEqual(self.sent_to(("203.0.113.10", 5060), "INVITE"), [])
        self.assertEqual(len(forwarded), 1)
        tls = Flow("TLS", CORE_PROXY, 5061, "203.0.113.11", 5061)
        self.receive(answer(forwarded[0], 486), tls)
        self.assertEqual([m.status for m in self.finals()], [486])

    def test_sdes_over_plain(self) -> None:
        """With C{sdes_over_plain = true} Bob gets the keys over UDP."""
        self.anchor.close()
        self.anchor.config = attrs.evolve(self.config, sdes_over_plain=True)
        self.relay.add_observer(self.anchor.session_ended)
        udp = self.bob("UDP", 5060)
        self.invite()
        forwarded = self.only(udp.remote, "INVITE")
        self.assertIn(b"a=crypto:", forwarded.body)
        self.receive(answer(forwarded, 486), udp)
