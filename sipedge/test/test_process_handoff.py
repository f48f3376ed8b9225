# -*- test-case-name: sipedge.test.test_process_handoff -*-
"""
Tests for L{sipedge.process._handoff}: what workers hand each other, on a
clock and fakes (the processes themselves: L{sipedge.test.test_e2e_workers}).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.error import TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IMessageReceiver, ISipTransport, ITransportManager
from sipedge.message import parse_datagram, serialize
from sipedge.process import (
    HANDOFF_MAGIC,
    MAX_AWAITING,
    NEWS,
    NO_FLOW,
    OWN,
    SHARED,
    STRAY_WAIT,
    RemoteConnection,
    WorkerChannel,
    WorkerRouter,
    WorkerSocket,
    WorkerSpec,
    WorkerTransportManager,
    decode_handoff,
    encode_handoff,
)
from sipedge.testing import FakeReactor, RecordingReceiver

#: Worker 0 of two: public UDP/TCP port 5060, own ports 4000 (it) and 5000 (worker 1).
SPEC = WorkerSpec(
    0,
    2,
    (
        WorkerSocket("UDP", OWN, "127.0.0.1", 4000, 10),
        WorkerSocket("TCP", OWN, "127.0.0.1", 4001, 11),
        WorkerSocket("UDP", SHARED, "127.0.0.1", 5060, 12),
        WorkerSocket("TCP", SHARED, "127.0.0.1", 5060, 13),
    ),
    (
        (("UDP", "127.0.0.1", 4000), ("TCP", "127.0.0.1", 4001)),
        (("UDP", "127.0.0.1", 5000), ("TCP", "127.0.0.1", 5001)),
    ),
    (7000, 7001),
)

PHONE = Flow("TCP", "127.0.0.1", 5060, "127.0.0.1", 40000)
UDP_IN = Flow("UDP", "127.0.0.1", 5060, "192.0.2.9", 5060)


def _response(via_port: int) -> Any:
    return parse_datagram(
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bKx\r\n"
        "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKy\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
        "Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".encode()
    )


def _request(route: str | None = None) -> Any:
    routes = f"Route: {route}\r\n" if route else ""
    return parse_datagram(
        "BYE sip:b@192.0.2.9 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bKb\r\n"
        f"Max-Forwards: 70\r\n{routes}"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
        "Call-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n".encode()
    )


def _cancel(branch: str = "z9hG4bKinv") -> Any:
    return parse_datagram(
        "CANCEL sip:b@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.9:5062;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
        "Call-ID: c\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n".encode()
    )


def _ack(branch: str = "z9hG4bKinv", route: str | None = None) -> Any:
    routes = f"Route: {route}\r\n" if route else ""
    return parse_datagram(
        "ACK sip:b@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.9:5062;branch={branch}\r\n"
        f"Max-Forwards: 70\r\n{routes}"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=9\r\n"
        "Call-ID: c\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n".encode()
    )


class _Channel:
    """A channel that records what is handed over."""

    def __init__(self, up: bool = True) -> None:
        self.sent: list[tuple[int, str, Flow, bytes]] = []
        self.up = up

    def send(self, index: int, kind: str, flow: Flow, payload: bytes = b"") -> bool:
        if self.up:
            self.sent.append((index, kind, flow, payload))
        return self.up

    def send_to_others(self, kind: str, flow: Flow, payload: bytes = b"") -> int:
        return int(self.send(1, kind, flow, payload))


_flows = st.builds(
    Flow,
    transport=st.sampled_from(["UDP", "TCP", "TLS"]),
    local_host=st.sampled_from(["127.0.0.1", "::1", "0.0.0.0"]),
    local_port=st.integers(0, 65535),
    remote_host=st.sampled_from(["192.0.2.1", "2001:db8::1"]),
    remote_port=st.integers(0, 65535),
)


class EncodingTests(SynchronousTestCase):
    """L{encode_handoff} and L{decode_handoff}."""

    @given(kind=st.sampled_from(["receive", "send", "owner", "gone", "hello"]), flow=_flows,
           payload=st.binary(max_size=200))
    def test_round_trip(self, kind: str, flow: Flow, payload: bytes) -> None:
        """What is encoded decodes to the same kind, flow and bytes."""
        self.assertEqual(decode_handoff(encode_handoff(kind, flow, payload)),
                         (kind, flow, payload))

    @given(data=st.binary(max_size=100))
    def test_garbage(self, data: bytes) -> None:
        """Anything else is a ValueError, never another exception."""
        for candidate in (data, HANDOFF_MAGIC + data):
            try:
                decode_handoff(candidate)
            except ValueError:
                pass

    def test_unknown_kind(self) -> None:
        """A kind we do not know is refused."""
        data = encode_handoff("receive", PHONE).replace(b'"receive"', b'"explode"')
        self.assertRaises(ValueError, decode_handoff, data)


class _Transport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        self.written.append((data, address))


class ChannelTests(SynchronousTestCase):
    """L{WorkerChannel}."""

    def setUp(self) -> None:
        self.delivered: list[tuple[int, str, Flow, bytes]] = []
        self.channel = WorkerChannel(0, (7000, 7001, 7002), lambda *a: self.delivered.append(a))
        self.channel.transport = _Transport()

    def test_from_a_worker(self) -> None:
        """A datagram from another worker's channel port is delivered, naming it."""
        self.channel.datagramReceived(encode_handoff("send", PHONE, b"x"), ("127.0.0.1", 7002))
        self.assertEqual(self.delivered, [(2, "send", PHONE, b"x")])

    def test_from_anyone_else(self) -> None:
        """From any other port or address, or itself, or not understood: dropped and counted."""
        data = encode_handoff("send", PHONE, b"x")
        for source, payload in ((("127.0.0.1", 7003), data), (("127.0.0.2", 7001), data),
                                (("127.0.0.1", 7000), data), (("127.0.0.1", 7001), b"junk")):
            self.channel.datagramReceived(payload, source)
        self.assertEqual((self.delivered, self.channel.refused), ([], 4))

    def test_send(self) -> None:
        """L{WorkerChannel.send} writes to that worker's port; never to itself."""
        self.assertTrue(self.channel.send(1, "owner", PHONE))
        self.assertFalse(self.channel.send(0, "owner", PHONE))
        self.assertFalse(self.channel.send(3, "owner", PHONE))
        self.assertEqual(self.channel.send_to_others("gone", PHONE), 2)
        self.assertEqual(
            [address for _, address in self.channel.transport.written],
            [("127.0.0.1", 7001), ("127.0.0.1", 7001), ("127.0.0.1", 7002)],
        )


