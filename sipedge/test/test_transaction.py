# -*- test-case-name: sipedge.test.test_transaction -*-
"""
Tests for L{sipedge.transaction}: timer settings, transaction matching,
responses, the four state machines (tables, totality, timer schedules), the
layer, and a client and a server talking over a lossy in-memory link.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sipedge.error import (
    LocalProtocolError,
    MessageParseError,
    RemoteProtocolError,
    TransactionTimeout,
    TransportError,
)
from sipedge.flow import Flow
from sipedge.interfaces import (
    IClientTransaction,
    IMessageReceiver,
    IServerTransaction,
    ITransactionUser,
)
from sipedge.message import Headers, Message, Request, Response, parse_datagram, serialize
from sipedge.testing import capture_log
from sipedge.transaction import (
    REASON_PHRASES,
    STAT_NAMES,
    ClientInput,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInput,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TimerSettings,
    TimerWheel,
    TransactionKey,
    TransactionLayer,
    client_key,
    make_response,
    reason_phrase,
    server_key,
)
from sipedge.transaction._client import make_ack
from sipedge.transaction._states import (
    CLIENT_INVITE,
    CLIENT_NON_INVITE,
    REMOTE_INPUTS,
    SERVER_INVITE,
    SERVER_NON_INVITE,
    MachineSpec,
)

UDP = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)
TCP = Flow("TCP", "192.0.2.1", 5060, "198.51.100.7", 40000)

# Timer values whose sums are exact in binary floating point, so a schedule
# can be compared with ==.
DYADIC_T1 = st.sampled_from([0.125, 0.25, 0.5, 1.0])
STEPS = st.lists(st.integers(1, 96).map(lambda n: n / 16), max_size=40)


# -- message builders ----------------------------------------------------------


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    uri: str = "sip:bob@example.com",
    call_id: str = "call-1@example.com",
    cseq: int = 1,
    from_tag: str = "from-1",
    to_tag: str | None = None,
    via_host: str = "198.51.100.7",
    via_port: int = 5060,
    transport: str = "UDP",
    routes: tuple[str, ...] = (),
    extra_vias: tuple[str, ...] = (),
) -> Request:
    """A request as a UAC at C{via_host} would send it."""
    via = f"SIP/2.0/{transport} {via_host}:{via_port}"
    if branch is not None:
        via += f";branch={branch}"
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    pairs = [
        ("Via", via),
        *(("Via", v) for v in extra_vias),
        ("Max-Forwards", "70"),
        *(("Route", r) for r in routes),
        ("From", f"Alice <sip:alice@example.com>;tag={from_tag}"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", "<sip:alice@198.51.100.7>"),
    ]
    return Request(method, uri, Headers.of(*pairs))


def cancel_for(invite: Request) -> Request:
    """The CANCEL for C{invite} (RFC 3261 9.1): same Via, To, From, CSeq number."""
    headers = invite.headers.removed("Contact").replaced("CSeq", f"{invite.cseq.number} CANCEL")
    return Request("CANCEL", invite.uri, headers)


def ack_for_2xx(invite: Request, response: Response, branch: str = "z9hG4bK-ack") -> Request:
    """The end-to-end ACK a UAC sends for a 2xx (RFC 3261 13.2.2.4): a new branch."""
    ack = make_ack(invite, response)
    via = ack.top_via.with_branch(branch)
    return ack.with_headers(ack.headers.replaced("Via", str(via)))


# -- fakes ---------------------------------------------------------------------


@implementer(ITransactionUser)
class RecordingUser:
    """
    A transaction user that records every call, stamped with the clock's
    time, and can run a hook for requests, responses and stray messages.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.requests: list[tuple[Request, Any]] = []
        self.responses: list[tuple[float, Response, Any]] = []
        self.failures: list[tuple[float, Any, Failure]] = []
        self.terminated: list[Any] = []
        self.strays: list[tuple[Message, Flow]] = []
        self.on_request: Callable[[Request, Any], object] | None = None
        self.on_response: Callable[[Response, Any], object] | None = None
        self.on_stray: Callable[[Message, Flow], object] | None = None

    def request_received(self, request: Request, transaction: Any) -> None:
        self.requests.append((request, transaction))
        if self.on_request is not None:
            self.on_request(request, transaction)

    def response_received(self, response: Response, transaction: Any) -> None:
        self.responses.append((self.clock.seconds(), response, transaction))
        if self.on_response is not None:
            self.on_response(response, transaction)

    def transaction_failed(self, transaction: Any, reason: Failure) -> None:
        self.failures.append((self.clock.seconds(), transaction, reason))

    def transaction_terminated(self, transaction: Any) -> None:
        self.terminated.append(transaction)

    def stray_message(self, message: Message, flow: Flow) -> None:
        self.strays.append((message, flow))
        if self.on_stray is not None:
            self.on_stray(message, flow)


