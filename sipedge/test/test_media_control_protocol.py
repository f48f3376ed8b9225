# -*- test-case-name: sipedge.test.test_media_control_protocol -*-
"""
Tests for the relay control protocol over connections in memory:
L{sipedge.media.ControlServerFactory} serving a real L{MediaRelay} on
L{sipedge.testing.FakeReactor}'s network, and L{RemoteMediaRelay} talking
to it; single connections driven by hand over C{StringTransport}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import StringTransport
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from sipedge.interfaces import IMediaRelay
from sipedge.media import (
    ControlProtocolError,
    ControlServerFactory,
    DirectionStats,
    MediaOffer,
    MediaOfferError,
    MediaRelay,
    PortsExhausted,
    RelayPolicy,
    RelayStats,
    RelayTimeout,
    RelayUnavailable,
    SessionEnd,
    SessionExists,
    StreamOffer,
    UnknownSession,
    client_proof,
    encode_message,
    server_proof,
    welcome_message,
)
from sipedge.media._remote import ControlClientProtocol
from sipedge.testing import MEDIA_LIMITS as LIMITS
from sipedge.testing import MediaEndpoint as Endpoint
from sipedge.testing import (
    RemoteRelayTestCase,
    counting_random,
)
from sipedge.testing import rtp_packet as rtp

SECRET = b"correct horse battery staple"
RELAY = "203.0.113.1"
CONTROL = "127.0.0.1"
A_HOST, B_HOST = "192.0.2.10", "198.51.100.20"
LOW, HIGH = 20000, 20007


@implementer(IMediaRelay)
class StalledRelay:
    """An L{IMediaRelay} whose calls wait until the test fires them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], Deferred[Any]]] = []
        self.observers: list[Any] = []

    def _call(self, name: str, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((name, args, d))
        return d

    def allocate(self, session_key: str, offer: MediaOffer) -> Deferred[Any]:
        return self._call("allocate", session_key, offer)

    def update(self, session_key: str, answer: MediaOffer) -> Deferred[Any]:
        return self._call("update", session_key, answer)

    def reoffer(self, session_key: str, offer: MediaOffer, offerer: Any) -> Deferred[Any]:
        return self._call("reoffer", session_key, offer, offerer)

    def withdraw(self, session_key: str) -> Deferred[Any]:
        return self._call("withdraw", session_key)

    def release(self, session_key: str) -> Deferred[Any]:
        return self._call("release", session_key)

    def sessions(self) -> Deferred[Any]:
        return self._call("sessions")

    def stats(self) -> Deferred[Any]:
        return self._call("stats")

    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    def remove_observer(self, observer: Any) -> None:
        self.observers.remove(observer)


class RemoteRelayTests(RemoteRelayTestCase):
    """Every L{IMediaRelay} call through the protocol to a real relay."""

    def test_provides(self) -> None:
        """L{RemoteMediaRelay} provides L{IMediaRelay}."""
        from sipedge.media import RemoteMediaRelay

        self.assertTrue(verifyClass(IMediaRelay, RemoteMediaRelay))
        self.assertTrue(verifyObject(IMediaRelay, self.remote))
        self.assertTrue(self.remote.connected)
        self.assertIn("connected", repr(self.remote))

    def test_call_flow_and_statistics(self) -> None:
        """
        allocate, update, sessions, stats and release go to the relay and
        come back as the same values; media flows through the ports the
        remote allocation names, and the statistics count it.
        """
        a = Endpoint()
        a.socket = self.reactor.network.bind(A_HOST, 4000, a)
        b = Endpoint()
        b.socket = self.reactor.network.bind(B_HOST, 5000, b)
        offer = MediaOffer([StreamOffer(A_HOST, 4000)], RelayPolicy())
        allocation = self.wait(self.remote.allocate("call-1", offer))
        self.assertEqual(allocation.streams, self.relay.session("call-1").allocation_streams())
        self.assertFalse(allocation.answered)
        answered = self.wait(self.remote.update("call-1", MediaOffer([StreamOffer(B_HOST, 5000)])))
        self.assertTrue(answered.answered)
        (stream,) = answered.streams
        a.socket.write(rtp(1), (RELAY, stream.a.port))
        a.socket.write(rtp(2), (RELAY, stream.a.port))
        b.socket.write(rtp(3, ssrc=0xB0B), (RELAY, stream.b.port))
        stranger = Endpoint()
        stranger.socket = self.reactor.network.bind("203.0.113.66", 4000, stranger)
        stranger.socket.write(rtp(4), (RELAY, stream.a.port))
        self.reactor.flush()
        self.assertEqual(b.packets, [rtp(1), rtp(2)])
        self.assertEqual(a.packets, [rtp(3, ssrc=0xB0B)])
        sessions = self.wait(self.remote.sessions())
        self.assertEqual(sessions, self.successResultOf(self.relay.sessions()))
        live = sessions["call-1"]
        self.assertEqual((live.a_to_b.packets, live.a_to_b.bytes), (2, 344))
        self.assertEqual(live.a_to_b.drops, {"foreign-source": 1})
        self.assertEqual(self.wait(self.remote.stats()), self.relay.stats_now())
        final = self.wait(self.remote.release("call-1"))
        self.assertEqual(final.state, "ended")
        self.assertEqual(final.b_to_a.packets, 1)
        self.assertEqual(self.relay.open_ports(), [])
        self.assertIsNone(self.wait(self.remote.release("call-1")))
        stats = self.wait(self.remote.stats())
        self.assertEqual(
            (stats.allocated, stats.ended, stats.a_to_b.packets), (1, {"released": 1}, 2)
        )
        self.assertEqual([(e.session_key, e.reason) for e in self.ended], [("call-1", "released")])
        self.assertEqual(self.ended[0].stats, final)

    def test_errors_keep_their_class(self) -> None:
        """The relay's errors are raised as the same class, with their status hint."""
        offer = MediaOffer([StreamOffer(A_HOST, 4000)])
        self.wait(self.remote.allocate("k", offer))
        exists = self.failure(self.remote.allocate("k", offer), SessionExists)
        self.assertIn("'k'", str(exists))
        unknown = self.failure(self.remote.update("nope", offer), UnknownSession)
        self.assertEqual(str(unknown), "no media session 'nope'")
        bad = self.failure(
            self.remote.allocate("bad", MediaOffer([StreamOffer("example.com", 4000)])),
            MediaOfferError,
        )
        self.assertEqual(bad.status_hint, 488)
        self.wait(self.remote.allocate("k2", offer))
        exhausted = self.failure(self.remote.allocate("k3", offer), PortsExhausted)
        self.assertEqual(exhausted.status_hint, 503)
        self.wait(self.remote.release("k"))
        self.wait(self.remote.release("k2"))

    def test_session_end_pushed(self) -> None:
        """A session the relay ends by itself (setup timeout) reaches the observers."""
        self.wait(self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)])))
        self.reactor.advance(LIMITS.setup_timeout)
        self.reactor.flush()
        self.assertEqual([(e.session_key, e.reason) for e in self.ended], [("k", "setup-timeout")])
        self.assertEqual(self.ended[0].stats.state, "ended")

    def test_failing_observer(self) -> None:
        """An observer that raises is logged; the others still hear."""

        def broken(end: SessionEnd) -> None:
            raise RuntimeError("observer bug")

        self.remote.remove_observer(self.ended.append)
        self.remote.remove_observer(self.ended.append)
        self.remote.add_observer(broken)
        self.remote.add_observer(self.ended.append)
        self.wait(self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)])))
        self.wait(self.remote.release("k"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(self.ended), 1)

    def test_every_client_hears_events(self) -> None:
        """Every authenticated connection gets every session's end."""
        other = self.connect(SECRET)
        heard: list[SessionEnd] = []
        other.add_observer(heard.append)
        self.wait(self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)])))
        self.wait(self.remote.release("k"))
        self.assertEqual([e.session_key for e in heard], ["k"])
        self.assertEqual(len(self.factory.connections), 2)