class RouterTests(SynchronousTestCase):
    """L{WorkerRouter}: what is ours, what is another's."""

    def setUp(self) -> None:
        self.receiver = RecordingReceiver()
        self.router = WorkerRouter(self.receiver, SPEC)
        self.channel = _Channel()
        self.router.channel = self.channel  # type: ignore[assignment]

    def test_interface(self) -> None:
        """A L{WorkerRouter} is an L{IMessageReceiver}."""
        self.assertTrue(verifyObject(IMessageReceiver, self.router))

    def test_owner_of_response(self) -> None:
        """A response belongs to the worker its top Via names."""
        self.assertEqual(self.router.owner_of(_response(5000)), 1)
        self.assertIsNone(self.router.owner_of(_response(4000)))
        self.assertIsNone(self.router.owner_of(_response(5060)))

    def test_owner_of_request(self) -> None:
        """A request belongs to the worker its top Route names (transport and port)."""
        self.assertEqual(self.router.owner_of(_request("<sip:127.0.0.1:5001;transport=tcp;lr>")),
                         1)
        self.assertEqual(self.router.owner_of(_request("<sip:127.0.0.1:5000;lr>")), 1)
        self.assertIsNone(self.router.owner_of(_request("<sip:127.0.0.1:5000;transport=tcp;lr>")))
        self.assertIsNone(self.router.owner_of(_request("<sip:127.0.0.1:4000;lr>")))
        self.assertIsNone(self.router.owner_of(_request("<sip:127.0.0.1;lr>")))
        self.assertIsNone(self.router.owner_of(_request()))

    def test_hands_over(self) -> None:
        """What belongs to another worker is handed to it with its flow, not delivered here."""
        response = _response(5000)
        self.router.message_received(response, PHONE)
        self.assertEqual(self.receiver.messages, [])
        self.assertEqual(self.channel.sent, [(1, "receive", PHONE, serialize(response))])
        self.assertEqual(self.router.handed["receive"], 1)

    def test_keeps_own(self) -> None:
        """What is ours (or no worker's) is delivered here."""
        request = _request()
        self.router.message_received(request, UDP_IN)
        self.assertEqual(self.receiver.messages, [(request, UDP_IN)])
        self.assertEqual(self.channel.sent, [])

    def test_channel_down(self) -> None:
        """Without a channel, or when it cannot write, everything is delivered here."""
        self.channel.up = False
        response = _response(5000)
        self.router.message_received(response, PHONE)
        self.router.channel = None
        self.router.message_received(response, PHONE)
        self.assertEqual(len(self.receiver.messages), 2)

    def test_receive_handed_over(self) -> None:
        """
        A message handed over is delivered here with its flow (never handed
        on again), and the flow's owner is learnt.
        """
        response = _response(5000)
        self.router.deliver(1, "receive", PHONE, serialize(response))
        ((message, flow),) = self.receiver.messages
        self.assertEqual((serialize(message), flow), (serialize(response), PHONE))
        self.assertEqual(self.router.flow_owner(PHONE), 1)

    def test_bad_message_handed_over(self) -> None:
        """A message that does not parse is logged and dropped."""
        self.router.deliver(1, "receive", PHONE, b"nonsense\r\n\r\n")
        self.assertEqual(self.receiver.messages, [])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_flow_owner(self) -> None:
        """
        A TCP flow on another worker's own port is that worker's; on the
        shared port, one of the others' (C{-1}) until learnt; UDP flows and
        flows from our own port are nobody else's.
        """
        self.assertEqual(self.router.flow_owner(Flow("TCP", "127.0.0.1", 5001, "10.0.0.1", 1)), 1)
        self.assertEqual(self.router.flow_owner(PHONE), -1)
        self.router.deliver(1, "owner", PHONE, b"")
        self.assertEqual(self.router.flow_owner(PHONE), 1)
        self.assertIsNone(self.router.flow_owner(UDP_IN))
        self.assertIsNone(self.router.flow_owner(Flow("TCP", "127.0.0.1", 4001, "10.0.0.1", 1)))
        self.assertIsNone(self.router.flow_owner(Flow("TCP", "127.0.0.1", 0, "10.0.0.1", 1)))

    def test_send_elsewhere(self) -> None:
        """A message for another's flow goes to its owner, or to all others until known."""
        request = _request()
        self.assertTrue(self.router.send_elsewhere(request, PHONE))
        self.router.deliver(1, "owner", PHONE, b"")
        self.assertTrue(self.router.send_elsewhere(request, PHONE))
        self.assertFalse(self.router.send_elsewhere(request, UDP_IN))
        self.assertEqual([(i, k) for i, k, _, _ in self.channel.sent], [(1, "send"), (1, "send")])

    def test_gone_and_hello(self) -> None:
        """
        C{gone} forgets a flow its owner lost; C{hello} forgets everything
        the worker that (re)started held.
        """
        other = Flow("TCP", "127.0.0.1", 5060, "127.0.0.1", 40001)
        self.router.deliver(1, "owner", PHONE, b"")
        self.router.deliver(1, "owner", other, b"")
        self.assertEqual(self.router.flow_to("TCP", "127.0.0.1", 40000), PHONE)
        self.router.deliver(1, "gone", PHONE, b"")
        self.assertIsNone(self.router.flow_to("TCP", "127.0.0.1", 40000))
        self.assertEqual(self.router.flow_to("tcp", "[127.0.0.1]", 40001), other)
        self.router.deliver(1, "hello", Flow("UDP", "0.0.0.0", 0, "0.0.0.0", 0), b"")
        self.assertIsNone(self.router.flow_to("TCP", "127.0.0.1", 40001))
        self.assertEqual(self.router.flow_owner(other), -1)


