"""
The built-in request stages, registered as plugins like any third-party
stage would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from sipedge.error import ConfigError
from sipedge.interfaces import IStageFactory

if TYPE_CHECKING:
    from sipedge.config import Config, LimitsConfig, Route
    from sipedge.pipeline import StageServices


Section = Callable[["Config"], Any]
"""Which typed section of the configuration a stage reads (C{None}: none)."""


@implementer(IPlugin, IStageFactory)
class StageFactory:
    """
    A stage factory made of a name, a description, a builder and the typed
    section of the configuration the stage reads.

    @ivar section: a function from the L{Config} to the stage's own section
        (C{lambda config: config.media}), or C{None} for a stage that reads
        none. The builder is called as C{builder(options, section,
        services)} with that section of C{services.config} (of the defaults
        if the services carry none), so no stage digs into the whole
        configuration.
    """

    def __init__(
        self,
        name: str,
        description: str,
        builder: Callable[[dict[str, Any], Any, StageServices], Any],
        options: tuple[str, ...] = (),
        section: Section | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.section = section
        self._builder = builder
        self._options = options

    def build_stage(self, options: dict[str, Any], services: StageServices) -> Any:
        unknown = sorted(set(options) - set(self._options))
        if unknown:
            raise ConfigError(
                f"pipeline.options.{self.name}: unknown option {unknown[0]!r}"
                + (f" (known: {', '.join(self._options)})" if self._options else " (takes none)")
            )
        return self._builder(options, self.section_of(services), services)

    def section_of(self, services: StageServices) -> Any:
        """This stage's section of C{services}' configuration (or C{None})."""
        return None if self.section is None else self.section(services.settings)

    def __repr__(self) -> str:
        return f"<StageFactory {self.name}>"


def _sanity(options: dict[str, Any], limits: LimitsConfig, services: StageServices) -> Any:
    from sipedge.pipeline.stages import SanityStage

    supported = options.get("supported", [])
    if not isinstance(supported, list) or not all(isinstance(t, str) for t in supported):
        raise ConfigError("pipeline.options.sanity.supported: must be a list of option tags")
    return SanityStage(limits.message_limits, frozenset(supported))


def _simple(cls: str) -> Callable[[dict[str, Any], Any, StageServices], Any]:
    def build(options: dict[str, Any], section: None, services: StageServices) -> Any:
        from sipedge.pipeline import stages

        return getattr(stages, cls)()

    return build


def _static_route(
    options: dict[str, Any], routes: tuple[Route, ...], services: StageServices
) -> Any:
    from sipedge.pipeline.stages import StaticRouteStage

    return StaticRouteStage(routes)


sanity = StageFactory(
    "sanity",
    "Refuse malformed requests with the status their fault calls for.",
    _sanity,
    ("supported",),
    section=lambda config: config.limits,
)
max_forwards = StageFactory(
    "max-forwards", "Answer 483 when Max-Forwards is 0; 200 to OPTIONS to the edge itself.",
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
    "static-route", "Send requests for configured domains or prefixes to a next hop.",
    _static_route,
    section=lambda config: config.routes,
)
forward = StageFactory(
    "forward", "Forward to the Request-URI (the last stage).",
    _simple("ForwardStage"),
)
