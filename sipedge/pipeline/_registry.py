# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
Finding stage factories as Twisted plugins (Twisted's "alternate plugin
packages": the dropins of C{sipedge.plugins} that provide L{IStageFactory}),
refusing two with one name, and building the configured chain from them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from twisted.logger import Logger
from twisted.plugin import getCache

from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.pipeline._chain import RequestChain

__all__ = ["build_chain", "stage_factories", "unique_factories"]

_log = Logger()


def stage_factories() -> dict[str, Any]:
    """
    Every stage factory installed, by name.

    @raise ConfigError: if two plugin modules give the same stage name,
        naming both: which one ran would depend on the order the plugin
        finder happened to find them in.
    """
    import sipedge.plugins

    found: list[tuple[str, Any]] = []
    for _, dropin in sorted(getCache(sipedge.plugins).items()):
        module = dropin.moduleName
        for plugin in dropin.plugins:
            try:
                factory = IStageFactory(plugin, None)
            except Exception:
                # As getPlugins does: a broken plugin module costs its stages only.
                _log.failure("Cannot load the stage plugin {module}", module=module)
                continue
            if factory is not None:
                found.append((module, factory))
    return unique_factories(found)


def unique_factories(found: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """
    The factories of C{found} (pairs of the plugin module that gives a
    factory and the factory) by stage name.

    @raise ConfigError: for two factories with the same name, naming both
        modules.
    """
    by_name: dict[str, tuple[str, Any]] = {}
    for module, factory in found:
        seen = by_name.get(factory.name)
        if seen is not None and seen[1] is not factory:
            raise ConfigError(
                f"stage {factory.name!r} is given by two plugins, {seen[0]} ({seen[1]!r})"
                f" and {module} ({factory!r}): remove one, or rename its stage"
            )
        by_name[factory.name] = (module, factory)
    return {name: factory for name, (module, factory) in by_name.items()}


def build_chain(
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    services: Any,
    factories: Mapping[str, Any] | None = None,
) -> RequestChain:
    """
    Build the request chain of C{names}, in order.

    @raise ConfigError: for an unknown stage name (with the closest names)
        or a stage that does not provide L{IRequestStage}.
    """
    if factories is None:
        factories = stage_factories()
    stages = []
    for i, name in enumerate(names):
        factory = factories.get(name)
        if factory is None:
            close = difflib.get_close_matches(name, list(factories), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"pipeline.stages[{i}]: unknown stage {name!r}{hint}; "
                f"installed: {', '.join(sorted(factories))}"
            )
        stage = factory.build_stage(dict(options.get(name, {})), services)
        if not IRequestStage.providedBy(stage):
            raise ConfigError(f"pipeline.stages[{i}]: {name!r} does not build a request stage")
        stages.append(stage)
    return RequestChain(stages)
