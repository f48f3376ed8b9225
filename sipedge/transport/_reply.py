# -*- test-case-name: sipedge.test.test_transport_reply -*-
"""
Where a response goes (RFC 3261 18.2.2 with RFC 3581 4), written once for
the responses of server transactions and for those we forward statelessly,
and the sender the transaction layer writes through.

L{sipedge.transport._stamp} writes C{received} and C{rport} into the top
Via of a request as it arrives; L{response_flow} reads them back from the
top Via of the response:

 - over a reliable transport, the connection the request came on;
 - over UDP, the C{received} address (else the sent-by host), at the
   C{rport} port if the client asked for it (RFC 3581), else at the sent-by
   port (or 5060). Not the source port: without C{rport} a client listens
   on its sent-by port (18.2.2), and that is where the response goes;
 - never to a broadcast, multicast or unspecified address (RFC 4475
   3.3.10); C{maddr} is not followed (a Via must not steer our responses
   to a group);
 - the answer to a request whose Via could not be stamped (a malformed
   request: a sent-by host name and no C{received}) goes back to where
   the request came from.

Before the split, a server transaction answered the source port when the
Via had neither C{received} nor C{rport}, while a stateless response went
to the sent-by port: the sent-by port is what 18.2.2 asks for, and both
follow it now.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.message import Message, Request, Response

if TYPE_CHECKING:
    from sipedge.message import Via

__all__ = ["MessageSender", "is_broadcast", "response_flow"]

_DEFAULT_PORTS = {"TLS": 5061}

#: The routes of transactions' responses a L{MessageSender} remembers.
ROUTES_KEPT = 4096


@lru_cache(maxsize=4096)  # a few hosts, every response: ipaddress is slow
def is_broadcast(host: str) -> bool:
    """
    True for an address a response must never be sent to (RFC 4475
    3.3.10): the limited broadcast address, a multicast or an unspecified
    address.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_multicast
        or address.is_unspecified
        or address == ipaddress.IPv4Address("255.255.255.255")
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def response_flow(
    response: Response,
    flow: Flow | None,
    flow_to: Callable[[str, str, int], Flow],
) -> Flow | None:
    """
    The flow C{response} goes out on (RFC 3261 18.2.2, RFC 3581 4).

    @param flow: the flow the request arrived on (a server transaction's),
        or C{None} for a response forwarded statelessly (then the top Via
        names the transport too).
    @param flow_to: C{ITransportManager.flow_to}, for a flow to an address
        we did not hear the request from.
    @return: the flow, or C{None} if the response must not be sent (no
        readable Via without a flow, a broadcast address, or no transport
        to reach it).
    @raise TransportError: from C{flow_to}.
    """
    try:
        via = response.top_via
        rport = via.rport
    except MessageParseError:
        return flow
    if flow is not None and flow.reliable:
        return flow
    received = via.received
    if flow is not None and received is None and not _is_address(via.host):
        # Not stamped (the answer to a malformed request, which the
        # transport could not stamp): the source is all we know.
        return flow
    host = (received or via.host).strip("[]")
    if is_broadcast(host):
        return None
    if isinstance(rport, int) and rport is not True:
        port = rport
    else:
        transport = via.transport.upper() if flow is None else flow.transport
        port = via.port or _DEFAULT_PORTS.get(transport, 5060)
    if flow is None:
        return flow_to(via.transport, host, port)
    if (host, port) == (flow.remote_host, flow.remote_port):
        return flow
    return Flow(flow.transport, flow.local_host, flow.local_port, host, port)


