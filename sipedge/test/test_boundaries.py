# -*- test-case-name: sipedge.test.test_boundaries -*-
"""
Tests that keep the architecture's rules and the project's promises honest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).parent.parent.parent


class SansIOTests(SynchronousTestCase):
    """C{sipedge.message} imports no Twisted module (ARCHITECTURE rule 1)."""

    def test_message_imports_no_twisted(self) -> None:
        """Importing every module of sipedge.message loads no twisted module."""
        code = (
            "import sys, pkgutil, importlib, sipedge.message as m\n"
            "for info in pkgutil.iter_modules(m.__path__):\n"
            "    importlib.import_module('sipedge.message.' + info.name)\n"
            "bad = sorted(n for n in sys.modules if n == 'twisted' or n.startswith('twisted.'))\n"
            "print(','.join(bad))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        self.assertEqual(out.stdout.strip(), "")


class CommandTests(SynchronousTestCase):
    """The console script and the CI script."""

    def test_version(self) -> None:
        """C{sipedge --version} prints the version."""
        out = subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        from sipedge import __version__

        self.assertEqual(out.stdout.strip(), f"sipedge {__version__}")

    def test_ci_runs_readme_command(self) -> None:
        """.ci/run runs exactly the README's test command."""
        readme = (ROOT / "README.md").read_text()
        ci = (ROOT / ".ci" / "run").read_text()
        commands = [
            line.strip() for line in readme.splitlines() if "twisted.trial" in line
        ]
        self.assertEqual(len(commands), 1, commands)
        self.assertIn(commands[0], ci.splitlines())
    def test_ci_uses_debian_python(self) -> None:
        """
        .ci/run's setup, run before the README's command, makes that
        command's C{python3} Debian's C{/usr/bin/python3} where it exists.
        """
        ci = (ROOT / ".ci" / "run").read_text()
        start = ci.index("if [ -x /usr/bin/python3 ]")
        setup = ci[start : ci.index("\nfi\n", start) + 4]
        self.assertLess(start, ci.index("run_tests() {"))
        other = Path(self.mktemp())
        other.mkdir()
        (other / "python3").symlink_to(sys.executable)
        out = subprocess.run(
            ["bash", "-c", setup + 'readlink -f "$(command -v python3)"'],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": f"{other}:/usr/bin:/bin"},
        )
        self.assertEqual(out.stdout.strip(), str(Path("/usr/bin/python3").resolve()))

    if not Path("/usr/bin/python3").exists():
        test_ci_uses_debian_python.skip = "no /usr/bin/python3 here"  # type: ignore[attr-defined]

    if not (ROOT / "README.md").exists():  # installed without the checkout
        test_ci_runs_readme_command.skip = "not running from a checkout"  # type: ignore[attr-defined]
