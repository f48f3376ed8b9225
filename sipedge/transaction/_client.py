# -*- test-case-name: sipedge.test.test_transaction -*-
"""
Client transactions: RFC 3261 17.1.1 (INVITE, with RFC 6026's ACCEPTED
state) and 17.1.2 (non-INVITE).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import LocalProtocolError, TransactionTimeout
from sipedge.interfaces import IClientTransaction
from sipedge.message import Headers, Request, Response, header_key
from sipedge.transaction._base import Transaction, _bump
from sipedge.transaction._key import TransactionKey, client_key
from sipedge.transaction._states import (
    CLIENT_INVITE,
    CLIENT_NON_INVITE,
    ClientInput,
    Input,
    MachineSpec,
    State,
)

__all__ = ["ClientInviteTransaction", "ClientNonInviteTransaction", "make_ack"]


def make_ack(invite: Request, response: Response) -> Request:
    """
    The ACK for a 3xx-6xx answer to C{invite} (RFC 3261 17.1.1.3): the
    INVITE's Request-URI, Call-ID, From and CSeq number (method ACK), the
    response's To, a single Via equal to the INVITE's top Via, the INVITE's
    Route header fields, and Max-Forwards 70.
    """
    pairs: list[tuple[str, str]] = [
        ("Via", invite.headers.values("Via")[0]),
        ("Max-Forwards", "70"),
    ]
    pairs.extend(("Route", value) for value in invite.headers.get_all("Route"))
    pairs.append(("From", invite.headers.get("From") or ""))
    pairs.append(("To", response.headers.get("To") or ""))
    pairs.append(("Call-ID", invite.headers.get("Call-ID") or ""))
    pairs.append(("CSeq", f"{invite.cseq.number} ACK"))
    return Request(
        method="ACK",
        uri=invite.uri,
        headers=Headers(tuple((header_key(name), name, value) for name, value in pairs)),
        version=invite.version,
    )


def _response_input(response: Response) -> ClientInput:
    if response.status < 200:
        return ClientInput.RECV_1XX
    if response.status < 300:
        return ClientInput.RECV_2XX
    return ClientInput.RECV_3XX_6XX


@implementer(IClientTransaction)
@attrs.define(eq=False, repr=False)
class _ClientTransaction(Transaction):
    """What both client machines do: send, pass responses up, time out."""

    _transport_error_input: ClassVar[Input] = ClientInput.TRANSPORT_ERROR

    def _make_key(self) -> TransactionKey:
        assert self.request is not None
        if self.request.method == "ACK":
            raise LocalProtocolError("an ACK is not sent in a client transaction")
        if not self.request.top_via.is_rfc3261_branch:
            raise LocalProtocolError(
                "a client transaction needs an RFC 3261 branch (z9hG4bK...) in its top Via"
            )
        return client_key(self.request)

    # -- inputs ------------------------------------------------------------

    def response_received(self, response: Response) -> None:
        """
        A response matched this transaction (17.1.3).

        @raise RemoteProtocolError: if the machine cannot take it (only when
            it is already TERMINATED).
        """
        self.process_input(_response_input(response), response)

    # -- actions -----------------------------------------------------------

    def _do_send_request(self, payload: object) -> None:
        assert self.request is not None
        self._transmit(self.request)

    def _do_retransmit_request(self, payload: object) -> None:
        assert self.request is not None
        self._transmit(self.request, retransmission=True)

    def _do_pass_response_up(self, response: Response) -> None:
        self._call_user(self._user.response_received, response, self)

    def _do_report_timeout(self, payload: object) -> None:
        _bump(self._stats, "timeouts")
        self._log.info(
            "Transaction {key} timed out ({method} to {flow})",
            key=self.key,
            method=self.key.method,
            flow=str(self.flow),
        )
        self._call_user(
            self._user.transaction_failed,
            self,
            Failure(TransactionTimeout(f"no final response to {self.key.method}")),
        )

    def _do_report_transport_error(self, failure: Failure) -> None:
        self._call_user(self._user.transaction_failed, self, failure)


@attrs.define(eq=False, repr=False)
class ClientInviteTransaction(_ClientTransaction):
    """
    An INVITE client transaction (RFC 3261 17.1.1, RFC 6026 8.4).

    CALLING retransmits the INVITE on Timer A (T1, doubling without limit,
    unreliable flows only) until Timer B (64*T1). A 2xx moves to ACCEPTED
    for Timer M (64*T1), passing every further 2xx to the TU; a 3xx-6xx is
    ACKed here and moves to COMPLETED for Timer D (32 s; 0 on a reliable
    flow), which ACKs its retransmissions.

    @ivar ack: the ACK sent for a 3xx-6xx, once there is one.
    """

    spec: ClassVar[MachineSpec] = CLIENT_INVITE
    kind: ClassVar[str] = "client_invite"

    ack: Request | None = attrs.field(init=False, default=None)
    _interval_a: float = attrs.field(init=False, default=0.0)
    _request_states: ClassVar[frozenset[State]] = frozenset({State.CALLING, State.PROCEEDING})

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        assert self.request is not None
        if self.request.method != "INVITE":
            raise LocalProtocolError(f"{self.request.method} is not an INVITE")

    def _do_start_timer_a(self, payload: object) -> None:
        if not self.reliable:
            self._interval_a = self._timers.timer_a
            self._start_timer(ClientInput.TIMER_A, self._interval_a)

    def _do_backoff_timer_a(self, payload: object) -> None:
        if self.reliable:
            return
        self._interval_a *= 2
        self._start_timer(ClientInput.TIMER_A, self._interval_a)

    def _do_start_timer_b(self, payload: object) -> None:
        self._start_timer(ClientInput.TIMER_B, self._timers.timer_b)

    def _do_start_timer_d(self, payload: object) -> None:
        self._start_timer(ClientInput.TIMER_D, self._timers.timer_d(self.reliable))

    def _do_start_timer_m(self, payload: object) -> None:
        self._start_timer(ClientInput.TIMER_M, self._timers.timer_m)

    def _do_send_ack(self, response: Response) -> None:
        assert self.request is not None
        self.ack = make_ack(self.request, response)
        self._transmit(self.ack)

    def _do_resend_ack(self, response: Response) -> None:
        assert self.ack is not None
        self._transmit(self.ack, retransmission=True)


@attrs.define(eq=False, repr=False)
class ClientNonInviteTransaction(_ClientTransaction):
    """
    A non-INVITE client transaction (RFC 3261 17.1.2).

    TRYING and PROCEEDING retransmit the request on Timer E (T1, doubling up
    to T2; straight T2 once a provisional arrived; unreliable flows only)
    until Timer F (64*T1). A final response moves to COMPLETED for Timer K
    (T4; 0 on a reliable flow), which absorbs its retransmissions.
    """

    spec: ClassVar[MachineSpec] = CLIENT_NON_INVITE
    kind: ClassVar[str] = "client_non_invite"

    _interval_e: float = attrs.field(init=False, default=0.0)
    _request_states: ClassVar[frozenset[State]] = frozenset({State.TRYING, State.PROCEEDING})

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        assert self.request is not None
        if self.request.method == "INVITE":
            raise LocalProtocolError("an INVITE needs a ClientInviteTransaction")

    def _do_start_timer_e(self, payload: object) -> None:
        if not self.reliable:
            self._interval_e = self._timers.timer_e
            self._start_timer(ClientInput.TIMER_E, self._interval_e)

    def _do_backoff_timer_e(self, payload: object) -> None:
        if self.reliable:
            return
        self._interval_e = min(2 * self._interval_e, self._timers.T2)
        self._start_timer(ClientInput.TIMER_E, self._interval_e)

    def _do_restart_timer_e_at_t2(self, payload: object) -> None:
        if self.reliable:
            return
        self._interval_e = self._timers.T2
        self._start_timer(ClientInput.TIMER_E, self._interval_e)

    def _do_start_timer_f(self, payload: object) -> None:
        self._start_timer(ClientInput.TIMER_F, self._timers.timer_f)

    def _do_start_timer_k(self, payload: object) -> None:
        self._start_timer(ClientInput.TIMER_K, self._timers.timer_k(self.reliable))
