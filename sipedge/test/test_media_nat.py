# -*- test-case-name: sipedge.test.test_media_nat -*-
"""
Media behind NAT: when the proxy's NAT detection latches a party's media
(L{sipedge.media.nat_source}), and the
relay's latching on a party's signalling source address
(L{sipedge.media.MediaOffer.source}): the port is learned once, from the
party's first packets (on an SRTP leg only from one that authenticates),
never from another IP, and media goes back where it came from.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import Flow
from sipedge.media import (
    AES_CM_128_HMAC_SHA1_80,
    LegPolicy,
    MediaMode,
    MediaOffer,
    RelayLeg,
    SrtpContext,
    SrtpKey,
    StreamOffer,
    nat_source,
)
from sipedge.message import NatVerdict
from sipedge.testing import (
    A_HOST,
    A_TAG,
    B_HOST,
    B_TAG,
    CALL_ID,
    MEDIA_LIMITS,
    AnchorTestCase,
    FakeReactor,
    RelayTestCase,
    a_crypto,
    context_from,
    counting_random,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_PROXY as PROXY
from sipedge.testing import ANCHOR_RELAY as RELAY
from sipedge.testing import anchor_request as request
from sipedge.testing import anchor_response as response
from sipedge.testing import rtp_packet as rtp

#: A phone behind a home router: its SDP says 192.168.1.20:4000, its
#: signalling (and media) come from the router's public address.
PRIVATE = "192.168.1.20"
PUBLIC = "203.0.113.77"
OTHER_PUBLIC = "198.51.100.99"


def verdict(source: str, behind: bool = True) -> NatVerdict:
    """What the proxy's detection says of a message from C{source}."""
    reasons = ("via-address", "sdp-private") if behind else ()
    return NatVerdict(reasons, Flow("UDP", PROXY, 5060, source, 5060))


class NatSourceTests(SynchronousTestCase):
    """
    L{nat_source}: the proxy's verdict decides, the SDP's address tells
    whether the media can only come from the signalling's source.
    """

    def test_cases(self) -> None:
        """Each rule, with its reason."""
        cases = [
            ("192.168.1.20", "203.0.113.77", True),  # home router
            ("10.1.2.3", "198.51.100.5", True),
            ("100.64.0.9", "198.51.100.5", True),  # carrier-grade NAT (RFC 6598)
            ("fd00::20", "2001:db8::7", True),
            ("203.0.113.77", "203.0.113.77", True),  # its public address: the port may differ
            ("192.0.2.10", "203.0.113.77", False),  # another public address: trust it
            ("10.0.0.5", "10.0.0.2", False),  # both private: an internal PBX
            ("10.0.0.5", "127.0.0.1", False),  # loopback source
            (None, "203.0.113.77", False),  # no connection address
            ("0.0.0.0", "203.0.113.77", False),  # hold
            ("192.168.1.20", "not an address", False),
            ("::ffff:192.168.1.20", "203.0.113.77", True),
        ]
        for sdp_host, source, expected in cases:
            self.assertEqual(
                nat_source(verdict(source), sdp_host), source if expected else None,
                (sdp_host, source),
            )

    def test_not_behind_nat(self) -> None:
        """
        Where the proxy's detection finds no NAT (a message through another
        proxy, a phone at its own address), the SDP's address is kept, even
        a private one.
        """
        self.assertIsNone(nat_source(verdict(PUBLIC, behind=False), PRIVATE))
        self.assertIsNone(nat_source(None, PRIVATE))

    @given(
        st.sampled_from([PRIVATE, PUBLIC, OTHER_PUBLIC, "10.0.0.1", "127.0.0.1", "::1", "x"]),
        st.sampled_from([PRIVATE, PUBLIC, OTHER_PUBLIC, "10.0.0.1", "0.0.0.0", None]),
        st.booleans(),
    )
    def test_only_the_source(self, source: str, sdp_host: str | None, behind: bool) -> None:
        """The answer is the verdict's source or nothing, and nothing without NAT."""
        found = nat_source(verdict(source, behind), sdp_host)
        self.assertIn(found, (None, source) if behind else (None,))


