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
the one setting for it. Each branch is sent by the L{BranchSender}
(L{sipedge.proxy._branching}): the request, its destinations, UDP or TCP
(RFC 3261 18.1.1); a phone registered over UDP keeps its flow (its NAT
binding is UDP).

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

from sipedge.error import MessageParseError, TransactionTimeout, TransportError
from sipedge.message import Response, branch_digest
from sipedge.pipeline import RequestContext, Respond, Target
from sipedge.proxy._branching import BranchSender
from sipedge.proxy._fork import Branch, Fork, best_response, group_by_q
from sipedge.proxy._responses import ResponseQueue
from sipedge.proxy._upstream import (
    deliver_final,
    deliver_no_answer,
    deliver_provisional,
    local_response,
    server_open,
    takes_2xx,
)
from sipedge.transaction import State, make_response

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
        #: The client transactions a 2xx moved to ACCEPTED (Timer M) whose
        #: fork has let go of everything else -> the fork's server
        #: transaction (see L{_release}).
        self.accepted: dict[Any, Any] = {}
        #: Of those, the ones whose dialog the tracker may confirm -> what
        #: the initial INVITE gives a dialog (a L{DialogSeed}).
        self.seeds: dict[Any, Any] = {}
        #: Sends the branches (L{sipedge.proxy._branching}).
        self.sending = BranchSender(core, self)

    def stop(self) -> None:
        """Stop Timer C of every fork and forget them (the service stops)."""
        for fork in list(self.forks.values()):
            if fork.timer_c is not None and fork.timer_c.active():
                fork.timer_c.cancel()
            fork.timer_c = None
        self.forks.clear()
        self.branches.clear()
        self.accepted.clear()
        self.seeds.clear()

    def owns(self, transaction: Any) -> bool:
        """True for the client transaction of one of our branches."""
        return transaction in self.branches or transaction in self.accepted

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
            self.sending.start(fork, branch)
        return True

    def branch_refused(self, fork: Fork, branch: Branch, refusal: Respond) -> None:
        """
        A branch stage (L{IBranchStage}) refused the branch's current
        destination: try the next one, else the branch fails with the
        refusal as its final response.
        """
        if branch.destinations and self._retry(fork, branch):
            return
        self._final(fork, branch, local_response(fork.request, refusal))

    def destination_failed(self, fork: Fork, branch: Branch, reason: str) -> None:
        """Sending to the branch's current destination failed: try the next."""
        if self.sending.fall_back_to_udp(fork, branch):
            return
        if not (branch.destinations and self._retry(fork, branch)):
            # A target reached only over its own flow: that flow failed.
            self.branch_failed(fork, branch, branch.target.flow_failed or 503, reason)

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
            server = self.accepted.get(transaction)
            if server is not None and 200 <= response.status < 300:
                # A 2xx again, or another dialog's (a fork downstream).
                seed = self.seeds.get(transaction)
                if seed is not None and self._core.dialogs is not None:
                    try:
                        self._core.dialogs.late_2xx(seed, response, transaction.flow)
                    except Exception:
                        self._log.failure("Dialog tracking failed")
                upstream = response.with_via_popped(transaction.flow)
                self._core.stateless.relay_2xx(upstream, server)
            return
        core = self._core
        fork, branch = entry
        if response.status >= 200 and core.dialogs is not None:
            # what we sent as the internal side sees it (before hiding)
            sent = branch.sent if branch.sent is not None else transaction.request
            try:
                seed = core.dialogs.response_received(
                    fork.context, sent, response, transaction.flow
                )
                if seed is not None:
                    branch.seed = seed
            except Exception:
                self._log.failure("Dialog tracking failed")
        branch.udp_fallback = None  # the connection works
        # the flow it came on: the response stages learn where its sender is
        upstream = response.with_via_popped(transaction.flow)
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

    def late_2xx(
        self,
        digest: str,
        upstream: Response,
        received: Response | None = None,
        flow: Any = None,
    ) -> bool:
        """
        A 2xx with no client transaction whose branch is one of a fork
        still going on (a branch we gave up on: Timer C, no answer to our
        CANCEL): it answers the fork, and its dialog is tracked if the
        branch is known (C{received}: the 2xx with our Via, from C{flow}).
        False if no such fork.
        """
        for fork in list(self.forks.values()):
            if fork.digest == digest and fork.request.method == "INVITE" and not fork.final_sent:
                if received is not None and flow is not None:
                    self._track_late(fork, received, flow)
                fork.final_sent = True
                self.respond_2xx(fork, upstream)
                self._core.cancelling.cancel_pending(fork)
                self.finish(fork)
                return True
        return False

    def _track_late(self, fork: Fork, received: Response, flow: Any) -> None:
        """Tell the dialog tracker of a late 2xx on a branch of C{fork}."""
        dialogs = self._core.dialogs
        if dialogs is None:
            return
        try:
            index = int((received.top_via.branch or "").rsplit(".", 1)[1]) // 100
        except (MessageParseError, IndexError, ValueError):
            return
        for branch in fork.branches:
            if branch.index == index and branch.sent is not None:
                try:
                    dialogs.response_received(fork.context, branch.sent, received, flow)
                except Exception:
                    self._log.failure("Dialog tracking failed")
                return

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
        if takes_2xx(fork.server):
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
        return self.sending.try_next_destination(fork, branch)

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
        if not fork.pending():
            self._release(fork)

    def _release(self, fork: Fork) -> None:
        """
        The fork and every branch of it have their final response: let go
        of it (its request context, the request as received, routed and
        sent, the responses), though its branches' client transactions
        linger (Timers D, K, M: up to 32 s). Those in COMPLETED absorb
        retransmissions alone; one a 2xx moved to ACCEPTED keeps only the
        server transaction, for a 2xx that may still come on it (relayed
        as a stray 2xx is, with no request context: L{response_received}),
        and what the dialog tracker needs to track the dialog of such a 2xx
        (the L{DialogSeed} it made for the first: a few strings, not the
        messages).
        """
        for branch in fork.branches:
            tx = branch.transaction
            entry = self.branches.get(tx) if tx is not None else None
            if entry is None or entry[0] is not fork:
                continue
            del self.branches[tx]
            if tx.state is State.ACCEPTED:
                self.accepted[tx] = fork.server
                if branch.seed is not None:
                    self.seeds[tx] = branch.seed

    def transaction_failed(self, transaction: Any, reason: Failure) -> bool:
        """The client transaction of a branch failed; False if it is none of ours."""
        entry = self.branches.get(transaction)
        if entry is None:
            return False
        fork, branch = entry
        if branch.done:
            return True
        if not reason.check(TransactionTimeout) and self.sending.fall_back_to_udp(fork, branch):
            return True
        if branch.destinations and self._retry(fork, branch):
            return True
        if reason.check(TransactionTimeout):
            self.branch_failed(fork, branch, 408, "no answer")
        elif branch.target.flow_failed is not None and reason.check(TransportError):
            # Reached only over its own flow, which failed as we sent (e.g.
            # the worker holding the connection saw it close meanwhile): as
            # if it were gone before (RFC 5626 430, else 480), not 503.
            self.branch_failed(fork, branch, branch.target.flow_failed,
                               f"flow failed: {reason.getErrorMessage()}")
        else:
            self.branch_failed(fork, branch, 503, reason.getErrorMessage())
        return True

    def transaction_terminated(self, transaction: Any) -> None:
        """A transaction ended: a branch's, or the server transaction of a fork."""
        self.branches.pop(transaction, None)
        self.accepted.pop(transaction, None)
        self.seeds.pop(transaction, None)
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
