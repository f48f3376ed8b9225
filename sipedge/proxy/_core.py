# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
The proxy core: the transaction user of a stateful proxy (RFC 3261 16).

It runs the request chain on every new request and carries out the
decision: answer, drop, or forward to one or more targets (parallel within
a q-value, serial across q-values), collecting responses and choosing the
best (16.7), with CANCEL (16.10), Timer C (16.8), fail-over to the next
DNS destination (RFC 3263 4.3), and stateless forwarding of ACKs for 2xx
and of stray 2xx responses.

Responses relayed upstream pass the response chain, which may answer with
a Deferred: the responses of one server transaction then wait, in order,
in a L{ResponseQueue} (L{sipedge.proxy._responses}), bounded by
C{response_chain_timeout}. The decisions of RFC 3261 16.7 (which final
response, CANCEL of the other branches, Timer C) are taken when a response
arrives; only its relaying upstream waits.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import (
    LocalProtocolError,
    MessageParseError,
    TransactionTimeout,
    TransportError,
)
from sipedge.interfaces import ITransactionUser
from sipedge.message import Headers, Request, Response
from sipedge.pipeline._chain import RequestChain
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._results import Drop, Forward, Respond, Target
from sipedge.proxy._branch import branch_digest, digest_of_branch, make_branch
from sipedge.proxy._dialogs import CALLER
from sipedge.proxy._fork import Branch, Fork, best_response, group_by_q
from sipedge.proxy._forwarding import (
    RECORD_ROUTED_METHODS,
    forwarded_request,
    is_secure,
    next_hop,
    record_route_value,
    via_value,
    with_record_route,
)
from sipedge.proxy._originate import Originator
from sipedge.proxy._responses import ResponseQueue
from sipedge.proxy._topology import RULE as TOPOLOGY_RULE
from sipedge.proxy._topology import Refusal, Revealed, TopologyHider
from sipedge.transaction import State as _State
from sipedge.transaction import TimerSettings, TransactionLayer, make_response
from sipedge.transport._flow import Flow

__all__ = ["ProxyCore"]


