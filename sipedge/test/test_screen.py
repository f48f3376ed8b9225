# -*- test-case-name: sipedge.test.test_screen -*-
"""
Tests for L{sipedge.security.Screen} (the pre-parse decisions on a UDP
datagram: the global budget of unauthenticated work, scanners) and the
transports' C{screen} hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import ConfigError
from sipedge.message import Limits, Request, Response, parse_datagram
from sipedge.security import (
    RETRY_AFTER,
    SURGE,
    Budget,
    LoadWatch,
    Screen,
    Security,
    SecurityConfig,
    SharedBucket,
    parse_security_config,
)
from sipedge.testing import FakeReactor, RecordingReceiver, capture_log, edge_in_memory
from sipedge.transaction import make_response
from sipedge.transport import SipDatagramProtocol, SipStreamProtocol, TransportManager

STRANGER = "203.0.113.7"
OTHER = "203.0.113.8"
PHONE = "198.51.100.20"
TRUNK = "192.0.2.10"


def request(
    method: str = "INVITE",
    *,
    user_agent: str | None = None,
    to_tag: bool = False,
    route: bool = False,
    call_id: str = "c1",
) -> bytes:
    """A request datagram."""
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-1",
        "From: <sip:alice@example.com>;tag=a1",
        "To: <sip:bob@example.com>" + (";tag=b1" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
    ]
    if route:
        lines.append("Route: <sip:edge.example.com;lr>")
    if user_agent is not None:
        lines.append(f"User-Agent: {user_agent}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
    b"Call-ID: r\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


class ScreenTests(SynchronousTestCase):
    """L{Security.screen}: what is shed before the parse, and what never is."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.security = Security(
            SecurityConfig(unauthenticated_global_rate=10.0, unauthenticated_global_burst=4.0),
            clock=self.clock,
            trusted=[TRUSTED_NET],
        )
        self.events = capture_log(self)

    def test_sheds_over_global_budget(self) -> None:
        """
        New requests from unauthenticated sources, all together, get the
        global burst; the rest are dropped and counted, and the budget
        refills at its rate.
        """
        screen = self.security.screen
        admitted = [screen(request(call_id=str(i)), f"203.0.113.{i}") for i in range(6)]
        self.assertEqual(admitted, [True] * 4 + [False] * 2)
        self.assertEqual(self.security.stats["flood_shed"], 2)
        self.clock.advance(0.1)
        self.assertEqual([screen(request(), OTHER) for _ in range(2)], [True, False])

    def test_shed_logged_once_per_interval(self) -> None:
        """Shedding is a warning at most once per report interval, with the count."""
        for i in range(10):
            self.security.screen(request(), f"203.0.113.{i}")
        shed = [e for e in self.events if e.get("rule") == "flood-global"]
        self.assertEqual([e["count"] for e in shed], [1])
        self.clock.advance(1.0)
        for _ in range(30):
            self.security.screen(request(), STRANGER)
        shed = [e for e in self.events if e.get("rule") == "flood-global"]
        self.assertEqual(len(shed), 2)
        self.assertEqual(shed[1]["source"], STRANGER)

    def spend(self) -> None:
        """Use up the global budget."""
        while self.security.screen(request(), "203.0.113.99"):
            pass

    def test_trusted_bypass(self) -> None:
        """Trusted sources are never shed by the global budget."""
        self.spend()
        self.assertTrue(self.security.screen(request(), TRUNK))

    def test_authenticated_bypass(self) -> None:
        """A source a user authenticated from is never shed by the global budget."""
        self.spend()
        self.assertFalse(self.security.screen(request(), PHONE))
        self.security.note_authenticated(PHONE, "alice", self.clock.seconds() + 60)
        self.assertTrue(self.security.screen(request(), PHONE))

    def test_in_dialog_ack_response_bypass(self) -> None:
        """ACKs, requests that claim a dialog, and responses are never shed."""
        self.spend()
        screen = self.security.screen
        self.assertTrue(screen(request("ACK", to_tag=True), STRANGER))
        self.assertTrue(screen(request("BYE", to_tag=True, route=True), STRANGER))
        self.assertTrue(screen(RESPONSE, STRANGER))
        # A To tag alone is no claim of a dialog we record-routed.
        self.assertFalse(screen(request("BYE", to_tag=True), STRANGER))

    def test_garbage_takes_budget(self) -> None:
        """A datagram the glance cannot read is unauthenticated work too."""
        self.spend()
        self.assertFalse(self.security.screen(b"hello there", STRANGER))

    def test_over_own_budget_goes_on(self) -> None:
        """
        A source already over its own budget is left to the flood stage
        (which drops it and counts the offence that bans it), without taking
        from the global budget.
        """
        limiter = self.security.limiter
        while limiter.take(STRANGER, "invite", "unauthenticated", 0.0).name == "ADMIT":
            pass
        bucket = self.security.screener.bucket
        assert bucket is not None
        before = bucket.tokens(0.0)
        self.assertTrue(self.security.screen(request(), STRANGER))
        self.assertEqual(bucket.tokens(0.0), before)

    def test_scanner_dropped_and_banned(self) -> None:
        """A scanner's request is dropped before the chain and bans its source."""
        self.assertFalse(self.security.screen(request(user_agent="friendly-scanner"), STRANGER))
        self.assertTrue(self.security.is_banned(STRANGER))
        self.assertEqual(self.security.stats["screen_scanner_dropped"], 1)
        self.assertEqual(self.security.stats["scanner_dropped"], 1)
        [event] = [
            e for e in self.events
            if e.get("rule") == "scanner" and e["log_format"].startswith("Dropping")
        ]
        self.assertEqual(event["source"], STRANGER)

    def test_malformed_scanner_goes_on(self) -> None:
        """
        A scanner's datagram the full parser refuses goes on to the full
        path (which answers it as malformed): the screen agrees with the parser.
        """
        data = request(user_agent="sipvicious").replace(b"Content-Length: 0", b"Content-Length: 9")
        self.assertTrue(self.security.screen(data, STRANGER))
        self.assertFalse(self.security.is_banned(STRANGER))

    def test_off(self) -> None:
        """With C{unauthenticated_global_rate = 0} nothing is shed (but scanners)."""
        security = Security(
            SecurityConfig(unauthenticated_global_rate=0.0), clock=self.clock
        )
        self.assertIsNone(security.screener.bucket)
        self.assertTrue(all(security.screen(request(), STRANGER) for _ in range(5000)))
        # Scanners are still dropped.
        self.assertFalse(security.screen(request(user_agent="sipvicious"), OTHER))

    def test_default_budget(self) -> None:
        """By default unauthenticated work gets 500 a second, 1000 at once."""
        config = SecurityConfig()
        self.assertEqual(config.global_budget, Budget(500.0, 1000.0))

    def test_screen_limits(self) -> None:
        """The screen confirms scanners with the parser's configured limits."""
        limits = Limits(max_message_size=100)
        security = Security(clock=self.clock, limits=limits)
        self.assertIs(security.screener.limits, limits)
        self.assertIsInstance(security.screener, Screen)


