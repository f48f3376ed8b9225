# -*- test-case-name: sipedge.test.test_auth_cli -*-
"""
C{sipedge user}: manage the digest users of the credential store in the
state directory.

   sipedge user add    [--config FILE] [--realm REALM] USER   < password
   sipedge user remove [--config FILE] [--realm REALM] USER
   sipedge user list   [--config FILE] [--realm REALM]

C{add} reads the password from the first line of standard input (or asks
for it without echo when standard input is a terminal), so it never shows
in the process list or the shell history. The realm is C{--realm}, else
C{auth.realm}, else the first of C{sip.domains}; the state directory is
C{state.path}. Without C{--config} the embedded defaults apply, as they do
for C{twistd -n sipedge}.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from sipedge.error import ConfigError

__all__ = ["user_command", "user_parser"]


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser that writes to the given streams and never exits."""

    def __init__(self, *args: Any, stdout: TextIO, stderr: TextIO, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stdout = stdout
        self._stderr = stderr

    def _print_message(self, message: str, file: Any = None) -> None:
        if not message:
            return
        if file is None or file is sys.stdout:
            file = self._stdout
        elif file is sys.stderr:
            file = self._stderr
        file.write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._stderr.write(message)
        raise _Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(self._stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def user_parser(stdout: TextIO, stderr: TextIO) -> argparse.ArgumentParser:
    """The parser of C{sipedge user}'s arguments."""
    parser = _Parser(
        prog="sipedge user",
        description="Manage the digest users sipedge authenticates.",
        stdout=stdout,
        stderr=stderr,
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    common = _Parser(add_help=False, stdout=stdout, stderr=stderr)
    common.add_argument(
        "--config", metavar="FILE", help="the configuration file (default: the embedded defaults)"
    )
    common.add_argument(
        "--realm", help="the realm (default: auth.realm, else the first of sip.domains)"
    )
    for action, text in (
        ("add", "add a user, or change their password (read from standard input)"),
        ("remove", "remove a user"),
        ("list", "list the users (no hashes)"),
    ):
        sub = commands.add_parser(action, parents=[common], help=text, stdout=stdout, stderr=stderr)
        if action != "list":
            sub.add_argument("user", metavar="USER")
    return parser


def _read_password(stdin: TextIO, stderr: TextIO) -> str:
    if stdin.isatty():
        return getpass.getpass("Password: ", stream=stderr)
    line = stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def user_command(argv: Sequence[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """
    Run C{sipedge user} with C{argv} (the words after C{user}); return the
    exit status: 0 on success, 1 for a failure (a bad configuration, an
    unknown user, an empty password), 2 for bad usage.
    """
    parser = user_parser(stdout, stderr)
    try:
        args = parser.parse_args(list(argv))
    except _Exit as e:
        return e.status
    if args.action is None:
        parser.print_help(stdout)
        return 2
    from sipedge.auth import AuthConfig, SQLiteCredentialStore
    from sipedge.config import DEFAULT_CONFIG, load_config

    try:
        config = DEFAULT_CONFIG if args.config is None else load_config(args.config)
        realm = args.realm
        if realm is None:
            auth = getattr(config, "auth", None)
            if not isinstance(auth, AuthConfig):
                auth = AuthConfig()
            realm = auth.realm_for(config.sip.domains)
        store = SQLiteCredentialStore.in_state_directory(config.state.path)
    except ConfigError as e:
        stderr.write(f"sipedge user: {e}\n")
        return 1
    try:
        return _run(args, store, realm, stdin, stdout, stderr)
    finally:
        store.close()


def _run(
    args: argparse.Namespace,
    store: Any,
    realm: str,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    if args.action == "list":
        for user in store.list(None if args.realm is None else realm):
            stdout.write(f"{user.username}\t{user.realm}\t{' '.join(user.algorithms)}\n")
        return 0
    if args.action == "remove":
        if not store.remove(args.user, realm):
            stderr.write(f"sipedge user: no user {args.user!r} in realm {realm!r}\n")
            return 1
        stdout.write(f"Removed {args.user!r} from realm {realm!r}\n")
        return 0
    password = _read_password(stdin, stderr)
    if not password:
        stderr.write("sipedge user: no password on standard input\n")
        return 1
    try:
        new = store.add(args.user, realm, password)
    except ValueError as e:
        stderr.write(f"sipedge user: {e}\n")
        return 1
    stdout.write(
        f"{'Added' if new else 'Changed the password of'} {args.user!r} in realm {realm!r}\n"
    )
    return 0
