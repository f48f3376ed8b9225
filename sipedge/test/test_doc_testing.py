# -*- test-case-name: sipedge.test.test_doc_testing -*-
"""
The tutorial in C{doc/testing.md} is true: each of its Python examples
runs, and its test cases pass.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from twisted.trial import reporter, runner
from twisted.trial.unittest import SynchronousTestCase

import sipedge

DOC = Path(sipedge.__file__).resolve().parent.parent / "doc" / "testing.md"


def examples() -> list[str]:
    """The C{```python} blocks of the tutorial."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


class TutorialTests(SynchronousTestCase):
    """Tests for the examples of C{doc/testing.md}."""

    if not DOC.exists():
        skip = "doc/testing.md is not in this installation"

    def test_examples_pass(self) -> None:
        """Each example defines test cases, and they pass."""
        found = examples()
        self.assertEqual(len(found), 3)
        for index, code in enumerate(found):
            module = ModuleType(f"testing_tutorial_{index}")
            exec(compile(code, f"{DOC}:example {index}", "exec"), module.__dict__)
            suite = runner.TestLoader().loadModule(module)
            result = reporter.TestResult()
            suite.run(result)
            self.assertEqual((result.errors, result.failures), ([], []), f"example {index}")
            self.assertGreater(result.testsRun, 0, f"example {index}")

    def test_stage_example_short(self) -> None:
        """The stage example keeps its promise: twenty lines of code at most."""
        code = [line for line in examples()[0].splitlines() if line.strip()]
        self.assertLessEqual(len(code), 20)
