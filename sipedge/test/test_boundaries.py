# -*- test-case-name: sipedge.test.test_boundaries -*-
"""
Tests that keep the architecture's rules and the project's promises honest.

The dependency rules (C{doc/architecture.md}) are checked by reading every
module's imports with L{ast}, nothing imported, so a new violation fails
with the file and line that break the rule:

 1. Layers: a module imports only from its own layer and the layers below
    it (L{LAYERS}); two packages of the same layer do not import each
    other. Imports under C{if TYPE_CHECKING:} are annotations only and are
    exempt from this rule (not from the others).
 2. Leaves (L{LEAVES}: C{error}, C{flow}, C{results}, C{interfaces}, ...)
    import nothing of sipedge at run time but other leaves.
 3. Private modules stay private: nothing imports C{sipedge.<pkg>._<mod>}
    (or a C{_name}) from outside the package C{sipedge.<pkg>} (its
    subpackages count as inside); a package exports what others use in its
    C{__init__}/C{__all__}. A test module may import the private module it
    tests: the one whose C{test-case-name} header names it.
 4. The sans-IO core: C{sipedge.message} imports no Twisted or zope module,
    directly or not; importing C{sipedge.media} loads no Twisted module.
 5. Stages see a C{RequestContext} and interfaces: C{pipeline} and its
    stages import no transport, transaction or proxy module. C{media}
    knows nothing of SIP transactions or transports.
 6. Only the composition root touches the global reactor or the wall clock
    (C{twisted.internet.reactor}, C{time.time}, C{time.monotonic}).
 7. Plugin modules (C{sipedge/plugins/*.py}) are loaded by Twisted's plugin
    finder: no module of sipedge imports them (tests may); the package
    C{sipedge.plugins} itself is the namespace C{getPlugins} searches.
 8. C{benchmarks/} and C{examples/} use sipedge as its users do: public
    names only, and nothing from C{sipedge.test} (the harness is
    C{sipedge.testing}); no module of sipedge but the tests imports
    C{sipedge.test} (rule 1: it is the top layer).
 9. Test modules do not import each other: shared helpers live in the
    public harness, C{sipedge.testing} (the hypothesis strategies of
    C{sipedge.test.strategies} aside).
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).parent.parent.parent

#: The layers, lowest first; a module may import from its own layer and
#: the layers below. Units sharing a layer do not import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"leaf"}),
    frozenset({"message"}),
    frozenset({"transport"}),
    frozenset({"transaction"}),
    frozenset({"process"}),
    frozenset({"store"}),
    frozenset({"media"}),
    frozenset({"security"}),
    frozenset({"auth"}),
    frozenset({"accounting", "capture", "metrics"}),
    frozenset({"admin"}),
    frozenset({"config"}),
    frozenset({"pipeline"}),
    frozenset({"pipeline.stages", "proxy"}),
    frozenset({"plugins"}),
    frozenset({"root"}),
    frozenset({"testing"}),
    frozenset({"test"}),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}

#: Leaf modules: plain values and contracts that every layer shares.
LEAVES = frozenset(
    {
        "sipedge",
        "sipedge.error",
        "sipedge.flow",
        "sipedge.results",
        "sipedge.interfaces",
        "sipedge.tls_profiles",
        "sipedge._log",
        "sipedge._debug",
        "sipedge._config_values",
    }
)

#: The composition root: options and configuration in, services out.
COMPOSITION_ROOT = frozenset(
    {
        "sipedge.tap",
        "sipedge.service",
        "sipedge.worker_service",
        "sipedge.relay_tap",
        "sipedge.relay_service",
        "sipedge.cli",
        "sipedge._cli_user",
        "sipedge._cli_ban",
        "sipedge._cli_ctl",
        "sipedge._logging",
        "sipedge._reload",
        "sipedge._reload_keys",
    }
)

#: Units that must not import others although the layer order allows it
#: (ARCHITECTURE rules 3-5).
FORBIDDEN = {
    "pipeline": frozenset({"transport", "transaction", "proxy"}),
    "pipeline.stages": frozenset({"transport", "transaction", "proxy"}),
    "media": frozenset({"transport", "transaction"}),
}

#: Modules that stand for the wall clock or the global reactor.
_GLOBAL_TIME = frozenset({"time.time", "time.monotonic", "twisted.internet.reactor"})

_TEST_CASE_NAME = re.compile(r"test-case-name:\s*([\w., ]+?)\s*(?:-\*-|$)", re.M)


@attrs.frozen
class Import:
    """
    One name or module imported from sipedge.

    @ivar target: the dotted name (C{sipedge.message.Request} for C{from
        sipedge.message import Request}: C{Request} may be a module or a
        name).
    @ivar line: the line of the import statement.
    @ivar type_checking: under C{if TYPE_CHECKING:}.
    """

    target: str
    line: int
    type_checking: bool


@attrs.frozen
class Module:
    """One module of sipedge, read from its source."""

    name: str
    path: str
    package: str
    imports: tuple[Import, ...]
    test_case_names: frozenset[str]
    tree: ast.Module = attrs.field(eq=False, repr=False)

    @property
    def unit(self) -> str:
        return unit_of(self.name)

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


def unit_of(name: str) -> str:
    """
    The unit of module C{name}: C{"leaf"}, C{"root"}, C{"test"},
    C{"pipeline.stages"} or its package under C{sipedge} (C{"message"},
    C{"proxy"}, C{"config"}, C{"testing"}, ...).
    """
    if name in LEAVES:
        return "leaf"
    if name in COMPOSITION_ROOT:
        return "root"
    parts = name.split(".")
    if parts[1:3] == ["pipeline", "stages"]:
        return "pipeline.stages"
    return parts[1]


def _guarded(tree: ast.Module) -> set[int]:
    """The ids of the nodes under C{if TYPE_CHECKING:}."""
    nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                nodes.update(id(n) for n in ast.walk(child))
    return nodes


def _imports(tree: ast.Module, package: str) -> Iterator[Import]:
    guarded = _guarded(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] != "sipedge":
                continue
            for alias in node.names:
                yield Import(f"{module}.{alias.name}", node.lineno, id(node) in guarded)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sipedge":
                    yield Import(alias.name, node.lineno, id(node) in guarded)


def read_modules(root: Path = ROOT) -> dict[str, Module]:
    """Every module under C{root/sipedge}, by dotted name."""
    modules = {}
    for path in sorted((root / "sipedge").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = ".".join(parts)
        else:
            package = ".".join(parts[:-1])
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, str(path))
        header = _TEST_CASE_NAME.search("\n".join(source.splitlines()[:3]))
        names = header.group(1).split(",") if header else []
        name = ".".join(parts)
        modules[name] = Module(
            name=name,
            path=str(path.relative_to(root)),
            package=package,
            imports=tuple(_imports(tree, package)),
            test_case_names=frozenset(n.strip() for n in names if n.strip()),
            tree=tree,
        )
    return modules


def _imported_module(target: str, modules: dict[str, Module]) -> str:
    """The module C{target} names or is a name of."""
    while target not in modules and "." in target:
        target = target.rpartition(".")[0]
    return target


def _private_part(target: str, modules: dict[str, Module]) -> tuple[str, str] | None:
    """
    C{(owner, private)} for the first private component of C{target}, or
    C{None} if it has none: C{owner} is the package it is private to and
    C{private} the private module or name (C{("sipedge.proxy",
    "sipedge.proxy._core")} for C{sipedge.proxy._core.ProxyCore}; a
    C{_name} of C{sipedge.proxy._core} or of C{sipedge.proxy} is private to
    C{sipedge.proxy} too).
    """
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            prefix = ".".join(parts[:i])
            owner = modules[prefix].package if prefix in modules else prefix
            return owner, ".".join(parts[: i + 1])
    return None


def layer_violations(modules: dict[str, Module]) -> Iterator[str]:
    """Rules 1, 2, 5 and 7: imports that go up, sideways or out of bounds."""
    for module in modules.values():
        unit = module.unit
        if unit not in RANK:
            yield f"{module.path}: unit {unit!r} has no place in LAYERS (test_boundaries)"
            continue
        for imp in module.imports:
            target = _imported_module(imp.target, modules)
            if target == "sipedge.plugins" or target not in modules:
                continue
            other = unit_of(target)
            if target.startswith("sipedge.plugins.") and module.unit not in ("test", "plugins"):
                yield (
                    f"{module.where(imp.line)}: imports the plugin module {target};"
                    " plugins are loaded by getPlugins only"
                )
            if other == unit or imp.type_checking or other not in RANK:
                continue
            if unit == "leaf":
                yield (
                    f"{module.where(imp.line)}: leaf module {module.name} imports"
                    f" {target} ({other}); a leaf imports only leaves"
                )
            elif RANK[other] >= RANK[unit]:
                how = "a higher" if RANK[other] > RANK[unit] else "a peer"
                yield (
                    f"{module.where(imp.line)}: {unit} imports {target} from {how} layer ({other})"
                )
            elif other in FORBIDDEN.get(unit, ()):
                yield (f"{module.where(imp.line)}: {unit} must not import {other} ({target})")


def private_violations(modules: dict[str, Module]) -> Iterator[str]:
    """Rule 3: no import of another package's private module or name."""
    for module in modules.values():
        for imp in module.imports:
            found = _private_part(imp.target, modules)
            if found is None:
                continue
            owner, private = found
            if module.package == owner or module.package.startswith(owner + "."):
                continue
            tested = _imported_module(private, modules)
            if module.unit == "test" and tested in modules:
                if module.name in modules[tested].test_case_names:
                    continue
            yield (
                f"{module.where(imp.line)}: imports {imp.target}, private to {owner};"
                f" export it in {owner}.__all__ and import it from there"
            )


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def global_time_violations(modules: dict[str, Module]) -> Iterator[str]:
    """Rule 6: the global reactor and the wall clock, below the root."""
    for module in modules.values():
        if module.unit in ("root", "test", "testing"):
            continue
        for node in ast.walk(module.tree):
            used: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                used = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                used = [alias.name for alias in node.names]
            elif isinstance(node, ast.Call):
                used = [_dotted(node.func)]
            for name in used:
                if name in _GLOBAL_TIME:
                    yield (
                        f"{module.where(getattr(node, 'lineno', 0))}: uses {name}; below the"
                        " composition root a clock or reactor is a constructor argument"
                    )


