# -*- test-case-name: sipedge.test.test_e2e_nat -*-
"""
End-to-end tests behind a real kernel NAT: a baresip phone (bob) in a
namespace behind a "home router" namespace that masquerades with random
source ports and forgets UDP mappings after 20 seconds; C{twistd sipedge}
(with the defaults a new user has: a domain and users) and a second
baresip phone (alice) outside, in the edge namespace (see
L{sipedge.test._netns}).

Bob's REGISTER, INVITE and answers name his private address (10.0.0.2) in
Via, Contact and SDP; nothing on the edge side has a route to it. Every
request that reaches him must come over the router's mapping of the flow
he registered or called from.

Skipped where network namespaces cannot be created (not root, or in a
container without the capability); failed then under
C{SIPEDGE_REQUIRE_TOOLS=1}. Every namespace, veth and process is removed
afterwards, also on failure.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    NAT_EDGE,
    NAT_LAN_PHONE,
    NAT_OUTSIDE,
    NAT_THIRD,
    NamespacePhone,
    NatLab,
    SipEdgeProcess,
    add_user,
    dominant_frequency,
    module_path,
    read_wav,
    reap_stale_labs,
    require_netns,
    require_tool,
    tone_share,
)

_MEDIA = f"""
[media]
anchor = true
address = "{NAT_EDGE}"
"""

#: RTP packets the third address sends to each relay port, twice a call.
THIRD_PACKETS = 10
THIRD_SSRC = 0x0BADBEEF
_ALLOCATED = re.compile(r"Media session (\S+) allocated: (\S+), ports \(([\d, ]+)\)")

#: The router's UDP timeout, and a wait that outlasts it.
UDP_TIMEOUT = 20
PAST_TIMEOUT = UDP_TIMEOUT + 8

_CONFIG = f"""
[sip]
domains = ["sipedge.test"]
listen = ["udp:{NAT_EDGE}:0", "tcp:{NAT_EDGE}:0", "tls:{NAT_EDGE}:0"]
[state]
path = "state"
"""


class _BehindNat(SynchronousTestCase):
    """sipedge on the edge, bob behind the NAT, alice outside; all removed after."""

    #: How bob reaches sipedge.
    bob_transport = "udp"
    #: sipedge's configuration.
    config = _CONFIG
    #: Where alice's media comes from (her SDP's address).
    alice_media = NAT_OUTSIDE

    def setUp(self) -> None:
        require_tool("baresip")
        module_path()
        require_netns()
        self.lab = NatLab(udp_timeout=UDP_TIMEOUT)
        self.addCleanup(self.assert_removed)
        self.addCleanup(self.lab.destroy)
        self.lab.build()
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.proxy = SipEdgeProcess(self.work, self.config)
        self.proxy.command_prefix = tuple(self.lab.prefix(self.lab.edge))
        for user in ("alice", "bob"):
            add_user(self.proxy.config_path, user, f"{user}-secret")
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.bob = self.phone("bob", self.lab.phone, NAT_LAN_PHONE, 1000, self.bob_transport)
        self.alice = self.phone("alice", self.lab.edge, NAT_OUTSIDE, 440, media=self.alice_media)

    def assert_removed(self) -> None:
        """No namespace of the lab is left."""
        self.assertEqual(self.lab.exists(), [])

    def phone(
        self, user: str, namespace: str, address: str, tone: int, transport: str = "udp",
        media: str | None = None,
    ) -> NamespacePhone:
        port = self.proxy.ports[transport.upper()]
        account = (
            f"<sip:{user}@sipedge.test;transport={transport}>;auth_pass={user}-secret"
            f';outbound="sip:{NAT_EDGE}:{port};transport={transport}"'
            ";regint=600;audio_codecs=pcmu"
        )
        phone = NamespacePhone(
            self.lab, namespace, self.work, user, sip_address=address, account=account,
            tone=tone, rtp_ports=self.lab.free_range(namespace, media or address),
            media_address=media or address,
        )
        self.addCleanup(phone.stop)
        phone.start()
        return phone

    def answered_call(self) -> None:
        """Alice calls Bob behind the NAT; Bob answers."""
        self.alice.command("dial", "sip:bob@sipedge.test")
        self.bob.wait_event("CALL_INCOMING")
        self.bob.command("accept")
        self.alice.wait_event("CALL_ESTABLISHED")
        self.bob.wait_event("CALL_ESTABLISHED")

    def assert_nothing_to_private(self) -> None:
        """sipedge never sent to, nor connected to, Bob's private address."""
        self.assertNotRegex(
            self.proxy.log(), rf"(Cannot send to|Connection) [^\n]*<-> {re.escape(NAT_LAN_PHONE)}:"
        )

    def connection_gone(self) -> None:
        """
        Bob dies without unregistering: his connection is gone, and his
        registration with it; a call to him is answered 480 at once, with
        no connect to his private address.
        """
        assert self.bob.process is not None
        self.bob.process.kill()
        self.bob.process.wait(10)
        transport = self.bob_transport.upper()
        self.lab.wait_until(
            lambda: re.search(rf"Connection {transport} \S+ <-> 198\.18\.0\.1:\d+ closed",
                              self.proxy.log()) is not None,
            10, "sipedge did not see the connection end",
        )
        # The binding's removal is logged after the connection's end, not
        # necessarily in the same turn of the loop: wait for it too.
        self.lab.wait_until(
            lambda: re.search(
                r"Flow \S+ \S+ <-> 198\.18\.0\.1:\d+ of \S+ of sip:bob@sipedge\.test is dead: "
                r"removing the binding, its connection is gone",
                self.proxy.log(),
            ) is not None,
            10, "sipedge did not remove the dead flow's binding",
        )
        started = time.monotonic()
        self.alice.command("dial", "sip:bob@sipedge.test")
        closed = self.alice.wait_event("CALL_CLOSED", timeout=10)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn("480", str(closed))
        self.assert_nothing_to_private()


