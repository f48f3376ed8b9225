# -*- test-case-name: sipedge.test.test_kernel_bans -*-
"""
Tests for L{sipedge.security.KernelBans}: the ban list mirrored into an
nftables set. The scripts are checked with a recording runner; the real
thing runs in a network namespace the test creates (skipped where
namespaces are not permitted, failed under C{SIPEDGE_REQUIRE_TOOLS=1}).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.security import (
    BAN_WATCH_INTERVAL,
    Bans,
    KernelBans,
    Security,
    SecurityConfig,
    run_nft,
)
from sipedge.testing import capture_log, require_netns


class Recorder:
    """A runner that keeps the scripts, and fails when told."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.fail = False

    def __call__(self, script: str) -> None:
        self.scripts.append(script)
        if self.fail:
            raise OSError("Error: Could not process rule: No such file or directory")


class KernelBansScriptTests(SynchronousTestCase):
    """What L{KernelBans} asks nft to do."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.bans = Bans(":memory:", now=0.0)
        self.addCleanup(self.bans.close)
        self.runner = Recorder()
        self.kernel = KernelBans(self.clock, self.bans.list, table="t", run=self.runner)

    def test_start(self) -> None:
        """Start creates the table for our ports, then adds the active bans with their time left."""
        self.bans.ban("203.0.113.5", "test", 0.0, duration=60.0)
        self.bans.ban("2001:db8::5", "test", 0.0)
        self.clock.advance(10.5)
        self.assertTrue(self.kernel.start([5060, 5061, 5060]))
        table, elements = self.runner.scripts
        self.assertIn("delete table inet t\n", table)
        self.assertIn("set ports { type inet_service; elements = { 5060, 5061 }; }", table)
        self.assertIn("ip saddr @banned4 meta l4proto { tcp, udp } th dport @ports drop", table)
        self.assertIn("add element inet t banned4 { 203.0.113.5 timeout 50s }", elements)
        self.assertIn("add element inet t banned6 { 2001:db8::5 timeout", elements)

    def test_changes_batched(self) -> None:
        """Several changes in a moment make one nft run, with the difference only."""
        self.bans.ban("203.0.113.5", "test", 0.0, duration=60.0)
        self.kernel.start([5060])
        del self.runner.scripts[:]
        self.bans.ban("203.0.113.6", "test", 0.0, duration=60.0)
        self.kernel.changed()
        self.bans.unban("203.0.113.5")
        self.kernel.changed()
        self.assertEqual(self.runner.scripts, [])
        self.clock.advance(0.2)
        self.assertEqual(
            self.runner.scripts,
            [
                "delete element inet t banned4 { 203.0.113.5 }\n"
                "add element inet t banned4 { 203.0.113.6 timeout 60s }\n"
            ],
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_expiry_left_to_kernel(self) -> None:
        """A ban that ended is not deleted: the element's timeout removed it."""
        self.bans.ban("203.0.113.5", "test", 0.0, duration=5.0)
        self.kernel.start([5060])
        del self.runner.scripts[:]
        self.clock.advance(6.0)
        self.assertTrue(self.kernel.sync())
        self.assertEqual(self.runner.scripts, [])
        self.assertEqual(self.kernel.installed, {})

    def test_failure_rebuilds(self) -> None:
        """A refused change is logged, and the next sync rebuilds the sets whole."""
        events = capture_log(self)
        self.kernel.start([5060])
        self.runner.fail = True
        self.bans.ban("203.0.113.5", "test", 0.0, duration=60.0)
        self.assertFalse(self.kernel.sync())
        [event] = [e for e in events if e.get("rule") == "kernel-bans"]
        self.assertIn("No such file", event["error"])
        self.runner.fail = False
        self.assertTrue(self.kernel.sync())
        self.assertTrue(self.runner.scripts[-1].startswith("flush set inet t banned4\n"))
        self.assertEqual(self.kernel.failures, 1)

    def test_stop(self) -> None:
        """Stop deletes the table and cancels a pending sync."""
        self.kernel.start([5060])
        self.kernel.changed()
        self.kernel.stop()
        self.assertEqual(self.runner.scripts[-1], "table inet t\ndelete table inet t\n")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.kernel.stop()
        self.assertEqual(len(self.runner.scripts), 2)

    def test_refused_start(self) -> None:
        """If nft refuses the table, kernel bans stay off (logged); nothing else runs."""
        capture_log(self)
        self.runner.fail = True
        self.assertFalse(self.kernel.start([5060]))
        self.kernel.changed()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SecurityKernelTests(SynchronousTestCase):
    """L{Security} feeds its L{KernelBans} with C{kernel_bans = true}."""

    def test_off_by_default(self) -> None:
        """Without C{kernel_bans} there is no kernel mirror."""
        self.assertIsNone(Security(clock=Clock()).kernel)

    def test_fed(self) -> None:
        """Bans, offences that ban, unbans and the purge reach the set; stop removes it."""
        clock = Clock()
        run = Recorder()
        security = Security(SecurityConfig(kernel_bans=True), clock=clock, nft=run)
        self.addCleanup(security.close)
        security.start(ports=[5060])
        security.ban("203.0.113.5", "test")
        clock.advance(0.2)
        self.assertIn("add element inet sipedge banned4 { 203.0.113.5 timeout 60s }",
                      run.scripts[-1])
        security.offence("203.0.113.6", "scanner")
        clock.advance(0.2)
        self.assertIn("203.0.113.6", run.scripts[-1])
        security.unban("203.0.113.5")
        clock.advance(0.2)
        self.assertIn("delete element inet sipedge banned4 { 203.0.113.5 }", run.scripts[-1])
        # A ban made behind its back (another process: sipedge ban) at the next purge.
        security.bans.ban("203.0.113.7", "operator", clock.seconds())
        clock.advance(security.config.purge_interval)
        self.assertIn("203.0.113.7", run.scripts[-1])
        security.stop()
        self.assertEqual(run.scripts[-1], "table inet sipedge\ndelete table inet sipedge\n")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_ban_file_watched(self) -> None:
        """
        A ban another process writes to the ban file reaches the kernel's
        set within L{BAN_WATCH_INTERVAL}, not at the next purge.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        clock = Clock()
        run = Recorder()
        security = Security(SecurityConfig(kernel_bans=True), clock=clock, nft=run,
                            state_dir=directory)
        self.addCleanup(security.close)
        other = Bans.in_state_directory(directory)
        self.addCleanup(other.close)
        security.start(ports=[5060])
        other.ban("203.0.113.8", "operator", clock.seconds())
        clock.advance(BAN_WATCH_INTERVAL)
        self.assertIn("203.0.113.8", run.scripts[-1])
        security.stop()
        self.assertEqual(run.scripts[-1], "table inet sipedge\ndelete table inet sipedge\n")
        self.assertEqual(clock.getDelayedCalls(), [])


_RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(0.2)
end = time.monotonic() + 20
while time.monotonic() < end:
    try:
        data, addr = s.recvfrom(100)
    except socket.timeout:
        continue
    if data == b"quit":
        break
    print(addr[0], data.decode(), flush=True)
"""

