# -*- test-case-name: sipedge.test.test_media_nat -*-
"""
Whether the relay latches on a party's media (sans-IO: no Twisted here),
from the proxy's NAT detection of the message that carried the party's
offer or answer (L{sipedge.message.detect_nat}: one detection for the
registrar, the proxy and the media). Used by C{[media] nat = "auto"}: the
relay then takes that party's media from the address its signalling came
from (L{sipedge.media.MediaOffer.source}) and learns the port (latching).

A party detected behind NAT is latched on when its media can only come
from where its signalling does:

 - its SDP names a private or shared address (RFC 1918, RFC 6598, RFC
   4193, link-local) that is not the source: nothing can reach it there
   (Kamailio's C{nat_uac_test} flag 8), or
 - its SDP names the source's own address: the port may be one the
   router changed.

Not when the SDP names another public address (the party's media lives
elsewhere: a media server of a PBX), and not when the source is itself
private, loopback or unspecified (an internal PBX relaying its phones'
SDP is reached directly).
"""

from __future__ import annotations

import ipaddress

from sipedge.message import NatVerdict, is_private_address

__all__ = ["nat_source"]


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def nat_source(verdict: NatVerdict | None, sdp_host: str | None) -> str | None:
    """
    The address to latch a party's media on: the source of the message
    judged by C{verdict} when it found the party behind NAT and its SDP's
    connection address C{sdp_host} (C{None}: none) allows it (see the
    module docstring); else C{None}: the SDP's exact addresses.
    """
    if verdict is None or not verdict.behind_nat or sdp_host is None:
        return None
    source = verdict.source.remote_host
    theirs, named = _address(source), _address(sdp_host)
    if theirs is None or named is None or named.is_unspecified:
        return None
    if is_private_address(source) or theirs.is_loopback or theirs.is_unspecified:
        return None
    if named != theirs and not is_private_address(sdp_host):
        return None
    return source
