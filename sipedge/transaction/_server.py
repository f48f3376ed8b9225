# -*- test-case-name: sipedge.test.test_transaction -*-
"""
Server transactions: RFC 3261 17.2.1 (INVITE, with RFC 6026's ACCEPTED
state) and 17.2.2 (non-INVITE).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import LocalProtocolError, TransactionTimeout
from sipedge.flow import Flow
from sipedge.interfaces import IServerTransaction
from sipedge.message import Request, Response
from sipedge.transaction._base import Transaction, _bump
from sipedge.transaction._key import TransactionKey, server_key
from sipedge.transaction._response import make_response
from sipedge.transaction._states import (
    SERVER_INVITE,
    SERVER_NON_INVITE,
    Input,
    MachineSpec,
    ServerInput,
    State,
)

__all__ = ["ServerInviteTransaction", "ServerNonInviteTransaction"]


# Where the final response sent is no longer needed (an RFC 2543 ACK in
# COMPLETED and CONFIRMED is matched by its To tag).
_NO_FINAL_STATES = frozenset({State.ACCEPTED, State.TERMINATED})


def _response_input(response: Response) -> ServerInput:
    if not 100 <= response.status <= 699:
        raise LocalProtocolError(f"status {response.status} is not a SIP status code")
    if response.status < 200:
        return ServerInput.SEND_1XX
    if response.status < 300:
        return ServerInput.SEND_2XX
    return ServerInput.SEND_3XX_6XX


@implementer(IServerTransaction)
@attrs.define(eq=False, repr=False)
class _ServerTransaction(Transaction):
    """
    What both server machines do.

    @ivar last_provisional: the last provisional response sent, until a
        final response is sent.
    @ivar final_response: the final response sent; C{None} again in
        ACCEPTED (a 2xx is never sent again by the transaction, RFC 6026)
        and TERMINATED.
    """

    _transport_error_input: ClassVar[Input] = ServerInput.TRANSPORT_ERROR
    _request_states: ClassVar[frozenset[State]] = frozenset({State.TRYING, State.PROCEEDING})

    last_provisional: Response | None = attrs.field(init=False, default=None)
    final_response: Response | None = attrs.field(init=False, default=None)

    def _make_key(self) -> TransactionKey:
        assert self.request is not None
        return server_key(self.request)

    def _let_go(self) -> None:
        super()._let_go()
        if self.state in _NO_FINAL_STATES:
            self.final_response = None

    # -- inputs ------------------------------------------------------------

    def request_received(self, request: Request, flow: Flow | None = None) -> None:
        """
        A retransmission of the request, or an ACK, matched this transaction
        (17.2.3). It is absorbed (and answered where the RFC says so); an ACK
        in ACCEPTED goes to the TU's C{stray_message}.

        @raise RemoteProtocolError: if the machine cannot take it.
        """
        input = ServerInput.RECV_ACK if request.method == "ACK" else ServerInput.RECV_REQUEST
        self.process_input(input, (request, self.flow if flow is None else flow))

    def respond(self, response: Response) -> None:
        """
        Send C{response}, and retransmit it as the machine requires.

        @raise LocalProtocolError: if the machine cannot send it now (a 1xx
            after the final response, anything once TERMINATED); the
            transaction is then TERMINATED.
        """
        self.process_input(_response_input(response), response)

    # -- actions -----------------------------------------------------------

    def _do_send_response(self, response: Response) -> None:
        if response.status < 200:
            self.last_provisional = response
        else:
            # No state after a final response sends a provisional again:
            # let it go, rather than hold it while Timer J or L runs (32 s).
            self.last_provisional = None
            if self.state is State.COMPLETED:
                # Kept to be sent again (Timer G, or J: 32 s), so without
                # the typed views the stages parsed on it: the same
                # response, sent and sent again.
                response = Response(
                    response.status, response.reason, response.headers, response.body,
                    response.version, flow=response.flow,
                )  # fmt: skip
            self.final_response = response
        self._transmit(response)

    def _do_resend_provisional(self, payload: object) -> None:
        if self.last_provisional is not None:
            self._transmit(self.last_provisional, retransmission=True)

    def _do_resend_final(self, payload: object) -> None:
        assert self.final_response is not None
        self._transmit(self.final_response, retransmission=True)

    def _do_report_timeout(self, payload: object) -> None:
        _bump(self._stats, "timeouts")
        self._log.info(
            "Transaction {key} timed out waiting for the ACK (flow {flow})",
            key=self.key,
            flow=str(self.flow),
        )
        self._call_user(
            self._user.transaction_failed,
            self,
            Failure(TransactionTimeout("no ACK for the final response (Timer H)")),
        )

    def _do_report_transport_error(self, failure: Failure) -> None:
        self._call_user(self._user.transaction_failed, self, failure)


@attrs.define(eq=False, repr=False)
class ServerInviteTransaction(_ServerTransaction):
    """
    An INVITE server transaction (RFC 3261 17.2.1, RFC 6026 8.5-8.7).

    It starts in PROCEEDING and sends 100 Trying itself unless the TU
    responds within C{timers.trying_delay} (200 ms). A 2xx from the TU moves
    it to ACCEPTED for Timer L (64*T1): INVITE retransmissions are absorbed,
    further 2xx from the TU are sent, and ACKs go to the TU's
    C{stray_message}. A 3xx-6xx moves it to COMPLETED: Timer G retransmits
    the response (T1 doubling up to T2, unreliable flows only) until the ACK
    moves it to CONFIRMED for Timer I (T4; 0 on a reliable flow), or Timer H
    (64*T1) ends it as a failure.
    """

    spec: ClassVar[MachineSpec] = SERVER_INVITE
    kind: ClassVar[str] = "server_invite"

    #: With C{True}, START only notes the 100 Trying timer as due, and
    #: L{arm_trying} starts it once the TU has had the request (the layer
    #: does so): a TU that answers at once, as a proxy does with its own
    #: 100 Trying, then costs no timer.
    hold_trying: bool = attrs.field(kw_only=True, default=False)
    _interval_g: float = attrs.field(init=False, default=0.0)
    _trying_due: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        assert self.request is not None
        if self.request.method != "INVITE":
            raise LocalProtocolError(f"{self.request.method} is not an INVITE")

    def arm_trying(self) -> None:
        """
        Start the 100 Trying timer held at START (L{hold_trying}) if no
        response has been sent since: RFC 3261 17.2.1's 200 ms then run
        from when the TU has had the request.
        """
        if self._trying_due:
            self._trying_due = False
            if self.state is State.PROCEEDING:
                self._start_timer(ServerInput.TIMER_TRYING, self._timers.trying_delay)

    def _do_start_trying_timer(self, payload: object) -> None:
        if self.hold_trying:
            self._trying_due = True
        else:
            self._start_timer(ServerInput.TIMER_TRYING, self._timers.trying_delay)

    def _do_stop_trying_timer(self, payload: object) -> None:
        self._trying_due = False
        if self._running:
            self._cancel_timer(ServerInput.TIMER_TRYING)

    def _do_send_trying(self, payload: object) -> None:
        assert self.request is not None
        self.last_provisional = make_response(self.request, 100)
        self._transmit(self.last_provisional)

    def _do_pass_ack_up(self, payload: tuple[Request, Flow]) -> None:
        ack, flow = payload
        self._call_user(self._user.stray_message, ack, flow)

    def _do_start_timer_g(self, payload: object) -> None:
        if not self.reliable:
            self._interval_g = self._timers.timer_g
            self._start_timer(ServerInput.TIMER_G, self._interval_g)

    def _do_backoff_timer_g(self, payload: object) -> None:
        if self.reliable:
            return
        self._interval_g = min(2 * self._interval_g, self._timers.T2)
        self._start_timer(ServerInput.TIMER_G, self._interval_g)

    def _do_start_timer_h(self, payload: object) -> None:
        self._start_timer(ServerInput.TIMER_H, self._timers.timer_h)

    def _do_start_timer_i(self, payload: object) -> None:
        self._start_timer(ServerInput.TIMER_I, self._timers.timer_i(self.reliable))

    def _do_start_timer_l(self, payload: object) -> None:
        self._start_timer(ServerInput.TIMER_L, self._timers.timer_l)


@attrs.define(eq=False, repr=False)
class ServerNonInviteTransaction(_ServerTransaction):
    """
    A non-INVITE server transaction (RFC 3261 17.2.2).

    TRYING absorbs retransmissions; PROCEEDING answers them with the last
    provisional response; a final response moves it to COMPLETED, which
    answers them with the final response for Timer J (64*T1; 0 on a reliable
    flow) and discards further finals from the TU.
    """

    spec: ClassVar[MachineSpec] = SERVER_NON_INVITE
    kind: ClassVar[str] = "server_non_invite"

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        assert self.request is not None
        if self.request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"{self.request.method} does not create a non-INVITE server transaction"
            )

    def _do_start_timer_j(self, payload: object) -> None:
        self._start_timer(ServerInput.TIMER_J, self._timers.timer_j(self.reliable))
