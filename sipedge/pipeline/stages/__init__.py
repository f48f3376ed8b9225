"""
The built-in request stages, one per module. Each is registered as a plugin
in C{sipedge/plugins/} (C{sipedge_stages.py}, C{sipedge_security_stages.py},
...), which builds it from these public names.
"""

from sipedge.pipeline.stages._ban import BanCheckStage
from sipedge.pipeline.stages._digest_auth import DigestAuthStage, build_digest_auth_stage
from sipedge.pipeline.stages._fault import FaultRule, FaultStage, rules_from_options
from sipedge.pipeline.stages._filter import FilterStage
from sipedge.pipeline.stages._flood import FloodStage
from sipedge.pipeline.stages._forward import ForwardStage
from sipedge.pipeline.stages._location import LocationStage
from sipedge.pipeline.stages._loop import LoopDetectStage
from sipedge.pipeline.stages._max_forwards import MaxForwardsStage
from sipedge.pipeline.stages._media_anchor import MediaAnchorStage, MediaEnded
from sipedge.pipeline.stages._monitor import MonitorStage
from sipedge.pipeline.stages._registrar import RegistrarStage
from sipedge.pipeline.stages._responsibility import ResponsibilityStage
from sipedge.pipeline.stages._route import RouteStage
from sipedge.pipeline.stages._sanity import SanityStage
from sipedge.pipeline.stages._scanner import ScannerStage
from sipedge.pipeline.stages._static_route import StaticRouteStage
from sipedge.pipeline.stages._toll_fraud import TollFraudStage

__all__ = [
    "BanCheckStage",
    "DigestAuthStage",
    "FaultRule",
    "FaultStage",
    "FilterStage",
    "FloodStage",
    "ForwardStage",
    "LocationStage",
    "LoopDetectStage",
    "MaxForwardsStage",
    "MediaAnchorStage",
    "MediaEnded",
    "MonitorStage",
    "RegistrarStage",
    "ResponsibilityStage",
    "RouteStage",
    "SanityStage",
    "ScannerStage",
    "StaticRouteStage",
    "TollFraudStage",
    "build_digest_auth_stage",
    "rules_from_options",
]
