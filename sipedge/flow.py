# -*- test-case-name: sipedge.test.test_flow -*-
"""
A flow: the transport, local address and remote address a message travelled
over (resip's Tuple, RFC 5626's flow). Responses go back on the request's
flow; a registered phone is reached over the flow it registered from.

A leaf module (as L{sipedge.error} is): it imports nothing else from
sipedge, so every layer, from the transports up to the stages, can share the
value by its public name, C{sipedge.flow.Flow} (also exported by
L{sipedge.transport}).
"""

from __future__ import annotations

import ipaddress

import attrs

__all__ = ["RELIABLE_TRANSPORTS", "Flow", "format_hostport"]

#: Transports that retransmit for us (RFC 3261 17: no Timer A/E/G).
RELIABLE_TRANSPORTS = frozenset(("TCP", "TLS", "SCTP", "WS", "WSS"))


def format_hostport(host: str, port: int) -> str:
    """C{host:port}, with brackets around an IPv6 literal (RFC 5118)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _upper(value: str) -> str:
    return value.upper()


@attrs.frozen
class Flow:
    """
    @ivar transport: C{"UDP"}, C{"TCP"}, C{"TLS"} (the Via token).
    @ivar local_host: our address, an IP literal without brackets.
    @ivar local_port: our port.
    @ivar remote_host: the peer's address, an IP literal without brackets.
    @ivar remote_port: the peer's port.
    """

    transport: str = attrs.field(converter=_upper)
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int

    @property
    def reliable(self) -> bool:
        """True if the transport is reliable (no retransmission timers)."""
        return self.transport in RELIABLE_TRANSPORTS

    @property
    def secure(self) -> bool:
        """True for TLS (and WSS)."""
        return self.transport in ("TLS", "WSS")

    @property
    def remote(self) -> tuple[str, int]:
        return (self.remote_host, self.remote_port)

    @property
    def local(self) -> tuple[str, int]:
        return (self.local_host, self.local_port)

    @property
    def remote_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.remote_host)

    def reply_flow(self) -> Flow:
        """The same flow; named for readability where a response goes back."""
        return self

    def __str__(self) -> str:
        return (
            f"{self.transport} {format_hostport(self.local_host, self.local_port)}"
            f" <-> {format_hostport(self.remote_host, self.remote_port)}"
        )