def sans_io_violations(modules: dict[str, Module]) -> Iterator[str]:
    """Rule 4, directly: no Twisted or zope import in sipedge.message."""
    for module in modules.values():
        if module.unit != "message":
            continue
        for node in ast.walk(module.tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.split(".")[0] in ("twisted", "zope"):
                    where = module.where(getattr(node, "lineno", 0))
                    yield f"{where}: sipedge.message imports {name}"


#: The one module of sipedge/test/ that other test modules may import.
_SHARED_TEST_MODULES = frozenset({"sipedge.test", "sipedge.test.strategies"})


def test_to_test_violations(modules: dict[str, Module]) -> Iterator[str]:
    """Rule 9: a test module imports no other test module."""
    for module in modules.values():
        if module.unit != "test":
            continue
        for imp in module.imports:
            target = _imported_module(imp.target, modules)
            if (
                unit_of(target) == "test"
                and target != module.name
                and target not in _SHARED_TEST_MODULES
            ):
                yield (
                    f"{module.where(imp.line)}: imports {target}; shared test helpers"
                    " belong in sipedge.testing"
                )


def outside_violations(root: Path) -> Iterator[str]:
    """Rule 8: C{benchmarks/} and C{examples/} import public names only, and no test."""
    for folder in ("benchmarks", "examples"):
        for path in sorted((root / folder).rglob("*.py")):
            where = path.relative_to(root)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for imp in _imports(tree, ""):
                parts = imp.target.split(".")
                if parts[:2] == ["sipedge", "test"]:
                    yield f"{where}:{imp.line}: imports {imp.target}; use sipedge.testing"
                elif any(p.startswith("_") and not p.startswith("__") for p in parts):
                    yield f"{where}:{imp.line}: imports the private {imp.target}"


@functools.cache
def _sipedge_modules() -> dict[str, Module]:
    return read_modules(ROOT)


class DependencyRuleTests(SynchronousTestCase):
    """
    Every dependency rule of the architecture, checked on the source of
    every module under C{sipedge/}.
    """

    def setUp(self) -> None:
        self.modules = _sipedge_modules()

    def assertNoViolations(self, violations: Iterator[str]) -> None:
        found = sorted(set(violations))
        if found:
            self.fail(f"{len(found)} violation(s):\n" + "\n".join(found))

    def test_layers(self) -> None:
        """
        Every import goes down the layers (or stays in its unit), leaves
        import only leaves, stages and media keep out of transports and
        transactions, and no module imports a plugin module.
        """
        self.assertNoViolations(layer_violations(self.modules))

    def test_no_private_imports(self) -> None:
        """No module imports another package's private module or name."""
        self.assertNoViolations(private_violations(self.modules))

    def test_no_global_time(self) -> None:
        """Below the composition root, no global reactor and no wall clock."""
        self.assertNoViolations(global_time_violations(self.modules))

    def test_message_imports_no_twisted_directly(self) -> None:
        """No module of sipedge.message imports Twisted or zope."""
        self.assertNoViolations(sans_io_violations(self.modules))

    def test_tests_do_not_import_tests(self) -> None:
        """No test module imports another (helpers come from sipedge.testing)."""
        self.assertNoViolations(test_to_test_violations(self.modules))

    def test_benchmarks_and_examples(self) -> None:
        """Benchmarks and examples import public names only, and no test module."""
        self.assertNoViolations(outside_violations(ROOT))

    def test_every_unit_placed(self) -> None:
        """Every package under sipedge/ has a place in the layer order."""
        units = {module.unit for module in self.modules.values()}
        self.assertEqual(sorted(units - set(RANK)), [])


class RuleCheckerTests(SynchronousTestCase):
    """The checkers find what they are meant to find (they can fail)."""

    def parse(self, files: dict[str, str]) -> dict[str, Module]:
        root = Path(self.mktemp())
        for name, source in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        return read_modules(root)

    def test_upward_import(self) -> None:
        """A transport module importing the proxy is named with its line."""
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/proxy/__init__.py": "X = 1\n",
                "sipedge/transport/__init__.py": "",
                "sipedge/transport/_udp.py": "import os\nfrom sipedge.proxy import X\n",
            }
        )
        self.assertEqual(
            list(layer_violations(modules)),
            [
                "sipedge/transport/_udp.py:2: transport imports sipedge.proxy"
                " from a higher layer (proxy)"
            ],
        )

    def test_peer_and_forbidden(self) -> None:
        """Stages may not import the proxy (a peer), nor a transport (forbidden)."""
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/proxy/__init__.py": "X = 1\n",
                "sipedge/transport/__init__.py": "Y = 1\n",
                "sipedge/pipeline/__init__.py": "",
                "sipedge/pipeline/stages/__init__.py": "",
                "sipedge/pipeline/stages/_s.py": (
                    "from sipedge.proxy import X\nfrom sipedge.transport import Y\n"
                ),
            }
        )
        self.assertEqual(
            sorted(layer_violations(modules)),
            [
                "sipedge/pipeline/stages/_s.py:1: pipeline.stages imports"
                " sipedge.proxy from a peer layer (proxy)",
                "sipedge/pipeline/stages/_s.py:2: pipeline.stages must not"
                " import transport (sipedge.transport)",
            ],
        )

    def test_type_checking_exempt(self) -> None:
        """An import under C{if TYPE_CHECKING:} does not count as a layer dependency."""
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/error.py": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from sipedge.message import Request\n"
                ),
                "sipedge/message/__init__.py": "from sipedge.error import X\n",
            }
        )
        self.assertEqual(list(layer_violations(modules)), [])

    def test_leaf(self) -> None:
        """A leaf module importing a package is a violation."""
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/flow.py": "from sipedge.message import X\n",
                "sipedge/message/__init__.py": "X = 1\n",
            }
        )
        [violation] = layer_violations(modules)
        self.assertIn("sipedge/flow.py:1: leaf module sipedge.flow", violation)

    def test_private(self) -> None:
        """
        A private module or name of another package is refused; one's own
        package's, a subpackage's parent's, and the one a test tests are not.
        """
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/_log.py": "",
                "sipedge/message/__init__.py": "from sipedge.message._uri import U\n",
                "sipedge/message/_uri.py": (
                    "# -*- test-case-name: sipedge.test.test_uri -*-\nU = 1\n_V = 2\n"
                ),
                "sipedge/proxy/__init__.py": "from sipedge._log import L\n",
                "sipedge/proxy/_core.py": (
                    "from sipedge.message._uri import U\nfrom sipedge.message import _V\n"
                ),
                "sipedge/pipeline/__init__.py": "",
                "sipedge/pipeline/_chain.py": "",
                "sipedge/pipeline/stages/_x.py": "from sipedge.pipeline._chain import C\n",
                "sipedge/test/__init__.py": "",
                "sipedge/test/test_uri.py": "from sipedge.message._uri import U\n",
                "sipedge/test/test_other.py": "from sipedge.message._uri import U\n",
            }
        )
        self.assertEqual(
            sorted(v.split(" ", 1)[0] for v in private_violations(modules)),
            [
                "sipedge/proxy/_core.py:1:",
                "sipedge/proxy/_core.py:2:",
                "sipedge/test/test_other.py:1:",
            ],
        )

    def test_test_to_test(self) -> None:
        """A test importing another test module is named; the strategies are shared."""
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/test/__init__.py": "",
                "sipedge/test/strategies.py": "",
                "sipedge/test/test_a.py": "X = 1\n",
                "sipedge/test/test_b.py": (
                    "from sipedge.test.test_a import X\nfrom sipedge.test import strategies\n"
                ),
            }
        )
        self.assertEqual(
            [v.split(" ", 1)[0] for v in test_to_test_violations(modules)],
            ["sipedge/test/test_b.py:1:"],
        )

    def test_global_time(self) -> None:
        """C{time.time()} or the global reactor below the root is found; at the root not."""
        modules = self.parse(
            {
                "sipedge/__init__.py": "",
                "sipedge/tap.py": "from twisted.internet import reactor\n",
                "sipedge/media/__init__.py": "import time\nnow = time.time()\n",
                "sipedge/transport/__init__.py": "from twisted.internet import reactor\n",
            }
        )
        self.assertEqual(
            sorted(v.split(" ", 1)[0] for v in global_time_violations(modules)),
            ["sipedge/media/__init__.py:2:", "sipedge/transport/__init__.py:1:"],
        )


