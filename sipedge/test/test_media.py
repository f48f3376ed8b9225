# -*- test-case-name: sipedge.test.test_media -*-
"""
Tests for the media relay: L{sipedge.media.PortAllocator},
L{sipedge.media.RelayLeg}, L{sipedge.media.RelaySession} and
L{sipedge.media.MediaRelay}, on L{sipedge.testing.FakeReactor}'s in-memory
network. Every test ends with a leak check: no relay port bound, no
delayed call left.

RTP and SRTP themselves are tested in C{test_media_rtp} and
C{test_media_srtp}.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from sipedge.interfaces import IMediaRelay
from sipedge.media import (
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    DROP_REASONS,
    CallBudget,
    LegPolicy,
    MediaError,
    MediaLimits,
    MediaMode,
    MediaOffer,
    MediaOfferError,
    MediaRelay,
    Party,
    PortAllocator,
    PortsExhausted,
    RelayPolicy,
    SdesCrypto,
    SessionEnd,
    SessionExists,
    SrtpContext,
    SrtpKey,
    StreamOffer,
    UnknownSession,
    build_rtcp,
)
from sipedge.testing import MEDIA_LIMITS as LIMITS
from sipedge.testing import (
    FakeReactor,
    RelayTestCase,
    a_crypto,
    capture_log,
    context_from,
    counting_random,
)
from sipedge.testing import MediaEndpoint as Endpoint
from sipedge.testing import rtp_packet as rtp

RELAY = "203.0.113.1"
INSIDE = "10.0.0.1"
A_HOST = "192.0.2.10"
B_HOST = "198.51.100.20"
STRANGER = "203.0.113.66"
LOW, HIGH = 20000, 20019

# Short limits keep the timer tests readable; rates are off unless a test
# turns them on.
def rtcp(ssrc: int = 0xA11CE) -> bytes:
    """A receiver report."""
    return build_rtcp(packet_type=201, ssrc=ssrc, count=1, body=bytes(24))


def number(listening: Any) -> int:
    """The port number of a listening port."""
    return int(listening.getHost().port)


class InterfaceTests(RelayTestCase):
    """L{MediaRelay} provides L{IMediaRelay}."""

    def test_provides(self) -> None:
        """The class and an instance verify against L{IMediaRelay}."""
        self.assertTrue(verifyClass(IMediaRelay, MediaRelay))
        self.assertTrue(verifyObject(IMediaRelay, self.relay))

    def test_observers(self) -> None:
        """A removed observer is not called; removing an unknown one is harmless."""
        calls: list[SessionEnd] = []
        self.relay.add_observer(calls.append)
        self.relay.remove_observer(calls.append)
        self.relay.remove_observer(calls.append)
        self.allocate()
        self.release()
        self.assertEqual(calls, [])
        self.assertEqual([end.reason for end in self.ended], ["released"])

    def test_failing_observer(self) -> None:
        """An observer that raises is logged; the others still hear."""

        def broken(end: SessionEnd) -> None:
            raise RuntimeError("observer bug")

        self.relay.remove_observer(self.ended.append)
        self.relay.add_observer(broken)
        self.relay.add_observer(self.ended.append)
        self.allocate()
        self.release()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(self.ended), 1)


class PortAllocatorTests(RelayTestCase):
    """L{PortAllocator}: pairs, singles, skipping, exhaustion, release."""

    def test_pairs_even_odd(self) -> None:
        """A pair is an even RTP port and the odd port after it."""
        one, two = Endpoint(), Endpoint()
        rtp_port, rtcp_port = self.ports.allocate_pair(one, two)
        self.assertEqual((number(rtp_port), number(rtcp_port)), (20000, 20001))
        self.assertIs(self.network.port_at(RELAY, 20000), rtp_port)
        self.assertIs(one.transport, rtp_port)
        self.assertEqual(self.ports.open_ports(), [20000, 20001])
        self.ports.release(rtp_port)
        self.ports.release(rtcp_port)
        self.ports.release(rtcp_port)
        self.assertEqual(self.ports.open_ports(), [])

    def test_round_robin(self) -> None:
        """Released slots are reused last; singles take an even port."""
        first = self.ports.allocate(Endpoint())
        self.ports.release(first)
        second = self.ports.allocate(Endpoint())
        self.assertEqual((number(first), number(second)), (20000, 20002))
        self.ports.release(second)

    def test_skips_ports_in_use(self) -> None:
        """
        Ports another socket holds are skipped (CannotListenError), a pair
        whose odd port is taken included; nothing half-bound is left.
        """
        other = self.network.bind(RELAY, 20000, Endpoint())
        other_odd = self.network.bind(RELAY, 20003, Endpoint())
        rtp_port, rtcp_port = self.ports.allocate_pair(Endpoint(), Endpoint())
        self.assertEqual(number(rtp_port), 20004)
        self.assertEqual(self.ports.open_ports(), [20004, 20005])
        self.assertIsNone(self.network.port_at(RELAY, 20002))
        for port in (rtp_port, rtcp_port):
            self.ports.release(port)
        other.stopListening()
        other_odd.stopListening()

    def test_exhausted(self) -> None:
        """With every slot taken, L{PortsExhausted} (503)."""
        held = [self.ports.allocate_pair(Endpoint(), Endpoint()) for _ in range(10)]
        self.assertEqual(self.ports.capacity, 10)
        with self.assertRaises(PortsExhausted) as caught:
            self.ports.allocate(Endpoint())
        self.assertEqual(caught.exception.status_hint, 503)
        for pair in held:
            for port in pair:
                self.ports.release(port)

    def test_bad_ranges(self) -> None:
        """A range without a pair, or a wildcard without an address to advertise, is refused."""
        self.assertRaises(ValueError, PortAllocator, self.reactor, 20001, 20001, RELAY)
        self.assertRaises(ValueError, PortAllocator, self.reactor, 20001, 20002, RELAY)
        self.assertRaises(ValueError, PortAllocator, self.reactor, 0, 10, RELAY)
        self.assertRaises(ValueError, PortAllocator, self.reactor, 20000, 20001, "")
        self.assertRaises(
            ValueError, PortAllocator, self.reactor, 20000, 20001, "::", advertised=RELAY
        )
        wildcard = PortAllocator(self.reactor, 20000, 20001, "", advertised=RELAY)
        self.assertEqual(wildcard.advertised, RELAY)
        self.assertIn("*:20000-20001", repr(wildcard))


class PlainForwardingTests(RelayTestCase):
    """Plain RTP and RTCP between the parties the signalling named."""

    def setUp(self) -> None:
        super().setUp()
        self.a_rtp = self.endpoint(A_HOST, 4000)
        self.a_rtcp = self.endpoint(A_HOST, 4001)
        self.b_rtp = self.endpoint(B_HOST, 5000)
        self.b_rtcp = self.endpoint(B_HOST, 5001)

    def test_allocation(self) -> None:
        """
        Allocation binds a pair facing each side and describes B's side
        (for the offer to B); the update completes A's side.
        """
        allocation = self.allocate()
        (stream,) = allocation.streams
        self.assertFalse(allocation.answered)
        self.assertEqual((stream.a.host, stream.a.port, stream.a.rtcp_port), (RELAY, 20000, 20001))
        self.assertEqual((stream.b.host, stream.b.port, stream.b.rtcp_port), (RELAY, 20002, 20003))
        self.assertEqual((stream.a.crypto, stream.b.crypto), ((), ()))
        self.assertEqual((stream.a_mode, stream.b_mode), (MediaMode.PLAIN, MediaMode.PLAIN))
        self.assertEqual(
            self.relay.open_ports(), [("default", p) for p in range(20000, 20004)]
        )
        self.assertEqual(self.stats().state, "offered")
        answered = self.update()
        self.assertTrue(answered.answered)
        self.assertEqual(answered.streams, allocation.streams)
        self.assertEqual(self.stats().state, "answered")
        self.release()

    def test_both_directions(self) -> None:
        """RTP and RTCP go A to B and B to A, from the relay's ports."""
        self.allocate()
        self.update()
        self.send(self.a_rtp, rtp(1), 20000)
        self.send(self.a_rtcp, rtcp(), 20001)
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.send(self.b_rtcp, rtcp(0xB0B), 20003)
        self.assertEqual(self.b_rtp.received, [(rtp(1), (RELAY, 20002))])
        self.assertEqual(self.b_rtcp.received, [(rtcp(), (RELAY, 20003))])
        self.assertEqual(self.a_rtp.received, [(rtp(2, ssrc=0xB0B), (RELAY, 20000))])
        self.assertEqual(self.a_rtcp.received, [(rtcp(0xB0B), (RELAY, 20001))])
        stats = self.stats()
        self.assertEqual((stats.a_to_b.packets, stats.a_to_b.bytes), (2, 172 + 32))
        self.assertEqual((stats.b_to_a.packets, stats.b_to_a.dropped), (2, 0))
        final = self.release()
        self.assertEqual(final.state, "ended")
        self.assertEqual(final.a_to_b.packets, 2)

    def test_strict_source(self) -> None:
        """
        Packets from a third address, and from the right IP on another
        port, are dropped and counted as foreign, never forwarded.
        """
        stranger = self.endpoint(STRANGER, 4000)
        same_ip = self.endpoint(A_HOST, 4002)
        self.allocate()
        self.update()
        self.send(stranger, rtp(1), 20000)
        self.send(stranger, rtp(2), 20002)
        self.send(same_ip, rtp(3), 20000)
        self.send(self.b_rtp, rtcp(), 20001)
        self.assertEqual(self.b_rtp.received + self.a_rtp.received + self.a_rtcp.received, [])
        self.assertEqual(stranger.received, [])
        stats = self.stats()
        self.assertEqual(stats.a_to_b.drops, {"foreign-source": 3})
        self.assertEqual(stats.b_to_a.drops, {"foreign-source": 1})
        self.release()

    def test_end_log_names_drops(self) -> None:
        """
        The line logged when a session ends gives the drops by reason, so
        an operator reading a text log sees why packets were dropped.
        """
        events = capture_log(self)
        stranger = self.endpoint(STRANGER, 4000)
        self.allocate()
        self.update()
        self.send(stranger, rtp(1), 20000)
        self.send(stranger, rtp(2), 20002)
        self.send(self.b_rtp, b"\x00", 20002)
        self.release()
        [line] = [formatEvent(e) for e in events if "ended" in e.get("log_format", "")]
        self.assertIn("0 packets A to B, 0 B to A, 3 dropped", line)
        self.assertIn("(foreign-source 2, malformed 1)", line)

    def test_before_answer(self) -> None:
        """
        Before the answer, B's ports accept nothing, and A's media has
        nowhere to go.
        """
        self.allocate()
        self.send(self.b_rtp, rtp(1), 20002)
        self.send(self.a_rtp, rtp(2), 20000)
        self.assertEqual(self.a_rtp.received + self.b_rtp.received, [])
        stats = self.stats()
        self.assertEqual(stats.b_to_a.drops, {"foreign-source": 1})
        self.assertEqual(stats.a_to_b.drops, {"no-destination": 1})
        self.release()

    def test_malformed_and_too_long(self) -> None:
        """Runts, other versions and oversized datagrams are dropped by reason."""
        self.allocate()
        self.update()
        for junk in (b"", b"hello", b"\x80\x00" + bytes(8), bytes(172), b"\x00\x01" + bytes(20)):
            self.send(self.a_rtp, junk, 20000)
        self.send(self.a_rtp, rtp(1, size=1501), 20000)
        self.send(self.a_rtp, rtp(2, size=1500), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(2, size=1500)])
        self.assertEqual(self.stats().a_to_b.drops, {"malformed": 5, "too-long": 1})
        self.release()

    def test_rtcp_mux(self) -> None:
        """
        A multiplexes RTCP (one relay port facing it), B does not: RTCP is
        sorted out by packet type (RFC 5761 4) both ways.
        """
        allocation = self.allocate(streams=[StreamOffer(A_HOST, 4000, rtcp_mux=True)])
        (stream,) = allocation.streams
        a, b = stream.a, stream.b
        self.assertEqual((a.port, a.rtcp_port, a.rtcp_mux), (20000, None, True))
        self.assertEqual((b.port, b.rtcp_port, b.rtcp_mux), (20002, 20003, True))
        self.assertEqual(self.relay.open_ports(), [("default", p) for p in (20000, 20002, 20003)])
        self.update()
        self.send(self.a_rtp, rtp(1), 20000)
        self.send(self.a_rtp, rtcp(), 20000)
        self.send(self.b_rtcp, rtcp(0xB0B), 20003)
        self.send(self.b_rtp, rtp(2), 20002)
        self.assertEqual(self.b_rtp.received, [(rtp(1), (RELAY, 20002))])
        self.assertEqual(self.b_rtcp.received, [(rtcp(), (RELAY, 20003))])
        self.assertEqual(
            self.a_rtp.received, [(rtcp(0xB0B), (RELAY, 20000)), (rtp(2), (RELAY, 20000))]
        )
        self.release()

    def test_both_mux(self) -> None:
        """When B answers with rtcp-mux too, its RTCP goes to its RTP port."""
        self.allocate(streams=[StreamOffer(A_HOST, 4000, rtcp_mux=True)])
        self.update(streams=[StreamOffer(B_HOST, 5000, rtcp_mux=True)])
        self.send(self.a_rtp, rtcp(), 20000)
        self.send(self.b_rtp, rtcp(0xB0B), 20002)
        self.assertEqual(self.b_rtp.received, [(rtcp(), (RELAY, 20002))])
        self.assertEqual(self.a_rtp.received, [(rtcp(0xB0B), (RELAY, 20000))])
        self.send(self.b_rtcp, rtcp(0xB0B), 20003)
        self.assertEqual(self.stats().b_to_a.drops, {"foreign-source": 1})
        self.release()

    def test_rtcp_attribute(self) -> None:
        """An a=rtcp port (RFC 3605) replaces port + 1."""
        rtcp_elsewhere = self.endpoint(A_HOST, 4100)
        self.allocate(streams=[StreamOffer(A_HOST, 4000, rtcp_port=4100)])
        self.update()
        self.send(rtcp_elsewhere, rtcp(), 20001)
        self.send(self.b_rtcp, rtcp(0xB0B), 20003)
        self.assertEqual(self.b_rtcp.packets, [rtcp()])
        self.assertEqual(rtcp_elsewhere.packets, [rtcp(0xB0B)])
        self.release()

    def test_two_streams(self) -> None:
        """Audio and video get ports of their own; a disabled stream gets none."""
        video_a = self.endpoint(A_HOST, 4002)
        video_b = self.endpoint(B_HOST, 5002)
        allocation = self.allocate(
            streams=[
                StreamOffer(A_HOST, 4000),
                StreamOffer(A_HOST, 0, media="text"),
                StreamOffer(A_HOST, 4002, media="video"),
            ]
        )
        _, text, video = allocation.streams
        self.assertEqual((text.a.port, text.b.port), (0, 0))
        self.assertEqual((video.a.port, video.b.port), (20004, 20006))
        self.update(
            streams=[StreamOffer(B_HOST, 5000), StreamOffer(B_HOST, 0), StreamOffer(B_HOST, 5002)]
        )
        self.send(video_a, rtp(1, ssrc=7), 20004)
        self.send(self.a_rtp, rtp(2), 20000)
        self.assertEqual(video_b.packets, [rtp(1, ssrc=7)])
        self.assertEqual(self.b_rtp.packets, [rtp(2)])
        self.assertEqual(len(self.stats().ports), 8)
        self.release()

    def test_answer_rejects_stream(self) -> None:
        """A stream B rejects (port 0) accepts nothing from either side's B ports."""
        self.allocate()
        self.update(streams=[StreamOffer(B_HOST, 0)])
        self.send(self.a_rtp, rtp(1), 20000)
        self.send(self.b_rtp, rtp(2), 20002)
        self.assertEqual(self.a_rtp.received + self.b_rtp.received, [])
        stats = self.stats()
        self.assertEqual(stats.a_to_b.drops, {"no-destination": 1})
        self.assertEqual(stats.b_to_a.drops, {"foreign-source": 1})
        self.release()

    def test_hold_address(self) -> None:
        """An answer with c=0.0.0.0 (old-style hold) means no media from B."""
        self.allocate()
        self.update(streams=[StreamOffer("0.0.0.0", 5000)])
        self.send(self.b_rtp, rtp(1), 20002)
        self.assertEqual(self.stats().b_to_a.drops, {"foreign-source": 1})
        self.update()
        self.send(self.b_rtp, rtp(2), 20002)
        self.assertEqual(self.a_rtp.packets, [rtp(2)])
        self.release()

    def test_interfaces(self) -> None:
        """Each leg is bound on the interface its policy names."""
        inside = PortAllocator(self.reactor, 30000, 30009, INSIDE)
        relay = self.make_relay({"outside": self.ports, "inside": inside})
        b_inside = self.endpoint("10.0.0.20", 5000)
        offer = MediaOffer(
            [StreamOffer(A_HOST, 4000)],
            RelayPolicy(LegPolicy(interface="outside"), LegPolicy(interface="inside")),
        )
        (stream,) = self.successResultOf(relay.allocate("x", offer)).streams
        self.assertEqual((stream.a.host, stream.a.port), (RELAY, 20000))
        self.assertEqual((stream.b.host, stream.b.port), (INSIDE, 30000))
        self.successResultOf(relay.update("x", MediaOffer([StreamOffer("10.0.0.20", 5000)])))
        self.send(self.a_rtp, rtp(1), 20000)
        self.assertEqual(b_inside.received, [(rtp(1), (INSIDE, 30000))])
        self.assertEqual(
            relay.open_ports(),
            [("inside", 30000), ("inside", 30001), ("outside", 20000), ("outside", 20001)],
        )
        self.successResultOf(relay.release("x"))
        self.assertEqual(relay.open_ports(), [])

    def test_ipv6(self) -> None:
        """An IPv6 relay relays IPv6 parties, addresses in canonical form."""
        ports6 = PortAllocator(self.reactor, 40000, 40009, "2001:db8::1")
        relay = self.make_relay(ports6)
        a6 = self.endpoint("2001:db8::a", 4000)
        b6 = self.endpoint("2001:db8::b", 5000)
        self.successResultOf(
            relay.allocate("v6", MediaOffer([StreamOffer("2001:DB8:0::a", 4000)]))
        )
        self.successResultOf(relay.update("v6", MediaOffer([StreamOffer("[2001:db8::b]", 5000)])))
        self.send(a6, rtp(1), 40000, host="2001:db8::1")
        self.send(b6, rtp(2), 40002, host="2001:db8::1")
        self.assertEqual(b6.packets, [rtp(1)])
        self.assertEqual(a6.packets, [rtp(2)])
        self.successResultOf(relay.release("v6"))
        self.assertEqual(relay.open_ports(), [])


