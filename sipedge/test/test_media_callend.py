# -*- test-case-name: sipedge.test.test_media_callend -*-
"""
The proxy ends anchored calls: a L{ProxyCore} with the C{media-anchor}
stage in its chain, a real in-process relay on L{FakeReactor}'s in-memory
network and a L{DialogTracker}, wired as C{sipedge/service.py} wires them.

When the relay ends a call's media (idle, maximum duration) or the RFC 4028
session expires, each party gets a BYE and the relay's ports are released;
a CANCEL while the chain is still deciding releases an offer at once. Every
test ends with a leak check: no port, session, call, dialog, transaction or
delayed call left.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import DEFAULT_CONFIG
from sipedge.flow import Flow
from sipedge.media import ControlServerFactory, RemoteMediaRelay
from sipedge.message import Message, Request, Response
from sipedge.pipeline import StageServices, build_chain
from sipedge.pipeline.stages import MediaAnchorStage
from sipedge.proxy import DialogTracker, Registrar
from sipedge.testing import (
    ALICE,
    ALICE_CONTACT,
    BOB,
    BOB_CONTACT,
    BOB_UDP,
    UPSTREAM,
    FakeReactor,
    PendingLookupStore,
    ProxyHarness,
    counting_random,
    flush_on_advance,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_CONFIG as CONFIG
from sipedge.testing import sip_answer as answer
from sipedge.testing import sip_request as request

STAGES = (
    "sanity",
    "max-forwards",
    "loop-detect",
    "route",
    "responsibility",
    "media-anchor",
    "registrar",
    "location",
    "static-route",
    "forward",
)

CALL_ID = "call-1@198.51.100.7"
# Alice's SDP names her signalling address, Bob's his.
OFFER = sdp_a(host="198.51.100.7").decode()
ANSWER = sdp_b(host="203.0.113.5")


class CallEndHarness(ProxyHarness):
    """The proxy with the media-anchor stage and a dialog tracker."""

    media = CONFIG
    store: PendingLookupStore

    def build(self) -> None:
        super().build()
        reactor = FakeReactor()
        reactor.advance(1000)
        self.clock = reactor
        self.store = PendingLookupStore()
        self.registrar = Registrar(self.store, reactor)
        self.relay = self.media.build_relay(reactor, random=counting_random(1))
        self.services = StageServices(
            clock=reactor,
            local=self.services.local,
            trusted=self.services.trusted,
            location=self.store,
            registrar=self.registrar,
            signer=self.signer,
            config=attrs.evolve(DEFAULT_CONFIG, media=self.media),
            media=self.stage_relay(reactor),
        )
        chain = build_chain(STAGES, {}, self.services)
        [self.stage] = [s for s in chain.stages if isinstance(s, MediaAnchorStage)]
        self.tracker = DialogTracker(reactor)
        self.core = self.make_core(chain, observers=[self.stage], dialogs=self.tracker)
        # As sipedge/service.py does.
        self.tracker.originate = self.core.originate
        self.stage.on_media_ended = self.tracker.media_ended
        self.tracker.add_listener(self.stage)

    def stage_relay(self, reactor: FakeReactor) -> Any:
        """The relay the stage uses: the in-process one."""
        return self.relay

    def assert_clean(self) -> None:
        super().assert_clean()
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.stage.calls, ())
        self.assertEqual(len(self.tracker), 0)

    def invite(self) -> None:
        self.receive(
            request(
                "INVITE",
                "sip:bob@example.com",
                f"Contact: {ALICE_CONTACT}",
                "Content-Type: application/sdp",
                body=OFFER,
            ),
            ALICE,
        )

    def call(self, *ok_fields: tuple[str, str]) -> Response:
        """Alice calls Bob through the relay; Bob answers; Alice ACKs."""
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.assertIn(b"c=IN IP4 203.0.113.1", forwarded.body)
        ok = answer(forwarded, 200, ("Contact", BOB_CONTACT), *ok_fields)
        self.receive(ok.with_body(ANSWER, "application/sdp"), BOB_UDP)
        relayed = self.only(UPSTREAM, 200)
        self.assertIn(b"c=IN IP4 203.0.113.1", relayed.body)
        self.ack(relayed)
        self.assertEqual(self.stage.calls, (f"{CALL_ID};alice-tag",))
        self.assertEqual(len(self.tracker), 1)
        return relayed

    def ack(self, ok: Response) -> None:
        """Alice ACKs the C{ok} she got, along its Record-Route."""
        [rr] = ok.headers.get_all("Record-Route")
        self.receive(
            request(
                "ACK",
                "sip:bob@203.0.113.5:5060",
                f"Route: {rr}",
                branch="z9hG4bK-alice-ack",
                to="<sip:bob@example.com>;tag=bob-tag",
            ),
            ALICE,
        )
        self.take()

    def byes(self) -> tuple[Request, Request]:
        to_alice, to_bob = self.only(UPSTREAM, "BYE"), self.only(BOB, "BYE")
        self.receive(answer(to_alice, 200, to_tag=None), ALICE)
        self.receive(answer(to_bob, 200, to_tag=None), BOB_UDP)
        return to_alice, to_bob


class MediaEndTests(CallEndHarness, SynchronousTestCase):
    """The relay ends a call's media: the proxy sends BYE to both parties."""

    def test_idle(self) -> None:
        """
        No media for C{idle_timeout} after the answer: the relay ends the
        session, and each party gets a BYE with C{Reason: SIP;cause=200;
        text="media timeout"}; the ports are closed.
        """
        self.call()
        self.clock.advance(CONFIG.idle_timeout - 1)
        self.assertEqual(self.take(), [])
        self.clock.advance(1)
        self.assertEqual(self.relay.open_ports(), [])
        to_alice, to_bob = self.byes()
        for bye in (to_alice, to_bob):
            self.assertEqual(bye.headers.get("Reason"), 'SIP;cause=200;text="media timeout"')
            self.assertEqual(bye.call_id, CALL_ID)
        self.assertEqual(to_alice.to_address.tag, "alice-tag")
        self.assertEqual(to_bob.to_address.tag, "bob-tag")

    def test_max_duration(self) -> None:
        """The relay's C{max_duration}: BYE with "media maximum duration"."""
        self.relay.close()
        self.media = attrs.evolve(CONFIG, idle_timeout=0, max_duration=600)
        self.build()
        self.call()
        self.clock.advance(600)
        to_alice, _ = self.byes()
        self.assertEqual(
            to_alice.headers.get("Reason"), 'SIP;cause=200;text="media maximum duration"'
        )

    def test_bye_from_party(self) -> None:
        """A party's own BYE ends the call: no BYE of ours later, nothing left."""
        relayed = self.call()
        [rr] = relayed.headers.get_all("Record-Route")
        self.receive(
            request(
                "BYE",
                "sip:bob@203.0.113.5:5060",
                f"Route: {rr}",
                branch="z9hG4bK-alice-bye",
                to="<sip:bob@example.com>;tag=bob-tag",
                cseq=2,
            ),
            ALICE,
        )
        bye = self.only(BOB, "BYE")
        self.receive(answer(bye, 200, to_tag=None), BOB_UDP)
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(len(self.tracker), 0)
        self.take()
        self.clock.advance(CONFIG.idle_timeout + 1)
        self.assertEqual(self.take(), [])


