# -*- test-case-name: sipedge.test.test_stages -*-
"""
Tests for the built-in request stages in L{sipedge.pipeline.stages}.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import Route
from sipedge.flow import Flow
from sipedge.message import Limits, Request, branch_digest, make_branch, parse_datagram
from sipedge.pipeline import (
    Continue,
    Drop,
    Forward,
    RequestContext,
    Respond,
    StageServices,
    Target,
)
from sipedge.pipeline.stages import (
    ForwardStage,
    LoopDetectStage,
    ResponsibilityStage,
    RouteStage,
    StaticRouteStage,
)
from sipedge.pipeline.stages._location import LocationStage
from sipedge.pipeline.stages._max_forwards import ALLOW, CAPABILITIES, MaxForwardsStage
from sipedge.pipeline.stages._registrar import RegistrarStage, respond_with
from sipedge.pipeline.stages._sanity import SanityStage, warning_text
from sipedge.proxy import LocalIdentity, RecordRouteSigner, Registrar
from sipedge.store import Binding, MemoryLocationStore
from sipedge.testing import capture_log
from sipedge.transaction import make_response

PROXY = "192.0.2.1"
SECRET = b"fedcba9876543210fedcba9876543210"
RFC4475 = Path(__file__).parent / "data" / "rfc4475"

ALICE = Flow("UDP", PROXY, 5060, "198.51.100.7", 5060)
TRUSTED = Flow("UDP", PROXY, 5060, "10.1.2.3", 5060)


def request(
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    *fields: str,
    call_id: str = "stage-1@198.51.100.7",
    cseq: str | None = None,
    via: str = "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-a1",
    max_forwards: str | None = "70",
    to: str = "<sip:bob@example.com>",
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {via}",
        *([f"Max-Forwards: {max_forwards}"] if max_forwards is not None else []),
        "From: <sip:alice@example.com>;tag=a1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq if cseq is not None else '1 ' + method}",
        *fields,
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


class StageTestCase(SynchronousTestCase):
    """Services and contexts for stage tests."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(5000)
        self.store = MemoryLocationStore()
        self.signer = RecordRouteSigner(SECRET)
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(["example.com"], [("UDP", PROXY, 5060), ("TCP", PROXY, 5060)]),
            trusted=(ipaddress.ip_network("10.0.0.0/8"),),
            location=self.store,
            registrar=Registrar(self.store, self.clock),
            signer=self.signer,
        )
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def context(self, req: Request, flow: Flow = ALICE, **annotations: str) -> RequestContext:
        ctx = RequestContext(req, flow, self.services)
        ctx.annotations.update(annotations)
        return ctx

    def decide(self, stage: Any, req: Request, flow: Flow = ALICE, **annotations: str) -> Any:
        """The stage's result (a Deferred's result if it returns one)."""
        ctx = self.context(req, flow, **annotations)
        self.last = ctx
        result = stage.process_request(ctx)
        if hasattr(result, "addCallback"):
            return self.successResultOf(result)
        return result


