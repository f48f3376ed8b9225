# -*- test-case-name: sipedge.test.test_media_dualstack -*-
"""
Dual stack in the media path: the relay's IPv6 interfaces
(L{MediaConfig.interfaces}, C{address6} and its kin), the IP family of a
party's SDP (L{media_family}), the o= of a description bridged between
families (L{rewrite}), and the C{media-anchor} stage bridging an IPv4 leg
and an IPv6 leg through a real in-process L{MediaRelay} on
L{FakeReactor}'s in-memory network (and again through the control
protocol, L{RemoteRelayMixin}).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs
from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import ConfigError
from sipedge.flow import Flow, format_hostport
from sipedge.media import (
    MediaConfig,
    RelayAllocation,
    RelayEndpoint,
    StreamAllocation,
    build_rtp,
    media_family,
    parse_media_config,
    rewrite,
)
from sipedge.media import MediaMode as M
from sipedge.message import Request, parse_datagram, parse_sdp, serialize
from sipedge.pipeline import Continue, Forward, RequestContext, Target
from sipedge.testing import (
    A_HOST,
    A_TAG,
    A_UDP,
    B_TAG,
    CALL_ID,
    AnchorTestCase,
    RemoteRelayMixin,
    anchor_request,
    anchor_response,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_CONFIG as CONFIG
from sipedge.testing import ANCHOR_PROXY as PROXY
from sipedge.testing import ANCHOR_RELAY as RELAY

RELAY6 = "2001:db8::1"
PROXY6 = "2001:db8::2"
#: Bob on IPv6, and Alice when she calls over IPv6.
B6 = "2001:db8:b::20"
A6 = "2001:db8:a::10"
B6_UDP = Flow("UDP", PROXY6, 5060, B6, 5060)
A6_UDP = Flow("UDP", PROXY6, 5060, A6, 5060)


# -- configuration ----------------------------------------------------------


class InterfaceTests(SynchronousTestCase):
    """The relay's interfaces per side and family."""

    def test_default_loopback(self) -> None:
        """
        On the defaults (the relay on 127.0.0.1) the relay has an IPv6
        twin on ::1: an IPv6 party gets C{default6}, an IPv4 one
        C{default}, and sides still change nothing.
        """
        config = MediaConfig()
        self.assertEqual(
            config.interfaces,
            {"default": ("127.0.0.1", "127.0.0.1"), "default6": ("::1", "::1")},
        )
        self.assertEqual(config.interface_for(False, 6), "default6")
        self.assertEqual(config.interface_for(True, 6), "default6")
        self.assertEqual(config.interface_for(True, 4), "default")
        self.assertEqual(config.interface_for(True), "default")
        self.assertFalse(attrs.evolve(config, srtp="passthrough").sided)

    def test_public_address(self) -> None:
        """
        A relay on a public IPv4 address has no IPv6 interface until one
        is configured: an IPv6 party gets the IPv4 one (which the relay
        then refuses, naming both families).
        """
        config = parse_media_config({"address": "192.0.2.1"})
        self.assertEqual(config.interfaces, {"default": ("192.0.2.1", "192.0.2.1")})
        self.assertEqual(config.interface_for(True, 6), "default")
        config = parse_media_config(
            {"address": "192.0.2.1", "address6": "0::", "advertise6": "2001:DB8::1"}
        )
        self.assertEqual(config.interfaces["default6"], ("::", "2001:db8::1"))
        self.assertEqual(config.interface_for(False, 6), "default6")

    def test_ipv6_primary(self) -> None:
        """A relay whose address is IPv6 has no twin: that is its IPv6 interface."""
        config = parse_media_config({"address": "[2001:db8::1]"})
        self.assertEqual(config.interfaces, {"default": ("2001:db8::1", "2001:db8::1")})
        self.assertEqual(config.interface_for(True, 6), "default")
        self.assertEqual(config.interface_for(True, 4), "default")

    def test_sides(self) -> None:
        """
        Per-side IPv6 addresses make per-side twins; a side without one
        (and no shared C{address6}) has no IPv6 interface.
        """
        config = parse_media_config({
            "internal_address": "10.0.0.1",
            "external_address": "192.0.2.1",
            "external_address6": "2001:db8::1",
        })
        self.assertEqual(set(config.interfaces), {"internal", "external", "external6"})
        self.assertEqual(config.interface_for(True, 6), "external6")
        self.assertEqual(config.interface_for(False, 6), "internal")
        shared = parse_media_config({
            "internal_address": "10.0.0.1",
            "external_address": "192.0.2.1",
            "address6": "2001:db8::1",
        })
        self.assertEqual(shared.interfaces["default6"], ("2001:db8::1", "2001:db8::1"))
        self.assertEqual(shared.interface_for(False, 6), "default6")
        self.assertEqual(shared.interface_for(False, 4), "internal")

    def check(self, table: dict[str, object], key: str, text: str) -> None:
        error = self.assertRaises(ConfigError, parse_media_config, table)
        self.assertTrue(str(error).startswith(f"media.{key}: "), str(error))
        self.assertIn(text, str(error))

    def test_errors(self) -> None:
        """Bad IPv6 keys name themselves and the problem."""
        self.check({"address6": "10.0.0.1"}, "address6", "not an IPv6 address")
        self.check({"advertise6": "10.0.0.1"}, "advertise6", "not an IPv6 address")
        self.check({"address6": "relay.example.com"}, "address6", "not an IP address")
        self.check({"address6": "::"}, "address6", "advertise6")
        self.check({"address": "::1", "address6": "::2"}, "address6", "IPv6 already")
        self.check(
            {"internal_address": "fd00::1", "internal_address6": "fd00::2"},
            "internal_address6",
            "IPv6 already",
        )

    @given(
        address=st.sampled_from(["127.0.0.1", "192.0.2.1", "2001:db8::a"]),
        internal=st.sampled_from([None, "10.0.0.1", "fd00::1"]),
        external=st.sampled_from([None, "198.51.100.1", "2001:db8::e"]),
        address6=st.sampled_from([None, "2001:db8::6"]),
        internal6=st.sampled_from([None, "fd00::6"]),
        external6=st.sampled_from([None, "2001:db8::66"]),
    )
    def test_choice(self, **keys: str | None) -> None:
        """
        For every valid combination, each side and family gets: the side's
        IPv6 address (its own key, else C{address6}, else ::1 for a relay
        all on 127.0.0.1) when the side's primary address is IPv4 and one
        is set; else the side's primary address. C{None} for the family is
        the primary address.
        """
        names = {
            "address": "address", "internal": "internal_address",
            "external": "external_address", "address6": "address6",
            "internal6": "internal_address6", "external6": "external_address6",
        }
        table = {names[k]: v for k, v in keys.items() if v is not None}
        try:
            config = parse_media_config(table)
        except ConfigError:
            assume(False)
            return
        for side in ("internal", "external"):
            primary = keys[side] or keys["address"]
            assert primary is not None
            six = keys[side + "6"] or keys["address6"]
            if six is None and all(
                (keys[s] or keys["address"]) == "127.0.0.1" for s in ("internal", "external")
            ):
                six = "::1"
            for family in (None, 4, 6):
                expected = primary
                if family == 6 and ipaddress.ip_address(primary).version == 4 and six:
                    expected = six
                name = config.interface_for(side == "external", family)
                self.assertEqual(config.interfaces[name][1], expected, (side, family, name))