_SENDER = """
import socket, sys
port, label = int(sys.argv[1]), sys.argv[2]
for source in ("127.0.0.5", "127.0.0.6"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.sendto(label.encode(), ("127.0.0.1", port))
    s.close()
q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q.bind(("127.0.0.7", 0))
q.sendto(label.encode() + b"-mark", ("127.0.0.1", port))
"""


class KernelBansNamespaceTests(SynchronousTestCase):
    """Real nftables, in a network namespace of the test's own."""

    def setUp(self) -> None:
        require_netns()
        self.ns = f"sekb-{uuid.uuid4().hex[:10]}"
        self.exec = ["ip", "netns", "exec", self.ns]
        subprocess.run(["ip", "netns", "add", self.ns], check=True, timeout=20)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], timeout=20)
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True, timeout=20)

    def nft(self, script: str) -> None:
        """Run an nft script in the namespace."""
        run_nft(script, command=(*self.exec, "nft"))

    def listed(self, *argv: str) -> str:
        result = subprocess.run([*self.exec, "nft", *argv], capture_output=True, text=True,
                                timeout=20)
        return result.stdout + result.stderr

    def test_banned_never_delivered(self) -> None:
        """
        Datagrams from a banned address to our port never reach the socket;
        once the ban is lifted they do; stopping removes the table.
        """
        receiver = subprocess.Popen(
            [*self.exec, sys.executable, "-c", _RECEIVER],
            stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )

        def finish() -> None:
            if receiver.poll() is None:
                receiver.kill()
            receiver.communicate(timeout=10)

        self.addCleanup(finish)
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        clock = Clock()
        bans = Bans(":memory:", now=0.0)
        self.addCleanup(bans.close)
        kernel = KernelBans(clock, bans.list, run=self.nft)
        self.addCleanup(kernel.stop)
        bans.ban("127.0.0.5", "test", 0.0, duration=60.0)
        self.assertTrue(kernel.start([port]))
        self.assertIn("127.0.0.5", self.listed("list", "set", "inet", "sipedge", "banned4"))

        def send(label: str) -> list[str]:
            subprocess.run([*self.exec, sys.executable, "-c", _SENDER, str(port), label],
                           check=True, timeout=20)
            got = []
            for _ in range(10):  # bounded: the mark comes last
                line = receiver.stdout.readline().split()  # type: ignore[union-attr]
                if not line or line[1] == f"{label}-mark":
                    break
                got.append(line[0])
            return got

        self.assertEqual(send("banned"), ["127.0.0.6"])
        bans.unban("127.0.0.5")
        self.assertTrue(kernel.sync())
        self.assertNotIn("127.0.0.5", self.listed("list", "set", "inet", "sipedge", "banned4"))
        self.assertEqual(send("lifted"), ["127.0.0.5", "127.0.0.6"])
        kernel.stop()
        self.assertNotIn("sipedge", self.listed("list", "tables"))
