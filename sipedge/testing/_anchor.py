# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
The C{media-anchor} stage on a real in-process L{MediaRelay} on
L{FakeReactor}'s in-memory network: L{AnchorTestCase} drives the stage
directly, L{AnchoredHarness} puts it in a whole L{ProxyCore}. Alice (at
L{A_HOST}) calls Bob (at L{B_HOST}); L{sdp_a} and L{sdp_b} are their
descriptions. Every test ends with a leak check: no relay port bound, no
relay session, no anchored call, no delayed call left.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import MediaConfig, MediaRelay, build_rtp
from sipedge.message import Request, Response, parse_datagram
from sipedge.pipeline import (
    Continue,
    Forward,
    RequestChain,
    RequestContext,
    Respond,
    Target,
    build_chain,
)
from sipedge.pipeline.stages import MediaAnchorStage, MediaEnded
from sipedge.testing._media import A_HOST, B_HOST, counting_random
from sipedge.testing._proxy import STAGES, ProxyHarness
from sipedge.testing._reactor import FakeReactor
from sipedge.transaction import make_response
from sipedge.transport import Flow

__all__ = [
    "ANCHOR_CONFIG",
    "ANCHOR_PROXY",
    "ANCHOR_RELAY",
    "A_HOST",
    "A_TAG",
    "A_TLS",
    "A_UDP",
    "B_HOST",
    "B_TAG",
    "B_UDP",
    "CALL_ID",
    "INSIDE_HOST",
    "KEY_A",
    "AnchorTestCase",
    "AnchoredHarness",
    "anchor_request",
    "anchor_response",
    "sdp_a",
    "sdp_b",
]

ANCHOR_RELAY = RELAY = "203.0.113.1"
ANCHOR_PROXY = PROXY = "203.0.113.2"
INSIDE_HOST = "10.0.0.20"
CALL_ID = "call-1@192.0.2.10"
A_TAG = "alice-tag"
B_TAG = "bob-tag"

A_UDP = Flow("UDP", PROXY, 5060, A_HOST, 5060)
A_TLS = Flow("TLS", PROXY, 5061, A_HOST, 40001)
B_UDP = Flow("UDP", PROXY, 5060, B_HOST, 5060)

ANCHOR_CONFIG = CONFIG = MediaConfig(
    anchor=True,
    address=RELAY,
    ports="20000-20039",
    idle_timeout=30,
    setup_timeout=120,
    max_duration=3600,
    max_packet_rate=0,
    max_bandwidth=0,
)

KEY_A = "inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB"  # not what counting_random makes


def sdp_a(
    port: int = 4000,
    host: str = A_HOST,
    version: int = 5,
    proto: str = "RTP/AVP",
    extra: str = "",
    session: str = "",
) -> bytes:
    """Alice's description."""
    family = "IP6" if ":" in host else "IP4"
    return (
        "v=0\r\n"
        f"o=alice 2890844526 {version} IN {family} {host}\r\n"
        "s=-\r\n"
        f"c=IN {family} {host}\r\n"
        "t=0 0\r\n"
        f"{session}"
        f"m=audio {port} {proto} 0 8\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        f"{extra}"
    ).encode()


def sdp_b(
    port: int = 5000,
    host: str = B_HOST,
    version: int = 7,
    proto: str = "RTP/AVP",
    extra: str = "",
) -> bytes:
    """Bob's description."""
    family = "IP6" if ":" in host else "IP4"
    return (
        "v=0\r\n"
        f"o=bob 2808844564 {version} IN {family} {host}\r\n"
        "s=-\r\n"
        f"c=IN {family} {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} {proto} 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        f"{extra}"
    ).encode()


def anchor_request(
    method: str,
    body: bytes = b"",
    *,
    cseq: int = 1,
    caller: bool = True,
    to_tag: str | None = None,
    uri: str = f"sip:bob@{B_HOST}",
    call_id: str = CALL_ID,
    content_type: str = "application/sdp",
    from_tag: str | None = None,
) -> Request:
    """
    A request of the call: from Alice (C{caller}, tags as given) or from
    Bob (in the dialog: From Bob's tag, To Alice's).
    """
    if caller:
        from_ = f"<sip:alice@example.com>;tag={from_tag or A_TAG}"
        to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
        via = f"{A_HOST}:5060"
    else:
        from_ = f"<sip:bob@example.com>;tag={from_tag or B_TAG}"
        to = f"<sip:alice@example.com>;tag={A_TAG}"
        via = f"{B_HOST}:5060"
        if uri == f"sip:bob@{B_HOST}":
            uri = f"sip:alice@{A_HOST}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {via};branch=z9hG4bK-{method.lower()}-{cseq}",
        "Max-Forwards: 70",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"Content-Length: {len(body)}", "", ""]
    message = parse_datagram("\r\n".join(lines).encode() + body)
    assert isinstance(message, Request)
    return message


def anchor_response(to: Request, status: int, body: bytes = b"", to_tag: str = B_TAG) -> Response:
    """A response to C{to}, with C{body} as SDP."""
    made = make_response(to, status, to_tag=to_tag)
    if body:
        made = made.with_body(body, "application/sdp")
    return made


def _rtp(sequence: int) -> bytes:
    return build_rtp(
        payload_type=0,
        sequence=sequence,
        timestamp=160 * sequence,
        ssrc=0xA11CE,
        payload=bytes(160),
    )