class SanityStageTests(StageTestCase):
    """Tests for L{SanityStage}."""

    def test_valid(self) -> None:
        """If a request is well formed, L{SanityStage} continues."""
        self.assertEqual(self.decide(SanityStage(), request()), Continue())

    def refused(self, req: Request, stage: SanityStage | None = None) -> Respond:
        result = self.decide(stage or SanityStage(), req)
        self.assertIsInstance(result, Respond)
        assert isinstance(result, Respond)
        self.assertIn("Warning", dict(result.headers))
        self.assertTrue(dict(result.headers)["Warning"].startswith('399 sipedge "'))
        return result

    def test_cseq_mismatch(self) -> None:
        """
        If the CSeq method differs from the request's, L{SanityStage}
        answers 400 (501 for a method it does not know).
        """
        self.assertEqual(self.refused(request(cseq="1 BYE")).status, 400)
        self.assertEqual(self.refused(request("FOO", cseq="1 BAR")).status, 501)

    def test_bad_from(self) -> None:
        """If From does not parse, L{SanityStage} answers 400."""
        lines = [
            "INVITE sip:bob@example.com SIP/2.0",
            "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-1",
            "From: <sip:alice@example.com",
            "To: <sip:bob@example.com>",
            "Call-ID: x",
            "CSeq: 1 INVITE",
            "Content-Length: 0",
        ]
        message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert isinstance(message, Request)
        self.assertEqual(self.refused(message).status, 400)

    def test_scheme(self) -> None:
        """If the Request-URI scheme is not sip, sips or tel, L{SanityStage} answers 416."""
        self.assertEqual(self.refused(request(uri="http://example.com/")).status, 416)
        self.assertEqual(self.decide(SanityStage(), request(uri="tel:+4930123")), Continue())

    def test_uri_headers(self) -> None:
        """If the Request-URI carries headers, L{SanityStage} answers 400."""
        self.assertEqual(self.refused(request(uri="sip:bob@example.com?Subject=x")).status, 400)

    def test_proxy_require(self) -> None:
        """
        If Proxy-Require names an extension the stage does not support,
        L{SanityStage} answers 420 with an Unsupported header naming it
        (RFC 3261 16.3 item 6); a supported one passes.
        """
        req = request("INVITE", "sip:bob@example.com", "Proxy-Require: foo, sec-agree")
        result = self.refused(req)
        self.assertEqual(result.status, 420)
        self.assertEqual(dict(result.headers)["Unsupported"], "foo, sec-agree")
        stage = SanityStage(supported=frozenset(("foo",)))
        self.assertEqual(dict(self.refused(req, stage).headers)["Unsupported"], "sec-agree")
        stage = SanityStage(supported=frozenset(("foo", "sec-agree")))
        self.assertEqual(self.decide(stage, req), Continue())

    def test_too_many_vias(self) -> None:
        """If there are more Vias than the limits allow, L{SanityStage} answers 513."""
        vias = [f"Via: SIP/2.0/UDP 10.0.0.{i};branch=z9hG4bK-{i}" for i in range(3)]
        stage = SanityStage(Limits(max_vias=2))
        self.assertEqual(
            self.refused(request("OPTIONS", "sip:example.com", *vias), stage).status, 513
        )

    def test_ack_dropped(self) -> None:
        """If a malformed request is an ACK, L{SanityStage} drops it (no answer)."""
        result = self.decide(SanityStage(), request("ACK", cseq="1 INVITE"))
        self.assertIsInstance(result, Drop)

    def test_logged(self) -> None:
        """If L{SanityStage} refuses a request, it logs the rule and reason."""
        events = capture_log(self)
        self.decide(SanityStage(), request(cseq="1 BYE"))
        [event] = [e for e in events if e.get("rule") == "sanity"]
        self.assertEqual(event["method"], "INVITE")

    def test_warning_text(self) -> None:
        """If a reason holds quotes or control characters, L{warning_text} replaces them."""
        self.assertEqual(warning_text('a"b\\c\r\n'), '399 sipedge "a?b?c??"')
        self.assertEqual(len(warning_text("x" * 500)), len('399 sipedge ""') + 120)