class RemoteMediaLostTests(CallEndHarness, SynchronousTestCase):
    """
    The stage's relay is a L{RemoteMediaRelay} (over in-memory TCP, to the
    in-process relay): a call whose session the relay no longer has when
    the proxy reconnects (it restarted) is ended with a BYE to each party.
    """

    SECRET = b"remote-media-lost-test-secret"

    def stage_relay(self, reactor: FakeReactor) -> Any:
        self.factory = ControlServerFactory(self.relay, self.SECRET, reactor,
                                            random=counting_random(50))
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.remote = RemoteMediaRelay(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.listening.port),
            self.SECRET,
            reactor,
            description="test relay",
            retry_policy=lambda attempt: 1.0,
            random=counting_random(90),
        )
        self.remote.start()
        flush_on_advance(reactor)  # the control connection's bytes move with time
        reactor.flush()
        assert self.remote.connected
        return self.remote

    def receive(self, message: Message, flow: Flow) -> None:
        super().receive(message, flow)
        self.clock.flush()  # type: ignore[attr-defined]

    def assert_clean(self) -> None:
        super().assert_clean()
        closed = self.remote.close()
        self.clock.flush()  # type: ignore[attr-defined]
        self.successResultOf(closed)
        self.listening.stopListening()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_relay_restarted(self) -> None:
        """
        The relay loses every session while the proxy is disconnected
        (it restarted): after reconnecting the proxy ends the call, BYE to
        both parties with C{Reason: SIP;cause=200;text="media session lost
        by the relay"}.
        """
        self.call()
        self.listening.stopListening()
        for connection in list(self.factory.connections):
            assert connection.transport is not None
            connection.transport.loseConnection()
        self.clock.flush()  # type: ignore[attr-defined]
        self.assertFalse(self.remote.connected)
        self.relay.close()  # its 'closed' events reach no one
        self.clock.flush()  # type: ignore[attr-defined]
        self.assertEqual(self.take(), [])
        self.listening = self.clock.listenTCP(  # type: ignore[attr-defined]
            self.listening.port, self.factory, interface="127.0.0.1"
        )
        self.clock.advance(1.0)
        self.assertTrue(self.remote.connected)
        to_alice, to_bob = self.byes()
        for bye in (to_alice, to_bob):
            self.assertEqual(
                bye.headers.get("Reason"), 'SIP;cause=200;text="media session lost by the relay"'
            )
        self.assertEqual(self.stage.calls, ())
        self.assertEqual(self.remote.remembered, frozenset())