# -- SDP -----------------------------------------------------------------------


class SdpTests(SynchronousTestCase):
    """The family of a description, and its o= across families."""

    def test_media_family(self) -> None:
        """The family of the first relayed stream's address; None without one."""
        self.assertEqual(media_family(parse_sdp(sdp_a())), 4)
        self.assertEqual(media_family(parse_sdp(sdp_a(host=A6))), 6)
        self.assertEqual(media_family(parse_sdp(sdp_a(host="::"))), 6)
        self.assertEqual(media_family(parse_sdp(sdp_a(host="0.0.0.0"))), 4)
        self.assertIsNone(media_family(parse_sdp(sdp_a(port=0))))
        self.assertIsNone(media_family(parse_sdp(sdp_a(host="phone.example.com"))))

    def allocation(self, host: str) -> RelayAllocation:
        end = RelayEndpoint(host, 20000, 20001, False, ())
        return RelayAllocation("k", (StreamAllocation(end, end, M.PLAIN, M.PLAIN),))

    def test_origin_across_families(self) -> None:
        """
        An IPv4 description sent to an IPv6 party names the relay's IPv6
        address in c= and in o= (baresip 1.0 takes the call's family from
        the first C{IN IP}, o='s); the o= session id and user stay.
        """
        out = rewrite(parse_sdp(sdp_a()), self.allocation(RELAY6), "b").to_bytes()
        self.assertIn(f"o=alice 2890844526 5 IN IP6 {RELAY6}\r\n".encode(), out)
        self.assertIn(f"c=IN IP6 {RELAY6}\r\n".encode(), out)
        self.assertNotIn(A_HOST.encode(), out)
        back = rewrite(parse_sdp(sdp_b(host=B6)), self.allocation(RELAY), "a").to_bytes()
        self.assertIn(f"o=bob 2808844564 7 IN IP4 {RELAY}\r\n".encode(), back)

    def test_origin_same_family(self) -> None:
        """Within one family o= passes as it was (only its version is ours)."""
        out = rewrite(parse_sdp(sdp_a()), self.allocation(RELAY), "b").to_bytes()
        self.assertIn(f"o=alice 2890844526 5 IN IP4 {A_HOST}\r\n".encode(), out)
        out = rewrite(parse_sdp(sdp_a(host=A6)), self.allocation(RELAY6), "b").to_bytes()
        self.assertIn(f"o=alice 2890844526 5 IN IP6 {A6}\r\n".encode(), out)


