"""
Tests for L{sipedge.message._build}: which build of the message core runs.

CI runs the suite on both builds (.ci/run) and says which one it expects
in C{SIPEDGE_EXPECT_COMPILED}, so a compiled install that silently fell
back to pure Python fails instead of passing as the pure build.
"""

from __future__ import annotations

import os
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

from sipedge import message
from sipedge.message import COMPILED, compiled_modules


def _module(name: str, path: str | None) -> ModuleType:
    module = ModuleType(name)
    if path is not None:
        module.__file__ = path
    return module


class CompiledModulesTests(SynchronousTestCase):
    """L{compiled_modules} names the modules loaded from extensions."""

    def test_extension_and_source(self) -> None:
        """A module from an extension is named; one from source is not."""
        modules = (
            _module("a", "/x/sipedge/message/_parser.cpython-311-x86_64-linux-gnu.so"),
            _module("b", "/x/sipedge/message/_lex.py"),
            _module("c", "/x/sipedge/message/_lex.pyc"),
        )
        self.assertEqual(compiled_modules(modules), ("a",))

    def test_no_file(self) -> None:
        """A module with no file (built in, or namespace) is not compiled."""
        self.assertEqual(compiled_modules((_module("a", None),)), ())

    def test_public(self) -> None:
        """The flag and the function are public names of the message core."""
        self.assertIn("COMPILED", message.__all__)
        self.assertIn("compiled_modules", message.__all__)
        self.assertEqual(COMPILED, "sipedge.message._parser" in compiled_modules())


class ExpectedBuildTests(SynchronousTestCase):
    """The build that runs is the one CI asked for."""

    def test_expected_build(self) -> None:
        """
        With C{SIPEDGE_EXPECT_COMPILED=1} every hot module runs compiled;
        with C{0}, none does.
        """
        expected = os.environ.get("SIPEDGE_EXPECT_COMPILED")
        if expected is None:
            raise self.skipTest("SIPEDGE_EXPECT_COMPILED is not set (CI sets it)")
        names = compiled_modules()
        if expected == "1":
            self.assertEqual(len(names), 7, f"compiled: {names}")
            self.assertTrue(COMPILED)
        else:
            self.assertEqual(names, ())
            self.assertFalse(COMPILED)
