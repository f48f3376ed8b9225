# -*- test-case-name: sipedge.test.test_transport, sipedge.test.test_transport_integration -*-
"""
Socket-level helpers of the L{TransportManager
<sipedge.transport._manager.TransportManager>}: the address family of a host,
an IP literal in the form sockets report it, and a large receive buffer for
UDP listening sockets.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Any

from sipedge.error import TransportError

__all__ = ["UDP_RECEIVE_BUFFER"]


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@lru_cache(maxsize=4096)  # every flow_to; errors are not cached
def _ip_literal(host: str) -> str:
    """
    C{host} as an IP literal the way sockets report it (no brackets,
    compressed IPv6).

    @raise TransportError: if C{host} is not an IP literal.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare).compressed
    except ValueError:
        raise TransportError(f"not an IP address: {host!r} (resolve it first)") from None


#: Bytes of kernel receive buffer we ask for on UDP sockets: enough to ride
#: out a pause of a few hundred milliseconds at a few thousand packets a
#: second (the kernel caps it at net.core.rmem_max unless we may force it).
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def _enlarge_receive_buffer(port: Any) -> None:
    """Ask for a large receive buffer on a listening UDP port's socket."""
    handle = getattr(port, "getHandle", None)
    sock = handle() if handle is not None else None
    if not isinstance(sock, socket.socket):
        return  # a fake port in tests
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:
            continue
