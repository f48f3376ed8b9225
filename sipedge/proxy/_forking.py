# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
Forking (RFC 3261 16.6) and the response context (16.7): a forwarded
request goes to its targets, in parallel within a q-value and serially
across q-values, each target in a client transaction with our Via and
Record-Route, failing over to the next DNS destination (RFC 3263 4.3);
responses are collected, provisional ones relayed, every 2xx of an
INVITE relayed, and the best final response chosen
(L{sipedge.proxy._fork.best_response}) once every branch has ended. Timer
C (16.8) guards a forked INVITE: its duration is C{TimerSettings.timer_c},
the one setting for it.

A request over 1300 bytes for a next hop found by DNS whose URI leaves
the transport open goes over TCP to the same address instead of UDP, and
over UDP after all if no connection can be made (RFC 3261 18.1.1); a
phone registered over UDP keeps its flow (its NAT binding is UDP).

A non-INVITE follows RFC 4320: no provisional response is relayed to it
(4.1), and it never gets a 408 (4.2): when no branch answered, nothing is
sent upstream and its server transaction ends silently.

Responses relayed upstream pass the response chain, which may answer with
a Deferred: the responses of one server transaction then wait, in order,
in a L{ResponseQueue} (L{sipedge.proxy._responses}), bounded by
C{response_chain_timeout}. The decisions (which final response, CANCEL of
the other branches, Timer C) are taken when a response arrives; only its
relaying upstream waits.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import LocalProtocolError, MessageParseError, TransactionTimeout, TransportError
from sipedge.message import Request, Response, branch_digest, make_branch
from sipedge.pipeline import RequestContext, Respond, Target, settled
from sipedge.proxy._flowtoken import dialog_flows
from sipedge.proxy._fork import Branch, Fork, best_response, group_by_q
from sipedge.proxy._forwarding import (
    RECORD_ROUTED_METHODS,
    forwarded_request,
    is_secure,
    is_transport_open,
    next_hop,
    record_route_value,
    via_value,
    with_record_route,
)
from sipedge.proxy._hiding import masked
from sipedge.proxy._responses import ResponseQueue
from sipedge.proxy._upstream import (
    deliver_final,
    deliver_no_answer,
    deliver_provisional,
    local_response,
    server_open,
)
from sipedge.transaction import State, make_response
from sipedge.transport import too_large_for_udp

__all__ = ["Forker"]


