# -*- test-case-name: sipedge.test.test_transport -*-
"""
SIP over TCP and TLS (RFC 3261 18.3, RFC 5626 3.5.1 keep-alives): one
protocol for both; TLS is the TLS wrapper under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IMessageReceiver, ISipTransport
from sipedge.message import (
    DEFAULT_LIMITS,
    KeepAlivePing,
    KeepAlivePong,
    Limits,
    Request,
    StreamParser,
    serialize,
)
from sipedge.transport._stamp import stamp_via

if TYPE_CHECKING:
    from sipedge.message import Message

__all__ = ["DEFAULT_IDLE_TIMEOUT", "SipStreamProtocol"]

#: Seconds without a received byte before a connection is closed.
DEFAULT_IDLE_TIMEOUT = 300.0

#: Seconds a closing connection may take to flush before it is aborted.
CLOSE_GRACE = 10.0

#: RFC 5626 3.5.1: the answer to a CRLFCRLF ping.
_PONG = b"\r\n"


class _Controller(TypingProtocol):
    """What a L{SipStreamProtocol} reports to (the transport manager)."""

    def stream_connected(self, protocol: SipStreamProtocol) -> None: ...

    def stream_lost(self, protocol: SipStreamProtocol, reason: Failure) -> None: ...


@implementer(ISipTransport, IHandshakeListener)
class SipStreamProtocol(Protocol):
    """
    One SIP connection over TCP or TLS.

    Bytes are framed by a L{StreamParser}; messages go to the
    L{IMessageReceiver} with this connection's flow (requests with their top
    Via stamped, L{stamp_via}). A CRLFCRLF ping is answered with CRLF (RFC
    5626 3.5.1). When the stream breaks (a parse error: framing cannot be
    recovered), a request whose head parsed is passed to
    L{IMessageReceiver.malformed_message} so it can be answered, and then
    the connection is closed (after anything written in the meantime). The
    connection is closed after C{idle_timeout} seconds without a received
    byte.

    With an C{admission} hook, every read is first checked against the
    peer's address: bytes from a peer it refuses (a source banned while
    connected) are dropped unparsed and the connection is closed.

    Messages sent before the connection is ready (an outgoing connection
    not yet connected, or a TLS handshake not yet done) are queued.

    @ivar flow: the connection's flow once connected (local address, peer
        address), else C{None}.
    @ivar requested_flow: for an outgoing connection, the flow it was
        opened for (its local port is our listener's, not the ephemeral
        port the connection really uses), else C{None}.
    @ivar ready: True once messages can be written (connected, and the TLS
        handshake done).
    @ivar closed: True once the connection is lost or failed.
    """

    reliable = True
    transport: Any = None
    _log = Logger()

    def __init__(
        self,
        receiver: IMessageReceiver,
        *,
        clock: IReactorTime,
        transport_name: str = "TCP",
        limits: Limits = DEFAULT_LIMITS,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        controller: _Controller | None = None,
        requested_flow: Flow | None = None,
        admission: Callable[[str], bool] | None = None,
        screen: Callable[[Request, str], Sequence[Message] | None] | None = None,
    ) -> None:
        """
        @param receiver: where messages go.
        @param clock: for the idle timer.
        @param transport_name: C{"TCP"} or C{"TLS"} (the Via token); a TLS
            connection waits for its handshake before writing.
        @param limits: the stream parser's limits (they cap the bytes
            buffered for one message).
        @param idle_timeout: seconds without a received byte before the
            connection is closed; C{None} for never.
        @param controller: told when the connection is made and lost.
        @param requested_flow: see L{requested_flow}.
        @param admission: called with the peer's address on each read; if
            it returns C{False} the bytes are dropped unparsed, counted in
            C{refused}, and the connection is closed. C{None} admits all.
        @param screen: called with each request parsed (its Via stamped)
            and the peer's address before it is delivered
            (C{sipedge.security.Security.screen_stream}): C{None} delivers
            it; otherwise it is not delivered, counted in C{screened}, and
            the messages returned (an answer, or none) are written instead.
        """
        self.name = transport_name.upper()
        self._receiver = receiver
        self._clock = clock
        self._parser = StreamParser(limits)
        self._idle_timeout = idle_timeout
        self._controller = controller
        self.requested_flow = requested_flow
        self._admission = admission
        self._screen = screen
        self.flow: Flow | None = None
        self.local_host: str | None = None
        self.local_port: int | None = None
        self.ready = False
        self.closed = False
        self._broken = False
        self._idle: IDelayedCall | None = None
        self._abort_call: IDelayedCall | None = None
        self._queue: list[tuple[bytes, Deferred[Flow]]] = []
        self._lost_waiters: list[Deferred[None]] = []
        self.received = 0
        self.pings = 0
        self.pongs = 0
        self.refused = 0
        self.screened = 0

    def __repr__(self) -> str:
        return f"<SipStreamProtocol {self.flow or self.requested_flow}>"

    @property
    def secure(self) -> bool:
        """True for TLS."""
        return self.name == "TLS"

    # Twisted's IProtocol

    def connectionMade(self) -> None:
        host = self.transport.getHost()
        peer = self.transport.getPeer()
        self.local_host = host.host
        self.local_port = host.port
        self.flow = Flow(self.name, host.host, host.port, peer.host, peer.port)
        if self._idle_timeout is not None:
            self._idle = self._clock.callLater(self._idle_timeout, self._idle_expired)
        if self._controller is not None:
            self._controller.stream_connected(self)
        if not self.secure and not self.closed:
            self._become_ready()

    def handshakeCompleted(self) -> None:
        """The TLS handshake is done (and the peer verified, if asked)."""
        self._become_ready()

    def dataReceived(self, data: bytes) -> None:
        if self._broken or self.closed:
            return
        admission = self._admission
        if admission is not None and self.flow is not None:
            if not admission(self.flow.remote_host):
                self._refuse(data)
                return
        if self._idle is not None and self._idle_timeout is not None and self._idle.active():
            self._idle.reset(self._idle_timeout)
        try:
            events = self._parser.feed(data)
        except MessageParseError as error:
            self._stream_broken(data, error)
            return
        for event in events:
            if self._broken or self.closed:
                return
            if isinstance(event, KeepAlivePing):
                self.pings += 1
                self.transport.write(_PONG)
            elif isinstance(event, KeepAlivePong):
                self.pongs += 1
            else:
                self._deliver(event)
        # The parser hands over the messages before a fault first and keeps
        # the error for us to look at.
        fault = self._parser.error
        if fault is not None and not self._broken and not self.closed:
            self._stream_broken(data, fault)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost(reason)

    # Sending

    def send(self, message: Message) -> Deferred[Flow]:
        """
        Write C{message} now, or queue it until the connection is ready.

        @return: a Deferred that fires with this connection's flow once the
            message is written, or fails with L{TransportError} if the
            connection is lost (or fails) first.
        """
        if self.closed or (self.transport is not None and self.transport.disconnecting):
            return fail(TransportError(f"connection {self.flow or self.requested_flow} is closed"))
        data = serialize(message)
        if self.ready:
            self.transport.write(data)
            assert self.flow is not None
            return succeed(self.flow)
        waiter: Deferred[Flow] = Deferred()
        self._queue.append((data, waiter))
        return waiter

    def send_message(self, message: Message, flow: Flow | None = None) -> None:
        """
        Write C{message} on this connection (C{flow} is not consulted: a
        connection has one flow). A message sent before the connection is
        ready is queued; if the connection then fails, that is logged.

        @raise TransportError: if the connection is closed.
        """
        if self.closed or (self.transport is not None and self.transport.disconnecting):
            raise TransportError(f"connection {self.flow or self.requested_flow} is closed")
        self.send(message).addErrback(
            lambda f: self._log.warn(
                "Queued message for {flow} lost: {reason}",
                flow=self.flow or self.requested_flow,
                reason=f.value,
            )
        )

    # Closing

    def close(self) -> Deferred[None]:
        """Close the connection; fires once it is lost."""
        if self.closed:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._lost_waiters.append(waiter)
        if self.transport is not None:
            self._close_with_grace()
        return waiter

    def abort(self) -> None:
        """Close the connection now, dropping anything not yet written."""
        if self.transport is not None and not self.closed:
            self.transport.abortConnection()

    def connection_failed(self, reason: Failure) -> None:
        """An outgoing connection could not be made (called by its factory)."""
        self._lost(reason)

    # Internals

    def _become_ready(self) -> None:
        if self.ready or self.closed:
            return
        self.ready = True
        queue, self._queue = self._queue, []
        for data, _ in queue:
            self.transport.write(data)
        assert self.flow is not None
        for _, waiter in queue:
            waiter.callback(self.flow)

    def _lost(self, reason: Failure) -> None:
        if self.closed:
            return
        self.closed = True
        self.ready = False
        self._cancel_timers()
        queue, self._queue = self._queue, []
        where = self.flow or self.requested_flow
        for _, waiter in queue:
            waiter.errback(
                TransportError(
                    f"connection {where} lost before the message was sent: "
                    f"{reason.getErrorMessage()}"
                )
            )
        if self._controller is not None:
            self._controller.stream_lost(self, reason)
        waiters, self._lost_waiters = self._lost_waiters, []
        for w in waiters:
            w.callback(None)

    def _idle_expired(self) -> None:
        self._idle = None
        self._log.info(
            "Closing {flow}: idle for {timeout} seconds", flow=self.flow, timeout=self._idle_timeout
        )
        self._close_with_grace()

    def _close_with_grace(self) -> None:
        """loseConnection, and abort if it has not finished after CLOSE_GRACE."""
        if self.closed:
            return
        self.transport.loseConnection()
        if self._abort_call is None and not self.closed:
            self._abort_call = self._clock.callLater(CLOSE_GRACE, self._grace_expired)

    def _grace_expired(self) -> None:
        self._abort_call = None
        self._log.warn("Aborting {flow}: it did not close in time", flow=self.flow)
        self.abort()

    def _cancel_timers(self) -> None:
        for call in (self._idle, self._abort_call):
            if call is not None and call.active():
                call.cancel()
        self._idle = None
        self._abort_call = None

    def _deliver(self, message: Any) -> None:
        flow = self.flow
        assert flow is not None
        if isinstance(message, Request):
            try:
                message = stamp_via(message, flow)
            except MessageParseError as e:
                error = MessageParseError(e.reason, e.status_hint, e.headers, message=message)
                self._log.warn(
                    "Malformed request on {flow}: {reason}", flow=flow, reason=error.reason
                )
                try:
                    data = serialize(message)
                except Exception:
                    data = b""
                self._tell_malformed(data, error)
                return
            screen = self._screen
            if screen is not None:
                answers = screen(message, flow.remote_host)
                if answers is not None:
                    self.screened += 1
                    for answer in answers:
                        self.send_message(answer)
                    return
        self.received += 1
        try:
            self._receiver.message_received(message, flow)
        except Exception:
            self._log.failure("Receiver failed on a message from {flow}", flow=flow)

    def _stream_broken(self, data: bytes, error: MessageParseError) -> None:
        self._broken = True
        self._log.warn(
            "Closing {flow}: unparseable stream ({size} bytes in the last read): {reason}",
            flow=self.flow,
            size=len(data),
            reason=error.reason,
            status_hint=error.status_hint,
        )
        if isinstance(error.message, Request):
            self._tell_malformed(data, error)
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self._close_with_grace()

    def _refuse(self, data: bytes) -> None:
        """The admission hook refused the peer: drop C{data}, close."""
        self.refused += 1
        self._broken = True
        self._log.info(
            "Closing {flow}: {source} is no longer admitted ({size} bytes dropped)",
            flow=self.flow,
            source=self.flow.remote_host if self.flow is not None else None,
            size=len(data),
            rule="admission",
        )
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self._close_with_grace()

    def _tell_malformed(self, data: bytes, error: MessageParseError) -> None:
        assert self.flow is not None
        try:
            self._receiver.malformed_message(data, self.flow, error)
        except Exception:
            self._log.failure("Receiver failed on a malformed message from {flow}", flow=self.flow)
