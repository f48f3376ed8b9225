# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
Sending one branch of a fork (RFC 3261 16.6): the request for its target,
with our Via and Record-Route (and the flow token of a party behind NAT),
through the branch stages and topology hiding, in a client transaction to
the target's flow or to the next DNS destination of its next hop (RFC 3263
4.3); a request over 1300 bytes for a next hop found by DNS whose URI
leaves the transport open goes over TCP to the same address, and over UDP
after all if no connection can be made (RFC 3261 18.1.1).

What a branch's failures lead to (the next destination, the fork's best
response) is the L{Forker}'s (L{sipedge.proxy._forking}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import LocalProtocolError, MessageParseError, TransportError
from sipedge.message import Request, make_branch
from sipedge.pipeline import settled
from sipedge.proxy._flowtoken import dialog_flows
from sipedge.proxy._fork import Branch, Fork
from sipedge.proxy._forwarding import (
    RECORD_ROUTED_METHODS,
    forwarded_request,
    is_secure,
    is_transport_open,
    next_hop,
    own_via,
    record_route_value,
    with_record_route,
)
from sipedge.proxy._hiding import masked
from sipedge.transaction import State
from sipedge.transport import too_large_for_udp

__all__ = ["BranchSender"]


class BranchSender:
    """
    The branches of one proxy core's forks, on their way out.

    @param core: the L{ProxyCore} (its chain, transaction layer, transports,
        locator, addresses, sender, signer, flow tokens, topology wrapper
        and settings, read when used).
    @param forker: the L{Forker} the branches belong to (told of their
        failures; it maps their client transactions to them).
    """

    _log = Logger()

    def __init__(self, core: Any, forker: Any) -> None:
        self._core = core
        self._forker = forker

    def start(self, fork: Fork, branch: Branch) -> None:
        core = self._core
        try:
            request = forwarded_request(fork.request, branch.target, core.max_forwards)
            hop = next_hop(request)
        except MessageParseError as e:
            self._forker.branch_failed(fork, branch, 400, f"bad target: {e.reason}")
            return
        branch.request = request
        flow = branch.target.flow
        if flow is not None and (
            not flow.reliable or core.transports.connection_for(flow) is not None
        ):
            self._send(fork, branch, flow)
            return
        if flow is not None and branch.target.flow_failed is not None:
            # Reached only over its own connection, which is gone: never a
            # connect to the (private) address of its Contact.
            self._forker.branch_failed(fork, branch, branch.target.flow_failed, "flow failed")
            return
        # No flow, or the connection a phone registered over is gone: send
        # to what its Contact resolves to.
        branch.may_use_tcp = is_transport_open(hop)
        if core.locator is None:
            self._forker.branch_failed(fork, branch, 503, "no locator")
            return
        try:
            located = settled(core.locator.locate(hop))
        except Exception:
            located = Failure()
        if isinstance(located, Deferred):
            located.addCallback(self._located, fork, branch)
            located.addErrback(self._locate_failed, fork, branch)
        elif isinstance(located, Failure):
            self._locate_failed(located, fork, branch)
        else:
            # An IP address with a port, or a name already resolved.
            self._located(located, fork, branch)

    def _located(self, destinations: list[Any], fork: Fork, branch: Branch) -> None:
        if branch.done:
            return
        if not destinations:
            self._forker.branch_failed(fork, branch, 404, "next hop not found")
            return
        branch.destinations = list(destinations)
        if not self.try_next_destination(fork, branch):
            self._forker.branch_failed(fork, branch, 503, "next hop not reachable")

    def _locate_failed(self, failure: Failure, fork: Fork, branch: Branch) -> None:
        if branch.done:
            return
        self._log.info("Cannot locate next hop: {error}", error=failure.getErrorMessage())
        self._forker.branch_failed(fork, branch, 503, "next hop not reachable")

    def try_next_destination(self, fork: Fork, branch: Branch) -> bool:
        core = self._core
        while branch.destinations:
            dest = branch.destinations.pop(0)
            try:
                flow = core.transports.flow_to(dest.transport, dest.host, dest.port)
            except TransportError:
                continue
            if flow.secure:
                # RFC 5922: the certificate must name the domain we resolved.
                core.sender.expect_server_name(flow, dest.server_name)
            self._send(fork, branch, flow)
            return True
        return False

    def _flow_token(self, fork: Fork, branch: Branch, flow: Any) -> str | None:
        """
        The flow token for our Record-Route of a dialog-creating request:
        how to reach a party behind NAT in the dialog's later requests.
        """
        tokens = self._core.flow_tokens
        if tokens is None:
            return None
        target = branch.target
        callee = flow if target.flow == flow else None
        flows = dialog_flows(fork.original, fork.incoming, callee, target.flow_failed)
        if flows is None:
            return None
        return str(tokens.seal(flows, fork.request.call_id))

    def _send(self, fork: Fork, branch: Branch, flow: Any) -> None:
        assert branch.request is not None
        core = self._core
        request = branch.request
        if fork.cancelled:
            self._forker.branch_failed(fork, branch, 487, "cancelled")
            return
        addresses = core.addresses
        try:
            local_host, local_port = addresses.hostport_toward(flow.transport, flow.remote_host)
            index = branch.index * 100 + len(branch.destinations)
            if branch.udp_fallback is not None:
                index += 50  # the TCP attempt of a large request: its own branch
            if (
                core.record_route
                and request.method in RECORD_ROUTED_METHODS
                and request.to_address.tag is None
            ):
                mac = core.signer.mac(request.call_id)
                token = self._flow_token(fork, branch, flow)
                secure = is_secure(request)
                values = []
                incoming = fork.incoming
                in_host, in_port = addresses.hostport_toward(
                    incoming.transport, incoming.remote_host
                )
                if (incoming.transport, in_host, in_port) != (
                    flow.transport,
                    local_host,
                    local_port,
                ):
                    values.append(
                        record_route_value(incoming.transport, in_host, in_port, mac, secure, token)
                    )
                values.append(
                    record_route_value(flow.transport, local_host, local_port, mac, secure, token)
                )
                request = with_record_route(request, values)
        except TransportError as e:
            # No address of ours for that transport and family (no Via).
            self._forker.destination_failed(fork, branch, str(e))
            return
        branch_id = make_branch(fork.digest, index)
        request = request.with_via_pushed(
            own_via(flow.transport, local_host, local_port, branch_id)
        )
        chain = core.chain
        if chain.branch_stages:
            checked = chain.run_branch(fork.context, request, flow)
            if not isinstance(checked, Request):
                self._forker.branch_refused(fork, branch, checked)
                return
            request = checked
        branch.sent = request
        if core.hiding is not None:
            hidden = core.hiding.hide_request(
                request, masked(fork.context), flow, (local_host, local_port)
            )
            if hidden is None:
                self._forker.branch_failed(fork, branch, 500, "cannot hide topology")
                return
            request = hidden
        if flow.transport == "UDP" and branch.may_use_tcp and too_large_for_udp(request):
            if self._send_over_tcp(fork, branch, flow):
                return
        try:
            transaction = core.transactions.client_transaction(request, flow)
        except LocalProtocolError:
            # The same request is being forwarded already (the same branch):
            # it came back to us, or reached us twice (RFC 3261 8.2.2.2).
            self._forker.branch_failed(fork, branch, 482, "merged or looped request")
            return
        branch.transaction = transaction
        if transaction.state is State.TERMINATED:
            # The first send failed: the layer reported it (to
            # transaction_failed) before we knew the transaction.
            self._forker.destination_failed(fork, branch, "cannot send")
            return
        self._forker.branches[transaction] = (fork, branch)

    def _send_over_tcp(self, fork: Fork, branch: Branch, udp: Any) -> bool:
        """
        RFC 3261 18.1.1: a request over 1300 bytes goes over TCP to the
        same address (with a TCP Via); False if we have no TCP to offer.
        """
        try:
            tcp = self._core.transports.flow_to("TCP", udp.remote_host, udp.remote_port)
        except TransportError:
            return False
        self._log.info(
            "Sending {method} to {host}:{port} over TCP: too large for UDP (RFC 3261 18.1.1)",
            method=fork.request.method,
            host=udp.remote_host,
            port=udp.remote_port,
        )
        branch.may_use_tcp = False
        branch.udp_fallback = udp
        self._send(fork, branch, tcp)
        return True

    def fall_back_to_udp(self, fork: Fork, branch: Branch) -> bool:
        """
        The TCP connection for a large request could not be made: send it
        over UDP after all (RFC 3261 18.1.1), unless the branch has ended.
        """
        udp, branch.udp_fallback = branch.udp_fallback, None
        if udp is None or branch.cancelled or fork.cancelled or fork.final_sent:
            return False
        self._log.info(
            "No TCP to {host}:{port}: sending {method} over UDP",
            host=udp.remote_host,
            port=udp.remote_port,
            method=fork.request.method,
        )
        self._forker.branches.pop(branch.transaction, None)
        self._send(fork, branch, udp)
        return True
