# -*- test-case-name: sipedge.test.test_cli -*-
"""
The C{sipedge} command line: C{sipedge --version}; administrative
subcommands join it as they are built.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sipedge import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipedge",
        description="sipedge, a SIP edge proxy. Run the proxy with 'twistd -n sipedge'.",
    )
    parser.add_argument("--version", action="version", version=f"sipedge {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
