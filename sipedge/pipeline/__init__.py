"""
The extension point: request stages, their results, the context they share,
and the chain that runs them. Stages are found as Twisted plugins in the
C{sipedge.plugins} package (see C{doc/writing-stages.md}).
"""

from sipedge.pipeline._chain import RequestChain
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._local import LocalIdentity
from sipedge.pipeline._registry import build_chain, stage_factories, unique_factories
from sipedge.pipeline._services import StageServices
from sipedge.pipeline._settled import settled
from sipedge.results import Continue, Drop, Forward, Respond, StageResult, Target

__all__ = [
    "Continue",
    "Drop",
    "Forward",
    "LocalIdentity",
    "RequestChain",
    "RequestContext",
    "Respond",
    "StageResult",
    "StageServices",
    "Target",
    "build_chain",
    "settled",
    "stage_factories",
    "unique_factories",
]
