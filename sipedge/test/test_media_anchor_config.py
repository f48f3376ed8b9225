# -*- test-case-name: sipedge.test.test_media_anchor_config -*-
"""
Tests for C{[media]}: L{MediaConfig} and L{parse_media_config}.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

import sipedge
from sipedge.error import ConfigError
from sipedge.media import (
    DEFAULT_INTERNAL_NETWORKS,
    SUPPORTED_SUITES,
    MediaConfig,
    MediaMode,
    MediaRelay,
    parse_media_config,
)
from sipedge.testing import FakeReactor

P = MediaMode.PLAIN
T = MediaMode.SRTP_TERMINATE
R = MediaMode.SRTP_REKEY


class DefaultsTests(SynchronousTestCase):
    """What C{[media]} is when the file says nothing."""

    def test_defaults(self) -> None:
        """The contract keys, and the rest, have these defaults."""
        config = MediaConfig()
        # Off until it is configured: the default address (127.0.0.1) is
        # only right on loopback.
        self.assertFalse(config.anchor)
        self.assertEqual(config.ports, (30000, 30999))
        self.assertEqual(config.address, "127.0.0.1")
        self.assertEqual(config.srtp, "auto")
        self.assertFalse(config.sdes_over_plain)
        self.assertEqual(config.nat, "auto")
        self.assertEqual(config.default_side, "external")
        self.assertEqual(config.suites, tuple(s.name for s in SUPPORTED_SUITES))
        self.assertEqual(
            config.internal, tuple(ipaddress.ip_network(n) for n in DEFAULT_INTERNAL_NETWORKS)
        )
        self.assertEqual(
            config.interfaces,
            {"default": ("127.0.0.1", "127.0.0.1"), "default6": ("::1", "::1")},
        )
        self.assertIsNone(config.address6)
        self.assertEqual(config.limits.idle_timeout, 60.0)
        self.assertEqual(config.limits.max_duration, 14400.0)

    def test_from_toml(self) -> None:
        """A TOML table is read as it is written."""
        table = tomllib.loads(
            """
            anchor = true
            ports = "40000-40099"
            internal_address = "10.0.0.1"
            external_address = "0.0.0.0"
            external_advertise = "203.0.113.1"
            internal = ["10.0.0.0/8"]
            srtp = "terminate"
            suites = ["AES_CM_128_HMAC_SHA1_80"]
            nat = "external"
            idle_timeout = 30
            """
        )
        config = parse_media_config(table)
        self.assertEqual(config.ports, (40000, 40099))
        self.assertEqual(
            config.interfaces,
            {"internal": ("10.0.0.1", "10.0.0.1"), "external": ("0.0.0.0", "203.0.113.1")},
        )
        self.assertEqual(config.idle_timeout, 30.0)
        self.assertTrue(config.sided)
        self.assertEqual(config.interface_for(True), "external")
        self.assertEqual(config.interface_for(False), "internal")


class ErrorTests(SynchronousTestCase):
    """Every bad value names C{media.<key>}."""

    def check(self, table: dict[str, object], key: str, text: str = "") -> None:
        error = self.assertRaises(ConfigError, parse_media_config, table)
        message = str(error)
        self.assertTrue(message.startswith(f"media.{key}: "), message)
        self.assertIn(text, message)

    def test_unknown_key(self) -> None:
        """An unknown key, with the closest one suggested."""
        self.check({"adress": "10.0.0.1"}, "adress", "did you mean 'address'")

    def test_ports(self) -> None:
        """Ports must be 'low-high' with an even/odd pair."""
        self.check({"ports": "30000"}, "ports", "low-high")
        self.check({"ports": 30000}, "ports", "low-high")
        self.check({"ports": "30001-30001"}, "ports", "no even/odd")
        self.check({"ports": "0-10"}, "ports", "1 <= low")
        self.check({"ports": "40000-30000"}, "ports")
        # Digits to str.isdigit, not to int(): a clear error, not a ValueError.
        self.check({"ports": "\u00b2-\u00b3"}, "ports", "low-high")

    def test_addresses(self) -> None:
        """Addresses are IP literals; a wildcard needs one to advertise."""
        self.check({"address": "relay.example.com"}, "address", "not an IP address")
        self.check({"address": "0.0.0.0"}, "address", "advertise")
        self.check({"address": "224.0.0.1"}, "address", "multicast")
        self.check({"advertise": "0.0.0.0"}, "advertise", "cannot be written")
        self.check({"internal_address": "::"}, "internal_address", "internal_advertise")
        self.check(
            {"external_address": "0.0.0.0", "external_advertise": "2001:db8::1"},
            "external_advertise",
            "same IP version",
        )
        config = parse_media_config({"address": "[2001:db8::1]"})
        self.assertEqual(config.address, "2001:db8::1")
        both = parse_media_config(
            {"address": "0.0.0.0", "internal_address": "10.0.0.1", "external_address": "192.0.2.1"}
        )
        self.assertEqual(set(both.interfaces), {"internal", "external"})

    def test_choices(self) -> None:
        """srtp, nat and default_side take one of their words."""
        self.check({"srtp": "on"}, "srtp", "'auto', 'passthrough', 'terminate', 'rekey'")
        self.check({"nat": True}, "nat")
        self.check({"default_side": "inside"}, "default_side")
        self.check({"anchor": "yes"}, "anchor", "true or false")
        self.check({"sdes_over_plain": 1}, "sdes_over_plain")

    def test_internal(self) -> None:
        """internal is an array of networks."""
        self.check({"internal": ["10.0.0.0/8", "nope"]}, "internal[1]", "not an IP network")
        self.check({"internal": "10.0.0.0/8"}, "internal", "array")

    def test_suites(self) -> None:
        """suites names supported suites, each once, at least one."""
        self.check({"suites": []}, "suites", "at least one")
        self.check({"suites": ["AES_CM_256"]}, "suites[0]", "unknown crypto suite")
        self.check(
            {"suites": ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_80"]},
            "suites[1]",
            "already suites[0]",
        )

    def test_limits(self) -> None:
        """Limits are numbers, 0 or more, and consistent."""
        self.check({"idle_timeout": -1}, "idle_timeout", "0 (off)")
        self.check({"idle_timeout": "1m"}, "idle_timeout", "expected a number")
        self.check({"max_packet_size": 1.5}, "max_packet_size", "integer")
        self.check({"packet_burst": 0.5}, "packet_burst", "at least 1")

    def test_not_a_table(self) -> None:
        """The section must be a table."""
        error = self.assertRaises(ConfigError, parse_media_config, "x")
        self.assertIn("media: expected a table", str(error))

    def test_prefix_and_base(self) -> None:
        """Stage options: their own prefix in errors, the section as the base."""
        base = MediaConfig(srtp="rekey")
        config = parse_media_config({"anchor": False}, "pipeline.options.media-anchor", base)
        self.assertEqual((config.anchor, config.srtp), (False, "rekey"))
        error = self.assertRaises(
            ConfigError, parse_media_config, {"srtp": "x"}, "pipeline.options.media-anchor", base
        )
        self.assertTrue(str(error).startswith("pipeline.options.media-anchor.srtp: "))


class PolicyTests(SynchronousTestCase):
    """Sides and SRTP modes."""

    def test_is_external(self) -> None:
        """Addresses outside C{internal} are external; names on the default side."""
        config = MediaConfig()
        self.assertFalse(config.is_external("10.1.2.3"))
        self.assertFalse(config.is_external("::ffff:192.168.1.1"))
        self.assertFalse(config.is_external("[fd00::1]"))
        self.assertTrue(config.is_external("192.0.2.1"))
        self.assertTrue(config.is_external("pbx.example.com"))
        inside = attrs.evolve(config, default_side="internal")
        self.assertFalse(inside.is_external("pbx.example.com"))

    def test_leg_modes(self) -> None:
        """
        passthrough and rekey whatever the sides; terminate: SRTP on
        external legs and on an offerer's SRTP offer.
        """
        config = MediaConfig(srtp="terminate")
        table = {
            (True, False, False): (T, P),
            (True, False, True): (T, P),
            (False, True, False): (P, T),
            (False, False, True): (T, P),
            (False, True, True): (R, R),
            (True, True, False): (R, R),
            (False, False, False): (P, P),
        }
        for args, modes in table.items():
            self.assertEqual(config.leg_modes(*args), modes, args)
        rekey = MediaConfig(srtp="rekey")
        self.assertEqual(rekey.leg_modes(False, False, False), (R, R))
        through = MediaConfig(srtp="passthrough")
        pt = MediaMode.PASSTHROUGH
        self.assertEqual(through.leg_modes(True, True, True), (pt, pt))

    def test_policy(self) -> None:
        """The policy names each side's interface and NAT learning."""
        config = MediaConfig(
            internal_address="10.0.0.1", external_address="192.0.2.1", nat="external"
        )
        policy = config.policy(True, False, False)
        assert policy is not None
        b = policy.b
        assert b is not None
        self.assertEqual((policy.a.interface, policy.a.nat), ("external", True))
        self.assertEqual((b.interface, b.nat), ("internal", False))
        everyone = attrs.evolve(config, nat="all")
        self.assertTrue(everyone.leg_policy(P, False).nat)

    def test_build_relay(self) -> None:
        """build_relay makes a relay with one allocator per interface, nothing bound."""
        config = MediaConfig(
            internal_address="10.0.0.1",
            external_address="0.0.0.0",
            external_advertise="192.0.2.1",
            ports="20000-20009",
        )
        relay = config.build_relay(FakeReactor())
        self.assertIsInstance(relay, MediaRelay)
        self.assertEqual(relay.open_ports(), [])
        self.assertEqual(relay.limits, config.limits)


class DocumentationTests(SynchronousTestCase):
    """C{doc/media.md} keeps up with L{MediaConfig}."""

    def test_documented(self) -> None:
        """Every key of C{[media]} is in the table of C{doc/media.md}."""
        doc = Path(sipedge.__file__).resolve().parent.parent / "doc" / "media.md"
        if not doc.exists():
            raise self.skipTest("not running from a checkout")
        text = doc.read_text()
        self.assertIn("### `[media]`", text)
        table = text.split("### `[media]`", 1)[1].split("\n### ", 1)[0]
        for field in attrs.fields(MediaConfig):
            self.assertIn(f"`{field.name}`", table, field.name)
