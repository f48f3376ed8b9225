"""
sipedge's regular expressions use only constructs that behave the same on
every Python 3.11 patch release.

Possessive quantifiers (C{*+}, C{++}, C{?+}, C{{m,n}+}) and atomic groups
(C{(?>...)}) are new in 3.11 and were fixed after 3.11.2 (Debian 12's
C{/usr/bin/python3}), where C{(?:[ ]++token)*+} kept a trailing space in a
display name. sipedge's patterns are written so that plain greedy
quantifiers give the same match, without them.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

import sipedge

try:  # the parser behind re.compile (3.11+); only its node names are read
    from re import _constants as _re_constants  # type: ignore[attr-defined]
    from re import _parser as _re_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Python versions
    _re_parser = None
    _re_constants = None


def _sipedge_modules() -> Iterator[Any]:
    """Every importable sipedge module except the tests."""
    for info in pkgutil.walk_packages(sipedge.__path__, "sipedge."):
        if info.name.startswith("sipedge.test"):
            continue
        yield importlib.import_module(info.name)


def _patterns() -> Iterator[tuple[str, re.Pattern[str] | re.Pattern[bytes]]]:
    """Module-level compiled patterns of sipedge, with their qualified names."""
    for module in _sipedge_modules():
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield f"{module.__name__}.{name}", value


def _opcodes(tree: Any) -> Iterator[Any]:
    """Every opcode in a parsed pattern, nested groups included."""
    for op, av in tree:
        yield op
        for item in av if isinstance(av, (tuple, list)) else ():
            if isinstance(item, _re_parser.SubPattern):
                yield from _opcodes(item)
            elif isinstance(item, (tuple, list)):
                for sub in item:
                    if isinstance(sub, _re_parser.SubPattern):
                        yield from _opcodes(sub)


def _unportable(pattern: re.Pattern[Any]) -> set[str]:
    """The names of the version-dependent constructs C{pattern} uses."""
    tree = _re_parser.parse(pattern.pattern, pattern.flags)
    bad = {
        _re_constants.POSSESSIVE_REPEAT,
        _re_constants.ATOMIC_GROUP,
    }
    return {str(op) for op in _opcodes(tree) if op in bad}


class PortablePatternTests(SynchronousTestCase):
    """No sipedge pattern relies on possessive quantifiers or atomic groups."""

    def test_detector(self) -> None:
        """
        The check finds possessive quantifiers and atomic groups, nested
        ones included, and passes plain greedy patterns.
        """
        self.assertEqual(_unportable(re.compile("a(?:b[ ]++c)*")), {"POSSESSIVE_REPEAT"})
        self.assertEqual(_unportable(re.compile("x(?:(?:b|c)*+)?")), {"POSSESSIVE_REPEAT"})
        self.assertEqual(_unportable(re.compile("(?>ab|a)c")), {"ATOMIC_GROUP"})
        self.assertEqual(_unportable(re.compile(r"[ ]*(a+)(?:;b)*\Z")), set())

    def test_no_unportable_constructs(self) -> None:
        """
        Every module-level pattern in sipedge (the message core's parsers
        first) compiles to the same program on every 3.11 patch release.
        """
        patterns = dict(_patterns())
        self.assertIn("sipedge.message._address._NAME_ADDR_RE", patterns)
        found = {
            name: sorted(_unportable(pattern))
            for name, pattern in patterns.items()
            if _unportable(pattern)
        }
        self.assertEqual(found, {})

    if _re_parser is None:  # pragma: no cover
        test_detector.skip = test_no_unportable_constructs.skip = (  # type: ignore[attr-defined]
            "re._parser is not available on this Python"
        )


class DisplayNameTests(SynchronousTestCase):
    """The cases that differed on Python 3.11.2."""

    def test_token_display_name_no_trailing_space(self) -> None:
        """
        A display name of several tokens before C{<} ends at its last
        token, not at the space before the bracket (3.11.2 kept it).
        """
        from sipedge.message import parse_name_addr

        self.assertEqual(parse_name_addr("Bob Smith <sip:bob@b.example>").display_name, "Bob Smith")
        self.assertEqual(parse_name_addr("a  b\t<sip:x@y>").display_name, "a  b")
        self.assertEqual(parse_name_addr("0 <a:0>").display_name, "0")