class Wire:
    """A C{send} callable that records what is sent and when, or fails."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, Any, Flow]] = []
        self.fail = False

    def __call__(self, message: Message, flow: Flow) -> None:
        if self.fail:
            raise TransportError("connection refused")
        self.sent.append((self.clock.seconds(), message, flow))

    @property
    def messages(self) -> list[Any]:
        return [m for _, m, _ in self.sent]

    def times(self, predicate: Callable[[Message], bool]) -> list[float]:
        """When the messages C{predicate} accepts were sent."""
        return [t for t, m, _ in self.sent if predicate(m)]


def is_request(method: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Request) and m.method == method


def is_status(status: int) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Response) and m.status == status


def advance_capped(clock: Clock, dt: float) -> None:
    """Advance by C{dt}, but never past the next timer: it fires on time."""
    calls = clock.getDelayedCalls()
    if calls:
        dt = min(dt, min(c.getTime() for c in calls) - clock.seconds())
    clock.advance(dt)


def run_out(clock: Clock) -> None:
    """Fire every timer, each at its exact time, until none is left."""
    while clock.getDelayedCalls():
        advance_capped(clock, 1e9)


def drive(clock: Clock, steps: list[float], events: dict[int, Callable[[], None]]) -> None:
    """
    Advance the clock by C{steps} (never past a timer), running C{events[i]}
    before step C{i}, then fire every remaining timer.
    """
    for i, dt in enumerate(steps):
        if i in events:
            events[i]()
        advance_capped(clock, dt)
    for i in sorted(events):
        if i >= len(steps):
            events[i]()
    run_out(clock)


class _Base(SynchronousTestCase):
    """A clock, a wire and a user per test, and no timer left at the end."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.wire = Wire(self.clock)
        self.user = RecordingUser(self.clock)
        self.addCleanup(self.assertNoTimers)

    def assertNoTimers(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def client(self, request: Request, flow: Flow = UDP, **kw: Any) -> Any:
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        return cls(request, flow, send=self.wire, user=self.user, clock=self.clock, **kw)

    def server(self, request: Request, flow: Flow = UDP, **kw: Any) -> Any:
        cls = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        return cls(request, flow, send=self.wire, user=self.user, clock=self.clock, **kw)


# -- values --------------------------------------------------------------------


class TimerSettingsTests(SynchronousTestCase):
    """L{TimerSettings} holds T1, T2, T4 and derives the RFC's timers."""

    def test_defaults(self) -> None:
        """If nothing is given, L{TimerSettings} has the RFC 3261 values."""
        t = TimerSettings()
        self.assertEqual((t.T1, t.T2, t.T4, t.timer_c), (0.5, 4.0, 5.0, 180.0))
        self.assertEqual(t.trying_delay, 0.2)

    def test_derived_unreliable(self) -> None:
        """If the flow is unreliable, L{TimerSettings} gives A..M as appendix A and RFC 6026 do."""
        t = TimerSettings()
        self.assertEqual((t.timer_a, t.timer_e, t.timer_g), (0.5, 0.5, 0.5))
        self.assertEqual((t.timer_b, t.timer_f, t.timer_h), (32.0, 32.0, 32.0))
        self.assertEqual((t.timer_l, t.timer_m), (32.0, 32.0))
        self.assertEqual(t.timer_d(False), 32.0)
        self.assertEqual(t.timer_i(False), 5.0)
        self.assertEqual(t.timer_j(False), 32.0)
        self.assertEqual(t.timer_k(False), 5.0)

    def test_derived_reliable(self) -> None:
        """If the flow is reliable, L{TimerSettings} makes D, I, J and K zero."""
        t = TimerSettings()
        self.assertEqual(
            [t.timer_d(True), t.timer_i(True), t.timer_j(True), t.timer_k(True)], [0.0] * 4
        )

    def test_scaled(self) -> None:
        """If T1 changes, L{TimerSettings} scales every 64*T1 timer with it."""
        t = TimerSettings(T1=0.25)
        self.assertEqual((t.timer_b, t.timer_f, t.timer_h, t.timer_l, t.timer_m), (16.0,) * 5)

    def test_invalid(self) -> None:
        """If T1 is not positive or T2 is below T1, L{TimerSettings} raises ValueError."""
        self.assertRaises(ValueError, TimerSettings, T1=0)
        self.assertRaises(ValueError, TimerSettings, T1=1.0, T2=0.5)
        self.assertRaises(ValueError, TimerSettings, T4=-1)


class TransactionKeyTests(SynchronousTestCase):
    """L{server_key} and L{client_key} implement RFC 3261 17.1.3 and 17.2.3."""

    def test_server_rfc3261(self) -> None:
        """If the branch has the magic cookie, L{server_key} is branch, sent-by and method."""
        key = server_key(make_request(branch="z9hG4bK-xyz"))
        self.assertEqual(
            key,
            TransactionKey(method="INVITE", branch="z9hG4bK-xyz", sent_by="198.51.100.7:5060"),
        )
        self.assertTrue(key.is_rfc3261)

    def test_server_ack_matches_invite(self) -> None:
        """If the request is an ACK, L{server_key} gives the INVITE's key."""
        invite = make_request()
        ack = make_ack(invite, make_response(invite, 486, to_tag="t"))
        self.assertEqual(server_key(ack), server_key(invite))

    def test_server_cancel_own_key(self) -> None:
        """If the request is a CANCEL, L{server_key} differs from the INVITE's only in method."""
        invite = make_request()
        key = server_key(cancel_for(invite))
        self.assertNotEqual(key, server_key(invite))
        self.assertEqual(key.with_method("INVITE"), server_key(invite))

    def test_server_sent_by(self) -> None:
        """If the sent-by differs, L{server_key} differs; the host compares without case."""
        a = server_key(make_request(via_host="host.example.com"))
        self.assertEqual(a, server_key(make_request(via_host="HOST.example.COM")))
        self.assertNotEqual(a, server_key(make_request(via_host="other.example.com")))
        self.assertNotEqual(a, server_key(make_request(via_host="host.example.com", via_port=5070)))

    def test_server_method(self) -> None:
        """If only the method differs, L{server_key} differs."""
        self.assertNotEqual(
            server_key(make_request("OPTIONS")), server_key(make_request("MESSAGE"))
        )

    def test_server_rfc2543(self) -> None:
        """If the branch lacks the cookie, L{server_key} uses the RFC 2543 fields."""
        request = make_request(branch="1234", to_tag="tt", cseq=7)
        key = server_key(request)
        self.assertFalse(key.is_rfc3261)
        self.assertEqual(
            (key.method, key.request_uri, key.call_id, key.cseq_number, key.from_tag, key.to_tag),
            ("INVITE", "sip:bob@example.com", "call-1@example.com", 7, "from-1", "tt"),
        )
        self.assertEqual(key.via, "SIP/2.0/UDP 198.51.100.7:5060;branch=1234")

    def test_server_rfc2543_no_branch(self) -> None:
        """If there is no branch, L{server_key} gives an RFC 2543 key."""
        self.assertFalse(server_key(make_request(branch=None)).is_rfc3261)

    def test_server_bare_cookie(self) -> None:
        """
        If the branch is exactly C{z9hG4bK} (semantically defective, RFC
        4475 3.1.1.1), L{server_key} treats it as no cookie: two requests
        with that branch but different Call-IDs have different keys.
        """
        a = server_key(make_request(branch="z9hG4bK", call_id="a"))
        b = server_key(make_request(branch="z9hG4bK", call_id="b"))
        self.assertFalse(a.is_rfc3261)
        self.assertNotEqual(a, b)

    def test_server_rfc2543_stamped_via(self) -> None:
        """If the transport stamped received/rport, the RFC 2543 key ignores them."""
        plain = make_request(branch=None)
        via = plain.top_via.with_received("203.0.113.9").with_rport(5062)
        stamped = plain.with_headers(plain.headers.replaced("Via", str(via)))
        self.assertEqual(server_key(stamped), server_key(plain))

    def test_server_rfc2543_fields(self) -> None:
        """If any RFC 2543 field differs, L{server_key} differs."""
        base = server_key(make_request(branch=None))
        for changed in [
            make_request(branch=None, uri="sip:carol@example.com"),
            make_request(branch=None, call_id="other"),
            make_request(branch=None, cseq=2),
            make_request(branch=None, from_tag="f2"),
            make_request(branch=None, to_tag="t2"),
            make_request(branch=None, via_host="198.51.100.8"),
        ]:
            self.assertNotEqual(server_key(changed), base)

    def test_client_key(self) -> None:
        """If given a request or its response, L{client_key} gives branch and CSeq method."""
        invite = make_request()
        response = make_response(invite, 180)
        self.assertEqual(client_key(invite), TransactionKey(method="INVITE", branch="z9hG4bK-1"))
        self.assertEqual(client_key(response), client_key(invite))

    def test_client_key_cancel(self) -> None:
        """If a response answers a CANCEL, L{client_key} differs from the INVITE's."""
        invite = make_request()
        self.assertNotEqual(client_key(make_response(cancel_for(invite), 200)), client_key(invite))
        self.assertEqual(
            client_key(make_response(cancel_for(invite), 200)), client_key(cancel_for(invite))
        )


class MakeResponseTests(SynchronousTestCase):
    """L{make_response} builds responses as RFC 3261 8.2.6 says."""

    def test_copies(self) -> None:
        """If given a request, L{make_response} copies Vias in order, From, To, Call-ID, CSeq."""
        request = make_request(extra_vias=("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0",))
        response = make_response(request, 404, to_tag="t1")
        self.assertEqual(
            list(response.headers),
            [
                ("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1"),
                ("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0"),
                ("From", "Alice <sip:alice@example.com>;tag=from-1"),
                ("To", "<sip:bob@example.com>;tag=t1"),
                ("Call-ID", "call-1@example.com"),
                ("CSeq", "1 INVITE"),
            ],
        )
        self.assertEqual((response.status, response.reason, response.body), (404, "Not Found", b""))

    def test_random_tag(self) -> None:
        """If no To tag is given, L{make_response} makes one from C{random}."""
        response = make_response(make_request(), 486, random=lambda n: b"\x01" * n)
        self.assertEqual(response.to_address.tag, "01" * 8)

    def test_keeps_tag(self) -> None:
        """If the To has a tag, L{make_response} keeps it."""
        response = make_response(make_request(to_tag="dialog"), 200, to_tag="other")
        self.assertEqual(response.to_address.tag, "dialog")

    def test_trying(self) -> None:
        """If the status is 100, L{make_response} adds no To tag and copies Timestamp."""
        request = make_request()
        request = request.with_headers(request.headers.added("Timestamp", "54"))
        response = make_response(request, 100)
        self.assertIsNone(response.to_address.tag)
        self.assertEqual(response.headers.get("Timestamp"), "54")
        self.assertNotIn("Timestamp", make_response(request, 180, to_tag="x").headers)

    def test_extra_headers(self) -> None:
        """If given headers and a reason, L{make_response} appends them and uses the reason."""
        response = make_response(
            make_request(), 420, "Nope", headers=[("Unsupported", "foo")], to_tag="x"
        )
        self.assertEqual(response.reason, "Nope")
        self.assertEqual(list(response.headers)[-1], ("Unsupported", "foo"))

    def test_parses(self) -> None:
        """If serialized, what L{make_response} builds parses back to the same response."""
        response = make_response(make_request(), 183, to_tag="x")
        self.assertEqual(parse_datagram(serialize(response)), response)

    def test_refuses(self) -> None:
        """If asked to answer an ACK or with a bad status, L{make_response} raises."""
        invite = make_request()
        ack = make_ack(invite, make_response(invite, 486, to_tag="t"))
        self.assertRaises(LocalProtocolError, make_response, ack, 200)
        self.assertRaises(LocalProtocolError, make_response, invite, 99)
        self.assertRaises(LocalProtocolError, make_response, invite, 700)

    def test_malformed_to(self) -> None:
        """If the To does not parse, L{make_response} still finds or adds the tag."""
        request = make_request()
        broken = request.with_headers(request.headers.replaced("To", "<sip:bob@@x;tag=in-uri>"))
        response = make_response(broken, 400, to_tag="t")
        self.assertEqual(response.headers.get("To"), "<sip:bob@@x;tag=in-uri>;tag=t")
        tagged = request.with_headers(request.headers.replaced("To", "<sip:bob@@x>;tag=a"))
        self.assertEqual(
            make_response(tagged, 400, to_tag="t").headers.get("To"), "<sip:bob@@x>;tag=a"
        )

    def test_reason_phrases(self) -> None:
        """If asked, L{reason_phrase} knows every RFC 3261 code and names others by class."""
        rfc3261 = {
            100, 180, 181, 182, 183, 200, 300, 301, 302, 305, 380, 400, 401, 402, 403,
            404, 405, 406, 407, 408, 410, 413, 414, 415, 416, 420, 421, 423, 480, 481,
            482, 483, 484, 485, 486, 487, 488, 491, 493, 500, 501, 502, 503, 504, 505,
            513, 600, 603, 604, 606,
        }  # fmt: skip
        self.assertLessEqual(rfc3261, set(REASON_PHRASES))
        self.assertEqual(reason_phrase(481), "Call/Transaction Does Not Exist")
        self.assertEqual(reason_phrase(499), "Client Error")
        self.assertEqual(reason_phrase(699), "Global Failure")


class MakeAckTests(SynchronousTestCase):
    """C{make_ack} builds the ACK for a 3xx-6xx as RFC 3261 17.1.1.3 says."""

    def test_ack(self) -> None:
        """
        If given an INVITE and its 3xx-6xx, C{make_ack} builds an ACK with the
        INVITE's Request-URI, top Via only, Route, From, Call-ID and CSeq
        number, the response's To, and Max-Forwards 70.
        """
        invite = make_request(
            routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"),
            extra_vias=("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0",),
        )
        ack = make_ack(invite, make_response(invite, 486, to_tag="busy"))
        self.assertEqual((ack.method, ack.uri), ("ACK", "sip:bob@example.com"))
        self.assertEqual(
            list(ack.headers),
            [
                ("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1"),
                ("Max-Forwards", "70"),
                ("Route", "<sip:p1.example.com;lr>"),
                ("Route", "<sip:p2.example.com;lr>"),
                ("From", "Alice <sip:alice@example.com>;tag=from-1"),
                ("To", "<sip:bob@example.com>;tag=busy"),
                ("Call-ID", "call-1@example.com"),
                ("CSeq", "1 ACK"),
            ],
        )
        self.assertEqual(parse_datagram(serialize(ack)), ack)


# -- the tables ----------------------------------------------------------------

MACHINES: list[MachineSpec] = [CLIENT_INVITE, CLIENT_NON_INVITE, SERVER_INVITE, SERVER_NON_INVITE]


class StateTableTests(SynchronousTestCase):
    """The transition tables are consistent data."""

    def test_targets(self) -> None:
        """If read as data, every table entry goes from and to a state of its machine."""
        for spec in MACHINES:
            for (state, input), transition in spec.transitions.items():
                self.assertIn(state, spec.states, spec.name)
                self.assertIn(transition.target, spec.states, spec.name)
                self.assertIsInstance(input, spec.inputs)

    def test_remote_inputs_explicit(self) -> None:
        """
        If a remote input can reach a machine, every live state has an entry
        for it: a stray packet never kills a live transaction.
        """
        for spec in MACHINES:
            remote = {i for i in spec.inputs if i in REMOTE_INPUTS}
            if spec is SERVER_NON_INVITE:
                remote.discard(ServerInput.RECV_ACK)  # an ACK keys to an INVITE
            for state in spec.states - {State.TERMINATED}:
                for input in remote:
                    self.assertIn((state, input), spec.transitions, f"{spec.name} {state} {input}")

    def test_timers_owned(self) -> None:
        """If an input is a timer, it has entries only in the states that own the timer."""
        for spec in MACHINES:
            timer_inputs = {i for owned in spec.timers.values() for i in owned}
            for state, input in spec.transitions:
                if input in timer_inputs:
                    self.assertIn(input, spec.timers[state], f"{spec.name} {state} {input}")

    def test_terminated(self) -> None:
        """If TERMINATED, a machine has one entry: ABANDON, absorbed."""
        for spec in MACHINES:
            entries = {i: t for (s, i), t in spec.transitions.items() if s is State.TERMINATED}
            self.assertEqual(list(entries), [spec.inputs.ABANDON])
            self.assertTrue(entries[spec.inputs.ABANDON].absorb)

    def test_reachable(self) -> None:
        """If followed from the initial state, the table reaches every state of its machine."""
        for spec in MACHINES:
            seen = {spec.initial}
            todo = [spec.initial]
            while todo:
                state = todo.pop()
                for (source, _), transition in spec.transitions.items():
                    if source is state and transition.target not in seen:
                        seen.add(transition.target)
                        todo.append(transition.target)
            self.assertEqual(seen, spec.states, spec.name)


# -- machine totality ------------------------------------------------------------

INVITE = make_request()
OPTIONS = make_request("OPTIONS", branch="z9hG4bK-2")


def _payload(tx: Any, input: Any) -> Any:
    """A payload for C{input}, as the machine's named methods would pass."""
    # A lingering transaction has let go of its request (and a TU keeps
    # its own): the one the machine was made with.
    request = tx.request if tx.request is not None else _CLASSES[tx.spec.name][1]
    statuses = {
        ClientInput.RECV_1XX: 180,
        ClientInput.RECV_2XX: 200,
        ClientInput.RECV_3XX_6XX: 486,
        ServerInput.SEND_1XX: 180,
        ServerInput.SEND_2XX: 200,
        ServerInput.SEND_3XX_6XX: 486,
    }
    if input in statuses:
        return make_response(request, statuses[input], to_tag="uas")
    if input is ServerInput.RECV_REQUEST:
        return (request, tx.flow)
    if input is ServerInput.RECV_ACK:
        return (make_ack(request, make_response(request, 486, to_tag="uas")), tx.flow)
    if input in (ClientInput.TRANSPORT_ERROR, ServerInput.TRANSPORT_ERROR):
        return Failure(TransportError("gone"))
    return None


# How to bring a new transaction to each state.
_PATHS: dict[str, dict[State, list[Callable[[Any], None]]]] = {
    "client INVITE": {
        State.CALLING: [],
        State.PROCEEDING: [lambda tx: tx.response_received(make_response(INVITE, 180, to_tag="u"))],
        State.COMPLETED: [lambda tx: tx.response_received(make_response(INVITE, 486, to_tag="u"))],
        State.ACCEPTED: [lambda tx: tx.response_received(make_response(INVITE, 200, to_tag="u"))],
        State.TERMINATED: [lambda tx: tx.cancel_timers()],
    },
    "client non-INVITE": {
        State.TRYING: [],
        State.PROCEEDING: [lambda tx: tx.response_received(make_response(OPTIONS, 100))],
        State.COMPLETED: [lambda tx: tx.response_received(make_response(OPTIONS, 200, to_tag="u"))],
        State.TERMINATED: [lambda tx: tx.cancel_timers()],
    },
    "server INVITE": {
        State.PROCEEDING: [],
        State.COMPLETED: [lambda tx: tx.respond(make_response(INVITE, 486, to_tag="uas"))],
        State.CONFIRMED: [
            lambda tx: tx.respond(make_response(INVITE, 486, to_tag="uas")),
            lambda tx: tx.request_received(
                make_ack(INVITE, make_response(INVITE, 486, to_tag="uas"))
            ),
        ],
        State.ACCEPTED: [lambda tx: tx.respond(make_response(INVITE, 200, to_tag="uas"))],
        State.TERMINATED: [lambda tx: tx.cancel_timers()],
    },
    "server non-INVITE": {
        State.TRYING: [],
        State.PROCEEDING: [lambda tx: tx.respond(make_response(OPTIONS, 100))],
        State.COMPLETED: [lambda tx: tx.respond(make_response(OPTIONS, 200, to_tag="u"))],
        State.TERMINATED: [lambda tx: tx.cancel_timers()],
    },
}

_CLASSES = {
    "client INVITE": (ClientInviteTransaction, INVITE),
    "client non-INVITE": (ClientNonInviteTransaction, OPTIONS),
    "server INVITE": (ServerInviteTransaction, INVITE),
    "server non-INVITE": (ServerNonInviteTransaction, OPTIONS),
}


class MachineTotalityTests(SynchronousTestCase):
    """
    For every C{(state, input)} of every machine, the machine reaches a
    legal state or raises L{LocalProtocolError} or L{RemoteProtocolError}
    and is TERMINATED (cf. h2's C{test_state_machines.py}).
    """

    def make(self, spec: MachineSpec, clock: Clock, flow: Flow, user: RecordingUser) -> Any:
        cls, request = _CLASSES[spec.name]
        tx = cls(request, flow, send=Wire(clock), user=user, clock=clock)
        tx.start()
        return tx

    def check_input(self, tx: Any, input: Any) -> None:
        """Feed C{input}; check it moved as the table says or raised and ended."""
        spec = tx.spec
        start = input in (ClientInput.START, ServerInput.START)
        # The machine is started already: START again is a local error.
        expected = None if start else spec.transitions.get((tx.state, input))
        try:
            if start:
                tx.start()
            else:
                tx.process_input(input, _payload(tx, input))
        except (LocalProtocolError, RemoteProtocolError) as e:
            self.assertIsNone(expected, f"{spec.name}: {input} raised {e!r}")
            self.assertIs(tx.state, State.TERMINATED)
            self.assertIsInstance(
                e, RemoteProtocolError if input in REMOTE_INPUTS else LocalProtocolError
            )
        else:
            self.assertIsNotNone(expected, f"{spec.name}: {input} did not raise")
        self.assertIn(tx.state, spec.states)
        self.assertLessEqual(tx.running_timers, spec.timers[tx.state])

    def test_every_pair(self) -> None:
        """If any input arrives in any state of any machine on any flow, the table is obeyed."""
        for spec in MACHINES:
            for flow in (UDP, TCP):
                for state, path in _PATHS[spec.name].items():
                    for input in spec.inputs:
                        clock = Clock()
                        user = RecordingUser(clock)
                        tx = self.make(spec, clock, flow, user)
                        for step in path:
                            step(tx)
                        if flow.reliable and state is not tx.state:
                            # A zero timer ended it at once (CONFIRMED on TCP).
                            self.assertIs(tx.state, State.TERMINATED)
                            continue
                        self.assertIs(tx.state, state, spec.name)
                        self.check_input(tx, input)
                        tx.cancel_timers()
                        self.assertEqual(clock.getDelayedCalls(), [])
                        self.assertEqual(user.terminated, [tx])

    @given(
        machine=st.sampled_from(MACHINES),
        reliable=st.booleans(),
        steps=st.lists(
            st.one_of(
                st.tuples(st.just("input"), st.integers(0, 20)),
                st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 2.0, 5.0, 40.0])),
            ),
            max_size=25,
        ),
    )
    def test_random_inputs(self, machine: MachineSpec, reliable: bool, steps: list) -> None:
        """
        If random sequences of inputs and clock steps arrive, each machine
        stays in a legal state with only its state's timers running, and once it has
        its final response, 64*T1 + 32 s later it is TERMINATED with no timer
        left.
        """
        clock = Clock()
        user = RecordingUser(clock)
        tx = self.make(machine, clock, TCP if reliable else UDP, user)
        inputs = list(machine.inputs)
        for kind, value in steps:
            if kind == "advance":
                clock.advance(value)
                self.assertIn(tx.state, machine.states)
                self.assertLessEqual(tx.running_timers, machine.timers[tx.state])
            else:
                self.check_input(tx, inputs[value % len(inputs)])
        # Close it as a TU and a peer must: the final response.
        if tx.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            if machine.name.startswith("client"):
                tx.response_received(make_response(tx.request, 408, to_tag="u"))
            else:
                tx.respond(make_response(tx.request, 500, to_tag="u"))
        clock.advance(64 * 0.5 + 32)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(user.terminated, [tx])


