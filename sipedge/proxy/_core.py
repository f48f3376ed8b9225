# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
The proxy core: the transaction user of a stateful proxy (RFC 3261 16).

It runs the request chain on every new request and carries out the
decision: answer, drop, or forward. The rest is one idea a module:

 - L{sipedge.proxy._forking}: forwarding to the targets (16.6), the
   response context and best response (16.7), Timer C (16.8);
 - L{sipedge.proxy._branching}: sending one branch (our Via and
   Record-Route, its destinations, UDP or TCP);
 - L{sipedge.proxy._cancel}: CANCEL (16.10);
 - L{sipedge.proxy._stateless}: ACK for a 2xx and stray 2xx (16.11);
 - L{sipedge.proxy._addresses}: our address for Via and Record-Route;
 - L{sipedge.proxy._hiding}: topology hiding as messages come and go;
 - L{sipedge.transport.MessageSender}: where responses go (18.2.2), the
   one sender the transactions write through.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.interfaces import ITransactionUser
from sipedge.message import Request, Response
from sipedge.pipeline import Drop, Forward, RequestChain, RequestContext, Respond
from sipedge.proxy._addresses import LocalAddresses
from sipedge.proxy._cancel import Canceller
from sipedge.proxy._flowtoken import FlowTokens
from sipedge.proxy._forking import Forker
from sipedge.proxy._hiding import TopologyWrapper
from sipedge.proxy._originate import Originator
from sipedge.proxy._responses import ResponseQueue
from sipedge.proxy._stateless import StatelessForwarder
from sipedge.proxy._topology import Revealed, TopologyHider
from sipedge.proxy._upstream import local_response, server_open
from sipedge.transaction import TimerSettings, TransactionLayer, make_response
from sipedge.transport import Flow, MessageSender

__all__ = ["ProxyCore"]


