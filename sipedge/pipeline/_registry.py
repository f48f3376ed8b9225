# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
Finding stage factories as Twisted plugins (Twisted's "alternate plugin
packages": C{getPlugins(IStageFactory, sipedge.plugins)}), and building the
configured chain from them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.plugin import getPlugins

from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.pipeline._chain import RequestChain

__all__ = ["build_chain", "stage_factories"]


def stage_factories() -> dict[str, Any]:
    """Every stage factory installed, by name."""
    import sipedge.plugins

    found: dict[str, Any] = {}
    for factory in getPlugins(IStageFactory, sipedge.plugins):
        found.setdefault(factory.name, factory)
    return found


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