class MaxForwardsStageTests(StageTestCase):
    """Tests for L{MaxForwardsStage}."""

    def test_positive(self) -> None:
        """If Max-Forwards is above 0 or absent, L{MaxForwardsStage} continues."""
        stage = MaxForwardsStage()
        self.assertEqual(self.decide(stage, request(max_forwards="1")), Continue())
        self.assertEqual(self.decide(stage, request(max_forwards=None)), Continue())

    def test_zero(self) -> None:
        """If Max-Forwards is 0, L{MaxForwardsStage} answers 483."""
        self.assertEqual(self.decide(MaxForwardsStage(), request(max_forwards="0")), Respond(483))

    def test_zero_ack(self) -> None:
        """If an ACK has Max-Forwards 0, L{MaxForwardsStage} drops it."""
        result = self.decide(MaxForwardsStage(), request("ACK", max_forwards="0"))
        self.assertIsInstance(result, Drop)

    def test_options_to_us(self) -> None:
        """
        If an OPTIONS with Max-Forwards 0 is for our domain (no user) or
        our own address, L{MaxForwardsStage} answers 200 with Allow,
        Accept and Supported (RFC 3261 11.2).
        """
        for uri in ("sip:example.com", f"sip:{PROXY}:5060", f"sip:{PROXY}", f"sip:x@{PROXY}"):
            result = self.decide(MaxForwardsStage(), request("OPTIONS", uri, max_forwards="0"))
            self.assertEqual(result, Respond(200, None, CAPABILITIES), uri)
        self.assertEqual(
            dict(CAPABILITIES),
            {"Allow": ALLOW, "Accept": "application/sdp", "Supported": "outbound"},
        )

    def test_options_to_the_edge(self) -> None:
        """
        An OPTIONS to the edge itself (our domain or our address, no user
        part), whatever its Max-Forwards, is answered 200 with our
        capabilities, also through a Route that is ours (a preloaded
        outbound proxy); with a user part, for another host, through
        another proxy's Route, or another method, the request goes on.
        """
        stage = MaxForwardsStage()
        ours = f"Route: <sip:{PROXY}:5060;lr>"
        for uri, fields in (
            ("sip:example.com", ()),
            (f"sip:{PROXY}:5060", ()),
            ("sip:example.com", (ours,)),
            ("sip:example.com;transport=tcp", ()),
        ):
            result = self.decide(stage, request("OPTIONS", uri, *fields))
            self.assertEqual(result, Respond(200, None, CAPABILITIES), (uri, fields))
        for method, uri, fields in (
            ("OPTIONS", "sip:alice@example.com", ()),
            ("OPTIONS", "sip:other.net", ()),
            ("OPTIONS", f"sip:{PROXY}:5070", ()),
            ("OPTIONS", "sip:example.com", ("Route: <sip:other.net;lr>",)),
            ("INVITE", "sip:example.com", ()),
        ):
            result = self.decide(stage, request(method, uri, *fields))
            self.assertEqual(result, Continue(), (method, uri, fields))

    def test_options_to_user(self) -> None:
        """
        If an OPTIONS with Max-Forwards 0 is for a user (RFC 4475 zeromf),
        L{MaxForwardsStage} answers 483.
        """
        message = parse_datagram((RFC4475 / "zeromf.dat").read_bytes())
        assert isinstance(message, Request)
        self.assertEqual(self.decide(MaxForwardsStage(), message), Respond(483))
        result = self.decide(
            MaxForwardsStage(), request("OPTIONS", "sip:bob@other.net", max_forwards="0")
        )
        self.assertEqual(result, Respond(483))


class LoopDetectStageTests(StageTestCase):
    """Tests for L{LoopDetectStage} (RFC 3261 16.3 item 4)."""

    def returned(self, original: Request, changed: Request, host: str = PROXY) -> Request:
        """C{changed} carrying the Via we would have put on C{original}."""
        branch = make_branch(branch_digest(original), 0)
        headers = changed.headers.prepended(
            "Via", f"SIP/2.0/UDP {host}:5060;branch={branch};rport"
        ).prepended("Via", "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-other")
        return changed.with_headers(headers)

    def test_no_via_of_ours(self) -> None:
        """If no Via is ours, L{LoopDetectStage} continues."""
        self.assertEqual(self.decide(LoopDetectStage(), request()), Continue())

    def test_loop(self) -> None:
        """If a request comes back unchanged, L{LoopDetectStage} answers 482."""
        original = request()
        self.assertEqual(
            self.decide(LoopDetectStage(), self.returned(original, original)), Respond(482)
        )

    def test_spiral(self) -> None:
        """
        If a request comes back with another Request-URI (a spiral),
        L{LoopDetectStage} continues.
        """
        original = request()
        back = self.returned(original, original.with_uri("sip:bob@203.0.113.5"))
        self.assertEqual(self.decide(LoopDetectStage(), back), Continue())

    def test_changed_route(self) -> None:
        """
        If a request comes back with another Route set (an application
        server took it and sent it back), L{LoopDetectStage} continues.
        """
        original = request("INVITE", "sip:bob@example.com", "Route: <sip:as.example.net;lr>")
        back = self.returned(original, request())
        self.assertEqual(self.decide(LoopDetectStage(), back), Continue())

    def test_changed_proxy_authorization(self) -> None:
        """
        If a request comes back with new Proxy-Authorization,
        L{LoopDetectStage} continues.
        """
        original = request()
        changed = original.with_headers(
            original.headers.added("Proxy-Authorization", 'Digest username="a"')
        )
        self.assertEqual(
            self.decide(LoopDetectStage(), self.returned(original, changed)), Continue()
        )

    def test_not_our_host(self) -> None:
        """
        If a Via with our branch form comes from another host,
        L{LoopDetectStage} ignores it.
        """
        original = request()
        back = self.returned(original, original, host="192.0.2.200")
        self.assertEqual(self.decide(LoopDetectStage(), back), Continue())


