"""
The C{fault} stage (fault injection for interop labs), registered as a
plugin like any third-party stage. Its settings are
C{[pipeline.options.fault]}: C{seed} and a list of C{[[rules]]}; see
C{doc/testing.md}. It is in no default chain: a lab lists it in
C{[pipeline] stages} on purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sipedge.plugins.sipedge_stages import StageFactory

if TYPE_CHECKING:
    from sipedge.pipeline import StageServices


class LabStageFactory(StageFactory):
    """
    L{StageFactory}, under this module's name: stage factories are told
    apart by their module, and lab stages are no part of the default chain.
    """

    def __repr__(self) -> str:
        return f"<LabStageFactory {self.name}>"


def _fault(options: dict[str, Any], section: None, services: StageServices) -> Any:
    from sipedge.pipeline.stages import FaultStage, rules_from_options

    rules, seed = rules_from_options(options)
    return FaultStage(rules, services.clock, seed)


fault = LabStageFactory(
    "fault",
    "Fault injection for labs: drop, delay or mangle the requests and responses its rules"
    " match (method, status, header pattern, probability). Never in production.",
    _fault,
    ("rules", "seed"),
)
