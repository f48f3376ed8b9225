# -*- test-case-name: sipedge.test.test_message_nat -*-
"""
NAT detection (cf. Kamailio's C{nat_uac_test}), sans-IO: is the user agent
that sent a request (or a response) behind a NAT, so that it can only be
reached over the flow the message came from?

One detection for every layer that acts on it: the registrar (a short
re-registration interval), the proxy (flows sealed in our Record-Route)
and the media relay (latching on the party's public address: see
L{sipedge.media.nat_source}).

Each test compares what the message says about where its sender can be
reached with the address it really came from (the flow), or looks for
addresses that cannot be reached from outside their network: the private
ranges of RFC 1918, the shared address space of RFC 6598 (carrier-grade
NAT), link-local addresses and IPv6 unique local addresses (RFC 4193).

 - C{via-address}: the top Via's sent-by is an IP address other than the
   source (RFC 3261 18.2.1 adds C{received} then; Kamailio's flag 2).
 - C{via-port}: over UDP, the sent-by port is not the source port
   (RFC 3581 C{rport}; Kamailio's flag 16).
 - C{contact-private}: a Contact names a private or shared address that
   is not the source (Kamailio's flag 1).
 - C{contact-address}: a Contact's host is not the source (Kamailio's
   flag 32).
 - C{contact-port}: over UDP, a Contact at the source's address names
   another port.
 - C{sdp-private}: the SDP's connection address is private or shared and
   not the source (Kamailio's flag 8).

Only a request straight from a user agent (one Via) is tested: behind
another proxy, the source says nothing of the user agent. A response (a
callee's 18x or 2xx, received on the flow its request was sent over) is
tested on its Contact and SDP only: its Vias are ours and the caller's.

A verdict is L{NatVerdict.behind_nat} when an I{address} differs: a port
alone (C{via-port}, C{contact-port}) is also what a user agent that sends
from one socket and listens on another looks like, and a phone that
learnt its public address (STUN) learnt its port with it. Treating a user
agent as behind NAT when it is not costs little: its requests come back
over the flow it used, which reaches it all the same.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import attrs

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.message._message import Request, Response
from sipedge.message._sdp import SessionDescription, parse_sdp
from sipedge.message._sip_uri import SipURI

__all__ = ["NatVerdict", "detect_nat", "is_private_address", "parse_ip_address"]

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # RFC 6598, shared address space (CGN)
        "169.254.0.0/16",  # RFC 3927, link-local
        "fc00::/7",  # RFC 4193, unique local
        "fe80::/10",  # RFC 4291, link-local
    )
)

#: The reasons that show a NAT on their own (an address differs).
_ADDRESS_REASONS = frozenset(("via-address", "contact-private", "contact-address", "sdp-private"))

_DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "SCTP": 5060, "WS": 80, "WSS": 443}


# Memoized: the same few hosts (the phones', ours) come in every request,
# and ipaddress parses slowly. Errors are not cached; values are immutable.
@lru_cache(maxsize=4096)
def parse_ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    The IP address C{host} names (brackets and an IPv6 zone allowed; an
    IPv4-mapped IPv6 address as its IPv4 address), or C{None} for a host
    name or anything else.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def is_private_address(host: str) -> bool:
    """
    Whether C{host} is an IP address that is not reachable from outside its
    own network: RFC 1918, RFC 6598 shared, link-local, unique local.
    A host name is not.
    """
    address = parse_ip_address(host)
    return address is not None and any(
        address.version == n.version and address in n for n in _PRIVATE_NETWORKS
    )


def _same_host(host: str, source: str) -> bool:
    a, b = parse_ip_address(host), parse_ip_address(source)
    return a is not None and a == b


@attrs.frozen
class NatVerdict:
    """
    What L{detect_nat} found.

    @ivar reasons: the names of the tests that found a NAT (see the module
        docstring), in a fixed order; empty if none did.
    @ivar source: the flow the request came from: where its sender is
        really reached.
    """

    reasons: tuple[str, ...]
    source: Flow

    @property
    def behind_nat(self) -> bool:
        """True if a test found an address that is not the source."""
        return not _ADDRESS_REASONS.isdisjoint(self.reasons)

    def __str__(self) -> str:
        if not self.reasons:
            return f"not behind NAT ({self.source.remote_host})"
        if not self.behind_nat:
            return f"not behind NAT ({self.source.remote_host}: {', '.join(self.reasons)})"
        return f"behind NAT at {self.source.remote_host}:{self.source.remote_port}" + (
            f" ({', '.join(self.reasons)})"
        )


def _parsed_sdp(message: Request | Response) -> SessionDescription | None:
    content_type = (message.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if not message.body or content_type != "application/sdp":
        return None
    try:
        return parse_sdp(message.body)
    except (MessageParseError, ValueError):
        return None


def _sdp_may_be_private(body: bytes, source: str) -> bool:
    """
    Whether a C{c=} line of C{body} may name a private or shared address
    that is not C{source}. C{False} proves that L{_sdp_private} of its
    parsed SDP is false, without parsing it (most calls: the address is
    public or the source); C{True} only means that the parse must decide.
    Every address a connection can hold is tested: the third field of each
    C{c=} line, with and without a C{/ttl} part.
    """
    for piece in body.decode("utf-8", "surrogateescape").split("\n"):
        if piece[:2] != "c=":
            continue
        fields = piece[2:].split()
        if len(fields) != 3:
            return True
        for address in (fields[2], fields[2].partition("/")[0]):
            if is_private_address(address) and not _same_host(address, source):
                return True
    return False


def _sdp_private(sdp: SessionDescription | None, source: str) -> bool:
    if sdp is None:
        return False
    connections = [sdp.connection, *(m.connection for m in sdp.media)]
    return any(
        c is not None and is_private_address(c.address) and not _same_host(c.address, source)
        for c in connections
    )


def _via_reasons(request: Request, flow: Flow) -> list[str] | None:
    """The Via findings of C{request}; C{None} if it did not come straight from its sender."""
    try:
        vias = request.vias
    except MessageParseError:
        vias = ()
    if len(vias) != 1:
        return None
    via = vias[0]
    reasons = []
    if parse_ip_address(via.host) is not None and not _same_host(via.host, flow.remote_host):
        reasons.append("via-address")
    if flow.transport == "UDP":
        port = via.port or _DEFAULT_PORTS["UDP"]
        if port != flow.remote_port:
            reasons.append("via-port")
    return reasons


def detect_nat(
    message: Request | Response, flow: Flow, sdp: SessionDescription | None = None
) -> NatVerdict:
    """
    Whether the sender of C{message}, received on C{flow}, is behind NAT.
    C{sdp} is its session description where the caller has parsed it
    already (the media stage; a part of a multipart body): it is used
    instead of the body.

    Never raises: a part of the message that does not parse is not used.
    """
    source = flow.remote_host
    if isinstance(message, Request):
        found = _via_reasons(message, flow)
        if found is None:
            return NatVerdict((), flow)
        reasons = found
    else:
        reasons = []
    try:
        contacts = message.contacts
    except MessageParseError:
        contacts = ()
    private = False
    elsewhere = False
    port_differs = False
    if isinstance(contacts, tuple):
        for contact in contacts:
            uri = contact.uri
            if not isinstance(uri, SipURI):
                continue
            host = uri.bare_host
            if is_private_address(host) and not _same_host(host, source):
                private = True
            if not _same_host(host, source):
                elsewhere = True
            elif flow.transport == "UDP":
                port = uri.port or _DEFAULT_PORTS["UDP"]
                if port != flow.remote_port:
                    port_differs = True
    if private:
        reasons.append("contact-private")
    if elsewhere:
        reasons.append("contact-address")
    if port_differs:
        reasons.append("contact-port")
    if sdp is not None:
        sdp_private = _sdp_private(sdp, source)
    else:
        sdp_private = _sdp_may_be_private(message.body, source) and _sdp_private(
            _parsed_sdp(message), source
        )
    if sdp_private:
        reasons.append("sdp-private")
    return NatVerdict(tuple(reasons), flow)
