"""
Tests for topology hiding in L{sipedge.proxy.ProxyCore}: whole calls
between an internal party (behind an internal proxy) and external
parties, in memory, checking every byte that goes out to the external
side and that every in-dialog request still finds its way.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import Flow
from sipedge.media import DEFAULT_INTERNAL_NETWORKS
from sipedge.message import Request, Response, serialize
from sipedge.proxy import DialogTracker, Sealer
from sipedge.proxy._topology import TOKEN_PREFIX, TopologyHider
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    CAROL,
    CAROL_UDP,
    PROXY,
    SECRET,
    ProxyHarness,
    capture_log,
)
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

#: The internal proxy (trusted) that internal phones send through.
P1 = Flow("UDP", PROXY, 5060, "10.1.2.3", 5060)
#: An internal phone that registers with us directly.
DESK = Flow("UDP", PROXY, 5060, "10.0.0.7", 5060)
PROVIDER = Flow("UDP", PROXY, 5060, "203.0.113.9", 5060)
ALICE_CONTACT = "<sip:alice@10.0.0.5:5060>"
ALICE_CALL_ID = "a84b4c76e66710@pc33.corp.internal"

#: What must never reach the external side (outside the SDP body).
INTERNAL = (
    "10.0.0.5",
    "10.1.2.3",
    "10.0.0.7",
    "10.0.0.1",
    "corp.internal",
    ALICE_CALL_ID.split("@")[0],
)


class TopologyHarness(ProxyHarness):
    """A proxy core with topology hiding on; 10.0.0.0/8 is internal."""

    #: Whether the core gets a L{DialogTracker} (it ends calls itself).
    track_dialogs = False

    def build(self) -> None:
        super().build()
        self.locator.add("p1.corp.internal", ("UDP", "10.1.2.3", 5060))
        self.hider = TopologyHider(
            Sealer(SECRET), [ipaddress.ip_network(n) for n in DEFAULT_INTERNAL_NETWORKS]
        )
        self.core = self.make_core(
            topology=self.hider,
            dialogs=DialogTracker(self.clock) if self.track_dialogs else None,
        )
        if self.core.dialogs is not None:
            self.core.dialogs.originate = self.core.originate

    def take(self) -> list[tuple[Any, Flow]]:
        """What was sent since the last call; every byte to outside checked."""
        sent = super().take()
        self.check_outside(sent)
        return sent

    def check_outside(self, sent: list[tuple[Any, Flow]] | None = None) -> None:
        """No internal address or name in anything sent outside (body aside)."""
        tc: Any = self
        for message, flow in self.transports.sent if sent is None else sent:
            if self.hider.is_internal(flow.remote_host):
                continue
            data = serialize(message)
            head = data[: data.index(b"\r\n\r\n")]
            for needle in INTERNAL:
                tc.assertNotIn(needle.encode(), head, f"{needle} leaked to {flow}:\n{data!r}")

    def assert_clean(self) -> None:
        """Nothing left over, and nothing internal went outside."""
        self.check_outside()
        super().assert_clean()

    def invite_from_inside(self, *fields: str, to: str = "<sip:bob@example.com>") -> Request:
        """Alice's INVITE for Bob as P1 relays it: her Via and P1's, P1's Record-Route."""
        invite = request(
            "INVITE",
            "sip:bob@example.com",
            "Record-Route: <sip:p1.corp.internal;lr>",
            f"Contact: {ALICE_CONTACT}",
            *fields,
            call_id=ALICE_CALL_ID,
            via="10.1.2.3:5060",
            branch="z9hG4bK-p1-1",
            to=to,
        )
        h = invite.headers
        h = h.added("Via", "SIP/2.0/UDP pc33.corp.internal:5060;branch=z9hG4bK-alice-1")
        return invite.with_headers(h)


def uri_of(value: str) -> str:
    """The URI inside a name-addr."""
    return value[value.index("<") + 1 : value.index(">")]