class SessionExpiryTests(CallEndHarness, SynchronousTestCase):
    """RFC 4028: a session not refreshed in time is ended, and its media released."""

    media = attrs.evolve(CONFIG, idle_timeout=0)

    def test_expiry(self) -> None:
        """
        A 2xx with Session-Expires 120 and no refresh: at 120 - 32 s each
        party gets a BYE and the relay's ports are released at once.
        """
        self.call(("Session-Expires", "120;refresher=uac"))
        self.clock.advance(87)
        self.assertEqual(self.take(), [])
        self.assertNotEqual(self.relay.open_ports(), [])
        self.clock.advance(1)
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.stage.calls, ())
        to_alice, _ = self.byes()
        self.assertEqual(to_alice.headers.get("Reason"), 'SIP;cause=408;text="session expired"')


class ForgottenDialogTests(CallEndHarness, SynchronousTestCase):
    """A dialog the tracker forgets (no refresh, no BYE) is forgotten by the stage too."""

    def test_call_without_media(self) -> None:
        """
        An INVITE without an offer answered by a 200 without one (no relay
        session: no relay timer will end it), and no BYE ever: when the
        tracker forgets the dialog after C{max_lifetime}, the stage
        forgets the call too instead of keeping it for ever.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.receive(
            request("INVITE", "sip:bob@example.com", f"Contact: {ALICE_CONTACT}"), ALICE
        )
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 200, ("Contact", BOB_CONTACT)), BOB_UDP)
        relayed = self.only(UPSTREAM, 200)
        self.ack(relayed)
        self.assertEqual(len(self.stage.calls), 1)
        self.assertEqual(self.relay.session_keys, ())
        self.clock.advance(self.tracker.max_lifetime)
        self.assertEqual(self.tracker.stats["forgotten"], 1)
        self.assertEqual(self.stage.calls, ())
        self.assertEqual(self.take(), [])  # no BYE


class CancelDuringChainTests(CallEndHarness, SynchronousTestCase):
    """A CANCEL while a later stage (C{location}) is still looking up."""

    def test_released_at_once(self) -> None:
        """
        C{location} waits on the store; the media-anchor stage allocates
        nothing before the routing decision; the caller CANCELs: the 487
        passes the response chain and nothing is left, not at
        C{setup_timeout}; nothing is forwarded when the look-up ends.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.store.hold = True
        self.invite()
        self.assertEqual(self.relay.open_ports(), [])
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 200, 487])
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.stage.calls, ())
        self.store.hold = False
        [d] = self.store.lookups
        d.callback(self.successResultOf(self.store.lookup("sip:bob@example.com", 1000)))
        self.assertEqual(self.sent_to(BOB), [])
        self.assertEqual(self.relay.open_ports(), [])


class CancelDuringStageTests(CallEndHarness, SynchronousTestCase):
    """
    A CANCEL while the routing decision waits (C{location} looks up): the
    media-anchor stage, handed the targets after the 487, allocates then,
    and is told as an observer.
    """

    media = attrs.evolve(CONFIG, internal_address="10.0.0.1", external_address="203.0.113.1")

    def test_released_when_decided(self) -> None:
        """
        The stage allocates once the look-up ends, after the CANCEL; the
        core tells it the INVITE ended with 487, and it releases at once.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.store.hold = True
        self.invite()
        self.receive(request("CANCEL", "sip:bob@example.com"), ALICE)
        self.assertEqual(self.statuses(UPSTREAM), [100, 200, 487])
        self.assertEqual(self.relay.stats_now().allocated, 0)
        self.store.hold = False
        [d] = self.store.lookups
        d.callback(self.successResultOf(self.store.lookup("sip:bob@example.com", 1000)))
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.assertEqual(self.relay.stats_now().ended, {"released": 1})
        self.assertEqual(self.sent_to(BOB), [])
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.stage.calls, ())


class TimeoutTests(CallEndHarness, SynchronousTestCase):
    """The INVITE ends by transaction timeout: the core's 408 releases the offer."""

    media = attrs.evolve(CONFIG, setup_timeout=600)

    def test_no_answer(self) -> None:
        """
        Nobody answers the forwarded INVITE: at Timer B (64*T1) the core
        sends 408 upstream through the response chain, and the relay's
        ports are released then, long before C{setup_timeout}.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        self.assertNotEqual(self.relay.open_ports(), [])
        self.clock.advance(31.9)
        self.assertNotEqual(self.relay.open_ports(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.statuses(UPSTREAM), [100, 408])
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.stage.calls, ())

    def test_timer_c(self) -> None:
        """
        Bob rings (180) but never answers: Timer C CANCELs the branch, and
        the 487 that comes back releases the offer.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        self.invite()
        forwarded = self.only(BOB, "INVITE")
        self.receive(answer(forwarded, 180), BOB_UDP)
        self.clock.advance(180)
        cancel = self.only(BOB, "CANCEL")
        self.receive(answer(cancel, 200), BOB_UDP)
        self.assertNotEqual(self.relay.open_ports(), [])
        self.receive(answer(forwarded, 487), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [100, 180, 487])
        self.assertEqual(self.relay.open_ports(), [])
