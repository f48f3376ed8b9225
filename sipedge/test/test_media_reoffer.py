# -*- test-case-name: sipedge.test.test_media_reoffer -*-
"""
Tests for re-offers in a live relay session (L{IMediaRelay.reoffer} and
L{IMediaRelay.withdraw}): in the in-process L{MediaRelay}, and through the
control protocol to one (in memory). Media keeps flowing across each
exchange and the ports stay, unless the set of streams changes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from sipedge.media import (
    AES_CM_128_HMAC_SHA1_80,
    METHODS,
    LegPolicy,
    MediaMode,
    MediaOffer,
    MediaOfferError,
    Party,
    PortsExhausted,
    RelayAllocation,
    RelayPolicy,
    ReofferUnsupported,
    SrtpKey,
    StreamOffer,
    UnknownSession,
    encode_value,
)
from sipedge.testing import (
    A_HOST,
    B_HOST,
    RelayTestCase,
    RemoteRelayTestCase,
    a_crypto,
    context_from,
    counting_random,
)
from sipedge.testing import RELAY_HOST as RELAY
from sipedge.testing import MediaEndpoint as Endpoint
from sipedge.testing import rtp_packet as rtp


class _Reoffers(RelayTestCase):
    """A answered call between A (4000) and B (5000): A on 20000, B on 20002."""

    def setUp(self) -> None:
        super().setUp()
        self.a_rtp = self.endpoint(A_HOST, 4000)
        self.b_rtp = self.endpoint(B_HOST, 5000)

    def reoffer(
        self, streams: Any, offerer: Party = Party.A, key: str = "call-1", **kw: Any
    ) -> RelayAllocation:
        return self.successResultOf(
            self.relay.reoffer(key, MediaOffer(streams, **kw), offerer)
        )

    def both_ways(
        self, sequence: int, a: Endpoint | None = None, b: Endpoint | None = None
    ) -> None:
        """A packet each way arrives, from A's C{a} and B's C{b} sockets."""
        a = a or self.a_rtp
        b = b or self.b_rtp
        a_before, b_before = len(a.packets), len(b.packets)
        self.send(a, rtp(sequence), 20000)
        self.send(b, rtp(sequence, ssrc=0xB0B), 20002)
        self.assertEqual(b.packets[b_before:], [rtp(sequence)])
        self.assertEqual(a.packets[a_before:], [rtp(sequence, ssrc=0xB0B)])

    def held(self) -> tuple[int, ...]:
        return self.relay.session("call-1").ports()


class ReofferTests(_Reoffers):
    """Re-offers from either party in plain sessions."""

    def test_same_offer_keeps_everything(self) -> None:
        """
        A re-offer that changes nothing (a session refresh, a codec
        change the relay does not see) keeps the ports, and media flows
        before, during and after the exchange.
        """
        first = self.allocate()
        self.update()
        ports = self.held()
        self.both_ways(1)
        again = self.reoffer([StreamOffer(A_HOST, 4000)])
        self.assertFalse(again.answered)
        self.assertEqual(again.streams, first.streams)
        self.both_ways(2)
        answered = self.update()
        self.assertTrue(answered.answered)
        self.assertEqual(self.held(), ports)
        self.both_ways(3)
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.release()

    def test_hold_and_resume_old_style(self) -> None:
        """
        Hold with c=0.0.0.0 (RFC 2543): nothing is sent to A once answered,
        what A still sends (music on hold) goes on to B; resume restores
        both ways. The ports never change.
        """
        self.allocate()
        self.update()
        ports = self.held()
        self.reoffer([StreamOffer("0.0.0.0", 4000)])
        self.both_ways(1)
        self.update()
        self.send(self.a_rtp, rtp(2), 20000)
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.assertEqual(self.b_rtp.packets[-1], rtp(2))
        self.assertEqual(len(self.a_rtp.packets), 1)
        self.assertEqual(self.stats().b_to_a.drops, {"no-destination": 1})
        self.reoffer([StreamOffer(A_HOST, 4000)])
        self.update()
        self.both_ways(3)
        self.assertEqual(self.held(), ports)
        self.release()

    def test_hold_by_b(self) -> None:
        """
        B re-offers (sendonly, same address): the answer is then A's, and
        each party stays on its side and its ports.
        """
        self.allocate()
        self.update()
        ports = self.held()
        allocation = self.reoffer([StreamOffer(B_HOST, 5000)], Party.B)
        (stream,) = allocation.streams
        self.assertEqual((stream.a.port, stream.b.port), (20000, 20002))
        self.both_ways(1)
        self.update(streams=[StreamOffer(A_HOST, 4000)])
        self.both_ways(2)
        self.assertEqual(self.held(), ports)
        session = self.relay.session("call-1")
        self.assertEqual(session.offerer, Party.B)
        self.assertEqual(session.streams[0].answer, StreamOffer(A_HOST, 4000))
        self.release()

    def test_party_moves(self) -> None:
        """
        A re-offers from a new port: the relay sends there from the
        answer on, and takes A's media from the old port until A sends
        from the new one (RFC 3264 8), then only from the new one.
        """
        moved = self.endpoint(A_HOST, 4100)
        self.allocate()
        self.update()
        self.reoffer([StreamOffer(A_HOST, 4100)])
        self.both_ways(1)
        self.update()
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.assertEqual(moved.packets, [rtp(2, ssrc=0xB0B)])
        self.send(self.a_rtp, rtp(3), 20000)
        self.send(moved, rtp(4), 20000)
        self.send(self.a_rtp, rtp(5), 20000)
        self.assertEqual(self.b_rtp.packets[-2:], [rtp(3), rtp(4)])
        self.assertEqual(self.stats().a_to_b.drops, {"foreign-source": 1})
        self.release()

    def test_answerer_moves(self) -> None:
        """The answerer's new address in the answer takes over the same way."""
        moved = self.endpoint(B_HOST, 5100)
        self.allocate()
        self.update()
        self.reoffer([StreamOffer(A_HOST, 4000)])
        self.update(streams=[StreamOffer(B_HOST, 5100)])
        self.send(self.b_rtp, rtp(1, ssrc=0xB0B), 20002)
        self.send(self.a_rtp, rtp(2), 20000)
        self.assertEqual(self.a_rtp.packets, [rtp(1, ssrc=0xB0B)])
        self.assertEqual(moved.packets, [rtp(2)])
        self.release()

    def test_stream_added_and_removed(self) -> None:
        """
        Adding video binds ports for it only; disabling it (port 0)
        releases them with the answer, and the audio's stay throughout.
        """
        video_a = self.endpoint(A_HOST, 4002)
        self.allocate()
        self.update()
        audio = self.held()
        added = self.reoffer([StreamOffer(A_HOST, 4000), StreamOffer(A_HOST, 4002, media="video")])
        self.assertEqual([s.a.port for s in added.streams], [20000, 20004])
        self.assertEqual(added.streams[1].b.port, 20006)
        self.update(streams=[StreamOffer(B_HOST, 5000), StreamOffer(B_HOST, 5002)])
        self.assertEqual(self.held(), (*audio, 20004, 20005, 20006, 20007))
        self.send(video_a, rtp(1), 20004)
        self.assertEqual(self.stats().a_to_b.packets, 1)
        dropped = self.reoffer(
            [StreamOffer(B_HOST, 5000), StreamOffer(B_HOST, 0, media="video")], Party.B
        )
        self.assertEqual(dropped.streams[1].a.port, 0)
        self.assertEqual(len(self.held()), 8)  # until the answer
        self.update(streams=[StreamOffer(A_HOST, 4000), StreamOffer(A_HOST, 0)])
        self.assertEqual(self.held(), audio)
        self.both_ways(2)
        self.release()

    def test_withdraw(self) -> None:
        """
        A refused re-offer (491, 488) is withdrawn: the ports it bound are
        released and the session goes on as it was, answered by B.
        """
        self.allocate()
        self.update()
        audio = self.held()
        self.reoffer(
            [StreamOffer(A_HOST, 4100), StreamOffer(A_HOST, 4002, media="video")], Party.B
        )
        self.assertEqual(len(self.held()), 8)
        after = self.successResultOf(self.relay.withdraw("call-1"))
        self.assertEqual(len(after.streams), 1)
        self.assertTrue(after.answered)
        self.assertEqual(self.held(), audio)
        self.both_ways(1)
        self.assertEqual(self.relay.session("call-1").offerer, Party.A)
        self.successResultOf(self.relay.withdraw("call-1"))  # nothing pending: harmless
        self.release()

    def test_reoffer_replaces_pending(self) -> None:
        """A second re-offer before the answer replaces the first (its ports released)."""
        self.allocate()
        self.update()
        self.reoffer([StreamOffer(A_HOST, 4000), StreamOffer(A_HOST, 4002)])
        self.reoffer([StreamOffer(A_HOST, 4000)])
        self.assertEqual(self.held(), (20000, 20001, 20002, 20003))
        self.update()
        self.release()

    def test_release_while_pending(self) -> None:
        """Ending the session with a re-offer pending closes its ports too (the leak check)."""
        self.allocate()
        self.update()
        self.reoffer([StreamOffer(A_HOST, 4000), StreamOffer(A_HOST, 4002)])
        stats = self.release()
        self.assertEqual(stats.ports, ())

    def test_refusals_change_nothing(self) -> None:
        """
        Re-offers that cannot be served in place fail and leave the session
        as it was: before the first answer, fewer m= lines, another policy,
        a bad address, an unknown session.
        """
        self.allocate()
        early = self.relay.reoffer("call-1", MediaOffer([StreamOffer(A_HOST, 4000)]), Party.A)
        self.assertIn("not been answered", str(self.failureResultOf(early, MediaOfferError).value))
        self.update()
        cases: list[tuple[MediaOffer, str]] = [
            (MediaOffer([]), "never removed"),
            (
                MediaOffer(
                    [StreamOffer(A_HOST, 4000)],
                    RelayPolicy(LegPolicy(MediaMode.SRTP_TERMINATE)),
                ),
                "policy",
            ),
            (MediaOffer([StreamOffer("a.example", 4000)]), "not an IP address"),
            (MediaOffer([StreamOffer(A_HOST, 4000)], source="nowhere"), "signalling source"),
        ]
        for offer, text in cases:
            failure = self.failureResultOf(
                self.relay.reoffer("call-1", offer, Party.A), MediaOfferError
            )
            self.assertIn(text, str(failure.value))
        self.assertFalse(self.relay.session("call-1").reoffered)
        self.both_ways(1)
        self.failureResultOf(
            self.relay.reoffer("nope", MediaOffer([StreamOffer(A_HOST, 4000)]), Party.A),
            UnknownSession,
        )
        self.failureResultOf(self.relay.withdraw("nope"), UnknownSession)
        same = MediaOffer([StreamOffer(A_HOST, 4000)], RelayPolicy(LegPolicy()))
        self.successResultOf(self.relay.reoffer("call-1", same, Party.A))
        self.release()

    def test_ports_exhausted(self) -> None:
        """An added stream without ports fails with 503; nothing else changes."""
        self.allocate()
        self.update()
        streams = [StreamOffer(A_HOST, 4000 + 2 * i) for i in range(6)]
        self.failureResultOf(
            self.relay.reoffer("call-1", MediaOffer(streams), Party.A), PortsExhausted
        )
        self.assertEqual(self.held(), (20000, 20001, 20002, 20003))
        self.both_ways(1)
        self.release()

    def test_bad_answer_keeps_pending(self) -> None:
        """An answer that does not fit the re-offer fails; the re-offer stays pending."""
        self.allocate()
        self.update()
        self.reoffer([StreamOffer(A_HOST, 4000), StreamOffer(A_HOST, 4002)])
        self.failureResultOf(
            self.relay.update("call-1", MediaOffer([StreamOffer(B_HOST, 5000)])), MediaOfferError
        )
        self.assertTrue(self.relay.session("call-1").reoffered)
        self.update(streams=[StreamOffer(B_HOST, 5000), StreamOffer(B_HOST, 0)])
        self.release()

    def test_rtcp_mux_needs_new_ports(self) -> None:
        """
        A party that multiplexed RTCP and re-offers without it needs an
        RTCP port: that side is bound again, the other keeps its ports.
        """
        self.allocate(streams=[StreamOffer(A_HOST, 4000, rtcp_mux=True)])
        self.update()
        self.assertEqual(self.held(), (20000, 20002, 20003))
        allocation = self.reoffer([StreamOffer(A_HOST, 4000)])
        (stream,) = allocation.streams
        self.assertEqual((stream.a.port, stream.a.rtcp_port, stream.b.port), (20004, 20005, 20002))
        self.update()
        self.assertEqual(self.held(), (20002, 20003, 20004, 20005))
        self.release()