# -- client transactions ---------------------------------------------------------


class ClientInviteTransactionTests(_Base):
    """L{ClientInviteTransaction} follows RFC 3261 17.1.1 and RFC 6026."""

    def test_interface(self) -> None:
        """If built, L{ClientInviteTransaction} provides L{IClientTransaction}, in CALLING."""
        tx = self.client(INVITE)
        self.assertTrue(verifyObject(IClientTransaction, tx))
        self.assertEqual(
            (tx.state, tx.key, tx.request, tx.flow),
            (State.CALLING, client_key(INVITE), INVITE, UDP),
        )

    def test_start(self) -> None:
        """If started, L{ClientInviteTransaction} sends the request on its flow."""
        tx = self.client(INVITE)
        tx.start()
        self.assertEqual(self.wire.sent, [(0.0, INVITE, UDP)])
        tx.cancel_timers()

    def test_start_twice(self) -> None:
        """If started twice, L{ClientInviteTransaction} raises and terminates."""
        tx = self.client(INVITE)
        tx.start()
        self.assertRaises(LocalProtocolError, tx.start)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.terminated, [tx])

    def test_refuses(self) -> None:
        """If the request has no RFC 3261 branch or is not an INVITE, it raises."""
        self.assertRaises(LocalProtocolError, self.client, make_request(branch="z9hG4bK"))
        self.assertRaises(LocalProtocolError, self.client, make_request(branch=None))
        self.assertRaises(
            LocalProtocolError, ClientInviteTransaction, OPTIONS, UDP,
            send=self.wire, user=self.user, clock=self.clock,
        )  # fmt: skip
        ack = make_ack(INVITE, make_response(INVITE, 486, to_tag="t"))
        self.assertRaises(LocalProtocolError, self.client, ack)

    def test_provisional(self) -> None:
        """If a 1xx arrives, it goes to the TU, and Timers A and B stop."""
        tx = self.client(INVITE)
        tx.start()
        ringing = make_response(INVITE, 180, to_tag="u")
        tx.response_received(ringing)
        self.assertIs(tx.state, State.PROCEEDING)
        self.assertEqual(self.user.responses, [(0.0, ringing, tx)])
        self.assertEqual(self.clock.getDelayedCalls(), [])  # no Timer A, no Timer B
        tx.response_received(ringing)
        self.assertEqual(len(self.user.responses), 2)
        tx.cancel_timers()

    def test_final_lets_request_go(self) -> None:
        """
        Once a final response arrives, the request is let go (no state
        sends it again, and Timer M or D keeps the transaction 32 s): a
        3xx-6xx leaves the ACK built from it, which COMPLETED sends again;
        a non-INVITE in COMPLETED keeps nothing either.
        """
        for request, status, state in (
            (INVITE, 200, State.ACCEPTED),
            (INVITE, 486, State.COMPLETED),
            (OPTIONS, 200, State.COMPLETED),
        ):
            tx = self.client(request)
            tx.start()
            tx.response_received(make_response(request, 180, to_tag="u"))
            self.assertIs(tx.request, request)
            final = make_response(request, status, to_tag="u")
            tx.response_received(final)
            self.assertIs(tx.state, state)
            self.assertIsNone(tx.request)
            if request is INVITE and status >= 300:
                self.assertEqual(tx.ack, make_ack(INVITE, final))
                tx.response_received(final)  # again: the ACK again
                self.assertEqual(self.wire.messages[-2:], [tx.ack, tx.ack])
            tx.cancel_timers()

    def test_success(self) -> None:
        """
        If a 2xx arrives, it moves to ACCEPTED and passes it and every further
        2xx up, absorbs other responses, and ends when Timer M fires.
        """
        tx = self.client(INVITE)
        tx.start()
        ok = make_response(INVITE, 200, to_tag="u")
        tx.response_received(ok)
        self.assertIs(tx.state, State.ACCEPTED)
        tx.response_received(ok)
        tx.response_received(make_response(INVITE, 200, to_tag="fork2"))
        tx.response_received(make_response(INVITE, 180, to_tag="u"))
        tx.response_received(make_response(INVITE, 486, to_tag="u"))
        self.assertEqual([r.status for _, r, _ in self.user.responses], [200, 200, 200])
        self.assertEqual(self.wire.messages, [INVITE])  # no ACK for a 2xx
        self.clock.advance(32 - 0.001)
        self.assertIs(tx.state, State.ACCEPTED)
        self.clock.advance(0.001)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.terminated, [tx])
        self.assertEqual(self.user.failures, [])

    def test_failure_ack(self) -> None:
        """
        If a 3xx-6xx arrives, it ACKs it, passes it up once, ACKs every
        retransmission, and ends when Timer D fires after 32 s.
        """
        tx = self.client(INVITE)
        tx.start()
        busy = make_response(INVITE, 486, to_tag="u")
        tx.response_received(busy)
        self.assertIs(tx.state, State.COMPLETED)
        self.assertEqual(self.wire.messages, [INVITE, make_ack(INVITE, busy)])
        self.assertEqual(tx.ack, make_ack(INVITE, busy))
        tx.response_received(busy)
        tx.response_received(make_response(INVITE, 180, to_tag="u"))
        self.assertEqual(self.wire.messages, [INVITE, tx.ack, tx.ack])
        self.assertEqual([r.status for _, r, _ in self.user.responses], [486])
        self.clock.advance(31.9)
        self.assertIs(tx.state, State.COMPLETED)
        self.clock.advance(0.1)
        self.assertIs(tx.state, State.TERMINATED)

    def test_failure_reliable(self) -> None:
        """If the flow is reliable, Timer D is zero: a 3xx-6xx ends it once the TU saw it."""
        tx = self.client(INVITE, TCP)
        tx.start()
        order: list[str] = []
        self.user.on_response = lambda r, t: order.append(f"response {t.state.name}")
        tx.response_received(make_response(INVITE, 503, to_tag="u"))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(order, ["response COMPLETED"])
        self.assertEqual([m.method for m in self.wire.messages], ["INVITE", "ACK"])

    def test_timeout(self) -> None:
        """If nothing answers, Timer B fires at 64*T1 and the TU gets L{TransactionTimeout}."""
        tx = self.client(INVITE)
        tx.start()
        self.clock.pump([0.5] * 64)
        self.assertIs(tx.state, State.TERMINATED)
        [(when, failed, reason)] = self.user.failures
        self.assertEqual((when, failed), (32.0, tx))
        reason.trap(TransactionTimeout)
        self.assertEqual(self.user.terminated, [tx])

    def test_transport_error_start(self) -> None:
        """If the first send raises L{TransportError}, the TU is told and it ends (17.1.4)."""
        self.wire.fail = True
        tx = self.client(INVITE)
        tx.start()
        self.assertIs(tx.state, State.TERMINATED)
        [(_, failed, reason)] = self.user.failures
        self.assertIs(failed, tx)
        reason.trap(TransportError)

    def test_transport_error_retransmission(self) -> None:
        """If a retransmission raises L{TransportError}, the TU is told and it ends."""
        tx = self.client(INVITE)
        tx.start()
        self.wire.fail = True
        self.clock.advance(0.5)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(len(self.user.failures), 1)

    def test_transport_error_ack(self) -> None:
        """If the ACK cannot be sent, it ends without a failure: the TU has the final response."""
        tx = self.client(INVITE)
        tx.start()
        self.wire.fail = True
        tx.response_received(make_response(INVITE, 404, to_tag="u"))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.failures, [])
        self.assertEqual(len(self.user.responses), 1)

    def test_cancel_timers(self) -> None:
        """If the TU calls C{cancel_timers}, it ends; a second call does nothing."""
        tx = self.client(INVITE)
        tx.start()
        tx.cancel_timers()
        tx.cancel_timers()
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.terminated, [tx])

    def test_terminated_response(self) -> None:
        """If a response reaches a TERMINATED transaction, it raises L{RemoteProtocolError}."""
        tx = self.client(INVITE)
        tx.start()
        tx.cancel_timers()
        self.assertRaises(
            RemoteProtocolError, tx.response_received, make_response(INVITE, 200, to_tag="u")
        )

    def test_user_raises(self) -> None:
        """If the TU raises, the error is logged and the machine goes on."""
        tx = self.client(INVITE)
        tx.start()
        self.user.on_response = lambda r, t: 1 / 0
        tx.response_received(make_response(INVITE, 486, to_tag="u"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertIs(tx.state, State.COMPLETED)
        self.assertEqual(tx.running_timers, {ClientInput.TIMER_D})
        tx.cancel_timers()

    def test_user_cancels_inside_callback(self) -> None:
        """If the TU ends the transaction from its callback, no timer is left behind."""
        tx = self.client(INVITE)
        tx.start()
        self.user.on_response = lambda r, t: t.cancel_timers()
        tx.response_received(make_response(INVITE, 200, to_tag="u"))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.terminated, [tx])


class ClientNonInviteTransactionTests(_Base):
    """L{ClientNonInviteTransaction} follows RFC 3261 17.1.2."""

    def test_interface(self) -> None:
        """If built, L{ClientNonInviteTransaction} provides L{IClientTransaction}, in TRYING."""
        tx = self.client(OPTIONS)
        self.assertTrue(verifyObject(IClientTransaction, tx))
        self.assertIs(tx.state, State.TRYING)

    def test_refuses_invite(self) -> None:
        """If given an INVITE, L{ClientNonInviteTransaction} raises."""
        self.assertRaises(
            LocalProtocolError, ClientNonInviteTransaction, INVITE, UDP,
            send=self.wire, user=self.user, clock=self.clock,
        )  # fmt: skip

    def test_final(self) -> None:
        """If a final response arrives, it goes up once, and Timer K (T4) ends it."""
        tx = self.client(OPTIONS)
        tx.start()
        tx.response_received(make_response(OPTIONS, 100))
        self.assertIs(tx.state, State.PROCEEDING)
        ok = make_response(OPTIONS, 200, to_tag="u")
        tx.response_received(ok)
        tx.response_received(ok)
        self.assertIs(tx.state, State.COMPLETED)
        self.assertEqual([r.status for _, r, _ in self.user.responses], [100, 200])
        self.assertEqual(tx.running_timers, {ClientInput.TIMER_K})
        self.clock.advance(5)
        self.assertIs(tx.state, State.TERMINATED)

    def test_final_reliable(self) -> None:
        """If the flow is reliable, Timer K is zero and a final response ends it."""
        tx = self.client(OPTIONS, TCP)
        tx.start()
        tx.response_received(make_response(OPTIONS, 404, to_tag="u"))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(len(self.user.responses), 1)

    def test_timeout(self) -> None:
        """If nothing answers, Timer F fires at 64*T1 with L{TransactionTimeout}."""
        tx = self.client(OPTIONS, TCP)
        tx.start()
        self.clock.advance(31.9)
        self.assertEqual(self.user.failures, [])
        self.clock.advance(0.1)
        [(when, _, reason)] = self.user.failures
        self.assertEqual(when, 32.0)
        reason.trap(TransactionTimeout)
        self.assertEqual(self.wire.messages, [OPTIONS])


# -- server transactions ---------------------------------------------------------


class ServerInviteTransactionTests(_Base):
    """L{ServerInviteTransaction} follows RFC 3261 17.2.1 and RFC 6026."""

    def started(self, flow: Flow = UDP) -> ServerInviteTransaction:
        tx = self.server(INVITE, flow)
        tx.start()
        return tx

    def test_interface(self) -> None:
        """If built, L{ServerInviteTransaction} provides L{IServerTransaction}, in PROCEEDING."""
        tx = self.server(INVITE)
        self.assertTrue(verifyObject(IServerTransaction, tx))
        self.assertEqual((tx.state, tx.key), (State.PROCEEDING, server_key(INVITE)))

    def test_trying(self) -> None:
        """If the TU has not responded within 200 ms, it sends 100 Trying itself."""
        tx = self.started()
        self.clock.advance(0.199)
        self.assertEqual(self.wire.messages, [])
        self.clock.advance(0.001)
        [trying] = self.wire.messages
        self.assertEqual(trying, make_response(INVITE, 100))
        tx.request_received(INVITE)
        self.assertEqual(self.wire.messages, [trying, trying])
        tx.cancel_timers()

    def test_no_trying(self) -> None:
        """If the TU responds at once, no 100 Trying of its own is sent."""
        tx = self.started()
        ringing = make_response(INVITE, 180, to_tag="uas")
        tx.respond(ringing)
        self.clock.advance(1)
        self.assertEqual(self.wire.messages, [ringing])
        self.assertEqual(tx.last_provisional, ringing)
        tx.cancel_timers()

    def test_trying_held(self) -> None:
        """
        With C{hold_trying}, START starts no timer; L{arm_trying} starts
        the 200 ms one, unless a response went out since (then never).
        """
        tx = self.server(INVITE, UDP, hold_trying=True)
        tx.start()
        self.assertEqual(tx.running_timers, frozenset())
        tx.arm_trying()
        self.assertEqual(tx.running_timers, {ServerInput.TIMER_TRYING})
        self.clock.advance(0.2)
        self.assertEqual(self.wire.messages, [make_response(INVITE, 100)])
        tx.cancel_timers()
        answered = self.server(INVITE, UDP, hold_trying=True)
        answered.start()
        answered.respond(make_response(INVITE, 180, to_tag="uas"))
        answered.arm_trying()
        self.assertEqual(answered.running_timers, frozenset())
        answered.cancel_timers()

    def test_final_lets_provisional_go(self) -> None:
        """
        Once a final response is sent, the last provisional one and the
        request are let go (no state sends them again); a 3xx-6xx is kept
        for Timer G (a copy without the views parsed on it), a 2xx is not
        (the transaction never sends it again, RFC 6026).
        """
        for status, state in ((200, State.ACCEPTED), (486, State.COMPLETED)):
            tx = self.started()
            self.assertIs(tx.request, INVITE)
            tx.respond(make_response(INVITE, 180, to_tag="uas"))
            final = make_response(INVITE, status, to_tag="uas")
            tx.respond(final)
            self.assertIs(tx.state, state)
            self.assertIsNone(tx.last_provisional)
            self.assertIsNone(tx.request)
            self.assertEqual(tx.final_response, final if status >= 300 else None)
            tx.request_received(INVITE)  # a retransmission: absorbed, or the final again
            self.assertNotIn(180, [m.status for m in self.wire.messages[2:]])
            tx.cancel_timers()
            self.wire.sent.clear()

    def test_retransmission_before_response(self) -> None:
        """If the INVITE is retransmitted before any response, it is absorbed silently."""
        tx = self.started()
        tx.request_received(INVITE)
        self.assertEqual(self.wire.messages, [])
        self.assertEqual(self.user.strays, [])
        tx.cancel_timers()

    def test_failure_response(self) -> None:
        """
        If the TU sends a 3xx-6xx, Timer G retransmits it until the ACK,
        which moves it to CONFIRMED; Timer I (T4) ends it.
        """
        tx = self.started()
        busy = make_response(INVITE, 486, to_tag="uas")
        tx.respond(busy)
        self.assertIs(tx.state, State.COMPLETED)
        self.clock.pump([0.5, 1.0])
        self.assertEqual(self.wire.times(is_status(486)), [0.0, 0.5, 1.5])
        tx.request_received(INVITE)
        self.assertEqual(len(self.wire.times(is_status(486))), 4)
        tx.request_received(make_ack(INVITE, busy))
        self.assertIs(tx.state, State.CONFIRMED)
        tx.request_received(make_ack(INVITE, busy))
        tx.request_received(INVITE)
        self.assertEqual(len(self.wire.messages), 4)
        self.clock.advance(5)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.failures, [])

    def test_failure_reliable(self) -> None:
        """If the flow is reliable, no G retransmission, and the ACK ends it at once."""
        tx = self.started(TCP)
        busy = make_response(INVITE, 486, to_tag="uas")
        tx.respond(busy)
        self.assertEqual(tx.running_timers, {ServerInput.TIMER_H})
        tx.request_received(make_ack(INVITE, busy))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.wire.messages, [busy])

    def test_no_ack(self) -> None:
        """If no ACK comes, Timer H ends it at 64*T1 and tells the TU."""
        tx = self.started()
        tx.respond(make_response(INVITE, 404, to_tag="uas"))
        run_out(self.clock)
        [(when, _, reason)] = self.user.failures
        self.assertEqual(when, 32.0)
        reason.trap(TransactionTimeout)
        self.assertIs(tx.state, State.TERMINATED)

    def test_success(self) -> None:
        """
        If the TU sends a 2xx, it moves to ACCEPTED: INVITE retransmissions
        are absorbed, further 2xx are sent, ACKs go to the TU, Timer L ends it.
        """
        tx = self.started()
        ok = make_response(INVITE, 200, to_tag="uas")
        tx.respond(ok)
        self.assertIs(tx.state, State.ACCEPTED)
        tx.request_received(INVITE)
        tx.respond(ok)
        ack = ack_for_2xx(INVITE, ok)
        tx.request_received(ack, TCP)
        self.assertEqual(self.wire.messages, [ok, ok])
        self.assertEqual(self.user.strays, [(ack, TCP)])
        self.clock.advance(32)
        self.assertIs(tx.state, State.TERMINATED)

    def test_provisional_after_final(self) -> None:
        """If the TU sends a 1xx after the final response, it raises and terminates."""
        tx = self.started()
        tx.respond(make_response(INVITE, 486, to_tag="uas"))
        self.assertRaises(LocalProtocolError, tx.respond, make_response(INVITE, 180, to_tag="uas"))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertRaises(LocalProtocolError, tx.respond, make_response(INVITE, 200, to_tag="uas"))

    def test_bad_status(self) -> None:
        """If the TU passes a status outside 100-699, C{respond} raises and nothing changes."""
        tx = self.started()
        bad = attrs.evolve(make_response(INVITE, 200), status=99)
        self.assertRaises(LocalProtocolError, tx.respond, bad)
        self.assertIs(tx.state, State.PROCEEDING)
        tx.cancel_timers()

    def test_transport_error(self) -> None:
        """If a response cannot be sent, the TU is told and it ends (17.2.4)."""
        tx = self.started()
        self.wire.fail = True
        tx.respond(make_response(INVITE, 180, to_tag="uas"))
        self.assertIs(tx.state, State.TERMINATED)
        [(_, failed, reason)] = self.user.failures
        self.assertIs(failed, tx)
        reason.trap(TransportError)


