# -*- test-case-name: sipedge.test.test_transport, sipedge.test.test_security -*-
"""
SIP over UDP (RFC 3261 18): one datagram, one message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.error import InvalidAddressError, MessageLengthError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from sipedge import _debug
from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IMessageReceiver, ISipTransport
from sipedge.message import DEFAULT_LIMITS, Limits, Request, is_keepalive, parse_datagram
from sipedge.message import serialize as serialize_message
from sipedge.transport._stamp import stamp_via
from sipedge.transport._stun import binding_response, looks_like_stun

if TYPE_CHECKING:
    from sipedge.message import Message

__all__ = ["MAX_DATAGRAM_SIZE", "SipDatagramProtocol"]

#: The largest UDP payload there is (the 16-bit length field); SIP over UDP
#: has no other limit (RFC 3261 18.1.1 only asks senders to prefer TCP above
#: 1300 bytes). Twisted's C{listenUDP} reads at most 8192 bytes per datagram
#: unless told otherwise, so pass this as C{maxPacketSize}.
MAX_DATAGRAM_SIZE = 65535


@implementer(ISipTransport)
class SipDatagramProtocol(DatagramProtocol):
    """
    A SIP UDP socket: parses each datagram and hands C{(message, flow)} to
    an L{IMessageReceiver}; requests get their top Via stamped
    (L{stamp_via}). Keep-alives (datagrams of CRLFs only) are counted and
    dropped; STUN Binding requests (RFC 5626 8) are counted and
    answered; datagrams that do not parse go to
    L{IMessageReceiver.malformed_message}.

    Listen with C{reactor.listenUDP(port, protocol, interface=host,
    maxPacketSize=SipDatagramProtocol.max_datagram_size)}: Twisted's
    default of 8192 would cut bigger datagrams short.

    @ivar received: datagrams delivered as messages.
    @ivar keepalives: keep-alive datagrams dropped.
    @ivar malformed: datagrams that did not parse.
    @ivar refused: datagrams dropped unparsed because C{admission} refused
        their source.
    @ivar screened: datagrams dropped unparsed because C{screen} refused
        them.
    """

    name = "UDP"
    reliable = False
    max_datagram_size = MAX_DATAGRAM_SIZE
    #: How many sources' flows it keeps to reuse (L{Flow} values are
    #: frozen: one per source serves all its datagrams).
    flow_cache_size = 4096
    transport: Any = None
    _log = Logger()

    def __init__(
        self,
        receiver: IMessageReceiver,
        *,
        limits: Limits = DEFAULT_LIMITS,
        local_host: str | None = None,
        admission: Callable[[str], bool] | None = None,
        screen: Callable[[bytes, str], bool] | None = None,
    ) -> None:
        """
        @param receiver: where messages go.
        @param limits: the parser's limits.
        @param local_host: the address to put in flows; by default the
            address the socket is bound to (give the real address when
            binding to a wildcard is not what flows should show).
        @param admission: called with each datagram's source address
            before anything else; a datagram it refuses (C{False}) is
            dropped without a word, unparsed, and counted in L{refused}
            (the hook logs why). C{None} admits everything.
        @param screen: called with each SIP datagram (not a keep-alive or
            STUN) and its source address after admission, before the
            parse (C{sipedge.security.Security.screen}); a datagram it
            refuses (C{False}) is dropped unparsed and counted in
            L{screened}. C{None} parses everything.
        """
        self._receiver = receiver
        self._limits = limits
        self._admission = admission
        self._screen = screen
        self.local_host: str | None = local_host
        self.local_port: int | None = None
        self.received = 0
        self.keepalives = 0
        self.malformed = 0
        self.refused = 0
        self._flows: dict[tuple[str, int], Flow] = {}
        self.screened = 0

    def startProtocol(self) -> None:
        address = self.transport.getHost()
        if not self.local_host:
            self.local_host = address.host
        self.local_port = address.port
        self._flows.clear()

    def stopProtocol(self) -> None:
        self._log.debug(
            "Stopped UDP transport on {host}:{port}", host=self.local_host, port=self.local_port
        )

    def flow_to(self, host: str, port: int) -> Flow:
        """The flow from this socket to C{host:port}."""
        assert self.local_host is not None and self.local_port is not None
        return Flow("UDP", self.local_host, self.local_port, host, port)

    def _flow_from(self, addr: tuple[str, int]) -> Flow:
        """
        The flow of a datagram from C{addr}: the same (frozen) value for
        every datagram of a source while it is among the last
        L{flow_cache_size} sources, instead of a new one per datagram.
        """
        flows = self._flows
        flow = flows.get(addr)
        if flow is None:
            if len(flows) >= self.flow_cache_size:
                flows.clear()  # many sources (a flood): start again
            flow = flows[addr] = self.flow_to(addr[0], addr[1])
        return flow

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        admission = self._admission
        if admission is not None and not admission(addr[0]):
            self.refused += 1
            return
        flow = self._flows.get(addr)
        if flow is None:
            flow = self._flow_from(addr)
        if not data or not 65 <= data[0] <= 90:
            # Not a request method nor "SIP/2.0" (A-Z): a keep-alive or STUN?
            if self._keepalive_or_stun(data, addr, flow):
                return
        screen = self._screen
        if screen is not None and not screen(data, addr[0]):
            self.screened += 1
            return
        try:
            message = parse_datagram(data, self._limits)
            if isinstance(message, Request):
                try:
                    message = stamp_via(message, flow)
                except MessageParseError as e:
                    raise MessageParseError(
                        e.reason, e.status_hint, e.headers, message=message
                    ) from e
        except MessageParseError as error:
            if isinstance(error.message, Request):
                # Stamped so that its answer goes back to the source
                # address and port, not to where its Via points.
                try:
                    stamped = stamp_via(error.message, flow, answer_to_source=True)
                except MessageParseError:
                    pass
                else:
                    error = MessageParseError(
                        error.reason, error.status_hint, error.headers, message=stamped
                    )
            self.malformed += 1
            self._log.warn(
                "Malformed {size}-byte datagram from {source}: {reason}",
                size=len(data),
                source=flow,
                reason=error.reason,
                status_hint=error.status_hint,
            )
            try:
                self._receiver.malformed_message(data, flow, error)
            except Exception:
                self._log.failure("Receiver failed on a malformed datagram from {source}",
                                  source=flow)
            return
        self.received += 1
        try:
            self._receiver.message_received(message, flow)
        except Exception:
            self._log.failure("Receiver failed on a message from {source}", source=flow)

    def _keepalive_or_stun(self, data: bytes, addr: tuple[str, int], flow: Flow) -> bool:
        """Count and drop a keep-alive, count and answer STUN; False for anything else."""
        if is_keepalive(data):
            self.keepalives += 1
            if _debug.enabled():
                self._log.debug(
                    "Dropping {size}-byte keep-alive from {source}", size=len(data), source=flow
                )
            return True
        if looks_like_stun(data):
            # RFC 5626 8: a STUN keepalive on the SIP port gets its answer.
            self.keepalives += 1
            response = binding_response(data, addr[0], addr[1])
            if response is not None and self.transport is not None:
                try:
                    self.transport.write(response, addr)
                except (OSError, InvalidAddressError, MessageLengthError) as e:
                    self._log.info(
                        "Cannot answer STUN from {source}: {error}", source=flow, error=str(e)
                    )
            return True
        return False

    def send_message(self, message: Message, flow: Flow) -> None:
        """
        Write C{message} to C{flow}'s remote address.

        @raise TransportError: if the socket is closed, the address is not
            one this socket can reach, or the datagram is too large.
        """
        if self.transport is None:
            raise TransportError(f"UDP transport {self.local_host}:{self.local_port} is closed")
        data = serialize_message(message)
        try:
            self.transport.write(data, (flow.remote_host, flow.remote_port))
        except MessageLengthError as e:
            raise TransportError(f"{len(data)}-byte datagram too large for {flow}") from e
        except InvalidAddressError as e:
            raise TransportError(f"cannot send to {flow}: {e}") from e
        except OSError as e:
            raise TransportError(f"cannot send to {flow}: {e}") from e
