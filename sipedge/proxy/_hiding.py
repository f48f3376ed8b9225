# -*- test-case-name: sipedge.test.test_proxy_topology_core -*-
"""
Topology hiding on the proxy's sending and receiving sides: the glue
between the proxy core and the stateless L{TopologyHider}.

A response is hidden as it leaves (L{TopologyWrapper.hide_response} is the
C{outgoing} filter of the L{MessageSender}, after 18.2.2 routing chose the
address it goes to); a request is hidden before its client transaction is
made (the transaction must match the response to what it sent); tokens
that come back are opened as messages arrive (L{reveal_request},
L{reveal_response}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.message import Request, Response
from sipedge.pipeline import LocalIdentity
from sipedge.proxy._addresses import LocalAddresses
from sipedge.proxy._dialogs import CALLER
from sipedge.proxy._topology import RULE as TOPOLOGY_RULE
from sipedge.proxy._topology import Refusal, Revealed, TopologyHider
from sipedge.transaction import make_response

__all__ = ["TopologyWrapper", "masked"]


def masked(context: Any) -> bool:
    """Whether the Call-ID of the request of C{context} is masked outside."""
    return bool(context is not None and context.annotations.get("topology"))


class TopologyWrapper:
    """
    @param hider: the L{TopologyHider}.
    @param local: gives who we are (our tokens name our addresses); called
        when used, as the service learns its addresses once its listeners
        are bound.
    @param addresses: our Via address per transport (for hidden responses).
    @ivar dialogs: the L{DialogTracker}, if any: a request we originate in a
        dialog set up from inside has its Call-ID masked outside.
    """

    _log = Logger()

    def __init__(
        self,
        hider: TopologyHider,
        local: Callable[[], LocalIdentity],
        addresses: LocalAddresses,
        dialogs: Any = None,
    ) -> None:
        self.hider = hider
        self._local = local
        self._addresses = addresses
        self.dialogs = dialogs

    # -- receiving ------------------------------------------------------------

    def reveal_request(self, request: Request, flow: Flow) -> Revealed | Response | None:
        """
        C{request} with our topology-hiding tokens opened; a response to
        send instead if we refuse it (C{None} for an ACK: no answer).
        """
        external = self.hider.is_external(flow.remote_host)
        try:
            result = self.hider.reveal_request(request, self._local(), external)
        except MessageParseError as e:
            result = Refusal(400, "Bad Request", f"unreadable: {e.reason}")
        if isinstance(result, Revealed):
            return result
        self._log.info(
            "Refusing {method} from {source}: {detail}",
            method=request.method,
            source=str(flow),
            detail=result.detail,
            rule=TOPOLOGY_RULE,
        )
        if request.method == "ACK":
            return None
        return make_response(request, result.status, result.reason)

    def reveal_response(self, response: Response, flow: Flow) -> Response | None:
        """C{response} from outside with our tokens opened; C{None} to drop it."""
        if not self.hider.is_external(flow.remote_host):
            return response
        try:
            result = self.hider.reveal_response(response, self._local())
        except MessageParseError as e:
            result = Refusal(400, "Bad Response", f"unreadable: {e.reason}")
        if isinstance(result, Response):
            return result
        self._log.info(
            "Dropping {status} response from {source}: {detail}",
            status=response.status,
            source=str(flow),
            detail=result.detail,
            rule=TOPOLOGY_RULE,
        )
        return None

    # -- sending --------------------------------------------------------------

    def hide_originated(
        self, request: Request, flow: Flow, ours: tuple[str, int]
    ) -> Request | None:
        """
        A request of our own (L{ProxyCore.originate}) on C{flow}, hidden if
        that goes outside: its Call-ID is masked if its dialog was set up
        from inside (the caller's flow is internal).
        """
        mask = False
        if self.dialogs is not None:
            try:
                request_tags = (request.from_address.tag, request.to_address.tag)
                dialog = self.dialogs.find(request.call_id, *request_tags)
            except MessageParseError:
                dialog = None
            caller = dialog.parties.get(CALLER) if dialog is not None else None
            if caller is not None and caller.flow is not None:
                mask = self.hider.is_internal(caller.flow.remote_host)
        return self.hide_request(request, mask, flow, ours)

    def hide_request(
        self, request: Request, mask: bool, flow: Flow, ours: tuple[str, int]
    ) -> Request | None:
        """
        A request we send on C{flow}, hidden if that goes outside (with
        its Call-ID masked if C{mask}); C{None} if it cannot be (it must
        not leave then).
        """
        if not self.hider.is_external(flow.remote_host):
            return request
        try:
            return self.hider.hide_request(request, self._local(), (flow.transport, *ours), mask)
        except MessageParseError as e:
            self._not_hidden(request, flow, e)
            return None

    def hide_response(self, response: Response, flow: Flow) -> Response | None:
        """
        A response we send on C{flow}, hidden if that goes outside; C{None}
        if it cannot be (it must not leave then).
        """
        if not self.hider.is_external(flow.remote_host):
            return response
        try:
            host, port = self._addresses.hostport_toward(flow.transport, flow.remote_host)
        except TransportError:
            host, port = flow.local_host, flow.local_port
        try:
            return self.hider.hide_response(response, self._local(), (flow.transport, host, port))
        except MessageParseError as e:
            self._not_hidden(response, flow, e)
            return None

    def _not_hidden(
        self, message: Request | Response, flow: Flow, error: MessageParseError
    ) -> None:
        self._log.info(
            "Not sending {message} to {destination}: cannot hide it ({error})",
            message=message.method if isinstance(message, Request) else message.status,
            destination=str(flow),
            error=error.reason,
            rule=TOPOLOGY_RULE,
        )
