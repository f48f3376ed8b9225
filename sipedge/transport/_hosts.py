# -*- test-case-name: sipedge.test.test_transport_locate -*-
"""
The host part of a SIP URI for L{ServerLocator
<sipedge.transport._locate.ServerLocator>}: host name and IP literal syntax
(RFC 3261 25.1, RFC 5118), and DNS names as queried and compared.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from sipedge.error import TransportError

__all__: list[str] = []


#   IPv4address    =  1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
_IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")

#   hostname  =  *( domainlabel "." ) toplabel [ "." ]   (RFC 3261 25.1)
_HOSTNAME_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)


def _bad_uri(reason: str) -> TransportError:
    return TransportError(f"cannot locate a server for this URI: {reason}")


@functools.lru_cache(maxsize=4096)
def _ip_literal(host: str) -> str | None:
    """
    The normalised IP address C{host} is a literal of, without brackets, or
    C{None} for a host name. Memoized: a proxy's next hops repeat (errors
    are not kept: they raise again).

    @raise TransportError: if C{host} looks like an IP literal but is not one.
    """
    if host.startswith("[") or ":" in host:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        # RFC 5118 section 4.9: accept the "x:::1.2.3.4" form of the RFC 3261
        # ABNF as well as the RFC 4291 "x::1.2.3.4".
        try:
            return str(ipaddress.IPv6Address(bare.replace(":::", "::")))
        except ValueError:
            raise _bad_uri(f"bad IPv6 address {host!r}") from None
    if _IPV4_RE.fullmatch(host) is not None:
        octets = [int(part) for part in host.split(".")]
        if any(octet > 255 for octet in octets):
            raise _bad_uri(f"bad IPv4 address {host!r}")
        # int() drops leading zeros, which the URI grammar allows and
        # ipaddress does not.
        return ".".join(str(octet) for octet in octets)
    return None


def _domain(name: str) -> str:
    """A DNS name for queries and comparisons: lower case, no final dot."""
    return name.rstrip(".").lower()
