# -*- test-case-name: sipedge.test.test_store_reach -*-
"""
Tests for L{sipedge.store.binding_flow}: how a registered contact is
reached, the one rule of the location stage and the NAT keep-alive.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import Flow
from sipedge.proxy import bound_to_connection, needs_keepalive
from sipedge.store import Binding, binding_flow

PROXY = "192.0.2.1"


class BindingFlowTests(SynchronousTestCase):
    """L{binding_flow}, and the keep-alive's questions that it answers."""

    def binding(
        self,
        contact: str,
        flow: Flow | None,
        path: tuple[str, ...] = (),
        reg_id: int | None = None,
    ) -> Binding:
        return Binding(
            aor="sip:bob@example.com",
            contact=contact,
            expires_at=1e9,
            call_id="c",
            cseq=1,
            flow=flow,
            path=path,
            instance="<urn:uuid:00000000-0000-0000-0000-000000000001>" if reg_id else None,
            reg_id=reg_id,
        )

    def test_flow_for(self) -> None:
        """
        L{binding_flow} gives the flow to reach a binding over and the status
        when it is gone: over UDP only when the Contact names another host
        than the source (NAT, 480); over TCP or TLS always, bound
        to it (480) when the Contact names another IP address; an outbound
        binding (reg-id) always and bound to it (430); never with a Path
        or without a flow.
        """
        udp = Flow("UDP", PROXY, 5060, "203.0.113.5", 5060)
        tcp = Flow("TCP", PROXY, 5060, "203.0.113.5", 40000)
        tls = Flow("TLS", PROXY, 5061, "203.0.113.5", 40001)
        v6 = Flow("UDP", "2001:db8::1", 5060, "2001:db8::5", 5060)
        cases = [
            (self.binding("sip:bob@203.0.113.5:5060", udp), (None, None)),
            (self.binding("sip:bob@203.0.113.5", udp), (None, None)),
            (self.binding("sip:bob@203.0.113.5:5062", udp), (None, None)),
            (self.binding("sip:bob@10.0.0.5:5060", udp), (udp, 480)),
            (self.binding("sip:bob@phone.invalid", udp), (udp, 480)),
            (self.binding("sip:bob@203.0.113.5;transport=tcp", tcp), (tcp, None)),
            (self.binding("sip:bob@10.0.0.5;transport=tcp", tcp), (tcp, 480)),
            (self.binding("sip:bob@phone.example.net;transport=tcp", tcp), (tcp, None)),
            (self.binding("sips:bob@203.0.113.5", tls), (tls, None)),
            (self.binding("sip:bob@203.0.113.5:5060", udp, reg_id=1), (udp, 430)),
            (self.binding("sip:bob@10.0.0.5:5060", udp, ("<sip:edge;lr>",)), (None, None)),
            (self.binding("sip:bob@10.0.0.5:5060", None), (None, None)),
            (self.binding("sip:bob@[2001:db8::5]:5060", v6), (None, None)),
            (self.binding("tel:+4930123", udp), (udp, 480)),
        ]
        for binding, expected in cases:
            self.assertEqual(binding_flow(binding), expected, binding.contact)

    @given(
        st.sampled_from(
            [
                "sip:bob@203.0.113.5:5060",
                "sip:bob@10.0.0.5",
                "sip:bob@phone.example.net;transport=tcp",
                "sip:bob@[2001:db8::5]:5060",
                "tel:+4930123",
                "<not a uri",
            ]
        ),
        st.sampled_from(["UDP", "TCP", "TLS", None]),
        st.booleans(),
        st.sampled_from([None, 1]),
    )
    def test_keepalive_agrees(
        self, contact: str, transport: str | None, path: bool, reg_id: int | None
    ) -> None:
        """
        The keep-alive pings exactly the UDP bindings, and watches exactly
        the TCP and TLS ones, that the location stage reaches only over
        their flow (a status when it is gone).
        """
        flow = None if transport is None else Flow(transport, PROXY, 5060, "203.0.113.5", 5060)
        binding = self.binding(contact, flow, ("<sip:edge;lr>",) if path else (), reg_id)
        bound = binding_flow(binding)[1] is not None
        self.assertEqual(needs_keepalive(binding), bound and transport == "UDP")
        self.assertEqual(bound_to_connection(binding), bound and transport in ("TCP", "TLS"))