class OutsideCheckerTests(SynchronousTestCase):
    """L{outside_violations} finds a benchmark that imports a test or a private module."""

    def test_found(self) -> None:
        """Each bad import is named with its file and line; public ones pass."""
        root = Path(self.mktemp())
        (root / "benchmarks").mkdir(parents=True)
        (root / "benchmarks" / "b.py").write_text(
            "from sipedge.message import Request\n"
            "from sipedge.test.test_e2e import X\n"
            "from sipedge.proxy._core import ProxyCore\n"
        )
        self.assertEqual(
            [v.split(" ", 1)[0] for v in outside_violations(root)],
            ["benchmarks/b.py:2:", "benchmarks/b.py:3:"],
        )


class SansIOTests(SynchronousTestCase):
    """C{sipedge.message} and C{sipedge.media} load no Twisted (ARCHITECTURE rule 1)."""

    def assertLoadsNoTwisted(self, package: str) -> None:
        code = (
            "import sys, pkgutil, importlib\n"
            f"m = importlib.import_module({package!r})\n"
            f"if {package!r} == 'sipedge.message':\n"
            "    for info in pkgutil.iter_modules(m.__path__):\n"
            f"        importlib.import_module({package!r} + '.' + info.name)\n"
            "bad = sorted(n for n in sys.modules if n == 'twisted' or n.startswith('twisted.'))\n"
            "print(','.join(bad))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        self.assertEqual(out.stdout.strip(), "")

    def test_message_imports_no_twisted(self) -> None:
        """Importing every module of sipedge.message loads no twisted module."""
        self.assertLoadsNoTwisted("sipedge.message")

    def test_media_package_imports_no_twisted(self) -> None:
        """Importing sipedge.media (its sans-IO names) loads no twisted module."""
        self.assertLoadsNoTwisted("sipedge.media")


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
        commands = [line.strip() for line in readme.splitlines() if "twisted.trial" in line]
        self.assertEqual(len(commands), 1, commands)
        self.assertIn(commands[0], ci.splitlines())

    if not (ROOT / "README.md").exists():  # installed without the checkout
        test_ci_runs_readme_command.skip = "not running from a checkout"  # type: ignore[attr-defined]
