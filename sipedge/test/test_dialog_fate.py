# -*- test-case-name: sipedge.test.test_dialog_fate -*-
"""
What still decides a request within a dialog set up through us (our own
signed Record-Route came back as its Route), on the default chain: the
stages it skips (L{IDialogNeutralStage}) cannot change its fate
(L{sipedge.test.test_pipeline_dialog}); every stage it still runs still
acts on it, here. A Route that is forged, signed for another call, or
stale makes no dialog: such a request goes the whole way, challenge
included.
The argument is in C{doc/architecture.md} ("Requests within our
dialogs") and C{doc/security.md}.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.auth import MemoryCredentialStore, NonceSource
from sipedge.config import DEFAULT_STAGES
from sipedge.flow import Flow
from sipedge.message import Request, SipURI, parse_datagram, parse_uri
from sipedge.pipeline import (
    Drop,
    Forward,
    RequestContext,
    Respond,
    StageServices,
    build_chain,
)
from sipedge.proxy import LocalIdentity, RecordRouteSigner, Registrar
from sipedge.security import Monitor, Security, TollFraudGuard
from sipedge.store import MemoryLocationStore
from sipedge.testing import Phone, edge_in_memory

PROXY = "192.0.2.1"
#: A party of the call: neither trusted nor authenticated (the callee, or
#: a caller who authenticated the INVITE only).
SOURCE = "198.51.100.7"
FLOW = Flow("UDP", PROXY, 5060, SOURCE, 5060)
CALL_ID = "fate-1@198.51.100.7"
#: C{[dialogs] route_lifetime}, the default.
LIFETIME = 86400.0


class DialogFateTests(SynchronousTestCase):
    """The default chain on ACK and BYE that carry our signed Record-Route back."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        store = MemoryLocationStore()
        self.security = Security(clock=self.clock)
        self.addCleanup(self.security.close)
        self.signer = RecordRouteSigner(b"k" * 32, self.clock, LIFETIME)
        self.monitor = Monitor(clock=self.clock, security=self.security)
        self.guard = TollFraudGuard(clock=self.clock)
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(("example.com",), (("UDP", PROXY, 5060),)),
            trusted=(ipaddress.ip_network("10.0.0.0/8"),),
            location=store,
            registrar=Registrar(store, self.clock),
            signer=self.signer,
            security=self.security,
            credentials=MemoryCredentialStore(),
            nonces=NonceSource(b"k" * 32, self.clock),
            monitor=self.monitor,
            toll_fraud=self.guard,
        )
        self.chain = build_chain(DEFAULT_STAGES, {}, self.services)
        self.cseq = 1

    def request(
        self,
        method: str,
        se: str | None = None,
        *extra: str,
        call_id: str = CALL_ID,
        max_forwards: int = 70,
    ) -> Request:
        """
        An in-dialog C{method} from L{SOURCE} to the callee's Contact,
        along our Record-Route signed for C{call_id} (or with C{se} as
        its MAC; none if empty).
        """
        mac = self.signer.mac(call_id) if se is None else se
        self.cseq += method != "ACK"
        lines = [
            f"{method} sip:bob@203.0.113.5:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP {SOURCE}:5060;branch=z9hG4bK-fate{self.cseq}{method}",
            f"Max-Forwards: {max_forwards}",
            f"Route: <sip:{PROXY};lr{f';se={mac}' if mac else ''}>",
            "From: <sip:alice@example.com>;tag=a",
            "To: <sip:bob@example.com>;tag=b",
            f"Call-ID: {CALL_ID}",
            f"CSeq: {self.cseq} {method}",
            *extra,
            "Content-Length: 0",
        ]
        message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert isinstance(message, Request)
        return message

    def run_chain(self, request: Request, flow: Flow = FLOW) -> tuple[Any, RequestContext]:
        context = RequestContext(request, flow, self.services)
        result = self.chain.run(context)
        self.assertNotIsInstance(result, type(None))
        return result, context

    def assertForwarded(self, request: Request) -> RequestContext:
        result, context = self.run_chain(request)
        self.assertIsInstance(result, Forward)
        self.assertEqual(context.annotations.get("route"), "dialog")
        return context

    def test_forwarded_unchallenged(self) -> None:
        """
        ACK and BYE of the dialog from a party that is neither trusted nor
        authenticated are forwarded: digest-auth, which would challenge
        a BYE, is skipped, and responsibility relays it.
        """
        for method in ("ACK", "BYE"):
            context = self.assertForwarded(self.request(method))
            self.assertEqual(context.annotations["responsibility"], "relay")
            self.assertIsNone(context.identity)

    def test_forged_goes_the_whole_way(self) -> None:
        """
        A BYE whose Route is our address with no MAC, a wrong one, or the
        MAC of another call (a Route copied from an old call) is no dialog
        of ours: digest-auth runs and challenges it.
        """
        other = self.signer.mac("another-call@198.51.100.7")
        for se in ("", "0" * 20, other):
            result, context = self.run_chain(self.request("BYE", se))
            self.assertIsInstance(result, Respond, se)
            self.assertEqual(result.status, 407, se)
            self.assertNotEqual(context.annotations.get("route"), "dialog")

    def test_stale_goes_the_whole_way(self) -> None:
        """
        Our Route, signed for this call, counts for C{route_lifetime}
        after it was made; later it is stale: a BYE under it is
        challenged.
        """
        se = self.signer.mac(CALL_ID)
        self.clock.advance(LIFETIME - 60)
        self.assertForwarded(self.request("BYE", se))
        self.clock.advance(120)
        result, context = self.run_chain(self.request("BYE", se))
        self.assertEqual((result.status, context.annotations.get("route")), (407, None))

    def test_banned(self) -> None:
        """A banned source's ACK and BYE are dropped, unanswered, though in a dialog."""
        self.security.ban(SOURCE, "test")
        for method in ("ACK", "BYE"):
            result, _ = self.run_chain(self.request(method))
            self.assertEqual(result, Drop("banned source"))
        self.assertEqual(self.security.stats["ban_check_dropped"], 2)

    def test_flood(self) -> None:
        """
        In-dialog requests count against the source's flood budget, and
        past it they are dropped like any other.
        """
        results = [self.run_chain(self.request("INFO"))[0] for _ in range(200)]
        dropped = [r for r in results if isinstance(r, Drop)]
        self.assertTrue(dropped)
        self.assertTrue(all(r.reason.startswith("flood:") for r in dropped))
        self.assertIsInstance(results[0], Forward)
        self.assertGreater(self.security.stats["flood_dropped"], 0)

    def test_monitor_restriction(self) -> None:
        """A source the monitor restricted is held to its reduced budget in a dialog too."""
        self.monitor.restrict(SOURCE, 60)
        results = [self.run_chain(self.request("INFO"))[0] for _ in range(50)]
        self.assertIn(Drop("monitor: restricted source over its reduced budget"), results)

    def test_monitor_counts(self) -> None:
        """The monitor sees the dialog's ACK (call confirmed) and BYE (call over)."""
        self.monitor.calls.start(CALL_ID, SOURCE, SOURCE, self.clock.seconds())
        self.assertForwarded(self.request("ACK"))
        [call] = self.monitor.calls.calls()
        self.assertTrue(call.confirmed)
        self.assertForwarded(self.request("BYE"))
        self.assertEqual(self.monitor.calls.calls(), [])

    def test_toll_fraud_counts(self) -> None:
        """The toll-fraud guard sees the BYE that ends a call it counted."""
        self.guard.calls.start(CALL_ID, "alice", SOURCE, self.clock.seconds())
        self.assertEqual(self.guard.active_calls("alice"), 1)
        self.assertForwarded(self.request("BYE"))
        self.assertEqual(self.guard.active_calls("alice"), 0)

    def test_scanner(self) -> None:
        """A scanner's User-Agent is dropped and banned, in a dialog or not."""
        result, _ = self.run_chain(self.request("BYE", None, "User-Agent: friendly-scanner"))
        self.assertEqual(result, Drop("scanner User-Agent"))
        self.assertTrue(self.security.is_banned(SOURCE))

    def test_sanity(self) -> None:
        """A malformed in-dialog BYE is refused with 400; a malformed ACK dropped."""
        bye = self.request("BYE")
        bad = bye.with_headers(bye.headers.replaced("CSeq", "7 INVITE"))
        result, _ = self.run_chain(bad)
        self.assertIsInstance(result, Respond)
        self.assertEqual(result.status, 400)
        ack = self.request("ACK")
        bad = ack.with_headers(ack.headers.replaced("CSeq", "7 INVITE"))
        result, _ = self.run_chain(bad)
        self.assertIsInstance(result, Drop)

    def test_max_forwards(self) -> None:
        """An in-dialog BYE that may go no further gets 483; such an ACK is dropped."""
        result, _ = self.run_chain(self.request("BYE", max_forwards=0))
        self.assertEqual(result, Respond(483))
        result, _ = self.run_chain(self.request("ACK", max_forwards=0))
        self.assertEqual(result, Drop("ACK with Max-Forwards 0"))