TRUSTED_NET = "192.0.2.0/24"


class OverloadTests(SynchronousTestCase):
    """While the loop is overloaded, a surge of unauthenticated work is shed whole."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.security = Security(clock=self.clock)
        self.security.start()
        self.addCleanup(self.security.stop)
        self.events = capture_log(self)

    def lag(self, seconds: float) -> None:
        """The reactor reaches the watch's timer C{seconds} late, tick after tick."""
        watch = self.security.watch
        assert watch is not None
        for _ in range(watch.sustain):
            self.clock.advance(watch.interval + seconds)

    def test_watch(self) -> None:
        """
        A timer late by more than the threshold C{sustain} ticks in a row
        starts an overload that lasts C{hold}.
        """
        clock = Clock()
        watch = LoadWatch(clock, threshold=0.05, interval=0.02, hold=2.0, sustain=3)
        watch.start()
        clock.advance(0.02 + 0.04)
        self.assertFalse(watch.overloaded(clock.seconds()))
        clock.advance(0.02 + 0.06)
        clock.advance(0.02 + 0.06)
        self.assertFalse(watch.overloaded(clock.seconds()))
        clock.advance(0.02 + 0.06)
        self.assertTrue(watch.overloaded(clock.seconds()))
        self.assertEqual(watch.episodes, 1)
        self.assertEqual(watch.overloaded_until, clock.seconds() + 2.0)
        watch.stop()
        self.assertFalse(watch.overloaded(clock.seconds() + 2.0))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_one_hiccup_is_not_overload(self) -> None:
        """
        One late tick between timely ones (a collection, a disk write, the
        core lent to another process) never starts an overload, however
        late it is, and a streak broken by a timely tick starts again.
        """
        clock = Clock()
        watch = LoadWatch(clock, threshold=0.05, interval=0.02, hold=2.0, sustain=3)
        watch.start()
        for _ in range(10):
            clock.advance(0.02 + 0.5)
            clock.advance(0.02 + 0.5)
            clock.advance(0.02)
        self.assertFalse(watch.overloaded(clock.seconds()))
        self.assertEqual(watch.episodes, 0)
        self.assertAlmostEqual(watch.worst, 0.5)
        watch.stop()

    def test_surge_shed_when_overloaded(self) -> None:
        """
        With the loop overloaded, once unauthenticated requests arrive at
        L{SURGE} a second, the rest are shed although the budget has tokens;
        authenticated ones still go on.
        """
        self.lag(0.2)
        screen = self.security.screen
        admitted = [screen(request(), f"203.0.113.{i % 200}") for i in range(SURGE + 10)]
        self.assertEqual(admitted, [True] * (SURGE - 1) + [False] * 11)
        self.assertEqual(self.security.stats["flood_shed_overload"], 11)
        [event] = [e for e in self.events if e.get("rule") == "flood-global"]
        self.assertTrue(event["overloaded"])
        self.assertEqual(event["why"], "the event loop is overloaded")
        self.security.note_authenticated(PHONE, "alice", self.clock.seconds() + 60)
        self.assertTrue(screen(request(), PHONE))

    def test_few_not_shed(self) -> None:
        """Overloaded by something else, a trickle of unauthenticated work is still served."""
        self.lag(0.2)
        self.assertTrue(all(self.security.screen(request(), STRANGER) for _ in range(20)))

    def test_over(self) -> None:
        """When the overload has passed, the budget alone decides again."""
        self.lag(0.2)
        for _ in range(SURGE + 5):
            self.security.screen(request(), STRANGER)
        self.clock.advance(2.5)
        self.assertTrue(self.security.screen(request(), STRANGER))

    def test_off(self) -> None:
        """C{overload_lag = 0}: no watch."""
        security = Security(SecurityConfig(overload_lag=0.0), clock=self.clock)
        self.assertIsNone(security.watch)
        self.assertIsNone(security.screener.watch)


