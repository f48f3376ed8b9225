# -*- test-case-name: sipedge.test.test_pipeline_local -*-
"""
Who we are: the domains we are responsible for and the addresses we listen
on, so stages can tell a Route or Via that points at us (RFC 3261 16.4) and
a request for one of our users.
"""

from __future__ import annotations

import ipaddress

import attrs

from sipedge.message import SipURI

__all__ = ["DEFAULT_PORTS", "LocalIdentity"]

DEFAULT_PORTS = {"sip": 5060, "sips": 5061}


def _bare(host: str) -> str:
    """
    C{host} without brackets, lower-cased; an IPv6 literal in its
    canonical form, so that every spelling of one address compares equal
    (RFC 5118 4.1, RFC 3261 19.1.4: C{[2001:DB8::1]} and
    C{[2001:db8:0:0:0:0:0:1]} are the same host).
    """
    bare = host.strip("[]").lower()
    if ":" in bare:
        try:
            return str(ipaddress.IPv6Address(bare))
        except ValueError:
            return bare
    return bare


@attrs.frozen
class LocalIdentity:
    """
    @ivar domains: our domains, lower-cased.
    @ivar addresses: C{(transport, host, port)} of each listener, host bare;
        an advertised address counts too. A listener bound to a wildcard
        address must be given as one entry per address of this host (see
        L{sipedge.service}): a wildcard here matches nothing.
    """

    domains: frozenset[str] = attrs.field(
        converter=lambda ds: frozenset(d.lower() for d in ds)
    )
    addresses: frozenset[tuple[str, str, int]] = attrs.field(
        converter=lambda xs: frozenset((t.upper(), _bare(h), p) for t, h, p in xs)
    )

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(host for _, host, _ in self.addresses)

    def is_local_host(self, host: str, port: int | None) -> bool:
        """True if C{host:port} is one of our listeners (any transport)."""
        bare = _bare(host)
        for _, lhost, lport in self.addresses:
            if lhost == bare and (port == lport or (port is None and lport in (5060, 5061))):
                return True
        return False

    def is_local_uri(self, uri: object) -> bool:
        """True if C{uri} is a SIP URI that addresses this proxy itself."""
        if not isinstance(uri, SipURI):
            return False
        if uri.maddr:
            return self.is_local_host(uri.maddr, uri.port)
        return self.is_local_host(uri.host, uri.port)

    def is_our_domain(self, uri: object) -> bool:
        """
        True if C{uri} is a SIP URI for one of our domains, or for one of our
        own listeners (address and port): its user, if any, is ours to look
        up. Our address at another port is somebody else.
        """
        if not isinstance(uri, SipURI):
            return False
        host = _bare(uri.host)
        return host in self.domains or self.is_local_host(host, uri.port)
