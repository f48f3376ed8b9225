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
from twisted.plugin import IPlugin, getPlugins, pluginPackagePaths
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import sipedge
import sipedge.plugins
from sipedge import tap
from sipedge.config import DEFAULT_CONFIG, DEFAULT_STAGES
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.pipeline import StageServices, stage_factories
from sipedge.proxy import LocalIdentity
from sipedge.testing import FakeReactor

ROOT = Path(sipedge.__file__).resolve().parent.parent
DROPIN = ROOT / "twisted" / "plugins" / "sipedge_plugin.py"


class TwistdPluginTests(SynchronousTestCase):
    """The C{twistd sipedge} plugin."""

    def setUp(self) -> None:
        if DROPIN.exists():
            # As if the checkout were on sys.path when twisted.plugins was
            # imported (twisted/plugins/__init__.py extends its __path__ then).
            import twisted.plugins

            self.patch(sys, "path", [str(ROOT), *sys.path])
            paths = list(twisted.plugins.__path__)
            paths += [p for p in pluginPackagePaths("twisted.plugins") if p not in paths]
            self.patch(twisted.plugins, "__path__", paths)

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
            env={**os.environ, "PYTHONPATH": str(ROOT)},
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