class SharedBucketTests(SynchronousTestCase):
    """L{SharedBucket}: one token bucket for many sources."""

    def test_rate_and_burst(self) -> None:
        """In C{t} seconds at most C{rate * t + burst} tokens are taken."""
        bucket = SharedBucket(Budget(2.0, 3.0), 0.0)
        taken = sum(bucket.take(t / 10) for t in range(100))
        self.assertEqual(taken, 3 + 2 * 9 + 1)

    def test_never_above_burst(self) -> None:
        """A long quiet spell refills to the burst, no more."""
        bucket = SharedBucket(Budget(100.0, 5.0), 0.0)
        self.assertEqual(bucket.tokens(1000.0), 5.0)
        self.assertEqual(sum(bucket.take(1000.0) for _ in range(10)), 5)


class ConfigTests(SynchronousTestCase):
    """The C{[security]} keys of the global budget."""

    def test_parse(self) -> None:
        """The keys parse, integers as numbers."""
        config = parse_security_config(
            {"unauthenticated_global_rate": 200, "unauthenticated_global_burst": 50}
        )
        self.assertEqual(config.global_budget, Budget(200.0, 50.0))

    def test_errors(self) -> None:
        """Bad values name the key."""
        cases: list[tuple[dict[str, Any], str]] = [
            ({"unauthenticated_global_rate": -1}, "security.unauthenticated_global_rate"),
            ({"unauthenticated_global_burst": 0.5}, "security.unauthenticated_global_burst"),
        ]
        for table, problem in cases:
            with self.assertRaises(ConfigError) as raised:
                parse_security_config(table, "sipedge.toml")
            self.assertIn(problem, str(raised.exception))