class RouteStageTests(StageTestCase):
    """Tests for L{RouteStage} (RFC 3261 16.4)."""

    CALL_ID = "stage-1@198.51.100.7"

    def ours(self, transport: str = "", signed: bool = True) -> str:
        params = f";transport={transport}" if transport else ""
        se = f";se={self.signer.mac(self.CALL_ID)}" if signed else ""
        return f"<sip:{PROXY}:5060{params};lr{se}>"

    def test_no_route(self) -> None:
        """If there is no Route, L{RouteStage} changes nothing."""
        req = request()
        self.assertEqual(self.decide(RouteStage(), req), Continue())
        self.assertIs(self.last.request, req)
        self.assertNotIn("route", self.last.annotations)

    def test_loose_signed(self) -> None:
        """
        If the top Route is our signed Record-Route, L{RouteStage} removes
        it and notes the dialog.
        """
        req = request(
            "BYE",
            "sip:alice@198.51.100.7",
            f"Route: {self.ours()}",
            "Route: <sip:next.example.net;lr>",
        )
        self.assertEqual(self.decide(RouteStage(), req), Continue())
        self.assertEqual(self.last.request.headers.get_all("Route"), ("<sip:next.example.net;lr>",))
        self.assertEqual(self.last.annotations["route"], "dialog")
        self.assertEqual(self.last.request.uri, "sip:alice@198.51.100.7")
        self.assertIs(self.last.original, req)

    def test_double(self) -> None:
        """
        If we record-routed twice (two interfaces), L{RouteStage} removes
        both values, in one field or two.
        """
        for fields in (
            (f"Route: {self.ours('tcp')}, {self.ours()}",),
            (f"Route: {self.ours('tcp')}", f"Route: {self.ours()}"),
        ):
            self.decide(RouteStage(), request("BYE", "sip:alice@198.51.100.7", *fields))
            self.assertEqual(self.last.request.headers.get_all("Route"), ())
            self.assertEqual(self.last.annotations["route"], "dialog")

    def test_unsigned(self) -> None:
        """
        If the Route to us is unsigned or signed for another Call-ID,
        L{RouteStage} removes it but notes no dialog.
        """
        forged = f"<sip:{PROXY}:5060;lr;se={self.signer.mac('other-call')}>"
        for route in (self.ours(signed=False), forged):
            self.decide(RouteStage(), request("BYE", "sip:victim@203.0.113.99", f"Route: {route}"))
            self.assertEqual(self.last.request.headers.get_all("Route"), ())
            self.assertNotIn("route", self.last.annotations)

    def test_foreign_top(self) -> None:
        """If the top Route is not ours, L{RouteStage} leaves every Route."""
        req = request(
            "BYE",
            "sip:alice@198.51.100.7",
            "Route: <sip:other.example.net;lr>",
            f"Route: {self.ours()}",
        )
        self.decide(RouteStage(), req)
        self.assertEqual(self.last.request.headers, req.headers)
        self.assertNotIn("route", self.last.annotations)

    def test_strict_route(self) -> None:
        """
        If the Request-URI is our Record-Route (a strict router before us),
        L{RouteStage} takes the last Route as the Request-URI and removes it.
        """
        rr = self.ours()[1:-1]
        req = request("BYE", rr, "Route: <sip:next.example.net;lr>, <sip:alice@198.51.100.7:5070>")
        self.decide(RouteStage(), req)
        self.assertEqual(self.last.request.uri, "sip:alice@198.51.100.7:5070")
        self.assertEqual(self.last.request.headers.get_all("Route"), ("<sip:next.example.net;lr>",))
        self.assertEqual(self.last.annotations["route"], "dialog")

    def test_strict_route_unsigned(self) -> None:
        """
        If a strict-routed Request-URI of ours is unsigned, L{RouteStage}
        fixes the request up but notes no dialog.
        """
        req = request("BYE", f"sip:{PROXY}:5060", "Route: <sip:alice@198.51.100.7:5070>")
        self.decide(RouteStage(), req)
        self.assertEqual(self.last.request.uri, "sip:alice@198.51.100.7:5070")
        self.assertEqual(self.last.request.headers.get_all("Route"), ())
        self.assertNotIn("route", self.last.annotations)

    def test_no_signer(self) -> None:
        """If there is no signer, L{RouteStage} removes our Route but never notes a dialog."""
        import attrs

        self.services = attrs.evolve(self.services, signer=None)
        self.decide(RouteStage(), request("BYE", "sip:alice@198.51.100.7", f"Route: {self.ours()}"))
        self.assertEqual(self.last.request.headers.get_all("Route"), ())
        self.assertNotIn("route", self.last.annotations)