class _HoldingRelay(MediaRelay):
    """A L{MediaRelay} whose C{sessions()} answers wait while C{hold} is set."""

    hold = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[Deferred[Any]] = []

    def sessions(self) -> Deferred[Any]:
        if not self.hold:
            return super().sessions()
        d: Deferred[Any] = Deferred()
        self.held.append(d)
        return d

    def answer_held(self) -> None:
        """Answer the held C{sessions()} calls with the sessions live now."""
        held, self.held = self.held, []
        for d in held:
            super().sessions().chainDeferred(d)


class ReconcileTests(RemoteRelayTestCase):
    """
    After each connection, L{RemoteMediaRelay} reports the sessions it
    allocated that the relay no longer has (reason C{lost}): their
    C{session-end} was sent while it was disconnected, or the relay
    restarted.
    """

    def new_relay(self) -> _HoldingRelay:
        return _HoldingRelay(self.reactor, self.ports, limits=LIMITS, random=counting_random(1))

    def allocate(self, key: str, answer: bool = False) -> None:
        self.wait(self.remote.allocate(key, MediaOffer([StreamOffer(A_HOST, 4000)])))
        if answer:
            self.wait(self.remote.update(key, MediaOffer([StreamOffer(B_HOST, 5000)])))

    def go_away(self) -> None:
        """The relay stops listening and closes the control connections."""
        self.listening.stopListening()
        self.drop_connections()
        self.assertFalse(self.remote.connected)

    def come_back(self, factory: Any = None) -> None:
        """The relay listens again (on the same port); the client reconnects."""
        self.factory = factory or self.factory
        self.listening = self.reactor.listenTCP(
            self.listening.port, self.factory, interface=CONTROL
        )
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertTrue(self.remote.connected)

    def reconciliations(self) -> list[Any]:
        return [e for e in self.events if "reconciled" in e.get("log_format", "")]

    def test_ended_while_disconnected(self) -> None:
        """
        A session the relay ends (idle) while the client is disconnected
        is reported after reconnecting, with reason C{lost}, the call's
        modes and zero counters; one log line gives the counts.
        """
        self.allocate("k", answer=True)
        self.allocate("live")  # its setup timeout is longer than the idle one
        self.assertEqual(self.remote.remembered, {"k", "live"})
        self.go_away()
        self.reactor.advance(LIMITS.idle_timeout)
        self.reactor.flush()
        self.assertNotIn("k", self.successResultOf(self.relay.sessions()))
        self.assertEqual(self.ended, [])  # the relay's event went nowhere
        self.come_back()
        self.assertEqual([(e.session_key, e.reason) for e in self.ended], [("k", "lost")])
        stats = self.ended[0].stats
        self.assertEqual((stats.session_key, stats.state), ("k", "ended"))
        self.assertEqual((stats.a_mode.value, stats.b_mode.value), ("plain", "plain"))
        self.assertEqual((stats.a_to_b, stats.b_to_a), (DirectionStats(), DirectionStats()))
        self.assertEqual(len(stats.ports), 4)
        self.assertEqual(self.remote.remembered, {"live"})
        (line,) = self.reconciliations()
        self.assertEqual(
            (line["remembered"], line["live"], line["lost"], line["gone"]), (2, 1, 1, 0)
        )
        self.assertEqual((line["rule"], line["source"]), ("lost", "relay-under-test"))
        # Reconnecting again reports nothing more.
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertEqual(len(self.ended), 1)
        self.assertEqual(len(self.reconciliations()), 2)
        self.wait(self.remote.release("live"))

    def test_relay_restarted(self) -> None:
        """
        A new relay behind the control port (a restart) has none of the
        sessions: every remembered one is reported C{lost}, answered or not.
        """
        self.allocate("a", answer=True)
        self.allocate("b")
        self.go_away()
        self.relay.close()
        self.reactor.flush()
        self.relay = self.new_relay()
        self.come_back(ControlServerFactory(self.relay, SECRET, self.reactor,
                                            random=counting_random(300)))
        self.assertEqual(
            sorted((e.session_key, e.reason) for e in self.ended), [("a", "lost"), ("b", "lost")]
        )
        answered = {e.session_key: e.stats.answered for e in self.ended}
        self.assertIsNotNone(answered["a"])
        self.assertIsNone(answered["b"])
        self.assertEqual(self.remote.remembered, frozenset())
        # The new relay works: a new session is remembered again.
        self.allocate("c")
        self.assertEqual(self.remote.remembered, {"c"})
        self.wait(self.remote.release("c"))
        self.assertEqual(self.remote.remembered, frozenset())

    def test_live_sessions_not_reported(self) -> None:
        """Sessions the relay still has after a reconnection are not reported."""
        self.allocate("a", answer=True)
        self.allocate("b")
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertTrue(self.remote.connected)
        self.assertEqual(self.ended, [])
        self.assertEqual(self.remote.remembered, {"a", "b"})
        (line,) = self.reconciliations()
        self.assertEqual((line["live"], line["lost"]), (2, 0))
        self.wait(self.remote.release("a"))
        self.wait(self.remote.release("b"))

    def test_forgotten_on_end_release_and_failure(self) -> None:
        """
        A key is forgotten at its release, at the relay's C{session-end},
        and never remembered when its allocate fails: nothing is left to
        reconcile, so no C{sessions()} is asked after reconnecting.
        """
        self.allocate("released")
        self.allocate("timed-out")
        self.failure(
            self.remote.allocate("failed", MediaOffer([StreamOffer("example.com", 4000)])),
            MediaOfferError,
        )
        self.failure(
            self.remote.allocate("released", MediaOffer([StreamOffer(A_HOST, 4000)])),
            SessionExists,
        )
        self.assertEqual(self.remote.remembered, {"released", "timed-out"})
        self.wait(self.remote.release("released"))
        self.reactor.advance(LIMITS.setup_timeout)
        self.reactor.flush()
        self.assertEqual(
            [(e.session_key, e.reason) for e in self.ended],
            [("released", "released"), ("timed-out", "setup-timeout")],
        )
        self.assertEqual(self.remote.remembered, frozenset())
        self.relay.hold = True
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertTrue(self.remote.connected)
        self.assertEqual(self.relay.held, [])
        self.assertEqual(self.reconciliations(), [])

    def test_release_racing_reconciliation(self) -> None:
        """
        A session released while the relay's answer to the reconciliation
        is on its way is reported once, as released, not also as lost.
        """
        self.allocate("k", answer=True)
        self.relay.hold = True
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertEqual(len(self.relay.held), 1)
        self.wait(self.remote.release("k"))
        self.relay.answer_held()
        self.reactor.flush()
        self.assertEqual([(e.session_key, e.reason) for e in self.ended], [("k", "released")])
        (line,) = self.reconciliations()
        self.assertEqual((line["live"], line["lost"], line["gone"]), (0, 0, 1))

    def test_end_racing_reconciliation(self) -> None:
        """
        A session the relay ends (idle) while the reconciliation is in
        flight is reported once, with the relay's reason.
        """
        self.allocate("k", answer=True)
        self.relay.hold = True
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.reactor.advance(LIMITS.idle_timeout)
        self.reactor.flush()
        self.relay.answer_held()
        self.reactor.flush()
        self.assertEqual([(e.session_key, e.reason) for e in self.ended], [("k", "idle")])

    def test_allocated_during_reconciliation(self) -> None:
        """
        A session allocated after the reconciliation asked is not judged by
        an answer taken before it existed.
        """
        self.allocate("old")
        self.relay.hold = True
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        (held,) = self.relay.held
        asked = self.successResultOf(MediaRelay.sessions(self.relay))
        self.relay.hold = False
        self.allocate("new")
        held.callback(asked)  # the relay's sessions when it was asked
        self.reactor.flush()
        self.assertEqual(self.ended, [])
        self.assertEqual(self.remote.remembered, {"old", "new"})
        self.wait(self.remote.release("old"))
        self.wait(self.remote.release("new"))

    def test_reconciliation_fails(self) -> None:
        """
        If the relay does not answer C{sessions()}, a warning is logged and
        nothing is reported; the next connection tries again.
        """
        self.allocate("k")
        self.relay.hold = True
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.reactor.advance(2.0)  # the call's timeout
        self.reactor.flush()
        warned = [e for e in self.events if "could not reconcile" in e.get("log_format", "")]
        self.assertEqual(len(warned), 1)
        self.assertEqual(self.remote.remembered, {"k"})
        self.relay.held = []
        self.relay.hold = False
        self.go_away()
        self.relay.release("k")
        self.come_back()
        self.assertEqual([(e.session_key, e.reason) for e in self.ended], [("k", "lost")])