class MessageSender:
    """
    What transactions send through: a response goes where
    L{response_flow} says, then C{outgoing} may change it (topology
    hiding) or stop it, then the transports write it. A request that cannot
    be written after C{send} returned (a connection that failed to open) is
    reported to C{request_failed} (the transaction layer's
    C{transport_failed}).

    @ivar transports: the L{ITransportManager} (may be set after
        construction, as the transports deliver to the transaction layer).
    @ivar outgoing: C{(response, flow) -> response or None}, applied to
        every response after routing; C{None} sends them as they are.
    @ivar request_failed: C{(request, failure) -> None}.
    """

    _log = Logger()

    def __init__(
        self,
        transports: Any = None,
        outgoing: Callable[[Response, Flow], Response | None] | None = None,
        request_failed: Callable[[Message, Failure], None] | None = None,
    ) -> None:
        self.transports = transports
        self.outgoing = outgoing
        self.request_failed = request_failed
        # TLS flows we opened -> the name their certificate must prove
        self._server_names: dict[Flow, str] = {}
        # id(top Via) -> (that Via, the transaction's flow, where its
        # responses go): see L{_route}.
        self._routes: dict[int, tuple[Via, Flow, Flow | None]] = {}

    def expect_server_name(self, flow: Flow, name: str) -> None:
        """A TLS connection opened for C{flow} must prove C{name} (RFC 5922)."""
        self._server_names[flow] = name

    def send(self, message: Message, flow: Flow) -> None:
        """
        Send for a transaction (C{flow}: the transaction's).

        @raise TransportError: if no transport can carry it.
        """
        if isinstance(message, Response):
            routed = self._route(message, flow)
            if routed is None:
                self._log.warn(
                    "Dropping {status} response for a broadcast address", status=message.status
                )
                return
            flow = routed
            if self.outgoing is not None:
                hidden = self.outgoing(message, flow)
                if hidden is None:
                    return
                message = hidden
        if flow.secure and flow in self._server_names:
            result = self.transports.send(message, flow, server_name=self._server_names[flow])
        else:
            result = self.transports.send(message, flow)
        if isinstance(result, Deferred):
            result.addErrback(self._send_failed, message, flow)

    def _route(self, response: Response, flow: Flow) -> Flow | None:
        """
        L{response_flow} for a transaction's response, worked out once per
        top Via and flow: the responses of one server transaction (a 100,
        a 180, a 200) share its flow and their top Via, the same parsed
        value (Via values are memoized by their text), and with a flow
        given the route depends on nothing else. Bounded: the oldest goes
        first past L{ROUTES_KEPT}.
        """
        try:
            via = response.top_via
        except MessageParseError:
            return flow
        key = id(via)
        routes = self._routes
        known = routes.get(key)
        if known is not None and known[0] is via and known[1] == flow:
            return known[2]
        routed = response_flow(response, flow, self.transports.flow_to)
        if len(routes) >= ROUTES_KEPT:
            del routes[next(iter(routes))]
        # Holding the Via keeps its id from being reused while it is here.
        routes[key] = (via, flow, routed)
        return routed

    def _send_failed(self, failure: Failure, message: Message, flow: Flow) -> None:
        self._log.info(
            "Cannot send to {flow}: {error}", flow=str(flow), error=failure.getErrorMessage()
        )
        if isinstance(message, Request) and self.request_failed is not None:
            self.request_failed(message, failure)

    def send_response(self, response: Response) -> bool:
        """
        Send C{response} statelessly (no transaction) to its top Via.

        @return: whether it went to the transports (a failure to write it
            is logged).
        """
        try:
            flow = response_flow(response, None, self.transports.flow_to)
        except TransportError as e:
            self._log.info("Cannot forward stray response: {error}", error=str(e))
            return False
        if flow is None:
            self._log.warn("Dropping a response for a broadcast address or without Via")
            return False
        return self.send_stateless(response, flow, "Cannot forward stray response: {error}")

    def send_stateless(self, message: Message, flow: Flow, text: str) -> bool:
        """
        Send C{message} on C{flow} with no transaction to report to: a
        failure is logged with C{text} (which names C{{error}}).

        @return: whether it went to the transports.
        """

        def failed(failure: Failure) -> None:
            self._log.info(text, error=failure.getErrorMessage())

        if isinstance(message, Response) and self.outgoing is not None:
            hidden = self.outgoing(message, flow)
            if hidden is None:
                return False
            message = hidden
        try:
            result = self.transports.send(message, flow)
        except TransportError:
            failed(Failure())
            return False
        if isinstance(result, Deferred):
            result.addErrback(failed)
        return True