class DatagramScreenHookTests(SynchronousTestCase):
    """L{SipDatagramProtocol}'s C{screen} hook."""

    def protocol(self, screen: object) -> tuple[SipDatagramProtocol, RecordingReceiver]:
        receiver = RecordingReceiver()
        protocol = SipDatagramProtocol(receiver, screen=screen)  # type: ignore[arg-type]
        protocol.local_host, protocol.local_port = "198.51.100.1", 5060
        return protocol, receiver

    def test_refused_never_parsed(self) -> None:
        """A datagram the screen refuses is counted and never reaches the receiver."""
        seen: list[tuple[bytes, str]] = []

        def screen(data: bytes, host: str) -> bool:
            seen.append((data, host))
            return host != STRANGER

        protocol, receiver = self.protocol(screen)
        protocol.datagramReceived(request(), (STRANGER, 5060))
        protocol.datagramReceived(request(), (PHONE, 5060))
        protocol.datagramReceived(b"\r\n\r\n", (STRANGER, 5060))
        self.assertEqual([f.remote_host for _, f in receiver.messages], [PHONE])
        self.assertEqual((protocol.screened, protocol.received, protocol.keepalives), (1, 1, 1))
        # Keep-alives are not screened.
        self.assertEqual([h for _, h in seen], [STRANGER, PHONE])


class StreamScreenTests(SynchronousTestCase):
    """
    L{Security.screen_stream}: the screen for requests parsed from TCP/TLS
    connections, with the same global budget as UDP's.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.security = Security(
            SecurityConfig(unauthenticated_global_rate=10.0, unauthenticated_global_burst=4.0),
            clock=self.clock,
            trusted=[TRUSTED_NET],
        )
        self.events = capture_log(self)

    def parsed(self, data: bytes) -> Request:
        message = parse_datagram(data)
        assert isinstance(message, Request)
        return message

    def test_shed_answered_503(self) -> None:
        """
        Over the global budget (shared with UDP), a request on a connection
        is answered 503 with Retry-After, not delivered: the peer of a
        connection cannot be spoofed, and it would not retransmit.
        """
        for i in range(3):
            self.assertTrue(self.security.screen(request(call_id=str(i)), f"203.0.113.{i}"))
        self.assertIsNone(self.security.screen_stream(self.parsed(request()), STRANGER))
        answers = self.security.screen_stream(self.parsed(request(call_id="x")), STRANGER)
        assert answers is not None
        [answer] = answers
        self.assertIsInstance(answer, Response)
        self.assertEqual((answer.status, answer.headers.get("Retry-After")), (503, RETRY_AFTER))
        self.assertEqual(answer.headers.get("Call-ID"), "x")
        self.assertEqual(self.security.stats["flood_shed"], 1)

    def test_never_shed(self) -> None:
        """Trusted and authenticated peers, ACKs and dialog claims pass a spent budget."""
        while self.security.screen(request(), "203.0.113.99"):
            pass
        screen = self.security.screen_stream
        self.assertIsNone(screen(self.parsed(request()), TRUNK))
        self.security.note_authenticated(PHONE, "alice", self.clock.seconds() + 60)
        self.assertIsNone(screen(self.parsed(request()), PHONE))
        self.assertIsNone(screen(self.parsed(request("ACK", to_tag=True)), STRANGER))
        self.assertIsNone(screen(self.parsed(request("BYE", to_tag=True, route=True)), STRANGER))
        self.assertIsNotNone(screen(self.parsed(request("BYE", to_tag=True)), STRANGER))

    def test_over_own_budget_goes_on(self) -> None:
        """A peer over its own budget goes on to the flood stage, which counts the offence."""
        while self.security.screen(request(), "203.0.113.99"):
            pass
        limiter = self.security.limiter
        while limiter.take(STRANGER, "invite", "unauthenticated", 0.0).name == "ADMIT":
            pass
        self.assertIsNone(self.security.screen_stream(self.parsed(request()), STRANGER))

    def test_scanner_dropped_unanswered(self) -> None:
        """A scanner's request on a connection is dropped without an answer and bans it."""
        answers = self.security.screen_stream(
            self.parsed(request(user_agent="friendly-scanner")), STRANGER
        )
        self.assertEqual(answers, ())
        self.assertTrue(self.security.is_banned(STRANGER))
        self.assertEqual(self.security.stats["screen_scanner_dropped"], 1)

    def test_off(self) -> None:
        """With the global budget off, only scanners are stopped."""
        security = Security(SecurityConfig(unauthenticated_global_rate=0), clock=self.clock)
        for i in range(50):
            self.assertIsNone(security.screen_stream(self.parsed(request(call_id=str(i))), OTHER))


