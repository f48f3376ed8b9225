# -*- test-case-name: sipedge.test.test_examples -*-
"""
Tests for the example stage plugin in C{examples/blocklist/} (cf.
C{twisted/names/test/test_examples.py}): it is found as a plugin, does what
its documentation says, and the example configuration builds a chain.

Each test works on a copy of the example in its own temporary directory, so
nothing (C{dropin.cache}, C{__pycache__}) is written into the checkout.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.plugin import getPlugins
from twisted.trial import reporter, runner
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import sipedge
import sipedge.plugins
from sipedge.config import load_config
from sipedge.error import ConfigError
from sipedge.interfaces import IStageFactory
from sipedge.message import Request, parse_datagram
from sipedge.pipeline import (
    Continue,
    RequestContext,
    Respond,
    StageServices,
    build_chain,
    stage_factories,
)
from sipedge.proxy import LocalIdentity
from sipedge.store import MemoryLocationStore
from sipedge.transport import Flow

ROOT = Path(sipedge.__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "blocklist"
FLOW = Flow("UDP", "127.0.0.1", 5060, "203.0.113.9", 5070)
# Modules the example adds; removed again after each test.
MODULES = (
    "sipedge_blocklist",
    "sipedge.plugins.sipedge_blocklist_plugin",
    "test_sipedge_blocklist",
)


def invite(caller: str, *fields: str, uri: str = "sip:bob@sipedge.test") -> Request:
    """An INVITE for C{uri} from C{caller} (a From URI)."""
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-ex1",
        "Max-Forwards: 70",
        f"From: <{caller}>;tag=1",
        f"To: <{uri}>",
        "Call-ID: example-1",
        "CSeq: 1 INVITE",
        *fields,
        "Content-Length: 0",
    ]
    request = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(request, Request)
    return request


class BlocklistExampleTests(SynchronousTestCase):
    """The C{examples/blocklist} plugin, found from its own directory."""

    if not EXAMPLE.is_dir():
        skip = "not running from a checkout"

    def setUp(self) -> None:
        self.example = Path(self.mktemp()).absolute()
        shutil.copytree(
            EXAMPLE,
            self.example,
            ignore=shutil.ignore_patterns(
                "__pycache__", "dropin.cache", "_trial_temp*", "build", "*.egg-info"
            ),
        )
        for name in MODULES:
            self.addCleanup(sys.modules.pop, name, None)
        # Importing a submodule also sets it as an attribute of its package.
        self.addCleanup(vars(sipedge.plugins).pop, "sipedge_blocklist_plugin", None)
        self.plugins = str(self.example / "sipedge" / "plugins")

    def install(self) -> ModuleType:
        """
        Make the copy importable and its dropin visible, as an installed
        plugin would be; return the stage module. Both are undone after
        the test.
        """
        self.patch(sys, "path", [str(self.example), *sys.path])
        self.patch(sipedge.plugins, "__path__", [*sipedge.plugins.__path__, self.plugins])
        return importlib.import_module("sipedge_blocklist")

    def test_layout(self) -> None:
        """
        The dropin directory and its parent have no C{__init__.py}: they are
        not packages of the example, only where sipedge looks for plugins.
        """
        self.assertTrue((EXAMPLE / "sipedge" / "plugins" / "sipedge_blocklist_plugin.py").is_file())
        self.assertFalse((EXAMPLE / "sipedge" / "__init__.py").exists())
        self.assertFalse((EXAMPLE / "sipedge" / "plugins" / "__init__.py").exists())

    def test_found(self) -> None:
        """
        If the example's C{sipedge/plugins} directory is in
        L{sipedge.plugins}' path, C{getPlugins} finds its factory, and
        L{stage_factories} gives it beside the built-in ones.
        """
        module = self.install()
        found = [p for p in getPlugins(IStageFactory, sipedge.plugins) if p.name == "blocklist"]
        self.assertEqual(len(found), 1, found)
        self.assertIsInstance(found[0], module.BlocklistFactory)
        self.assertTrue(verifyObject(IStageFactory, found[0]))
        factories = stage_factories()
        self.assertIsInstance(factories["blocklist"], module.BlocklistFactory)
        self.assertIn("sanity", factories)

    def test_found_on_sys_path(self) -> None:
        """
        If the example's directory is on C{PYTHONPATH} (how
        C{doc/writing-stages.md} says to run an uninstalled plugin next to an
        installed sipedge, also an editable one), C{sipedge.plugins} finds it
        by itself, and the example's C{sipedge/} directory does not hide the
        real package.
        """
        code = (
            "from sipedge.pipeline import stage_factories\n"
            "print(type(stage_factories()['blocklist']).__module__)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=str(self.example),
            env={**os.environ, "PYTHONPATH": str(self.example)},
        )
        self.assertEqual(out.stdout.strip(), "sipedge_blocklist", out.stderr)

    def build_stage(self) -> Any:
        """The example's stage, built from the example configuration's options."""
        self.install()
        config = load_config(self.example / "sipedge.toml")
        factory = stage_factories()["blocklist"]
        return factory.build_stage(config.pipeline.options_for("blocklist"), None)

    def test_blocks(self) -> None:
        """
        If the caller is on the list, the stage answers 403 and logs the
        rule that matched.
        """
        stage = self.build_stage()
        events: list[dict[str, Any]] = []
        observer: Any = events.append
        for caller, rule in [
            ("sip:sipvicious@203.0.113.9", "sipvicious@*"),
            ("sip:eve@198.51.100.20", "*@198.51.100.*"),
            ("sip:anonymous@Anonymous.INVALID", "anonymous@anonymous.invalid"),
        ]:
            context = RequestContext(invite(caller), FLOW, log=Logger(observer=observer))
            self.assertEqual(stage.process_request(context), Respond(403))
            self.assertEqual(events[-1]["rule"], rule)
            self.assertEqual(events[-1]["method"], "INVITE")

    def test_marks_others(self) -> None:
        """
        If the caller is not on the list, the stage lets the request go on
        with C{X-Screened: yes}, replacing any the caller sent.
        """
        stage = self.build_stage()
        request = invite("sip:alice@sipedge.test", "X-Screened: trust me")
        context = RequestContext(request, FLOW)
        self.assertEqual(stage.process_request(context), Continue())
        self.assertEqual(context.request.headers.get_all("X-Screened"), ("yes",))
        self.assertEqual(context.original, request)

    def test_example_config(self) -> None:
        """
        The example configuration loads, and L{build_chain} builds its chain,
        with the blocklist right after the sanity stage.
        """
        self.install()
        config = load_config(self.example / "sipedge.toml")
        self.assertEqual(config.pipeline.stages[:2], ("sanity", "blocklist"))
        chain = build_chain(
            config.pipeline.stages,
            {name: config.pipeline.options_for(name) for name in config.pipeline.stages},
            self.services(config),
        )
        self.assertEqual(tuple(stage.name for stage in chain.stages), config.pipeline.stages)

    def services(self, config: Any) -> StageServices:
        return StageServices(
            clock=Clock(),
            local=LocalIdentity(config.sip.domains, [("UDP", "127.0.0.1", 5060)]),
            location=MemoryLocationStore(),
            config=config,
        )

    def test_example_chain(self) -> None:
        """
        In the example's chain, a blocked caller gets 403 from the blocklist,
        and a request let through reaches the later stages marked (here the
        location stage answers 404: nobody is registered).
        """
        self.install()
        config = load_config(self.example / "sipedge.toml")
        chain = build_chain(
            config.pipeline.stages,
            {name: config.pipeline.options_for(name) for name in config.pipeline.stages},
            self.services(config),
        )
        blocked = RequestContext(invite("sip:sipvicious@203.0.113.9"), FLOW, self.services(config))
        self.assertEqual(chain.run(blocked), Respond(403))
        self.assertNotIn("responsibility", blocked.annotations)
        allowed = RequestContext(invite("sip:alice@example.com"), FLOW, self.services(config))
        # The memory store's look-up has its answer at once: no Deferred.
        self.assertEqual(chain.run(allowed), Respond(404))
        self.assertEqual(allowed.request.headers.get("X-Screened"), "yes")

    def test_not_installed(self) -> None:
        """
        If the example is not installed, building its chain fails with a
        L{ConfigError} naming the missing stage.
        """
        if "blocklist" in stage_factories():
            raise self.skipTest("sipedge-blocklist is installed")
        config = load_config(self.example / "sipedge.toml")
        with self.assertRaises(ConfigError) as raised:
            build_chain(config.pipeline.stages, {}, self.services(config))
        self.assertIn("pipeline.stages[1]: unknown stage 'blocklist'", str(raised.exception))

    def test_example_tests(self) -> None:
        """The example's own tests (C{test_sipedge_blocklist.py}) pass."""
        self.install()
        suite = runner.TestLoader().loadModule(importlib.import_module("test_sipedge_blocklist"))
        result = reporter.TestResult()
        suite.run(result)
        self.assertEqual((result.errors, result.failures), ([], []))
        self.assertTrue(result.wasSuccessful())
        self.assertGreater(result.testsRun, 0)


