# -*- test-case-name: sipedge.test.test_proxy_flowtoken -*-
"""
Tests for L{sipedge.proxy._flowtoken}: the flows of parties behind NAT in
our Record-Route, and the proxy core sending a dialog's requests over them.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import TokenError, TransportError
from sipedge.message import Request, SipURI, parse_name_addr
from sipedge.proxy import (
    FLOW_PARAM,
    DialogFlows,
    FlowTokens,
    PartyFlow,
    RecordRouteSigner,
    Sealer,
)
from sipedge.testing import ALICE, PROXY, SECRET, TRUSTED, UPSTREAM, ProxyHarness
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request
from sipedge.transport import Flow

#: Bob's phone behind a home router: the router's address, a random port.
BOB_NAT = Flow("UDP", PROXY, 5060, "203.0.113.5", 41234)
BOB_PRIVATE = ("10.0.0.5", 5060)
BOB_NAT_TCP = Flow("TCP", PROXY, 5060, "203.0.113.5", 50001)

flows = st.builds(
    Flow,
    st.sampled_from(["UDP", "TCP", "TLS"]),
    st.sampled_from(["192.0.2.1", "2001:db8::1"]),
    st.integers(0, 65535),
    st.sampled_from(["203.0.113.5", "2001:db8::5", "10.0.0.5"]),
    st.integers(0, 65535),
)
parties = st.none() | st.builds(PartyFlow, flows, st.sampled_from([430, 480]))


class FlowTokensTests(SynchronousTestCase):
    """Tests for L{FlowTokens}."""

    def setUp(self) -> None:
        self.tokens = FlowTokens(Sealer(SECRET))

    @given(tag=st.text(max_size=30), caller=parties, callee=parties, call_id=st.text(max_size=30))
    def test_round_trip(
        self, tag: str, caller: PartyFlow | None, callee: PartyFlow | None, call_id: str
    ) -> None:
        """What is sealed for a Call-ID opens with that Call-ID."""
        flows = DialogFlows(tag, caller, callee)
        token = self.tokens.seal(flows, call_id)
        self.assertEqual(self.tokens.open(token, call_id), flows)
        uri = parse_name_addr(f"<sip:x;{FLOW_PARAM}={token}>").uri
        assert isinstance(uri, SipURI)
        self.assertEqual(uri.param("ft"), token)

    def test_other_call(self) -> None:
        """A token presented with another Call-ID, or changed, does not open."""
        token = self.tokens.seal(DialogFlows("t", PartyFlow(BOB_NAT)), "call-1")
        self.assertRaises(TokenError, self.tokens.open, token, "call-2")
        changed = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        self.assertRaises(TokenError, self.tokens.open, changed, "call-1")
        other = FlowTokens(Sealer(b"x" * 32))
        self.assertRaises(TokenError, other.open, token, "call-1")

    def test_toward(self) -> None:
        """
        A request whose To tag is the caller's tag goes to the caller; one
        whose From tag is, to the callee; with neither, nowhere known.
        """
        caller, callee = PartyFlow(ALICE), PartyFlow(BOB_NAT, 430)
        flows = DialogFlows("a", caller, callee)
        self.assertIs(flows.toward("b", "a"), caller)
        self.assertIs(flows.toward("a", "b"), callee)
        self.assertIsNone(flows.toward("x", "y"))
        self.assertIsNone(flows.toward(None, None))


class NatDialogTests(ProxyHarness, SynchronousTestCase):
    """
    L{ProxyCore} with flow tokens: every request of a dialog reaches a
    phone behind NAT over its flow.
    """

    def build(self) -> None:
        super().build()
        self.tokens = FlowTokens(Sealer(SECRET))
        self.services = attrs.evolve(self.services, flow_tokens=self.tokens)
        self.core = self.make_core(flow_tokens=self.tokens)

    def call_bob(self, contact: str = "sip:bob@10.0.0.5:5060", flow: Flow = BOB_NAT) -> Request:
        """Alice calls Bob, registered behind NAT; Bob answers; the 200's route set."""
        self.register(contact, flow)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(flow.remote, "INVITE")
        self.receive(answer(forwarded, 200, ("Contact", f"<{contact}>")), flow)
        ok = self.only(UPSTREAM, 200)
        self.take()
        return ok

    def in_dialog(self, method: str, ok: Any, **kw: Any) -> Request:
        """A request from Alice in the dialog of C{ok}, along its route set."""
        routes = [f"Route: {v}" for v in ok.headers.get_all("Record-Route")]
        contact = ok.headers.get("Contact").strip("<>")
        return request(
            method, contact, *routes, to="<sip:bob@example.com>;tag=bob-tag", cseq=2,
            branch=f"z9hG4bK-alice-{method}", **kw
        )

    def test_stale_route_still_finds_the_flow(self) -> None:
        """
        Once our Record-Route is stale (past its lifetime), Alice's BYE
        along it goes the whole chain (here, with no digest-auth, she is
        refused relaying: 403), but a trusted
        party's in-dialog request, not challenged, still reaches Bob behind
        NAT over his flow: the flow token in our Route is still ours.
        """
        self.signer = RecordRouteSigner(SECRET, self.clock, 3600.0)
        self.services = attrs.evolve(self.services, signer=self.signer)
        self.core = self.make_core(flow_tokens=self.tokens)
        ok = self.call_bob()
        self.clock.advance(3600 + 60)
        self.receive(self.in_dialog("BYE", ok), ALICE)
        self.assertEqual(self.only(UPSTREAM, 403).status, 403)
        self.take()
        self.receive(self.in_dialog("INFO", ok), TRUSTED)
        info = self.only(BOB_NAT.remote, "INFO")
        self.assertEqual(info.uri, "sip:bob@10.0.0.5:5060")
        self.assertEqual(self.sent_to(BOB_PRIVATE), [])

    def test_bye_to_callee_behind_nat(self) -> None:
        """
        If Bob registered from behind NAT (private Contact) and answered
        Alice's call, Alice's BYE goes to Bob's router address and port,
        with the Request-URI Bob wrote; never to his private address.
        """
        ok = self.call_bob()
        [rr] = ok.headers.get_all("Record-Route")
        self.assertIn(f";{FLOW_PARAM}=", rr)
        self.receive(self.in_dialog("BYE", ok), ALICE)
        bye = self.only(BOB_NAT.remote, "BYE")
        self.assertEqual(bye.uri, "sip:bob@10.0.0.5:5060")
        self.assertEqual(self.sent_to(BOB_PRIVATE), [])
        self.assertEqual(self.locator.located, [])
        self.receive(answer(bye, 200, record_route=False), BOB_NAT)
        self.assertEqual(self.statuses(UPSTREAM), [200])

    def test_ack_to_callee_behind_nat(self) -> None:
        """The ACK for the 2xx goes over Bob's flow too."""
        ok = self.call_bob()
        self.receive(self.in_dialog("ACK", ok), ALICE)
        self.assertEqual(len(self.sent_to(BOB_NAT.remote, "ACK")), 1)
        self.assertEqual(self.sent_to(BOB_PRIVATE), [])

    def test_no_token_for_public_parties(self) -> None:
        """Between two phones reached at their Contacts, no flow token is added."""
        ok = self.call_bob("sip:bob@203.0.113.5:5060", Flow("UDP", PROXY, 5060, "203.0.113.5",
                                                              5060))
        self.assertNotIn(f";{FLOW_PARAM}=", ok.headers.get("Record-Route"))

    def test_caller_behind_nat(self) -> None:
        """
        If Bob calls from behind NAT, the callee's BYE to Bob's private
        Contact goes to Bob's router address and port.
        """
        self.register("sip:alice@198.51.100.7:5060", ALICE, aor="alice")
        invite = request(
            "INVITE", "sip:alice@example.com", "Contact: <sip:bob@10.0.0.5:5060>",
            via="10.0.0.5:5060", from_="<sip:bob@example.com>;tag=bob-tag",
            to="<sip:alice@example.com>", call_id="call-nat",
        )
        self.receive(invite, BOB_NAT)
        forwarded = self.only(UPSTREAM, "INVITE")
        self.receive(answer(forwarded, 200, ("Contact", "<sip:alice@198.51.100.7>"),
                            to_tag="alice-tag"), ALICE)
        ok = self.only(BOB_NAT.remote, 200)
        self.take()
        bye = request(
            "BYE", "sip:bob@10.0.0.5:5060",
            *(f"Route: {v}" for v in reversed(ok.headers.get_all("Record-Route"))),
            from_="<sip:alice@example.com>;tag=alice-tag",
            to="<sip:bob@example.com>;tag=bob-tag", call_id="call-nat", cseq=5,
            branch="z9hG4bK-alice-bye",
        )
        self.receive(bye, ALICE)
        self.assertEqual(self.only(BOB_NAT.remote, "BYE").uri, "sip:bob@10.0.0.5:5060")
        self.assertEqual(self.sent_to(BOB_PRIVATE), [])
        self.take()
        # and Bob's own BYE goes to Alice's Contact, not back to him
        bye = request(
            "BYE", "sip:alice@198.51.100.7",
            *(f"Route: {v}" for v in ok.headers.get_all("Record-Route")),
            via="10.0.0.5:5060", from_="<sip:bob@example.com>;tag=bob-tag",
            to="<sip:alice@example.com>;tag=alice-tag", call_id="call-nat", cseq=2,
            branch="z9hG4bK-bob-bye",
        )
        self.receive(bye, BOB_NAT)
        self.assertEqual(len(self.sent_to(UPSTREAM, "BYE")), 1)
        self.settle()
        self.take()

    def test_token_of_another_call(self) -> None:
        """
        A flow token copied into another call's request is not used: the
        request goes where its Request-URI says.
        """
        ok = self.call_bob()
        [rr] = ok.headers.get_all("Record-Route")
        uri = parse_name_addr(rr).uri
        assert isinstance(uri, SipURI)
        token = uri.param(FLOW_PARAM)
        mac = self.signer.mac("other-call")
        forged = f"<sip:{PROXY}:5060;lr;ft={token};se={mac}>"
        self.receive(
            request("BYE", "sip:bob@203.0.113.77", f"Route: {forged}", call_id="other-call",
                    to="<sip:bob@example.com>;tag=bob-tag"),
            ALICE,
        )
        self.assertEqual(self.sent_to(BOB_NAT.remote), [])
        self.assertEqual(len(self.sent_to(("203.0.113.77", 5060), "BYE")), 1)
        self.settle()
        self.take()

    def test_tcp_connection_gone(self) -> None:
        """
        If a TCP phone behind NAT registered and its connection is gone, a
        call to it fails with 480 at once, and nothing connects to its
        private Contact.
        """
        self.register("sip:bob@10.0.0.5;transport=tcp", BOB_NAT_TCP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 480])
        self.assertEqual(self.locator.located, [])
        self.assertEqual([f for _, f in self.transports.sent if f.remote_host == "10.0.0.5"], [])
        self.take()

    def test_tcp_connection_fails_as_sent(self) -> None:
        """
        If a TCP phone behind NAT registered and its connection fails as
        a call is sent on it (another worker held it and it closed
        meanwhile), the call fails with 480, not 503, and nothing connects
        to its private Contact.
        """
        self.register("sip:bob@10.0.0.5;transport=tcp", BOB_NAT_TCP)
        self.transports.connections.add(BOB_NAT_TCP)
        self.transports.fail_send.add(BOB_NAT_TCP.remote)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertEqual(len(self.sent_to(BOB_NAT_TCP.remote, "INVITE")), 1)
        self.assertEqual(self.statuses(UPSTREAM), [100, 480])
        self.assertEqual(self.locator.located, [])
        self.assertEqual([f for _, f in self.transports.sent if f.remote_host == "10.0.0.5"], [])
        self.take()

    def test_tcp_connection_fails_later(self) -> None:
        """
        If the connection of a TCP phone behind NAT is reported failed
        after the INVITE was written to it (another worker held it and saw
        it close), the call fails with 480, not 503.
        """
        self.register("sip:bob@10.0.0.5;transport=tcp", BOB_NAT_TCP)
        self.transports.connections.add(BOB_NAT_TCP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        [invite] = self.sent_to(BOB_NAT_TCP.remote, "INVITE")
        self.core.transactions.transport_failed(
            invite, Failure(TransportError(f"the connection {BOB_NAT_TCP} is gone")))
        self.assertEqual(self.statuses(UPSTREAM), [100, 480])
        self.assertEqual(self.locator.located, [])
        self.take()

    def test_tcp_in_dialog_connection_gone(self) -> None:
        """
        If the connection of a TCP phone behind NAT is gone during a call,
        a BYE to it is answered 480 at once; 430 (Flow Failed) if the phone
        asked for outbound (reg-id).
        """
        self.transports.connections.add(BOB_NAT_TCP)
        ok = self.call_bob("sip:bob@10.0.0.5;transport=tcp", BOB_NAT_TCP)
        self.transports.connections.clear()
        self.receive(self.in_dialog("BYE", ok), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [480])
        self.assertEqual(self.locator.located, [])
        self.take()

    def test_outbound_flow_failed(self) -> None:
        """
        A phone registered with RFC 5626 outbound (+sip.instance, reg-id)
        whose connection is gone: a call to it gets 430 (Flow Failed).
        """
        contact = (
            '<sip:bob@10.0.0.5;transport=tcp;ob>;+sip.instance="<urn:uuid:0000>";reg-id=1'
        )
        self.receive(
            request(
                "REGISTER", "sip:example.com", f"Contact: {contact}", "Supported: outbound",
                call_id="reg-ob", via=f"{BOB_NAT_TCP.remote_host}:{BOB_NAT_TCP.remote_port}",
                transport="TCP", from_="<sip:bob@example.com>;tag=reg",
            ),
            BOB_NAT_TCP,
        )
        self.assertEqual(self.statuses(BOB_NAT_TCP.remote), [200])
        self.take()
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 430])
        self.take()
