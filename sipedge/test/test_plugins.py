# -*- test-case-name: sipedge.test.test_plugins -*-
"""
Tests that sipedge's plugins are found through Twisted's plugin system: the
C{twistd sipedge} dropin in C{twisted/plugins/} and the built-in stage
factories in the C{sipedge.plugins} package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import sipedge
import sipedge.plugins
from sipedge import tap
from sipedge.config import DEFAULT_CONFIG, DEFAULT_STAGES
from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.pipeline import StageServices, build_chain, stage_factories, unique_factories
from sipedge.proxy import LocalIdentity
from sipedge.testing import FakeReactor

ROOT = Path(sipedge.__file__).resolve().parent.parent
DROPIN = ROOT / "twisted" / "plugins" / "sipedge_plugin.py"


def _without_pythonpath() -> dict[str, str]:
    """This environment without C{PYTHONPATH}: only the install finds sipedge."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _empty_dir(test: SynchronousTestCase) -> str:
    """A new empty directory, so the current one puts nothing on C{sys.path}."""
    path = Path(test.mktemp()).absolute()
    path.mkdir(parents=True)
    return str(path)


def _twistd(test: SynchronousTestCase, *args: str) -> subprocess.CompletedProcess[str]:
    """
    This interpreter's C{twistd} with C{args}, run as a user runs it: from an
    empty directory, with no C{PYTHONPATH}.
    """
    script = Path(sys.executable).parent / "twistd"
    if not script.exists():
        raise AssertionError(f"no twistd script beside {sys.executable}: is Twisted installed?")
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=_empty_dir(test),
        env=_without_pythonpath(),
    )


class TwistdPluginTests(SynchronousTestCase):
    """The C{twistd sipedge} plugin."""

    def test_found(self) -> None:
        """
        C{getPlugins(IServiceMaker)} finds exactly one plugin called
        C{sipedge}, whose options and service maker are those of
        L{sipedge.tap}.
        """
        found = [p for p in getPlugins(IServiceMaker) if p.tapname == "sipedge"]
        self.assertEqual(len(found), 1, found)
        [plugin] = found
        self.assertTrue(verifyObject(IServiceMaker, plugin))
        self.assertTrue(IPlugin.providedBy(plugin))
        self.assertIs(plugin.options, tap.Options)
        self.assertIs(plugin.makeService, tap.makeService)
        self.assertTrue(plugin.description)

    def test_lazy(self) -> None:
        """
        Importing the dropin does not import L{sipedge.tap} or
        L{sipedge.service}, so C{twistd --help} stays cheap.
        """
        if not DROPIN.exists():
            raise self.skipTest("not running from a checkout")
        code = (
            "import sys\n"
            "import twisted.plugins.sipedge_plugin\n"
            "print(sorted(m for m in ('sipedge.tap', 'sipedge.service') if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=_empty_dir(self),
            env=_without_pythonpath(),
        )
        self.assertEqual(out.stdout.strip(), "[]")

    def test_no_init(self) -> None:
        """
        The checkout's C{twisted/plugins/} has no C{__init__.py}, which would
        hide Twisted's own plugins (Twisted's C{docs/core/howto/tap.rst}).
        """
        if not DROPIN.exists():
            raise self.skipTest("not running from a checkout")
        self.assertFalse((ROOT / "twisted" / "__init__.py").exists())
        self.assertFalse((ROOT / "twisted" / "plugins" / "__init__.py").exists())


class InstalledTwistdTests(SynchronousTestCase):
    """
    C{twistd sipedge} works wherever sipedge is installed, also by the
    README's C{pip install -e '.[test]'} (a PEP 660 editable install, which
    puts the checkout on C{sys.path} so Twisted's plugin finder sees
    C{twisted/plugins/}), from any directory and with no C{PYTHONPATH}.
    """

    def test_help_lists_plugins(self) -> None:
        """
        C{twistd --help} from an empty directory lists C{sipedge} and
        C{sipedge-relay}.
        """
        out = _twistd(self, "--help")
        self.assertEqual(out.returncode, 0, out.stderr)
        commands = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("    ")}
        self.assertIn("sipedge", commands, out.stdout)
        self.assertIn("sipedge-relay", commands, out.stdout)

    def test_plugin_options(self) -> None:
        """
        C{twistd sipedge --help} and C{twistd sipedge-relay --help} from an
        empty directory load the plugins' options (not "Unknown command").
        """
        for command, option in [("sipedge", "--config"), ("sipedge-relay", "--control")]:
            out = _twistd(self, command, "--help")
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn(f"twistd [options] {command} ", out.stdout)
            self.assertIn(option, out.stdout)


