"""
The built-in request stages, registered as plugins like any third-party
stage would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from sipedge.error import ConfigError
from sipedge.interfaces import IStageFactory


@implementer(IPlugin, IStageFactory)
class StageFactory:
    """A stage factory made of a name, a description and a builder."""

    def __init__(
        self,
        name: str,
        description: str,
        builder: Callable[[dict[str, Any], Any], Any],
        options: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.description = description
        self._builder = builder
        self._options = options

    def build_stage(self, options: dict[str, Any], services: Any) -> Any:
        unknown = sorted(set(options) - set(self._options))
        if unknown:
            raise ConfigError(
                f"pipeline.options.{self.name}: unknown option {unknown[0]!r}"
                + (f" (known: {', '.join(self._options)})" if self._options else " (takes none)")
            )
        return self._builder(options, services)

    def __repr__(self) -> str:
        return f"<StageFactory {self.name}>"


def _sanity(options: dict[str, Any], services: Any) -> Any:
    from sipedge.message import Limits
    from sipedge.pipeline.stages import SanityStage

    supported = options.get("supported", [])
    if not isinstance(supported, list) or not all(isinstance(t, str) for t in supported):
        raise ConfigError("pipeline.options.sanity.supported: must be a list of option tags")
    limits = getattr(getattr(services, "config", None), "message_limits", None) or Limits()
    return SanityStage(limits, frozenset(supported))


def _simple(cls: str) -> Callable[[dict[str, Any], Any], Any]:
    def build(options: dict[str, Any], services: Any) -> Any:
        from sipedge.pipeline import stages

        return getattr(stages, cls)()

    return build


def _static_route(options: dict[str, Any], services: Any) -> Any:
    from sipedge.pipeline.stages import StaticRouteStage

    routes = getattr(getattr(services, "config", None), "routes", ())
    return StaticRouteStage(routes)


sanity = StageFactory(
    "sanity",
    "Refuse malformed requests with the status their fault calls for.",
    _sanity,
    ("supported",),
)
max_forwards = StageFactory(
    "max-forwards", "Answer 483 when Max-Forwards is 0 (200 to OPTIONS for us).",
    _simple("MaxForwardsStage"),
)
loop_detect = StageFactory(
    "loop-detect", "Answer 482 to a request that loops back unchanged.",
    _simple("LoopDetectStage"),
)
route = StageFactory(
    "route", "Strict-route fix-up; remove our own Route values.",
    _simple("RouteStage"),
)
responsibility = StageFactory(
    "responsibility", "Relay only in-dialog or trusted traffic; 403 otherwise.",
    _simple("ResponsibilityStage"),
)
registrar = StageFactory(
    "registrar", "Answer REGISTER for our domains.", _simple("RegistrarStage")
)
location = StageFactory(
    "location", "Forward requests for our users to their registered contacts.",
    _simple("LocationStage"),
)
static_route = StageFactory(
    "static-route", "Send requests for configured domains or prefixes to a next hop.", _static_route
)
forward = StageFactory(
    "forward", "Forward to the Request-URI (the last stage).",
    _simple("ForwardStage"),
)