class SrtpReofferTests(_Reoffers):
    """Keys across re-offers: kept when unchanged, replaced at the answer when not."""

    def setUp(self) -> None:
        super().setUp()
        self.a_key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(100))

    def offer(self, key: SrtpKey | None = None) -> list[StreamOffer]:
        return [StreamOffer(A_HOST, 4000, crypto=[a_crypto(key or self.a_key)])]

    def test_same_key_keeps_context(self) -> None:
        """
        A hold re-offer with the same key: the relay answers with the same
        key of its own and keeps the SRTP context (a replayed packet is
        still a replay), so nothing is re-keyed mid-call.
        """
        (stream,) = self.allocate(
            streams=self.offer(), a=LegPolicy(MediaMode.SRTP_TERMINATE)
        ).streams
        self.update()
        a = context_from(self.a_key, stream.a.crypto[0])
        packet = a.protect(rtp(1))
        self.send(self.a_rtp, packet, 20000)
        (again,) = self.reoffer(self.offer()).streams
        self.update()
        self.assertEqual(again.a.crypto, stream.a.crypto)
        self.send(self.a_rtp, packet, 20000)
        self.send(self.a_rtp, a.protect(rtp(2)), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(1), rtp(2)])
        self.assertEqual(self.stats().a_to_b.drops, {"srtp-replay": 1})
        self.release()

    def test_new_key_at_the_answer(self) -> None:
        """
        A re-offer with a new key: until the answer the old keys work both
        ways (no gap), from the answer the new ones.
        """
        (stream,) = self.allocate(
            streams=self.offer(), a=LegPolicy(MediaMode.SRTP_TERMINATE)
        ).streams
        self.update()
        old = context_from(self.a_key, stream.a.crypto[0])
        new_key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(150))
        (again,) = self.reoffer(self.offer(new_key)).streams
        self.assertNotEqual(again.a.crypto, stream.a.crypto)
        self.send(self.a_rtp, old.protect(rtp(1)), 20000)
        self.send(self.b_rtp, rtp(1, ssrc=0xB0B), 20002)
        self.assertEqual(old.unprotect(self.a_rtp.packets[-1]), rtp(1, ssrc=0xB0B))
        self.update()
        new = context_from(new_key, again.a.crypto[0])
        self.send(self.a_rtp, new.protect(rtp(2)), 20000)
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.assertEqual(self.b_rtp.packets, [rtp(1), rtp(2)])
        self.assertEqual(new.unprotect(self.a_rtp.packets[-1]), rtp(2, ssrc=0xB0B))
        self.release()

    def test_reoffer_by_plain_party(self) -> None:
        """
        In terminate mode B (plain) re-offers: the relay offers A the key
        it already uses, A answers with its own, and the context stays.
        """
        (stream,) = self.allocate(
            streams=self.offer(), a=LegPolicy(MediaMode.SRTP_TERMINATE)
        ).streams
        self.update()
        a = context_from(self.a_key, stream.a.crypto[0])
        packet = a.protect(rtp(1))
        self.send(self.a_rtp, packet, 20000)
        (again,) = self.reoffer([StreamOffer(B_HOST, 5000)], Party.B).streams
        offered = {c.tag: c for c in again.a.crypto}
        tag = next(t for t, c in offered.items() if c.suite == self.a_key.suite.name)
        self.assertEqual(offered[tag].key_params, stream.a.crypto[0].key_params)
        self.update(streams=[StreamOffer(A_HOST, 4000, crypto=[a_crypto(self.a_key, tag)])])
        self.send(self.a_rtp, packet, 20000)
        self.assertEqual(self.stats().a_to_b.drops, {"srtp-replay": 1})
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.assertEqual(a.unprotect(self.a_rtp.packets[-1]), rtp(2, ssrc=0xB0B))
        self.release()