class ResponsibilityStageTests(StageTestCase):
    """Tests for L{ResponsibilityStage}: the no-open-relay rule."""

    def test_local_domain(self) -> None:
        """
        If the Request-URI is in our domain (or our address) and no Route is
        left, L{ResponsibilityStage} notes C{local}, from any source.
        """
        for uri in ("sip:bob@example.com", "sip:bob@EXAMPLE.COM", f"sip:bob@{PROXY}:5060"):
            self.assertEqual(self.decide(ResponsibilityStage(), request(uri=uri)), Continue())
            self.assertEqual(self.last.annotations["responsibility"], "local")

    def test_relay_trusted(self) -> None:
        """If the source is trusted, L{ResponsibilityStage} relays to any domain."""
        self.assertEqual(
            self.decide(ResponsibilityStage(), request(uri="sip:bob@other.net"), TRUSTED),
            Continue(),
        )
        self.assertEqual(self.last.annotations["responsibility"], "relay")

    def test_relay_dialog(self) -> None:
        """If the route stage found our signature, L{ResponsibilityStage} relays."""
        result = self.decide(
            ResponsibilityStage(), request(uri="sip:bob@other.net"), route="dialog"
        )
        self.assertEqual(result, Continue())
        self.assertEqual(self.last.annotations["responsibility"], "relay")

    def test_no_open_relay(self) -> None:
        """
        If an untrusted source asks for another domain, or for our domain
        through a Route left over, outside a dialog of ours,
        L{ResponsibilityStage} answers 403 and logs the rule.
        """
        events = capture_log(self)
        for req in (
            request(uri="sip:bob@other.net"),
            request(uri="tel:+4930123"),
            request("INVITE", "sip:bob@example.com", "Route: <sip:evil.net;lr>"),
            request(uri=f"sip:bob@{PROXY}:5062"),
        ):
            result = self.decide(ResponsibilityStage(), req)
            self.assertEqual(result, Respond(403, "Relaying Denied"), req.uri)
            self.assertNotIn("responsibility", self.last.annotations)
        self.assertEqual(len([e for e in events if e.get("rule") == "relay"]), 4)


class RegistrarStageTests(StageTestCase):
    """Tests for L{RegistrarStage}."""

    def register(self, *fields: str) -> Request:
        return request(
            "REGISTER",
            "sip:example.com",
            *fields,
            to="<sip:bob@example.com>",
            call_id="reg-1",
        )

    def test_register(self) -> None:
        """
        If a REGISTER is for our domain, L{RegistrarStage} hands it to the
        registrar and answers with its response's status and fields.
        """
        result = self.decide(
            RegistrarStage(),
            self.register("Contact: <sip:bob@203.0.113.5>"),
            responsibility="local",
        )
        self.assertEqual(result.status, 200)
        self.assertEqual(dict(result.headers)["Contact"], "<sip:bob@203.0.113.5>;expires=3600")
        names = {name.lower() for name, _ in result.headers}
        self.assertFalse(names & {"via", "from", "to", "call-id", "cseq", "content-length"})
        [binding] = self.successResultOf(
            self.store.lookup("sip:bob@example.com", self.clock.seconds())
        )
        self.assertEqual(binding.flow, ALICE)

    def test_rejected(self) -> None:
        """If the registrar refuses, L{RegistrarStage} answers its status and fields."""
        result = self.decide(
            RegistrarStage(),
            self.register("Contact: <sip:bob@203.0.113.5>;expires=5"),
            responsibility="local",
        )
        self.assertEqual(result.status, 423)
        self.assertEqual(dict(result.headers)["Min-Expires"], "60")

    def test_not_local(self) -> None:
        """
        If a REGISTER is not for us, or the request is no REGISTER,
        L{RegistrarStage} continues.
        """
        self.assertEqual(
            self.decide(RegistrarStage(), self.register(), responsibility="relay"), Continue()
        )
        self.assertEqual(self.decide(RegistrarStage(), self.register()), Continue())
        self.assertEqual(
            self.decide(RegistrarStage(), request(), responsibility="local"), Continue()
        )

    def test_no_registrar(self) -> None:
        """If there is no registrar, L{RegistrarStage} answers 405 with Allow."""
        import attrs

        self.services = attrs.evolve(self.services, registrar=None)
        result = self.decide(RegistrarStage(), self.register(), responsibility="local")
        self.assertEqual(result.status, 405)
        self.assertIn("Allow", dict(result.headers))

    def test_respond_with(self) -> None:
        """If given a response, L{respond_with} keeps status, reason, own fields and body."""
        response = make_response(
            request(), 200, "OK Then", (("Contact", "<sip:x@y>"), ("Content-Type", "text/plain"))
        ).with_body(b"hi")
        result = respond_with(response)
        self.assertEqual(
            result,
            Respond(
                200, "OK Then", (("Contact", "<sip:x@y>"), ("Content-Type", "text/plain")), b"hi"
            ),
        )


