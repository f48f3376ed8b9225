# -*- test-case-name: sipedge.test.test_media_nat -*-
"""
Whether a party's media is behind NAT, from what the signalling shows
(sans-IO: no Twisted here). Used by C{[media] nat = "auto"}: the relay
then takes that party's media from the address its signalling came from
(L{sipedge.media.MediaOffer.source}) and learns the port (latching).

The rule is the one of Kamailio's C{nat_uac_test} flag 8 with the source
checked too: the session description names a private or shared address
(RFC 1918, RFC 6598, RFC 4193, link-local) while the signalling comes
from another address that is not one (a public one). Both private (an
internal PBX relaying its phones' SDP) or both the same is no NAT.
"""

from __future__ import annotations

import ipaddress

__all__ = ["PRIVATE_NETWORKS", "behind_nat", "is_private"]

#: Addresses a party behind NAT may write in SDP.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # RFC 6598 shared address space (carrier-grade NAT)
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_private(host: str) -> bool:
    """Whether C{host} is an IP address in L{PRIVATE_NETWORKS}."""
    address = _address(host)
    return address is not None and any(
        address.version == network.version and address in network
        for network in PRIVATE_NETWORKS
    )


def behind_nat(sdp_host: str | None, source: str) -> bool:
    """
    Whether a party whose SDP names C{sdp_host} (c=; C{None} for none) and
    whose signalling came from C{source} is behind NAT: C{sdp_host} is
    private, C{source} is a different address that is neither private,
    loopback nor unspecified.
    """
    if sdp_host is None or not is_private(sdp_host):
        return False
    theirs = _address(source)
    ours = _address(sdp_host)
    if theirs is None or theirs == ours:
        return False
    return not (is_private(source) or theirs.is_loopback or theirs.is_unspecified)