class InsideOutTests(TopologyHarness, SynchronousTestCase):
    """A call from an internal phone to an external one."""

    def call(self) -> tuple[Request, Response]:
        """
        Alice (inside, through P1) calls Bob (outside); Bob answers 180
        and 200. Returns the INVITE Bob got and the 200 P1 got.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(self.invite_from_inside(), P1)
        invite = self.only(BOB, "INVITE")
        self.take()
        self.receive(answer(invite, 180, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        self.receive(answer(invite, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        ok = self.only(P1.remote, 200)
        self.take()
        return invite, ok

    def test_invite_hidden(self) -> None:
        """
        The INVITE Bob gets has our Via only, our Record-Route only, a
        Contact of ours, and a masked Call-ID; nothing internal anywhere.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(self.invite_from_inside(), P1)
        invite = self.only(BOB, "INVITE")
        self.assertEqual(len(invite.vias), 1)
        self.assertEqual(invite.top_via.host, PROXY)
        [rr] = invite.headers.get_all("Record-Route")
        self.assertTrue(uri_of(rr).startswith(f"sip:{PROXY}:5060;"))
        [contact] = invite.headers.get_all("Contact")
        self.assertTrue(uri_of(contact).startswith(f"sip:{TOKEN_PREFIX}"), contact)
        self.assertTrue(uri_of(contact).endswith(f"@{PROXY}:5060"), contact)
        self.assertTrue(invite.call_id.startswith(TOKEN_PREFIX))
        self.take()

    def test_responses_revealed(self) -> None:
        """
        Bob's 180 and 200 reach P1 with the Vias, Call-ID and
        Record-Route set the internal side knows, and Bob's Contact.
        """
        _invite, ok = self.call()
        self.assertEqual([v.branch for v in ok.vias], ["z9hG4bK-p1-1", "z9hG4bK-alice-1"])
        self.assertEqual(ok.call_id, ALICE_CALL_ID)
        rrs = ok.headers.values("Record-Route")
        self.assertEqual(len(rrs), 2)
        self.assertTrue(uri_of(rrs[0]).startswith(f"sip:{PROXY}:5060;"))
        self.assertNotIn(";sth=", rrs[0])
        self.assertEqual(rrs[1], "<sip:p1.corp.internal;lr>")
        self.assertEqual(ok.headers.get("Contact"), "<sip:bob@203.0.113.5:5060>")

    def test_same_mask_for_the_call(self) -> None:
        """
        Every message of the call carries the same masked Call-ID outside:
        the ACK and BYE from Alice, and the retransmitted INVITE.
        """
        invite, ok = self.call()
        route = [v for v in reversed(ok.headers.values("Record-Route"))]
        # P1 takes its own entry off; the rest is ours.
        ack = request(
            "ACK",
            "sip:bob@203.0.113.5:5060",
            f"Route: {route[1]}",
            call_id=ALICE_CALL_ID,
            via="10.1.2.3:5060",
            branch="z9hG4bK-p1-ack",
            to="<sip:bob@example.com>;tag=bob-tag",
        )
        self.receive(ack, P1)
        out = self.only(BOB, "ACK")
        self.assertEqual(out.call_id, invite.call_id)
        self.assertEqual(len(out.vias), 1)
        self.assertEqual(out.uri, "sip:bob@203.0.113.5:5060")
        self.take()
        bye = request(
            "BYE",
            "sip:bob@203.0.113.5:5060",
            f"Route: {route[1]}",
            call_id=ALICE_CALL_ID,
            via="10.1.2.3:5060",
            branch="z9hG4bK-p1-bye",
            to="<sip:bob@example.com>;tag=bob-tag",
            cseq=2,
        )
        self.receive(bye, P1)
        out = self.only(BOB, "BYE")
        self.assertEqual(out.call_id, invite.call_id)
        self.take()
        self.receive(answer(out, 200, to_tag=None), BOB_UDP)
        done = self.only(P1.remote, 200)
        self.assertEqual(done.call_id, ALICE_CALL_ID)
        self.assertEqual([v.branch for v in done.vias], ["z9hG4bK-p1-bye"])
        self.take()

    def bob_request(self, invite: Request, method: str, cseq: int, **kw: Any) -> Request:
        """Bob's in-dialog request along the route set of the INVITE he got."""
        fields = [f"Route: {v}" for v in invite.headers.values("Record-Route")]
        return request(
            method,
            uri_of(invite.headers.get("Contact") or ""),
            *fields,
            call_id=invite.call_id,
            via="203.0.113.5:5060",
            branch=f"z9hG4bK-bob-{method.lower()}-{cseq}",
            from_="<sip:bob@example.com>;tag=bob-tag",
            to=invite.headers.get("From") or "",
            cseq=cseq,
            **kw,
        )

    def test_bye_from_outside(self) -> None:
        """
        Bob's BYE to Alice's masked Contact, along his route set, reaches
        P1 with Alice's real Contact as Request-URI, P1's route, the real
        Call-ID; P1's 200 goes back to Bob with the masked Call-ID.
        """
        invite, _ = self.call()
        self.receive(self.bob_request(invite, "BYE", 7), BOB_UDP)
        out = self.only(P1.remote, "BYE")
        self.assertEqual(out.uri, "sip:alice@10.0.0.5:5060")
        self.assertEqual(out.headers.values("Route"), ["<sip:p1.corp.internal;lr>"])
        self.assertEqual(out.call_id, ALICE_CALL_ID)
        self.take()
        self.receive(answer(out, 200, to_tag=None), P1)
        ok = self.only(BOB, 200)
        self.assertEqual(ok.call_id, invite.call_id)
        self.assertEqual([v.branch for v in ok.vias], ["z9hG4bK-bob-bye-7"])
        self.assertFalse(ok.top_via.has_param("sthc"))
        self.take()

    def test_reinvite_from_outside(self) -> None:
        """
        Bob's re-INVITE reaches Alice through P1; her 200 (with her
        Contact) goes back to Bob hidden and masked; Bob's ACK follows.
        """
        invite, _ = self.call()
        self.receive(self.bob_request(invite, "INVITE", 8), BOB_UDP)
        out = self.only(P1.remote, "INVITE")
        self.assertEqual(out.uri, "sip:alice@10.0.0.5:5060")
        self.take()
        self.receive(
            answer(out, 200, ("Contact", ALICE_CONTACT), to_tag=None, record_route=False), P1
        )
        ok = self.only(BOB, 200)
        self.assertEqual(ok.call_id, invite.call_id)
        self.assertEqual(ok.headers.get("Contact"), invite.headers.get("Contact"))
        self.take()
        self.receive(self.bob_request(invite, "ACK", 8), BOB_UDP)
        ack = self.only(P1.remote, "ACK")
        self.assertEqual(ack.uri, "sip:alice@10.0.0.5:5060")
        self.assertEqual(ack.call_id, ALICE_CALL_ID)
        self.take()

    def test_reinvite_from_inside(self) -> None:
        """
        Alice's re-INVITE (with her Contact) reaches Bob masked; Bob's 200
        comes back to her with the real Call-ID and Vias.
        """
        invite, ok = self.call()
        route = list(reversed(ok.headers.values("Record-Route")))
        reinvite = request(
            "INVITE",
            "sip:bob@203.0.113.5:5060",
            f"Route: {route[1]}",
            f"Contact: {ALICE_CONTACT}",
            call_id=ALICE_CALL_ID,
            via="10.1.2.3:5060",
            branch="z9hG4bK-p1-reinvite",
            to="<sip:bob@example.com>;tag=bob-tag",
            cseq=3,
        )
        self.receive(reinvite, P1)
        out = self.only(BOB, "INVITE")
        self.assertEqual(out.call_id, invite.call_id)
        self.assertEqual(out.headers.get("Contact"), invite.headers.get("Contact"))
        self.take()
        self.receive(
            answer(out, 200, ("Contact", "<sip:bob@203.0.113.5:5060>"), to_tag=None), BOB_UDP
        )
        back = self.only(P1.remote, 200)
        self.assertEqual(back.call_id, ALICE_CALL_ID)
        self.assertEqual([v.branch for v in back.vias], ["z9hG4bK-p1-reinvite"])
        self.take()

    def test_cancel(self) -> None:
        """
        Alice's CANCEL reaches Bob with the INVITE's masked Call-ID and
        Via; Bob's 487 comes back to her revealed.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(self.invite_from_inside(), P1)
        invite = self.only(BOB, "INVITE")
        self.receive(answer(invite, 180), BOB_UDP)
        self.take()
        cancel = request(
            "CANCEL",
            "sip:bob@example.com",
            call_id=ALICE_CALL_ID,
            via="10.1.2.3:5060",
            branch="z9hG4bK-p1-1",
        )
        self.receive(cancel, P1)
        out = self.only(BOB, "CANCEL")
        self.assertEqual(out.call_id, invite.call_id)
        self.assertEqual(out.headers.get_all("Via"), invite.headers.get_all("Via"))
        self.receive(answer(out, 200, to_tag=None), BOB_UDP)
        self.receive(answer(invite, 487), BOB_UDP)
        final = self.only(P1.remote, 487)
        self.assertEqual(final.call_id, ALICE_CALL_ID)
        self.assertEqual([v.branch for v in final.vias], ["z9hG4bK-p1-1", "z9hG4bK-alice-1"])
        self.take()

    def test_forking(self) -> None:
        """
        Bob has two external contacts: both get the hidden INVITE with the
        same masked Call-ID; the one that answers reaches Alice revealed,
        the other is cancelled with the masked Call-ID.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.register("sip:bob@203.0.113.6:5060", CAROL_UDP)
        self.receive(self.invite_from_inside(), P1)
        first, second = self.only(BOB, "INVITE"), self.only(CAROL, "INVITE")
        self.assertEqual(first.call_id, second.call_id)
        self.receive(answer(second, 180, to_tag="carol-tag"), CAROL_UDP)
        self.receive(answer(first, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        ok = self.only(P1.remote, 200)
        self.assertEqual(ok.call_id, ALICE_CALL_ID)
        cancel = self.only(CAROL, "CANCEL")
        self.assertEqual(cancel.call_id, first.call_id)
        self.receive(answer(cancel, 200, to_tag=None), CAROL_UDP)
        self.receive(answer(second, 487, to_tag="carol-tag"), CAROL_UDP)
        self.take()


class SpiralTests(TopologyHarness, SynchronousTestCase):
    """A call from inside that spirals through an internal application server."""

    def test_spiral(self) -> None:
        """
        Alice's INVITE goes to the application server (inside, so not
        hidden) and comes back; Bob gets it with both passes and the server
        hidden. The 200 retraces the spiral; Bob's BYE is routed back
        through the server, then on towards P1.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        server = Flow("UDP", PROXY, 5060, "10.5.5.5", 5060)
        self.receive(
            self.invite_from_inside(f"Route: <sip:{PROXY}:5060;lr>, <sip:10.5.5.5;lr>"), P1
        )
        out = self.only(server.remote, "INVITE")
        self.assertFalse(out.call_id.startswith(TOKEN_PREFIX))
        back = out.with_headers(
            out.headers.replaced("Route", f"<sip:{PROXY}:5060;lr>")
            .prepended("Via", "SIP/2.0/UDP 10.5.5.5:5060;branch=z9hG4bK-as-1")
            .prepended("Record-Route", "<sip:10.5.5.5;lr>")
        )
        self.receive(back, server)
        spiralled = self.only(BOB, "INVITE")
        self.assertEqual(len(spiralled.vias), 1)
        self.assertEqual(len(spiralled.headers.values("Record-Route")), 1)
        self.take()
        self.receive(answer(spiralled, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        at_server = self.only(server.remote, 200)
        self.assertEqual(
            [v.host for v in at_server.vias], ["10.5.5.5", PROXY, "10.1.2.3", "pc33.corp.internal"]
        )
        rr = at_server.headers.values("Record-Route")
        self.assertEqual(
            [uri_of(v).split(";")[0] for v in rr][1:],
            ["sip:10.5.5.5", f"sip:{PROXY}:5060", "sip:p1.corp.internal"],
        )
        self.take()
        self.receive(at_server.with_headers(at_server.headers.first_removed("Via")), server)
        ok = self.only(P1.remote, 200)
        self.assertEqual(ok.call_id, ALICE_CALL_ID)
        self.assertEqual([v.branch for v in ok.vias], ["z9hG4bK-p1-1", "z9hG4bK-alice-1"])
        self.assertEqual(ok.headers.values("Record-Route"), rr)
        self.take()
        bye = request(
            "BYE",
            uri_of(spiralled.headers.get("Contact") or ""),
            *(f"Route: {v}" for v in spiralled.headers.values("Record-Route")),
            call_id=spiralled.call_id,
            via="203.0.113.5:5060",
            branch="z9hG4bK-bob-bye",
            from_="<sip:bob@example.com>;tag=bob-tag",
            to=spiralled.headers.get("From") or "",
            cseq=4,
        )
        self.receive(bye, BOB_UDP)
        at_server = self.only(server.remote, "BYE")
        self.assertEqual(at_server.uri, "sip:alice@10.0.0.5:5060")
        self.assertEqual(at_server.call_id, ALICE_CALL_ID)
        self.assertEqual(rr[1:], at_server.headers.values("Route"))
        self.take()
        self.receive(answer(at_server, 200, to_tag=None), server)
        self.assertEqual(self.only(BOB, 200).call_id, spiralled.call_id)
        self.take()


class OutsideInTests(TopologyHarness, SynchronousTestCase):
    """A call from an external phone to an internal one."""

    def call(self) -> tuple[Request, Response]:
        """
        Alice (outside) calls Dave, registered from inside; Dave answers
        through nobody (his own Record-Route copy) with his Contact.
        """
        self.register("sip:dave@10.0.0.7:5060", DESK, aor="dave")
        self.receive(
            request("INVITE", "sip:dave@example.com", "Contact: <sip:alice@198.51.100.7>"),
            ALICE,
        )
        invite = self.only(DESK.remote, "INVITE")
        self.take()
        # An internal proxy (10.0.0.1) between us and Dave record-routed too.
        rr = [("Record-Route", "<sip:10.0.0.1;lr>")]
        rr += [("Record-Route", v) for v in invite.headers.values("Record-Route")]
        self.receive(
            answer(
                invite,
                200,
                ("Contact", "<sip:dave@10.0.0.7:5060>"),
                *rr,
                to_tag="dave-tag",
                record_route=False,
            ),
            DESK,
        )
        ok = self.only(ALICE.remote, 200)
        self.take()
        return invite, ok

    def test_call_id_untouched(self) -> None:
        """
        An external caller's Call-ID is its own both ways: Dave sees it,
        and the 200 comes back with it.
        """
        invite, ok = self.call()
        self.assertEqual(invite.call_id, "call-1@198.51.100.7")
        self.assertEqual(ok.call_id, "call-1@198.51.100.7")

    def test_answer_hidden(self) -> None:
        """
        Dave's 200 reaches Alice with his Contact masked and no internal
        Record-Route entry (the one above ours is folded into it).
        """
        _invite, ok = self.call()
        contact = uri_of(ok.headers.get("Contact") or "")
        self.assertTrue(contact.startswith(f"sip:{TOKEN_PREFIX}"))
        rrs = ok.headers.values("Record-Route")
        self.assertEqual(len(rrs), 1)
        self.assertIn(";sth=", rrs[0])

    def test_in_dialog_both_ways(self) -> None:
        """
        Alice's ACK and BYE along the route set she learnt reach Dave at
        his real Contact through the hidden 10.0.0.1; Dave's BYE reaches
        Alice with her Call-ID.
        """
        invite, ok = self.call()
        route = [f"Route: {v}" for v in reversed(ok.headers.values("Record-Route"))]
        contact = uri_of(ok.headers.get("Contact") or "")
        ack = request(
            "ACK", contact, *route, branch="z9hG4bK-a-ack", to="<sip:dave@example.com>;tag=dave-tag"
        )
        self.receive(ack, ALICE)
        out = self.only(("10.0.0.1", 5060), "ACK")
        self.assertEqual(out.uri, "sip:dave@10.0.0.7:5060")
        self.take()
        bye = request(
            "BYE",
            contact,
            *route,
            branch="z9hG4bK-a-bye",
            cseq=2,
            to="<sip:dave@example.com>;tag=dave-tag",
        )
        self.receive(bye, ALICE)
        out = self.only(("10.0.0.1", 5060), "BYE")
        self.assertEqual(out.uri, "sip:dave@10.0.0.7:5060")
        self.assertEqual(out.call_id, "call-1@198.51.100.7")
        self.take()
        self.receive(
            answer(out, 200, to_tag=None),
            Flow("UDP", PROXY, 5060, "10.0.0.1", 5060),
        )
        self.assertEqual(self.only(ALICE.remote, 200).call_id, "call-1@198.51.100.7")
        self.take()
        # The other way (as if Dave had hung up first): his BYE to Alice.
        dave_bye = request(
            "BYE",
            "sip:alice@198.51.100.7",
            *(f"Route: {v}" for v in invite.headers.values("Record-Route")),
            call_id="call-1@198.51.100.7",
            via="10.0.0.7:5060",
            branch="z9hG4bK-dave-bye",
            from_="<sip:dave@example.com>;tag=dave-tag",
            to="<sip:alice@example.com>;tag=alice-tag",
            cseq=9,
        )
        self.receive(dave_bye, DESK)
        out = self.only(ALICE.remote, "BYE")
        self.assertEqual(out.call_id, "call-1@198.51.100.7")
        self.assertEqual(len(out.vias), 1)
        self.take()


class RefusalTests(TopologyHarness, SynchronousTestCase):
    """Forged, corrupted or clear internal values from outside."""

    def setUp(self) -> None:
        super().setUp()
        self.events = capture_log(self)

    def dialog(self) -> Request:
        """A call from inside to Bob, answered; the INVITE Bob got."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(self.invite_from_inside(), P1)
        invite = self.only(BOB, "INVITE")
        self.receive(answer(invite, 200, ("Contact", "<sip:bob@203.0.113.5:5060>")), BOB_UDP)
        self.take()
        return invite

    def bye(
        self,
        invite: Request,
        uri: str | None = None,
        call_id: str | None = None,
        route: list[str] | None = None,
    ) -> Request:
        """Bob's BYE, with what he may have tampered with."""
        routes = invite.headers.values("Record-Route") if route is None else route
        return request(
            "BYE",
            uri or uri_of(invite.headers.get("Contact") or ""),
            *(f"Route: {v}" for v in routes),
            call_id=call_id or invite.call_id,
            via="203.0.113.5:5060",
            branch="z9hG4bK-bob-bye",
            from_="<sip:bob@example.com>;tag=bob-tag",
            to=invite.headers.get("From") or "",
            cseq=5,
        )

    def refused(self, status: int) -> None:
        """Bob got C{status}, nothing went inside, and it was logged."""
        sent = self.take()
        self.assertEqual(
            [(m.status, f.remote) for m, f in sent if isinstance(m, Response)], [(status, BOB)]
        )
        self.assertEqual([m for m, f in sent if isinstance(m, Request)], [])
        rules = [e.get("rule") for e in self.events]
        self.assertIn("topology-hiding", rules)
        [event] = [e for e in self.events if e.get("rule") == "topology-hiding"]
        self.assertIn("203.0.113.5", event["source"])

    def flip(self, token: str) -> str:
        """C{token} with one character changed."""
        i = len(token) // 2
        return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]

    def test_forged_contact(self) -> None:
        """A BYE to a corrupted masked Contact gets 403."""
        invite = self.dialog()
        uri = uri_of(invite.headers.get("Contact") or "")
        self.receive(
            self.bye(invite, uri=self.flip(uri.split("@")[0]) + "@" + uri.split("@")[1]), BOB_UDP
        )
        self.refused(403)

    def test_forged_call_id(self) -> None:
        """A BYE with a corrupted masked Call-ID gets 400."""
        invite = self.dialog()
        self.receive(self.bye(invite, call_id=self.flip(invite.call_id)), BOB_UDP)
        self.refused(400)

    def test_forged_route(self) -> None:
        """A BYE whose Route of ours carries a corrupted hidden route set gets 403."""
        invite = self.dialog()
        [rr] = invite.headers.values("Record-Route")
        token = rr.split(";sth=")[1].split(";")[0].rstrip(">")
        self.receive(self.bye(invite, route=[rr.replace(token, self.flip(token))]), BOB_UDP)
        self.refused(403)

    def test_contact_of_another_call(self) -> None:
        """
        A masked Contact works only with its own call's Call-ID: used in
        another dialog (with that dialog's valid route) it gets 403.
        """
        invite = self.dialog()
        other = request(
            "INVITE",
            "sip:bob@example.com",
            f"Contact: {ALICE_CONTACT}",
            call_id="other@10.0.0.5",
            via="10.1.2.3:5060",
            branch="z9hG4bK-p1-2",
        )
        self.receive(other, P1)
        second = self.only(BOB, "INVITE")
        self.take()
        self.receive(self.bye(second, uri=uri_of(invite.headers.get("Contact") or "")), BOB_UDP)
        self.refused(403)

    def test_clear_internal_address(self) -> None:
        """
        A BYE from outside that names an internal address in the clear
        (with a valid signed route) gets 403: no way into the internal
        network by address.
        """
        invite = self.dialog()
        self.receive(self.bye(invite, uri="sip:victim@10.9.9.9"), BOB_UDP)
        self.refused(403)

    def test_in_dialog_to_a_name(self) -> None:
        """
        A BYE from outside with a valid signed route to a host name (which
        might resolve inside) instead of a masked Contact gets 403.
        """
        invite = self.dialog()
        self.receive(self.bye(invite, uri="sip:victim@pbx.corp.internal"), BOB_UDP)
        self.refused(403)
        self.assertEqual(self.locator.located, ["203.0.113.5"])  # only Bob's registration

    def test_clear_internal_route(self) -> None:
        """A request from outside with a Route to an internal address gets 403."""
        invite = self.dialog()
        routes = [*invite.headers.values("Record-Route"), "<sip:10.9.9.9;lr>"]
        self.receive(self.bye(invite, route=routes), BOB_UDP)
        self.refused(403)

    def test_forged_via_in_response(self) -> None:
        """A response whose hidden Via is corrupted is dropped (and logged)."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(self.invite_from_inside(), P1)
        invite = self.only(BOB, "INVITE")
        self.take()
        ringing = answer(invite, 180)
        via = ringing.headers.get_all("Via")[0]
        token = via.split(";sth=")[1].split(";")[0]
        ringing = ringing.with_headers(
            ringing.headers.replaced("Via", via.replace(token, self.flip(token)))
        )
        self.receive(ringing, BOB_UDP)
        self.assertEqual(self.sent_to(P1.remote, 180), [])
        self.assertIn("topology-hiding", [e.get("rule") for e in self.events])
        self.take()
        self.receive(answer(invite, 486), BOB_UDP)
        self.take()


class RegisterOutwardTests(TopologyHarness, SynchronousTestCase):
    """A REGISTER relayed from inside to an external registrar."""

    trusted = ("10.0.0.0/8", "203.0.113.9/32")  # the provider is trusted

    def test_register_relayed(self) -> None:
        """
        The provider sees our masked Contact (with expires kept) and no
        Path; its 200 lists the masked Contact, which the phone gets back
        as its own.
        """
        register = request(
            "REGISTER",
            "sip:provider.example.net",
            "Contact: <sip:alice@10.0.0.5:5060>;expires=600",
            "Path: <sip:p1.corp.internal;lr>",
            call_id="reg-1@10.0.0.5",
            via="10.1.2.3:5060",
            branch="z9hG4bK-reg-1",
            from_="<sip:alice@provider.example.net>;tag=r",
            to="<sip:alice@provider.example.net>",
        )
        self.locator.add("provider.example.net", ("UDP", "203.0.113.9", 5060))
        self.receive(register, P1)
        out = self.only(("203.0.113.9", 5060), "REGISTER")
        [contact] = out.headers.values("Contact")
        self.assertTrue(uri_of(contact).startswith(f"sip:{TOKEN_PREFIX}"))
        self.assertTrue(contact.endswith(";expires=600"))
        self.assertEqual(out.headers.get_all("Path"), ())
        self.take()
        ok = answer(out, 200, ("Contact", contact), record_route=False)
        self.receive(ok, PROVIDER)
        back = self.only(P1.remote, 200)
        self.assertEqual(back.headers.get("Contact"), "<sip:alice@10.0.0.5:5060>;expires=600")
        self.assertEqual(back.call_id, "reg-1@10.0.0.5")
        self.take()

    def test_call_to_registration(self) -> None:
        """
        An INVITE from the (trusted) provider to the masked Contact reaches
        the phone through the Path it registered with.
        """
        contact = self.hider.hide_request(
            request(
                "REGISTER",
                "sip:provider.example.net",
                "Contact: <sip:alice@10.0.0.5:5060>",
                "Path: <sip:p1.corp.internal;lr>",
                via=f"{PROXY}:5060",
            ),
            self.services.local,
            ("UDP", PROXY, 5060),
            False,
        ).headers.values("Contact")[0]
        invite = request(
            "INVITE",
            uri_of(contact),
            call_id="provider-call",
            via="203.0.113.9:5060",
            branch="z9hG4bK-prov",
        )
        self.receive(invite, PROVIDER)
        out = self.only(("10.1.2.3", 5060), "INVITE")
        self.assertEqual(out.uri, "sip:alice@10.0.0.5:5060")
        self.take()
        self.receive(answer(out, 486), P1)
        self.take()


class CallEndTests(TopologyHarness, SynchronousTestCase):
    """The proxy ends a call itself (the dialog tracker's BYEs) with hiding on."""

    track_dialogs = True

    def setUp(self) -> None:
        super().setUp()
        self.addCleanup(self.core.dialogs.stop)

    def test_inside_out(self) -> None:
        """
        A call from inside is tracked in the internal view; our BYE to
        Bob carries the masked Call-ID and nothing internal, our BYE to
        Alice (through P1) the real one; both answers are taken.
        """
        InsideOutTests.call(self)  # type: ignore[arg-type]
        tracker = self.core.dialogs
        [dialog] = tracker.dialogs
        self.assertEqual(dialog.call_id, ALICE_CALL_ID)
        self.assertTrue(tracker.end(ALICE_CALL_ID, dialog.caller_tag, dialog.callee_tag, "test"))
        to_bob = self.only(BOB, "BYE")
        to_alice = self.only(P1.remote, "BYE")
        self.assertTrue(to_bob.call_id.startswith(TOKEN_PREFIX))
        self.assertEqual(to_bob.call_id, self.hider.mask_call_id(ALICE_CALL_ID))
        self.assertEqual(to_alice.call_id, ALICE_CALL_ID)
        self.assertEqual(to_alice.uri, "sip:alice@10.0.0.5:5060")
        self.assertEqual(to_alice.headers.values("Route"), ["<sip:p1.corp.internal;lr>"])
        self.take()
        self.receive(answer(to_bob, 200, to_tag=None), BOB_UDP)
        self.receive(answer(to_alice, 200, to_tag=None), P1)
        self.take()

    def test_outside_in(self) -> None:
        """
        A call from outside is ended with the caller's own Call-ID towards
        the caller, and Dave's Contact (not the mask) as his target.
        """
        OutsideInTests.call(self)  # type: ignore[arg-type]
        tracker = self.core.dialogs
        [dialog] = tracker.dialogs
        self.assertTrue(tracker.end(dialog.call_id, dialog.caller_tag, dialog.callee_tag, "t"))
        to_alice = self.only(ALICE.remote, "BYE")
        to_dave = self.only(DESK.remote, "BYE")
        self.assertEqual(to_alice.call_id, "call-1@198.51.100.7")
        self.assertEqual(to_dave.uri, "sip:dave@10.0.0.7:5060")
        self.take()
        self.receive(answer(to_alice, 200, to_tag=None), ALICE)
        self.receive(answer(to_dave, 200, to_tag=None), DESK)
        self.take()