class LocationStageTests(StageTestCase):
    """Tests for L{LocationStage}."""

    def bind(
        self, contact: str, flow: Flow | None, q: float = 1.0, path: tuple[str, ...] = ()
    ) -> None:
        binding = Binding(
            aor="sip:bob@example.com",
            contact=contact,
            expires_at=self.clock.seconds() + 60,
            q=q,
            call_id="c",
            cseq=1,
            flow=flow,
            path=path,
        )
        self.successResultOf(
            self.store.update("sip:bob@example.com", [binding], self.clock.seconds())
        )

    def test_targets(self) -> None:
        """
        If the AOR has bindings, L{LocationStage} forwards to each contact,
        highest q first, with its q and Path as Route.
        """
        self.bind("sip:bob@203.0.113.5:5060", Flow("UDP", PROXY, 5060, "203.0.113.5", 5060), q=0.5)
        self.bind(
            "sip:bob@203.0.113.6:5060",
            Flow("UDP", PROXY, 5060, "203.0.113.6", 5060),
            path=("<sip:edge.example.net;lr>",),
        )
        result = self.decide(LocationStage(), request(), responsibility="local")
        self.assertEqual(
            result,
            Forward(
                (
                    Target("sip:bob@203.0.113.6:5060", None, 1.0, ("<sip:edge.example.net;lr>",)),
                    Target("sip:bob@203.0.113.5:5060", None, 0.5),
                )
            ),
        )

    def test_aor_normalised(self) -> None:
        """If the Request-URI spells the AOR another way, L{LocationStage} finds it."""
        self.bind("sip:bob@203.0.113.5", None)
        result = self.decide(
            LocationStage(), request(uri="sip:%62ob@EXAMPLE.com;user=phone"), responsibility="local"
        )
        self.assertEqual(result, Forward((Target("sip:bob@203.0.113.5"),)))

    def test_none(self) -> None:
        """If the AOR has no binding, L{LocationStage} answers 404."""
        self.assertEqual(
            self.decide(LocationStage(), request(), responsibility="local"), Respond(404)
        )

    def test_expired(self) -> None:
        """If the AOR's bindings expired, L{LocationStage} answers 404."""
        self.bind("sip:bob@203.0.113.5", None)
        self.clock.advance(61)
        self.assertEqual(
            self.decide(LocationStage(), request(), responsibility="local"), Respond(404)
        )

    def test_skips(self) -> None:
        """
        If the request is not for our domain, is a REGISTER, or has no
        user, L{LocationStage} continues.
        """
        self.bind("sip:bob@203.0.113.5", None)
        self.assertEqual(
            self.decide(LocationStage(), request(), responsibility="relay"), Continue()
        )
        self.assertEqual(self.decide(LocationStage(), request()), Continue())
        self.assertEqual(
            self.decide(
                LocationStage(), request("REGISTER", "sip:example.com"), responsibility="local"
            ),
            Continue(),
        )
        self.assertEqual(
            self.decide(LocationStage(), request(uri="sip:example.com"), responsibility="local"),
            Continue(),
        )


