"""
Several processes serving one configuration: the listening sockets of a
group of workers (L{bind_group}), the supervisor that runs them
(L{WorkerSupervisor}), and what a worker is told (L{WorkerSpec}). See
C{doc/workers.md}.
"""

from sipedge.process._sockets import (
    OWN,
    SHARED,
    WorkerSocket,
    WorkerSpec,
    bind_group,
    bind_socket,
    own_addresses,
)
from sipedge.process._supervisor import READY_MARK, WorkerSupervisor

__all__ = [
    "OWN",
    "READY_MARK",
    "SHARED",
    "WorkerSocket",
    "WorkerSpec",
    "WorkerSupervisor",
    "bind_group",
    "bind_socket",
    "own_addresses",
]