class DisconnectTests(RemoteRelayTestCase):
    """While the relay is not reachable, calls fail at once with 503."""

    def setUp(self) -> None:
        self.relay = StalledRelay()
        super().setUp()

    def test_in_flight_fail_on_loss(self) -> None:
        """Calls in flight when the connection is lost fail with L{RelayUnavailable}."""
        d = self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)]))
        self.reactor.flush()
        self.assertEqual([c[0] for c in self.relay.calls], ["allocate"])
        self.drop_connections()
        error = self.failureResultOf(d, RelayUnavailable).value
        self.assertEqual(error.status_hint, 503)
        self.assertFalse(self.remote.connected)
        lost = [e for e in self.events if e.get("log_format", "").startswith("Lost the media")]
        self.assertEqual(len(lost), 1)

    def test_calls_while_disconnected(self) -> None:
        """New calls fail at once while disconnected, and work after reconnection."""
        self.drop_connections()
        for d in [
            self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)])),
            self.remote.update("k", MediaOffer([StreamOffer(B_HOST, 5000)])),
            self.remote.release("k"),
            self.remote.sessions(),
            self.remote.stats(),
        ]:
            error = self.failureResultOf(d, RelayUnavailable).value
            self.assertIn("relay-under-test is not connected", str(error))
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertTrue(self.remote.connected)
        d = self.remote.stats()
        self.reactor.flush()
        self.relay.calls[-1][2].errback(PortsExhausted("x"))  # any answer will do
        self.failure(d, PortsExhausted)

    def test_relay_down_at_start(self) -> None:
        """With nothing listening, the client keeps trying with its back-off."""
        self.listening.stopListening()
        self.drop_connections()
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertFalse(self.remote.connected)
        self.listening = self.reactor.listenTCP(self.listening.port, self.factory,
                                                interface=CONTROL)
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertTrue(self.remote.connected)

    def test_timeout(self) -> None:
        """A call with no reply within the timeout fails with L{RelayTimeout} (503)."""
        d = self.remote.stats()
        self.reactor.flush()
        self.reactor.advance(2.0)
        error = self.failureResultOf(d, RelayTimeout).value
        self.assertEqual(error.status_hint, 503)
        self.assertIsInstance(error, RelayUnavailable)
        # A late reply is ignored.
        self.relay.calls[0][2].errback(PortsExhausted("late"))
        self.reactor.flush()

    def test_late_allocation_released(self) -> None:
        """An allocation answered after its timeout is released at once."""
        d = self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)]))
        self.reactor.flush()
        self.reactor.advance(2.0)
        self.failureResultOf(d, RelayTimeout)
        from sipedge.media import RelayAllocation

        self.relay.calls[0][2].callback(RelayAllocation("k", ()))
        self.reactor.flush()
        self.assertEqual([(c[0], c[1]) for c in self.relay.calls][1:], [("release", ("k",))])
        self.relay.calls[1][2].callback(None)
        self.reactor.flush()

    def test_cancelled(self) -> None:
        """
        A call its caller cancels (the response chain's timeout) fails with
        L{CancelledError} and stops its timer: nothing fires or is logged
        later; an allocation answered after it is released.
        """
        d = self.remote.allocate("k", MediaOffer([StreamOffer(A_HOST, 4000)]))
        self.reactor.flush()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(2.0)
        from sipedge.media import RelayAllocation

        self.relay.calls[0][2].callback(RelayAllocation("k", ()))
        self.reactor.flush()
        self.assertEqual([(c[0], c[1]) for c in self.relay.calls][1:], [("release", ("k",))])
        self.relay.calls[1][2].callback(None)
        self.reactor.flush()
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_max_pending(self) -> None:
        """Over C{max_pending} requests in flight, the relay answers 503 at once."""
        calls = [self.remote.stats() for _ in range(5)]
        self.reactor.flush()
        self.assertEqual(len(self.relay.calls), 4)
        error = self.failureResultOf(calls[4], RelayUnavailable).value
        self.assertIn("more than 4 requests", str(error))
        refused = [e for e in self.events if e.get("rule") == "max-pending"]
        self.assertEqual(len(refused), 1)
        stats = RelayStats(0, 0, {}, 0, DirectionStats(), DirectionStats())
        for _, _, d in self.relay.calls:
            d.callback(stats)
        self.reactor.flush()
        for d in calls[:4]:
            self.assertEqual(self.successResultOf(d), stats)

    def test_undecodable_result(self) -> None:
        """
        A result that does not decode fails its call and closes the
        connection (the two ends disagree on the protocol).
        """
        calls = [self.remote.stats(), self.remote.sessions()]
        self.reactor.flush()
        self.relay.calls[0][2].callback(None)
        self.reactor.flush()
        self.failureResultOf(calls[0], ControlProtocolError)
        self.failureResultOf(calls[1], RelayUnavailable)
        self.assertFalse(self.remote.connected)

    def test_close_fails_in_flight(self) -> None:
        """Closing the remote relay fails what is in flight."""
        d = self.remote.stats()
        self.reactor.flush()
        closed = self.remote.close()
        self.reactor.flush()
        self.successResultOf(closed)
        self.failureResultOf(d, RelayUnavailable)
        self.successResultOf(self.remote.close())