class ServerNonInviteTransactionTests(_Base):
    """L{ServerNonInviteTransaction} follows RFC 3261 17.2.2."""

    def started(self, flow: Flow = UDP) -> ServerNonInviteTransaction:
        tx = self.server(OPTIONS, flow)
        tx.start()
        return tx

    def test_interface(self) -> None:
        """If built, L{ServerNonInviteTransaction} provides L{IServerTransaction}, in TRYING."""
        tx = self.server(OPTIONS)
        self.assertTrue(verifyObject(IServerTransaction, tx))
        self.assertIs(tx.state, State.TRYING)

    def test_refuses(self) -> None:
        """If given an INVITE or ACK, L{ServerNonInviteTransaction} raises."""
        ack = make_ack(INVITE, make_response(INVITE, 486, to_tag="t"))
        for request in (INVITE, ack):
            self.assertRaises(
                LocalProtocolError, ServerNonInviteTransaction, request, UDP,
                send=self.wire, user=self.user, clock=self.clock,
            )  # fmt: skip

    def test_retransmissions(self) -> None:
        """
        If the request is retransmitted, L{ServerNonInviteTransaction}
        absorbs it in TRYING, answers the last provisional in PROCEEDING and
        the final in COMPLETED.
        """
        tx = self.started()
        tx.request_received(OPTIONS)
        self.assertEqual(self.wire.messages, [])
        trying = make_response(OPTIONS, 100)
        tx.respond(trying)
        tx.request_received(OPTIONS)
        self.assertEqual(self.wire.messages, [trying, trying])
        ok = make_response(OPTIONS, 200, to_tag="u")
        tx.respond(ok)
        tx.request_received(OPTIONS)
        self.assertEqual(self.wire.messages, [trying, trying, ok, ok])
        self.assertEqual(tx.final_response, ok)
        self.clock.advance(31.9)
        self.assertIs(tx.state, State.COMPLETED)
        self.clock.advance(0.1)
        self.assertIs(tx.state, State.TERMINATED)

    def test_second_final_discarded(self) -> None:
        """If the TU sends another final in COMPLETED, it is discarded (17.2.2)."""
        tx = self.started()
        ok = make_response(OPTIONS, 200, to_tag="u")
        tx.respond(ok)
        tx.respond(make_response(OPTIONS, 500, to_tag="u"))
        self.assertEqual(self.wire.messages, [ok])
        self.assertIs(tx.state, State.COMPLETED)
        tx.cancel_timers()

    def test_reliable(self) -> None:
        """If the flow is reliable, Timer J is zero: the final response ends it."""
        tx = self.started(TCP)
        tx.respond(make_response(OPTIONS, 200, to_tag="u"))
        self.assertIs(tx.state, State.TERMINATED)


