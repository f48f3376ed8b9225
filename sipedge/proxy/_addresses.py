# -*- test-case-name: sipedge.test.test_proxy_addresses -*-
"""
Our own address on each transport, for the Via and Record-Route values of
what we send: forwarded requests, CANCELs, stateless ACKs and the requests
the proxy originates (L{sipedge.proxy._originate}).
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["LocalAddresses", "family_of"]


def family_of(host: str) -> int:
    """C{AF_INET6} for an IPv6 literal, else C{AF_INET}."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class LocalAddresses:
    """
    The host and port we put in Via and Record-Route.

    @ivar transports: the L{ITransportManager} whose listeners we name (may
        be set after construction, as for the proxy core).
    @param advertise: C{(host, port or None)} configured to be advertised
        instead of our listeners' addresses (behind a static NAT).
    @param wildcard_hosts: per address family, this host's primary address,
        for a listener bound to a wildcard address.
    """

    def __init__(
        self,
        transports: Any = None,
        advertise: tuple[str, int | None] | None = None,
        wildcard_hosts: dict[int, str] | None = None,
    ) -> None:
        self.transports = transports
        self._advertise = advertise
        self._wildcard_hosts = wildcard_hosts or {}

    def hostport(self, transport: str, family: int) -> tuple[str, int]:
        """
        The host and port for our Via and Record-Route on C{transport}
        toward an address of C{family}: the advertised address if one is
        configured, else our listener's, with a wildcard bind replaced by
        this host's primary address.

        @raise sipedge.error.TransportError: if we have no listener of that
            transport and family.
        """
        host, port = self.transports.local_hostport(transport, family)
        if self._advertise is not None:
            return self._advertise[0], self._advertise[1] or port
        if host in ("0.0.0.0", "::"):
            default = "127.0.0.1" if family == socket.AF_INET else "::1"
            host = self._wildcard_hosts.get(family, default)
        return host, port

    def hostport_toward(self, transport: str, remote_host: str) -> tuple[str, int]:
        """L{hostport} for a message sent over C{transport} to C{remote_host}."""
        return self.hostport(transport, family_of(remote_host))
