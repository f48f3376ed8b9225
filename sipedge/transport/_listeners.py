# -*- test-case-name: sipedge.test.test_transport, sipedge.test.test_transport_integration -*-
"""
The stream side of the transport manager: a TCP/TLS listening socket as an
L{ISipTransport}, the Twisted factories that hand connections to the
manager, and the receiver that shows messages to taps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IConnector, IListeningPort
from twisted.internet.protocol import ClientFactory, Factory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IMessageReceiver, IMessageTap, ISipTransport
from sipedge.transport._stream import SipStreamProtocol

if TYPE_CHECKING:
    from sipedge.message import Message
    from sipedge.transport._manager import TransportManager

__all__ = ["StreamListener"]


@implementer(ISipTransport)
class StreamListener:
    """
    A TCP or TLS listening socket, as an L{ISipTransport}: sending writes
    on the existing connection of the flow.

    @ivar port: the Twisted L{IListeningPort}.
    """

    reliable = True

    def __init__(
        self, manager: TransportManager, name: str, local_host: str, local_port: int,
        port: IListeningPort,
    ) -> None:
        self._manager = manager
        self.name = name
        self.local_host = local_host
        self.local_port = local_port
        self.port = port

    def __repr__(self) -> str:
        return f"<StreamListener {self.name} {self.local_host}:{self.local_port}>"

    def send_message(self, message: Message, flow: Flow) -> None:
        """
        Write on the connection of C{flow}.

        @raise TransportError: if there is no such connection (use
            L{TransportManager.send} to open one).
        """
        connection = self._manager.connection_for(flow)
        if connection is None:
            raise TransportError(f"no connection for {flow}")
        connection.send_message(message, flow)

    def stop(self) -> Deferred[None]:
        """Stop listening."""
        stopped: Deferred[None] = maybeDeferred(self.port.stopListening)  # type: ignore[call-overload]
        return stopped


class _ServerFactory(Factory):
    """Builds a protocol per accepted connection, if the manager admits it."""

    noisy = False

    def __init__(self, manager: TransportManager, name: str) -> None:
        self._manager = manager
        self._name = name

    def buildProtocol(self, addr: IAddress | None) -> SipStreamProtocol | None:
        return self._manager._accept(self._name, addr)


class _TLSServerFactory(TLSMemoryBIOFactory):
    """A TLS server factory that refuses a connection its wrapped factory refuses."""

    noisy = False

    def buildProtocol(self, addr: IAddress | None) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)


class _ClientFactory(ClientFactory):
    """Hands out the one protocol made in advance for an outgoing connection."""

    noisy = False

    def __init__(self, protocol: SipStreamProtocol) -> None:
        self._protocol: SipStreamProtocol | None = protocol

    def buildProtocol(self, addr: IAddress | None) -> SipStreamProtocol | None:
        protocol, self._protocol = self._protocol, None
        return protocol

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        if self._protocol is not None:
            self._protocol.connection_failed(reason)


_log = Logger(namespace="sipedge.transport")


def show_taps(taps: tuple[IMessageTap, ...], method: str, *args: Any) -> None:
    """
    Call C{method} of every tap with C{args}. A tap must not raise; one
    that does is logged and the message goes on regardless: a capture or
    a counter never costs a call.
    """
    for tap in taps:
        try:
            getattr(tap, method)(*args)
        except Exception:
            _log.failure("Message tap {tap!r} failed in {method}", tap=tap, method=method)


def tap_methods(
    taps: tuple[IMessageTap, ...], method: str
) -> tuple[Callable[[Message, Flow], None], ...]:
    """The bound C{method} of every tap, looked up once (for L{show_message})."""
    return tuple(getattr(tap, method) for tap in taps)


def show_message(
    methods: tuple[Callable[[Message, Flow], None], ...], message: Message, flow: Flow
) -> None:
    """
    As L{show_taps}, with the taps' methods bound beforehand
    (L{tap_methods}): every message in and out goes through here.
    """
    for method in methods:
        try:
            method(message, flow)
        except Exception:
            _log.failure(
                "Message tap {tap!r} failed in {method}",
                tap=getattr(method, "__self__", method),
                method=getattr(method, "__name__", "?"),
            )


@implementer(IMessageReceiver)
class _TappedReceiver:
    """A receiver that shows each message to the taps before passing it on."""

    def __init__(self, receiver: IMessageReceiver, taps: tuple[IMessageTap, ...]) -> None:
        self._receiver = receiver
        self._taps = taps
        self._message_in = tap_methods(taps, "message_in")

    def message_received(self, message: Message, flow: Flow) -> None:
        show_message(self._message_in, message, flow)
        self._receiver.message_received(message, flow)

    def malformed_message(self, data: bytes, flow: Flow, error: MessageParseError) -> None:
        show_taps(self._taps, "malformed_in", data, flow)
        self._receiver.malformed_message(data, flow, error)