class NewsTests(SynchronousTestCase):
    """L{WorkerRouter.tell_others} and its C{listeners}: news between workers, no flow."""

    def setUp(self) -> None:
        self.receiver = RecordingReceiver()
        self.router = WorkerRouter(self.receiver, SPEC)
        self.channel = _Channel()
        self.router.channel = self.channel  # type: ignore[assignment]
        self.heard: list[tuple[int, bytes]] = []

    def test_tell_others(self) -> None:
        """News goes to every other worker with no flow, and is counted."""
        self.assertEqual(self.router.tell_others("banned", b"192.0.2.7"), 1)
        self.assertEqual(self.channel.sent, [(1, "banned", NO_FLOW, b"192.0.2.7")])
        self.assertEqual(self.router.handed["banned"], 1)

    def test_tell_before_channel(self) -> None:
        """Before the channel listens, news goes nowhere."""
        self.router.channel = None
        self.assertEqual(self.router.tell_others("banned", b"192.0.2.7"), 0)

    def test_listener(self) -> None:
        """News is given to the listener of its kind, never to the receiver."""
        self.router.listeners["authenticated"] = lambda *a: self.heard.append(a)
        self.router.deliver(1, "authenticated", NO_FLOW, b"[1]")
        self.assertEqual((self.heard, self.receiver.messages), ([(1, b"[1]")], []))

    def test_no_listener(self) -> None:
        """News nobody listens for is ignored: not parsed as a message, not answered."""
        for kind in NEWS:
            self.router.deliver(1, kind, NO_FLOW, b"not SIP")
        self.assertEqual((self.receiver.messages, self.channel.sent), ([], []))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_failing_listener(self) -> None:
        """A listener that raises is logged; the router goes on."""

        def fail(sender: int, payload: bytes) -> None:
            raise RuntimeError("boom")

        self.router.listeners["banned"] = fail
        self.router.deliver(1, "banned", NO_FLOW, b"x")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.router.listeners["banned"] = lambda *a: self.heard.append(a)
        self.router.deliver(1, "banned", NO_FLOW, b"y")
        self.assertEqual(self.heard, [(1, b"y")])

    def test_tell_one(self) -> None:
        """News for one worker goes to it alone, counted; before the channel, nowhere."""
        self.assertTrue(self.router.tell(1, "lost", b"[]"))
        self.assertEqual(self.channel.sent, [(1, "lost", NO_FLOW, b"[]")])
        self.assertEqual(self.router.handed["lost"], 1)
        self.router.channel = None
        self.assertFalse(self.router.tell(1, "lost", b"[]"))

    def test_greeters(self) -> None:
        """
        A worker's C{hello} has every greeter called with its index (to
        tell it the news it missed); one that raises is logged, the others
        still greet.
        """
        greeted: list[int] = []

        def fail(index: int) -> None:
            raise RuntimeError("boom")

        self.router.greeters += [fail, greeted.append]
        self.router.deliver(1, "hello", NO_FLOW, b"")
        self.assertEqual(greeted, [1])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_encoded(self) -> None:
        """News crosses the channel's encoding."""
        for kind in NEWS:
            self.assertEqual(decode_handoff(encode_handoff(kind, NO_FLOW, b"p")),
                             (kind, NO_FLOW, b"p"))