# -- timer schedules ---------------------------------------------------------------


def _schedule(
    first: float,
    t1: float,
    cap: float | None,
    end: float,
    stop: float | None,
    slow_from: float | None = None,
) -> list[float]:
    """
    The model: sends at C{first}, then after T1, 2*T1, 4*T1, ... (at most
    C{cap}; exactly C{cap} for intervals started after C{slow_from}), while
    before C{end} (the timeout wins a tie) and not after C{stop} (a timer due
    at the very moment a message arrives fires first).
    """
    times = [first]
    t, interval = first, t1
    while True:
        due = t + interval
        if due >= end or (stop is not None and due > stop):
            return times
        times.append(due)
        t = due
        if cap is not None and slow_from is not None and due > slow_from:
            interval = cap
        else:
            interval = interval * 2 if cap is None else min(interval * 2, cap)


class TimerScheduleTests(SynchronousTestCase):
    """
    Retransmissions happen at exactly T1, 2*T1, 4*T1, ... after the last
    (Timer A without limit, E and G up to T2, E at T2 after a 1xx), the
    timeouts at exactly 64*T1, and nothing is retransmitted on a reliable
    flow (cf. C{_AggregateSmallWritesTests}). The same, to the same
    instants, with the timers in a L{TimerWheel} of 1/64 s (C{wheel}):
    every time here is a multiple of 1/16 s, on a tick, where the wheel
    adds no delay.
    """

    @given(
        t1=DYADIC_T1,
        steps=STEPS,
        at=st.one_of(st.none(), st.integers(0, 40)),
        status=st.sampled_from([180, 200, 486]),
        reliable=st.booleans(),
        wheel=st.booleans(),
    )
    def test_timer_a_b(
        self,
        t1: float,
        steps: list[float],
        at: int | None,
        status: int,
        reliable: bool,
        wheel: bool,
    ) -> None:
        """If nothing stops it, L{ClientInviteTransaction} doubles Timer A without limit until B."""
        clock: Any = WheelClock() if wheel else Clock()
        wire, user = Wire(clock), RecordingUser(clock)
        tx = ClientInviteTransaction(
            INVITE, TCP if reliable else UDP, send=wire, user=user, clock=clock,
            timers=TimerSettings(T1=t1, T2=t1),
        )  # fmt: skip
        tx.start()
        arrived: list[float] = []

        def respond() -> None:
            if not tx.terminated:
                arrived.append(clock.seconds())
                tx.response_received(make_response(INVITE, status, to_tag="u"))

        drive(clock, steps, {} if at is None else {at: respond})
        stop = arrived[0] if arrived else None
        expected = [0.0] if reliable else _schedule(0.0, t1, None, 64 * t1, stop)
        self.assertEqual(wire.times(is_request("INVITE")), expected)
        timeouts = [when for when, _, _ in user.failures]
        self.assertEqual(timeouts, [] if arrived else [64 * t1])
        tx.cancel_timers()
        self.assertEqual(clock.getDelayedCalls(), [])

    @given(
        t1=DYADIC_T1,
        doublings=st.integers(0, 4),
        steps=STEPS,
        provisional_at=st.one_of(st.none(), st.integers(0, 40)),
        final_at=st.one_of(st.none(), st.integers(0, 40)),
        reliable=st.booleans(),
        wheel=st.booleans(),
    )
    def test_timer_e_f(
        self,
        t1: float,
        doublings: int,
        steps: list[float],
        provisional_at: int | None,
        final_at: int | None,
        reliable: bool,
        wheel: bool,
    ) -> None:
        """
        If responses arrive at random times, L{ClientNonInviteTransaction}
        doubles Timer E up to T2, uses T2 after a 1xx, and times out with
        Timer F at 64*T1 unless a final arrives.
        """
        t2 = t1 * 2**doublings
        clock: Any = WheelClock() if wheel else Clock()
        wire, user = Wire(clock), RecordingUser(clock)
        tx = ClientNonInviteTransaction(
            OPTIONS, TCP if reliable else UDP, send=wire, user=user, clock=clock,
            timers=TimerSettings(T1=t1, T2=t2),
        )  # fmt: skip
        tx.start()
        when: dict[int, float] = {}

        def answer(status: int) -> Callable[[], None]:
            def deliver() -> None:
                if not tx.terminated and tx.state is not State.COMPLETED:
                    when.setdefault(status, clock.seconds())
                    tx.response_received(make_response(OPTIONS, status, to_tag="u"))

            return deliver

        events: dict[int, Callable[[], None]] = {}
        if provisional_at is not None:
            events[provisional_at] = answer(100)
        if final_at is not None and final_at != provisional_at:
            events[final_at] = answer(200)
        drive(clock, steps, events)
        expected = (
            [0.0]
            if reliable
            else _schedule(0.0, t1, t2, 64 * t1, when.get(200), slow_from=when.get(100))
        )
        self.assertEqual(wire.times(is_request("OPTIONS")), expected)
        self.assertEqual([w for w, _, _ in user.failures], [] if 200 in when else [64 * t1])
        tx.cancel_timers()
        self.assertEqual(clock.getDelayedCalls(), [])

    @given(
        t1=DYADIC_T1,
        doublings=st.integers(0, 4),
        steps=STEPS,
        final_at=st.integers(0, 10),
        ack_at=st.one_of(st.none(), st.integers(0, 40)),
        reliable=st.booleans(),
        wheel=st.booleans(),
    )
    def test_timer_g_h(
        self,
        t1: float,
        doublings: int,
        steps: list[float],
        final_at: int,
        ack_at: int | None,
        reliable: bool,
        wheel: bool,
    ) -> None:
        """
        If the TU answers 486, L{ServerInviteTransaction} doubles Timer G up
        to T2 until the ACK or Timer H at 64*T1 after the final response;
        it sends 100 Trying at the trying delay if the TU has not answered.
        """
        t2 = t1 * 2**doublings
        clock: Any = WheelClock() if wheel else Clock()
        wire, user = Wire(clock), RecordingUser(clock)
        tx = ServerInviteTransaction(
            INVITE, TCP if reliable else UDP, send=wire, user=user, clock=clock,
            timers=TimerSettings(T1=t1, T2=t2, trying_delay=0.125),
        )  # fmt: skip
        tx.start()
        busy = make_response(INVITE, 486, to_tag="uas")
        when: dict[str, float] = {}

        def final() -> None:
            when["final"] = clock.seconds()
            tx.respond(busy)

        def ack() -> None:
            if tx.state is State.COMPLETED:
                when["ack"] = clock.seconds()
                tx.request_received(make_ack(INVITE, busy))

        events = {final_at: final}
        if ack_at is not None and ack_at > final_at:
            events[ack_at] = ack
        drive(clock, steps, events)
        f = when["final"]
        self.assertEqual(wire.times(is_status(100)), [0.125] if f >= 0.125 else [])
        expected = [f] if reliable else _schedule(f, t1, t2, f + 64 * t1, when.get("ack"))
        self.assertEqual(wire.times(is_status(486)), expected)
        self.assertEqual([w for w, _, _ in user.failures], [] if "ack" in when else [f + 64 * t1])
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timer_e_example(self) -> None:
        """If the timers are the defaults, Timer E sends at 0, .5, 1.5, 3.5, 7.5, 11.5, ... 31.5."""
        clock = Clock()
        wire = Wire(clock)
        tx = ClientNonInviteTransaction(
            OPTIONS, UDP, send=wire, user=RecordingUser(clock), clock=clock
        )
        tx.start()
        run_out(clock)
        self.assertEqual(
            wire.times(is_request("OPTIONS")),
            [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
        )
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(clock.getDelayedCalls(), [])


# -- the layer -----------------------------------------------------------------------


class TransactionLayerTests(_Base):
    """L{TransactionLayer} matches, creates, forgets and counts transactions."""

    def setUp(self) -> None:
        super().setUp()
        self.layer = TransactionLayer(self.user, self.wire, self.clock)
        self.addCleanup(self.layer.stop)

    def receive(self, message: Message, flow: Flow = UDP) -> None:
        self.layer.message_received(message, flow)

    def server_tx(self) -> Any:
        [(_, tx)] = self.user.requests
        return tx

    def test_interface(self) -> None:
        """If built, L{TransactionLayer} provides L{IMessageReceiver} and has every counter."""
        self.assertTrue(verifyObject(IMessageReceiver, self.layer))
        self.assertEqual(set(self.layer.stats), set(STAT_NAMES))

    def test_new_request(self) -> None:
        """If a new request arrives, a server transaction is created and the TU gets it."""
        self.receive(INVITE)
        tx = self.server_tx()
        self.assertIsInstance(tx, ServerInviteTransaction)
        self.assertEqual(dict(self.layer.server_transactions), {server_key(INVITE): tx})
        self.assertEqual(self.layer.stats["server_invite_created"], 1)
        self.receive(OPTIONS)
        self.assertIsInstance(self.user.requests[1][1], ServerNonInviteTransaction)

    def test_trying_timer_not_needed(self) -> None:
        """
        If the TU answers an INVITE while it has it (a proxy's own 100
        Trying), no 100 Trying timer is ever started (RFC 3261 17.2.1).
        """
        started: list[float] = []

        class Counting(Clock):
            def callLater(self, delay: float, *args: Any, **kw: Any) -> Any:
                started.append(delay)
                return super().callLater(delay, *args, **kw)

        clock = Counting()
        layer = TransactionLayer(self.user, self.wire, clock)
        trying = make_response(INVITE, 100)
        self.user.on_request = lambda request, tx: tx.respond(trying)
        layer.message_received(INVITE, UDP)
        self.assertEqual((started, self.wire.messages), ([], [trying]))
        layer.stop()

    def test_trying_timer_after_tu(self) -> None:
        """
        If the TU has not answered an INVITE when it returns, the
        transaction sends 100 Trying itself 200 ms later, once.
        """
        self.receive(INVITE)
        self.clock.advance(0.199)
        self.assertEqual(self.wire.messages, [])
        self.clock.advance(0.001)
        self.assertEqual(self.wire.messages, [make_response(INVITE, 100)])
        self.clock.advance(1)
        self.assertEqual(len(self.wire.messages), 1)

    def test_retransmission_absorbed(self) -> None:
        """If a request is retransmitted, it never reaches the TU again."""
        self.receive(OPTIONS)
        tx = self.server_tx()
        ok = make_response(OPTIONS, 200, to_tag="u")
        tx.respond(ok)
        self.receive(OPTIONS)
        self.receive(OPTIONS, TCP)
        self.assertEqual(len(self.user.requests), 1)
        self.assertEqual(self.wire.messages, [ok, ok, ok])
        self.assertEqual(self.layer.stats["absorbed"], 2)
        self.assertEqual(self.layer.stats["retransmissions"], 2)

    def test_terminated_removed(self) -> None:
        """If a transaction ends, the layer forgets it and the TU is told."""
        self.receive(OPTIONS, TCP)
        tx = self.server_tx()
        tx.respond(make_response(OPTIONS, 200, to_tag="u"))
        self.assertEqual(dict(self.layer.server_transactions), {})
        self.assertEqual(self.user.terminated, [tx])
        self.assertEqual(self.layer.stats["server_non_invite_terminated"], 1)
        self.receive(OPTIONS, TCP)  # now a new transaction
        self.assertEqual(len(self.user.requests), 2)

    def test_ack_non_2xx(self) -> None:
        """If the ACK for a 3xx-6xx arrives, its INVITE transaction takes it (CONFIRMED)."""
        self.receive(INVITE)
        tx = self.server_tx()
        busy = make_response(INVITE, 486, to_tag="uas")
        tx.respond(busy)
        self.receive(make_ack(INVITE, busy))
        self.assertIs(tx.state, State.CONFIRMED)
        self.assertEqual(self.user.strays, [])

    def test_ack_2xx(self) -> None:
        """If the ACK for a 2xx arrives (new branch), it goes to C{stray_message}."""
        self.receive(INVITE)
        ok = make_response(INVITE, 200, to_tag="uas")
        self.server_tx().respond(ok)
        ack = ack_for_2xx(INVITE, ok)
        self.receive(ack)
        self.assertEqual(self.user.strays, [(ack, UDP)])
        self.assertEqual(self.layer.stats["stray"], 1)

    def test_ack_accepted_same_branch(self) -> None:
        """If an ACK reuses the INVITE's branch in ACCEPTED, it still reaches the TU."""
        self.receive(INVITE)
        ok = make_response(INVITE, 200, to_tag="uas")
        self.server_tx().respond(ok)
        ack = make_ack(INVITE, ok)
        self.receive(ack)
        self.assertEqual(self.user.strays, [(ack, UDP)])

    def test_ack_alone(self) -> None:
        """If an ACK matches nothing, it goes to C{stray_message}."""
        ack = make_ack(INVITE, make_response(INVITE, 404, to_tag="x"))
        self.receive(ack)
        self.assertEqual(self.user.strays, [(ack, UDP)])
        self.assertEqual(self.user.requests, [])

    def test_cancel(self) -> None:
        """
        If a CANCEL arrives, it gets its own non-INVITE transaction and goes
        to the TU; C{server_transaction_for} finds the INVITE it cancels.
        """
        self.receive(INVITE)
        invite_tx = self.server_tx()
        cancel = cancel_for(INVITE)
        self.receive(cancel)
        request, cancel_tx = self.user.requests[1]
        self.assertEqual(request, cancel)
        self.assertIsInstance(cancel_tx, ServerNonInviteTransaction)
        self.assertIs(self.layer.server_transaction_for(cancel), invite_tx)
        self.assertIs(self.layer.server_transaction_for(INVITE), invite_tx)

    def test_cancel_alone(self) -> None:
        """If a CANCEL matches no INVITE, it still goes to the TU, which decides 481."""
        cancel = cancel_for(INVITE)
        self.receive(cancel)
        [(request, tx)] = self.user.requests
        self.assertEqual(request, cancel)
        self.assertIsNone(self.layer.server_transaction_for(cancel))
        tx.respond(make_response(cancel, 481, to_tag="u"))
        self.assertEqual(self.wire.messages[-1].status, 481)

    def test_rfc2543(self) -> None:
        """
        If requests carry no cookie, retransmissions match on the RFC 2543
        fields and the ACK for a 3xx-6xx matches by the response's To tag.
        """
        invite = make_request(branch=None)
        self.receive(invite)
        tx = self.server_tx()
        self.receive(invite)
        self.assertEqual(len(self.user.requests), 1)
        busy = make_response(invite, 486, to_tag="uas")
        tx.respond(busy)
        wrong = make_ack(invite, make_response(invite, 486, to_tag="other"))
        self.receive(wrong)
        self.assertEqual(self.user.strays, [(wrong, UDP)])
        self.assertIs(tx.state, State.COMPLETED)
        self.receive(make_ack(invite, busy))
        self.assertIs(tx.state, State.CONFIRMED)

    def test_rfc2543_reinvite(self) -> None:
        """If an RFC 2543 re-INVITE (To tag set) fails, its ACK matches it too."""
        reinvite = make_request(branch=None, to_tag="dialog", cseq=2)
        self.receive(reinvite)
        tx = self.server_tx()
        refused = make_response(reinvite, 488)
        tx.respond(refused)
        self.receive(make_ack(reinvite, refused))
        self.assertIs(tx.state, State.CONFIRMED)

    def test_bare_cookie(self) -> None:
        """If two requests carry the bare branch C{z9hG4bK}, they are not confused."""
        self.receive(make_request("OPTIONS", branch="z9hG4bK", call_id="a"))
        self.receive(make_request("OPTIONS", branch="z9hG4bK", call_id="b"))
        self.assertEqual(len(self.user.requests), 2)

    def test_response_matched(self) -> None:
        """If a response arrives, its client transaction gets it; the CANCEL's its own."""
        invite_tx = self.layer.client_transaction(INVITE, UDP)
        cancel = cancel_for(INVITE)
        cancel_tx = self.layer.client_transaction(cancel, UDP)
        self.receive(make_response(cancel, 200, to_tag="u"))
        self.receive(make_response(INVITE, 487, to_tag="u"))
        self.assertEqual(
            [(r.status, t) for _, r, t in self.user.responses],
            [(200, cancel_tx), (487, invite_tx)],
        )
        self.assertEqual(self.layer.stats["client_invite_created"], 1)
        self.assertEqual(self.layer.stats["client_non_invite_created"], 1)

    def test_response_stray(self) -> None:
        """If a response matches no client transaction, it goes to C{stray_message}."""
        ok = make_response(INVITE, 200, to_tag="u")
        self.receive(ok)
        self.assertEqual(self.user.strays, [(ok, UDP)])

    def test_response_after_end(self) -> None:
        """If a response arrives after its transaction ended, it is a stray, not an error."""
        tx = self.layer.client_transaction(OPTIONS, TCP)
        ok = make_response(OPTIONS, 200, to_tag="u")
        self.receive(ok, TCP)
        self.assertIs(tx.state, State.TERMINATED)
        self.receive(ok, TCP)
        self.assertEqual(self.user.strays, [(ok, TCP)])

    def test_client_transaction_refused(self) -> None:
        """If the TU asks for an ACK, a non-RFC 3261 branch or a duplicate, it raises."""
        ack = make_ack(INVITE, make_response(INVITE, 404, to_tag="x"))
        self.assertRaises(LocalProtocolError, self.layer.client_transaction, ack, UDP)
        self.assertRaises(
            LocalProtocolError, self.layer.client_transaction, make_request(branch="1"), UDP
        )
        self.layer.client_transaction(INVITE, UDP)
        self.assertRaises(LocalProtocolError, self.layer.client_transaction, INVITE, UDP)

    def test_client_transaction_transport_error(self) -> None:
        """If the first send fails, the TU hears it before C{client_transaction} returns."""
        self.wire.fail = True
        tx = self.layer.client_transaction(OPTIONS, UDP)
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(len(self.user.failures), 1)
        self.assertEqual(dict(self.layer.client_transactions), {})
        self.assertEqual(self.layer.stats["transport_errors"], 1)

    def test_transport_failed_request(self) -> None:
        """
        If the transport reports later that a request could not be sent, its
        client transaction fails with the reason and ends.
        """
        tx = self.layer.client_transaction(OPTIONS, TCP)
        self.layer.transport_failed(OPTIONS, Failure(TransportError("refused")))
        self.assertIs(tx.state, State.TERMINATED)
        [(_, failed, reason)] = self.user.failures
        self.assertIs(failed, tx)
        reason.trap(TransportError)
        self.assertEqual(dict(self.layer.client_transactions), {})
        self.layer.transport_failed(OPTIONS, Failure(TransportError("refused")))
        self.assertEqual(len(self.user.failures), 1)

    def test_transport_failed_ack(self) -> None:
        """If the ACK of a 3xx-6xx could not be sent, its INVITE transaction ends quietly."""
        tx: Any = self.layer.client_transaction(INVITE, UDP)
        self.receive(make_response(INVITE, 486, to_tag="u"))
        self.layer.transport_failed(tx.ack, Failure(TransportError("gone")))
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual(self.user.failures, [])

    def test_transport_failed_response(self) -> None:
        """
        If the transport reports later that a response could not be sent,
        the server transaction that sent it fails and ends, RFC 2543 ones too.
        """
        legacy = make_request("OPTIONS", branch=None)
        for request in (OPTIONS, legacy):
            self.receive(request)
            tx = self.user.requests[-1][1]
            ok = make_response(request, 200, to_tag="u")
            tx.respond(ok)
            self.layer.transport_failed(ok, Failure(TransportError("gone")))
            self.assertIs(tx.state, State.TERMINATED)
            self.assertIs(self.user.failures[-1][1], tx)
        self.assertEqual(len(self.user.failures), 2)

    def test_transport_failed_unknown(self) -> None:
        """If no live transaction sent the message, a late transport failure is ignored."""
        self.layer.transport_failed(OPTIONS, Failure(TransportError("gone")))
        self.layer.transport_failed(make_response(OPTIONS, 200), Failure(TransportError("x")))
        self.assertEqual(self.user.failures, [])

    def test_terminate(self) -> None:
        """If the TU drops a request, C{terminate} ends its server transaction silently."""
        self.receive(INVITE)
        tx = self.server_tx()
        tx.terminate()
        self.assertIs(tx.state, State.TERMINATED)
        self.assertEqual((self.wire.sent, self.user.failures), ([], []))
        self.assertEqual(dict(self.layer.server_transactions), {})

    def test_malformed_request(self) -> None:
        """If a request is malformed, it is answered statelessly with the hint and headers."""
        error = MessageParseError("bad", 420, (("Unsupported", "foo"),), message=OPTIONS)
        self.layer.malformed_message(b"...", UDP, error)
        [(_, response, flow)] = self.wire.sent
        self.assertEqual(flow, UDP)
        self.assertEqual((response.status, response.reason), (420, "Bad Extension"))
        self.assertEqual(response.headers.get("Unsupported"), "foo")
        self.assertIsNotNone(response.to_address.tag)
        self.assertEqual(response.headers.get_all("Via"), OPTIONS.headers.get_all("Via"))
        self.assertEqual(self.layer.stats["stateless_responses"], 1)

    def test_malformed_dropped(self) -> None:
        """If the malformed message is an ACK, a response or nothing parsed, it is dropped."""
        ack = make_ack(INVITE, make_response(INVITE, 404, to_tag="x"))
        no_via = Request("OPTIONS", "sip:x", OPTIONS.headers.removed("Via"))
        for message in [ack, make_response(INVITE, 200), None, no_via]:
            self.layer.malformed_message(b"...", UDP, MessageParseError("bad", message=message))
        self.assertEqual(self.wire.sent, [])
        self.assertEqual(self.layer.stats["malformed"], 4)

    def test_malformed_transport_error(self) -> None:
        """If the stateless answer cannot be sent, that is logged, not raised."""
        self.wire.fail = True
        self.layer.malformed_message(b"...", UDP, MessageParseError("bad", message=OPTIONS))
        self.assertEqual(self.layer.stats["transport_errors"], 1)

    def test_unmatchable_request(self) -> None:
        """If a request's key fields do not parse, it is answered 400 like a malformed one."""
        legacy = make_request("OPTIONS", branch=None)
        self.receive(legacy.with_headers(legacy.headers.replaced("CSeq", "x OPTIONS")))
        [response] = self.wire.messages
        self.assertEqual(response.status, 400)
        self.assertEqual(self.user.requests, [])

    def test_refused_message_dropped(self) -> None:
        """If a transaction refuses a message from the network, the layer drops it."""
        self.receive(OPTIONS)

        def refuse(tx: Any, request: Request, flow: Flow | None = None) -> None:
            raise RemoteProtocolError("no")

        self.patch(ServerNonInviteTransaction, "request_received", refuse)
        self.receive(OPTIONS)
        self.assertEqual(len(self.user.requests), 1)

    def test_user_raises(self) -> None:
        """If the TU raises from C{request_received}, the layer logs it and goes on."""
        self.user.on_request = lambda r, t: 1 / 0
        self.receive(OPTIONS)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(self.layer.server_transactions), 1)

    def test_stop(self) -> None:
        """If stopped, the layer ends every transaction and leaves no timer."""
        self.receive(INVITE)
        self.layer.client_transaction(OPTIONS, UDP)
        self.layer.stop()
        self.assertEqual(len(self.user.terminated), 2)
        self.assertEqual(dict(self.layer.server_transactions), {})
        self.assertEqual(dict(self.layer.client_transactions), {})

    def test_timeout_logged(self) -> None:
        """If a client transaction times out, the log event names its key."""
        events = capture_log(self)
        tx = self.layer.client_transaction(OPTIONS, TCP)
        self.clock.advance(32)
        [event] = [e for e in events if "timed out" in e["log_format"]]
        self.assertEqual(event["key"], tx.key)
        self.assertEqual(event["method"], "OPTIONS")
        self.assertEqual(self.layer.stats["timeouts"], 1)