class StaticRouteStageTests(StageTestCase):
    """Tests for L{StaticRouteStage}."""

    def stage(self) -> StaticRouteStage:
        return StaticRouteStage(
            [
                Route(next_hop="sip:10.0.0.5:5060;transport=tcp", match_prefix="+44"),
                Route(next_hop="sip:pbx.corp.example;lr", match_domain="corp.example"),
                Route(next_hop="sip:10.0.0.6", match_domain="CORP2.example"),
            ]
        )

    def test_prefix(self) -> None:
        """
        If the Request-URI user starts with a configured prefix,
        L{StaticRouteStage} forwards to the next hop as a loose Route,
        keeping the Request-URI.
        """
        result = self.decide(self.stage(), request(uri="sip:+4420123@carrier.net"), TRUSTED)
        self.assertEqual(
            result,
            Forward(
                (
                    Target(
                        "sip:+4420123@carrier.net", route=("<sip:10.0.0.5:5060;transport=tcp;lr>",)
                    ),
                )
            ),
        )
        result = self.decide(self.stage(), request(uri="tel:+4420123"), TRUSTED)
        self.assertEqual(result.targets[0].uri, "tel:+4420123")

    def test_domain(self) -> None:
        """If the Request-URI host matches, L{StaticRouteStage} forwards to the next hop."""
        result = self.decide(self.stage(), request(uri="sip:bob@corp.example"), TRUSTED)
        self.assertEqual(
            result, Forward((Target("sip:bob@corp.example", route=("<sip:pbx.corp.example;lr>",)),))
        )
        result = self.decide(self.stage(), request(uri="sip:bob@corp2.example"), TRUSTED)
        self.assertEqual(result.targets[0].route, ("<sip:10.0.0.6;lr>",))

    def test_first_match(self) -> None:
        """If two routes match, L{StaticRouteStage} uses the first."""
        result = self.decide(self.stage(), request(uri="sip:+441@corp.example"), TRUSTED)
        self.assertEqual(result.targets[0].route, ("<sip:10.0.0.5:5060;transport=tcp;lr>",))

    def test_no_match(self) -> None:
        """
        If no route matches, there are Routes already, or no route is
        configured, L{StaticRouteStage} continues.
        """
        self.assertEqual(self.decide(self.stage(), request(uri="sip:bob@else.example")), Continue())
        self.assertEqual(
            self.decide(
                self.stage(), request("INVITE", "sip:bob@corp.example", "Route: <sip:x;lr>")
            ),
            Continue(),
        )
        self.assertEqual(
            self.decide(StaticRouteStage([]), request(uri="sip:bob@corp.example")), Continue()
        )

    def test_forwarded_request_keeps_uri(self) -> None:
        """
        If the configured next hop has no C{lr} (as the documented examples
        show), the forwarded request still keeps its Request-URI: the next
        hop is not treated as a strict router.
        """
        from sipedge.proxy import forwarded_request

        result = self.decide(self.stage(), request(uri="sip:bob@corp2.example"), TRUSTED)
        out = forwarded_request(request(uri="sip:bob@corp2.example"), result.targets[0])
        self.assertEqual(out.uri, "sip:bob@corp2.example")
        self.assertEqual(out.headers.get_all("Route"), ("<sip:10.0.0.6;lr>",))


class ForwardStageTests(StageTestCase):
    """Tests for L{ForwardStage}."""

    def test_forward(self) -> None:
        """If the request is relayed, L{ForwardStage} forwards it to its Request-URI."""
        result = self.decide(
            ForwardStage(), request(uri="sip:bob@other.net"), responsibility="relay"
        )
        self.assertEqual(result, Forward((Target("sip:bob@other.net"),)))

    def test_forward_route(self) -> None:
        """If Routes are left, L{ForwardStage} forwards to the Request-URI too."""
        req = request("BYE", "sip:bob@example.com", "Route: <sip:next.net;lr>")
        self.assertEqual(
            self.decide(ForwardStage(), req, responsibility="local"),
            Forward((Target("sip:bob@example.com"),)),
        )

    def test_local_unrouted(self) -> None:
        """
        If the request is for our domain and no stage forwarded it,
        L{ForwardStage} answers 404.
        """
        self.assertEqual(
            self.decide(ForwardStage(), request(uri="sip:example.com"), responsibility="local"),
            Respond(404),
        )