class SourceLatchingTests(RelayTestCase):
    """A party behind NAT, given by the signalling source address."""

    def setUp(self) -> None:
        super().setUp()
        self.b_rtp = self.endpoint(B_HOST, 5000)
        # What the router maps the phone's port 4000 to.
        self.phone = self.endpoint(PUBLIC, 41000)
        self.phone_rtcp = self.endpoint(PUBLIC, 41001)

    def allocate_natted(self, **policy: Any) -> None:
        offer = MediaOffer([StreamOffer(PRIVATE, 4000)], source=PUBLIC)
        self.successResultOf(self.relay.allocate("call-1", offer))
        self.update()

    def test_latches_on_source(self) -> None:
        """
        Nothing goes to the party until it sends; its first packet, from
        the public address on any port, fixes where it is, and media goes
        back there (symmetric RTP); RTCP latches on its own port.
        """
        self.allocate_natted()
        self.send(self.b_rtp, rtp(1, ssrc=0xB0B), 20002)
        self.assertEqual(self.stats().b_to_a.drops, {"no-destination": 1})
        self.send(self.phone, rtp(2), 20000)
        self.send(self.b_rtp, rtp(3, ssrc=0xB0B), 20002)
        self.assertEqual(self.b_rtp.packets, [rtp(2)])
        self.assertEqual(self.phone.packets, [rtp(3, ssrc=0xB0B)])
        session: Any = self.relay.session("call-1")
        self.assertEqual(session.streams[0].a.rtp.remote, (PUBLIC, 41000))
        self.release()

    def test_once(self) -> None:
        """After the first packet the port is fixed: another port of that IP is foreign."""
        other_port = self.endpoint(PUBLIC, 41002)
        self.allocate_natted()
        self.send(self.phone, rtp(1), 20000)
        self.send(other_port, rtp(2), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(1)])
        self.assertEqual(self.stats().a_to_b.drops, {"foreign-source": 1})
        self.release()

    def test_not_the_sdp_address(self) -> None:
        """The private address of the SDP, or any other IP, never latches."""
        stranger = self.endpoint(OTHER_PUBLIC, 41000)
        self.allocate_natted()
        self.send(stranger, rtp(1), 20000)
        self.assertEqual(self.b_rtp.packets, [])
        self.assertEqual(self.stats().a_to_b.drops, {"foreign-source": 1})
        self.release()

    def test_strict_without_source(self) -> None:
        """Without a source (C{nat = "off"}, or no NAT detected) only the SDP address counts."""
        public_sdp = self.endpoint(OTHER_PUBLIC, 4000)
        self.successResultOf(
            self.relay.allocate("call-1", MediaOffer([StreamOffer(OTHER_PUBLIC, 4000)]))
        )
        self.update()
        self.send(self.phone, rtp(1), 20000)
        self.send(public_sdp, rtp(2), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(2)])
        self.release()

    def test_answerer_behind_nat(self) -> None:
        """The answer's source works the same way for party B."""
        a_rtp = self.endpoint("192.0.2.10", 4000)
        self.successResultOf(
            self.relay.allocate("call-1", MediaOffer([StreamOffer("192.0.2.10", 4000)]))
        )
        self.successResultOf(
            self.relay.update("call-1", MediaOffer([StreamOffer(PRIVATE, 5000)], source=PUBLIC))
        )
        self.send(self.phone, rtp(1), 20002)
        self.send(a_rtp, rtp(2), 20000)
        self.assertEqual(a_rtp.packets, [rtp(1)])
        self.assertEqual(self.phone.packets, [rtp(2)])
        self.release()

    def test_reoffer_keeps_latched_port(self) -> None:
        """A re-offer with the same SDP (hold, resume) keeps the learned port."""
        self.allocate_natted()
        self.send(self.phone, rtp(1), 20000)
        self.successResultOf(
            self.relay.reoffer(
                "call-1", MediaOffer([StreamOffer(PRIVATE, 4000)], source=PUBLIC),
                self.relay.session("call-1").offerer,
            )
        )
        self.update()
        self.send(self.b_rtp, rtp(2, ssrc=0xB0B), 20002)
        self.assertEqual(self.phone.packets, [rtp(2, ssrc=0xB0B)])
        self.release()

    def test_srtp_needs_authentication(self) -> None:
        """
        On an SRTP leg a packet that fails authentication teaches nothing,
        however many come; the first that authenticates latches.
        """
        key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(100))
        forger = self.endpoint(PUBLIC, 41002)
        offer = MediaOffer(
            [StreamOffer(PRIVATE, 4000, crypto=[a_crypto(key)])],
            source=PUBLIC,
        )
        allocation = self.successResultOf(
            self.relay.allocate(
                "call-1",
                MediaOffer(offer.streams, _policy(MediaMode.SRTP_TERMINATE), source=PUBLIC),
            )
        )
        self.update()
        phone = context_from(key, allocation.streams[0].a.crypto[0])
        wrong = SrtpContext(None, SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(7)))
        for sequence in range(MEDIA_LIMITS.nat_learn_packets + 5):
            self.send(forger, wrong.protect(rtp(sequence)), 20000)
        self.send(self.phone, phone.protect(rtp(50)), 20000)
        self.assertEqual(self.b_rtp.packets, [rtp(50)])
        session: Any = self.relay.session("call-1")
        self.assertEqual(session.streams[0].a.rtp.remote, (PUBLIC, 41000))
        self.release()