_DUPLICATE = """
from sipedge.plugins.sipedge_stages import StageFactory

def _build(options, section, services):
    raise AssertionError("never built")

sanity = StageFactory("sanity", "A second stage called sanity.", _build)
"""


class DuplicateStageTests(SynchronousTestCase):
    """Two plugins that give the same stage name."""

    def install(self, source: str) -> str:
        """
        A dropin of C{source} in a new directory of L{sipedge.plugins}'
        path, as another installed plugin would be; its module name.
        """
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        (directory / "sipedge_duplicate_test.py").write_text(source)
        self.patch(sipedge.plugins, "__path__", [*sipedge.plugins.__path__, str(directory)])
        module = "sipedge.plugins.sipedge_duplicate_test"
        self.addCleanup(sys.modules.pop, module, None)
        return module

    def test_start_up_stops(self) -> None:
        """
        If a plugin gives a stage name that a built-in stage has,
        L{stage_factories} (so start-up, in L{build_chain}) stops with a
        L{ConfigError} naming both plugin modules and the stage.
        """
        module = self.install(_DUPLICATE)
        error = self.assertRaises(ConfigError, stage_factories)
        message = str(error)
        self.assertIn("stage 'sanity' is given by two plugins", message)
        self.assertIn("sipedge.plugins.sipedge_stages", message)
        self.assertIn(module, message)
        services = StageServices(clock=Clock(), local=LocalIdentity(("example.com",), ()))
        self.assertRaises(ConfigError, build_chain, ["sanity"], {}, services)

    def test_unique(self) -> None:
        """
        L{unique_factories} keeps one factory a name; the same factory found
        twice is no conflict, two different ones are.
        """
        factories = stage_factories()
        sanity = factories["sanity"]
        found = unique_factories([("a", sanity), ("a", sanity), ("b", factories["route"])])
        self.assertEqual(found, {"sanity": sanity, "route": factories["route"]})
        error = self.assertRaises(
            ConfigError, unique_factories, [("a", sanity), ("b", _Named("sanity"))]
        )
        self.assertIn("a (<StageFactory sanity>) and b (<named sanity>)", str(error))


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<named {self.name}>"


class StagePluginTests(SynchronousTestCase):
    """The built-in stage factories, found as plugins in L{sipedge.plugins}."""

    def test_builtin_found(self) -> None:
        """
        C{getPlugins(IStageFactory, sipedge.plugins)} finds a factory for
        every stage of the default chain, each an C{IPlugin} from one of
        sipedge's own plugin modules.
        """
        own = (
            "sipedge.plugins.sipedge_stages",
            "sipedge.plugins.sipedge_security_stages",
            "sipedge.plugins.sipedge_auth_stages",
            "sipedge.plugins.sipedge_monitor_stages",
            "sipedge.plugins.sipedge_media_stages",
        )
        found = {
            factory.name: factory
            for factory in getPlugins(IStageFactory, sipedge.plugins)
            if type(factory).__module__ in own
        }
        self.assertEqual(sorted(found), sorted(DEFAULT_STAGES))
        for factory in found.values():
            self.assertTrue(verifyObject(IStageFactory, factory))
            self.assertTrue(IPlugin.providedBy(factory))
            self.assertTrue(factory.description)

    def test_stage_factories(self) -> None:
        """L{stage_factories} gives every built-in factory by its name."""
        factories = stage_factories()
        for name in DEFAULT_STAGES:
            self.assertEqual(factories[name].name, name)

    def test_builds_named_stages(self) -> None:
        """
        Each built-in factory, given no options, builds an L{IRequestStage}
        whose name is the factory's, the name used in config and logs.
        """
        services = StageServices(
            clock=Clock(),
            local=LocalIdentity(("sipedge.test",), ()),
            config=DEFAULT_CONFIG,
            media=DEFAULT_CONFIG.media.build_relay(FakeReactor()),
        )
        factories = stage_factories()
        for name in DEFAULT_STAGES:
            stage = factories[name].build_stage({}, services)
            self.assertTrue(verifyObject(IRequestStage, stage))
            self.assertEqual(stage.name, name)