class StreamScreenHookTests(SynchronousTestCase):
    """L{SipStreamProtocol}'s C{screen} hook, and the manager passing it on."""

    def connect(self, screen: Any) -> tuple[SipStreamProtocol, StringTransport, RecordingReceiver]:
        receiver = RecordingReceiver()
        protocol = SipStreamProtocol(receiver, clock=Clock(), idle_timeout=None, screen=screen)
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 5060),
            peerAddress=IPv4Address("TCP", STRANGER, 40000),
        )
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        return protocol, transport, receiver

    def test_answered_not_delivered(self) -> None:
        """
        A request the screen answers is not delivered; its answers are
        written on the connection; responses are never screened; a request
        it passes is delivered.
        """
        seen: list[tuple[str | None, str]] = []
        busy = self.parsed_response()

        def screen(message: Request, host: str) -> tuple[Response, ...] | None:
            seen.append((message.headers.get("Call-ID"), host))
            return (busy,) if message.headers.get("Call-ID") == "shed" else None

        protocol, transport, receiver = self.connect(screen)
        protocol.dataReceived(request(call_id="shed") + request(call_id="ok") + RESPONSE)
        self.assertEqual([m.headers.get("Call-ID") for m, _ in receiver.messages], ["ok", "r"])
        self.assertEqual(seen, [("shed", STRANGER), ("ok", STRANGER)])
        self.assertTrue(transport.value().startswith(b"SIP/2.0 503 "))
        self.assertEqual((protocol.screened, protocol.received), (1, 2))

    def test_dropped(self) -> None:
        """An empty answer drops the request silently."""
        protocol, transport, receiver = self.connect(lambda message, host: ())
        protocol.dataReceived(request())
        self.assertEqual((receiver.messages, transport.value(), protocol.screened), ([], b"", 1))

    def parsed_response(self) -> Response:
        message = parse_datagram(request())
        assert isinstance(message, Request)
        return make_response(message, 503, headers=[("Retry-After", "5")])

    def test_manager_passes_it(self) -> None:
        """L{TransportManager} gives C{stream_screen} to the connections it accepts."""
        screen: Any = object()
        manager = TransportManager(RecordingReceiver(), FakeReactor(), stream_screen=screen)
        protocol = manager._accept("TCP", IPv4Address("TCP", STRANGER, 40000))
        assert protocol is not None
        self.assertIs(protocol._screen, screen)


class _Collector(Protocol):
    """A TCP client that writes C{data} once connected and keeps what it reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.read += data


class StreamScreenLabTests(SynchronousTestCase):
    """The whole service on its defaults: TCP requests meet the global budget."""

    def test_tcp_flood_answered_503(self) -> None:
        """
        101 sources on TCP, each within its own budget (10 REGISTERs for
        unknown users), share the default global burst of 1,000 with
        everyone unauthenticated: 1,000 are challenged (401), the other 10
        are answered 503 with Retry-After before their transaction, and
        counted as shed.
        """
        edge = edge_in_memory(
            '[sip]\ndomains = ["example.test"]\nlisten = ["tcp:127.0.0.1:5060"]\n',
            Path(self.mktemp()).absolute(),
        )
        self.addCleanup(edge.stop)
        clients = []
        for n in range(101):
            source = f"127.3.0.{n + 1}"
            data = b"".join(
                REGISTER_TCP.format(ip=source, n=k, u=f"{n}x{k}").encode() for k in range(10)
            )
            client = _Collector(data)
            factory = ClientFactory()
            factory.buildProtocol = lambda addr, c=client: c  # type: ignore[method-assign,misc]
            edge.reactor.connectTCP("127.0.0.1", 5060, factory, bindAddress=(source, 0))
            clients.append(client)
        edge.reactor.flush()
        statuses: dict[bytes, int] = {}
        for client in clients:
            for line in client.read.split(b"\r\n"):
                if line.startswith(b"SIP/2.0 "):
                    statuses[line[8:11]] = statuses.get(line[8:11], 0) + 1
        self.assertEqual(statuses, {b"401": 1000, b"503": 10})
        self.assertIn(b"Retry-After: 5\r\n", b"".join(c.read for c in clients))
        self.assertEqual(edge.service.security.stats["flood_shed"], 10)


REGISTER_TCP = (
    "REGISTER sip:example.test SIP/2.0\r\n"
    "Via: SIP/2.0/TCP {ip}:5070;branch=z9hG4bK{u}r\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:u{u}@example.test>;tag={n}\r\n"
    "To: <sip:u{u}@example.test>\r\n"
    "Call-ID: {u}-r-{ip}\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:u{u}@{ip}:5070;transport=tcp>\r\n"
    "Content-Length: 0\r\n\r\n"
)