class ServiceTests(SynchronousTestCase):
    """The service signs with its reactor's time and C{[dialogs] route_lifetime}."""

    def test_route_lifetime(self) -> None:
        """A value the service made counts for the configured lifetime, not after."""
        edge = edge_in_memory(
            '[sip]\ndomains = ["lab.test"]\nlisten = ["udp:192.0.2.1:5060"]\n'
            "[dialogs]\nroute_lifetime = 600\n",
            Path(self.mktemp()).absolute(),
        )
        self.addCleanup(edge.stop)
        signer = edge.service.signer
        uri = parse_uri(f"sip:192.0.2.1;lr;se={signer.mac(CALL_ID)}")
        assert isinstance(uri, SipURI)
        edge.reactor.advance(600)
        self.assertTrue(signer.verify(uri, CALL_ID))
        edge.reactor.advance(60)
        self.assertFalse(signer.verify(uri, CALL_ID))


class BannedPartyTests(SynchronousTestCase):
    """A whole sipedge on its defaults: a party banned during a call."""

    def setUp(self) -> None:
        self.edge = edge_in_memory(
            '[sip]\ndomains = ["lab.test"]\nlisten = ["udp:192.0.2.1:5060"]\n',
            Path(self.mktemp()).absolute(),
        )
        self.addCleanup(self.edge.stop)
        self.reactor = self.edge.reactor
        self.phones = []
        for user, host in (("alice", "192.0.2.10"), ("bob", "192.0.2.20")):
            self.edge.add_user(user, f"{user}-secret")
            phone = Phone(
                user, "lab.test", self.reactor, host=host, password=f"{user}-secret",
                outbound=self.edge.udp,
            )  # fmt: skip
            phone.listen(self.reactor, 5060)
            self.addCleanup(phone.stop)
            self.phones.append(phone)
            phone.register()
        self.reactor.flush()

    def byes_to_bob(self) -> list[Request]:
        bob = self.phones[1]
        return [m for m in bob.received if isinstance(m, Request) and m.method == "BYE"]

    def hang_up(self, ban: bool) -> None:
        alice = self.phones[0]
        call = alice.invite("sip:bob@lab.test")
        self.reactor.flush()
        self.assertEqual(call.state, "confirmed", call.statuses)
        if ban:
            self.edge.service.security.ban("192.0.2.10", "test")
        alice.bye(call)
        self.reactor.flush()

    def test_bye_passes(self) -> None:
        """Alice's BYE, along our signed Record-Route, reaches Bob."""
        self.hang_up(ban=False)
        self.assertEqual(len(self.byes_to_bob()), 1)

    def test_banned_bye_refused(self) -> None:
        """
        Once Alice's address is banned, her BYE in the call she set up is
        dropped, unanswered: in a dialog through us or not, a banned
        source gets nothing through.
        """
        self.hang_up(ban=True)
        self.assertEqual(self.byes_to_bob(), [])