class _Endpoint(DatagramProtocol):
    """A party's media socket: records what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self.socket: Any = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))


class AnchorTestCase(SynchronousTestCase):
    """A relay on a fake network, and the stage driving it."""

    config = CONFIG

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.network = self.reactor.network
        self.ended: list[MediaEnded] = []
        self.relay = self.config.build_relay(self.reactor, random=counting_random(1))
        self.stage = MediaAnchorStage(
            self.stage_relay(self.relay), self.config, on_media_ended=self.ended.append
        )
        self.addCleanup(self.leak_check)

    def stage_relay(self, relay: MediaRelay) -> Any:
        """The L{IMediaRelay} the stage is given: C{relay} itself here."""
        return relay

    def resolved(self, result: Any) -> Any:
        """
        C{result}, or what it fires with, once the relay has answered (a
        relay that answers later: L{LaterRelayMixin}).
        """
        if isinstance(result, Deferred):
            self.reactor.advance(0)
            result = self.successResultOf(result)
        return result

    def leak_check(self) -> None:
        """Nothing is left: ports, relay sessions, anchored calls, timers."""
        self.reactor.advance(0)  # answers a relay still owes
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.stage.calls, ())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    # -- driving ---------------------------------------------------------------

    def run_request(self, context: RequestContext, forward: Forward | None = None) -> Any:
        """
        The request side as the chain runs it: C{process_request}, then,
        if it continues, the routing decision (C{forward}, by default a
        Forward to the Request-URI) through C{targets_chosen}
        (L{IRoutedStage}).
        """

        def routed(result: Any) -> Any:
            if result != Continue():
                return result
            chosen = forward or Forward((Target(str(context.request.uri)),))
            return self.stage.targets_chosen(context, chosen)

        result = self.stage.process_request(context)
        if isinstance(result, Deferred):
            return result.addCallback(routed)
        return routed(result)

    def send(self, message: Request, flow: Flow = A_UDP, services: Any = None) -> RequestContext:
        """Run the request side; the context must continue."""
        context = RequestContext(message, flow, services)
        result = self.resolved(self.run_request(context))
        self.assertEqual(result, Continue())
        return context

    def refuse(self, message: Request, flow: Flow = A_UDP) -> Respond:
        """Run the request side; the context must be answered."""
        context = RequestContext(message, flow)
        result = self.resolved(self.run_request(context))
        self.assertIsInstance(result, Respond)
        assert isinstance(result, Respond)
        self.stage.request_decided(context, result)
        return result

    def back(self, context: RequestContext | None, message: Response) -> Response:
        """Run the response side."""
        out = self.resolved(self.stage.process_response(context, message))
        self.assertIsInstance(out, Response)
        assert isinstance(out, Response)
        return out

    def call(self, offer: bytes | None = None, answer: bytes | None = None) -> tuple[Any, ...]:
        """
        Set up a call: INVITE with C{offer}, 200 with C{answer}, ACK.
        Returns the INVITE's context and what each party received.
        """
        invite = anchor_request("INVITE", sdp_a() if offer is None else offer)
        context = self.send(invite)
        ok = self.back(context, anchor_response(invite, 200, sdp_b() if answer is None else answer))
        self.send(anchor_request("ACK", cseq=1, to_tag=B_TAG))
        return context, context.request.body, ok.body

    def hang_up(self, caller: bool = True, cseq: int = 2) -> None:
        """BYE in the anchored dialog."""
        bye = anchor_request("BYE", cseq=cseq, caller=caller, to_tag=B_TAG if caller else None)
        self.send(bye, A_UDP if caller else B_UDP)

    def endpoint(self, host: str, port: int) -> _Endpoint:
        protocol = _Endpoint()
        protocol.socket = self.network.bind(host, port, protocol)
        self.addCleanup(protocol.socket.stopListening)
        return protocol

    def relays_media(self, offer_port: int, answer_port: int, host: str = RELAY) -> None:
        """
        Media from Alice (at 4000) sent where her answer says reaches Bob
        at 5000, and Bob's, sent where his offer says, reaches Alice.
        """
        alice = self.endpoint(A_HOST, 4000)
        bob = self.endpoint(B_HOST, 5000)
        alice.socket.write(_rtp(1), (host, answer_port))
        self.network.flush()
        bob.socket.write(_rtp(2), (host, offer_port))
        self.network.flush()
        self.assertEqual([d for d, _ in bob.received], [_rtp(1)])
        self.assertEqual([d for d, _ in alice.received], [_rtp(2)])
        self.assertEqual(bob.received[0][1], (host, offer_port))
        self.assertEqual(alice.received[0][1], (host, answer_port))


class AnchoredHarness(ProxyHarness):
    """
    A proxy whose chain anchors media before C{registrar}/C{location}, the
    stage also observing the core; every test ends with the relay's leak
    check. Mixed into SynchronousTestCase.
    """

    #: The media configuration the relay and the stage are built with.
    config = CONFIG

    def build(self) -> None:
        super().build()
        self.reactor = FakeReactor()
        self.relay = self.config.build_relay(self.reactor, random=counting_random(1))
        self.anchor = MediaAnchorStage(self.anchored_relay(), self.config)
        stages = list(build_chain(STAGES, {}, self.services).stages)
        stages.insert(STAGES.index("registrar"), self.anchor)
        self.core = self.make_core(RequestChain(stages), observers=[self.anchor])

    def anchored_relay(self) -> Any:
        """The relay the stage is given (L{relay} itself unless overridden)."""
        return self.relay

    def setUp(self) -> None:
        super().setUp()
        self.addCleanup(self.leak_check)

    def leak_check(self) -> None:
        """No relay port, relay session, anchored call or relay timer left."""
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.anchor.calls, ())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
