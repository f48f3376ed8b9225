# -*- test-case-name: sipedge.test.test_transaction -*-
"""
The transaction layer: where transports deliver messages
(L{IMessageReceiver}), and where the transaction user creates client
transactions. It matches messages to transactions (RFC 3261 17.1.3,
17.2.3), creates server transactions for new requests, answers malformed
requests statelessly, and forgets transactions once they are TERMINATED.

A message from the network never raises out of this layer: what cannot be
matched goes to the TU's C{stray_message}, and what a machine refuses is
logged and dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge import _debug
from sipedge.error import (
    LocalProtocolError,
    MessageParseError,
    RemoteProtocolError,
    TransportError,
)
from sipedge.flow import Flow
from sipedge.interfaces import (
    IClientTransaction,
    IMessageReceiver,
    IServerTransaction,
    ITransactionUser,
)
from sipedge.message import Message, Request, Response
from sipedge.transaction._base import Send, _bump
from sipedge.transaction._client import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    _ClientTransaction,
)
from sipedge.transaction._key import (
    TransactionKey,
    ack_matches,
    client_key,
    response_server_key,
    server_key,
)
from sipedge.transaction._response import make_response
from sipedge.transaction._server import (
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    _ServerTransaction,
)
from sipedge.transaction._timers import TimerSettings

__all__ = ["STAT_NAMES", "TransactionLayer"]

#: The counters of L{TransactionLayer.stats}.
STAT_NAMES = (
    "server_invite_created",
    "server_invite_terminated",
    "server_non_invite_created",
    "server_non_invite_terminated",
    "client_invite_created",
    "client_invite_terminated",
    "client_non_invite_created",
    "client_non_invite_terminated",
    "retransmissions",  # requests and responses we sent again
    "absorbed",  # retransmissions and strays a machine swallowed
    "stray",  # messages no transaction matched (passed to the TU)
    "timeouts",  # Timer B, F, H
    "transport_errors",  # sends that raised TransportError
    "protocol_errors",  # inputs a machine had no entry for
    "malformed",  # malformed messages received
    "stateless_responses",  # answers to malformed requests
)


@implementer(IMessageReceiver)
@attrs.define(eq=False, repr=False)
class TransactionLayer:
    """
    All transactions of one transaction user.

    @ivar stats: counters (see L{STAT_NAMES}), a plain dict.
    """

    _log: ClassVar[Logger] = Logger()

    _user: ITransactionUser
    _send: Send
    _clock: IReactorTime
    _timers: TimerSettings = attrs.field(factory=TimerSettings)
    _random: Callable[[int], bytes] = attrs.field(kw_only=True, default=os.urandom)
    stats: dict[str, int] = attrs.field(init=False, factory=lambda: dict.fromkeys(STAT_NAMES, 0))
    _servers: dict[TransactionKey, _ServerTransaction] = attrs.field(init=False, factory=dict)
    _clients: dict[TransactionKey, _ClientTransaction] = attrs.field(init=False, factory=dict)
    # One bound method each for every transaction, not one per transaction.
    _on_server_end: Callable[[Any], object] = attrs.field(init=False)
    _on_client_end: Callable[[Any], object] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._on_server_end = self._server_terminated
        self._on_client_end = self._client_terminated

    def __repr__(self) -> str:
        return f"<TransactionLayer {len(self._servers)} server, {len(self._clients)} client>"

    # -- views -------------------------------------------------------------

    @property
    def server_transactions(self) -> Mapping[TransactionKey, IServerTransaction]:
        """The live server transactions, by key (read-only)."""
        return MappingProxyType(self._servers)

    @property
    def client_transactions(self) -> Mapping[TransactionKey, IClientTransaction]:
        """The live client transactions, by key (read-only)."""
        return MappingProxyType(self._clients)

    # -- IMessageReceiver --------------------------------------------------

    def message_received(self, message: Message, flow: Flow) -> None:
        """
        Match C{message} to its transaction, or create one for a new
        request, or hand it to the TU as a stray message.
        """
        if isinstance(message, Request):
            self._request_received(message, flow)
        else:
            self._response_received(message, flow)

    def malformed_message(self, data: bytes, flow: Flow, error: MessageParseError) -> None:
        """
        Answer a malformed request (not an ACK) statelessly with
        C{error.status_hint} and C{error.headers}; drop anything else.
        """
        _bump(self.stats, "malformed")
        request = error.message
        if not isinstance(request, Request) or request.method == "ACK":
            self._log.info(
                "Dropped a malformed message from {flow}: {reason}",
                flow=str(flow),
                reason=error.reason,
            )
            return
        if not request.headers.get_all("Via"):
            self._log.info(
                "Dropped a malformed {method} without Via from {flow}: {reason}",
                method=request.method,
                flow=str(flow),
                reason=error.reason,
            )
            return
        try:
            response = make_response(
                request, error.status_hint, headers=error.headers, random=self._random
            )
        except (LocalProtocolError, MessageParseError) as e:
            self._log.info(
                "Cannot answer a malformed {method} from {flow}: {reason}",
                method=request.method,
                flow=str(flow),
                reason=str(e),
            )
            return
        self._log.info(
            "Answering a malformed {method} from {flow} with {status}: {reason}",
            method=request.method,
            flow=str(flow),
            status=response.status,
            reason=error.reason,
        )
        try:
            self._send(response, flow)
        except TransportError as e:
            _bump(self.stats, "transport_errors")
            self._log.warn(
                "Cannot send a stateless {status} on {flow}: {error}",
                status=response.status,
                flow=str(flow),
                error=str(e),
            )
            return
        _bump(self.stats, "stateless_responses")

    # -- the TU's side -----------------------------------------------------

    def client_transaction(self, request: Request, flow: Flow) -> IClientTransaction:
        """
        Create, register and start a client transaction that sends
        C{request} on C{flow}. If the first send fails, the TU's
        C{transaction_failed} and C{transaction_terminated} are called before
        this returns.

        @raise LocalProtocolError: if C{request} is an ACK, has no RFC 3261
            branch, or has the key of a live client transaction.
        """
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = cls(
            request,
            flow,
            send=self._send,
            user=self._user,
            clock=self._clock,
            timers=self._timers,
            on_terminated=self._on_client_end,
            stats=self.stats,
        )
        if tx.key in self._clients:
            raise LocalProtocolError(f"a client transaction {tx.key} exists already")
        self._clients[tx.key] = tx
        _bump(self.stats, f"{tx.kind}_created")
        tx.start()
        return tx

    def server_transaction_for(self, request: Request) -> IServerTransaction | None:
        """
        The live server transaction C{request} matches: for a CANCEL, the
        INVITE transaction it cancels (RFC 3261 9.2, 17.2.3: the same key
        with method INVITE); for an ACK, its INVITE transaction; otherwise
        the request's own transaction. C{None} if there is none.
        """
        try:
            key = server_key(request)
        except MessageParseError:
            return None
        if request.method == "CANCEL":
            return self._servers.get(key.with_method("INVITE"))
        if request.method == "ACK":
            return self._find_ack(key, request)
        return self._servers.get(key)

    def transport_failed(self, message: Message, reason: Failure) -> None:
        """
        The transport reports, after C{send} returned, that C{message} could
        not be sent (e.g. a TCP or TLS connection that failed to open): the
        transaction that sent it gets a transport error (RFC 3261 17.1.4,
        17.2.4), as if C{send} had raised. A message no live transaction
        sent is ignored.
        """
        tx = self._sender_of(message)
        if tx is None:
            self._log.debug("Transport failure for a message no transaction sent")
            return
        _bump(self.stats, "transport_errors")
        self._log.warn(
            "Transaction {key}: the transport failed: {error}",
            key=tx.key,
            error=reason.getErrorMessage(),
        )
        tx.transport_error(reason)

    def stop(self) -> None:
        """Terminate every transaction (shutdown): no timer is left running."""
        for tx in [*self._servers.values(), *self._clients.values()]:
            tx.cancel_timers()

    # -- internals ---------------------------------------------------------

    def _request_received(self, request: Request, flow: Flow) -> None:
        try:
            key = server_key(request)
        except MessageParseError as e:
            self.malformed_message(
                b"",
                flow,
                MessageParseError(e.reason, e.status_hint, e.headers, message=request),
            )
            return
        if request.method == "ACK":
            acked = self._find_ack(key, request)
            if acked is None:
                self._stray(request, flow)
            else:
                self._deliver(acked.request_received, request, flow)
            return
        existing = self._servers.get(key)
        if existing is not None:
            self._deliver(existing.request_received, request, flow)
            return
        common: dict[str, Any] = {
            "send": self._send,
            "user": self._user,
            "clock": self._clock,
            "timers": self._timers,
            "key": key,
            "on_terminated": self._on_server_end,
            "stats": self.stats,
        }
        tx: _ServerTransaction
        invite: ServerInviteTransaction | None = None
        if request.method == "INVITE":
            tx = invite = ServerInviteTransaction(request, flow, hold_trying=True, **common)
        else:
            tx = ServerNonInviteTransaction(request, flow, **common)
        self._servers[key] = tx
        _bump(self.stats, f"{tx.kind}_created")
        tx.start()
        self._call_user(self._user.request_received, request, tx)
        if invite is not None:
            # The 100 Trying timer only if the TU has not answered (17.2.1).
            invite.arm_trying()

    def _response_received(self, response: Response, flow: Flow) -> None:
        try:
            key = client_key(response)
        except MessageParseError as e:
            _bump(self.stats, "malformed")
            self._log.info(
                "Dropped a {status} from {flow} that matches nothing: {reason}",
                status=response.status,
                flow=str(flow),
                reason=e.reason,
            )
            return
        tx = self._clients.get(key)
        if tx is None:
            self._stray(response, flow)
        else:
            self._deliver(tx.response_received, response)

    def _sender_of(self, message: Message) -> _ServerTransaction | _ClientTransaction | None:
        """The live transaction that sent C{message}, if any."""
        try:
            if isinstance(message, Request):
                key = client_key(message)
                if message.method == "ACK":  # the ACK of a 3xx-6xx
                    key = key.with_method("INVITE")
                return self._clients.get(key)
            response_key = response_server_key(message)
            if response_key is not None and response_key in self._servers:
                return self._servers[response_key]
        except MessageParseError:
            return None
        for tx in self._servers.values():
            if message == tx.final_response or message == tx.last_provisional:
                return tx
        return None

    def _find_ack(self, key: TransactionKey, ack: Request) -> _ServerTransaction | None:
        """The INVITE server transaction C{ack} belongs to (17.2.3)."""
        if key.is_rfc3261:
            return self._servers.get(key)
        # RFC 2543: the ACK carries the To tag of the response it
        # acknowledges; the INVITE had that tag (a re-INVITE) or none.
        for candidate in (key, key.with_to_tag(None)):
            tx = self._servers.get(candidate)
            if tx is not None and ack_matches(ack, tx.final_response):
                return tx
        return None

    def _stray(self, message: Message, flow: Flow) -> None:
        _bump(self.stats, "stray")
        if _debug.enabled():  # every ACK for a 2xx comes here
            self._log.debug(
                "No transaction for {what} from {flow}",
                what=message.method if isinstance(message, Request) else message.status,
                flow=str(flow),
            )
        self._call_user(self._user.stray_message, message, flow)

    def _deliver(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except RemoteProtocolError as e:
            self._log.warn("Dropped a message: {error}", error=str(e))

    def _call_user(self, method: Callable[..., object], *args: object) -> None:
        try:
            method(*args)
        except Exception:
            self._log.failure("Transaction user raised from {method}", method=method.__name__)

    def _server_terminated(self, tx: _ServerTransaction) -> None:
        if self._servers.get(tx.key) is tx:
            del self._servers[tx.key]
        _bump(self.stats, f"{tx.kind}_terminated")

    def _client_terminated(self, tx: _ClientTransaction) -> None:
        if self._clients.get(tx.key) is tx:
            del self._clients[tx.key]
        _bump(self.stats, f"{tx.kind}_terminated")