class Forker:
    """
    The forks of one proxy core.

    @param core: the L{ProxyCore} (its chain, transaction layer, transports,
        locator, addresses, sender, topology wrapper and settings, read
        when used: the transports are set after construction).
    @ivar forks: server transaction -> its L{Fork}.
    @ivar branches: client transaction -> its C{(Fork, Branch)}.
    """

    _log = Logger()

    def __init__(self, core: Any) -> None:
        self._core = core
        self.forks: dict[Any, Fork] = {}
        self.branches: dict[Any, tuple[Fork, Branch]] = {}

    def stop(self) -> None:
        """Stop Timer C of every fork and forget them (the service stops)."""
        for fork in list(self.forks.values()):
            if fork.timer_c is not None and fork.timer_c.active():
                fork.timer_c.cancel()
            fork.timer_c = None
        self.forks.clear()
        self.branches.clear()

    # -- forwarding (16.6) ----------------------------------------------------

    def forward(self, context: RequestContext, server: Any, targets: tuple[Target, ...]) -> None:
        """Forward the request of C{context} (server transaction C{server}) to C{targets}."""
        fork = Fork(
            context=context,
            server=server,
            request=context.request,
            original=context.original,
            digest=branch_digest(context.original),
            incoming=context.flow,
            groups=group_by_q(targets),
        )
        self.forks[server] = fork
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
        core = self._core
        try:
            request = forwarded_request(fork.request, branch.target, core.max_forwards)
            hop = next_hop(request)
        except MessageParseError as e:
            self.branch_failed(fork, branch, 400, f"bad target: {e.reason}")
            return
        branch.request = request
        flow = branch.target.flow
        if flow is not None and (
            not flow.reliable or core.transports.connection_for(flow) is not None
        ):
            self._send_branch(fork, branch, flow)
            return
        if flow is not None and branch.target.flow_failed is not None:
            # Reached only over its own connection, which is gone: never a
            # connect to the (private) address of its Contact.
            self.branch_failed(fork, branch, branch.target.flow_failed, "flow failed")
            return
        # No flow, or the connection a phone registered over is gone: send
        # to what its Contact resolves to.
        branch.may_use_tcp = is_transport_open(hop)
        if core.locator is None:
            self.branch_failed(fork, branch, 503, "no locator")
            return
        try:
            located = settled(core.locator.locate(hop))
        except Exception:
            located = Failure()
        if isinstance(located, Deferred):
            located.addCallback(self._located, fork, branch)
            located.addErrback(self._locate_failed, fork, branch)
        elif isinstance(located, Failure):
            self._locate_failed(located, fork, branch)
        else:
            # An IP address with a port, or a name already resolved.
            self._located(located, fork, branch)

    def _located(self, destinations: list[Any], fork: Fork, branch: Branch) -> None:
        if branch.done:
            return
        if not destinations:
            self.branch_failed(fork, branch, 404, "next hop not found")
            return
        branch.destinations = list(destinations)
        if not self._try_next_destination(fork, branch):
            self.branch_failed(fork, branch, 503, "next hop not reachable")

    def _locate_failed(self, failure: Failure, fork: Fork, branch: Branch) -> None:
        if branch.done:
            return
        self._log.info("Cannot locate next hop: {error}", error=failure.getErrorMessage())
        self.branch_failed(fork, branch, 503, "next hop not reachable")

    def _try_next_destination(self, fork: Fork, branch: Branch) -> bool:
        core = self._core
        while branch.destinations:
            dest = branch.destinations.pop(0)
            try:
                flow = core.transports.flow_to(dest.transport, dest.host, dest.port)
            except TransportError:
                continue
            if flow.secure:
                # RFC 5922: the certificate must name the domain we resolved.
                core.sender.expect_server_name(flow, dest.server_name)
            self._send_branch(fork, branch, flow)
            return True
        return False

    def _flow_token(self, fork: Fork, branch: Branch, flow: Any) -> str | None:
        """
        The flow token for our Record-Route of a dialog-creating request:
        how to reach a party behind NAT in the dialog's later requests.
        """
        tokens = self._core.flow_tokens
        if tokens is None:
            return None
        target = branch.target
        callee = flow if target.flow == flow else None
        flows = dialog_flows(fork.original, fork.incoming, callee, target.flow_failed)
        if flows is None:
            return None
        return str(tokens.seal(flows, fork.request.call_id))

    def _send_branch(self, fork: Fork, branch: Branch, flow: Any) -> None:
        assert branch.request is not None
        core = self._core
        request = branch.request
        if fork.cancelled:
            self.branch_failed(fork, branch, 487, "cancelled")
            return
        addresses = core.addresses
        try:
            local_host, local_port = addresses.hostport_toward(flow.transport, flow.remote_host)
            index = branch.index * 100 + len(branch.destinations)
            if branch.udp_fallback is not None:
                index += 50  # the TCP attempt of a large request: its own branch
            if (
                core.record_route
                and request.method in RECORD_ROUTED_METHODS
                and request.to_address.tag is None
            ):
                mac = core.signer.mac(request.call_id)
                token = self._flow_token(fork, branch, flow)
                secure = is_secure(request)
                values = []
                incoming = fork.incoming
                in_host, in_port = addresses.hostport_toward(
                    incoming.transport, incoming.remote_host
                )
                if (incoming.transport, in_host, in_port) != (
                    flow.transport,
                    local_host,
                    local_port,
                ):
                    values.append(
                        record_route_value(incoming.transport, in_host, in_port, mac, secure, token)
                    )
                values.append(
                    record_route_value(flow.transport, local_host, local_port, mac, secure, token)
                )
                request = with_record_route(request, values)
        except TransportError as e:
            # No address of ours for that transport and family (no Via).
            self._destination_failed(fork, branch, str(e))
            return
        branch_id = make_branch(fork.digest, index)
        via = via_value(flow.transport, local_host, local_port, branch_id)
        request = request.with_headers(request.headers.prepended("Via", via), changed="Via")
        chain = core.chain
        if chain.branch_stages:
            checked = chain.run_branch(fork.context, request, flow)
            if not isinstance(checked, Request):
                self._branch_refused(fork, branch, checked)
                return
            request = checked
        branch.sent = request
        if core.hiding is not None:
            hidden = core.hiding.hide_request(
                request, masked(fork.context), flow, (local_host, local_port)
            )
            if hidden is None:
                self.branch_failed(fork, branch, 500, "cannot hide topology")
                return
            request = hidden
        if flow.transport == "UDP" and branch.may_use_tcp and too_large_for_udp(request):
            if self._send_over_tcp(fork, branch, flow):
                return
        try:
            transaction = core.transactions.client_transaction(request, flow)
        except LocalProtocolError:
            # The same request is being forwarded already (the same branch):
            # it came back to us, or reached us twice (RFC 3261 8.2.2.2).
            self.branch_failed(fork, branch, 482, "merged or looped request")
            return
        branch.transaction = transaction
        if transaction.state is State.TERMINATED:
            # The first send failed: the layer reported it (to
            # transaction_failed) before we knew the transaction.
            self._destination_failed(fork, branch, "cannot send")
            return
        self.branches[transaction] = (fork, branch)

    def _send_over_tcp(self, fork: Fork, branch: Branch, udp: Any) -> bool:
        """
        RFC 3261 18.1.1: a request over 1300 bytes goes over TCP to the
        same address (with a TCP Via); False if we have no TCP to offer.
        """
        try:
            tcp = self._core.transports.flow_to("TCP", udp.remote_host, udp.remote_port)
        except TransportError:
            return False
        self._log.info(
            "Sending {method} to {host}:{port} over TCP: too large for UDP (RFC 3261 18.1.1)",
            method=fork.request.method,
            host=udp.remote_host,
            port=udp.remote_port,
        )
        branch.may_use_tcp = False
        branch.udp_fallback = udp
        self._send_branch(fork, branch, tcp)
        return True

    def _fall_back_to_udp(self, fork: Fork, branch: Branch) -> bool:
        """
        The TCP connection for a large request could not be made: send it
        over UDP after all (RFC 3261 18.1.1), unless the branch has ended.
        """
        udp, branch.udp_fallback = branch.udp_fallback, None
        if udp is None or branch.cancelled or fork.cancelled or fork.final_sent:
            return False
        self._log.info(
            "No TCP to {host}:{port}: sending {method} over UDP",
            host=udp.remote_host,
            port=udp.remote_port,
            method=fork.request.method,
        )
        self.branches.pop(branch.transaction, None)
        self._send_branch(fork, branch, udp)
        return True

    def _branch_refused(self, fork: Fork, branch: Branch, refusal: Respond) -> None:
        """
        A branch stage (L{IBranchStage}) refused the branch's current
        destination: try the next one, else the branch fails with the
        refusal as its final response.
        """
        if branch.destinations and self._retry(fork, branch):
            return
        self._final(fork, branch, local_response(fork.request, refusal))

    def _destination_failed(self, fork: Fork, branch: Branch, reason: str) -> None:
        """Sending to the branch's current destination failed: try the next."""
        if self._fall_back_to_udp(fork, branch):
            return
        if not (branch.destinations and self._retry(fork, branch)):
            self.branch_failed(fork, branch, 503, reason)

    def branch_failed(self, fork: Fork, branch: Branch, status: int, reason: str) -> None:
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
        """A response (topology revealed) to the client transaction of a branch."""
        entry = self.branches.get(transaction)
        if entry is None:
            return
        core = self._core
        fork, branch = entry
        if response.status >= 200 and core.dialogs is not None:
            # what we sent as the internal side sees it (before hiding)
            sent = branch.sent if branch.sent is not None else transaction.request
            try:
                core.dialogs.response_received(fork.context, sent, response, transaction.flow)
            except Exception:
                self._log.failure("Dialog tracking failed")
        branch.udp_fallback = None  # the connection works
        # the flow it came on: the response stages learn where its sender is
        upstream = response.with_headers(
            response.headers.first_removed("Via"), transaction.flow, changed="Via"
        )
        status = response.status
        cancelling = core.cancelling
        if status < 200:
            if status == 100:
                return
            branch.provisional = True
            if branch.cancel_pending:
                cancelling.send_cancel(fork, branch)
            if fork.request.method != "INVITE":
                # RFC 4320 4.1: no provisional response to a non-INVITE
                # (a 1xx would only slow the client's retransmissions).
                return
            if not fork.final_sent:
                self._arm_timer_c(fork)
            if not fork.final_sent and server_open(fork.server):
                self._relay(fork, upstream, deliver_provisional)
            return
        if status < 300:
            branch.done = True
            branch.final = response
            cancelling.stop_cancel_timer(branch)
            if fork.request.method == "INVITE":
                # every 2xx goes upstream (16.7 step 5); other branches end
                fork.final_sent = True
                self.respond_2xx(fork, upstream)
                cancelling.cancel_pending(fork)
                self.finish(fork)
            else:
                if not fork.final_sent:
                    fork.final_sent = True
                    self._relay(fork, upstream, deliver_final)
                cancelling.cancel_pending(fork)
                self.maybe_done(fork)
            return
        if status == 503 and branch.destinations and self._retry(fork, branch):
            return
        self._final(fork, branch, upstream)

    def late_2xx(self, digest: str, upstream: Response) -> bool:
        """
        A 2xx with no client transaction whose branch is one of a fork
        still going on (a branch we gave up on: Timer C, no answer to our
        CANCEL): it answers the fork. False if no such fork.
        """
        for fork in list(self.forks.values()):
            if fork.digest == digest and fork.request.method == "INVITE" and not fork.final_sent:
                fork.final_sent = True
                self.respond_2xx(fork, upstream)
                self._core.cancelling.cancel_pending(fork)
                self.finish(fork)
                return True
        return False

    def respond_2xx(self, fork: Fork, response: Response) -> None:
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
        core = self._core
        queue = fork.responses
        if queue is None:
            relayed = core.chain.run_responses(fork.context, response)
            if not isinstance(relayed, Deferred):
                deliver(fork, response, relayed)
                return
            queue = fork.responses = ResponseQueue(
                core.chain.run_responses,
                core.clock,
                core.response_chain_timeout,
                fork,
                self._fork_queue_idle,
            )
            core.busy_queues.add(queue)
            queue.wait(relayed, response, deliver)
            return
        core.busy_queues.add(queue)
        queue.submit(fork.context, response, deliver)

    def _fork_queue_idle(self, queue: ResponseQueue) -> None:
        self._core.busy_queues.discard(queue)
        fork = queue.owner
        if fork.finished:
            self._forget(fork)

    def _deliver_2xx(self, fork: Fork, response: Response, relayed: Response | None) -> None:
        """
        Through the server transaction while it can take a 2xx (TRYING,
        PROCEEDING, ACCEPTED), else statelessly along the Vias (16.7 step
        10: a 2xx after we sent a non-2xx final).
        """
        response = relayed if relayed is not None else response
        if fork.server.state in (State.PROCEEDING, State.TRYING, State.ACCEPTED):
            fork.server.respond(response)
        else:
            self._core.stateless.send_upstream(response)

    def _retry(self, fork: Fork, branch: Branch) -> bool:
        """
        Fail over to the branch's next destination (RFC 3263 4.3); never
        for a branch being cancelled or a fork that has its answer.
        """
        if branch.cancelled or fork.cancelled or fork.final_sent:
            return False
        self._core.cancelling.stop_cancel_timer(branch)
        old = branch.transaction
        self.branches.pop(old, None)
        branch.provisional = False
        return self._try_next_destination(fork, branch)

    def _final(self, fork: Fork, branch: Branch, response: Response) -> None:
        """A non-2xx final response (received, or made up locally) for a branch."""
        branch.done = True
        branch.final = response
        self._core.cancelling.stop_cancel_timer(branch)
        if response.status >= 600 and fork.request.method == "INVITE":
            self._core.cancelling.cancel_pending(fork)
            fork.groups.clear()
        self.maybe_done(fork)

    def maybe_done(self, fork: Fork) -> None:
        """Send the fork's final response if no branch is pending and no group left."""
        if fork.pending():
            return
        if fork.final_sent:
            self.finish(fork)
            return
        if not fork.cancelled and not any(r.status >= 600 for r in fork.finals()):
            if self._next_group(fork):
                return
        fork.final_sent = True
        if server_open(fork.server):
            finals = fork.finals()
            if fork.request.method != "INVITE":
                # RFC 4320 4.2: never a 408 to a non-INVITE. A timeout is
                # no answer: if no branch has another, none is sent.
                finals = [r for r in finals if r.status != 408]
            if fork.cancelled:
                self._relay(fork, make_response(fork.original, 487), deliver_final)
            elif finals:
                self._relay(fork, best_response(finals), deliver_final)
            else:
                # Through the response chain all the same, so stages learn
                # that the request ended; then nothing goes upstream.
                timeout = make_response(fork.original, 408)
                self._relay(fork, timeout, deliver_no_answer)
        self.finish(fork)

    def finish(self, fork: Fork) -> None:
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
        if self.forks.get(fork.server) is fork:
            del self.forks[fork.server]

    def transaction_failed(self, transaction: Any, reason: Failure) -> bool:
        """The client transaction of a branch failed; False if it is none of ours."""
        entry = self.branches.get(transaction)
        if entry is None:
            return False
        fork, branch = entry
        if branch.done:
            return True
        if not reason.check(TransactionTimeout) and self._fall_back_to_udp(fork, branch):
            return True
        if branch.destinations and self._retry(fork, branch):
            return True
        if reason.check(TransactionTimeout):
            self.branch_failed(fork, branch, 408, "no answer")
        else:
            self.branch_failed(fork, branch, 503, reason.getErrorMessage())
        return True

    def transaction_terminated(self, transaction: Any) -> None:
        """A transaction ended: a branch's, or the server transaction of a fork."""
        self.branches.pop(transaction, None)
        fork = self.forks.get(transaction)
        if fork is not None and fork.final_sent:
            self.finish(fork)

    # -- Timer C (16.8) -------------------------------------------------------

    def _arm_timer_c(self, fork: Fork) -> None:
        timer_c = self._core.timers.timer_c
        if fork.timer_c is not None and fork.timer_c.active():
            fork.timer_c.reset(timer_c)
        else:
            fork.timer_c = self._core.clock.callLater(timer_c, self._timer_c_fired, fork)

    def _timer_c_fired(self, fork: Fork) -> None:
        fork.timer_c = None
        self._log.info("Timer C fired for {call_id}", call_id=fork.request.headers.get("Call-ID"))
        for branch in fork.pending():
            if branch.provisional:
                branch.cancelled = True
                self._core.cancelling.send_cancel(fork, branch)
            else:
                # 16.8: no provisional: as if a 408 came back
                if branch.transaction is not None:
                    self.branches.pop(branch.transaction, None)
                    branch.transaction.cancel_timers()
                self.branch_failed(fork, branch, 408, "Timer C")