# -- the stage ----------------------------------------------------------------------


def _rtp(sequence: int, ssrc: int = 0xA11CE) -> bytes:
    return build_rtp(
        payload_type=0, sequence=sequence, timestamp=160 * sequence, ssrc=ssrc, payload=bytes(160)
    )


class BridgeTests(AnchorTestCase):
    """An IPv4 party and an IPv6 party through one relay session."""

    config = attrs.evolve(CONFIG, address6=RELAY6)

    def to(self, flow: Flow) -> Forward:
        """The routing decision: the callee's registered flow."""
        return Forward((Target(f"sip:bob@[{flow.remote_host}]", flow=flow),))

    def invite(self, offer: bytes, flow: Flow, callee: Flow) -> Any:
        """The caller's INVITE from C{flow}, its Via naming where it came from (no NAT)."""
        message = anchor_request("INVITE", offer)
        via = f"{format_hostport(flow.remote_host, flow.remote_port)};"
        parsed = parse_datagram(serialize(message).replace(b"192.0.2.10:5060;", via.encode(), 1))
        assert isinstance(parsed, Request)
        context = RequestContext(parsed, flow)
        result = self.resolved(self.run_request(context, self.to(callee)))
        self.assertEqual(result, Continue())
        return context

    def test_ipv4_calls_ipv6(self) -> None:
        """
        If an IPv4 phone calls an IPv6 phone, the offer reaches the IPv6
        phone with the relay's IPv6 address (c= and o=), the answer
        reaches the IPv4 phone with its IPv4 address; media flows both
        ways, each leg on its family's ports, from the ports the SDP
        named; a packet from another IPv6 address is dropped.
        """
        context = self.invite(sdp_a(), A_UDP, B6_UDP)
        offer = context.request.body
        self.assertIn(f"c=IN IP6 {RELAY6}\r\n".encode(), offer)
        self.assertIn(f"o=alice 2890844526 6 IN IP6 {RELAY6}\r\n".encode(), offer)
        ok = self.back(context, anchor_response(context.original, 200, sdp_b(host=B6)))
        self.assertIn(f"c=IN IP4 {RELAY}\r\n".encode(), ok.body)
        self.assertIn(f"o=bob 2808844564 8 IN IP4 {RELAY}\r\n".encode(), ok.body)
        self.send(anchor_request("ACK", to_tag=B_TAG))
        offer_port = int(parse_sdp(offer).media[0].port)
        answer_port = int(parse_sdp(ok.body).media[0].port)
        alice = self.endpoint(A_HOST, 4000)
        bob = self.endpoint(B6, 5000)
        stranger = self.endpoint("2001:db8:b::99", 5000)
        alice.socket.write(_rtp(1), (RELAY, answer_port))
        bob.socket.write(_rtp(2), (RELAY6, offer_port))
        stranger.socket.write(_rtp(3, ssrc=0xBAD), (RELAY6, offer_port))
        self.network.flush()
        self.assertEqual(bob.received, [(_rtp(1), (RELAY6, offer_port))])
        self.assertEqual(alice.received, [(_rtp(2), (RELAY, answer_port))])
        self.assertEqual(stranger.received, [])
        stats: Any = self.relay.session(f"{CALL_ID};{A_TAG}").stats()
        self.assertEqual(stats.b_to_a.drops, {"foreign-source": 1})
        self.assertEqual(
            {name for name, _ in self.relay.open_ports()}, {"default", "default6"}
        )
        self.hang_up()

    def test_ipv6_calls_ipv4(self) -> None:
        """The other way round: the IPv6 caller's leg is on the IPv6 interface."""
        bob = Flow("UDP", PROXY, 5060, "198.51.100.20", 5060)
        context = self.invite(sdp_a(host=A6), A6_UDP, bob)
        self.assertIn(f"c=IN IP4 {RELAY}\r\n".encode(), context.request.body)
        ok = self.back(context, anchor_response(context.original, 200, sdp_b()))
        self.assertIn(f"c=IN IP6 {RELAY6}\r\n".encode(), ok.body)
        session: Any = self.relay.session(f"{CALL_ID};{A_TAG}")
        self.assertEqual(session.streams[0].a.rtp.remote, (A6, 4000))
        self.assertEqual(session.streams[0].b.rtp.remote, ("198.51.100.20", 5000))
        self.hang_up()

    def test_ipv6_both(self) -> None:
        """Two IPv6 phones: both legs on the IPv6 interface, no IPv4 port bound."""
        context = self.invite(sdp_a(host=A6), A6_UDP, B6_UDP)
        self.assertIn(f"c=IN IP6 {RELAY6}\r\n".encode(), context.request.body)
        self.assertIn(f"IN IP6 {A6}\r\n".encode(), context.request.body)  # o= kept
        self.back(context, anchor_response(context.original, 200, sdp_b(host=B6)))
        self.assertEqual({name for name, _ in self.relay.open_ports()}, {"default6"})
        self.hang_up()

    def test_reinvite_keeps_ports(self) -> None:
        """
        A re-INVITE from the IPv6 callee is re-offered in place: the
        families of both legs are the call's, so the ports stay.
        """
        context = self.invite(sdp_a(), A_UDP, B6_UDP)
        self.back(context, anchor_response(context.original, 200, sdp_b(host=B6)))
        self.send(anchor_request("ACK", to_tag=B_TAG))
        before = self.relay.open_ports()
        reinvite = anchor_request(
            "INVITE", sdp_b(host=B6, version=8, extra="a=sendonly\r\n"), cseq=5, caller=False
        )
        context2 = self.send(reinvite, B6_UDP)
        self.assertIn(f"c=IN IP4 {RELAY}\r\n".encode(), context2.request.body)
        self.back(context2, anchor_response(reinvite, 200, sdp_a(version=6), to_tag=A_TAG))
        self.assertEqual(self.relay.open_ports(), before)
        self.hang_up()

    def test_nat_ipv6(self) -> None:
        """
        An IPv6 party behind NAT (its SDP names a ULA, its signalling
        comes from a global address) has its media taken from that global
        address, the port learned from its first packet; another address
        is still dropped.
        """
        public = Flow("UDP", PROXY6, 5060, "2001:db8:a::77", 40000)
        context = self.invite(sdp_a(host="fd00::10"), public, B6_UDP)
        ok = self.back(context, anchor_response(context.original, 200, sdp_b(host=B6)))
        answer_port = int(parse_sdp(ok.body).media[0].port)
        offer_port = int(parse_sdp(context.request.body).media[0].port)
        alice = self.endpoint("2001:db8:a::77", 41000)
        stranger = self.endpoint("2001:db8:a::78", 41000)
        bob = self.endpoint(B6, 5000)
        stranger.socket.write(_rtp(9, ssrc=0xBAD), (RELAY6, answer_port))
        alice.socket.write(_rtp(1), (RELAY6, answer_port))
        self.network.flush()
        self.assertEqual([d for d, _ in bob.received], [_rtp(1)])
        bob.socket.write(_rtp(2), (RELAY6, offer_port))
        self.network.flush()
        self.assertEqual([d for d, _ in alice.received], [_rtp(2)])
        self.assertEqual(stranger.received, [])
        self.hang_up()


class NoIPv6Tests(AnchorTestCase):
    """A relay with no IPv6 interface (a public IPv4 address, no C{address6})."""

    def test_refused(self) -> None:
        """An IPv6 offer gets 488 with a Warning naming both families."""
        message = anchor_request("INVITE", sdp_a(host=A6))
        result = self.refuse(message, A6_UDP)
        self.assertEqual(result.status, 488)
        warning = dict(result.headers).get("Warning", "")
        self.assertIn("IPv6", warning)
        self.assertIn("IPv4", warning)


class RemoteBridgeTests(RemoteRelayMixin, BridgeTests):
    """The same through the relay control protocol (C{default6} crosses it by name)."""