class NatLearningTests(RelayTestCase):
    """Opt-in NAT mode: the port is learned from the signalled IP, early only."""

    def setUp(self) -> None:
        super().setUp()
        self.b_rtp = self.endpoint(B_HOST, 5000)
        # A is behind a NAT: it signalled 4000, its packets come from 34000.
        self.a_natted = self.endpoint(A_HOST, 34000)
        self.a_signalled = self.endpoint(A_HOST, 4000)

    def test_learns_port(self) -> None:
        """A's first packets from another port teach the leg where A is."""
        self.allocate(a=LegPolicy(nat=True))
        self.update()
        self.send(self.a_natted, rtp(1), 20000)
        self.send(self.b_rtp, rtp(2), 20002)
        self.assertEqual(self.b_rtp.packets, [rtp(1)])
        self.assertEqual(self.a_natted.packets, [rtp(2)])
        self.assertEqual(self.a_signalled.received, [])
        self.release()

    def test_only_signalled_ip(self) -> None:
        """Another IP is never learned, even first."""
        stranger = self.endpoint(STRANGER, 34000)
        self.allocate(a=LegPolicy(nat=True))
        self.update()
        self.send(stranger, rtp(1), 20000)
        self.send(self.b_rtp, rtp(2), 20002)
        self.assertEqual(self.b_rtp.received, [])
        self.assertEqual(stranger.received, [])
        self.assertEqual(self.a_signalled.packets, [rtp(2)])
        self.assertEqual(self.stats().a_to_b.drops, {"foreign-source": 1})
        self.release()

    def test_only_first_packets(self) -> None:
        """After the first N packets the address is fixed: a new port is foreign."""
        other_port = self.endpoint(A_HOST, 34001)
        self.allocate(a=LegPolicy(nat=True))
        self.update()
        for sequence in range(3):
            self.send(self.a_natted, rtp(sequence), 20000)
        self.send(other_port, rtp(9), 20000)
        self.assertEqual(len(self.b_rtp.packets), 3)
        self.assertEqual(self.stats().a_to_b.drops, {"foreign-source": 1})
        self.release()

    def test_only_early(self) -> None:
        """After the learning time, only the signalled address counts."""
        self.allocate(a=LegPolicy(nat=True))
        self.update()
        self.reactor.advance(5)
        self.send(self.a_natted, rtp(1), 20000)
        self.send(self.a_signalled, rtp(2), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(2)])
        self.assertEqual(self.stats().a_to_b.drops, {"foreign-source": 1})
        self.release()

    def test_window_starts_at_answer(self) -> None:
        """Learning starts with the answer (when A learns the relay's address)."""
        self.allocate(a=LegPolicy(nat=True))
        self.reactor.advance(60)
        self.update()
        self.reactor.advance(4)
        self.send(self.a_natted, rtp(1), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(1)])
        self.release()

    def test_strict_by_default(self) -> None:
        """Without NAT mode the same packet is foreign."""
        self.allocate()
        self.update()
        self.send(self.a_natted, rtp(1), 20000)
        self.assertEqual(self.b_rtp.received, [])
        self.release()

    def test_b_side(self) -> None:
        """B's leg learns likewise when its policy asks."""
        b_natted = self.endpoint(B_HOST, 35000)
        self.allocate(b=LegPolicy(nat=True))
        self.update()
        self.send(b_natted, rtp(1), 20002)
        self.send(self.a_signalled, rtp(2), 20000)
        self.assertEqual(self.a_signalled.packets, [rtp(1)])
        self.assertEqual(b_natted.packets, [rtp(2)])
        self.release()


