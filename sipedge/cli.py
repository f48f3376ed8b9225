# -*- test-case-name: sipedge.test.test_cli -*-
"""
The C{sipedge} command line: C{sipedge --version} and the administrative
subcommands C{check-config FILE}, C{user add|remove|list} and
C{ban list|add|remove}.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sipedge import __version__
from sipedge._cli_ban import configure_ban_parser, run_ban
from sipedge._cli_ctl import configure_ctl_parser, run_ctl
from sipedge._cli_user import user_command

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipedge",
        description="sipedge, a SIP edge proxy. Run the proxy with 'twistd -n sipedge'.",
    )
    parser.add_argument("--version", action="version", version=f"sipedge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        help="check a configuration file and summarize it",
        description="Load and check a sipedge configuration file (TOML). Prints"
        " 'FILE: OK' and a summary, or the first problem found (exit status 1).",
    )
    check.add_argument("file", metavar="FILE", help="the configuration file")
    commands.add_parser(
        "user",
        help="manage digest users: add, remove, list (see 'sipedge user --help')",
        add_help=False,
    )
    configure_ban_parser(commands.add_parser("ban", help="list, add or remove bans"))
    configure_ctl_parser(commands.add_parser(
        "ctl", help="a running sipedge's admin API: registrations, calls, bans, counters"))
    return parser


def _check_config(path: str) -> int:
    """C{sipedge check-config FILE}: print a summary, or the error and return 1."""
    from sipedge.config import load_config
    from sipedge.error import ConfigError

    try:
        config = load_config(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{path}: OK")
    print(f"  domains:   {', '.join(config.sip.domains) or '(none)'}")
    print(f"  listeners: {', '.join(str(listener) for listener in config.listeners)}")
    print(f"  stages:    {', '.join(config.pipeline.stages)}")
    print(f"  routes:    {len(config.routes)}")
    print(f"  state:     {config.state.path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["user"]:
        # Its own parser: add reads the password from standard input.
        return user_command(arguments[1:], sys.stdin, sys.stdout, sys.stderr)
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "ban":
        return run_ban(args, sys.stdout, sys.stderr)
    if args.command == "ctl":
        return run_ctl(args, sys.stdout, sys.stderr)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
