# -*- test-case-name: sipedge.test.test_e2e -*-
"""
Real tools for interop labs: find a program (skip the test without it, or
fail under C{SIPEDGE_REQUIRE_TOOLS=1}, as CI sets), and free loopback ports
chosen by the OS.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from twisted.trial.unittest import SkipTest

import sipedge

__all__ = [
    "ROOT", "family_of_host", "free_port", "free_port_range", "require_tool", "tcp_listening",
]

#: The directory that holds the C{sipedge} package (the checkout, in development).
ROOT = Path(sipedge.__file__).resolve().parent.parent


def require_tool(name: str) -> str:
    """The path of program C{name}; skip (or fail, in CI) without it."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install {_PACKAGES.get(name, name)})"
        if os.environ.get("SIPEDGE_REQUIRE_TOOLS") == "1":
            raise AssertionError(f"SIPEDGE_REQUIRE_TOOLS=1 but {reason}")
        raise SkipTest(reason)
    return path


#: The Debian package of each tool, for the skip reason.
_PACKAGES = {
    "sipp": "sip-tester", "sipsak": "sipsak", "baresip": "baresip-core", "tcpdump": "tcpdump",
    "sslscan": "sslscan", "sngrep": "sngrep", "tshark": "tshark", "prometheus": "prometheus",
    "linphone-daemon": "linphone-cli",
    "svmap": "sipvicious", "svwar": "sipvicious", "svcrack": "sipvicious",
    "sipvicious_svmap": "sipvicious", "sipvicious_svwar": "sipvicious",
    "sipvicious_svcrack": "sipvicious",
}


def family_of_host(host: str) -> int:
    """C{AF_INET6} for an IPv6 literal (C{::1}), else C{AF_INET}."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_DGRAM) -> int:
    """A port the OS says is free now on C{host} (IPv4 or IPv6) for both UDP and TCP."""
    family = family_of_host(host)
    for _ in range(50):
        with socket.socket(family, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(family, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        return int(port)
    raise RuntimeError("no free port found")


def udp_ports_free(host: str, start: int, count: int) -> bool:
    """Whether the C{count} UDP ports from C{start} on C{host} can all be bound now."""
    family = family_of_host(host)
    sockets: list[socket.socket] = []
    try:
        for port in range(start, start + count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind((host, port))
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()
    return True


def tcp_listening(port: int) -> bool:
    """
    Whether some socket of this network namespace listens on TCP C{port}
    (any address), read from C{/proc/net/tcp} and C{tcp6}: nothing
    connects to it, so a peer is not disturbed by the question.
    """
    wanted = f":{port:04X}"
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":
                return True
    return False


def free_port_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """
    C{count} consecutive UDP ports (from an even one) that are free now on
    C{host}, for a relay's port range.
    """
    for _ in range(50):
        start = free_port(host)
        start -= start % 2
        if udp_ports_free(host, start, count):
            return start, start + count - 1
    raise RuntimeError(f"no {count} free consecutive ports found")