def _broadcast(host: str) -> bool:
    """
    True for an address a response must never be sent to (RFC 4475
    3.3.10): the limited broadcast address, a multicast or an unspecified
    address.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_multicast
        or address.is_unspecified
        or address == ipaddress.IPv4Address("255.255.255.255")
    )


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


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
    @param topology: a L{TopologyHider} for topology hiding, or C{None}:
        messages to external addresses are hidden, tokens coming back are
        revealed (see L{sipedge.proxy._topology}).
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
        timer_c: float = 180.0,
        record_route: bool = True,
        max_forwards: int = 70,
        advertise: tuple[str, int | None] | None = None,
        wildcard_hosts: dict[int, str] | None = None,
        observers: Sequence[Any] = (),
        response_chain_timeout: float = 5.0,
        dialogs: Any = None,
        random: Callable[[int], bytes] = os.urandom,
        topology: TopologyHider | None = None,
    ) -> None:
        self.chain = chain
        self.services = services
        self.transports = transports
        self.locator = locator
        self._clock = clock
        self._signer = signer
        self._timer_c = timer_c
        self._timers = timers
        self._record_route = record_route
        self._max_forwards = max_forwards
        self._advertise = advertise
        self._wildcard_hosts = wildcard_hosts or {}
        self._response_chain_timeout = response_chain_timeout
        # Queues with responses waiting for the response chain; strays by Call-ID.
        self._busy_queues: set[ResponseQueue] = set()
        self._stray_queues: dict[str, ResponseQueue] = {}
        self.transactions = TransactionLayer(self, self._send, clock, timers)
        self._forks: dict[Any, Fork] = {}  # server transaction -> fork
        self._branches: dict[Any, tuple[Fork, Branch]] = {}  # client transaction -> branch
        self._cancels: set[Any] = set()  # client transactions of our CANCELs
        # TLS flows we opened -> the name their certificate must prove
        self._server_names: dict[Flow, str] = {}
        #: L{IProxyObserver}s told of every decision (the monitor, metrics).
        self.observers: list[Any] = list(observers)
        #: The L{DialogTracker}, if any: an observer that is also told of
        #: the final responses of every branch.
        self.dialogs = dialogs
        if dialogs is not None and dialogs not in self.observers:
            self.observers.append(dialogs)
        #: The requests we send ourselves (L{originate}).
        self.originator = Originator(self, random)
        # server transactions of requests the chain is still deciding, and
        # those of them answered 487 meanwhile (a CANCEL)
        self._deciding: dict[Any, RequestContext] = {}
        self._cancelled_early: set[Any] = set()
        self._topology = topology
        self.stats = {"requests": 0, "forwarded": 0, "responded": 0, "dropped": 0, "stateless": 0}

    def stop(self) -> None:
        """
        Stop every timer (Timer C of pending forks and every transaction's):
        the service is stopping and no answer will come.
        """
        for fork in list(self._forks.values()):
            if fork.timer_c is not None and fork.timer_c.active():
                fork.timer_c.cancel()
            fork.timer_c = None
        self._forks.clear()
        self._branches.clear()
        for queue in list(self._busy_queues):
            queue.stop()
        self._busy_queues.clear()
        self._stray_queues.clear()
        self._deciding.clear()
        self._cancelled_early.clear()
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

    # -- sending ------------------------------------------------------------

    def _local_hostport(self, transport: str, family: int) -> tuple[str, int]:
        """
        The host and port for our Via and Record-Route: the advertised
        address if one is configured, else our listener's, with a wildcard
        bind replaced by this host's primary address.
        """
        host, port = self.transports.local_hostport(transport, family)
        if self._advertise is not None:
            return self._advertise[0], self._advertise[1] or port
        if host in ("0.0.0.0", "::"):
            default = "127.0.0.1" if family == socket.AF_INET else "::1"
            host = self._wildcard_hosts.get(family, default)
        return host, port

    def _send(self, message: Request | Response, flow: Flow) -> None:
        """What the transaction layer sends through (responses routed per 18.2.2)."""
        if isinstance(message, Response):
            if not flow.reliable:
                flow = self._response_flow(message, flow)
            hidden = self._hide_response(message, flow)
            if hidden is None:
                return
            message = hidden
        if flow.secure and flow in self._server_names:
            result = self.transports.send(message, flow, server_name=self._server_names[flow])
        else:
            result = self.transports.send(message, flow)
        if isinstance(result, Deferred):
            result.addErrback(self._send_failed, message, flow)

    def _send_failed(self, failure: Failure, message: Request | Response, flow: Flow) -> None:
        """A connection could not be opened: fail the client transaction."""
        self._log.info(
            "Cannot send to {flow}: {error}", flow=str(flow), error=failure.getErrorMessage()
        )
        if isinstance(message, Request):
            self.transactions.transport_failed(message, failure)

    @staticmethod
    def _response_flow(response: Response, flow: Flow) -> Flow:
        """
        RFC 3261 18.2.2 with RFC 3581: a response over UDP goes to the
        received address (the source), at the rport port if the client
        asked for it, else at the port in its sent-by.
        """
        try:
            via = response.top_via
        except MessageParseError:
            return flow
        rport = via.rport
        if isinstance(rport, int) and rport is not True:
            port = rport
        elif via.received is not None and rport is None:
            port = via.port or 5060
        else:
            return flow
        host = (via.received or flow.remote_host).strip("[]")
        if (host, port) == (flow.remote_host, flow.remote_port):
            return flow
        return Flow(flow.transport, flow.local_host, flow.local_port, host, port)

    # -- ITransactionUser ---------------------------------------------------

    def request_received(self, request: Request, transaction: Any) -> None:
        self.stats["requests"] += 1
        mask_call_id = False
        if self._topology is not None:
            revealed = self._reveal_request(request, transaction.flow)
            if revealed is None:
                transaction.cancel_timers()
                return
            if isinstance(revealed, Response):
                transaction.respond(revealed)
                return
            request, mask_call_id = revealed.request, revealed.mask_call_id
        if request.method == "CANCEL":
            self._cancel_received(request, transaction)
            return
        context = RequestContext(request, transaction.flow, self.services)
        context.annotations["topology"] = mask_call_id
        result = self.chain.run(context)
        # 100 Trying (RFC 3261 16.2) only once we know we will not drop the
        # INVITE: a flood or a scanner must get no answer at all.
        if request.method == "INVITE" and isinstance(result, (Deferred, Forward)):
            transaction.respond(make_response(request, 100))
        if isinstance(result, Deferred):
            self._deciding[transaction] = context
            result.addCallback(self._decided, context, transaction)
            result.addErrback(self._decision_failed, context, transaction)
        else:
            try:
                self._decided(result, context, transaction)
            except Exception:
                # Every request gets an answer, even when we have a bug.
                self._decision_failed(Failure(), context, transaction)

    def _decision_failed(self, failure: Failure, context: RequestContext, transaction: Any) -> None:
        self._deciding.pop(transaction, None)
        self._cancelled_early.discard(transaction)
        self._log.failure("Handling {method} failed", failure, method=context.request.method)
        if self._server_open(transaction):
            transaction.respond(make_response(context.original, 500))

    @staticmethod
    def _server_open(transaction: Any) -> bool:
        return transaction.state in (_State.TRYING, _State.PROCEEDING)

    def _decided(self, result: Any, context: RequestContext, transaction: Any) -> None:
        self._deciding.pop(transaction, None)
        if transaction in self._cancelled_early:
            self._cancelled_early.discard(transaction)
            # Answered 487 meanwhile (a CANCEL): what the stages decided is
            # not carried out, and the observers learn that the request
            # ended with that 487 (a stage that allocated something for it
            # releases it now).
            self._tell_observers(context, Respond(487))
            return
        if not self._server_open(transaction):
            return  # gone
        self._tell_observers(context, result)
        if isinstance(result, Respond):
            self.stats["responded"] += 1
            transaction.respond(self._local_response(context.original, result))
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
            self._forward(context, transaction, result.targets)

    def _tell_observers(self, context: RequestContext, result: Any) -> None:
        for observer in self.observers:
            try:
                observer.request_decided(context, result)
            except Exception:
                self._log.failure("Observer {observer!r} failed", observer=observer)

    def _local_response(self, request: Request, result: Respond) -> Response:
        response = make_response(request, result.status, result.reason, tuple(result.headers))
        if result.body:
            response = Response(response.status, response.reason, response.headers, result.body)
        return response

    # -- forwarding (16.6) ----------------------------------------------------

    def _forward(self, context: RequestContext, server: Any, targets: tuple[Target, ...]) -> None:
        fork = Fork(
            context=context,
            server=server,
            request=context.request,
            original=context.original,
            digest=branch_digest(context.original),
            incoming=context.flow,
            groups=group_by_q(targets),
        )
        self._forks[server] = fork
        self._next_group(fork)

    def _next_group(self, fork: Fork) -> bool:
        """Start the next q-group; False if none is left."""
        if not fork.groups or fork.cancelled:
            return False
        group = fork.groups.pop(0)
        if fork.request.method == "INVITE":
            # 16.6 item 11: every new client transaction gets a full Timer C.
            self._arm_timer_c(fork)
        for target in group:
            branch = Branch(fork.next_index, target)
            fork.next_index += 1
            fork.branches.append(branch)
        for branch in fork.branches[-len(group) :]:
            self._start_branch(fork, branch)
        return True

    def _start_branch(self, fork: Fork, branch: Branch) -> None:
        try:
            request = forwarded_request(fork.request, branch.target, self._max_forwards)
            hop = next_hop(request)
        except MessageParseError as e:
            self._branch_failed(fork, branch, 400, f"bad target: {e.reason}")
            return
        branch.request = request
        flow = branch.target.flow
        if flow is not None and (
            not flow.reliable or self.transports.connection_for(flow) is not None
        ):
            self._send_branch(fork, branch, flow)
            return
        # No flow, or the connection a phone registered over is gone: send
        # to what its Contact resolves to.
        if self.locator is None:
            self._branch_failed(fork, branch, 503, "no locator")
            return
        d = maybeDeferred(self.locator.locate, hop)
        d.addCallback(self._located, fork, branch)
        d.addErrback(self._locate_failed, fork, branch)

    def _located(self, destinations: list[Any], fork: Fork, branch: Branch) -> None:
        if branch.done:
            return
        if not destinations:
            self._branch_failed(fork, branch, 404, "next hop not found")
            return
        branch.destinations = list(destinations)
        if not self._try_next_destination(fork, branch):
            self._branch_failed(fork, branch, 503, "next hop not reachable")

    def _locate_failed(self, failure: Failure, fork: Fork, branch: Branch) -> None:
        if branch.done:
            return
        self._log.info("Cannot locate next hop: {error}", error=failure.getErrorMessage())
        self._branch_failed(fork, branch, 503, "next hop not reachable")

    def _try_next_destination(self, fork: Fork, branch: Branch) -> bool:
        while branch.destinations:
            dest = branch.destinations.pop(0)
            try:
                flow = self.transports.flow_to(dest.transport, dest.host, dest.port)
            except TransportError:
                continue
            if flow.secure:
                # RFC 5922: the certificate must name the domain we resolved.
                self._server_names[flow] = dest.server_name
            self._send_branch(fork, branch, flow)
            return True
        return False

    def _send_branch(self, fork: Fork, branch: Branch, flow: Flow) -> None:
        assert branch.request is not None
        request = branch.request
        if fork.cancelled:
            self._branch_failed(fork, branch, 487, "cancelled")
            return
        try:
            local_host, local_port = self._local_hostport(flow.transport, _family(flow.remote_host))
            index = branch.index * 100 + len(branch.destinations)
            if (
                self._record_route
                and request.method in RECORD_ROUTED_METHODS
                and request.to_address.tag is None
            ):
                mac = self._signer.mac(request.call_id)
                secure = is_secure(request)
                values = []
                incoming = fork.incoming
                in_host, in_port = self._local_hostport(
                    incoming.transport, _family(incoming.remote_host)
                )
                if (incoming.transport, in_host, in_port) != (
                    flow.transport,
                    local_host,
                    local_port,
                ):
                    values.append(
                        record_route_value(incoming.transport, in_host, in_port, mac, secure)
                    )
                values.append(
                    record_route_value(flow.transport, local_host, local_port, mac, secure)
                )
                request = with_record_route(request, values)
        except TransportError as e:
            # No address of ours for that transport and family (no Via).
            self._destination_failed(fork, branch, str(e))
            return
        branch_id = make_branch(fork.digest, index)
        via = via_value(flow.transport, local_host, local_port, branch_id)
        request = request.with_headers(request.headers.prepended("Via", via))
        if self.chain.branch_stages:
            checked = self.chain.run_branch(fork.context, request, flow)
            if not isinstance(checked, Request):
                self._branch_refused(fork, branch, checked)
                return
            request = checked
        branch.sent = request
        hidden = self._hide_request(
            request, self._masked(fork.context), flow, (local_host, local_port)
        )
        if hidden is None:
            self._branch_failed(fork, branch, 500, "cannot hide topology")
            return
        request = hidden
        try:
            transaction = self.transactions.client_transaction(request, flow)
        except LocalProtocolError:
            # The same request is being forwarded already (the same branch):
            # it came back to us, or reached us twice (RFC 3261 8.2.2.2).
            self._branch_failed(fork, branch, 482, "merged or looped request")
            return
        branch.transaction = transaction
        if transaction.state is _State.TERMINATED:
            # The first send failed: the layer reported it (to
            # transaction_failed) before we knew the transaction.
            self._destination_failed(fork, branch, "cannot send")
            return
        self._branches[transaction] = (fork, branch)

    def _branch_refused(self, fork: Fork, branch: Branch, refusal: Respond) -> None:
        """
        A branch stage (L{IBranchStage}) refused the branch's current
        destination: try the next one, else the branch fails with the
        refusal as its final response.
        """
        if branch.destinations and self._retry(fork, branch):
            return
        self._final(fork, branch, self._local_response(fork.request, refusal))

    def _destination_failed(self, fork: Fork, branch: Branch, reason: str) -> None:
        """Sending to the branch's current destination failed: try the next."""
        if not (branch.destinations and self._retry(fork, branch)):
            self._branch_failed(fork, branch, 503, reason)

    def _branch_failed(self, fork: Fork, branch: Branch, status: int, reason: str) -> None:
        """A branch ends without a response from the far side."""
        self._log.info(
            "Branch {index} to {uri} failed: {status} {reason}",
            index=branch.index,
            uri=branch.target.uri,
            status=status,
            reason=reason,
        )
        warning = ("Warning", f'399 sipedge "{reason}"')
        response = make_response(fork.request, status, None, (warning,))
        self._final(fork, branch, response)

    # -- responses (16.7) -----------------------------------------------------

    def response_received(self, response: Response, transaction: Any) -> None:
        if transaction in self._cancels:
            return  # the answer to our own CANCEL
        entry = self._branches.get(transaction)
        if entry is None and not self.originator.handles(transaction):
            return
        if self._topology is not None:
            revealed = self._reveal_response(response, transaction.flow)
            if revealed is None:
                return
            response = revealed
        if entry is None:
            self.originator.response_received(response, transaction)
            return
        fork, branch = entry
        if response.status >= 200 and self.dialogs is not None:
            # what we sent as the internal side sees it (before hiding)
            sent = branch.sent if branch.sent is not None else transaction.request
            try:
                self.dialogs.response_received(fork.context, sent, response, transaction.flow)
            except Exception:
                self._log.failure("Dialog tracking failed")
        upstream = response.with_headers(response.headers.first_removed("Via"))
        status = response.status
        if status < 200:
            if status == 100:
                return
            branch.provisional = True
            if branch.cancel_pending:
                self._send_cancel(fork, branch)
            if fork.request.method == "INVITE" and not fork.final_sent:
                self._arm_timer_c(fork)
            if not fork.final_sent and self._server_open(fork.server):
                self._relay(fork, upstream, self._deliver_provisional)
            return
        if status < 300:
            branch.done = True
            branch.final = response
            self._stop_cancel_timer(branch)
            if fork.request.method == "INVITE":
                # every 2xx goes upstream (16.7 step 5); other branches end
                fork.final_sent = True
                self._respond_2xx(fork, upstream)
                self._cancel_pending(fork)
                self._finish(fork)
            else:
                if not fork.final_sent:
                    fork.final_sent = True
                    self._relay(fork, upstream, self._deliver_final)
                self._cancel_pending(fork)
                self._maybe_done(fork)
            return
        if status == 503 and branch.destinations and self._retry(fork, branch):
            return
        self._final(fork, branch, upstream)

    def _respond_2xx(self, fork: Fork, response: Response) -> None:
        """A 2xx for an INVITE: relayed through the response chain."""
        self._relay(fork, response, self._deliver_2xx)

    # -- the response chain ---------------------------------------------------

    def _relay(self, fork: Fork, response: Response, deliver: Any) -> None:
        """
        Run the response chain (the stages that also provide
        L{IResponseStage}) on a response we relay upstream, then
        C{deliver(fork, response, relayed)}: at once if every stage answers
        at once and nothing waits before it; else in order, after the
        responses of the same server transaction that came before it.
        """
        queue = fork.responses
        if queue is None:
            relayed = self.chain.run_responses(fork.context, response)
            if not isinstance(relayed, Deferred):
                deliver(fork, response, relayed)
                return
            queue = fork.responses = ResponseQueue(
                self.chain.run_responses,
                self._clock,
                self._response_chain_timeout,
                fork,
                self._fork_queue_idle,
            )
            self._busy_queues.add(queue)
            queue.wait(relayed, response, deliver)
            return
        self._busy_queues.add(queue)
        queue.submit(fork.context, response, deliver)

    def _fork_queue_idle(self, queue: ResponseQueue) -> None:
        self._busy_queues.discard(queue)
        fork = queue.owner
        if fork.finished:
            self._forget(fork)

    def _deliver_provisional(
        self, fork: Fork, response: Response, relayed: Response | None
    ) -> None:
        if relayed is not None and self._server_open(fork.server):
            fork.server.respond(relayed)

    def _deliver_final(self, fork: Fork, response: Response, relayed: Response | None) -> None:
        """A final response cannot be absorbed: it goes on as it came then."""
        if self._server_open(fork.server):
            fork.server.respond(relayed if relayed is not None else response)

    def _deliver_2xx(self, fork: Fork, response: Response, relayed: Response | None) -> None:
        """
        Through the server transaction while it can take a 2xx (TRYING,
        PROCEEDING, ACCEPTED), else statelessly along the Vias (16.7 step
        10: a 2xx after we sent a non-2xx final).
        """
        response = relayed if relayed is not None else response
        if fork.server.state in (_State.PROCEEDING, _State.TRYING, _State.ACCEPTED):
            fork.server.respond(response)
        else:
            self._send_upstream(response)

    def _retry(self, fork: Fork, branch: Branch) -> bool:
        """
        Fail over to the branch's next destination (RFC 3263 4.3); never
        for a branch being cancelled or a fork that has its answer.
        """
        if branch.cancelled or fork.cancelled or fork.final_sent:
            return False
        self._stop_cancel_timer(branch)
        old = branch.transaction
        self._branches.pop(old, None)
        branch.provisional = False
        return self._try_next_destination(fork, branch)

    def _final(self, fork: Fork, branch: Branch, response: Response) -> None:
        """A non-2xx final response (received, or made up locally) for a branch."""
        branch.done = True
        branch.final = response
        self._stop_cancel_timer(branch)
        if response.status >= 600 and fork.request.method == "INVITE":
            self._cancel_pending(fork)
            fork.groups.clear()
        self._maybe_done(fork)

    def _maybe_done(self, fork: Fork) -> None:
        if fork.pending():
            return
        if fork.final_sent:
            self._finish(fork)
            return
        if not fork.cancelled and not any(r.status >= 600 for r in fork.finals()):
            if self._next_group(fork):
                return
        fork.final_sent = True
        if self._server_open(fork.server):
            if fork.cancelled:
                final = make_response(fork.original, 487)
            else:
                final = best_response(fork.finals())
            self._relay(fork, final, self._deliver_final)
        self._finish(fork)

    def _finish(self, fork: Fork) -> None:
        """
        The fork has its final response: stop Timer C and forget it, once
        the responses it relays have left the response chain (a CANCEL
        that comes meanwhile finds it answered).
        """
        if fork.timer_c is not None and fork.timer_c.active():
            fork.timer_c.cancel()
        fork.timer_c = None
        fork.finished = True
        if fork.responses is None or not fork.responses.busy:
            self._forget(fork)

    def _forget(self, fork: Fork) -> None:
        if self._forks.get(fork.server) is fork:
            del self._forks[fork.server]

    def transaction_failed(self, transaction: Any, reason: Failure) -> None:
        if transaction in self._cancels:
            self._cancels.discard(transaction)
            return
        entry = self._branches.get(transaction)
        if entry is None:
            self.originator.transaction_failed(transaction, reason)
            return
        fork, branch = entry
        if branch.done:
            return
        if branch.destinations and self._retry(fork, branch):
            return
        if reason.check(TransactionTimeout):
            self._branch_failed(fork, branch, 408, "no answer")
        else:
            self._branch_failed(fork, branch, 503, reason.getErrorMessage())

    def transaction_terminated(self, transaction: Any) -> None:
        self._cancels.discard(transaction)
        self._branches.pop(transaction, None)
        self.originator.transaction_terminated(transaction)
        fork = self._forks.get(transaction)
        if fork is not None and fork.final_sent:
            self._finish(fork)

    # -- Timer C (16.8) -------------------------------------------------------

    def _arm_timer_c(self, fork: Fork) -> None:
        if fork.timer_c is not None and fork.timer_c.active():
            fork.timer_c.reset(self._timer_c)
        else:
            fork.timer_c = self._clock.callLater(self._timer_c, self._timer_c_fired, fork)

    def _timer_c_fired(self, fork: Fork) -> None:
        fork.timer_c = None
        self._log.info("Timer C fired for {call_id}", call_id=fork.request.headers.get("Call-ID"))
        for branch in fork.pending():
            if branch.provisional:
                branch.cancelled = True
                self._send_cancel(fork, branch)
            else:
                # 16.8: no provisional: as if a 408 came back
                if branch.transaction is not None:
                    self._branches.pop(branch.transaction, None)
                    branch.transaction.cancel_timers()
                self._branch_failed(fork, branch, 408, "Timer C")

    # -- CANCEL (16.10) -------------------------------------------------------

    def _cancel_received(self, request: Request, transaction: Any) -> None:
        invite = self.transactions.server_transaction_for(request)
        if invite is None:
            transaction.respond(make_response(request, 481))
            return
        transaction.respond(make_response(request, 200))
        fork = self._forks.get(invite)
        if fork is None:
            # Still in the pipeline: answer the INVITE ourselves, through
            # the response chain (a stage that allocated something for it
            # releases it); the observers learn of it when the chain ends.
            if self._server_open(invite):
                final = make_response(invite.request, 487)
                context = self._deciding.get(invite)
                if context is None:
                    invite.respond(final)
                    return
                self._cancelled_early.add(invite)
                relayed = self.chain.run_responses(context, final)
                if not isinstance(relayed, Deferred):
                    self._deliver_early_487(invite, final, relayed)
                    return
                queue = ResponseQueue(
                    self.chain.run_responses,
                    self._clock,
                    self._response_chain_timeout,
                    invite,
                    self._busy_queues.discard,
                )
                self._busy_queues.add(queue)
                queue.wait(relayed, final, self._deliver_early_487)
            return
        fork.cancelled = True
        fork.groups.clear()
        self._cancel_pending(fork)
        self._maybe_done(fork)

    def _deliver_early_487(self, invite: Any, final: Response, relayed: Response | None) -> None:
        """The 487 of an INVITE cancelled in the chain, once the response chain is done."""
        if self._server_open(invite):
            invite.respond(relayed if relayed is not None else final)

    def _cancel_pending(self, fork: Fork) -> None:
        """CANCEL every branch still pending (16.10, 16.7 step 10)."""
        if fork.request.method != "INVITE":
            return
        for branch in fork.pending():
            branch.cancelled = True
            if branch.provisional:
                self._send_cancel(fork, branch)
            elif branch.transaction is not None:
                branch.cancel_pending = True  # RFC 3261 9.1: wait for a 1xx
            else:
                branch.done = True  # not sent yet
                branch.final = make_response(fork.request, 487)

    def _send_cancel(self, fork: Fork, branch: Branch) -> None:
        """
        Build and send the CANCEL of a branch's INVITE (RFC 3261 9.1), once,
        and give the INVITE 64*T1 to end before we end it ourselves.
        """
        branch.cancel_pending = False
        tx = branch.transaction
        if (
            tx is None
            or branch.cancel_timer is not None
            or tx.state not in (_State.CALLING, _State.PROCEEDING)
        ):
            return
        invite: Request = tx.request
        h = invite.headers
        headers = Headers.of(
            ("Via", h.get_all("Via")[0].split(",")[0]),
            *(("Route", v) for v in h.get_all("Route")),
            ("Max-Forwards", str(self._max_forwards)),
            ("From", h.get("From") or ""),
            ("To", h.get("To") or ""),
            ("Call-ID", h.get("Call-ID") or ""),
            ("CSeq", f"{invite.cseq.number} CANCEL"),
        )
        cancel = Request("CANCEL", invite.uri, headers)
        branch.cancel_timer = self._clock.callLater(
            self._timers.timer_b, self._cancel_expired, fork, branch, tx
        )
        cancel_tx = self.transactions.client_transaction(cancel, tx.flow)
        if cancel_tx.state is not _State.TERMINATED:  # else it failed already
            self._cancels.add(cancel_tx)

    def _cancel_expired(self, fork: Fork, branch: Branch, tx: Any) -> None:
        """
        RFC 3261 9.1: no final response 64*T1 after our CANCEL: consider
        the INVITE cancelled and end its client transaction.
        """
        branch.cancel_timer = None
        if branch.done or branch.transaction is not tx:
            return
        self._branches.pop(tx, None)
        tx.cancel_timers()
        self._branch_failed(fork, branch, 408, "no final response after CANCEL")

    @staticmethod
    def _stop_cancel_timer(branch: Branch) -> None:
        timer, branch.cancel_timer = branch.cancel_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    # -- stateless forwarding -------------------------------------------------

    def stray_message(self, message: Request | Response, flow: Flow) -> None:
        if isinstance(message, Request):
            if message.method == "ACK":
                mask_call_id = False
                if self._topology is not None:
                    revealed = self._reveal_request(message, flow)
                    if not isinstance(revealed, Revealed):
                        return  # never answer an ACK
                    message, mask_call_id = revealed.request, revealed.mask_call_id
                self._forward_ack(message, flow, mask_call_id)
            return
        if self._topology is not None:
            response = self._reveal_response(message, flow)
            if response is None:
                return
            message = response
        self._forward_stray_response(message, flow)

    def _forward_ack(self, ack: Request, flow: Flow, mask_call_id: bool = False) -> None:
        """An ACK for a 2xx is end to end: route it statelessly (16.11)."""
        context = RequestContext(ack, flow, self.services)
        context.annotations["topology"] = mask_call_id
        d = maybeDeferred(self.chain.run, context)
        d.addCallback(self._ack_decided, context)
        d.addErrback(lambda f: self._log.failure("Forwarding ACK failed", f))

    def _ack_decided(self, result: Any, context: RequestContext) -> Deferred[None] | None:
        if not isinstance(result, Forward):
            self._log.debug("ACK not forwarded: {result!r}", result=result)
            return None
        target = result.targets[0]
        request = forwarded_request(context.request, target, self._max_forwards)
        if target.flow is not None:
            self._send_stateless(request, context, target.flow)
            return None
        if self.locator is None:
            return None
        d = maybeDeferred(self.locator.locate, next_hop(request))
        d.addCallback(self._ack_located, request, context)
        return d

    def _ack_located(
        self, destinations: list[Any], request: Request, context: RequestContext
    ) -> None:
        for dest in destinations:
            try:
                flow = self.transports.flow_to(dest.transport, dest.host, dest.port)
            except TransportError:
                continue
            self._send_stateless(request, context, flow)
            return

    def _send_stateless(self, request: Request, context: RequestContext, flow: Flow) -> None:
        try:
            host, port = self._local_hostport(flow.transport, _family(flow.remote_host))
        except TransportError as e:
            self._log.info("Cannot forward ACK: {error}", error=str(e))
            return
        # The same branch for a retransmitted ACK (16.11): derived from its own.
        incoming = context.original.top_via.branch or ""
        branch = make_branch(branch_digest(context.original), abs(hash(incoming)) % 10_000)
        request = request.with_headers(
            request.headers.prepended("Via", via_value(flow.transport, host, port, branch))
        )
        if self.chain.branch_stages:
            checked = self.chain.run_branch(context, request, flow)
            if not isinstance(checked, Request):
                return  # an ACK cannot be refused: the chain logged the drop
            request = checked
        hidden = self._hide_request(request, self._masked(context), flow, (host, port))
        if hidden is None:
            return
        request = hidden
        self.stats["stateless"] += 1
        self._send_without_transaction(request, flow, "Cannot forward ACK: {error}")

    def _send_without_transaction(self, message: Request | Response, flow: Flow, text: str) -> None:
        """Send C{message} with no transaction to report to: log a failure."""

        def failed(failure: Failure) -> None:
            self._log.info(text, error=failure.getErrorMessage())

        if isinstance(message, Response):
            hidden = self._hide_response(message, flow)
            if hidden is None:
                return
            message = hidden
        try:
            result = self.transports.send(message, flow)
        except TransportError:
            failed(Failure())
            return
        if isinstance(result, Deferred):
            result.addErrback(failed)

    def _forward_stray_response(self, response: Response, flow: Flow) -> None:
        """
        A response with no client transaction: a 2xx to an INVITE (which
        must reach the caller, 16.7 step 5) is forwarded statelessly along
        the Vias (16.7 step 3); anything else is dropped, as is a late 2xx
        to a non-INVITE, whose transaction upstream has its final response.
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
        if len(vias) < 2 or not self.services.local.is_local_host(vias[0].host, vias[0].port):
            return
        upstream = response.with_headers(response.headers.first_removed("Via"))
        digest = digest_of_branch(vias[0].branch)
        for fork in list(self._forks.values()):
            if fork.digest == digest and fork.request.method == "INVITE" and not fork.final_sent:
                # A late 2xx from a branch we gave up on (Timer C, no answer
                # to our CANCEL) while the fork goes on: it answers the fork.
                fork.final_sent = True
                self._respond_2xx(fork, upstream)
                self._cancel_pending(fork)
                self._finish(fork)
                return
        self._relay_stray(upstream)

    def _relay_stray(self, response: Response) -> None:
        """
        A stray 2xx through the response chain (with no context), then
        statelessly upstream; the strays of one call wait in order.
        """
        call_id = response.headers.get("Call-ID") or ""
        queue = self._stray_queues.get(call_id)
        if queue is None:
            relayed = self.chain.run_responses(None, response)
            if not isinstance(relayed, Deferred):
                self._deliver_stray(None, response, relayed)
                return
            queue = ResponseQueue(
                self.chain.run_responses,
                self._clock,
                self._response_chain_timeout,
                None,
                lambda q: self._stray_queue_idle(call_id, q),
            )
            self._stray_queues[call_id] = queue
            self._busy_queues.add(queue)
            queue.wait(relayed, response, self._deliver_stray)
            return
        queue.submit(None, response, self._deliver_stray)

    def _stray_queue_idle(self, call_id: str, queue: ResponseQueue) -> None:
        self._busy_queues.discard(queue)
        if self._stray_queues.get(call_id) is queue:
            del self._stray_queues[call_id]

    def _deliver_stray(self, _: None, response: Response, relayed: Response | None) -> None:
        self._send_upstream(relayed if relayed is not None else response)

    def _send_upstream(self, upstream: Response) -> None:
        """Send a response statelessly to its top Via (RFC 3261 18.2.2)."""
        try:
            via = upstream.top_via
        except MessageParseError:
            return
        host = (via.received or via.host).strip("[]")
        if _broadcast(host):
            self._log.warn("Dropping response for broadcast address {host}", host=host)
            return
        try:
            rport = via.rport
        except MessageParseError:
            rport = None
        port = rport if isinstance(rport, int) and rport is not True else (via.port or 5060)
        try:
            out = self.transports.flow_to(via.transport, host, port)
        except TransportError as e:
            self._log.info("Cannot forward stray response: {error}", error=str(e))
            return
        self.stats["stateless"] += 1
        self._send_without_transaction(upstream, out, "Cannot forward stray response: {error}")

    # -- topology hiding --------------------------------------------------------

    def _reveal_request(self, request: Request, flow: Flow) -> Revealed | Response | None:
        """
        C{request} with our topology-hiding tokens opened; a response to
        send instead if we refuse it (C{None} for an ACK: no answer).
        """
        assert self._topology is not None
        external = self._topology.is_external(flow.remote_host)
        try:
            result = self._topology.reveal_request(request, self.services.local, external)
        except MessageParseError as e:
            result = Refusal(400, "Bad Request", f"unreadable: {e.reason}")
        if isinstance(result, Revealed):
            return result
        self._log.info(
            "Refusing {method} from {source}: {detail}",
            method=request.method,
            source=str(flow),
            detail=result.detail,
            rule=TOPOLOGY_RULE,
        )
        if request.method == "ACK":
            return None
        return make_response(request, result.status, result.reason)

    def _reveal_response(self, response: Response, flow: Flow) -> Response | None:
        """C{response} from outside with our tokens opened; C{None} to drop it."""
        assert self._topology is not None
        if not self._topology.is_external(flow.remote_host):
            return response
        try:
            result = self._topology.reveal_response(response, self.services.local)
        except MessageParseError as e:
            result = Refusal(400, "Bad Response", f"unreadable: {e.reason}")
        if isinstance(result, Response):
            return result
        self._log.info(
            "Dropping {status} response from {source}: {detail}",
            status=response.status,
            source=str(flow),
            detail=result.detail,
            rule=TOPOLOGY_RULE,
        )
        return None

    @staticmethod
    def _masked(context: Any) -> bool:
        """Whether the Call-ID of the request of C{context} is masked outside."""
        return bool(context is not None and context.annotations.get("topology"))

    def _hide_originated(
        self, request: Request, flow: Flow, ours: tuple[str, int]
    ) -> Request | None:
        """
        A request of our own (L{originate}) on C{flow}, hidden if that goes
        outside: its Call-ID is masked if its dialog was set up from inside
        (the caller's flow is internal).
        """
        if self._topology is None:
            return request
        mask = False
        if self.dialogs is not None:
            try:
                request_tags = (request.from_address.tag, request.to_address.tag)
                dialog = self.dialogs.find(request.call_id, *request_tags)
            except MessageParseError:
                dialog = None
            caller = dialog.parties.get(CALLER) if dialog is not None else None
            if caller is not None and caller.flow is not None:
                mask = self._topology.is_internal(caller.flow.remote_host)
        return self._hide_request(request, mask, flow, ours)

    def _hide_request(
        self, request: Request, mask: bool, flow: Flow, ours: tuple[str, int]
    ) -> Request | None:
        """
        A request we send on C{flow}, hidden if that goes outside (with
        its Call-ID masked if C{mask}); C{None} if it cannot be (it must
        not leave then).
        """
        if self._topology is None or not self._topology.is_external(flow.remote_host):
            return request
        try:
            return self._topology.hide_request(
                request, self.services.local, (flow.transport, *ours), mask
            )
        except MessageParseError as e:
            self._not_hidden(request, flow, e)
            return None

    def _hide_response(self, response: Response, flow: Flow) -> Response | None:
        """
        A response we send on C{flow}, hidden if that goes outside; C{None}
        if it cannot be (it must not leave then).
        """
        if self._topology is None or not self._topology.is_external(flow.remote_host):
            return response
        try:
            host, port = self._local_hostport(flow.transport, _family(flow.remote_host))
        except TransportError:
            host, port = flow.local_host, flow.local_port
        try:
            return self._topology.hide_response(
                response, self.services.local, (flow.transport, host, port)
            )
        except MessageParseError as e:
            self._not_hidden(response, flow, e)
            return None

    def _not_hidden(
        self, message: Request | Response, flow: Flow, error: MessageParseError
    ) -> None:
        self._log.info(
            "Not sending {message} to {destination}: cannot hide it ({error})",
            message=message.method if isinstance(message, Request) else message.status,
            destination=str(flow),
            error=error.reason,
            rule=TOPOLOGY_RULE,
        )