class StrayCancelTests(SynchronousTestCase):
    """A CANCEL that matches no transaction of the worker it reached."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.receiver = RecordingReceiver()
        self.ours: set[str] = set()
        self.router = WorkerRouter(
            self.receiver, SPEC, clock=self.clock,
            matches=lambda request: request.top_via.branch in self.ours,
        )
        self.channel = _Channel()
        self.router.channel = self.channel  # type: ignore[assignment]

    def tearDown(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_matching_delivered(self) -> None:
        """A CANCEL of one of our INVITEs is ours: delivered at once."""
        self.ours.add("z9hG4bKinv")
        self.router.message_received(_cancel(), UDP_IN)
        self.assertEqual(len(self.receiver.messages), 1)
        self.assertEqual(self.channel.sent, [])

    def test_claimed_elsewhere(self) -> None:
        """
        A CANCEL that matches nothing here is put to the others; claimed,
        it is not answered here (retransmissions are not asked again).
        """
        cancel = _cancel()
        self.router.message_received(cancel, UDP_IN)
        self.router.message_received(cancel, UDP_IN)
        ((index, kind, flow, payload),) = self.channel.sent
        self.assertEqual((index, kind, flow, payload), (1, "stray", UDP_IN, serialize(cancel)))
        import hashlib

        key = hashlib.sha256(payload).hexdigest()[:32].encode()
        self.router.deliver(1, "claimed", UDP_IN, key)
        self.clock.advance(STRAY_WAIT)
        self.assertEqual(self.receiver.messages, [])

    def test_unclaimed_answered_here(self) -> None:
        """Unclaimed after L{STRAY_WAIT} seconds, the CANCEL is delivered here (481 follows)."""
        self.router.message_received(_cancel(), UDP_IN)
        self.clock.advance(STRAY_WAIT - 0.1)
        self.assertEqual(self.receiver.messages, [])
        self.clock.advance(0.1)
        self.assertEqual(len(self.receiver.messages), 1)

    def test_claiming(self) -> None:
        """
        Asked about a CANCEL of one of our INVITEs, a worker claims it and
        handles it with the flow it came on; one not ours is left alone.
        """
        payload = serialize(_cancel())
        self.router.deliver(1, "stray", UDP_IN, payload)
        self.assertEqual((self.receiver.messages, self.channel.sent), ([], []))
        self.ours.add("z9hG4bKinv")
        self.router.deliver(1, "stray", UDP_IN, payload)
        ((message, flow),) = self.receiver.messages
        self.assertEqual((message.method, flow), ("CANCEL", UDP_IN))
        self.assertEqual([(i, k) for i, k, _, _ in self.channel.sent], [(1, "claimed")])

    def test_stop(self) -> None:
        """Stopping drops the CANCELs waiting for a claim."""
        self.router.message_received(_cancel(), UDP_IN)
        self.router.stop()
        self.assertEqual(self.receiver.messages, [])

    def test_other_requests_not_asked(self) -> None:
        """
        Only a CANCEL, or an ACK without Route, is put to the others; any
        other request that matches nothing is ours, and so is an ACK for a
        2xx (it has a Route: the Record-Route).
        """
        self.router.message_received(_request(), UDP_IN)
        self.router.message_received(_ack(route="<sip:127.0.0.1:4000;lr>"), UDP_IN)
        self.assertEqual((len(self.receiver.messages), self.channel.sent), (2, []))

    def test_stray_ack_claimed_elsewhere(self) -> None:
        """
        An ACK for a 3xx-6xx that matches nothing here (sent from another
        source port than its INVITE) is put to the others; the worker
        holding the INVITE claims it and absorbs it; it is not handled
        here.
        """
        ack = _ack()
        self.router.message_received(ack, UDP_IN)
        ((index, kind, flow, payload),) = self.channel.sent
        self.assertEqual((index, kind, flow, payload), (1, "stray", UDP_IN, serialize(ack)))
        holder, holder_channel = RecordingReceiver(), _Channel()
        other = WorkerRouter(holder, SPEC, clock=self.clock, matches=lambda request: True)
        other.channel = holder_channel  # type: ignore[assignment]
        other.deliver(0, "stray", UDP_IN, payload)
        ((message, _),) = holder.messages
        self.assertEqual(message.method, "ACK")
        ((_, claimed, _, key),) = holder_channel.sent
        self.assertEqual(claimed, "claimed")
        self.router.deliver(1, "claimed", UDP_IN, key)
        self.clock.advance(STRAY_WAIT)
        self.assertEqual(self.receiver.messages, [])

    def test_stray_ack_unclaimed(self) -> None:
        """An ACK nobody claims is handled here after L{STRAY_WAIT} seconds."""
        self.router.message_received(_ack(), UDP_IN)
        self.clock.advance(STRAY_WAIT)
        self.assertEqual([m.method for m, _ in self.receiver.messages], ["ACK"])

    def test_matching_ack_delivered(self) -> None:
        """An ACK of one of our INVITEs is delivered at once."""
        self.ours.add("z9hG4bKinv")
        self.router.message_received(_ack(), UDP_IN)
        self.assertEqual((len(self.receiver.messages), self.channel.sent), (1, []))


class _FailingReceiver(RecordingReceiver):
    """A receiver that records the transport failures it is told of."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[tuple[Any, Any]] = []

    def transport_failed(self, message: Any, reason: Any) -> None:
        self.failed.append((message, reason))


