# -*- test-case-name: sipedge.test.test_security_cli -*-
"""
C{sipedge ban list|add|remove --config FILE [ADDRESS]}: the ban list in the
state directory's C{bans.sqlite3}, from the command line.

A running sipedge (each of its workers) notices the change within a
second (L{sipedge.security.BAN_WATCH_INTERVAL}): it re-reads the file
when another process has written it.
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from twisted.python.runtime import seconds as wall_clock

from sipedge.error import ConfigError
from sipedge.security import DATABASE_NAME, Ban, Bans, SecurityConfig, canonical_ip

__all__ = ["ban_command", "configure_ban_parser", "parse_duration", "run_ban"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)", re.IGNORECASE)
_FOREVER = ("forever", "permanent", "never")


def parse_duration(text: str) -> float:
    """
    Seconds from C{90}, C{90s}, C{15m}, C{2h}, C{1d}, C{1w}, or C{inf} for
    C{forever}/C{permanent}.

    @raise argparse.ArgumentTypeError: for anything else.
    """
    if text.strip().lower() in _FOREVER:
        return math.inf
    found = _DURATION_RE.fullmatch(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (e.g. 600, 90s, 15m, 2h, 1d, forever)"
        )
    value = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive, not {text!r}")
    return value


def _address(text: str) -> str:
    address = canonical_ip(text)
    if address is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address")
    return address


def _human(seconds: float) -> str:
    if math.isinf(seconds):
        return "never"
    left = math.ceil(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    if left or not parts:
        parts.append(f"{left}s")
    return " ".join(parts)


def _when(at: float) -> str:
    if math.isinf(at):
        return "never"
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def configure_ban_parser(parser: argparse.ArgumentParser) -> None:
    """Give C{parser} (the C{ban} subcommand's) its actions and options."""
    parser.description = (
        "List, add or remove bans: source addresses whose packets sipedge drops"
        " unparsed. Works on bans.sqlite3 in the configured state directory;"
        " a running sipedge (every worker) picks up changes within a second."
    )
    config_help = "the sipedge configuration file (its state.path holds the bans)"
    # SUPPRESS: a --config before the action is not overwritten by the
    # action parser's default.
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the bans in force")
    add = actions.add_parser("add", help="ban an address")
    remove = actions.add_parser("remove", help="lift the ban of an address")
    for action in (listing, add, remove):
        action.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    add.add_argument("address", metavar="ADDRESS", type=_address, help="an IP address")
    add.add_argument(
        "--duration",
        type=parse_duration,
        default=None,
        help="how long: seconds, or 90s, 15m, 2h, 1d, 1w, forever (default: as earned:"
        " security.ban_base, doubled per repeat, up to security.ban_max)",
    )
    add.add_argument("--reason", default="banned by hand", help="why (shown by list)")
    remove.add_argument("address", metavar="ADDRESS", type=_address, help="an IP address")


def run_ban(
    args: argparse.Namespace,
    stdout: IO[str],
    stderr: IO[str],
    *,
    clock: Callable[[], float] = wall_clock,
) -> int:
    """Carry out parsed C{sipedge ban} arguments; return the exit status."""
    from sipedge.config import load_config

    path = getattr(args, "config", None)
    if path is None:
        print("sipedge ban: give the configuration file with --config FILE", file=stderr)
        return 2
    try:
        config = load_config(path)
    except ConfigError as e:
        print(e, file=stderr)
        return 1
    security = getattr(config, "security", None) or SecurityConfig()
    state = Path(config.state.path)
    database = state / DATABASE_NAME
    now = clock()
    if args.action == "list" and not database.exists():
        print("No bans.", file=stdout)
        return 0
    if args.action == "add":
        try:
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            print(f"sipedge ban: cannot create {state}: {e.strerror}", file=stderr)
            return 1
    elif not database.exists():
        print(f"{args.address} is not banned.", file=stderr)
        return 1
    try:
        bans = Bans(
            database,
            base=security.ban_base,
            maximum=security.ban_max,
            memory=security.ban_memory,
            window=security.offence_window,
            thresholds=security.thresholds,
            trusted=config.sip.trusted,
            now=now,
        )
    except ConfigError as e:
        print(f"sipedge ban: {e}", file=stderr)
        return 1
    try:
        return _ACTIONS[args.action](bans, args, now, stdout, stderr)
    finally:
        bans.close()


def _list(bans: Bans, args: Any, now: float, stdout: IO[str], stderr: IO[str]) -> int:
    found = bans.list(now)
    if not found:
        print("No bans.", file=stdout)
        return 0
    rows = [("ADDRESS", "UNTIL", "LEFT", "BANS", "REASON")]
    rows += [
        (b.source, _when(b.expires_at), _human(b.remaining(now)), str(b.count), b.reason)
        for b in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]).rstrip(), file=stdout)
    return 0


def _add(bans: Bans, args: Any, now: float, stdout: IO[str], stderr: IO[str]) -> int:
    ban: Ban | None = bans.ban(args.address, args.reason, now, duration=args.duration)
    if ban is None:
        print(
            f"{args.address} is in a trusted network (sip.trusted): sipedge never bans it.",
            file=stderr,
        )
        return 1
    left = "for ever" if ban.permanent else f"for {_human(ban.duration)}"
    print(
        f"Banned {ban.source} {left} (until {_when(ban.expires_at)}, ban {ban.count}).",
        file=stdout,
    )
    return 0


def _remove(bans: Bans, args: Any, now: float, stdout: IO[str], stderr: IO[str]) -> int:
    if not bans.unban(args.address):
        print(f"{args.address} is not banned.", file=stderr)
        return 1
    print(f"Lifted the ban of {args.address}.", file=stdout)
    return 0


_ACTIONS = {"list": _list, "add": _add, "remove": _remove}


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _parser_class(stdout: IO[str], stderr: IO[str]) -> type[argparse.ArgumentParser]:
    """An C{ArgumentParser} that writes to our streams and raises instead of exiting."""

    class Parser(argparse.ArgumentParser):
        def _print_message(self, message: str, file: Any = None) -> None:
            if message:
                (stderr if file is None or file is sys.stderr else stdout).write(message)

        def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
            if message:
                stderr.write(message)
            raise _Exit(status)

    return Parser


def ban_command(
    argv: Sequence[str],
    stdout: IO[str],
    stderr: IO[str],
    *,
    clock: Callable[[], float] = wall_clock,
) -> int:
    """
    C{sipedge ban ...}: C{argv} is what follows C{ban}. Return the exit
    status (0 done, 1 failed, 2 bad usage).
    """
    parser = _parser_class(stdout, stderr)(prog="sipedge ban")
    configure_ban_parser(parser)
    try:
        args = parser.parse_args(list(argv))
    except _Exit as e:
        return e.status
    return run_ban(args, stdout, stderr, clock=clock)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(ban_command(sys.argv[1:], sys.stdout, sys.stderr))