def _policy(mode: MediaMode) -> Any:
    from sipedge.media import RelayPolicy

    return RelayPolicy(LegPolicy(mode))


# -- hypothesis: latching as a state machine over arbitrary packets ------------

_SOURCES = st.sampled_from(
    [(PUBLIC, 41000), (PUBLIC, 41002), (PUBLIC, 4000), (OTHER_PUBLIC, 41000), (PRIVATE, 4000),
     ("203.0.113.78", 41000)]
)
_KINDS = st.sampled_from(["good", "forged", "short"])
_PACKETS = st.lists(st.tuples(_SOURCES, _KINDS, st.floats(0, 3)), max_size=40)


class _Out:
    """Where the leg under test forwards to: records packets."""

    def __init__(self, clock: Any) -> None:
        self.leg = RelayLeg("out", clock)
        self.leg.remote = (B_HOST, 5000)
        self.sent: list[bytes] = []
        self.leg._sendto = lambda data, addr: self.sent.append(data)


def _leg_under_test(srtp: bool) -> tuple[Any, RelayLeg, _Out, SrtpContext | None]:
    reactor = FakeReactor()
    leg = RelayLeg("a", reactor)
    out = _Out(reactor)
    leg.connect(out.leg, out.leg)
    phone: SrtpContext | None = None
    if srtp:
        theirs = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(1))
        ours = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(2))
        relay_side = SrtpContext(theirs, ours)
        leg.set_crypto(relay_side.unprotect, relay_side.protect)
        phone = SrtpContext(ours, theirs)
    leg.expect((PUBLIC, 4000), nat=True, learn_packets=10, learn_seconds=10, confirm=True)
    return reactor, leg, out, phone


class LatchingPropertyTests(SynchronousTestCase):
    """Whatever arrives, in any order and timing, latching keeps its promises."""

    @given(_PACKETS, st.booleans())
    def test_foreign_ip_never_latches(self, packets: list[Any], srtp: bool) -> None:
        """
        No packet from an IP other than the signalling source is ever
        forwarded or learned; the leg latches at most once, on the source
        IP; no packet goes out before the party is learned.
        """
        reactor, leg, out, phone = _leg_under_test(srtp)
        forger = SrtpContext(None, SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(9)))
        learned: list[Any] = []
        sequence = 0
        for addr, kind, delay in packets:
            reactor.advance(delay)
            sequence += 1
            data = rtp(sequence)
            if kind == "short":
                data = data[:5]
            elif phone is not None:
                data = (phone if kind == "good" else forger).protect(data)
            before = len(out.sent)
            leg.datagramReceived(data, addr)
            if len(out.sent) > before:
                self.assertEqual(addr[0], PUBLIC)
            if leg.remote is not None and leg.remote not in learned:
                learned.append(leg.remote)
        self.assertLessEqual(len(learned), 1)
        for remote in learned:
            self.assertEqual(remote[0], PUBLIC)

    @given(st.lists(st.tuples(st.sampled_from([41000, 41002, 4000]), st.floats(0, 2)), max_size=30))
    def test_failed_authentication_never_latches(self, packets: list[Any]) -> None:
        """
        On an SRTP leg, packets from the right IP that fail authentication
        never latch, whatever their number and timing: the leg stays
        unlatched, and nothing is forwarded.
        """
        reactor, leg, out, _ = _leg_under_test(srtp=True)
        forger = SrtpContext(None, SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(9)))
        for sequence, (port, delay) in enumerate(packets):
            reactor.advance(delay)
            leg.datagramReceived(forger.protect(rtp(sequence)), (PUBLIC, port))
        self.assertIsNone(leg.remote)
        self.assertEqual(out.sent, [])


