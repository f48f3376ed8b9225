# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
Stateless forwarding (RFC 3261 16.11): an ACK for a 2xx is end to end and
is routed through the request chain with no transaction; a 2xx to an
INVITE with no client transaction (a retransmission, or one from a branch
we gave up on) must still reach the caller (16.7 step 5) and goes up
along the Vias through the response chain, in order per Call-ID. So does
a 2xx on the client transaction of a fork that has let go of its request
context (L{sipedge.proxy._forking}), through the fork's server
transaction while it can send it. Any other stray response is dropped.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.message import Request, Response, branch_digest, digest_of_branch, make_branch
from sipedge.pipeline import Forward, RequestContext, settled
from sipedge.proxy._forwarding import forwarded_request, next_hop, own_via
from sipedge.proxy._hiding import masked
from sipedge.proxy._responses import Deliver, ResponseQueue
from sipedge.proxy._upstream import takes_2xx

__all__ = ["StatelessForwarder"]


class StatelessForwarder:
    """
    @param core: the L{ProxyCore} (its chain, locator, transports,
        addresses, sender, forks and settings).
    @ivar stray_queues: Call-ID -> the L{ResponseQueue} of stray 2xx
        waiting for the response chain.
    """

    _log = Logger()

    def __init__(self, core: Any) -> None:
        self._core = core
        self.stray_queues: dict[str, ResponseQueue] = {}

    def stop(self) -> None:
        self.stray_queues.clear()

    # -- ACK for a 2xx --------------------------------------------------------

    def forward_ack(self, ack: Request, flow: Flow, mask_call_id: bool = False) -> None:
        """An ACK for a 2xx is end to end: route it statelessly (16.11)."""
        context = RequestContext(ack, flow, self._core.services)
        context.annotations["topology"] = mask_call_id
        try:
            result = self._core.chain.run(context)
            if not isinstance(result, Deferred):
                # The common case: decided at once, forwarded at once.
                located = self._ack_decided(result, context)
                if located is not None:
                    located.addErrback(self._ack_failed)
                return
        except Exception:
            self._ack_failed(Failure())
            return
        result.addCallback(self._ack_decided, context)
        result.addErrback(self._ack_failed)

    def _ack_failed(self, failure: Failure) -> None:
        self._log.failure("Forwarding ACK failed", failure)

    def _ack_decided(self, result: Any, context: RequestContext) -> Deferred[None] | None:
        core = self._core
        if not isinstance(result, Forward):
            self._log.debug("ACK not forwarded: {result!r}", result=result)
            return None
        target = result.targets[0]
        request = forwarded_request(context.request, target, core.max_forwards)
        if target.flow is not None:
            if (
                target.flow_failed is not None
                and target.flow.reliable
                and core.transports.connection_for(target.flow) is None
            ):
                self._log.info(
                    "ACK not forwarded: the flow to {flow} is gone", flow=str(target.flow)
                )
                return None
            self._send_ack(request, context, target.flow)
            return None
        if core.locator is None:
            return None
        try:
            located = settled(core.locator.locate(next_hop(request)))
        except Exception:
            located = Failure()
        if isinstance(located, Deferred):
            return located.addCallback(self._ack_located, request, context)
        if isinstance(located, Failure):
            self._ack_failed(located)
            return None
        self._ack_located(located, request, context)
        return None

    def _ack_located(
        self, destinations: list[Any], request: Request, context: RequestContext
    ) -> None:
        for dest in destinations:
            try:
                flow = self._core.transports.flow_to(dest.transport, dest.host, dest.port)
            except TransportError:
                continue
            self._send_ack(request, context, flow)
            return

    def _send_ack(self, request: Request, context: RequestContext, flow: Flow) -> None:
        core = self._core
        try:
            host, port = core.addresses.hostport_toward(flow.transport, flow.remote_host)
        except TransportError as e:
            self._log.info("Cannot forward ACK: {error}", error=str(e))
            return
        # The same branch for a retransmitted ACK (16.11): derived from its own.
        incoming = context.original.top_via.branch or ""
        branch = make_branch(branch_digest(context.original), abs(hash(incoming)) % 10_000)
        request = request.with_via_pushed(own_via(flow.transport, host, port, branch))
        if core.chain.branch_stages:
            checked = core.chain.run_branch(context, request, flow)
            if not isinstance(checked, Request):
                return  # an ACK cannot be refused: the chain logged the drop
            request = checked
        if core.hiding is not None:
            hidden = core.hiding.hide_request(request, masked(context), flow, (host, port))
            if hidden is None:
                return
            request = hidden
        core.stats["stateless"] += 1
        core.sender.send_stateless(request, flow, "Cannot forward ACK: {error}")

    # -- stray responses ------------------------------------------------------

    def forward_response(self, response: Response, flow: Flow | None = None) -> None:
        """
        A response with no client transaction (from C{flow}): a 2xx to an
        INVITE (which must reach the caller, 16.7 step 5) is forwarded
        statelessly along the Vias (16.7 step 3); anything else is dropped,
        as is a late 2xx to a non-INVITE, whose transaction upstream has
        its final response.
        """
        if not 200 <= response.status < 300:
            return
        try:
            vias = response.vias
            method = response.cseq.method
        except MessageParseError:
            return
        if method != "INVITE":
            return
        core = self._core
        if len(vias) < 2 or not core.services.local.is_local_host(vias[0].host, vias[0].port):
            return
        upstream = response.with_via_popped()
        if core.forking.late_2xx(digest_of_branch(vias[0].branch), upstream, response, flow):
            return
        self._relay_stray(upstream, self._deliver_stray)

    def relay_2xx(self, response: Response, server: Any) -> None:
        """
        A 2xx (our Via removed) on the client transaction of a fork that
        has let go of its request context: a retransmission, or the 2xx of
        another dialog (a fork downstream). Through the response chain as
        a stray 2xx (no context), then through the fork's server
        transaction while it takes a 2xx (RFC 6026 ACCEPTED), else
        statelessly upstream.
        """
        self._relay_stray(response, partial(self._deliver_through, server))

    def _relay_stray(self, response: Response, deliver: Deliver) -> None:
        """
        A stray 2xx through the response chain (with no context), then
        C{deliver}; the strays of one call wait in order.
        """
        core = self._core
        call_id = response.headers.get("Call-ID") or ""
        queue = self.stray_queues.get(call_id)
        if queue is None:
            relayed = core.chain.run_responses(None, response)
            if not isinstance(relayed, Deferred):
                deliver(None, response, relayed)
                return
            queue = ResponseQueue(
                core.chain.run_responses,
                core.clock,
                core.response_chain_timeout,
                None,
                lambda q: self._stray_queue_idle(call_id, q),
            )
            self.stray_queues[call_id] = queue
            core.busy_queues.add(queue)
            queue.wait(relayed, response, deliver)
            return
        queue.submit(None, response, deliver)

    def _stray_queue_idle(self, call_id: str, queue: ResponseQueue) -> None:
        self._core.busy_queues.discard(queue)
        if self.stray_queues.get(call_id) is queue:
            del self.stray_queues[call_id]

    def _deliver_stray(self, _: None, response: Response, relayed: Response | None) -> None:
        self.send_upstream(relayed if relayed is not None else response)

    def _deliver_through(
        self, server: Any, _: None, response: Response, relayed: Response | None
    ) -> None:
        response = relayed if relayed is not None else response
        if takes_2xx(server):
            server.respond(response)
        else:
            self.send_upstream(response)

    def send_upstream(self, upstream: Response) -> None:
        """Send a response statelessly to its top Via (RFC 3261 18.2.2)."""
        if self._core.sender.send_response(upstream):
            self._core.stats["stateless"] += 1