@implementer(ITransactionUser)
class ProxyCore:
    """
    A stateful, forking, record-routing proxy.

    @param chain: the request chain.
    @param services: the L{StageServices} handed to stages.
    @param transports: the L{ITransportManager} (may be set after
        construction, since the transports deliver to L{transactions}).
    @param locator: a L{ServerLocator} for next hops without a known flow.
    @param signer: the L{RecordRouteSigner} for our Record-Route values.
    @param timers: the transaction timers and Timer C (C{timers.timer_c},
        RFC 3261 16.6 item 11).
    @param topology: a L{TopologyHider} for topology hiding, or C{None}:
        messages to external addresses are hidden, tokens coming back are
        revealed (see L{sipedge.proxy._topology}).
    @param flow_tokens: the L{FlowTokens} that seal the flows of parties
        behind NAT into our Record-Route (L{sipedge.proxy._flowtoken}), or
        C{None} not to.
    """

    _log = Logger()

    def __init__(
        self,
        *,
        chain: RequestChain,
        services: Any,
        clock: Any,
        signer: Any,
        transports: Any = None,
        locator: Any = None,
        timers: TimerSettings = TimerSettings(),
        record_route: bool = True,
        max_forwards: int = 70,
        advertise: tuple[str, int | None] | None = None,
        wildcard_hosts: dict[int, str] | None = None,
        observers: Sequence[Any] = (),
        response_chain_timeout: float = 5.0,
        dialogs: Any = None,
        random: Callable[[int], bytes] = os.urandom,
        topology: TopologyHider | None = None,
        flow_tokens: FlowTokens | None = None,
    ) -> None:
        self.chain = chain
        self.services = services
        self.locator = locator
        self.clock = clock
        self.signer = signer
        self.timers = timers
        self.record_route = record_route
        self.max_forwards = max_forwards
        self.response_chain_timeout = response_chain_timeout
        #: Seals the flows of parties behind NAT into our Record-Route.
        self.flow_tokens = flow_tokens
        #: Our address for Via and Record-Route (public: the originator uses it).
        self.addresses = LocalAddresses(None, advertise, wildcard_hosts)
        #: The L{DialogTracker}, if any: an observer that is also told of
        #: the final responses of every branch.
        self.dialogs = dialogs
        #: Topology hiding, if configured.
        self.hiding = (
            TopologyWrapper(topology, lambda: self.services.local, self.addresses, dialogs)
            if topology is not None
            else None
        )
        #: What every transaction sends through (18.2.2, then hiding).
        self.sender = MessageSender(
            outgoing=self.hiding.hide_response if self.hiding is not None else None
        )
        self.transactions = TransactionLayer(self, self.sender.send, clock, timers)
        self.sender.request_failed = self.transactions.transport_failed
        self.transports = transports
        # Queues with responses waiting for the response chain.
        self.busy_queues: set[ResponseQueue] = set()
        self.forking = Forker(self)
        self.cancelling = Canceller(self)
        self.stateless = StatelessForwarder(self)
        #: L{IProxyObserver}s told of every decision (the monitor, metrics).
        self.observers: list[Any] = list(observers)
        if dialogs is not None and dialogs not in self.observers:
            self.observers.append(dialogs)
        #: The requests we send ourselves (L{originate}).
        self.originator = Originator(self, random)
        # server transactions of requests the chain is still deciding, and
        # those of them answered 487 meanwhile (a CANCEL)
        self.deciding: dict[Any, RequestContext] = {}
        self.cancelled_early: set[Any] = set()
        self.stats = {"requests": 0, "forwarded": 0, "responded": 0, "dropped": 0, "stateless": 0}

    @property
    def transports(self) -> Any:
        """The L{ITransportManager} we send through."""
        return self._transports

    @transports.setter
    def transports(self, transports: Any) -> None:
        self._transports = transports
        self.addresses.transports = transports
        self.sender.transports = transports

    @property
    def topology(self) -> TopologyHider | None:
        """The L{TopologyHider}, or C{None} without topology hiding."""
        return self.hiding.hider if self.hiding is not None else None

    def stop(self) -> None:
        """
        Stop every timer (Timer C of pending forks and every transaction's):
        the service is stopping and no answer will come.
        """
        self.forking.stop()
        for queue in list(self.busy_queues):
            queue.stop()
        self.busy_queues.clear()
        self.stateless.stop()
        self.deciding.clear()
        self.cancelled_early.clear()
        if self.dialogs is not None:
            self.dialogs.stop()
        self.originator.stop()
        self.transactions.stop()

    def originate(self, request: Request, flow: Flow | None = None) -> Deferred[Response]:
        """
        Send a request of our own (a BYE that ends a call) in a new client
        transaction, with our Via (a fresh branch) and Max-Forwards added:
        on C{flow} if it is usable, else to where the request's next hop
        resolves. Fires with the final response, or fails with
        L{sipedge.error.OriginateError}.
        """
        return self.originator.send(request, flow)

    # -- ITransactionUser ---------------------------------------------------

    def request_received(self, request: Request, transaction: Any) -> None:
        self.stats["requests"] += 1
        mask_call_id = False
        if self.hiding is not None:
            revealed = self.hiding.reveal_request(request, transaction.flow)
            if revealed is None:
                transaction.cancel_timers()
                return
            if isinstance(revealed, Response):
                transaction.respond(revealed)
                return
            request, mask_call_id = revealed.request, revealed.mask_call_id
        if request.method == "CANCEL":
            self.cancelling.cancel_received(request, transaction)
            return
        context = RequestContext(request, transaction.flow, self.services)
        context.annotations["topology"] = mask_call_id
        result = self.chain.run(context)
        # 100 Trying (RFC 3261 16.2) only once we know we will not drop the
        # INVITE: a flood or a scanner must get no answer at all.
        if request.method == "INVITE" and isinstance(result, (Deferred, Forward)):
            transaction.respond(make_response(request, 100))
        if isinstance(result, Deferred):
            self.deciding[transaction] = context
            result.addCallback(self._decided, context, transaction)
            result.addErrback(self._decision_failed, context, transaction)
        else:
            try:
                self._decided(result, context, transaction)
            except Exception:
                # Every request gets an answer, even when we have a bug.
                self._decision_failed(Failure(), context, transaction)

    def _decision_failed(self, failure: Failure, context: RequestContext, transaction: Any) -> None:
        self.deciding.pop(transaction, None)
        self.cancelled_early.discard(transaction)
        self._log.failure("Handling {method} failed", failure, method=context.request.method)
        if server_open(transaction):
            transaction.respond(make_response(context.original, 500))

    def _decided(self, result: Any, context: RequestContext, transaction: Any) -> None:
        self.deciding.pop(transaction, None)
        if transaction in self.cancelled_early:
            self.cancelled_early.discard(transaction)
            # Answered 487 meanwhile (a CANCEL): what the stages decided is
            # not carried out, and the observers learn that the request
            # ended with that 487 (a stage that allocated something for it
            # releases it now).
            self._tell_observers(context, Respond(487))
            return
        if not server_open(transaction):
            return  # gone
        self._tell_observers(context, result)
        if isinstance(result, Respond):
            self.stats["responded"] += 1
            transaction.respond(local_response(context.original, result))
        elif isinstance(result, Drop):
            self.stats["dropped"] += 1
            self._log.debug(
                "Dropping {method} from {source}: {reason}",
                method=context.request.method,
                source=str(context.flow),
                reason=result.reason,
            )
            transaction.cancel_timers()
        elif isinstance(result, Forward):
            self.stats["forwarded"] += 1
            # The routing decision is final here: result.targets are the
            # chosen targets (a hook for stages that need them goes here).
            self.forking.forward(context, transaction, result.targets)

    def _tell_observers(self, context: RequestContext, result: Any) -> None:
        for observer in self.observers:
            try:
                observer.request_decided(context, result)
            except Exception:
                self._log.failure("Observer {observer!r} failed", observer=observer)

    def response_received(self, response: Response, transaction: Any) -> None:
        if transaction in self.cancelling.cancels:
            return  # the answer to our own CANCEL
        ours = self.forking.owns(transaction)
        if not ours and not self.originator.handles(transaction):
            return
        if self.hiding is not None:
            revealed = self.hiding.reveal_response(response, transaction.flow)
            if revealed is None:
                return
            response = revealed
        if ours:
            self.forking.response_received(response, transaction)
        else:
            self.originator.response_received(response, transaction)

    def transaction_failed(self, transaction: Any, reason: Failure) -> None:
        if transaction in self.cancelling.cancels:
            self.cancelling.cancels.discard(transaction)
            return
        if not self.forking.transaction_failed(transaction, reason):
            self.originator.transaction_failed(transaction, reason)

    def transaction_terminated(self, transaction: Any) -> None:
        self.cancelling.cancels.discard(transaction)
        self.originator.transaction_terminated(transaction)
        self.forking.transaction_terminated(transaction)

    def stray_message(self, message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Request):
            if message.method == "ACK":
                mask_call_id = False
                if self.hiding is not None:
                    revealed = self.hiding.reveal_request(message, flow)
                    if not isinstance(revealed, Revealed):
                        return  # never answer an ACK
                    message, mask_call_id = revealed.request, revealed.mask_call_id
                self.stateless.forward_ack(message, flow, mask_call_id)
            return
        if self.hiding is not None:
            response = self.hiding.reveal_response(message, flow)
            if response is None:
                return
            message = response
        self.stateless.forward_response(message, flow)