class SrtpModeTests(RelayTestCase):
    """srtp-terminate, srtp-rekey and passthrough."""

    def setUp(self) -> None:
        super().setUp()
        self.a_rtp = self.endpoint(A_HOST, 4000)
        self.a_rtcp = self.endpoint(A_HOST, 4001)
        self.b_rtp = self.endpoint(B_HOST, 5000)
        self.b_rtcp = self.endpoint(B_HOST, 5001)
        self.a_key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(100))
        self.b_key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_32, counting_random(200))

    def srtp_offer(self) -> list[StreamOffer]:
        return [StreamOffer(A_HOST, 4000, crypto=[a_crypto(self.a_key)])]

    def test_terminate_on_a(self) -> None:
        """
        A speaks SRTP, B plain RTP: the relay decrypts A's media and
        encrypts B's towards A with its own key (offered back to A).
        """
        (stream,) = self.allocate(
            streams=self.srtp_offer(), a=LegPolicy(MediaMode.SRTP_TERMINATE)
        ).streams
        self.assertEqual(
            (stream.a_mode, stream.b_mode), (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN)
        )
        self.assertEqual(stream.b.crypto, ())
        (to_a,) = stream.a.crypto
        self.assertEqual((to_a.tag, to_a.suite), (1, "AES_CM_128_HMAC_SHA1_80"))
        self.assertNotEqual(to_a.key_params, self.a_key.to_sdes())
        a = context_from(self.a_key, to_a)
        self.update()
        self.send(self.a_rtp, a.protect(rtp(1)), 20000)
        self.send(self.a_rtcp, a.protect(rtcp()), 20001)
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.send(self.b_rtcp, rtcp(0xB0B), 20003)
        self.assertEqual(self.b_rtp.packets, [rtp(1)])
        self.assertEqual(self.b_rtcp.packets, [rtcp()])
        self.assertEqual(
            [a.unprotect(p) for p in self.a_rtp.packets + self.a_rtcp.packets],
            [rtp(2, ssrc=0xB0B), rtcp(0xB0B)],
        )
        self.release()

    def test_terminate_drops_forged_and_replayed(self) -> None:
        """Tampered, wrongly keyed and replayed SRTP from A is dropped, counted."""
        (stream,) = self.allocate(
            streams=self.srtp_offer(), a=LegPolicy(MediaMode.SRTP_TERMINATE)
        ).streams
        a = context_from(self.a_key, stream.a.crypto[0])
        self.update()
        good = a.protect(rtp(1))
        tampered = bytearray(a.protect(rtp(2)))
        tampered[30] ^= 0xFF
        mallory = SrtpContext(None, SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(7)))
        self.send(self.a_rtp, good, 20000)
        self.send(self.a_rtp, good, 20000)
        self.send(self.a_rtp, bytes(tampered), 20000)
        self.send(self.a_rtp, mallory.protect(rtp(3)), 20000)
        self.send(self.a_rtp, rtp(4), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(1)])
        self.assertEqual(self.stats().a_to_b.drops, {"srtp-replay": 1, "srtp-auth": 3})
        self.release()

    def test_terminate_on_b(self) -> None:
        """
        A plain, B SRTP: the relay offers B a key for each suite; B picks
        one, and media is encrypted towards B and decrypted from B.
        """
        (stream,) = self.allocate(b=LegPolicy(MediaMode.SRTP_TERMINATE)).streams
        self.assertEqual(stream.a.crypto, ())
        self.assertEqual(
            [(c.tag, c.suite) for c in stream.b.crypto][:2],
            [(1, "AES_CM_128_HMAC_SHA1_80"), (2, "AES_CM_128_HMAC_SHA1_32")],
        )
        offered = stream.b.crypto[1]
        b = context_from(self.b_key, offered)
        self.update(streams=[StreamOffer(B_HOST, 5000, crypto=[a_crypto(self.b_key, tag=2)])])
        self.send(self.a_rtp, rtp(1), 20000)
        self.send(self.b_rtp, b.protect(rtp(2, ssrc=0xB0B)), 20002)
        self.assertEqual([b.unprotect(p) for p in self.b_rtp.packets], [rtp(1)])
        self.assertEqual(self.a_rtp.packets, [rtp(2, ssrc=0xB0B)])
        self.release()

    def test_rekey(self) -> None:
        """
        SRTP on both legs, each with its own keys: what B receives is not
        what A sent, and each side decrypts with the relay's key for it.
        """
        (stream,) = self.allocate(
            streams=self.srtp_offer(), a=LegPolicy(MediaMode.SRTP_REKEY)
        ).streams
        self.assertEqual(
            (stream.a_mode, stream.b_mode), (MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY)
        )
        a = context_from(self.a_key, stream.a.crypto[0])
        b = context_from(self.b_key, stream.b.crypto[1])
        self.update(streams=[StreamOffer(B_HOST, 5000, crypto=[a_crypto(self.b_key, tag=2)])])
        sent = a.protect(rtp(1))
        self.send(self.a_rtp, sent, 20000)
        self.send(self.a_rtcp, a.protect(rtcp()), 20001)
        self.send(self.b_rtp, b.protect(rtp(2, ssrc=0xB0B)), 20002)
        (received,) = self.b_rtp.packets
        self.assertNotEqual(received, sent)
        self.assertEqual(len(received), 172 + 4)
        self.assertEqual(b.unprotect(received), rtp(1))
        self.assertEqual([b.unprotect(p) for p in self.b_rtcp.packets], [rtcp()])
        self.assertEqual([a.unprotect(p) for p in self.a_rtp.packets], [rtp(2, ssrc=0xB0B)])
        # B's forgeries and replays go nowhere.
        replay = b.protect(rtp(3, ssrc=0xB0B))
        self.send(self.b_rtp, replay, 20002)
        self.send(self.b_rtp, replay, 20002)
        self.send(self.b_rtp, a.protect(rtp(4)), 20002)
        self.assertEqual(len(self.a_rtp.packets), 2)
        self.assertEqual(self.stats().b_to_a.drops, {"srtp-replay": 1, "srtp-auth": 1})
        self.release()

    def test_too_long_for_srtp(self) -> None:
        """A 1400-byte plain packet cannot be protected towards A: C{too-long}."""
        self.allocate(streams=self.srtp_offer(), a=LegPolicy(MediaMode.SRTP_TERMINATE))
        self.update()
        self.send(self.b_rtp, rtp(1, size=1400), 20002)
        self.assertEqual(self.a_rtp.received, [])
        self.assertEqual(self.stats().b_to_a.drops, {"too-long": 1})
        self.release()

    def test_passthrough(self) -> None:
        """
        Passthrough relays A's a=crypto to B and B's to A unchanged, and
        the packets byte for byte.
        """
        offer = self.srtp_offer()
        (stream,) = self.allocate(streams=offer, a=LegPolicy(MediaMode.PASSTHROUGH)).streams
        self.assertEqual(stream.b.crypto, offer[0].crypto)
        self.assertEqual(stream.a.crypto, ())
        b_line = a_crypto(self.b_key)
        (answered,) = self.update(streams=[StreamOffer(B_HOST, 5000, crypto=[b_line])]).streams
        self.assertEqual(answered.a.crypto, (b_line,))
        opaque = SrtpContext(None, self.a_key).protect(rtp(1))
        self.send(self.a_rtp, opaque, 20000)
        self.send(self.b_rtp, opaque, 20002)
        self.assertEqual(self.b_rtp.packets, [opaque])
        self.assertEqual(self.a_rtp.packets, [opaque])
        self.release()

    def test_skips_unusable_crypto(self) -> None:
        """The first usable a=crypto line is chosen: unknown, MKI, bad ones skipped."""
        lines = [
            SdesCrypto(1, "F8_128_HMAC_SHA1_80", self.a_key.to_sdes()),
            SdesCrypto(2, "AES_CM_128_HMAC_SHA1_80", self.a_key.to_sdes() + "|2^20|1:4"),
            SdesCrypto(3, "AES_CM_128_HMAC_SHA1_80", self.a_key.to_sdes(), "UNENCRYPTED_SRTP"),
            SdesCrypto(4, "AES_CM_128_HMAC_SHA1_80", "inline:AAAA"),
            SdesCrypto(5, "AES_CM_128_HMAC_SHA1_80", self.a_key.to_sdes(), "WSH=64"),
        ]
        (stream,) = self.allocate(
            streams=[StreamOffer(A_HOST, 4000, crypto=lines)],
            a=LegPolicy(MediaMode.SRTP_TERMINATE),
        ).streams
        self.assertEqual([c.tag for c in stream.a.crypto], [5])
        self.release()

    def test_no_usable_crypto(self) -> None:
        """Without a usable a=crypto, an SRTP leg is refused (488); nothing stays bound."""
        for crypto in ([], [SdesCrypto(1, "AES_CM_128_HMAC_SHA1_80", "inline:AAAA|1:4")]):
            failure = self.failureResultOf(
                self.relay.allocate(
                    "c",
                    MediaOffer(
                        [StreamOffer(A_HOST, 4000, crypto=crypto)],
                        RelayPolicy(LegPolicy(MediaMode.SRTP_REKEY)),
                    ),
                ),
                MediaOfferError,
            )
            self.assertEqual(failure.value.status_hint, 488)
        self.assertEqual(self.relay.open_ports(), [])

    def test_answer_crypto_checked(self) -> None:
        """
        B's answer must carry one a=crypto with a tag and suite we offered
        and a usable key; otherwise the update fails and nothing changes.
        """
        self.allocate(b=LegPolicy(MediaMode.SRTP_TERMINATE))
        bad = [
            [],
            [a_crypto(self.b_key, tag=1)],  # tag 1 is the _80 suite
            [a_crypto(self.b_key, tag=9)],
            [SdesCrypto(2, "AES_CM_128_HMAC_SHA1_32", "inline:AAAA")],
            [a_crypto(self.b_key, tag=2), a_crypto(self.b_key, tag=2)],
        ]
        for crypto in bad:
            self.failureResultOf(
                self.relay.update("call-1", MediaOffer([StreamOffer(B_HOST, 5000, crypto=crypto)])),
                MediaOfferError,
            )
        self.assertEqual(self.stats().state, "offered")
        self.release()

    def test_reanswer_keeps_context(self) -> None:
        """A 183 then a 200 with the same key keeps B's replay state."""
        self.allocate(b=LegPolicy(MediaMode.SRTP_TERMINATE))
        answer = [StreamOffer(B_HOST, 5000, crypto=[a_crypto(self.b_key, tag=2)])]
        self.update(streams=answer)
        b = context_from(self.b_key, self.relay.session("call-1").streams[0].crypto[Party.B][1])
        packet = b.protect(rtp(1))
        self.send(self.b_rtp, packet, 20002)
        self.update(streams=answer)
        self.send(self.b_rtp, packet, 20002)
        self.assertEqual(self.a_rtp.packets, [rtp(1)])
        self.assertEqual(self.stats().b_to_a.drops, {"srtp-replay": 1})
        self.release()


