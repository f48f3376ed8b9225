# -*- test-case-name: sipedge.test.test_transaction -*-
"""
The transaction layer: RFC 3261 section 17 state machines, with RFC 6026,
driven by an injected clock (sans-IO apart from C{clock.callLater}), and the
L{TimerWheel} that coalesces their timers.
"""

from sipedge.transaction._base import set_tracing
from sipedge.transaction._client import ClientInviteTransaction, ClientNonInviteTransaction
from sipedge.transaction._key import TransactionKey, client_key, server_key
from sipedge.transaction._layer import STAT_NAMES, TransactionLayer
from sipedge.transaction._response import REASON_PHRASES, make_response, reason_phrase
from sipedge.transaction._server import ServerInviteTransaction, ServerNonInviteTransaction
from sipedge.transaction._states import ClientInput, ServerInput, State
from sipedge.transaction._timers import TimerSettings
from sipedge.transaction._wheel import TimerWheel

__all__ = [
    "REASON_PHRASES",
    "STAT_NAMES",
    "ClientInput",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ServerInput",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "State",
    "TimerSettings",
    "TimerWheel",
    "TransactionKey",
    "TransactionLayer",
    "client_key",
    "make_response",
    "reason_phrase",
    "server_key",
    "set_tracing",
]
