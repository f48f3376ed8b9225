"""
The transaction user: an RFC 3261 section 16 stateful proxy and registrar.
"""

from sipedge.pipeline import LocalIdentity
from sipedge.proxy._core import ProxyCore
from sipedge.proxy._dialogs import DialogTracker
from sipedge.proxy._flowtoken import PARAM as FLOW_PARAM
from sipedge.proxy._flowtoken import DialogFlows, FlowTokens, PartyFlow
from sipedge.proxy._forwarding import forwarded_request
from sipedge.proxy._keepalive import (
    DEFAULT_KEEPALIVE_INTERVAL,
    PING_TIMEOUT,
    NatKeepalive,
    bound_to_connection,
    needs_keepalive,
)
from sipedge.proxy._registrar import Registrar
from sipedge.proxy._rr import RecordRouteSigner
from sipedge.proxy._seal import Sealer
from sipedge.proxy._topology import TopologyHider

__all__ = [
    "DEFAULT_KEEPALIVE_INTERVAL",
    "FLOW_PARAM",
    "PING_TIMEOUT",
    "DialogFlows",
    "DialogTracker",
    "FlowTokens",
    "LocalIdentity",
    "NatKeepalive",
    "PartyFlow",
    "ProxyCore",
    "RecordRouteSigner",
    "Registrar",
    "Sealer",
    "TopologyHider",
    "bound_to_connection",
    "forwarded_request",
    "needs_keepalive",
]