class LimitTests(RelayTestCase):
    """Per-call rate and bandwidth limits, and the timers."""

    def setUp(self) -> None:
        super().setUp()
        self.a_rtp = self.endpoint(A_HOST, 4000)
        self.b_rtp = self.endpoint(B_HOST, 5000)

    def limited(self, **changes: Any) -> None:
        limits = MediaLimits(**{**_fields(LIMITS), **changes})
        self.allocate(limits=limits)
        self.update()

    def test_packet_rate(self) -> None:
        """Past the burst, packets over the call's rate are dropped (C{rate})."""
        self.limited(max_packet_rate=50, packet_burst=10)
        for sequence in range(15):
            self.send(self.a_rtp, rtp(sequence), 20000)
        self.assertEqual(len(self.b_rtp.packets), 10)
        self.reactor.advance(0.1)  # 5 more tokens
        for sequence in range(15, 25):
            self.send(self.a_rtp, rtp(sequence), 20000)
        self.assertEqual(len(self.b_rtp.packets), 15)
        self.assertEqual(self.stats().a_to_b.drops, {"rate": 10})
        self.release()

    def test_shared_by_directions(self) -> None:
        """The budget is per call: both directions draw on it."""
        self.limited(max_packet_rate=50, packet_burst=4)
        for sequence in range(3):
            self.send(self.a_rtp, rtp(sequence), 20000)
            self.send(self.b_rtp, rtp(sequence), 20002)
        stats = self.stats()
        self.assertEqual(stats.a_to_b.packets + stats.b_to_a.packets, 4)
        self.assertEqual(stats.a_to_b.dropped + stats.b_to_a.dropped, 2)
        self.release()

    def test_bandwidth(self) -> None:
        """Bytes over the call's bandwidth are dropped (C{bandwidth})."""
        self.limited(max_bandwidth=1720, bandwidth_burst=1720)
        for sequence in range(12):
            self.send(self.a_rtp, rtp(sequence), 20000)
        self.assertEqual(len(self.b_rtp.packets), 10)
        self.reactor.advance(0.5)
        self.send(self.a_rtp, rtp(12), 20000)
        self.assertEqual(len(self.b_rtp.packets), 11)
        self.assertEqual(self.stats().a_to_b.drops, {"bandwidth": 2})
        self.release()

    def test_idle_timeout(self) -> None:
        """
        Once answered, a session with no media for C{idle_timeout} ends
        (C{idle}): observers hear, ports close.
        """
        self.limited()
        self.reactor.advance(29)
        self.assertEqual(self.ended, [])
        self.reactor.advance(1)
        (end,) = self.ended
        self.assertEqual(
            (end.session_key, end.reason, end.stats.state), ("call-1", "idle", "ended")
        )
        self.assertEqual(self.relay.open_ports(), [])
        self.assertIsNone(self.release())

    def test_media_keeps_alive(self) -> None:
        """Media (RTCP alone too) resets the idle clock."""
        self.limited()
        for _ in range(10):
            self.reactor.advance(20)
            self.send(self.a_rtp, rtcp(), 20000)
        self.assertEqual(self.ended, [])
        self.reactor.advance(29)
        self.assertEqual(self.ended, [])
        self.reactor.advance(1)
        self.assertEqual([end.reason for end in self.ended], ["idle"])
        self.assertEqual(self.ended[0].stats.a_to_b.packets, 10)

    def test_dropped_packets_do_not_keep_alive(self) -> None:
        """Only forwarded packets count as activity: foreign ones do not."""
        stranger = self.endpoint(STRANGER, 4000)
        self.limited()
        for _ in range(4):
            self.reactor.advance(10)
            self.send(stranger, rtp(1), 20000)
        self.assertEqual([end.reason for end in self.ended], ["idle"])

    def test_setup_timeout(self) -> None:
        """A session never answered ends after C{setup_timeout}."""
        self.allocate()
        self.reactor.advance(119)
        self.assertEqual(self.ended, [])
        self.reactor.advance(1)
        self.assertEqual([end.reason for end in self.ended], ["setup-timeout"])

    def test_max_duration(self) -> None:
        """A session ends at C{max_duration}, media or not."""
        self.limited()
        for _ in range(359):
            self.reactor.advance(10)
            self.send(self.a_rtp, rtp(1), 20000)
        self.assertEqual(self.ended, [])
        self.reactor.advance(10)
        self.assertEqual([end.reason for end in self.ended], ["max-duration"])
        self.assertEqual(self.relay.open_ports(), [])

    def test_limits_off(self) -> None:
        """With the timers at zero nothing is scheduled; release still cleans up."""
        self.limited(idle_timeout=0, setup_timeout=0, max_duration=0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.release()

    def test_bad_limits(self) -> None:
        """Negative, infinite and inconsistent limits are refused."""
        self.assertRaises(ValueError, MediaLimits, idle_timeout=-1)
        self.assertRaises(ValueError, MediaLimits, max_packet_rate=float("inf"))
        self.assertRaises(TypeError, MediaLimits, max_duration="1h")
        self.assertRaises(ValueError, MediaLimits, packet_burst=0.5)
        self.assertRaises(ValueError, MediaLimits, bandwidth_burst=1000)


def _fields(limits: MediaLimits) -> dict[str, Any]:
    import attrs

    return attrs.asdict(limits)


class BudgetTests(SynchronousTestCase):
    """L{CallBudget}, alone."""

    def test_refill_and_cap(self) -> None:
        """Tokens come back at the rate, up to the burst."""
        budget = CallBudget(10, 2, 0, 0, now=0.0)
        self.assertEqual([budget.admit(100, 0.0) for _ in range(3)], [None, None, "rate"])
        self.assertIsNone(budget.admit(100, 0.1))
        self.assertEqual(budget.admit(100, 0.1), "rate")
        self.assertEqual([budget.admit(100, 100.0) for _ in range(3)], [None, None, "rate"])

    def test_unlimited(self) -> None:
        """Rates of zero admit everything, even with a clock that stands still."""
        budget = CallBudget(0, 0, 0, 0, now=5.0)
        self.assertEqual({budget.admit(10_000, 5.0) for _ in range(1000)}, {None})

    def test_bandwidth_spends_nothing_when_refused(self) -> None:
        """A packet refused for bandwidth spends no packet token."""
        budget = CallBudget(10, 1, 100, 150, now=0.0)
        self.assertEqual(budget.admit(200, 0.0), "bandwidth")
        self.assertIsNone(budget.admit(150, 0.0))


class SessionLifecycleTests(RelayTestCase):
    """Allocation errors, release, statistics, shutdown."""

    def setUp(self) -> None:
        super().setUp()
        self.a_rtp = self.endpoint(A_HOST, 4000)
        self.b_rtp = self.endpoint(B_HOST, 5000)

    def test_release_closes_ports(self) -> None:
        """
        After release the ports are closed (late packets reach nothing),
        the final statistics come back, and a second release gives C{None}.
        """
        self.allocate()
        self.update()
        self.send(self.a_rtp, rtp(1), 20000)
        final = self.release()
        self.assertEqual((final.state, final.a_to_b.packets), ("ended", 1))
        self.assertEqual(self.relay.open_ports(), [])
        self.send(self.a_rtp, rtp(2), 20000)
        self.assertEqual(self.network.undeliverable[-1].destination, (RELAY, 20000))
        self.assertIsNone(self.release())
        self.assertEqual([end.reason for end in self.ended], ["released"])

    def test_offer_errors(self) -> None:
        """Offers the relay cannot serve fail with 488 and leave nothing bound."""
        bad = [
            MediaOffer([StreamOffer("a.example.com", 4000)]),
            MediaOffer([StreamOffer("2001:db8::a", 4000)]),
            MediaOffer([StreamOffer(A_HOST, 4000), StreamOffer("999.1.1.1", 4002)]),
            MediaOffer(
                [StreamOffer(A_HOST, 4000)],
                RelayPolicy(LegPolicy(MediaMode.PASSTHROUGH), LegPolicy(MediaMode.PLAIN)),
            ),
            MediaOffer(
                [StreamOffer(A_HOST, 4000)],
                RelayPolicy(LegPolicy(MediaMode.SRTP_TERMINATE), LegPolicy(MediaMode.SRTP_REKEY)),
            ),
            MediaOffer([StreamOffer(A_HOST, 4000)], RelayPolicy(LegPolicy(interface="dmz"))),
        ]
        for offer in bad:
            failure = self.failureResultOf(self.relay.allocate("c", offer), MediaOfferError)
            self.assertEqual(failure.value.status_hint, 488)
            self.assertEqual(self.relay.open_ports(), [])
        self.assertRaises(ValueError, StreamOffer, A_HOST, 70000)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_exhausted(self) -> None:
        """When ports run out the allocation fails (503) and frees what it took."""
        for n in range(5):
            self.allocate(f"call-{n}")
        self.assertEqual(len(self.relay.open_ports()), 20)
        self.release("call-4")
        failure = self.failureResultOf(
            self.relay.allocate(
                "big", MediaOffer([StreamOffer(A_HOST, 4000), StreamOffer(A_HOST, 4002)])
            ),
            PortsExhausted,
        )
        self.assertIsInstance(failure.value, MediaError)
        self.assertEqual(len(self.relay.open_ports()), 16)
        for n in range(4):
            self.release(f"call-{n}")

    def test_duplicate_and_unknown(self) -> None:
        """A live key cannot be allocated twice; unknown keys cannot be updated."""
        self.allocate()
        self.failureResultOf(
            self.relay.allocate("call-1", MediaOffer([StreamOffer(A_HOST, 4000)])), SessionExists
        )
        failure = self.failureResultOf(
            self.relay.update("nope", MediaOffer([StreamOffer(B_HOST, 5000)])), UnknownSession
        )
        self.assertEqual(str(failure.value), "no media session 'nope'")
        self.assertRaises(UnknownSession, self.relay.session, "nope")
        self.release()

    def test_answer_must_fit(self) -> None:
        """An answer with another number of streams, or with a policy, fails."""
        self.allocate()
        self.failureResultOf(
            self.relay.update("call-1", MediaOffer([StreamOffer(B_HOST, 5000)] * 2)),
            MediaOfferError,
        )
        self.failureResultOf(
            self.relay.update("call-1", MediaOffer([StreamOffer(B_HOST, 5000)], RelayPolicy())),
            MediaOfferError,
        )
        self.failureResultOf(
            self.relay.update("call-1", MediaOffer([StreamOffer("b.example", 5000)])),
            MediaOfferError,
        )
        self.assertEqual(self.stats().state, "offered")
        self.release()

    def test_stats(self) -> None:
        """Relay totals add live and ended sessions; sessions() lists the live ones."""
        stranger = self.endpoint(STRANGER, 1)
        self.allocate("one")
        self.update("one")
        self.send(self.a_rtp, rtp(1), 20000)
        self.send(stranger, rtp(1), 20002)
        self.release("one")
        self.allocate("two")
        self.update("two")
        self.send(self.b_rtp, rtp(2), 20006)
        live = self.successResultOf(self.relay.sessions())
        self.assertEqual(set(live), {"two"})
        stats = self.successResultOf(self.relay.stats())
        self.assertEqual((stats.sessions, stats.allocated, stats.open_ports), (1, 2, 4))
        self.assertEqual(stats.ended, {"released": 1})
        self.assertEqual((stats.a_to_b.packets, stats.b_to_a.packets), (1, 1))
        self.assertEqual(stats.b_to_a.drops, {"foreign-source": 1})
        self.assertTrue(set(stats.b_to_a.drops) <= set(DROP_REASONS))
        session = self.stats("two")
        self.assertEqual(session.ports, (20004, 20005, 20006, 20007))
        self.assertEqual((session.created, session.answered), (0.0, 0.0))
        self.release("two")

    def test_close(self) -> None:
        """L{MediaRelay.close} ends every session (C{closed}) and frees every port."""
        self.allocate("one")
        self.allocate("two")
        self.update("two")
        self.successResultOf(self.relay.close())
        self.assertEqual(sorted(end.session_key for end in self.ended), ["one", "two"])
        self.assertEqual({end.reason for end in self.ended}, {"closed"})
        self.assertEqual(self.successResultOf(self.relay.stats()).ended, {"closed": 2})

    def test_suites_checked(self) -> None:
        """A relay refuses suites this libsrtp lacks, and needs an allocator."""
        from sipedge.media import CryptoSuite

        fake = CryptoSuite("NULL_HMAC_SHA1_80", 99, 16, 14, 10, 14)
        self.assertRaises(ValueError, MediaRelay, self.reactor, self.ports, suites=[fake])
        self.assertRaises(ValueError, MediaRelay, self.reactor, {})


class SansIOTests(SynchronousTestCase):
    """The media package's sans-IO parts import no Twisted (ARCHITECTURE rule 1)."""

    def test_no_twisted(self) -> None:
        """Importing C{sipedge.media} and its RTP, SRTP and value modules loads no twisted."""
        code = (
            "import sys\n"
            "import sipedge.media, sipedge.media._rtp, sipedge.media._srtp\n"
            "import sipedge.media._values, sipedge.media._budget, sipedge.media._sdes\n"
            "sipedge.media.RtpHeader, sipedge.media.SrtpContext\n"
            "bad = sorted(n for n in sys.modules if n == 'twisted' or n.startswith('twisted.'))\n"
            "print(','.join(bad))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        self.assertEqual(out.stdout.strip(), "")

    def test_lazy_names(self) -> None:
        """The relay's names load on first use; unknown names raise AttributeError."""
        import sipedge.media as media

        self.assertIs(media.MediaRelay, MediaRelay)
        self.assertIn("MediaRelay", dir(media))
        with self.assertRaises(AttributeError):
            media.NoSuchThing  # noqa: B018


class RealSocketTests(SynchronousTestCase):
    """
    Two legs on real UDP sockets on 127.0.0.1 (port 0): the only test
    that needs the kernel, for the send path that bypasses Twisted's
    per-packet address check (C{getHandle().sendto}).
    """

    def test_forwards_over_loopback(self) -> None:
        """A packet from A's socket comes out of B's leg to B's socket, and back."""
        import select
        import socket

        from twisted.internet import udp
        from twisted.internet.testing import MemoryReactorClock

        from sipedge.media import RelayLeg

        reactor = MemoryReactorClock()
        legs = [RelayLeg(name, reactor) for name in ("a", "b")]
        ports = []
        for leg in legs:
            port = udp.Port(0, leg, "127.0.0.1", reactor=reactor)
            port.startListening()
            ports.append(port)

            def close(port: Any = port) -> None:
                port.stopListening()
                reactor.advance(0)

            self.addCleanup(close)
        parties = []
        for _ in legs:
            party = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            party.bind(("127.0.0.1", 0))
            party.settimeout(5)
            self.addCleanup(party.close)
            parties.append(party)
        a_leg, b_leg = legs
        a_leg.expect(parties[0].getsockname())
        b_leg.expect(parties[1].getsockname())
        a_leg.connect(b_leg, b_leg)
        b_leg.connect(a_leg, a_leg)

        def relay(source: socket.socket, port: Any, data: bytes) -> None:
            source.sendto(data, ("127.0.0.1", port.getHost().port))
            readable, _, _ = select.select([port.socket], [], [], 5)
            self.assertTrue(readable, "nothing arrived on the relay socket")
            port.doRead()

        relay(parties[0], ports[0], rtp(1))
        self.assertEqual(parties[1].recvfrom(2048), (rtp(1), ("127.0.0.1", b_leg.port)))
        relay(parties[1], ports[1], rtp(2))
        self.assertEqual(parties[0].recvfrom(2048), (rtp(2), ("127.0.0.1", a_leg.port)))
        self.assertEqual((a_leg.packets, b_leg.packets, a_leg.drops), (1, 1, {}))

    def test_closed_leg_drops(self) -> None:
        """Once its port is closed, a leg's sends are counted as send errors."""
        network_reactor = FakeReactor()
        ports = PortAllocator(network_reactor, LOW, HIGH, RELAY)
        relay = MediaRelay(network_reactor, ports, limits=LIMITS)
        party = Endpoint()
        party.socket = network_reactor.network.bind(A_HOST, 4000, party)
        relay.allocate_now("x", MediaOffer([StreamOffer(A_HOST, 4000)]))
        relay.update_now("x", MediaOffer([StreamOffer(B_HOST, 5000)]))
        stream = relay.session("x").streams[0]
        assert stream.a is not None and stream.b is not None
        b_rtp = stream.b.rtp
        b_rtp.transport.stopListening()
        party.socket.write(rtp(1), (RELAY, 20000))
        network_reactor.network.flush()
        self.assertEqual(relay.session("x").stats().a_to_b.drops, {"send-error": 1})
        relay.release_now("x")
        self.assertEqual(relay.open_ports(), [])
        self.assertEqual(network_reactor.getDelayedCalls(), [])
