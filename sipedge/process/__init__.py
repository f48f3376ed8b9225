"""
Several processes serving one configuration: the listening sockets of a
group of workers (L{bind_group}), the supervisor that runs them
(L{WorkerSupervisor}), what a worker is told (L{WorkerSpec}), and what
workers hand each other (L{WorkerRouter}, L{WorkerTransportManager}, over a
L{WorkerChannel}). See C{doc/workers.md}.
"""

from sipedge.process._channel import (
    HANDOFF_MAGIC,
    NEWS,
    NO_FLOW,
    WorkerChannel,
    decode_handoff,
    encode_handoff,
)
from sipedge.process._handoff import (
    MAX_AWAITING,
    STRAY_WAIT,
    RemoteConnection,
    WorkerRouter,
    WorkerTransportManager,
)
from sipedge.process._http import WorkerAnswer, WorkerHTTP
from sipedge.process._sockets import (
    ADMIN,
    CHANNEL,
    CHANNEL_HOST,
    METRICS,
    OWN,
    SHARED,
    WorkerSocket,
    WorkerSpec,
    bind_group,
    bind_private,
    bind_socket,
    channel_ports,
    own_addresses,
    private_port,
)
from sipedge.process._supervisor import (
    READY_MARK,
    RELEASE,
    WorkerSupervisor,
    wait_released,
    worker_record,
)

__all__ = [
    "ADMIN",
    "CHANNEL",
    "CHANNEL_HOST",
    "HANDOFF_MAGIC",
    "MAX_AWAITING",
    "METRICS",
    "NEWS",
    "NO_FLOW",
    "OWN",
    "READY_MARK",
    "RELEASE",
    "SHARED",
    "STRAY_WAIT",
    "RemoteConnection",
    "WorkerAnswer",
    "WorkerChannel",
    "WorkerHTTP",
    "WorkerRouter",
    "WorkerSocket",
    "WorkerSpec",
    "WorkerSupervisor",
    "WorkerTransportManager",
    "bind_group",
    "bind_private",
    "bind_socket",
    "channel_ports",
    "decode_handoff",
    "encode_handoff",
    "own_addresses",
    "private_port",
    "wait_released",
    "worker_record",
]