FLAKY_TRUNK = ROOT / "examples" / "flaky-trunk"


class FlakyTrunkExampleTests(SynchronousTestCase):
    """The lab scenario in C{examples/flaky-trunk}: its own tests pass."""

    if not FLAKY_TRUNK.is_dir():
        skip = "examples/flaky-trunk is not in this installation"

    def test_lab_runs(self) -> None:
        """
        C{test_flaky_trunk.py}, loaded from a copy of the example, passes:
        the configuration it ships builds, and the lab's calls complete.
        """
        copy = Path(self.mktemp()).absolute()
        shutil.copytree(
            FLAKY_TRUNK, copy, ignore=shutil.ignore_patterns("__pycache__", "_trial_temp*")
        )
        self.patch(sys, "path", [str(copy), *sys.path])
        self.addCleanup(sys.modules.pop, "test_flaky_trunk", None)
        module = importlib.import_module("test_flaky_trunk")
        self.assertEqual(Path(module.__file__ or "").parent, copy)
        suite = runner.TestLoader().loadModule(module)
        result = reporter.TestResult()
        suite.run(result)
        self.assertEqual((result.errors, result.failures), ([], []))
        self.assertEqual(result.testsRun, 2)

    def test_config_checks(self) -> None:
        """The example's C{sipedge.toml} loads, with the fault stage first."""
        config = load_config(FLAKY_TRUNK / "sipedge.toml")
        self.assertEqual(config.pipeline.stages[0], "fault")
        self.assertEqual(len(config.pipeline.options_for("fault")["rules"]), 2)