class UnsentTests(SynchronousTestCase):
    """What another worker could not send for us: the connection closed meanwhile."""

    def setUp(self) -> None:
        self.receiver = _FailingReceiver()
        self.router = WorkerRouter(self.receiver, SPEC)
        self.channel = _Channel()
        self.router.channel = self.channel  # type: ignore[assignment]

    def key(self) -> bytes:
        import hashlib

        return hashlib.sha256(self.channel.sent[-1][3]).hexdigest()[:32].encode()

    def test_unsent_fails_the_transaction(self) -> None:
        """
        When the worker holding the connection says it could not send, the
        transaction that sent the request gets a transport error at once
        (not a timeout), and the flow is no longer taken for that worker's.
        """
        self.router.deliver(1, "owner", PHONE, b"")
        request = _request()
        self.assertTrue(self.router.send_elsewhere(request, PHONE))
        self.router.deliver(1, "unsent", PHONE, self.key())
        ((message, reason),) = self.receiver.failed
        self.assertIs(message, request)
        self.assertTrue(reason.check(TransportError))
        self.assertIsNone(self.router.holder_of(PHONE))
        self.router.deliver(1, "unsent", PHONE, self.key())  # said twice: once is enough
        self.assertEqual(len(self.receiver.failed), 1)

    def test_sent(self) -> None:
        """When the holder says it sent it, a later word about it changes nothing."""
        self.assertTrue(self.router.send_elsewhere(_request(), PHONE))
        key = self.key()
        self.router.deliver(1, "owner", PHONE, key)
        self.router.deliver(1, "unsent", PHONE, key)
        self.assertEqual(self.receiver.failed, [])

    def test_every_worker_must_say_so(self) -> None:
        """
        Handed to every other worker (the holder unknown), it fails only
        once all of them said they could not send it.
        """
        spec = WorkerSpec(0, 3, SPEC.sockets, (*SPEC.own, (("UDP", "127.0.0.1", 6000),)),
                          (7000, 7001, 7002))
        router = WorkerRouter(self.receiver, spec)
        channel = WorkerChannel(0, spec.channels, router.deliver)
        transport = _Transport()
        channel.transport = transport
        written = transport.written
        router.channel = channel
        self.assertTrue(router.send_elsewhere(_request(), PHONE))
        self.assertEqual(len(written), 2)
        key = decode_handoff(written[0][0])[2]
        import hashlib

        digest = hashlib.sha256(key).hexdigest()[:32].encode()
        router.deliver(1, "unsent", PHONE, digest)
        self.assertEqual(self.receiver.failed, [])
        router.deliver(2, "unsent", PHONE, digest)
        self.assertEqual(len(self.receiver.failed), 1)

    def test_awaiting_bounded(self) -> None:
        """At most L{MAX_AWAITING} messages await a word; the oldest are forgotten."""
        for n in range(MAX_AWAITING + 5):
            request = _request().with_headers(
                _request().headers.replaced("Call-ID", f"c{n}"), changed="Call-ID")
            self.router.send_elsewhere(request, PHONE)
        self.assertEqual(len(self.router._awaiting), MAX_AWAITING)


