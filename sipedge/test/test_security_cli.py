# -*- test-case-name: sipedge.test.test_security_cli -*-
"""
Tests for C{sipedge ban} (L{sipedge._cli_ban}).
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

import sipedge.config
from sipedge._cli_ban import ban_command, configure_ban_parser, parse_duration, run_ban
from sipedge.config import load_config
from sipedge.security import DATABASE_NAME, Bans, SecurityConfig

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z

CONFIG = """\
[sip]
domains = ["sipedge.test"]
trusted = ["10.0.0.0/8"]
[state]
path = "state"
"""


class BanCommandTests(SynchronousTestCase):
    """C{sipedge ban list|add|remove --config FILE [ADDRESS]}."""

    def setUp(self) -> None:
        directory = Path(self.mktemp())
        directory.mkdir()
        self.config = directory / "sipedge.toml"
        self.config.write_text(CONFIG)
        self.state = directory / "state"
        self.now = NOW

    def run_command(self, *argv: str) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = ban_command(list(argv), stdout, stderr, clock=lambda: self.now)
        return status, stdout.getvalue(), stderr.getvalue()

    def test_list_empty(self) -> None:
        """If there is no ban database yet, C{list} says so and creates nothing."""
        self.assertEqual(
            self.run_command("list", "--config", str(self.config)), (0, "No bans.\n", "")
        )
        self.assertFalse(self.state.exists())

    def test_add_list_remove(self) -> None:
        """
        If an address is added, C{list} shows it with its end, time left,
        count and reason; C{remove} lifts it.
        """
        status, out, err = self.run_command(
            "add", "--config", str(self.config), "203.0.113.66", "--reason", "scanning us"
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, "Banned 203.0.113.66 for 1m (until 2023-11-14T22:14:20Z, ban 1).\n")
        self.assertTrue((self.state / DATABASE_NAME).exists())
        self.assertEqual(self.state.stat().st_mode & 0o777, 0o700)
        self.now += 15
        status, out, _ = self.run_command("--config", str(self.config), "list")
        self.assertEqual(status, 0)
        self.assertEqual(
            out.splitlines(),
            [
                "ADDRESS       UNTIL                 LEFT  BANS  REASON",
                "203.0.113.66  2023-11-14T22:14:20Z  45s   1     scanning us",
            ],
        )
        self.assertEqual(
            self.run_command("remove", "--config", str(self.config), "203.0.113.66"),
            (0, "Lifted the ban of 203.0.113.66.\n", ""),
        )
        self.assertEqual(self.run_command("list", "--config", str(self.config))[1], "No bans.\n")

    def test_add_grows(self) -> None:
        """If an address is added again, the ban lasts as long as a repeat offence earns."""
        self.run_command("add", "--config", str(self.config), "203.0.113.66")
        self.now += 100
        status, out, _ = self.run_command("add", "--config", str(self.config), "203.0.113.66")
        self.assertEqual(status, 0)
        self.assertIn("for 2m ", out)
        self.assertIn("ban 2)", out)

    def test_add_duration(self) -> None:
        """If C{--duration} is given, the ban lasts that long (or for ever)."""
        status, out, _ = self.run_command(
            "add", "--config", str(self.config), "2001:db8:0::1", "--duration", "2h"
        )
        self.assertEqual(
            (status, out), (0, "Banned 2001:db8::1 for 2h (until 2023-11-15T00:13:20Z, ban 1).\n")
        )
        status, out, _ = self.run_command(
            "add", "--config", str(self.config), "192.0.2.5", "--duration", "forever"
        )
        self.assertEqual(out, "Banned 192.0.2.5 for ever (until never, ban 1).\n")
        out = self.run_command("list", "--config", str(self.config))[1]
        self.assertIn("192.0.2.5    never                 never  1     banned by hand", out)
        bans = Bans(self.state / DATABASE_NAME)
        self.addCleanup(bans.close)
        self.assertTrue(bans.is_banned("2001:db8::1", NOW + 7199))
        self.assertFalse(bans.is_banned("2001:db8::1", NOW + 7200))

    def test_add_trusted(self) -> None:
        """If the address is in a trusted network, C{add} refuses (status 1)."""
        status, out, err = self.run_command("add", "--config", str(self.config), "10.1.2.3")
        self.assertEqual((status, out), (1, ""))
        self.assertIn("10.1.2.3 is in a trusted network", err)

    def test_remove_missing(self) -> None:
        """If the address is not banned, C{remove} says so (status 1)."""
        self.assertEqual(
            self.run_command("remove", "--config", str(self.config), "192.0.2.1"),
            (1, "", "192.0.2.1 is not banned.\n"),
        )
        self.run_command("add", "--config", str(self.config), "192.0.2.2")
        self.assertEqual(
            self.run_command("remove", "--config", str(self.config), "192.0.2.1")[0], 1
        )

    def test_usage_errors(self) -> None:
        """
        If the arguments are wrong (no action, a bad address or duration,
        no --config), the command prints why on stderr and returns 2.
        """
        for argv in (
            [],
            ["add", "--config", str(self.config), "example.com"],
            ["add", "--config", str(self.config), "192.0.2.1", "--duration", "soon"],
            ["list"],
        ):
            status, out, err = self.run_command(*argv)
            self.assertEqual((status, out), (2, ""), argv)
            self.assertTrue(err, argv)

    def test_help(self) -> None:
        """If asked for help, the command prints it on stdout and returns 0."""
        status, out, _ = self.run_command("--help")
        self.assertEqual(status, 0)
        self.assertIn("usage: sipedge ban", out)

    def test_bad_config(self) -> None:
        """If the configuration file cannot be loaded, the command says why (status 1)."""
        status, _, err = self.run_command("list", "--config", str(self.config) + ".missing")
        self.assertEqual(status, 1)
        self.assertIn("cannot read configuration file", err)

    def test_bad_database(self) -> None:
        """If the ban database is not SQLite, the command says so (status 1)."""
        self.state.mkdir()
        (self.state / DATABASE_NAME).write_bytes(b"garbage" * 100)
        status, _, err = self.run_command("list", "--config", str(self.config))
        self.assertEqual(status, 1)
        self.assertIn("sipedge ban: cannot use ban database", err)

    def test_security_section(self) -> None:
        """If the configuration has a security section, C{add} uses its ban durations."""
        loaded = load_config(self.config)

        @attrs.frozen
        class WithSecurity:
            sip: Any
            state: Any
            security: SecurityConfig

        self.patch(
            sipedge.config,
            "load_config",
            lambda path: WithSecurity(loaded.sip, loaded.state, SecurityConfig(ban_base=600)),
        )
        status, out, _ = self.run_command("add", "--config", str(self.config), "192.0.2.1")
        self.assertEqual(status, 0)
        self.assertIn("for 10m ", out)

    def test_own_parser(self) -> None:
        """
        If the C{ban} subcommand is part of another parser (C{sipedge}'s),
        L{configure_ban_parser} and L{run_ban} do the same work.
        """
        parser = argparse.ArgumentParser(prog="sipedge")
        commands = parser.add_subparsers(dest="command")
        configure_ban_parser(commands.add_parser("ban"))
        args = parser.parse_args(["ban", "add", "--config", str(self.config), "192.0.2.1"])
        stdout, stderr = io.StringIO(), io.StringIO()
        self.assertEqual(run_ban(args, stdout, stderr, clock=lambda: NOW), 0)
        self.assertIn("Banned 192.0.2.1", stdout.getvalue())

    def test_durations(self) -> None:
        """L{parse_duration} reads seconds with an optional unit, or forever."""
        self.assertEqual(
            [parse_duration(t) for t in ("90", "90s", "1.5m", "2h", "1d", "1W")],
            [90.0, 90.0, 90.0, 7200.0, 86400.0, 604800.0],
        )
        self.assertEqual(parse_duration("Forever"), math.inf)
        for bad in ("", "0", "-5", "5x", "h"):
            self.assertRaises(argparse.ArgumentTypeError, parse_duration, bad)