# Requests from the network for the layer's totality test.
_INVITE_2543 = make_request(branch=None, call_id="b")
_POOL: list[Request] = [
    INVITE,
    cancel_for(INVITE),
    make_ack(INVITE, make_response(INVITE, 486, to_tag="uas")),
    ack_for_2xx(INVITE, make_response(INVITE, 200, to_tag="uas")),
    _INVITE_2543,
    make_ack(_INVITE_2543, make_response(_INVITE_2543, 486, to_tag="uas")),
    make_ack(_INVITE_2543, make_response(_INVITE_2543, 486, to_tag="nope")),
    make_request(branch="z9hG4bK", call_id="c"),
    OPTIONS,
    make_request("MESSAGE", branch=None, call_id="e"),
    cancel_for(make_request(branch="z9hG4bK-gone")),
]

_OPS = st.one_of(
    st.tuples(st.just("request"), st.integers(0, len(_POOL) - 1), st.booleans()),
    st.tuples(st.just("respond"), st.integers(0, 9), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("send"), st.sampled_from(["INVITE", "OPTIONS", "CANCEL"]), st.booleans()),
    st.tuples(st.just("response"), st.integers(0, 9), st.sampled_from([100, 180, 200, 404])),
    st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 2.0, 5.0, 16.0, 40.0]), st.none()),
    st.tuples(st.just("fail"), st.booleans(), st.none()),
    st.tuples(st.just("abandon"), st.integers(0, 9), st.none()),
)


