# -*- test-case-name: sipedge.test.test_store_reach -*-
"""
How a registered contact is reached: over the flow its REGISTER came on, or
at its Contact, and what a caller is told when that flow is gone.

One rule for the location stage (where requests for the binding go) and the
NAT keep-alive (which bindings it pings, and which it drops when their
connection closes), so the two never disagree about a phone.
"""

from __future__ import annotations

import ipaddress

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.message import SipURI, parse_uri
from sipedge.store._binding import Binding

__all__ = ["binding_flow"]


def _is_ip(host: str) -> bool:
    """Whether C{host} (no brackets) is an IPv4 or IPv6 address, not a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def binding_flow(binding: Binding) -> tuple[Flow | None, int | None]:
    """
    The flow to reach C{binding} over, and the status to answer if that
    flow is gone (C{None}: send to the Contact then).

    A binding registered through another proxy (Path) is reached through
    it: C{(None, None)}. One that asked for RFC 5626 outbound (reg-id) only
    over its flow, else 430. One whose Contact is not a SIP URI, or names
    another host than where it registered from (a phone behind NAT, cf.
    Kamailio's nat_uac_test), over its flow; over UDP only over it (else
    480), over TCP or TLS only over it (else 480) when the Contact is an IP
    address. A TCP or TLS phone at its own address, or at a host name, over
    the connection it registered on while that lasts, then at its Contact;
    a UDP one at its own address at its Contact (which may be another
    socket than the one it registered from).
    """
    flow = binding.flow
    if flow is None or binding.path:
        return None, None
    if binding.reg_id is not None:
        return flow, 430
    try:
        uri = parse_uri(binding.contact)
    except MessageParseError:
        return flow, 480
    if not isinstance(uri, SipURI):
        return flow, 480
    host = uri.bare_host
    if flow.reliable:
        # a host name may be reachable; an address that is not the source
        # (a private one) is not
        return flow, (480 if _is_ip(host) and host != flow.remote_host else None)
    if host != flow.remote_host:
        return flow, 480
    return None, None
