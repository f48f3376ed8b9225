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

    #: host -> the ports we listen on there (any transport), and the
    #: hosts where a URI without a port (5060 or 5061) is us: asked of
    #: every Via and Route, so kept ready.
    _ports: dict[str, frozenset[int]] = attrs.field(init=False, eq=False, repr=False)
    _portless: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        ports: dict[str, set[int]] = {}
        for _, host, port in self.addresses:
            ports.setdefault(host, set()).add(port)
        object.__setattr__(self, "_ports", {h: frozenset(p) for h, p in ports.items()})
        object.__setattr__(
            self, "_portless", frozenset(h for h, p in ports.items() if p & {5060, 5061})
        )

    @property
    def hosts(self) -> frozenset[str]:
        return frozenset(host for _, host, _ in self.addresses)

    def is_local_host(self, host: str, port: int | None) -> bool:
        """True if C{host:port} is one of our listeners (any transport)."""
        bare = _bare(host)
        if port is None:
            return bare in self._portless
        ports = self._ports.get(bare)
        return ports is not None and port in ports

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