class TransactionLayerTotalityTests(SynchronousTestCase):
    """
    Random traffic never raises out of L{TransactionLayer}, every live
    transaction is in a legal state, and nothing leaks.
    """

    def check(self, layer: TransactionLayer, user: RecordingUser) -> None:
        live: list[Any] = [*layer.server_transactions.values(), *layer.client_transactions.values()]
        for tx in live:
            self.assertIn(tx.state, tx.spec.states)
            self.assertIsNot(tx.state, State.TERMINATED)
            self.assertLessEqual(tx.running_timers, tx.spec.timers[tx.state])
        for tx in user.terminated:
            self.assertNotIn(tx, live)

    @given(ops=st.lists(_OPS, max_size=30))
    def test_random_traffic(self, ops: list[tuple[str, Any, Any]]) -> None:
        """
        If anything arrives, the TU does anything and time passes, the
        layer never raises; once the TU has answered every request and every
        client INVITE has its final response, 64*T1 + 32 s later every
        transaction is TERMINATED and removed, and no timer is left.
        """
        clock = Clock()
        wire, user = Wire(clock), RecordingUser(clock)
        layer = TransactionLayer(user, wire, clock)
        branches = iter(range(1000))
        # What the TU keeps: a lingering transaction lets go of its request.
        requests: dict[Any, Request] = {}
        for op, a, b in ops:
            requests.update((tx, r) for r, tx in user.requests)
            if op == "request":
                layer.message_received(_POOL[a], TCP if b else UDP)
            elif op == "respond":
                servers = list(layer.server_transactions.values())
                if servers:
                    tx = servers[a % len(servers)]
                    try:
                        tx.respond(make_response(requests[tx], b, to_tag="uas"))
                    except LocalProtocolError:
                        self.assertIs(tx.state, State.TERMINATED)
            elif op == "send":
                branch = f"z9hG4bK-c{next(branches)}"
                if a == "CANCEL":
                    request = cancel_for(make_request(branch=branch))
                else:
                    request = make_request(a, branch=branch)
                requests[layer.client_transaction(request, TCP if b else UDP)] = request
            elif op == "response":
                clients = list(layer.client_transactions.values())
                target = requests[clients[a % len(clients)]] if clients else INVITE
                layer.message_received(make_response(target, b, to_tag="peer"), UDP)
            elif op == "advance":
                clock.advance(a)
            elif op == "fail":
                wire.fail = a
            elif op == "abandon":
                clients = list(layer.client_transactions.values())
                if clients:
                    clients[a % len(clients)].cancel_timers()
            self.check(layer, user)
        # What a TU and a peer must do: answer every request, finish every INVITE.
        wire.fail = False
        for tx in list(layer.server_transactions.values()):
            if tx.state in (State.TRYING, State.PROCEEDING):
                tx.respond(make_response(tx.request, 500, to_tag="uas"))
        for tx in list(layer.client_transactions.values()):
            if tx.state is State.PROCEEDING and tx.request.method == "INVITE":
                layer.message_received(make_response(tx.request, 487, to_tag="peer"), UDP)
        clock.advance(64 * 0.5 + 32)
        self.assertEqual(dict(layer.server_transactions), {})
        self.assertEqual(dict(layer.client_transactions), {})
        self.assertEqual(clock.getDelayedCalls(), [])
        for kind in ("server_invite", "server_non_invite", "client_invite", "client_non_invite"):
            self.assertEqual(layer.stats[f"{kind}_created"], layer.stats[f"{kind}_terminated"])
        self.assertEqual(len(user.terminated), len(set(user.terminated)))


