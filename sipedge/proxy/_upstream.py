# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
Responses going upstream on a fork's server transaction, once the
response chain has seen them (RFC 3261 16.7 steps 5 to 10), and the
responses the proxy makes itself for a stage's L{Respond}.

Each C{deliver_*} is called as C{deliver(fork, response, relayed)}:
C{relayed} is what the response chain made of C{response} (C{None}: it
absorbed it).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from sipedge.message import Request, Response
from sipedge.pipeline import Respond
from sipedge.proxy._fork import Fork
from sipedge.transaction import State, make_response

__all__ = [
    "deliver_final",
    "deliver_no_answer",
    "deliver_provisional",
    "local_response",
    "server_open",
    "takes_2xx",
]

_log = Logger()


def server_open(transaction: Any) -> bool:
    """True while a server transaction can still send a final response."""
    return transaction.state in (State.TRYING, State.PROCEEDING)


def takes_2xx(transaction: Any) -> bool:
    """
    True while a server INVITE transaction can send a 2xx: before its
    final response, and in ACCEPTED after a 2xx (RFC 6026 8.6).
    """
    return transaction.state in (State.TRYING, State.PROCEEDING, State.ACCEPTED)


def local_response(request: Request, result: Respond) -> Response:
    """The response a stage's L{Respond} asks for."""
    response = make_response(request, result.status, result.reason, tuple(result.headers))
    if result.body:
        response = Response(response.status, response.reason, response.headers, result.body)
    return response


def deliver_provisional(fork: Fork, response: Response, relayed: Response | None) -> None:
    """A provisional response goes on unless the chain absorbed it."""
    if relayed is not None and server_open(fork.server):
        fork.server.respond(relayed)


def deliver_final(fork: Fork, response: Response, relayed: Response | None) -> None:
    """A final response cannot be absorbed: it goes on as it came then."""
    if server_open(fork.server):
        fork.server.respond(relayed if relayed is not None else response)


def deliver_no_answer(fork: Fork, response: Response, relayed: Response | None) -> None:
    """
    A non-INVITE none of whose branches answered (RFC 4320 4.2): its
    server transaction ends without a response (the client's own Timer
    F ends its side), unless a response stage made another response
    than the 408 of it.
    """
    if not server_open(fork.server):
        return
    if relayed is not None and relayed.status != 408:
        fork.server.respond(relayed)
        return
    _log.info(
        "No answer to {method} {call_id}: no response sent (RFC 4320)",
        method=fork.request.method,
        call_id=fork.request.headers.get("Call-ID"),
    )
    fork.server.terminate()