class BehindNatTests(_BehindNat):
    """A UDP phone behind a kernel NAT, called and calling through sipedge."""

    def test_registered_behind_nat(self) -> None:
        """
        Bob's registration names his private address; sipedge grants a
        phone behind NAT a short interval (120 s instead of the 600 asked).
        """
        log = self.proxy.log()
        self.assertRegex(
            log,
            r"for sip:bob@sipedge\.test: behind NAT at 198\.18\.0\.1:\d+ \(via-address,"
            r".*contact-private.*\); at most 120 s",
        )
        self.assertIn("sip:bob@sipedge.test: 1 bindings", log)
        self.assertNotRegex(log, r"for sip:alice@sipedge\.test: behind NAT")

    def test_bye_from_outside(self) -> None:
        """
        An incoming call is answered behind the NAT; when the outside party
        hangs up, the BYE reaches the phone behind the NAT.
        """
        self.answered_call()
        self.alice.command("hangup")
        self.alice.wait_event("CALL_CLOSED")
        self.bob.wait_event("CALL_CLOSED", timeout=10)
        self.assert_nothing_to_private()

    def test_phone_behind_nat_hangs_up(self) -> None:
        """The phone behind the NAT hangs up: the BYE reaches the outside party."""
        self.answered_call()
        self.bob.command("hangup")
        self.bob.wait_event("CALL_CLOSED")
        self.alice.wait_event("CALL_CLOSED", timeout=10)

    def test_call_from_behind_nat(self) -> None:
        """
        The phone behind the NAT calls out; the callee answers and hangs up:
        its BYE reaches the caller behind the NAT (whose Contact is private).
        """
        self.bob.command("dial", "sip:alice@sipedge.test")
        self.alice.wait_event("CALL_INCOMING")
        self.alice.command("accept")
        self.bob.wait_event("CALL_ESTABLISHED")
        self.alice.command("hangup")
        self.bob.wait_event("CALL_CLOSED", timeout=10)
        self.assert_nothing_to_private()

    def test_call_outlasts_router_timeout(self) -> None:
        """
        A call longer than the router's UDP timeout: sipedge's keepalives
        hold the signalling mapping, and the outside party's BYE still
        reaches the phone behind the NAT.
        """
        self.answered_call()
        time.sleep(PAST_TIMEOUT)
        self.alice.command("hangup")
        self.bob.wait_event("CALL_CLOSED", timeout=10)

    def test_call_after_quiet_period(self) -> None:
        """
        After a quiet period longer than the router's UDP timeout, an
        incoming call still reaches the phone behind the NAT.
        """
        time.sleep(PAST_TIMEOUT)
        self.answered_call()
        self.alice.command("hangup")
        self.bob.wait_event("CALL_CLOSED", timeout=10)

    def test_hold_and_resume(self) -> None:
        """
        Hold and resume from each side: the outside party's re-INVITEs
        reach the phone behind the NAT, and the phone's reach the outside
        party; the call goes on and ends with a BYE reaching the phone.
        """
        self.answered_call()
        for phone, other in ((self.alice, self.bob), (self.bob, self.alice)):
            for command in ("hold", "resume"):
                seen = other.log().count("got re-INVITE")
                phone.command(command)
                self.lab.wait_until(
                    lambda other=other, seen=seen: other.log().count("got re-INVITE") > seen,
                    10, f"{phone.name} {command}: no re-INVITE reached {other.name}",
                )
        self.alice.command("hangup")
        self.bob.wait_event("CALL_CLOSED", timeout=10)


