# -*- test-case-name: sipedge.test.test_proxy_dualstack -*-
"""
A call between an IPv4 phone and an IPv6 phone through a L{ProxyCore}
that listens on both families (L{ProxyHarness.ipv6}): the INVITE leaves on
the other family than it came in on, so the proxy record-routes twice,
once per interface (RFC 3261 16.6 step 4, RFC 5118 4.2 sense: each party
must see an address of ours it can reach), and every in-dialog request of
either party (ACK, BYE, re-INVITE) follows both entries to the other
party on its own family.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import Flow, format_hostport
from sipedge.message import BRANCH_PREFIX, Request
from sipedge.testing import (
    ALICE,
    PROXY,
    PROXY6,
    UPSTREAM,
    ProxyHarness,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

#: Bob, registered over IPv6 (UDP and TCP).
BOB6 = "2001:db8::5"
BOB6_UDP = Flow("UDP", PROXY6, 5060, BOB6, 5060)
BOB6_TCP = Flow("TCP", PROXY6, 5060, BOB6, 40001)
#: Carol, an IPv6 caller.
CAROL6_UDP = Flow("UDP", PROXY6, 5060, "2001:db8::6", 5060)


class _DualStack(ProxyHarness, SynchronousTestCase):
    ipv6 = True

    def register6(self, flow: Flow = BOB6_UDP) -> None:
        transport = "" if flow.transport == "UDP" else f";transport={flow.transport.lower()}"
        self.register(f"sip:bob@[{BOB6}]:5060{transport}", flow)
        self.take()

    def invite(self, flow: Flow = ALICE, contact: str = "<sip:alice@198.51.100.7:5060>") -> None:
        self.receive(
            request(
                "INVITE",
                "sip:bob@example.com",
                f"Contact: {contact}",
                via=format_hostport(flow.remote_host, flow.remote_port),
            ),
            flow,
        )

    def forwarded(self, flow: Flow, method: str) -> Request:
        """The one request of C{method} sent over C{flow}."""
        found = [m for m, f in self.take() if isinstance(m, Request) and m.method == method
                 and f == flow]
        self.assertEqual(len(found), 1, found)
        return found[0]


class RecordRouteTests(_DualStack):
    """Two Record-Route entries when a request crosses address families."""

    def test_ipv4_to_ipv6(self) -> None:
        """
        If an IPv4 phone calls a phone registered over IPv6, the INVITE
        leaves from our IPv6 address (Via C{[2001:db8::1]}) with two signed
        Record-Route entries: the IPv6 interface on top (the callee reaches
        us there), then the IPv4 one (the caller does).
        """
        self.register6()
        self.invite()
        forwarded = self.forwarded(BOB6_UDP, "INVITE")
        self.assertEqual(forwarded.uri, f"sip:bob@[{BOB6}]:5060")
        self.assertEqual((forwarded.top_via.host, forwarded.top_via.port), (f"[{PROXY6}]", 5060))
        self.assertTrue((forwarded.top_via.branch or "").startswith(BRANCH_PREFIX))
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"),
            [f"<sip:[{PROXY6}]:5060;lr;se={mac}>", f"<sip:{PROXY}:5060;lr;se={mac}>"],
        )

    def test_ipv6_to_ipv4(self) -> None:
        """
        If an IPv6 phone calls a phone registered over IPv4, the entries
        are the other way round: IPv4 on top, IPv6 below.
        """
        self.register("sip:bob@203.0.113.5:5060", Flow("UDP", PROXY, 5060, "203.0.113.5", 5060))
        self.take()
        self.invite(CAROL6_UDP, "<sip:carol@[2001:db8::6]:5060>")
        forwarded = self.forwarded(Flow("UDP", PROXY, 5060, "203.0.113.5", 5060), "INVITE")
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"),
            [f"<sip:{PROXY}:5060;lr;se={mac}>", f"<sip:[{PROXY6}]:5060;lr;se={mac}>"],
        )
        self.assertEqual(forwarded.top_via.host, PROXY)

    def test_ipv6_to_ipv6(self) -> None:
        """
        If an IPv6 phone calls a phone registered over IPv6 on the same
        transport, one entry is enough: our IPv6 address.
        """
        self.register6()
        self.invite(CAROL6_UDP, "<sip:carol@[2001:db8::6]:5060>")
        forwarded = self.forwarded(BOB6_UDP, "INVITE")
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"), [f"<sip:[{PROXY6}]:5060;lr;se={mac}>"]
        )

    def test_ipv4_to_ipv6_tcp(self) -> None:
        """
        Across families and transports (UDP in, TCP out) the two entries
        name each interface with its transport.
        """
        self.transports.connections.add(BOB6_TCP)
        self.register6(BOB6_TCP)
        self.invite()
        forwarded = self.forwarded(BOB6_TCP, "INVITE")
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"),
            [f"<sip:[{PROXY6}]:5060;transport=tcp;lr;se={mac}>", f"<sip:{PROXY}:5060;lr;se={mac}>"],
        )


class InDialogTests(_DualStack):
    """In-dialog requests of either party follow both entries."""

    def dialog(self) -> tuple[Request, Any]:
        """IPv4 Alice calls IPv6 Bob; Bob answers 200: (the INVITE Bob got, the 200 Alice got)."""
        self.register6()
        self.invite()
        forwarded = self.forwarded(BOB6_UDP, "INVITE")
        ok = answer(forwarded, 200, ("Contact", f"<sip:bob@[{BOB6}]:5060>"))
        self.receive(ok, BOB6_UDP)
        [reply] = [m for m in self.sent_to(UPSTREAM, 200)]
        self.take()
        return forwarded, reply

    def in_dialog(self, method: str, caller: bool, route: list[str], cseq: int) -> Request:
        """C{method} from Alice (C{caller}) or Bob along C{route}: what the other party got."""
        if caller:
            message = request(
                method, f"sip:bob@[{BOB6}]:5060", f"Route: {', '.join(route)}",
                branch=f"z9hG4bK-alice-{method.lower()}-{cseq}",
                to="<sip:bob@example.com>;tag=bob-tag", cseq=cseq,
            )
            self.receive(message, ALICE)
            return self.forwarded(BOB6_UDP, method)
        message = request(
            method, "sip:alice@198.51.100.7:5060", f"Route: {', '.join(route)}",
            branch=f"z9hG4bK-bob-{method.lower()}-{cseq}", via=f"[{BOB6}]:5060",
            from_="<sip:bob@example.com>;tag=bob-tag", to="<sip:alice@example.com>;tag=alice-tag",
            cseq=cseq,
        )
        self.receive(message, BOB6_UDP)
        return self.forwarded(ALICE, method)

    def test_response_keeps_both(self) -> None:
        """The 200 reaches the IPv4 caller with both Record-Route entries, in order."""
        forwarded, ok = self.dialog()
        self.assertEqual(
            ok.headers.values("Record-Route"), forwarded.headers.values("Record-Route")
        )
        self.assertEqual(len(ok.headers.values("Record-Route")), 2)

    def test_caller_requests(self) -> None:
        """
        The caller's route set is the Record-Route entries reversed (IPv4
        first): its ACK, re-INVITE and BYE reach Bob over IPv6, with no
        Route of ours left, from our IPv6 address.
        """
        _, ok = self.dialog()
        route = ok.headers.values("Record-Route")[::-1]
        ack = self.in_dialog("ACK", True, route, 1)
        self.assertEqual(ack.headers.get_all("Route"), ())
        self.assertEqual(ack.top_via.host, f"[{PROXY6}]")
        reinvite = self.in_dialog("INVITE", True, route, 2)
        self.assertEqual(reinvite.headers.get_all("Route"), ())
        self.assertEqual(reinvite.top_via.host, f"[{PROXY6}]")
        bye = self.in_dialog("BYE", True, route, 3)
        self.assertEqual(bye.headers.get_all("Route"), ())
        self.receive(answer(bye, 200, to_tag=None), BOB6_UDP)
        self.assertEqual(len(self.sent_to(UPSTREAM, 200)), 1)

    def test_callee_requests(self) -> None:
        """
        The callee's route set is the entries as received (IPv6 first): its
        re-INVITE and BYE reach Alice over IPv4, from our IPv4 address,
        and her answers go back to Bob over IPv6.
        """
        forwarded, _ = self.dialog()
        route = forwarded.headers.values("Record-Route")
        reinvite = self.in_dialog("INVITE", False, route, 10)
        self.assertEqual(reinvite.headers.get_all("Route"), ())
        self.assertEqual(reinvite.top_via.host, PROXY)
        self.receive(answer(reinvite, 200, record_route=False), ALICE)
        [ok] = self.sent_to(BOB6_UDP.remote, 200)
        self.assertEqual(ok.top_via.branch, "z9hG4bK-bob-invite-10")
        self.take()
        bye = self.in_dialog("BYE", False, route, 11)
        self.assertEqual(bye.headers.get_all("Route"), ())
        self.receive(answer(bye, 200, to_tag=None), ALICE)
        self.assertEqual([m.status for m in self.sent_to(BOB6_UDP.remote, 200)], [200])

    @given(
        caller=st.booleans(),
        spelling=st.sampled_from(["[2001:db8::1]", "[2001:DB8:0::1]", "[2001:db8:0:0:0:0:0:1]"]),
    )
    def test_route_spellings(self, caller: bool, spelling: str) -> None:
        """
        Our IPv6 Route entry is ours however the address is spelled (RFC
        5118 4.1: addresses compare as addresses): the request goes on
        with none of our entries left.
        """
        self.build()
        forwarded, _ = self.dialog()
        route = forwarded.headers.values("Record-Route")
        route = [value.replace(f"[{PROXY6}]", spelling) for value in route]
        if caller:
            route = route[::-1]
        out = self.in_dialog("BYE", caller, route, 20)
        self.assertEqual(out.headers.get_all("Route"), ())