class AuthenticationTests(RemoteRelayTestCase):
    """Only clients that hold the secret get in; the relay proves itself too."""

    def test_wrong_secret(self) -> None:
        """A client with the wrong secret is refused, logged, and calls fail 503."""
        wrong = self.connect(b"wrong secret")
        self.assertFalse(wrong.connected)
        self.failureResultOf(wrong.stats(), RelayUnavailable)
        refused = [e for e in self.events if e.get("rule") == "auth-failed"]
        self.assertEqual(len(refused), 2)  # the relay's refusal, the client's error
        self.assertEqual(len(self.factory.connections), 1)
        self.assertTrue(refused[0]["source"].startswith("127.0.0.1:"))
        self.stop(wrong)

    def raw(self) -> tuple[Any, StringTransport, dict[str, Any]]:
        """A server protocol on a StringTransport, and its hello."""
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        hello = json.loads(transport.value())
        transport.clear()
        return protocol, transport, hello

    def login(self) -> tuple[Any, StringTransport]:
        protocol, transport, hello = self.raw()
        relay = bytes.fromhex(hello["challenge"])
        mine = bytes(32)
        proof = client_proof(SECRET, 1, relay, mine)
        protocol.dataReceived(encode_message(
            {"type": "auth", "version": 1, "proof": proof.hex(), "challenge": mine.hex()}
        ))
        welcome = json.loads(transport.value())
        self.assertEqual(welcome["proof"], server_proof(SECRET, 1, relay, mine).hex())
        transport.clear()
        self.addCleanup(protocol.connectionLost)
        return protocol, transport

    def replies(self, transport: StringTransport) -> list[dict[str, Any]]:
        return [json.loads(line) for line in transport.value().splitlines()]

    def test_hello(self) -> None:
        """The relay speaks first: protocol, versions, a fresh challenge."""
        protocol, _transport, hello = self.raw()
        self.assertEqual(hello["protocol"], "sipedge-relay")
        self.assertEqual(hello["versions"], [1, 2])
        self.assertEqual(len(bytes.fromhex(hello["challenge"])), 32)
        protocol.connectionLost()

    def test_request_before_auth(self) -> None:
        """A request before C{auth} closes the connection with an error."""
        protocol, transport, _ = self.raw()
        protocol.dataReceived(b'{"type":"request","id":1,"method":"stats","params":{}}\n')
        (reply,) = self.replies(transport)
        self.assertEqual((reply["id"], reply["error"]["code"]), (None, "not-authenticated"))
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost()

    def test_bad_version(self) -> None:
        """An unknown version is refused."""
        protocol, transport, _ = self.raw()
        protocol.dataReceived(b'{"type":"auth","version":3,"proof":"","challenge":""}\n')
        (reply,) = self.replies(transport)
        self.assertEqual(reply["error"]["code"], "version")
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost()

    def test_auth_timeout(self) -> None:
        """A client that does not authenticate in time is closed."""
        protocol, transport, _ = self.raw()
        self.reactor.advance(10.0)
        (reply,) = self.replies(transport)
        self.assertEqual(reply["error"]["code"], "auth-timeout")
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost()

    def test_client_checks_relay_proof(self) -> None:
        """A relay that cannot prove it knows the secret is dropped by the client."""
        protocol = ControlClientProtocol(self.remote)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(encode_message(
            {"type": "hello", "protocol": "sipedge-relay", "versions": [1],
             "challenge": "00" * 32}
        ))
        auth = json.loads(transport.value())
        self.assertEqual(auth["type"], "auth")
        protocol.dataReceived(encode_message(welcome_message(bytes(32))))
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(protocol.ready)
        protocol.connectionLost()

    def test_client_refuses_non_relay(self) -> None:
        """A peer that does not say hello as a relay is dropped."""
        protocol = ControlClientProtocol(self.remote)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"SIP/2.0 200 OK\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(protocol.ready)
        protocol.connectionLost()

    def test_malformed_after_auth(self) -> None:
        """
        After authentication: an unknown method or bad parameters get an
        error reply with the request's id and the connection stays; a line
        that is not JSON, or an unknown message type, closes it.
        """
        protocol, transport = self.login()
        protocol.dataReceived(b'{"type":"request","id":1,"method":"explode","params":{}}\n')
        protocol.dataReceived(b'{"type":"request","id":2,"method":"release","params":{}}\n')
        protocol.dataReceived(b'{"type":"request","id":3,"method":"stats"}\n')
        replies = self.replies(transport)
        self.assertEqual(
            [(r["id"], r["type"], r.get("error", {}).get("code")) for r in replies],
            [(1, "error", "unknown-method"), (2, "error", "bad-params"), (3, "result", None)],
        )
        self.assertFalse(transport.disconnecting)
        transport.clear()
        protocol.dataReceived(b"{not json}\n")
        (reply,) = self.replies(transport)
        self.assertEqual((reply["id"], reply["error"]["code"]), (None, "malformed"))
        self.assertTrue(transport.disconnecting)
        rules = {e.get("rule") for e in self.events}
        self.assertTrue({"unknown-method", "bad-params", "malformed"} <= rules)

    def test_unknown_type_and_bad_id(self) -> None:
        """An unknown message type or a request without a good id closes the connection."""
        for line in [b'{"type":"shout"}\n', b'{"type":"request","id":-1,"method":"stats"}\n']:
            protocol, transport = self.login()
            protocol.dataReceived(line)
            (reply,) = self.replies(transport)
            self.assertEqual(reply["type"], "error")
            self.assertTrue(transport.disconnecting)

    def test_too_long(self) -> None:
        """A line over the limit closes the connection."""
        protocol, transport = self.login()
        protocol.dataReceived(b"x" * (self.factory.max_line + 1))
        (reply,) = self.replies(transport)
        self.assertEqual(reply["error"]["code"], "too-long")
        self.assertTrue(transport.disconnecting)

    def test_relay_bug(self) -> None:
        """An exception that is not a L{MediaError} is logged and answered 500."""

        def broken() -> Deferred[Any]:
            raise ZeroDivisionError("bug")

        self.relay.stats = broken
        protocol, transport = self.login()
        protocol.dataReceived(b'{"type":"request","id":9,"method":"stats","params":{}}\n')
        (reply,) = self.replies(transport)
        self.assertEqual(
            reply["error"],
            {"class": "MediaError", "message": "internal relay error", "status_hint": 500},
        )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        del self.relay.stats

    def test_needs_secret(self) -> None:
        """Neither side can be made without a secret."""
        from sipedge.media import RemoteMediaRelay

        with self.assertRaises(ValueError):
            ControlServerFactory(self.relay, b"", self.reactor)
        with self.assertRaises(ValueError):
            RemoteMediaRelay(
                TCP4ClientEndpoint(self.reactor, CONTROL, 1), b"", self.reactor
            )

    def test_stop_factory(self) -> None:
        """Stopping the factory stops watching the relay."""
        self.listening.stopListening()
        self.assertNotIn(self.factory._session_ended, self.relay._observers)
        self.listening = self.reactor.listenTCP(0, self.factory, interface=CONTROL)
        self.assertIn(self.factory._session_ended, self.relay._observers)
