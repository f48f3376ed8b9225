# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
CANCEL (RFC 3261 16.10, 9.1): a CANCEL received is answered at once and
cancels the INVITE's fork (or, while the request chain is still deciding,
answers the INVITE 487 itself); the pending branches of a fork are
cancelled with CANCELs of our own, each sent once the branch has had a
provisional response, and a branch whose CANCEL gets no final response
within 64*T1 is ended by us.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from sipedge.message import Headers, Request, Response
from sipedge.proxy._fork import Branch, Fork
from sipedge.proxy._responses import ResponseQueue
from sipedge.proxy._upstream import server_open
from sipedge.transaction import State, make_response

__all__ = ["Canceller"]


class Canceller:
    """
    The CANCELs of one proxy core.

    @param core: the L{ProxyCore} (its chain, transaction layer, forks and
        the requests still being decided).
    @ivar cancels: the client transactions of our own CANCELs.
    """

    def __init__(self, core: Any) -> None:
        self._core = core
        self.cancels: set[Any] = set()

    def cancel_received(self, request: Request, transaction: Any) -> None:
        """A CANCEL in its own server transaction (16.10)."""
        core = self._core
        invite = core.transactions.server_transaction_for(request)
        if invite is None:
            transaction.respond(make_response(request, 481))
            return
        transaction.respond(make_response(request, 200))
        fork = core.forking.forks.get(invite)
        if fork is None:
            # Still in the pipeline: answer the INVITE ourselves, through
            # the response chain (a stage that allocated something for it
            # releases it); the observers learn of it when the chain ends.
            if server_open(invite):
                final = make_response(invite.request, 487)
                context = core.deciding.get(invite)
                if context is None:
                    invite.respond(final)
                    return
                core.cancelled_early.add(invite)
                relayed = core.chain.run_responses(context, final)
                if not isinstance(relayed, Deferred):
                    self._deliver_early_487(invite, final, relayed)
                    return
                queue = ResponseQueue(
                    core.chain.run_responses,
                    core.clock,
                    core.response_chain_timeout,
                    invite,
                    core.busy_queues.discard,
                )
                core.busy_queues.add(queue)
                queue.wait(relayed, final, self._deliver_early_487)
            return
        fork.cancelled = True
        fork.groups.clear()
        self.cancel_pending(fork)
        core.forking.maybe_done(fork)

    def _deliver_early_487(self, invite: Any, final: Response, relayed: Response | None) -> None:
        """The 487 of an INVITE cancelled in the chain, once the response chain is done."""
        if server_open(invite):
            invite.respond(relayed if relayed is not None else final)

    def cancel_pending(self, fork: Fork) -> None:
        """CANCEL every branch still pending (16.10, 16.7 step 10)."""
        if fork.request.method != "INVITE":
            return
        for branch in fork.pending():
            branch.cancelled = True
            if branch.provisional:
                self.send_cancel(fork, branch)
            elif branch.transaction is not None:
                branch.cancel_pending = True  # RFC 3261 9.1: wait for a 1xx
            else:
                branch.done = True  # not sent yet
                branch.final = make_response(fork.request, 487)

    def send_cancel(self, fork: Fork, branch: Branch) -> None:
        """
        Build and send the CANCEL of a branch's INVITE (RFC 3261 9.1), once,
        and give the INVITE 64*T1 to end before we end it ourselves.
        """
        core = self._core
        branch.cancel_pending = False
        tx = branch.transaction
        if (
            tx is None
            or branch.cancel_timer is not None
            or tx.state not in (State.CALLING, State.PROCEEDING)
        ):
            return
        invite: Request = tx.request
        h = invite.headers
        headers = Headers.of(
            ("Via", h.get_all("Via")[0].split(",")[0]),
            *(("Route", v) for v in h.get_all("Route")),
            ("Max-Forwards", str(core.max_forwards)),
            ("From", h.get("From") or ""),
            ("To", h.get("To") or ""),
            ("Call-ID", h.get("Call-ID") or ""),
            ("CSeq", f"{invite.cseq.number} CANCEL"),
        )
        cancel = Request("CANCEL", invite.uri, headers)
        branch.cancel_timer = core.clock.callLater(
            core.timers.timer_b, self._cancel_expired, fork, branch, tx
        )
        cancel_tx = core.transactions.client_transaction(cancel, tx.flow)
        if cancel_tx.state is not State.TERMINATED:  # else it failed already
            self.cancels.add(cancel_tx)

    def _cancel_expired(self, fork: Fork, branch: Branch, tx: Any) -> None:
        """
        RFC 3261 9.1: no final response 64*T1 after our CANCEL: consider
        the INVITE cancelled and end its client transaction.
        """
        branch.cancel_timer = None
        if branch.done or branch.transaction is not tx:
            return
        self._core.forking.branches.pop(tx, None)
        tx.cancel_timers()
        self._core.forking.branch_failed(fork, branch, 408, "no final response after CANCEL")

    @staticmethod
    def stop_cancel_timer(branch: Branch) -> None:
        """Stop the branch's 64*T1 wait after our CANCEL (a final response came)."""
        timer, branch.cancel_timer = branch.cancel_timer, None
        if timer is not None and timer.active():
            timer.cancel()
