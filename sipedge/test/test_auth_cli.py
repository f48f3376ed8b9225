# -*- test-case-name: sipedge.test.test_auth_cli -*-
"""
Tests for C{sipedge user} (L{sipedge._cli_user.user_command}).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge import _cli_user
from sipedge._cli_user import user_command
from sipedge.auth import DATABASE_NAME, SQLiteCredentialStore, ha1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class UserCommandTests(SynchronousTestCase):
    """Tests for L{user_command}."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir()
        self.state = self.directory / "state"
        self.config = self.directory / "sipedge.toml"
        self.config.write_text(
            '[sip]\ndomains = ["example.com", "example.org"]\n[state]\npath = "state"\n'
        )

    def run_command(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = user_command(list(argv), io.StringIO(stdin), stdout, stderr)
        return status, stdout.getvalue(), stderr.getvalue()

    def stored(self, user: str, realm: str) -> dict[str, str]:
        store = SQLiteCredentialStore.in_state_directory(self.state)
        self.addCleanup(store.close)
        return store.lookup(user, realm)

    def test_add(self) -> None:
        """
        C{add} reads the password from the first line of standard input and
        stores its H(A1) in the state directory, in the first domain's realm.
        """
        status, out, err = self.run_command(
            "add", "--config", str(self.config), "alice", stdin="s3cret\nignored\n"
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, "Added 'alice' in realm 'example.com'\n")
        self.assertTrue((self.state / DATABASE_NAME).exists())
        self.assertEqual(
            self.stored("alice", "example.com")["MD5"], ha1("MD5", "alice", "example.com", "s3cret")
        )

    def test_add_crlf(self) -> None:
        """A CR LF line end is not part of the password."""
        self.run_command("add", "--config", str(self.config), "alice", stdin="pw\r\n")
        self.assertEqual(
            self.stored("alice", "example.com")["SHA-256"],
            ha1("SHA-256", "alice", "example.com", "pw"),
        )

    def test_add_realm(self) -> None:
        """C{--realm} chooses the realm."""
        self.run_command(
            "add", "--config", str(self.config), "--realm", "example.org", "bob", stdin="pw"
        )
        self.assertIn("MD5", self.stored("bob", "example.org"))
        self.assertEqual(self.stored("bob", "example.com"), {})

    def test_change(self) -> None:
        """Adding a user again changes their password."""
        self.run_command("add", "--config", str(self.config), "alice", stdin="one\n")
        status, out, _ = self.run_command(
            "add", "--config", str(self.config), "alice", stdin="two\n"
        )
        self.assertEqual(status, 0)
        self.assertIn("Changed the password of 'alice'", out)
        self.assertEqual(
            self.stored("alice", "example.com")["MD5"], ha1("MD5", "alice", "example.com", "two")
        )

    def test_add_no_password(self) -> None:
        """Without a password on standard input, C{add} fails and stores nothing."""
        status, _, err = self.run_command("add", "--config", str(self.config), "alice", stdin="")
        self.assertEqual(status, 1)
        self.assertIn("no password", err)
        self.assertEqual(self.stored("alice", "example.com"), {})

    def test_add_bad_name(self) -> None:
        """A user name with control characters is refused."""
        status, _, err = self.run_command(
            "add", "--config", str(self.config), "al\x01ice", stdin="pw\n"
        )
        self.assertEqual(status, 1)
        self.assertIn("control characters", err)

    def test_terminal(self) -> None:
        """On a terminal, the password is asked for without echo (getpass)."""
        asked: list[str] = []

        def getpass(prompt: str, stream: object) -> str:
            asked.append(prompt)
            return "typed"

        self.patch(_cli_user.getpass, "getpass", getpass)
        stdout, stderr = io.StringIO(), io.StringIO()
        status = user_command(
            ["add", "--config", str(self.config), "alice"], _Terminal(), stdout, stderr
        )
        self.assertEqual((status, asked), (0, ["Password: "]))
        self.assertEqual(
            self.stored("alice", "example.com")["MD5"], ha1("MD5", "alice", "example.com", "typed")
        )

    def test_list(self) -> None:
        """C{list} shows user, realm and algorithms; never a hash or a password."""
        self.run_command("add", "--config", str(self.config), "bob", stdin="pw-bob\n")
        self.run_command("add", "--config", str(self.config), "alice", stdin="pw-alice\n")
        self.run_command(
            "add", "--config", str(self.config), "--realm", "example.org", "carol", stdin="pw\n"
        )
        status, out, _ = self.run_command("list", "--config", str(self.config))
        self.assertEqual(status, 0)
        self.assertEqual(
            out,
            "alice\texample.com\tSHA-512-256 SHA-256 MD5\n"
            "bob\texample.com\tSHA-512-256 SHA-256 MD5\n"
            "carol\texample.org\tSHA-512-256 SHA-256 MD5\n",
        )
        self.assertNotIn(ha1("MD5", "alice", "example.com", "pw-alice"), out)
        self.assertNotIn("pw-", out)
        _, only, _ = self.run_command(
            "list", "--config", str(self.config), "--realm", "example.org"
        )
        self.assertEqual(only, "carol\texample.org\tSHA-512-256 SHA-256 MD5\n")

    def test_remove(self) -> None:
        """C{remove} removes a user; an unknown one is an error."""
        self.run_command("add", "--config", str(self.config), "alice", stdin="pw\n")
        status, out, _ = self.run_command("remove", "--config", str(self.config), "alice")
        self.assertEqual((status, out), (0, "Removed 'alice' from realm 'example.com'\n"))
        self.assertEqual(self.stored("alice", "example.com"), {})
        status, _, err = self.run_command("remove", "--config", str(self.config), "alice")
        self.assertEqual(status, 1)
        self.assertIn("no user 'alice' in realm 'example.com'", err)

    def test_bad_config(self) -> None:
        """A configuration that does not load is reported, with status 1."""
        self.config.write_text("[sip]\ndomains = 5\n")
        status, _, err = self.run_command("list", "--config", str(self.config))
        self.assertEqual(status, 1)
        self.assertIn("sip.domains", err)

    def test_default_config(self) -> None:
        """Without C{--config}, the defaults apply: ./sipedge-state."""
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        status, _, _ = self.run_command("add", "--realm", "r", "alice", stdin="pw\n")
        self.assertEqual(status, 0)
        self.assertTrue((self.directory / "sipedge-state" / DATABASE_NAME).exists())

    def test_usage(self) -> None:
        """Bad usage prints usage to standard error and returns 2; no action prints help."""
        status, out, err = self.run_command("add")
        self.assertEqual((status, out), (2, ""))
        self.assertIn("usage: sipedge user add", err)
        status, out, err = self.run_command("frobnicate")
        self.assertEqual(status, 2)
        self.assertIn("invalid choice", err)
        status, out, _ = self.run_command()
        self.assertEqual(status, 2)
        self.assertIn("usage: sipedge user", out)

    def test_help(self) -> None:
        """C{--help} prints help to standard output and returns 0."""
        status, out, err = self.run_command("--help")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("add", out)
        status, out, _ = self.run_command("add", "--help")
        self.assertEqual(status, 0)
        self.assertIn("--realm", out)
