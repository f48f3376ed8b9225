# -*- test-case-name: sipedge.test.test_media_control_protocol -*-
"""
The relay's side of the control protocol (C{doc/relay-protocol.md}):
L{ControlServerFactory} serves an L{IMediaRelay} to clients that prove
they hold the shared secret, and pushes every L{SessionEnd} to them.

The wire format is L{sipedge.media._control}; this module only moves
lines and calls the relay.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from sipedge._log import NamedLogger
from sipedge.media._control import (
    CHALLENGE_SIZE,
    MAX_LINE,
    METHODS,
    VERSIONS,
    LineFramer,
    client_proof,
    decode_message,
    encode_message,
    error_message,
    hello_message,
    hex_field,
    proofs_match,
    request_id,
    result_message,
    server_proof,
    session_end_event,
    welcome_message,
)
from sipedge.media._errors import ControlProtocolError, MediaError, RelayUnavailable
from sipedge.media._values import SessionEnd

__all__ = ["ControlServerFactory", "ControlServerProtocol"]

#: Seconds a client has to authenticate after connecting.
AUTH_TIMEOUT = 10.0

#: Requests one connection may have in flight.
MAX_PENDING = 64


class ControlServerProtocol(Protocol):
    """
    One client's connection: the handshake, then requests answered in any
    order (each reply names its request's id), and events.
    """

    _log = NamedLogger(namespace="sipedge.relay.control")

    def __init__(self, factory: ControlServerFactory, peer: str) -> None:
        self.factory = factory
        self.peer = peer
        self.authenticated = False
        #: The protocol version agreed in the handshake.
        self.version = 0
        self.closed = False
        self.pending = 0
        self._framer = LineFramer(factory.max_line)
        self._challenge = b""
        self._auth_timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._challenge = self.factory.random(CHALLENGE_SIZE)
        self._send(hello_message(self._challenge))
        self._auth_timer = self.factory.clock.callLater(
            self.factory.auth_timeout, self._auth_timed_out
        )

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.closed = True
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
        self.factory.connections.discard(self)
        if self.authenticated:
            self._log.info("Relay control: {peer} disconnected", peer=self.peer)

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            lines = self._framer.feed(data)
        except ControlProtocolError as e:
            self._refuse(e)
            return
        for line in lines:
            if self.closed:
                return
            if not line.strip():
                continue
            try:
                self._line(line)
            except ControlProtocolError as e:
                self._refuse(e)

    # -- lines ----------------------------------------------------------------

    def _line(self, line: bytes) -> None:
        message = decode_message(line)
        kind = message["type"]
        if not self.authenticated:
            if kind != "auth":
                raise ControlProtocolError(
                    f"expected 'auth' first, got {kind!r}", "not-authenticated"
                )
            self._auth(message)
            return
        if kind != "request":
            raise ControlProtocolError(f"unknown message type {kind!r}", "unknown-type")
        self._request(message)

    def _auth(self, message: dict[str, Any]) -> None:
        version = message.get("version")
        if version not in VERSIONS or isinstance(version, bool):
            raise ControlProtocolError(
                f"protocol version {version!r} is not one of {list(VERSIONS)}", "version"
            )
        proof = hex_field(message, "proof", 32)
        challenge = hex_field(message, "challenge", CHALLENGE_SIZE)
        secret = self.factory.secret
        if not proofs_match(client_proof(secret, version, self._challenge, challenge), proof):
            raise ControlProtocolError("authentication failed", "auth-failed")
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
        self.authenticated = True
        self.version = version
        self.factory.connections.add(self)
        self._send(welcome_message(server_proof(secret, version, self._challenge, challenge)))
        self._log.info("Relay control: {peer} authenticated", peer=self.peer)

    def _request(self, message: dict[str, Any]) -> None:
        number = request_id(message)
        name = message.get("method")
        method = METHODS.get(name) if isinstance(name, str) else None
        if method is None or method.since > self.version:
            error = ControlProtocolError(
                f"unknown method {name!r}"
                if method is None
                else f"{name!r} needs protocol version {method.since}, "
                f"this connection speaks {self.version}",
                "unknown-method",
            )
            self._log_refusal(error)
            self._send(error_message(number, error))
            return
        try:
            args = method.decode_params(message.get("params", {}))
        except ControlProtocolError as error:
            self._log_refusal(error)
            self._send(error_message(number, error))
            return
        if self.pending >= self.factory.max_pending:
            busy = RelayUnavailable(
                f"more than {self.factory.max_pending} requests in flight on this connection"
            )
            self._log.warn(
                "Relay control: refused a request from {peer}: {problem}",
                peer=self.peer,
                problem=str(busy),
                rule="max-pending",
                source=self.peer,
            )
            self._send(error_message(number, busy))
            return
        self.pending += 1
        d = maybeDeferred(getattr(self.factory.relay, method.name), *args)
        d.addCallbacks(
            lambda value: self._reply(result_message(number, method.name, value)),
            lambda failure: self._failed(number, method.name, failure),
        )

    def _reply(self, message: dict[str, Any]) -> None:
        self.pending -= 1
        self._send(message)

    def _failed(self, number: int, method: str, failure: Failure) -> None:
        if not failure.check(MediaError):
            self._log.failure(
                "Relay control: {method} failed in the relay", failure, method=method
            )
        self._reply(error_message(number, failure.value or RuntimeError()))

    # -- ends -----------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(encode_message(message))

    def _log_refusal(self, error: ControlProtocolError) -> None:
        self._log.warn(
            "Relay control: refused a message from {peer}: {problem}",
            peer=self.peer,
            problem=str(error),
            rule=error.code,
            source=self.peer,
        )

    def _refuse(self, error: ControlProtocolError) -> None:
        """Answer a protocol error and close the connection."""
        self._log_refusal(error)
        self._send(error_message(None, error))
        self.closed = True
        if self.transport is not None:
            self.transport.loseConnection()

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        self._refuse(
            ControlProtocolError(
                f"no authentication within {self.factory.auth_timeout:g} s", "auth-timeout"
            )
        )

    def session_ended(self, end: SessionEnd) -> None:
        """Push a session's end to this client."""
        self._send(session_end_event(end))


class ControlServerFactory(Factory):
    """
    Serves C{relay} over the control protocol.

    @ivar connections: the authenticated connections (they get events).
    """

    _log = NamedLogger(namespace="sipedge.relay.control")

    def __init__(
        self,
        relay: Any,
        secret: bytes,
        clock: IReactorTime,
        *,
        random: Callable[[int], bytes] = os.urandom,
        max_line: int = MAX_LINE,
        max_pending: int = MAX_PENDING,
        auth_timeout: float = AUTH_TIMEOUT,
    ) -> None:
        """
        @param relay: the L{IMediaRelay} to serve.
        @param secret: the shared secret clients prove they hold.
        @param clock: for the authentication timeout.
        @param random: where challenges come from.
        @param max_line: the longest line accepted (bytes).
        @param max_pending: requests one connection may have in flight;
            more are refused (503).
        @param auth_timeout: seconds a client has to authenticate.
        """
        if not secret:
            raise ValueError("the control protocol needs a secret")
        self.relay = relay
        self.secret = secret
        self.clock = clock
        self.random = random
        self.max_line = max_line
        self.max_pending = max_pending
        self.auth_timeout = auth_timeout
        self.connections: set[ControlServerProtocol] = set()
        self._watching = False
        self.noisy = False

    def startFactory(self) -> None:
        if not self._watching:
            self.relay.add_observer(self._session_ended)
            self._watching = True

    def stopFactory(self) -> None:
        if self._watching:
            self.relay.remove_observer(self._session_ended)
            self._watching = False

    def buildProtocol(self, addr: Any) -> ControlServerProtocol:
        host = getattr(addr, "host", None)
        peer = f"{host}:{addr.port}" if host is not None else str(addr)
        protocol = ControlServerProtocol(self, peer)
        protocol.factory = self
        return protocol

    def _session_ended(self, end: SessionEnd) -> None:
        for connection in list(self.connections):
            connection.session_ended(end)