class StageTests(AnchorTestCase):
    """The C{media-anchor} stage gives the relay the source of a party behind NAT."""

    def test_caller_behind_nat(self) -> None:
        """
        Alice's INVITE comes from her router's public address with her
        private address in SDP: the relay takes her media from the public
        address (any port, learned), and sends her nothing before.
        """
        natted = Flow("UDP", PROXY, 5060, PUBLIC, 5060)
        invite = request("INVITE", sdp_a(host=PRIVATE))
        context = self.send(invite, natted)
        self.back(context, response(invite, 200, sdp_b()))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.sources[session.offerer], PUBLIC)
        leg = session.streams[0].a.rtp
        self.assertIsNone(leg.remote)
        self.assertEqual(leg.signalled, (PUBLIC, 4000))
        phone = self.endpoint(PUBLIC, 41000)
        bob = self.endpoint(B_HOST, 5000)
        phone.socket.write(rtp(1), (RELAY, 20000))
        self.network.flush()
        bob.socket.write(rtp(2), (RELAY, 20002))
        self.network.flush()
        self.assertEqual([d for d, _ in bob.received], [rtp(1)])
        self.assertEqual([d for d, _ in phone.received], [rtp(2)])
        self.send(request("BYE", cseq=2, to_tag=B_TAG), natted)

    def test_callee_behind_nat(self) -> None:
        """
        Bob answers from behind NAT: his 200 came from his router's public
        address (the flow it carries) with his private address in SDP. The
        relay takes his media from the public address (the port learned
        from his first packet) and sends him nothing before.
        """
        natted = Flow("UDP", PROXY, 5060, PUBLIC, 41234)
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        ok = response(invite, 200, sdp_b(host=PRIVATE))
        self.back(context, ok.with_headers(ok.headers, natted))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.sources[session.offerer.other], PUBLIC)
        leg = session.streams[0].b.rtp
        self.assertIsNone(leg.remote)
        self.assertEqual(leg.signalled, (PUBLIC, 5000))
        alice = self.endpoint(A_HOST, 4000)
        phone = self.endpoint(PUBLIC, 41000)
        alice.socket.write(rtp(1), (RELAY, 20000))
        self.network.flush()
        self.assertEqual(phone.received, [])
        phone.socket.write(rtp(2, ssrc=0xB0B), (RELAY, 20002))
        self.network.flush()
        alice.socket.write(rtp(3), (RELAY, 20000))
        self.network.flush()
        self.assertEqual([d for d, _ in alice.received], [rtp(2, ssrc=0xB0B)])
        self.assertEqual([d for d, _ in phone.received], [rtp(3)])
        self.send(request("BYE", cseq=2, to_tag=B_TAG))

    def test_callee_early_answer(self) -> None:
        """
        Bob behind NAT answers in a 183 (early media), then sends a 200
        without SDP: his media is taken from the address his 183 came from.
        """
        natted = Flow("UDP", PROXY, 5060, PUBLIC, 41234)
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        early = response(invite, 183, sdp_b(host=PRIVATE))
        self.back(context, early.with_headers(early.headers, natted))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.sources[session.offerer.other], PUBLIC)
        self.back(context, response(invite, 200))
        self.assertEqual(session.streams[0].b.rtp.signalled, (PUBLIC, 5000))
        self.assertIsNone(session.streams[0].b.rtp.remote)
        self.send(request("BYE", cseq=2, to_tag=B_TAG))

    def test_callee_without_flow(self) -> None:
        """
        A response that carries no flow (made here, not received) gives
        the relay no source: the SDP's address only.
        """
        invite = request("INVITE", sdp_a())
        context = self.send(invite)
        self.back(context, response(invite, 200, sdp_b(host=PRIVATE)))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].b.rtp.remote, (PRIVATE, 5000))
        self.send(request("BYE", cseq=2, to_tag=B_TAG))

    def test_off(self) -> None:
        """With C{nat = "off"} the same call is strict: the SDP's address only."""
        self.stage.config = attrs.evolve(self.stage.config, nat="off")
        invite = request("INVITE", sdp_a(host=PRIVATE))
        context = self.send(invite, Flow("UDP", PROXY, 5060, PUBLIC, 5060))
        self.back(context, response(invite, 200, sdp_b()))
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].a.rtp.remote, (PRIVATE, 4000))
        self.send(request("BYE", cseq=2, to_tag=B_TAG))


class ConfigTests(SynchronousTestCase):
    """C{[media] nat}: C{auto} by default gives the source where NAT is detected."""

    def test_auto(self) -> None:
        from sipedge.media import MediaConfig

        config = MediaConfig()
        self.assertEqual(config.nat, "auto")
        self.assertEqual(config.nat_source(verdict(PUBLIC), PRIVATE), PUBLIC)
        self.assertIsNone(config.nat_source(verdict(PUBLIC), "192.0.2.10"))
        self.assertIsNone(MediaConfig(nat="off").nat_source(verdict(PUBLIC), PRIVATE))
        self.assertEqual(MediaConfig(nat="all").nat_source(verdict(PUBLIC), PRIVATE), PUBLIC)