class RemoteReofferTests(RemoteRelayTestCase):
    """C{reoffer} and C{withdraw} through the control protocol (version 2)."""

    def test_reoffer_keeps_ports(self) -> None:
        """A re-offer by B and its answer through the protocol keep the relay's ports."""
        offer = MediaOffer([StreamOffer(A_HOST, 4000)], RelayPolicy())
        first = self.wait(self.remote.allocate("call-1", offer))
        self.wait(self.remote.update("call-1", MediaOffer([StreamOffer(B_HOST, 5000)])))
        again = self.wait(
            self.remote.reoffer("call-1", MediaOffer([StreamOffer(B_HOST, 5002)]), Party.B)
        )
        self.assertEqual(again.streams, first.streams)
        answered = self.wait(
            self.remote.update("call-1", MediaOffer([StreamOffer(A_HOST, 4000)]))
        )
        self.assertEqual(answered.streams, first.streams)
        session = self.relay.session("call-1")
        self.assertEqual(session.streams[0].b.rtp.remote, (B_HOST, 5002))
        withdrawn = self.wait(self.remote.withdraw("call-1"))
        self.assertEqual(withdrawn.streams, first.streams)
        self.assertEqual(self.relay.stats_now().allocated, 1)
        self.wait(self.remote.release("call-1"))

    def test_errors_come_back(self) -> None:
        """A refused re-offer fails remotely with the relay's class."""
        failure = self.failure(
            self.remote.reoffer("nope", MediaOffer([StreamOffer(A_HOST, 4000)]), Party.A),
            UnknownSession,
        )
        self.assertIn("nope", str(failure))

    def test_version_1_relay(self) -> None:
        """
        Against a relay that speaks only version 1, C{reoffer} and
        C{withdraw} fail at once with L{ReofferUnsupported} (the caller
        allocates a new session instead), and a C{source} is not sent.
        """
        (protocol,) = [c for c in self.factory.connections]
        client = self.remote._protocol
        client._version = 1
        protocol.version = 1
        d: Deferred[Any] = self.remote.reoffer(
            "k", MediaOffer([StreamOffer(A_HOST, 4000)]), Party.A
        )
        self.failureResultOf(d, ReofferUnsupported)
        self.failureResultOf(self.remote.withdraw("k"), ReofferUnsupported)
        offer = MediaOffer([StreamOffer(A_HOST, 4000)], RelayPolicy(), source=A_HOST)
        self.assertEqual(self.remote._for_version(offer).source, None)
        self.wait(self.remote.allocate("call-1", offer))
        self.wait(self.remote.release("call-1"))

    def test_version_1_connection_refuses_reoffer(self) -> None:
        """A relay refuses C{reoffer} on a connection that agreed on version 1."""
        (protocol,) = [c for c in self.factory.connections]
        protocol.version = 1
        client = self.remote._protocol
        d = client.call("reoffer", "k", MediaOffer([StreamOffer(A_HOST, 4000)]), Party.A)
        error = self.failure(d, Exception)
        self.assertEqual(error.code, "unknown-method")
        self.assertIn("needs protocol version 2", str(error))

    def test_source_left_out_by_default(self) -> None:
        """An offer without C{source} encodes as version 1 did (no such member)."""
        self.assertNotIn("source", encode_value(MediaOffer([StreamOffer(A_HOST, 4000)])))
        self.assertEqual(
            encode_value(MediaOffer([], source="192.0.2.1"))["source"], "192.0.2.1"
        )
        self.assertEqual(METHODS["reoffer"].since, 2)


__all__ = ["RELAY"]
