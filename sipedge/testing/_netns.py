"""
A home router in network namespaces, for end-to-end tests behind a real
kernel NAT (sipedge's own are in C{sipedge.test.test_e2e_nat}).

Three namespaces, named uniquely per lab so that parallel runs never
collide, joined by two veth pairs:

    phone (10.0.0.2) --- router (10.0.0.1 | 198.18.0.1) --- edge (198.18.0.2, .3, .4)
     LAN, default route        nftables masquerade,          sipedge, the phone
     via the router            random source ports,          outside, a third
                               UDP conntrack timeout short   address; no route
                                                             to the LAN

The router forwards, masquerades what leaves on its WAN side with fully
random source ports, and forgets a UDP mapping after C{udp_timeout}
seconds (its own conntrack sysctls): what a cheap home router does. The
addresses are in namespaces of our own only (198.18.0.0/15 is the
benchmarking range of RFC 2544).

Everything is removed by L{NatLab.destroy} (deleting a namespace deletes
its veth ends and, once its processes are gone, the namespace); processes
started in it are killed there first, by their ids. The names carry the
owner's process id: a lab left by a test run killed before its cleanups
is removed when the next lab is built (L{reap_stale_labs}).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from sipedge.testing._baresip import _REGISTERED, BaresipPhone
from sipedge.testing._tools import require_tool

__all__ = ["NamespacePhone", "NatLab", "require_netns"]

_CLONE_NEWNET = 0x40000000

LAN_PHONE = "10.0.0.2"
LAN_ROUTER = "10.0.0.1"
WAN_ROUTER = "198.18.0.1"
EDGE = "198.18.0.2"
OUTSIDE = "198.18.0.3"
#: A third party on the edge's side: neither phone, nor sipedge.
THIRD = "198.18.0.4"


def _skip(reason: str) -> SkipTest:
    if os.environ.get("SIPEDGE_REQUIRE_TOOLS") == "1":
        raise AssertionError(f"SIPEDGE_REQUIRE_TOOLS=1 but {reason}")
    return SkipTest(reason)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


_LAB_NAME = re.compile(r"se-(\d+)-[0-9a-f]{8}-(phone|router|edge)")


def reap_stale_labs() -> list[str]:
    """
    Remove the namespaces of labs whose owner process is gone (a test run
    killed before its cleanups), and what still runs in them; the names
    removed.
    """
    removed = []
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split(" ", 1)[0]
        match = _LAB_NAME.fullmatch(name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        else:
            continue  # its owner is alive
        for pid in _run("ip", "netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run("ip", "netns", "del", name, check=False)
        removed.append(name)
    return removed


def require_netns() -> None:
    """Skip (fail in CI) unless we may create network namespaces and nftables rules."""
    require_tool("ip")
    require_tool("nft")
    probe = f"sep{uuid.uuid4().hex[:10]}"
    result = _run("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        raise _skip(f"network namespaces are not permitted here: {result.stderr.strip()}")
    try:
        nft = _run("ip", "netns", "exec", probe, "nft", "add", "table", "ip", "probe",
                   check=False)
        if nft.returncode != 0:
            raise _skip(f"nftables is not usable in a namespace: {nft.stderr.strip()}")
    finally:
        _run("ip", "netns", "del", probe, check=False)


class NatLab:
    """
    The three namespaces and their links.

    @ivar phone: the namespace behind the router.
    @ivar router: the router's namespace.
    @ivar edge: the namespace of sipedge and the phone outside.
    """

    def __init__(self, udp_timeout: int = 20) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        # the owner's process id: a lab left by a test run that was killed
        # (no cleanup ran) is removed by the next lab built
        owner = f"se-{os.getpid()}-{tag}"
        self.phone = f"{owner}-phone"
        self.router = f"{owner}-router"
        self.edge = f"{owner}-edge"
        self.udp_timeout = udp_timeout
        self._made: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []

    # -- life ------------------------------------------------------------------

    def build(self) -> None:
        """Create the namespaces, links, addresses, routes and the NAT."""
        reap_stale_labs()
        t = self.tag
        for ns in (self.phone, self.router, self.edge):
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            self.run(ns, "ip", "link", "set", "lo", "up")
        # veth names: at most 15 characters
        lan_a, lan_b, wan_a, wan_b = f"l{t}a", f"l{t}b", f"w{t}a", f"w{t}b"
        _run("ip", "link", "add", lan_a, "netns", self.phone, "type", "veth",
             "peer", "name", lan_b, "netns", self.router)
        _run("ip", "link", "add", wan_a, "netns", self.router, "type", "veth",
             "peer", "name", wan_b, "netns", self.edge)
        self.run(self.phone, "ip", "addr", "add", f"{LAN_PHONE}/24", "dev", lan_a)
        self.run(self.phone, "ip", "link", "set", lan_a, "up")
        self.run(self.phone, "ip", "route", "add", "default", "via", LAN_ROUTER)
        self.run(self.router, "ip", "addr", "add", f"{LAN_ROUTER}/24", "dev", lan_b)
        self.run(self.router, "ip", "addr", "add", f"{WAN_ROUTER}/24", "dev", wan_a)
        self.run(self.router, "ip", "link", "set", lan_b, "up")
        self.run(self.router, "ip", "link", "set", wan_a, "up")
        self.run(self.edge, "ip", "addr", "add", f"{EDGE}/24", "dev", wan_b)
        self.run(self.edge, "ip", "addr", "add", f"{OUTSIDE}/24", "dev", wan_b)
        self.run(self.edge, "ip", "addr", "add", f"{THIRD}/24", "dev", wan_b)
        self.run(self.edge, "ip", "link", "set", wan_b, "up")
        self.run(self.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.run(self.router, "nft", "-f", "-", stdin=(
            "table ip nat {\n"
            " chain postrouting {\n"
            "  type nat hook postrouting priority srcnat; policy accept;\n"
            f'  oifname "{wan_a}" masquerade fully-random\n'
            " }\n"
            "}\n"
            "table ip filter {\n"
            " chain forward {\n"
            "  type filter hook forward priority filter; policy drop;\n"
            f'  iifname "{lan_b}" accept\n'
            "  ct state established,related accept\n"
            " }\n"
            "}\n"
        ))
        self.run(self.router, "sysctl", "-q", "-w",
                 f"net.netfilter.nf_conntrack_udp_timeout={self.udp_timeout}",
                 f"net.netfilter.nf_conntrack_udp_timeout_stream={self.udp_timeout}")

    def destroy(self) -> None:
        """Kill what was started in the lab, then delete every namespace."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        for ns in reversed(self._made):
            # anything still running in our namespace was started by us
            pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", ns, check=False)
        self._made.clear()

    def exists(self) -> list[str]:
        """Which of our namespaces exist now."""
        listed = _run("ip", "netns", "list").stdout
        return [ns for ns in (self.phone, self.router, self.edge) if ns in listed]

    # -- running things in a namespace ------------------------------------------

    @staticmethod
    def prefix(ns: str) -> list[str]:
        """The command prefix that runs a program in C{ns}."""
        return ["ip", "netns", "exec", ns]

    def run(self, ns: str, *argv: str, stdin: str | None = None) -> str:
        """Run C{argv} in C{ns} to completion; its output."""
        result = subprocess.run([*self.prefix(ns), *argv], input=stdin, capture_output=True,
                                text=True, timeout=20)
        if result.returncode != 0:
            raise AssertionError(f"in {ns}: {' '.join(argv)} failed: {result.stderr.strip()}")
        return result.stdout

    def popen(self, ns: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        """Start C{argv} in C{ns}; it is killed by L{destroy}."""
        process: subprocess.Popen[bytes] = subprocess.Popen(
            [*self.prefix(ns), *argv], **kw  # type: ignore[call-overload]
        )
        self._processes.append(process)
        return process

    @contextlib.contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """
        Run this thread in C{ns} for the block: sockets made there stay
        there (how the test talks to a phone's control port behind NAT).
        """
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as own, open(Path("/run/netns") / ns) as there:
            if libc.setns(there.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
            try:
                yield
            finally:
                if libc.setns(own.fileno(), _CLONE_NEWNET) != 0:
                    os.abort()  # never go on in the wrong namespace

    def connect(self, ns: str, address: tuple[str, int], timeout: float = 1.0) -> socket.socket:
        """A TCP connection made from inside C{ns}."""
        with self.inside(ns):
            return socket.create_connection(address, timeout=timeout)

    def udp_socket(self, ns: str, host: str) -> socket.socket:
        """A UDP socket made in C{ns}, bound to C{host} and a free port; the caller closes it."""
        with self.inside(ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((host, 0))
            except OSError:
                s.close()
                raise
            return s

    def free_port(self, ns: str, host: str) -> int:
        """A port free for UDP and TCP on C{host} in C{ns}."""
        with self.inside(ns):
            for _ in range(50):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, 0))
                    port = int(s.getsockname()[1])
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.bind((host, port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port on {host} in {ns}")

    def free_range(self, ns: str, host: str, size: int = 20) -> range:
        """C{size} consecutive UDP ports, from an even one, free on C{host} in C{ns}."""
        with self.inside(ns):
            for _ in range(50):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((host, 0))
                    start = int(s.getsockname()[1]) & ~1
                ports = range(start, start + size)
                if ports[-1] < 65536 and all(_udp_free(host, p) for p in ports):
                    return ports
        raise RuntimeError(f"no {size} free UDP ports on {host} in {ns}")

    def wait_until(self, check: object, timeout: float, what: str) -> None:
        """Poll C{check()} every 0.1 s until true, at most C{timeout} s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout} s")


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class NamespacePhone(BaresipPhone):
    """A L{BaresipPhone} running in a namespace of a L{NatLab}."""

    def __init__(self, lab: NatLab, namespace: str, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.lab = lab
        self.namespace = namespace

    def start(self, timeout: float = 30.0) -> None:
        """Start baresip in the namespace; wait (at most C{timeout} s) until it has registered."""
        sip_port = self.lab.free_port(self.namespace, self.sip_address)
        self.control_port = self.lab.free_port(self.namespace, self.sip_address)
        (self.directory / "config").write_text(self._config(sip_port))
        (self.directory / "accounts").write_text(self.account + "\n")
        with self.log_path.open("wb") as log:
            self.process = self.lab.popen(
                self.namespace, [self.tool, "-f", str(self.directory), "-v"],
                cwd=self.directory, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._control is None:
                try:
                    self._control = self.lab.connect(
                        self.namespace, (self.sip_address, self.control_port)
                    )
                except OSError:
                    self._control = None
            if self._control is not None and _REGISTERED.search(self.log()):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"baresip {self.name} did not register within {timeout} s:\n{self.log()[-3000:]}"
        )
