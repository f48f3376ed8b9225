"""
The transaction user: an RFC 3261 section 16 stateful proxy and registrar.
"""

from sipedge.proxy._core import ProxyCore
from sipedge.proxy._dialogs import DialogTracker
from sipedge.proxy._local import LocalIdentity
from sipedge.proxy._registrar import Registrar
from sipedge.proxy._rr import RecordRouteSigner
from sipedge.proxy._seal import Sealer
from sipedge.proxy._topology import TopologyHider

__all__ = [
    "DialogTracker",
    "LocalIdentity",
    "ProxyCore",
    "RecordRouteSigner",
    "Registrar",
    "Sealer",
    "TopologyHider",
]