# -- a client and a server over a lossy link -------------------------------------------

UAC_FLOW = Flow("UDP", "198.51.100.7", 5060, "192.0.2.1", 5060)
UAS_FLOW = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)


class LossyLink:
    """
    Two transaction layers joined by an in-memory datagram link (cf. h11's
    C{ConnectionPair} and aiortc's C{loss_pattern}): every message sent is
    serialized and numbered; the ones whose numbers are in C{drop} are lost,
    the others are parsed and delivered by L{flush}.
    """

    def __init__(self, drop: frozenset[int] = frozenset()) -> None:
        self.drop = drop
        self.count = 0
        self.queue: deque[tuple[str, bytes, Message]] = deque()
        self.log: list[tuple[int, str, str, bool]] = []
        self.ends: dict[str, tuple[IMessageReceiver, Flow]] = {}
        self.mismatches: list[tuple[Message, Message]] = []

    def attach(self, side: str, receiver: IMessageReceiver, flow: Flow) -> None:
        self.ends[side] = (receiver, flow)

    def sender(self, to: str) -> Callable[[Message, Flow], None]:
        """The C{send} callable of the side that sends to C{to}."""

        def send(message: Message, flow: Flow) -> None:
            n = self.count
            self.count += 1
            what = message.method if isinstance(message, Request) else str(message.status)
            self.log.append((n, to, what, n in self.drop))
            if n not in self.drop:
                self.queue.append((to, serialize(message), message))

        return send

    def flush(self) -> None:
        """Deliver everything queued, and what that causes to be sent."""
        while self.queue:
            to, data, original = self.queue.popleft()
            parsed = parse_datagram(data)
            if parsed != original:
                self.mismatches.append((original, parsed))
            receiver, flow = self.ends[to]
            receiver.message_received(parsed, flow)


class TransactionPair:
    """
    A UAC-side and a UAS-side L{TransactionLayer} over a L{LossyLink}, with
    the cores RFC 3261 puts above them: the UAC ACKs every 2xx (13.2.2.4),
    the UAS answers after C{final_delay} and retransmits a 2xx until the ACK
    arrives (13.3.1.4).
    """

    def __init__(self, final: int, drop: frozenset[int] = frozenset(), clock: Any = None) -> None:
        self.clock = clock if clock is not None else Clock()
        self.timers = TimerSettings()
        self.link = LossyLink(drop)
        self.uac = RecordingUser(self.clock)
        self.uas = RecordingUser(self.clock)
        self.client = TransactionLayer(self.uac, self.link.sender("uas"), self.clock)
        self.server = TransactionLayer(self.uas, self.link.sender("uac"), self.clock)
        self.link.attach("uas", self.server, UAS_FLOW)
        self.link.attach("uac", self.client, UAC_FLOW)
        self.final = final
        self.acked = False
        self.uac.on_response = self.uac_response
        self.uas.on_request = self.uas_request
        self.uas.on_stray = self.uas_stray

    def uac_response(self, response: Response, tx: Any) -> None:
        # The UAC core keeps its INVITE (the transaction lets go of it).
        if self.invite.method == "INVITE" and 200 <= response.status < 300:
            self.link.sender("uas")(ack_for_2xx(self.invite, response), UAC_FLOW)

    def uas_request(self, request: Request, tx: Any) -> None:
        if request.method != "INVITE":
            tx.respond(make_response(request, self.final, to_tag="uas"))
            return
        tx.respond(make_response(request, 180, to_tag="uas"))
        self.clock.callLater(1.0, self.uas_final, tx)

    def uas_final(self, tx: Any) -> None:
        response = make_response(tx.request, self.final, to_tag="uas")
        tx.respond(response)
        if 200 <= self.final < 300:
            self.clock.callLater(self.timers.T1, self.uas_retransmit, tx, response, self.timers.T1)

    def uas_retransmit(self, tx: Any, response: Response, interval: float) -> None:
        if self.acked or tx.terminated:
            return
        tx.respond(response)
        interval = min(2 * interval, self.timers.T2)
        self.clock.callLater(interval, self.uas_retransmit, tx, response, interval)

    def uas_stray(self, message: Message, flow: Flow) -> None:
        if isinstance(message, Request) and message.method == "ACK":
            self.acked = True

    def run(self, request: Request) -> Any:
        """Send C{request}, then let 64*T1 + 40 s pass in small steps."""
        self.invite = request
        tx = self.client.client_transaction(request, UAC_FLOW)
        self.link.flush()
        for _ in range(int((64 * self.timers.T1 + 40) / 0.125)):
            self.clock.advance(0.125)
            self.link.flush()
        return tx


class TransactionPairTests(SynchronousTestCase):
    """A client and a server transaction recover from the loss of any one packet."""

    make_clock: Callable[[], Any] = Clock

    def check_common(self, pair: TransactionPair, drop: frozenset[int]) -> None:
        why = f"drop {sorted(drop)}: {pair.link.log}"
        self.assertEqual(pair.link.mismatches, [], why)
        self.assertEqual(len(pair.uas.requests), 1, why)  # retransmissions absorbed
        self.assertEqual(pair.uac.failures, [], why)
        self.assertEqual(pair.uas.failures, [], why)
        self.assertEqual(dict(pair.client.client_transactions), {}, why)
        self.assertEqual(dict(pair.server.server_transactions), {}, why)
        self.assertEqual(pair.clock.getDelayedCalls(), [], why)

    def drops(self, final: int, request: Request) -> list[frozenset[int]]:
        """No loss, each packet of a lossless run lost, and two losses in a row."""
        lossless = TransactionPair(final, clock=self.make_clock())
        lossless.run(request)
        n = lossless.link.count
        return [
            frozenset(),
            *(frozenset({i}) for i in range(n)),
            frozenset({0, 1}),
            frozenset({2, 3}),
        ]

    def test_invite_success(self) -> None:
        """If any packet of INVITE/180/200/ACK is lost, the call is still set up and ACKed."""
        invite = make_request()
        for drop in self.drops(200, invite):
            pair = TransactionPair(200, drop, self.make_clock())
            pair.run(invite)
            self.check_common(pair, drop)
            statuses = [r.status for _, r, _ in pair.uac.responses]
            self.assertIn(200, statuses, drop)
            self.assertTrue(pair.acked, drop)

    def test_invite_failure(self) -> None:
        """If any packet of INVITE/180/486/ACK is lost, the UAC gets the 486 once and ACKs it."""
        invite = make_request()
        for drop in self.drops(486, invite):
            pair = TransactionPair(486, drop, self.make_clock())
            pair.run(invite)
            self.check_common(pair, drop)
            finals = [r.status for _, r, _ in pair.uac.responses if r.status >= 200]
            self.assertEqual(finals, [486], drop)
            self.assertEqual(pair.server.stats["server_invite_terminated"], 1)
            self.assertEqual(pair.uas.strays, [], drop)  # the ACK matched the transaction

    def test_non_invite(self) -> None:
        """If the OPTIONS or its 200 is lost, the retransmission gets the 200 once."""
        options = make_request("OPTIONS", branch="z9hG4bK-opt")
        for drop in self.drops(200, options):
            pair = TransactionPair(200, drop, self.make_clock())
            pair.run(options)
            self.check_common(pair, drop)
            self.assertEqual([r.status for _, r, _ in pair.uac.responses], [200], drop)


# -- the same, on a timer wheel ------------------------------------------------------


class WheelClock:
    """
    A L{Clock} as the transactions see it through a L{TimerWheel}: timers
    in the wheel, the wheel's tick on the clock beneath; C{advance} moves
    that clock.
    """

    def __init__(self) -> None:
        self.base = Clock()
        self.wheel = TimerWheel(self.base)

    def seconds(self) -> float:
        return self.base.seconds()

    def callLater(self, delay: float, f: Callable[..., object], *a: Any, **kw: Any) -> Any:
        return self.wheel.callLater(delay, f, *a, **kw)

    def getDelayedCalls(self) -> list[Any]:
        """The wheel's timers, once the clock beneath agrees whether there are any."""
        pending = self.wheel.getDelayedCalls()
        assert bool(pending) == bool(self.base.getDelayedCalls())
        return pending

    def advance(self, amount: float) -> None:
        self.base.advance(amount)


class TransactionPairOnWheelTests(TransactionPairTests):
    """Recovery from the loss of any one packet, with both layers' timers in a wheel."""

    make_clock = WheelClock