class WorkerTransportsTests(SynchronousTestCase):
    """L{WorkerTransportManager} with a router, on a fake reactor."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.receiver = RecordingReceiver()
        self.router = WorkerRouter(self.receiver, SPEC)
        self.channel = _Channel()
        self.router.channel = self.channel  # type: ignore[assignment]
        self.manager = WorkerTransportManager(self.router, self.reactor)
        self.manager.router = self.router
        self.router.transports = self.manager
        self.addCleanup(self.manager.close)

    def test_interface(self) -> None:
        """A L{WorkerTransportManager} is an L{ITransportManager}."""
        self.assertTrue(verifyObject(ITransportManager, self.manager))

    def test_send_hands_over(self) -> None:
        """
        A message for a phone connected to another worker is handed over;
        no connection of ours is attempted.
        """
        request = _request()
        d = self.manager.send(request, PHONE)
        assert d is not None
        self.assertEqual(self.successResultOf(d), PHONE)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual([k for _, k, _, _ in self.channel.sent], ["send"])

    def test_send_outbound_connects(self) -> None:
        """A flow to a server (not one of our listeners) still connects out."""
        d = self.manager.send(_request(), Flow("TCP", "127.0.0.1", 0, "192.0.2.50", 5060))
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertEqual(self.channel.sent, [])
        self.manager.close()
        self.failureResultOf(d)

    def test_connection_for_known_holder(self) -> None:
        """
        For a flow another worker said it holds, L{connection_for} gives a
        L{RemoteConnection} (the proxy then sends on it: handed over); for
        one nobody claimed, C{None} (the proxy's fallback applies).
        """
        self.assertIsNone(self.manager.connection_for(PHONE))
        self.router.deliver(1, "owner", PHONE, b"")
        remote = self.manager.connection_for(PHONE)
        self.assertIsInstance(remote, RemoteConnection)
        self.assertTrue(verifyObject(ISipTransport, remote))
        self.assertIsNone(self.manager.own_connection(PHONE))
        remote.send_message(_request(), PHONE)
        self.assertEqual([(i, k) for i, k, _, _ in self.channel.sent], [(1, "send")])
        self.channel.up = False
        self.assertRaises(TransportError, remote.send_message, _request(), PHONE)
        self.router.deliver(1, "gone", PHONE, b"")
        self.assertIsNone(self.manager.connection_for(PHONE))

    def test_flow_to_uses_others_connection(self) -> None:
        """L{WorkerTransportManager.flow_to} prefers another worker's connection to the phone."""
        self.manager.listen_tcp("127.0.0.1", 4001)
        before = self.manager.flow_to("TCP", "127.0.0.1", 40000)
        self.assertEqual(before.local_port, 4001)
        self.router.deliver(1, "owner", PHONE, b"")
        self.assertEqual(self.manager.flow_to("TCP", "127.0.0.1", 40000), PHONE)

    def test_accepted_connection_announced(self) -> None:
        """
        A phone connecting to us is announced to the others (C{owner}), its
        loss too (C{gone}); a C{hello} gets it announced again; a C{send}
        handed over for it is sent on it, and the sender told we own it.
        """
        self.manager.listen_tcp("127.0.0.1", 5060)
        client = Protocol()
        self.reactor.connectTCP("127.0.0.1", 5060, ClientFactory.forProtocol(lambda: client))
        self.reactor.flush()
        (flow,) = self.manager.accepted_flows()
        self.assertEqual([(i, k, f) for i, k, f, _ in self.channel.sent], [(1, "owner", flow)])
        self.router.deliver(1, "hello", Flow("UDP", "0.0.0.0", 0, "0.0.0.0", 0), b"")
        self.router.deliver(1, "send", flow, serialize(_request()))
        self.reactor.flush()
        self.assertEqual([k for _, k, _, _ in self.channel.sent], ["owner", "owner", "owner"])
        assert client.transport is not None
        client.transport.loseConnection()
        self.reactor.flush()
        self.assertEqual(self.channel.sent[-1][1:3], ("gone", flow))
        self.router.deliver(1, "send", flow, serialize(_request()))
        self.assertEqual(self.channel.sent[-1][:3], (1, "unsent", flow))