class TcpBehindNatTests(_BehindNat):
    """A TCP phone behind a kernel NAT: reached only over its own connection."""

    bob_transport = "tcp"

    def test_bye_from_outside(self) -> None:
        """
        An incoming call reaches the phone over its connection through the
        NAT; the outside party's BYE too.
        """
        self.answered_call()
        self.alice.command("hangup")
        self.bob.wait_event("CALL_CLOSED", timeout=10)
        self.assert_nothing_to_private()

    def test_connection_gone(self) -> None:
        """
        When the phone's connection is gone (the phone died without
        unregistering), a call to it is answered 480 at once: no connect
        to its private address, no timeout.
        """
        self.connection_gone()


class TlsBehindNatTests(TcpBehindNatTests):
    """A TLS phone behind a kernel NAT: reached only over its own connection."""

    bob_transport = "tls"


class MediaBehindNatTests(_BehindNat):
    """
    C{[media] anchor = true} (and the relay's address, nothing else): calls
    between the phone behind the NAT and the one outside carry their media
    through sipedge's relay, which learns the phone's public address and
    port (latching, C{[media] nat = "auto"}, the default); a third address
    sends RTP to the relay's ports from the allocation on.

    Alice is in sipedge's namespace: her media comes from sipedge's
    address (the kernel's source for a local destination), which her SDP
    names.
    """

    config = _CONFIG + _MEDIA
    alice_media = NAT_EDGE

    def setUp(self) -> None:
        super().setUp()
        self.third = self.lab.udp_socket(self.lab.edge, NAT_THIRD)
        self.addCleanup(self.third.close)
        self.third.setblocking(False)

    def attack(self, ports: list[int]) -> int:
        """RTP from the third address to each of the relay's C{ports}; how many sent."""
        for sequence in range(THIRD_PACKETS):
            header = struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, THIRD_SSRC)
            for port in ports:
                self.third.sendto(header + b"\xaa" * 160, (NAT_EDGE, port))
            time.sleep(0.02)
        return THIRD_PACKETS * len(ports)

    def third_received(self) -> int:
        """Datagrams the third address received (the relay must send it none)."""
        count = 0
        for _ in range(10_000):
            try:
                self.third.recv(2048)
            except BlockingIOError:
                return count
            count += 1
        return count

    def recordings(self, phone: NamespacePhone) -> set[Path]:
        return set(phone.directory.glob("dump-*-dec.wav"))

    def assert_heard(self, phone: NamespacePhone, before: set[Path], tone: int) -> None:
        """C{phone}'s recording of the last call: C{tone} dominates a second of its middle."""
        new = sorted(self.recordings(phone) - before)
        self.assertEqual(len(new), 1, f"{phone.name} recorded {new}:\n{phone.log()[-2000:]}")
        rate, samples = read_wav(new[0])
        self.assertGreater(len(samples), 2 * rate, f"{phone.name}: {len(samples)} samples")
        middle = samples[len(samples) // 2 - rate // 2:][:rate]
        self.assertEqual(dominant_frequency(middle, rate), tone, phone.name)
        self.assertGreater(tone_share(middle, tone, rate), 0.5, phone.name)

    def media_call(self, caller: NamespacePhone, callee: NamespacePhone, callee_aor: str) -> None:
        """
        C{caller} calls C{callee}: the third address sends to the relay's
        ports as soon as they are allocated (before the answer, while the
        relay may learn) and again during the call; media for 3 s; the
        caller hangs up. Each phone heard the other's tone, the relay
        dropped every packet of the third address and sent it nothing.
        """
        for phone in (caller, callee):
            phone.events.clear()
        recorded = {p.name: self.recordings(p) for p in (caller, callee)}
        sessions = len(_ALLOCATED.findall(self.proxy.log()))
        caller.command("dial", callee_aor)
        self.lab.wait_until(
            lambda: len(_ALLOCATED.findall(self.proxy.log())) > sessions, 10,
            "no relay session allocated",
        )
        key, _, ports_text = _ALLOCATED.findall(self.proxy.log())[sessions]
        ports = [int(p) for p in ports_text.split(",")]
        sent = self.attack(ports)
        callee.wait_event("CALL_INCOMING")
        callee.command("accept")
        caller.wait_event("CALL_ESTABLISHED")
        callee.wait_event("CALL_ESTABLISHED")
        time.sleep(1.5)
        sent += self.attack(ports)
        time.sleep(1.5)
        caller.command("hangup")
        caller.wait_event("CALL_CLOSED")
        callee.wait_event("CALL_CLOSED", timeout=10)
        pattern = re.compile(rf"Media session {re.escape(key)} ended \(([\w-]+)\): (.*)")
        self.lab.wait_until(lambda: pattern.search(self.proxy.log()), 10, "session not ended")
        match = pattern.search(self.proxy.log())
        assert match is not None
        ended = match.group(2)
        counts = re.search(r"(\d+) packets A to B, (\d+) B to A", ended)
        self.assertIsNotNone(counts, ended)
        assert counts is not None
        a_to_b, b_to_a = int(counts.group(1)), int(counts.group(2))
        self.assertGreater(a_to_b, 100, ended)
        self.assertGreater(b_to_a, 100, ended)
        foreign = re.search(r"foreign-source (\d+)", ended)
        self.assertIsNotNone(foreign, ended)
        assert foreign is not None
        self.assertGreaterEqual(int(foreign.group(1)), sent, ended)
        self.assertEqual(self.third_received(), 0)
        for phone in (caller, callee):
            phone.stop()  # sndfile completes the recording
        self.assert_heard(callee, recorded[callee.name], caller.tone)
        self.assert_heard(caller, recorded[caller.name], callee.tone)

    def test_caller_behind_nat(self) -> None:
        """
        The phone behind the NAT calls out through the relay: its media
        (from the router's address and a port of its choice, its SDP naming
        its private address) is learnt and relayed both ways; the tones
        decode on both sides; the third address's packets are neither
        relayed nor learnt, and it receives nothing.
        """
        self.media_call(self.bob, self.alice, "sip:alice@sipedge.test")

    def test_callee_behind_nat(self) -> None:
        """
        The phone outside calls the phone behind the NAT, which answers in
        its 200 (its SDP naming its private address): the relay takes its
        media from the address that 200 came from (the router's) and learns
        the port; the tones decode on both sides; the third address, which
        sends from the allocation on (before the answer), is never learnt.
        """
        self.media_call(self.alice, self.bob, "sip:bob@sipedge.test")


class LabTests(SynchronousTestCase):
    """The lab itself: nothing of it is left behind."""

    def test_stale_lab_reaped(self) -> None:
        """
        A lab namespace whose owner process is gone (a killed test run) is
        removed when the next lab is built; one whose owner lives is not.
        """
        require_netns()
        child = subprocess.Popen(["true"])
        child.wait()
        tag = uuid.uuid4().hex[:8]
        stale = f"se-{child.pid}-{tag}-edge"  # its owner is gone
        live = f"se-{os.getpid()}-{tag}-edge"
        for name in (stale, live):
            subprocess.run(["ip", "netns", "add", name], check=True)
            self.addCleanup(subprocess.run, ["ip", "netns", "del", name], check=False,
                            capture_output=True)
        reap_stale_labs()  # (a parallel run's lab may have reaped it first)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        self.assertNotIn(stale, listed)
        self.assertIn(live, listed)
