# -*- test-case-name: sipedge.test.test_cli -*-
"""
Tests for L{sipedge.cli}.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge import __version__
from sipedge.cli import main

GOOD = """\
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061"]
trusted = ["127.0.0.10/32"]
[tls]
certificate = "cert.pem"
private_key = "key.pem"
[state]
path = "sipedge-state"
"""


class CheckConfigTests(SynchronousTestCase):
    """C{sipedge check-config FILE}."""

    def setUp(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)

    def write(self, text: str) -> str:
        """Write C{text} to a new file; return its path."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "sipedge.toml"
        path.write_text(text)
        return str(path)

    def test_ok(self) -> None:
        """A good file: C{FILE: OK} and a summary on stdout, exit status 0."""
        path = self.write(GOOD)
        self.assertEqual(main(["check-config", path]), 0)
        lines = self.stdout.getvalue().splitlines()
        self.assertEqual(lines[0], f"{path}: OK")
        output = self.stdout.getvalue()
        self.assertIn("domains:   sipedge.test\n", output)
        self.assertIn(
            "listeners: udp:127.0.0.1:5060, tcp:127.0.0.1:5060, tls:127.0.0.1:5061\n", output
        )
        self.assertIn(
            "stages:    ban-check, scanner, flood, monitor, filter, sanity, max-forwards,", output
        )
        self.assertEqual(self.stderr.getvalue(), "")

    def test_empty_file(self) -> None:
        """An empty file is the defaults, which are fine."""
        path = self.write("")
        self.assertEqual(main(["check-config", path]), 0)
        self.assertIn(
            "listeners: udp:0.0.0.0:5060, tcp:0.0.0.0:5060, tls:0.0.0.0:5061",
            self.stdout.getvalue(),
        )

    def test_bad_value(self) -> None:
        """A bad value: the one message on stderr, nothing on stdout, exit status 1."""
        path = self.write('[sip]\nlisten = ["udp:127.0.0.1:5060", "x"]\n')
        self.assertEqual(main(["check-config", path]), 1)
        self.assertEqual(self.stdout.getvalue(), "")
        message = self.stderr.getvalue()
        self.assertTrue(message.startswith(f"{path}: sip.listen[1]: "), message)
        self.assertEqual(message.count("\n"), 1)
        self.assertNotIn("Traceback", message)

    def test_unknown_key(self) -> None:
        """An unknown key is reported with a suggestion."""
        path = self.write("[sip]\ndomain = ['a.example']\n")
        self.assertEqual(main(["check-config", path]), 1)
        self.assertEqual(
            self.stderr.getvalue(), f"{path}: sip.domain: unknown key; did you mean 'domains'?\n"
        )

    def test_invalid_toml(self) -> None:
        """Invalid TOML is reported with its line."""
        path = self.write("[sip\n")
        self.assertEqual(main(["check-config", path]), 1)
        self.assertIn(f"{path}: invalid TOML: ", self.stderr.getvalue())
        self.assertIn("line 1", self.stderr.getvalue())

    def test_missing_file(self) -> None:
        """A missing file is reported with its name."""
        path = self.mktemp()
        self.assertEqual(main(["check-config", path]), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            f"{path}: cannot read configuration file: No such file or directory\n",
        )

    def test_no_file(self) -> None:
        """C{check-config} without a file is a usage error (exit status 2)."""
        error = self.assertRaises(SystemExit, main, ["check-config"])
        self.assertEqual(error.code, 2)
        self.assertIn("FILE", self.stderr.getvalue())

    def test_no_command(self) -> None:
        """No command prints the help, which lists check-config."""
        self.assertEqual(main([]), 0)
        self.assertIn("check-config", self.stdout.getvalue())

    def test_version(self) -> None:
        """C{--version} still prints the version."""
        error = self.assertRaises(SystemExit, main, ["--version"])
        self.assertEqual(error.code, 0)
        self.assertEqual(self.stdout.getvalue(), f"sipedge {__version__}\n")


class CheckConfigProcessTests(SynchronousTestCase):
    """C{python -m sipedge.cli check-config} in a process of its own."""

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the command line with C{args}."""
        return subprocess.run(
            [sys.executable, "-m", "sipedge.cli", *args], capture_output=True, text=True
        )

    def test_ok(self) -> None:
        """A good file exits 0 with C{FILE: OK}."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "good.toml"
        path.write_text(GOOD)
        result = self.run_cli("check-config", str(path))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines()[0], f"{path}: OK")

    def test_bad(self) -> None:
        """A bad file exits 1 with one line on stderr and no traceback."""
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / "bad.toml"
        path.write_text("[timers]\nt1 = 10\n")
        result = self.run_cli("check-config", str(path))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            result.stderr, f"{path}: timers.t1: must be less than t2 (4.0), not 10.0\n"
        )
