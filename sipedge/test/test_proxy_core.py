# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
Tests for L{sipedge.proxy._core}: a L{ProxyCore} driven end to end in
memory, with the real transaction layer and the real request chain, a fake
transport manager that records what is sent and a fake locator.
"""

from __future__ import annotations

import weakref
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from sipedge.error import TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IRequestStage, IResponseStage
from sipedge.message import BRANCH_PREFIX, Message, Request, Response, parse_datagram
from sipedge.pipeline import (
    Drop,
    RequestChain,
    RequestContext,
    Respond,
    StageServices,
    Target,
    build_chain,
)
from sipedge.proxy import Registrar
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_TCP,
    BOB_TLS,
    BOB_UDP,
    CAROL,
    CAROL_UDP,
    DAVE,
    PROXY,
    STAGES,
    TRUSTED,
    UPSTREAM,
    FakeTransports,
    PendingLookupStore,
    ProxyHarness,
)
from sipedge.testing import parse_message as parse
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request
from sipedge.transport import Destination


def our_via_branch(message: Request) -> str:
    """The branch of the top Via, which must be ours."""
    via = message.top_via
    assert (via.host, via.port) == (PROXY, 5060), via
    assert via.branch is not None and via.branch.startswith(BRANCH_PREFIX), via
    return via.branch


@implementer(IRequestStage)
class _Decide:
    """A stage that always decides the same."""

    name = "decide"

    def __init__(self, result: Any) -> None:
        self.result = result

    def process_request(self, context: Any) -> Any:
        return self.result


class ForwardingTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} forwarding a request to registered contacts."""

    def invite(self, *fields: str, **kw: Any) -> None:
        self.receive(request("INVITE", "sip:bob@example.com", *fields, **kw), ALICE)

    def test_trying(self) -> None:
        """
        If an INVITE is forwarded, L{ProxyCore} answers 100 Trying at once,
        without a To tag, before it forwards it.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        trying = self.sent_to(UPSTREAM)[0]
        assert isinstance(trying, Response), trying
        self.assertEqual(trying.status, 100)
        self.assertIsNone(trying.to_address.tag)
        self.assertEqual(self.statuses(UPSTREAM), [100])
        self.only(BOB, "INVITE")

    def test_no_trying_when_answered_at_once(self) -> None:
        """
        If the chain answers an INVITE itself as it arrives (here 404 from
        a location look-up that has its answer at once), the answer goes
        alone: 100 Trying is for a caller who would otherwise wait
        (RFC 3261 16.2).
        """
        self.invite()
        self.assertEqual(self.statuses(UPSTREAM), [404])

    def test_no_trying_for_non_invite(self) -> None:
        """If a non-INVITE arrives, L{ProxyCore} sends no 100 Trying."""
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [404])

    def test_forwarded_to_contact(self) -> None:
        """
        If an INVITE arrives for a registered AOR, L{ProxyCore} forwards it
        to the contact, with our Via (branch prefix C{z9hG4bK-se-}, rport)
        on top, Max-Forwards decremented, and one signed Record-Route when
        it leaves on the interface it came in on.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.assertEqual(forwarded.uri, "sip:bob@203.0.113.5:5060")
        our_via_branch(forwarded)
        self.assertTrue(forwarded.top_via.has_param("rport"))
        self.assertEqual([v.branch for v in forwarded.vias[1:]], ["z9hG4bK-alice-1"])
        self.assertEqual(forwarded.max_forwards, 69)
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.get_all("Record-Route"), (f"<sip:{PROXY}:5060;lr;se={mac}>",)
        )
        self.assertEqual(forwarded.headers.get("To"), "<sip:bob@example.com>")
        # The locator was asked for the contact's address.
        self.assertEqual(self.locator.located, ["203.0.113.5"])

    def test_max_forwards_added(self) -> None:
        """
        If a request has no Max-Forwards, L{ProxyCore} forwards it with
        Max-Forwards 70 (RFC 3261 16.6 item 3).
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite(max_forwards=None)
        self.assertEqual(self.only(BOB, "INVITE").max_forwards, 70)

    def test_double_record_route(self) -> None:
        """
        If the request leaves on another transport than it came in on,
        L{ProxyCore} record-routes twice: the outgoing interface on top,
        then the incoming one, both signed; and it uses the flow the contact
        registered on (TCP).
        """
        self.transports.connections.add(BOB_TCP)
        self.register("sip:bob@203.0.113.5:5060;transport=tcp", BOB_TCP)
        self.invite()
        [(forwarded, flow)] = [(m, f) for m, f in self.take() if isinstance(m, Request)]
        self.assertEqual(flow, BOB_TCP)
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"),
            [
                f"<sip:{PROXY}:5060;transport=tcp;lr;se={mac}>",
                f"<sip:{PROXY}:5060;lr;se={mac}>",
            ],
        )
        self.assertEqual(forwarded.top_via.transport, "TCP")
        self.assertEqual(self.locator.located, [])

    def test_record_route_tls_sip(self) -> None:
        """
        If an INVITE that is not SIPS leaves over TLS, L{ProxyCore}
        record-routes the TLS interface as C{sip:...;transport=tls}, not
        C{sips:}: RFC 3261 16.6 item 4 asks for SIPS only when the
        Request-URI or top Route is SIPS, and some user agents (baresip
        1.0) cannot follow a C{sips} route set.
        """
        self.transports.connections.add(BOB_TLS)
        self.register("sip:bob@203.0.113.5:5061;transport=tls", BOB_TLS)
        self.invite()
        [(forwarded, flow)] = [(m, f) for m, f in self.take() if isinstance(m, Request)]
        self.assertEqual(flow, BOB_TLS)
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"),
            [
                f"<sip:{PROXY}:5061;transport=tls;lr;se={mac}>",
                f"<sip:{PROXY}:5060;lr;se={mac}>",
            ],
        )

    def test_record_route_sips(self) -> None:
        """
        If the forwarded INVITE's Request-URI is SIPS, L{ProxyCore}
        record-routes its TLS interface with a SIPS URI (RFC 3261 16.6
        item 4).
        """
        self.transports.connections.add(BOB_TLS)
        self.register("sips:bob@203.0.113.5:5061", BOB_TLS)
        self.invite()
        [(forwarded, flow)] = [(m, f) for m, f in self.take() if isinstance(m, Request)]
        self.assertEqual(flow, BOB_TLS)
        mac = self.signer.mac("call-1@198.51.100.7")
        self.assertEqual(
            forwarded.headers.values("Record-Route"),
            [f"<sips:{PROXY}:5061;lr;se={mac}>", f"<sip:{PROXY}:5060;lr;se={mac}>"],
        )

    def test_nat_flow(self) -> None:
        """
        If a UDP contact names a private address other than where it
        registered from, L{ProxyCore} sends to the registration's source.
        """
        self.register("sip:bob@10.0.0.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.assertEqual(forwarded.uri, "sip:bob@10.0.0.5:5060")
        self.assertEqual(self.locator.located, [])

    def test_no_record_route_in_dialog(self) -> None:
        """
        If a request has a To tag (in a dialog), L{ProxyCore} does not add
        Record-Route.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite(to="<sip:bob@example.com>;tag=x")
        self.assertEqual(self.only(BOB, "INVITE").headers.get_all("Record-Route"), ())

    def test_responses_relayed(self) -> None:
        """
        If the callee answers 100, 180 and 200, L{ProxyCore} relays 180
        and 200 upstream (not the 100: it sent its own) with its own Via
        removed and the rest untouched.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.take()
        self.receive(answer(forwarded, 100), BOB_UDP)
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [180, 200])
        ringing, ok = self.sent_to(UPSTREAM)
        for response in (ringing, ok):
            self.assertEqual([v.branch for v in response.vias], ["z9hG4bK-alice-1"])
            self.assertEqual(response.to_address.tag, "bob-tag")
            self.assertEqual(
                response.headers.get_all("Record-Route"),
                forwarded.headers.get_all("Record-Route"),
            )
        self.assertEqual(ok.headers.get("Contact"), "<sip:bob@203.0.113.5:5060>")

    def dialog(self) -> tuple[Request, Response]:
        """An INVITE forwarded to Bob and answered 200; the 200 upstream."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        ok = self.only(UPSTREAM, 200)
        self.take()
        self.locator.located.clear()
        return forwarded, ok

    def test_ack_for_2xx(self) -> None:
        """
        If the caller ACKs a 2xx along our signed Record-Route, L{ProxyCore}
        forwards the ACK statelessly: our Route removed, our Via added,
        Max-Forwards decremented; and no transaction is created for it.
        """
        forwarded, ok = self.dialog()
        [rr] = ok.headers.get_all("Record-Route")
        ack = request(
            "ACK",
            "sip:bob@203.0.113.5:5060",
            f"Route: {rr}",
            branch="z9hG4bK-alice-ack",
            to="<sip:bob@example.com>;tag=bob-tag",
        )
        self.receive(ack, ALICE)
        out = self.only(BOB, "ACK")
        self.assertEqual(out.uri, "sip:bob@203.0.113.5:5060")
        self.assertEqual(out.headers.get_all("Route"), ())
        self.assertEqual(out.max_forwards, 69)
        branch = our_via_branch(out)
        self.assertNotEqual(branch, forwarded.top_via.branch)
        self.assertEqual([v.branch for v in out.vias[1:]], ["z9hG4bK-alice-ack"])
        self.assertEqual(len(self.core.transactions.client_transactions), 1)  # the INVITE's
        # A retransmitted ACK goes out again, with the same branch.
        self.take()
        self.receive(ack, ALICE)
        self.assertEqual(our_via_branch(self.only(BOB, "ACK")), branch)

    def test_ack_forged_route(self) -> None:
        """
        If an ACK carries our address as Route without our signature and
        comes from an untrusted source, L{ProxyCore} does not forward it,
        and does not answer it either.
        """
        self.dialog()
        ack = request(
            "ACK",
            "sip:victim@203.0.113.99:5060",
            f"Route: <sip:{PROXY}:5060;lr;se=00000000000000000000>",
            branch="z9hG4bK-forged-ack",
            to="<sip:bob@example.com>;tag=bob-tag",
        )
        self.receive(ack, ALICE)
        self.assertEqual(self.take(), [])

    def test_bye_in_dialog(self) -> None:
        """
        If the callee sends a BYE along the signed route set, L{ProxyCore}
        relays it to the caller and relays the caller's 200 back.
        """
        _, ok = self.dialog()
        [rr] = ok.headers.get_all("Record-Route")
        bye = request(
            "BYE",
            "sip:alice@198.51.100.7:5060",
            f"Route: {rr}",
            branch="z9hG4bK-bob-bye",
            via="203.0.113.5:5060",
            from_="<sip:bob@example.com>;tag=bob-tag",
            to="<sip:alice@example.com>;tag=alice-tag",
            cseq=5,
        )
        self.receive(bye, BOB_UDP)
        out = self.only(UPSTREAM, "BYE")
        self.assertEqual(out.headers.get_all("Route"), ())
        self.assertEqual(out.headers.get_all("Record-Route"), ())
        self.assertEqual(out.max_forwards, 69)
        self.receive(answer(out, 200, to_tag=None), ALICE)
        reply = self.only(BOB, 200)
        self.assertEqual([v.branch for v in reply.vias], ["z9hG4bK-bob-bye"])

    def test_bye_forged_route(self) -> None:
        """
        If a BYE from an untrusted source carries an unsigned Route to us
        and a foreign Request-URI, L{ProxyCore} answers 403 and sends
        nothing downstream (no open relay).
        """
        self.dialog()
        bye = request(
            "BYE",
            "sip:victim@203.0.113.99:5060",
            f"Route: <sip:{PROXY}:5060;lr>",
            branch="z9hG4bK-bob-bye",
            via="203.0.113.5:5060",
            from_="<sip:bob@example.com>;tag=bob-tag",
            to="<sip:alice@example.com>;tag=alice-tag",
            cseq=5,
        )
        self.receive(bye, BOB_UDP)
        [(message, flow)] = self.take()
        assert isinstance(message, Response), message
        self.assertEqual((message.status, flow.remote), (403, BOB))
        self.assertEqual(self.locator.located, [])

    def test_relay_denied(self) -> None:
        """
        If an untrusted source sends an INVITE for a domain that is not
        ours, L{ProxyCore} answers 403 (with no 100 Trying before it: the
        decision was immediate) and sends nothing downstream.
        """
        self.receive(request("INVITE", "sip:bob@other.example.net"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [403])
        self.assertEqual([f.remote for _, f in self.take()], [UPSTREAM])
        self.assertEqual(self.locator.located, [])

    def test_relay_trusted(self) -> None:
        """
        If a trusted source sends a request for a foreign domain,
        L{ProxyCore} forwards it to where the locator says.
        """
        self.locator.add("other.example.net", ("UDP", "203.0.113.10", 5060))
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        out = self.only(("203.0.113.10", 5060), "MESSAGE")
        self.assertEqual(out.uri, "sip:bob@other.example.net")
        self.assertEqual(out.headers.get_all("Record-Route"), ())
        self.receive(answer(out, 202, to_tag="x"), Flow("UDP", PROXY, 5060, "203.0.113.10", 5060))
        self.assertEqual(self.statuses(TRUSTED.remote), [202])

    def test_loop(self) -> None:
        """
        If a request we forwarded comes back unchanged, L{ProxyCore}
        answers 482.
        """
        self.locator.add("other.example.net", ("UDP", "10.9.9.9", 5060))
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        out = self.only(("10.9.9.9", 5060), "MESSAGE")
        back = Flow("UDP", PROXY, 5060, "10.9.9.9", 5060)
        self.receive(out, back)
        self.assertEqual(self.statuses(back.remote), [482])
        self.receive(answer(out, 482, to_tag="x"), back)
        self.assertEqual(self.statuses(TRUSTED.remote), [482])

    def test_spiral_through_application_server(self) -> None:
        """
        If a preloaded Route takes a request to an application server that
        routes it back to us unchanged but for the Route, L{ProxyCore} sees
        a spiral, not a loop, and forwards it to the AOR's contact.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        server = Flow("UDP", PROXY, 5060, "10.5.5.5", 5060)
        self.receive(
            request(
                "MESSAGE",
                "sip:bob@example.com",
                f"Route: <sip:{PROXY}:5060;lr>, <sip:10.5.5.5;lr>",
            ),
            TRUSTED,
        )
        out = self.only(server.remote, "MESSAGE")
        self.assertEqual(out.headers.get_all("Route"), ("<sip:10.5.5.5;lr>",))
        back = out.with_headers(
            out.headers.replaced("Route", f"<sip:{PROXY}:5060;lr>").prepended(
                "Via", "SIP/2.0/UDP 10.5.5.5:5060;branch=z9hG4bK-as-1"
            )
        )
        self.receive(back, server)
        self.assertEqual(self.statuses(server.remote), [])
        spiralled = self.only(BOB, "MESSAGE")
        self.assertEqual(len(spiralled.vias), 4)
        self.receive(answer(spiralled, 200), BOB_UDP)
        self.receive(answer(out, 200), server)
        self.assertEqual(self.statuses(TRUSTED.remote), [200])

    def test_decision_bug(self) -> None:
        """
        If carrying out the chain's decision raises, L{ProxyCore} answers
        500 and logs the failure: the request is not left unanswered.
        """

        def broken(context: RequestContext, server: Any, targets: tuple[Target, ...]) -> None:
            raise RuntimeError("bug")

        self.core.forking.forward = broken  # type: ignore[method-assign]
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [500])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_merged_request(self) -> None:
        """
        If the chain has no loop detection and a request we forward comes
        back unchanged, L{ProxyCore} answers it 482 (it cannot forward the
        same request on the same branch twice) instead of failing.
        """
        self.core.chain = build_chain(
            [name for name in STAGES if name != "loop-detect"], {}, self.services
        )
        self.locator.add("other.example.net", ("UDP", "10.9.9.9", 5060))
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        out = self.only(("10.9.9.9", 5060), "MESSAGE")
        back = Flow("UDP", PROXY, 5060, "10.9.9.9", 5060)
        self.receive(out, back)
        self.assertEqual(self.statuses(back.remote), [482])
        self.receive(answer(out, 482, to_tag="x"), back)
        self.assertEqual(self.statuses(TRUSTED.remote), [482])

    def test_retransmission_absorbed(self) -> None:
        """
        If the caller retransmits an INVITE, L{ProxyCore} does not forward
        it again; the server transaction answers with the last provisional.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        self.invite()
        self.only(BOB, "INVITE")
        self.assertEqual(self.statuses(UPSTREAM), [100])
        self.assertEqual(len(self.sent_to(UPSTREAM, 100)), 2)
        self.assertEqual(self.core.stats["requests"], 2)  # the REGISTER too

    def test_drop(self) -> None:
        """
        If the chain drops a request, L{ProxyCore} sends nothing and ends
        its server transaction.
        """
        self.core.chain = RequestChain([_Decide(Drop("flood"))])
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.take(), [])
        self.assertEqual(dict(self.core.transactions.server_transactions), {})
        self.assertEqual(self.core.stats["dropped"], 1)

    def test_observers(self) -> None:
        """
        If observers are registered, L{ProxyCore} tells each of every
        decision of the chain, with the request's context; an observer that
        raises is logged and does not stop the request.
        """
        seen: list[tuple[str, object]] = []

        class Recorder:
            def request_decided(self, context: RequestContext, result: object) -> None:
                seen.append((context.request.method, result))

        class Broken:
            def request_decided(self, context: RequestContext, result: object) -> None:
                raise RuntimeError("observer bug")

        self.core.observers[:] = [Broken(), Recorder()]
        self.core.chain = RequestChain([_Decide(Respond(404))])
        self.receive(request("MESSAGE", "sip:nobody@example.com"), ALICE)
        self.assertEqual(seen, [("MESSAGE", Respond(404))])
        self.assertEqual(self.statuses(UPSTREAM), [404])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_dropped_invite_gets_no_trying(self) -> None:
        """
        If the chain drops an INVITE (a flood, a scanner), L{ProxyCore}
        sends no 100 Trying either: nothing at all goes back.
        """
        self.core.chain = RequestChain([_Decide(Drop("scanner"))])
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.take(), [])
        self.assertEqual(dict(self.core.transactions.server_transactions), {})

    def test_respond_with_body(self) -> None:
        """
        If the chain answers with headers and a body, L{ProxyCore} sends
        them in its response.
        """
        self.core.chain = RequestChain(
            [_Decide(Respond(200, "Fine", (("Content-Type", "text/plain"),), b"hello"))]
        )
        self.receive(request("OPTIONS", "sip:example.com"), ALICE)
        [response] = self.sent_to(UPSTREAM)
        assert isinstance(response, Response), response
        self.assertEqual((response.status, response.reason), (200, "Fine"))
        self.assertEqual(response.body, b"hello")
        self.assertEqual(response.headers.get("Content-Type"), "text/plain")
        self.assertIsNotNone(response.to_address.tag)

    def test_unknown_user(self) -> None:
        """If an AOR of ours has no binding, L{ProxyCore} answers 404."""
        self.receive(request("MESSAGE", "sip:nobody@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [404])
        self.assertEqual(self.locator.located, [])

    def test_ack_for_failure_absorbed(self) -> None:
        """
        If the caller ACKs a non-2xx final response, the ACK is absorbed by
        the server transaction: nothing goes downstream.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 486), BOB_UDP)
        busy = self.only(UPSTREAM, 486)
        self.take()
        ack = request("ACK", "sip:bob@example.com", to=busy.headers.get("To") or "")
        self.receive(ack, ALICE)
        self.assertEqual(self.take(), [])

    def test_connection_gone(self) -> None:
        """
        If the TCP connection a contact registered over is gone,
        L{ProxyCore} sends to what the contact resolves to instead.
        """
        self.register("sip:bob@203.0.113.5:5070;transport=tcp", BOB_TCP)
        self.invite()
        [flow] = [f for m, f in self.take() if isinstance(m, Request)]
        self.assertEqual(flow, Flow("TCP", PROXY, 5060, "203.0.113.5", 5070))
        self.assertEqual(self.locator.located, ["203.0.113.5"])


class ForkingTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} forking: parallel, serial, best response."""

    def fork(self, *contacts: tuple[Flow, float | None], method: str = "INVITE") -> list[Request]:
        """
        Register Bob's contacts (one per flow, at the flow's address), send
        a request for Bob, and return the requests forwarded, per contact.
        """
        for i, (flow, q) in enumerate(contacts):
            self.register(
                f"sip:bob@{flow.remote_host}:{flow.remote_port}", flow, q=q, call_id=f"reg-{i}"
            )
        self.receive(request(method, "sip:bob@example.com"), ALICE)
        return [m for flow, _ in contacts for m in self.sent_to(flow.remote, method)]

    def final_upstream(self) -> list[int]:
        return [s for s in self.statuses(UPSTREAM) if s >= 200]

    def test_parallel(self) -> None:
        """
        If two contacts have the same q, L{ProxyCore} forwards to both at
        once, on branches that differ.
        """
        to_bob, to_carol = self.fork((BOB_UDP, None), (CAROL_UDP, None))
        self.assertNotEqual(our_via_branch(to_bob), our_via_branch(to_carol))
        self.receive(answer(to_bob, 486), BOB_UDP)
        self.assertEqual(self.final_upstream(), [])
        self.receive(answer(to_carol, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_upstream(), [200])
        self.assertEqual(self.only(UPSTREAM, 200).to_address.tag, "carol")

    def test_parallel_cancel_others(self) -> None:
        """
        If one branch of a parallel fork answers 2xx, L{ProxyCore} sends it
        upstream and CANCELs the branches that are still ringing; their
        487 does not go upstream.
        """
        a, b, c = self.fork(
            (BOB_UDP, None), (CAROL_UDP, None), (Flow("UDP", PROXY, 5060, *DAVE), None)
        )
        dave = Flow("UDP", PROXY, 5060, *DAVE)
        self.receive(answer(a, 486), BOB_UDP)
        self.receive(answer(b, 180, to_tag="carol"), CAROL_UDP)
        self.receive(answer(c, 180, to_tag="dave"), dave)
        self.take()
        self.receive(answer(b, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [200])
        cancel = self.only(DAVE, "CANCEL")
        self.assertEqual(cancel.top_via, c.top_via)
        self.assertEqual(len(cancel.vias), 1)
        self.assertEqual(cancel.uri, c.uri)
        self.assertEqual(cancel.headers.get("CSeq"), "1 CANCEL")
        self.assertEqual(cancel.headers.get("To"), c.headers.get("To"))
        self.assertEqual(self.sent_to(BOB, "CANCEL") + self.sent_to(CAROL, "CANCEL"), [])
        self.take()
        self.receive(answer(cancel, 200, to_tag="dave"), dave)
        self.receive(answer(c, 487, to_tag="dave"), dave)
        self.assertEqual(self.statuses(UPSTREAM), [])
        self.only(DAVE, "ACK")

    def test_parallel_cancel_waits_for_provisional(self) -> None:
        """
        If a branch to be cancelled has had no provisional response,
        L{ProxyCore} waits for one before it sends the CANCEL (RFC 3261 9.1).
        """
        a, b = self.fork((BOB_UDP, None), (CAROL_UDP, None))
        self.receive(answer(a, 200), BOB_UDP)
        self.assertEqual(self.sent_to(CAROL, "CANCEL"), [])
        self.receive(answer(b, 180, to_tag="carol"), CAROL_UDP)
        self.only(CAROL, "CANCEL")
        # The 180 of a branch being cancelled after the 2xx stays here.
        self.assertEqual(self.statuses(UPSTREAM), [100, 200])
        self.receive(answer(b, 487, to_tag="carol"), CAROL_UDP)

    def test_two_2xx(self) -> None:
        """
        If two branches of an INVITE answer 2xx, L{ProxyCore} sends both
        upstream (RFC 3261 16.7 step 5).
        """
        a, b = self.fork((BOB_UDP, None), (CAROL_UDP, None))
        self.receive(answer(a, 180), BOB_UDP)
        self.receive(answer(b, 180, to_tag="carol"), CAROL_UDP)
        self.receive(answer(a, 200), BOB_UDP)
        self.receive(answer(b, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_upstream(), [200, 200])

    def test_serial(self) -> None:
        """
        If contacts have different q, L{ProxyCore} tries the highest first,
        and the next group only after a final non-2xx from the first.
        """
        [first] = self.fork((BOB_UDP, 1.0), (CAROL_UDP, 0.5))
        self.assertEqual(self.sent_to(CAROL), [])
        self.receive(answer(first, 480), BOB_UDP)
        second = self.only(CAROL, "INVITE")
        self.assertNotEqual(our_via_branch(second), our_via_branch(first))
        self.assertEqual(self.final_upstream(), [])
        self.receive(answer(second, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_upstream(), [200])

    def test_serial_exhausted(self) -> None:
        """
        If every group of a serial fork fails, L{ProxyCore} sends the best
        of all the responses upstream.
        """
        [first] = self.fork((BOB_UDP, 1.0), (CAROL_UDP, 0.5))
        self.receive(answer(first, 500), BOB_UDP)
        self.receive(answer(self.only(CAROL, "INVITE"), 486, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_upstream(), [486])

    def test_serial_6xx(self) -> None:
        """
        If a branch answers 6xx, L{ProxyCore} tries no further group and
        sends the 6xx upstream.
        """
        [first] = self.fork((BOB_UDP, 1.0), (CAROL_UDP, 0.5))
        self.receive(answer(first, 603), BOB_UDP)
        self.assertEqual(self.sent_to(CAROL), [])
        self.assertEqual(self.final_upstream(), [603])

    def test_6xx_cancels(self) -> None:
        """
        If one branch of a parallel fork answers 6xx, L{ProxyCore} CANCELs
        the others and sends the 6xx upstream, not their 487.
        """
        a, b = self.fork((BOB_UDP, None), (CAROL_UDP, None))
        self.receive(answer(b, 183, to_tag="carol"), CAROL_UDP)
        self.receive(answer(a, 600), BOB_UDP)
        cancel = self.only(CAROL, "CANCEL")
        self.assertEqual(self.final_upstream(), [])
        self.receive(answer(cancel, 200, to_tag="carol"), CAROL_UDP)
        self.receive(answer(b, 487, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_upstream(), [600])

    def test_best_4xx_over_5xx(self) -> None:
        """If branches answer 500 and 486, L{ProxyCore} sends the 486 upstream."""
        a, b = self.fork((BOB_UDP, None), (CAROL_UDP, None))
        self.receive(answer(a, 500), BOB_UDP)
        self.receive(answer(b, 486, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_upstream(), [486])

    def test_challenges_merged(self) -> None:
        """
        If branches answer 401 and 407, L{ProxyCore} sends one of them with
        every challenge of both (RFC 3261 16.7 step 7).
        """
        a, b = self.fork((BOB_UDP, None), (CAROL_UDP, None))
        self.receive(answer(a, 401, ("WWW-Authenticate", 'Digest realm="bob"')), BOB_UDP)
        self.receive(
            answer(b, 407, ("Proxy-Authenticate", 'Digest realm="carol"'), to_tag="carol"),
            CAROL_UDP,
        )
        [final] = [m for m in self.sent_to(UPSTREAM) if isinstance(m, Response) and m.status >= 200]
        self.assertIn(final.status, (401, 407))
        self.assertEqual(final.headers.get_all("WWW-Authenticate"), ('Digest realm="bob"',))
        self.assertEqual(final.headers.get_all("Proxy-Authenticate"), ('Digest realm="carol"',))
        self.assertEqual([v.branch for v in final.vias], ["z9hG4bK-alice-1"])

    def test_503_becomes_500(self) -> None:
        """
        If the only answer is a 503, L{ProxyCore} sends a 500 upstream
        (RFC 3261 16.7 step 6).
        """
        [a] = self.fork((BOB_UDP, None))
        self.receive(answer(a, 503), BOB_UDP)
        self.assertEqual(self.final_upstream(), [500])

    def test_non_invite_first_2xx(self) -> None:
        """
        If two branches of a non-INVITE answer 2xx, L{ProxyCore} sends the
        first upstream, and only that one.
        """
        a, b = self.fork((BOB_UDP, None), (CAROL_UDP, None), method="MESSAGE")
        self.receive(answer(a, 200), BOB_UDP)
        self.receive(answer(b, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [200])
        self.assertEqual(self.sent_to(BOB, "CANCEL") + self.sent_to(CAROL, "CANCEL"), [])


class CancelTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} and CANCEL (RFC 3261 16.10)."""

    def setUp(self) -> None:
        super().setUp()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.forwarded = self.only(BOB, "INVITE")
        self.take()

    def cancel(self, branch: str = "z9hG4bK-alice-1") -> Request:
        return request("CANCEL", "sip:bob@example.com", branch=branch)

    def test_cancel(self) -> None:
        """
        If the caller CANCELs a ringing INVITE, L{ProxyCore} answers the
        CANCEL with 200, CANCELs the branch, and sends the callee's 487
        upstream.
        """
        self.receive(answer(self.forwarded, 180), BOB_UDP)
        self.take()
        self.receive(self.cancel(), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [200])
        self.assertEqual(self.only(UPSTREAM, 200).cseq.method, "CANCEL")
        cancel = self.only(BOB, "CANCEL")
        self.assertEqual(cancel.top_via.branch, self.forwarded.top_via.branch)
        self.take()
        self.receive(answer(cancel, 200), BOB_UDP)
        self.receive(answer(self.forwarded, 487), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [487])
        self.assertEqual(self.only(UPSTREAM, 487).cseq.method, "INVITE")
        self.only(BOB, "ACK")

    def test_cancel_before_provisional(self) -> None:
        """
        If the caller CANCELs before the callee sent a provisional response,
        L{ProxyCore} sends the CANCEL downstream once one arrives.
        """
        self.receive(self.cancel(), ALICE)
        self.assertEqual(self.sent_to(BOB, "CANCEL"), [])
        self.receive(answer(self.forwarded, 180), BOB_UDP)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.receive(answer(self.forwarded, 487), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [200, 180, 487])

    def test_cancel_no_provisional_ever(self) -> None:
        """
        If a CANCELled branch never answers at all, L{ProxyCore} sends 487
        upstream when its client transaction times out.
        """
        self.receive(self.cancel(), ALICE)
        self.clock.pump([0.5] * 66)
        self.assertEqual(self.statuses(UPSTREAM), [200, 487])

    def test_cancel_no_final(self) -> None:
        """
        If a CANCELled branch never sends a final response, L{ProxyCore}
        gives up on it after 64*T1 (RFC 3261 9.1) and sends 487 upstream.
        """
        self.receive(answer(self.forwarded, 180), BOB_UDP)
        self.receive(self.cancel(), ALICE)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.take()
        self.clock.pump([0.5] * 66)
        self.assertEqual(self.statuses(UPSTREAM), [487])

    def test_cancel_after_2xx(self) -> None:
        """
        If a CANCEL arrives after the 2xx went upstream, L{ProxyCore}
        answers it 200 and changes nothing else.
        """
        self.receive(answer(self.forwarded, 200), BOB_UDP)
        self.take()
        self.receive(self.cancel(), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [200])
        self.assertEqual(self.sent_to(BOB), [])

    def test_cancel_unknown(self) -> None:
        """If a CANCEL matches no INVITE, L{ProxyCore} answers 481."""
        self.receive(self.cancel(branch="z9hG4bK-other"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [481])
        self.assertEqual(self.sent_to(BOB), [])
        self.receive(answer(self.forwarded, 486), BOB_UDP)


class PendingChainTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} while the chain waits on a Deferred."""

    store: PendingLookupStore

    def setUp(self) -> None:
        super().setUp()
        store = PendingLookupStore()
        self.store = store
        services = StageServices(
            clock=self.clock,
            local=self.services.local,
            trusted=self.services.trusted,
            location=store,
            registrar=Registrar(store, self.clock),
            signer=self.signer,
        )
        self.core.services = services
        self.core.chain = build_chain(STAGES, {}, services)
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        store.hold = True

    def test_cancel_during_lookup(self) -> None:
        """
        If the caller CANCELs while the chain is still deciding,
        L{ProxyCore} answers 200 and 487, and forwards nothing once the
        chain decides.
        """
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 200, 487])
        self.store.hold = False
        [d] = self.store.lookups
        d.callback(self.successResultOf(self.store.lookup("sip:bob@example.com", 1000)))
        self.assertEqual(self.sent_to(BOB), [])

    def test_cancel_during_lookup_told(self) -> None:
        """
        If the caller CANCELs while the chain is still deciding, the 487
        passes the response chain at once (with the INVITE's context), and
        the observers are told, once the chain has decided, that the
        INVITE was answered 487 (not what the chain decided).
        """
        watcher = _Watcher()
        self.core.chain = RequestChain([watcher, *self.core.chain.stages])
        decided: list[tuple[str, Any]] = []

        class Recorder:
            def request_decided(self, context: Any, result: Any) -> None:
                decided.append((context.request.method, result))

        self.core.observers.append(Recorder())
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        self.assertEqual(watcher.seen, [("INVITE", 487)])
        self.assertEqual(self.only(UPSTREAM, 487).headers.get("X-Watched"), "yes")
        self.assertEqual(decided, [])
        self.store.hold = False
        [d] = self.store.lookups
        d.callback(self.successResultOf(self.store.lookup("sip:bob@example.com", 1000)))
        self.assertEqual(decided, [("INVITE", Respond(487))])
        self.assertEqual(self.sent_to(BOB), [])
        self.assertEqual(self.core.deciding, {})
        self.assertEqual(self.core.cancelled_early, set())

    def test_cancel_during_lookup_async_response_chain(self) -> None:
        """
        If a response stage answers the early 487 with a Deferred, the 487
        goes upstream once it fires, as the stage changed it.
        """
        pending: list[Deferred[Any]] = []

        @implementer(IRequestStage, IResponseStage)
        class Later:
            name = "later"

            def process_request(self, context: Any) -> Any:
                from sipedge.pipeline import Continue

                return Continue()

            def process_response(self, context: Any, response: Response) -> Any:
                d: Deferred[Any] = Deferred()
                pending.append(d)
                return d.addCallback(
                    lambda _: response.with_headers(response.headers.added("X-Later", "1"))
                )

        self.core.chain = RequestChain([Later(), *self.core.chain.stages])
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 200])
        [d] = pending
        d.callback(None)
        self.assertEqual(self.only(UPSTREAM, 487).headers.get("X-Later"), "1")
        self.store.hold = False
        [lookup] = self.store.lookups
        lookup.callback(self.successResultOf(self.store.lookup("sip:bob@example.com", 1000)))
        self.assertEqual(self.sent_to(BOB), [])

    def test_decided_without_cancel(self) -> None:
        """
        A chain that decides later without a CANCEL tells the observers
        what it decided, and nothing is left of the pending decision.
        """
        decided: list[Any] = []

        class Recorder:
            def request_decided(self, context: Any, result: Any) -> None:
                decided.append(result)

        self.core.observers.append(Recorder())
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        self.assertEqual(len(self.core.deciding), 1)
        self.store.hold = False
        [d] = self.store.lookups
        d.callback(self.successResultOf(self.store.lookup("sip:bob@example.com", 1000)))
        self.assertEqual([type(r).__name__ for r in decided], ["Forward"])
        self.assertEqual(self.core.deciding, {})
        self.receive(answer(self.only(BOB, "MESSAGE"), 200), BOB_UDP)

    def test_lookup_fails(self) -> None:
        """
        If a stage's Deferred fails, L{ProxyCore} answers 500 and logs the
        failure.
        """
        self.receive(request("MESSAGE", "sip:bob@example.com"), ALICE)
        [d] = self.store.lookups
        d.errback(RuntimeError("database gone"))
        self.assertEqual(self.statuses(UPSTREAM), [500])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class TimerCTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore}'s Timer C (RFC 3261 16.8)."""

    timer_c = 20.0

    def setUp(self) -> None:
        super().setUp()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)

    def invite(self) -> Request:
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "INVITE")
        self.take()
        return forwarded

    def test_cancel_on_expiry(self) -> None:
        """
        If Timer C fires on a branch that had a provisional response,
        L{ProxyCore} CANCELs it and sends the 487 upstream.
        """
        forwarded = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.clock.advance(19)
        self.assertEqual(self.sent_to(BOB, "CANCEL"), [])
        self.receive(answer(forwarded, 183), BOB_UDP)
        self.clock.advance(19)  # reset by the 183
        self.assertEqual(self.sent_to(BOB, "CANCEL"), [])
        self.clock.advance(1)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.receive(answer(forwarded, 487), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [180, 183, 487])

    def test_408_without_provisional(self) -> None:
        """
        If Timer C fires on a branch with no provisional response,
        L{ProxyCore} acts as if it answered 408: 408 upstream, the client
        transaction ended, no CANCEL.
        """
        self.invite()
        self.clock.advance(20)
        self.assertEqual(self.statuses(UPSTREAM), [408])
        self.assertEqual(self.sent_to(BOB, "CANCEL"), [])
        self.assertEqual(dict(self.core.transactions.client_transactions), {})

    def test_serial_group_gets_full_timer(self) -> None:
        """
        If a serial fork moves to its next group, L{ProxyCore} gives the new
        branch a full Timer C of its own.
        """
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, q=0.5, call_id="reg-2")
        forwarded = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.clock.advance(15)
        self.receive(answer(forwarded, 486), BOB_UDP)
        second = self.only(CAROL, "INVITE")
        self.take()
        self.receive(answer(second, 180, to_tag="carol"), CAROL_UDP)
        self.clock.advance(10)
        self.assertEqual(self.sent_to(CAROL, "CANCEL"), [])
        self.receive(answer(second, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [180, 200])

    def test_serial_group_without_provisional(self) -> None:
        """
        If the next group of a serial fork starts shortly before Timer C
        would have fired, its branch is not failed early.
        """
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, q=0.5, call_id="reg-2")
        forwarded = self.invite()
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.clock.advance(19)
        self.receive(answer(forwarded, 486), BOB_UDP)
        second = self.only(CAROL, "INVITE")
        self.clock.advance(5)
        self.assertEqual(self.final_statuses(), [])
        self.receive(answer(second, 200, to_tag="carol"), CAROL_UDP)
        self.assertEqual(self.final_statuses(), [200])

    def final_statuses(self) -> list[int]:
        return [s for s in self.statuses(UPSTREAM) if s >= 200]


class FailoverTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} timeouts and fail-over (RFC 3263 4.3)."""

    FIRST = ("203.0.113.10", 5060)
    SECOND = ("203.0.113.11", 5060)

    def setUp(self) -> None:
        super().setUp()
        self.locator.add("other.example.net", ("UDP", *self.FIRST), ("UDP", *self.SECOND))

    def flow(self, remote: tuple[str, int]) -> Flow:
        return Flow("UDP", PROXY, 5060, *remote)

    def send(self, method: str = "INVITE") -> Request:
        self.receive(request(method, "sip:bob@other.example.net"), TRUSTED)
        return self.only(self.FIRST, method)

    def finals(self) -> list[int]:
        return [s for s in self.statuses(TRUSTED.remote) if s >= 200]

    def test_timeout_408(self) -> None:
        """
        If an INVITE's only destination never answers, L{ProxyCore} sends
        408 upstream when Timer B fires (64*T1, 32 s).
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        self.clock.pump([0.5] * 63)
        self.assertEqual(self.statuses(UPSTREAM), [100])
        self.clock.advance(0.5)
        self.assertEqual(self.statuses(UPSTREAM), [100, 408])
        self.assertEqual(dict(self.core.transactions.client_transactions), {})

    def test_failover_on_503(self) -> None:
        """
        If the first destination answers 503, L{ProxyCore} sends the
        request to the next one, on a new branch, and relays its answer.
        """
        first = self.send()
        self.receive(answer(first, 503), self.flow(self.FIRST))
        second = self.only(self.SECOND, "INVITE")
        self.assertNotEqual(our_via_branch(second), our_via_branch(first))
        self.assertEqual(self.finals(), [])
        self.receive(answer(second, 200), self.flow(self.SECOND))
        self.assertEqual(self.finals(), [200])

    def test_failover_on_timeout(self) -> None:
        """
        If the first destination never answers, L{ProxyCore} tries the next
        when the client transaction times out.
        """
        self.send("OPTIONS")
        self.clock.pump([0.5] * 64)
        second = self.only(self.SECOND, "OPTIONS")
        self.receive(answer(second, 200), self.flow(self.SECOND))
        self.assertEqual(self.finals(), [200])

    def test_failover_exhausted(self) -> None:
        """
        If every destination answers 503, L{ProxyCore} sends 500 upstream.
        """
        first = self.send()
        self.receive(answer(first, 503), self.flow(self.FIRST))
        second = self.only(self.SECOND, "INVITE")
        self.receive(answer(second, 503), self.flow(self.SECOND))
        self.assertEqual(self.finals(), [500])

    def test_no_failover_on_486(self) -> None:
        """If the first destination answers 486, L{ProxyCore} relays it."""
        first = self.send()
        self.receive(answer(first, 486), self.flow(self.FIRST))
        self.assertEqual(self.sent_to(self.SECOND), [])
        self.assertEqual(self.finals(), [486])

    def test_unreachable_skipped(self) -> None:
        """
        If the transport manager has no way to reach a destination,
        L{ProxyCore} goes on to the next.
        """
        self.transports.unreachable.add(("UDP", self.FIRST[0]))
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        self.only(self.SECOND, "MESSAGE")

    def test_all_unreachable(self) -> None:
        """
        If no destination can be reached, L{ProxyCore} answers at once
        (a 503 from the branch, sent as 500) instead of leaving the request
        unanswered.
        """
        self.transports.unreachable.update({("UDP", self.FIRST[0]), ("UDP", self.SECOND[0])})
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        self.assertEqual(self.finals(), [500])

    def test_no_address_family(self) -> None:
        """
        If a destination is of an address family we have no listener for
        (so no address for our Via), L{ProxyCore} goes on to the next.
        """
        self.locator.add("v6.example.net", ("UDP", "2001:db8::1", 5060), ("UDP", *self.SECOND))
        self.receive(request("MESSAGE", "sip:bob@v6.example.net"), TRUSTED)
        self.only(self.SECOND, "MESSAGE")

    def test_no_address_family_at_all(self) -> None:
        """
        If the only destination is of an address family we have no
        listener for, L{ProxyCore} answers 500.
        """
        self.locator.add("v6.example.net", ("UDP", "2001:db8::1", 5060))
        self.receive(request("MESSAGE", "sip:bob@v6.example.net"), TRUSTED)
        self.assertEqual(self.finals(), [500])

    def test_not_found(self) -> None:
        """
        If the next hop cannot be resolved, L{ProxyCore} answers 500 (a
        503 from the branch).
        """
        self.receive(request("MESSAGE", "sip:bob@nowhere.invalid"), TRUSTED)
        self.assertEqual(self.finals(), [500])

    def test_locate_pending_then_cancel(self) -> None:
        """
        If the caller CANCELs while the next hop is being located,
        L{ProxyCore} answers 487 at once and sends nothing when the lookup
        ends.
        """
        d: Deferred[list[Destination]] = Deferred()
        self.locator.pending["slow.example.net"] = d
        self.receive(request("INVITE", "sip:bob@slow.example.net"), TRUSTED)
        self.receive(request("CANCEL", "sip:bob@slow.example.net"), TRUSTED)
        self.assertEqual(self.statuses(TRUSTED.remote), [100, 200, 487])
        d.callback([Destination("UDP", *self.FIRST, "slow", "slow")])
        self.assertEqual(self.sent_to(self.FIRST), [])

    def test_send_fails_at_once(self) -> None:
        """
        If sending to the first destination raises at once, L{ProxyCore}
        fails over to the next.
        """

        def send(message: Message, flow: Flow, **kw: Any) -> None:
            if flow.remote == self.FIRST:
                raise TransportError("network unreachable")
            FakeTransports.send(self.transports, message, flow, **kw)

        self.transports.send = send  # type: ignore[method-assign]
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        second = self.only(self.SECOND, "MESSAGE")
        self.receive(answer(second, 200), self.flow(self.SECOND))
        self.assertEqual(self.finals(), [200])

    def test_send_fails_at_once_everywhere(self) -> None:
        """
        If sending raises at once for every destination, L{ProxyCore}
        answers 500.
        """

        def send(message: Message, flow: Flow, **kw: Any) -> None:
            if isinstance(message, Request):
                raise TransportError("network unreachable")
            FakeTransports.send(self.transports, message, flow, **kw)

        self.transports.send = send  # type: ignore[method-assign]
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        self.assertEqual(self.finals(), [500])

    def test_connect_fails(self) -> None:
        """
        If a connection cannot be opened (C{send}'s Deferred fails),
        L{ProxyCore} fails over to the next destination.
        """
        self.transports.fail_send.add(self.FIRST)
        self.receive(request("MESSAGE", "sip:bob@other.example.net"), TRUSTED)
        second = self.only(self.SECOND, "MESSAGE")
        self.receive(answer(second, 200), self.flow(self.SECOND))
        self.assertEqual(self.finals(), [200])


class StatelessTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} forwarding stray responses (RFC 3261 16.7)."""

    def stray(self, status: int, second_via: str = "198.51.100.7:5060;rport=5061") -> Response:
        message = parse(
            f"""
SIP/2.0 {status} Whatever
Via: SIP/2.0/UDP {PROXY}:5060;branch=z9hG4bK-se-0123456789abcdef0123.0
Via: SIP/2.0/UDP {second_via};branch=z9hG4bK-alice-9
From: <sip:alice@example.com>;tag=alice-tag
To: <sip:bob@example.com>;tag=bob-tag
Call-ID: stray@198.51.100.7
CSeq: 1 INVITE
Content-Length: 0
"""
        )
        assert isinstance(message, Response)
        return message

    def test_stray_2xx(self) -> None:
        """
        If a 2xx arrives for no client transaction with our Via on top,
        L{ProxyCore} forwards it statelessly along the next Via (its rport).
        """
        self.receive(self.stray(200), BOB_UDP)
        [(out, flow)] = self.take()
        self.assertEqual(flow.remote, ("198.51.100.7", 5061))
        self.assertEqual([v.branch for v in out.vias], ["z9hG4bK-alice-9"])

    def test_stray_2xx_received(self) -> None:
        """
        If the next Via has a received parameter, L{ProxyCore} sends there.
        """
        self.receive(self.stray(200, "phone.invalid:5070;received=198.51.100.8"), BOB_UDP)
        [(_, flow)] = self.take()
        self.assertEqual(flow.remote, ("198.51.100.8", 5070))

    def test_stray_not_ours(self) -> None:
        """
        If a stray 2xx's top Via is not ours, L{ProxyCore} drops it.
        """
        message = self.stray(200)
        headers = message.headers.first_removed("Via").prepended(
            "Via", "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK-x"
        )
        self.receive(message.with_headers(headers), BOB_UDP)
        self.assertEqual(self.take(), [])

    def test_stray_non_2xx(self) -> None:
        """If a stray response is not a 2xx, L{ProxyCore} drops it."""
        for status in (180, 486, 503):
            self.receive(self.stray(status), BOB_UDP)
        self.assertEqual(self.take(), [])

    def test_broadcast(self) -> None:
        """
        If a stray 2xx would go to the broadcast address (RFC 4475 3.3.10,
        bcast), L{ProxyCore} drops it.
        """
        self.receive(self.stray(200, "255.255.255.255"), BOB_UDP)
        self.receive(self.stray(200, "phone.invalid;received=255.255.255.255"), BOB_UDP)
        self.receive(self.stray(200, "224.0.0.75"), BOB_UDP)
        self.receive(self.stray(200, "0.0.0.0"), BOB_UDP)
        self.assertEqual(self.take(), [])

    def test_bcast_corpus(self) -> None:
        """
        If the RFC 4475 bcast message arrives with our Via on top instead
        of its first one, L{ProxyCore} does not forward it.
        """
        from pathlib import Path

        data = (Path(__file__).parent / "data" / "rfc4475" / "bcast.dat").read_bytes()
        message = parse_datagram(data)
        assert isinstance(message, Response)
        headers = message.headers.first_removed("Via").prepended(
            "Via", f"SIP/2.0/UDP {PROXY}:5060;branch=z9hG4bK-se-00.0"
        )
        self.receive(message.with_headers(headers), BOB_UDP)
        self.assertEqual(self.take(), [])

    def test_stray_send_fails(self) -> None:
        """
        If forwarding a stray 2xx fails later (C{send}'s Deferred fails),
        L{ProxyCore} logs it and leaves no unhandled error.
        """
        self.transports.fail_send.add(("198.51.100.7", 5061))
        self.receive(self.stray(200), BOB_UDP)
        [d] = self.transports.results
        self.assertIsNone(self.successResultOf(d))

    def test_server_timer_h(self) -> None:
        """
        If the caller never ACKs a non-2xx final response, the server
        transaction times out (Timer H) and L{ProxyCore} ignores the report.
        """
        self.receive(request("INVITE", "sip:nobody@example.com"), ALICE)
        self.clock.pump([0.5] * 70)
        self.assertEqual(dict(self.core.transactions.server_transactions), {})
        self.assertEqual(self.flushLoggedErrors(), [])


# One step of a scripted run: ("respond", branch, status), ("advance", seconds),
# ("answer-cancels",) or ("cancel",) (the caller CANCELs).
_STATUSES = (180, 183, 200, 202, 404, 408, 486, 487, 500, 503, 603)
_steps = st.one_of(
    st.tuples(st.just("respond"), st.integers(0, 3), st.sampled_from(_STATUSES)),
    st.tuples(st.just("advance"), st.sampled_from((0.5, 4.0, 33.0, 200.0))),
    st.tuples(st.just("answer-cancels")),
    st.tuples(st.just("cancel")),
)
_contacts = st.lists(st.sampled_from((1.0, 0.5)), min_size=1, max_size=4)


class ForkPropertyTests(ProxyHarness, SynchronousTestCase):
    """Properties of L{ProxyCore} forks under random response sequences."""

    # Shorter than Timer B, so Timer C also fires on branches without a
    # provisional response.
    timer_c = 20.0

    def script(self, method: str, qs: list[float], steps: list[tuple[Any, ...]]) -> list[Response]:
        """
        Run C{steps} on a fork of C{method} to one contact per q; return
        the distinct responses sent upstream (not the CANCEL's).
        """
        self.build()
        flows = [Flow("UDP", PROXY, 5060, f"203.0.113.{20 + i}", 5060) for i in range(len(qs))]
        for i, (flow, q) in enumerate(zip(flows, qs, strict=True)):
            self.register(f"sip:bob@{flow.remote_host}:5060", flow, q=q, call_id=f"r{i}")
        self.receive(request(method, "sip:bob@example.com"), ALICE)
        answered: set[int] = set()
        provisional: dict[tuple[Flow, str | None], int] = {}
        for step in steps:
            if step[0] == "respond":
                i, status = step[1] % len(flows), step[2]
                sent = [
                    m for m, f in self.transports.sent if f == flows[i] and isinstance(m, Request)
                ]
                requests = [m for m in sent if m.method == method]
                if requests:
                    to_tag = None if status == 100 else f"t{i}"
                    if status < 200:
                        key = (flows[i], requests[-1].top_via.branch)
                        provisional.setdefault(key, len(self.transports.sent))
                    self.receive(answer(requests[-1], status, to_tag=to_tag), flows[i])
            elif step[0] == "advance":
                self.clock.pump([0.5] * int(step[1] / 0.5))
            elif step[0] == "cancel":
                self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
            else:
                for m, f in list(self.transports.sent):
                    if isinstance(m, Request) and m.method == "CANCEL" and id(m) not in answered:
                        answered.add(id(m))
                        self.receive(answer(m, 200, to_tag="c"), f)
                        invite = next(
                            r
                            for r, g in self.transports.sent
                            if g == f
                            and isinstance(r, Request)
                            and r.method == "INVITE"
                            and r.top_via.branch == m.top_via.branch
                        )
                        self.receive(answer(invite, 487, to_tag="c"), f)
        self.settle(300, 1.0)
        # RFC 3261 9.1: a CANCEL only after a provisional response, and one
        # per branch; never for a non-INVITE.
        cancelled: set[tuple[Flow, str | None]] = set()
        cancels: set[int] = set()
        for index, (m, f) in enumerate(self.transports.sent):
            if isinstance(m, Request) and m.method == "CANCEL" and id(m) not in cancels:
                cancels.add(id(m))
                key = (f, m.top_via.branch)
                self.assertEqual(method, "INVITE")
                self.assertLessEqual(provisional.get(key, index + 1), index, key)
                self.assertNotIn(key, cancelled)
                cancelled.add(key)
        seen: set[int] = set()
        upstream = []
        for m, f in self.transports.sent:
            if (
                f.remote == UPSTREAM
                and isinstance(m, Response)
                and m.cseq.method == method
                and id(m) not in seen
            ):
                seen.add(id(m))
                upstream.append(m)
        self.assert_clean()
        return upstream

    @given(_contacts, st.lists(_steps, max_size=12))
    def test_non_invite_one_final(self, qs: list[float], steps: list[tuple[Any, ...]]) -> None:
        """
        If the branches of a non-INVITE answer in any order (or never),
        L{ProxyCore} sends at most one response upstream, a final one and
        never a 408 (RFC 4320: no provisional, no 408; none at all if no
        branch answered), and leaves no transaction, fork or timer behind.
        """
        upstream = self.script("MESSAGE", qs, steps)
        statuses = [m.status for m in upstream]
        self.assertLessEqual(len(statuses), 1, statuses)
        self.assertTrue(all(s >= 200 and s != 408 for s in statuses), statuses)

    @given(_contacts, st.lists(_steps, max_size=12))
    def test_invite_finals(self, qs: list[float], steps: list[tuple[Any, ...]]) -> None:
        """
        If the branches of an INVITE answer in any order (or never), and
        the caller may CANCEL, L{ProxyCore} sends upstream at least one
        final response, at most one non-2xx final and only 2xx after it,
        no provisional after a final, never a 503, and leaves nothing
        behind.
        """
        upstream = self.script("INVITE", qs, steps)
        statuses = [m.status for m in upstream]
        finals = [s for s in statuses if s >= 200]
        self.assertTrue(finals, statuses)
        failures = [i for i, s in enumerate(statuses) if s >= 300]
        self.assertLessEqual(len(failures), 1, statuses)
        if failures:
            # A late 2xx may follow (16.7 step 5); nothing but 2xx does.
            self.assertTrue(all(200 <= s < 300 for s in statuses[failures[0] + 1 :]), statuses)
        first_final = next(i for i, s in enumerate(statuses) if s >= 200)
        self.assertTrue(all(s >= 200 for s in statuses[first_final:]), statuses)
        self.assertNotIn(503, statuses)


class LateAnswerTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} and 2xx from branches it gave up on."""

    timer_c = 20.0

    def test_late_2xx_ends_fork(self) -> None:
        """
        If a branch that Timer C failed (no provisional) answers 2xx while
        the next serial group rings, L{ProxyCore} sends the 2xx through the
        server transaction, CANCELs the ringing branch, and sends nothing
        else upstream.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP, q=1.0)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, q=0.5, call_id="r2")
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        first = self.only(BOB, "INVITE")
        self.clock.advance(20)
        second = self.only(CAROL, "INVITE")
        self.receive(answer(second, 180, to_tag="carol"), CAROL_UDP)
        self.receive(answer(first, 200), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 180, 200])
        cancel = self.only(CAROL, "CANCEL")
        self.receive(answer(cancel, 200, to_tag="carol"), CAROL_UDP)
        self.receive(answer(second, 487, to_tag="carol"), CAROL_UDP)
        self.settle()
        self.assertEqual(self.statuses(UPSTREAM), [100, 180, 200])


class FinishedForkTests(ProxyHarness, SynchronousTestCase):
    """Tests for L{ProxyCore} after a fork has its answer (default Timer C)."""

    def test_no_timer_c_after_2xx(self) -> None:
        """
        If a branch sends a provisional response after another branch's
        2xx ended the fork, L{ProxyCore} CANCELs it but does not start
        Timer C again: nothing is left scheduled once the transactions end.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP, call_id="r2")
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        first = self.only(BOB, "INVITE")
        second = self.only(CAROL, "INVITE")
        self.receive(answer(first, 200), BOB_UDP)
        self.receive(answer(second, 180, to_tag="carol"), CAROL_UDP)
        cancel = self.only(CAROL, "CANCEL")
        self.receive(answer(cancel, 200, to_tag="carol"), CAROL_UDP)
        self.receive(answer(second, 487, to_tag="carol"), CAROL_UDP)
        self.clock.pump([1.0] * 40)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lingering_call_keeps_no_message(self) -> None:
        """
        Once a request and every branch of it have their final response,
        L{ProxyCore} lets go of the fork (its request context, the request
        as received and as sent, the responses) while the transactions
        linger for their retransmissions (Timers J, K, L, M): nothing but
        an INVITE's server transaction is kept for the client transaction
        a 2xx answered, and the transactions let go of their requests.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.clock.advance(32)  # the REGISTER's transaction ends
        for method, status in (("INVITE", 200), ("MESSAGE", 200), ("INVITE", 486)):
            received = request(
                method,
                "sip:bob@example.com",
                call_id=f"{method}-{status}",
                branch=f"z9hG4bK{method}{status}",
            )
            self.receive(received, ALICE)
            forwarded = self.only(BOB, method)
            response = answer(forwarded, status)
            self.receive(response, BOB_UDP)
            self.take()
            gone = [weakref.ref(m) for m in (received, forwarded, response)]
            del received, forwarded, response
            self.assertEqual([ref() for ref in gone], [None, None, None], (method, status))
        self.assertEqual(self.core.forking.forks, {})
        self.assertEqual(self.core.forking.branches, {})
        self.assertEqual(len(self.core.forking.accepted), 1)
        transactions: list[Any] = [
            *self.core.transactions.server_transactions.values(),
            *self.core.transactions.client_transactions.values(),
        ]
        self.assertEqual(len(transactions), 6)
        self.assertEqual([tx.request for tx in transactions], [None] * 6)
        self.assert_clean()


@implementer(IRequestStage, IResponseStage)
class _Watcher:
    """A stage on both chains: records responses, marks them, may absorb 180s."""

    name = "watcher"

    def __init__(self, absorb: int | None = None) -> None:
        self.seen: list[tuple[str | None, int]] = []
        self.absorb = absorb

    def process_request(self, context: Any) -> Any:
        from sipedge.pipeline import Continue

        return Continue()

    def process_response(self, context: Any, response: Response) -> Response | None:
        self.seen.append((context.request.method if context is not None else None, response.status))
        if response.status == self.absorb:
            return None
        return response.with_headers(response.headers.added("X-Watched", "yes"))


class ResponseChainTests(ProxyHarness, SynchronousTestCase):
    """Tests for the response chain of L{ProxyCore}."""

    def watch(self, absorb: int | None = None) -> _Watcher:
        watcher = _Watcher(absorb)
        self.core.chain = RequestChain([watcher, *self.core.chain.stages])
        return watcher

    def test_responses_pass_the_chain(self) -> None:
        """
        If a stage also provides L{IResponseStage}, every response relayed
        upstream passes it with the request's context (not the 100), and
        what it returns is what goes upstream.
        """
        watcher = self.watch()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(answer(forwarded, 200), BOB_UDP)
        self.assertEqual(watcher.seen, [("INVITE", 180), ("INVITE", 200)])
        relayed = [m for m in self.sent_to(UPSTREAM) if isinstance(m, Response) and m.status > 100]
        self.assertEqual([m.headers.get("X-Watched") for m in relayed], ["yes", "yes"])

    def test_2xx_after_fork_let_go(self) -> None:
        """
        A 2xx that comes again once the fork has let go of its request
        context (every branch and the fork have their final response)
        passes the response chain as a stray 2xx does, with no context,
        and goes upstream through the server transaction while it is in
        ACCEPTED (RFC 6026), statelessly once it has ended.
        """
        watcher = self.watch()
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        ok = answer(self.only(BOB, "INVITE"), 200)
        self.receive(ok, BOB_UDP)
        servers = self.core.transactions.server_transactions.values()
        [server] = [tx for tx in servers if tx.key.method == "INVITE"]
        self.assertEqual(list(self.core.forking.accepted.values()), [server])
        self.receive(ok, BOB_UDP)
        self.assertEqual(watcher.seen, [("INVITE", 200), (None, 200)])
        self.assertEqual(self.statuses(UPSTREAM), [100, 200, 200])
        self.assertEqual(self.core.stats["stateless"], 0)
        self.clock.advance(32)  # Timer L ends the server transaction; M lingers on
        self.assertEqual(dict(self.core.transactions.server_transactions), {})
        self.receive(ok, BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 200, 200, 200])
        self.assertEqual(self.core.stats["stateless"], 1)
        self.assert_clean()

    def test_absorb_provisional(self) -> None:
        """If a response stage absorbs a 180, it does not go upstream."""
        self.watch(absorb=180)
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.receive(answer(forwarded, 486), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 486])

    def test_final_not_absorbed(self) -> None:
        """
        If a response stage absorbs the chosen final response, the caller
        still gets it, unchanged: every request is answered.
        """
        self.watch(absorb=486)
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(request("INVITE", "sip:bob@example.com"), ALICE)
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 486), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 486])
