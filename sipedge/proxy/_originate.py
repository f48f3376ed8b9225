# -*- test-case-name: sipedge.test.test_proxy_originate -*-
"""
Requests the proxy sends on its own behalf (a BYE that ends a call): one
client transaction each, with our own Via and a fresh branch, sent to a
known flow or to where the request's next hop resolves (RFC 3263).

The proxy core is the transaction user of these transactions and hands
their responses and failures to the L{Originator}, which fires the
Deferred the request was sent with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import LocalProtocolError, MessageParseError, OriginateError, TransportError
from sipedge.flow import Flow
from sipedge.message import BRANCH_PREFIX, Request, Response
from sipedge.proxy._forwarding import next_hop, via_value
from sipedge.transaction import State

__all__ = ["Originator"]


class Originator:
    """
    Sends requests for the proxy core (see L{ProxyCore.originate}).

    @param core: the L{ProxyCore}, through its public names: C{transactions},
        C{transports}, C{locator}, C{addresses} (our Via address),
        C{max_forwards} and C{hiding} (read when a request is sent, since
        the core gets its transports after construction).
    @param random: where fresh branches come from (C{os.urandom}).
    """

    _log = Logger()

    def __init__(self, core: Any, random: Callable[[int], bytes] = os.urandom) -> None:
        self._core = core
        self._random = random
        self._pending: dict[Any, Deferred[Response]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def send(self, request: Request, flow: Flow | None = None) -> Deferred[Response]:
        """
        Send C{request} (no Via yet) in a new client transaction: on
        C{flow} if given and usable (a connection-oriented flow whose
        connection is gone is not), else to where its next hop (top Route,
        else Request-URI) resolves.

        @return: fires with the final response (any status); fails with
            L{OriginateError} if it cannot be sent or times out.
        """
        core = self._core
        if flow is not None and (
            not flow.reliable or core.transports.connection_for(flow) is not None
        ):
            return self._send_on(request, flow)
        if core.locator is None:
            return _failed(f"no flow and no locator for {request.method} {request.uri}")
        try:
            hop = next_hop(request)
        except MessageParseError as e:
            return _failed(f"bad next hop: {e.reason}")
        d = maybeDeferred(core.locator.locate, hop)
        d.addCallback(self._located, request)
        d.addErrback(_as_originate_error)
        return d

    def _located(self, destinations: list[Any], request: Request) -> Deferred[Response]:
        for dest in destinations:
            try:
                flow = self._core.transports.flow_to(dest.transport, dest.host, dest.port)
            except TransportError:
                continue
            return self._send_on(request, flow)
        return _failed(f"next hop of {request.method} {request.uri} not reachable")

    def _send_on(self, request: Request, flow: Flow) -> Deferred[Response]:
        core = self._core
        try:
            host, port = core.addresses.hostport_toward(flow.transport, flow.remote_host)
        except TransportError as e:
            return _failed(str(e))
        branch = f"{BRANCH_PREFIX}o{self._random(8).hex()}"
        headers = request.headers.prepended("Via", via_value(flow.transport, host, port, branch))
        if "Max-Forwards" not in headers:
            headers = headers.added("Max-Forwards", str(core.max_forwards))
        request = request.with_headers(headers)
        if core.hiding is not None:
            hidden = core.hiding.hide_originated(request, flow, (host, port))
            if hidden is None:
                return _failed(f"cannot hide the topology of a request to {flow}")
            request = hidden
        try:
            tx = core.transactions.client_transaction(request, flow)
        except LocalProtocolError as e:
            return _failed(str(e))
        if tx.state is State.TERMINATED:
            return _failed(f"cannot send {request.method} to {flow}")
        d: Deferred[Response] = Deferred()
        self._pending[tx] = d
        return d

    # -- from the core (ITransactionUser) ------------------------------------

    def handles(self, transaction: Any) -> bool:
        """True if C{transaction} is one of ours."""
        return transaction in self._pending

    def response_received(self, response: Response, transaction: Any) -> None:
        if response.status < 200:
            return
        d = self._pending.pop(transaction, None)
        if d is not None:
            d.callback(response)

    def transaction_failed(self, transaction: Any, reason: Failure) -> None:
        d = self._pending.pop(transaction, None)
        if d is not None:
            d.errback(OriginateError(reason.getErrorMessage()))

    def transaction_terminated(self, transaction: Any) -> None:
        d = self._pending.pop(transaction, None)
        if d is not None:
            d.errback(OriginateError("transaction ended without a final response"))

    def stop(self) -> None:
        """Forget every pending request (the service is stopping)."""
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(OriginateError("stopped"))


def _failed(reason: str) -> Deferred[Response]:
    d: Deferred[Response] = Deferred()
    d.errback(OriginateError(reason))
    return d


def _as_originate_error(failure: Failure) -> Failure:
    if failure.check(OriginateError):
        return failure
    return Failure(OriginateError(failure.getErrorMessage()))
