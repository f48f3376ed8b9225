# -*- test-case-name: sipedge.test.test_e2e_dualstack -*-
"""
Dual stack end to end: the real C{twistd sipedge} on its defaults (a
domain and users; media anchored with C{[media] anchor = true}; the
listening addresses are the test's loopback ports, here on both
C{127.0.0.1} and C{::1}), with real clients on C{::1} and C{127.0.0.1}.

- SIPp: a whole dialog (INVITE, ACK, a re-INVITE from each party, BYE)
  over C{::1}, and between C{127.0.0.1} and C{::1} both ways, over UDP,
  and over C{::1} over TCP: each party's in-dialog requests reach the
  other along the route set; a call across families is record-routed
  twice (the IPv6 and the IPv4 interface), and each party's SDP names the
  relay in its own family.
- baresip: a call over C{::1}, and a call between a phone on
  C{127.0.0.1} and one on C{::1}, through the relay: each leg's RTP goes
  to and from the relay's ports in its phone's family (captured on
  C{lo}), carries the other phone's tone in PCMU, and each phone hears the
  other (the dominant frequency of its recording).

Nothing in the configuration is tuned for a client: the relay's IPv6
address is its default (C{::1}, the twin of the default C{127.0.0.1}).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sipedge.testing import (
    TONE_A,
    TONE_B,
    BaresipPhone,
    MediaCall,
    MediaCallTestCase,
    SipEdgeProcess,
    Sipp,
    add_user,
    free_port,
    free_rtp_ports,
    require_tool,
)

V4, V6 = "127.0.0.1", "::1"

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = [
    "udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0",
    "udp:[::1]:0", "tcp:[::1]:0", "tls:[::1]:0",
]
[state]
path = "state"
[media]
anchor = true
ports = "{low}-{high}"
"""


def require_ipv6() -> None:
    """Skip where the IPv6 loopback cannot be bound (a host without IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((V6, 0))
    except OSError as e:
        raise SkipTest(f"IPv6 loopback (::1) is not available: {e}") from None


def relay_ports() -> range:
    """A relay port range free on both loopback addresses."""
    return free_rtp_ports(20, also=(V6,))


# -- SIPp: the dialog ----------------------------------------------------------


def _messages(path: Path) -> list[tuple[str, str]]:
    """SIPp's -trace_msg file: (C{"sent"} or C{"received"}, message text), in order."""
    out = []
    for block in re.split(r"^-{20,} .*$", path.read_text(errors="replace"), flags=re.M):
        head, _, message = block.strip().partition("\n\n")
        if "message sent" in head:
            out.append(("sent", message))
        elif "message received" in head:
            out.append(("received", message))
    return out


def _field(message: str, name: str) -> list[str]:
    """Every value of header C{name} in C{message}, comma lists split."""
    values = []
    for line in message.split("\n\n", 1)[0].splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name.lower():
            values += [v.strip() for v in value.split(">,")]
    return [v if v.endswith(">") else v + ">" for v in values if v]


def _start_line(message: str) -> str:
    return message.split("\n", 1)[0].strip()


class SippDialogTests(SynchronousTestCase):
    """A whole dialog between two SIPp agents, across families or over ::1."""

    def setUp(self) -> None:
        require_ipv6()
        require_tool("sipp")
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        ports = relay_ports()
        self.proxy = SipEdgeProcess(self.work, _CONFIG.format(low=ports[0], high=ports[-1]))
        add_user(self.proxy.config_path, "alice", "alice-secret")
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.sipp = Sipp(self.work)
        self.addCleanup(self.sipp.stop_all)

    def proxy_at(self, host: str, transport: str) -> str:
        port = self.proxy.listeners[(transport, host)]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def why(self, output: str = "") -> str:
        errors = "\n".join(
            p.read_text(errors="replace")[-2000:] for p in self.work.glob("*errors.log")
        )
        return f"{output[-1500:]}\n{errors}\n--- sipedge log:\n{self.proxy.log()[-4000:]}"

    def dialog(self, caller: str, callee: str, transport: str = "UDP") -> tuple[list, list]:
        """
        alice (SIPp UAS on C{callee}) registers, a SIPp UAC on C{caller}
        calls her and runs the dialog; both end well. Their messages.
        """
        mode = "u1" if transport == "UDP" else "t1"
        kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
        uas_port = free_port(callee, kind)
        registered = self.sipp.run(
            "register.xml", self.proxy_at(callee, transport), "-s", "alice",
            "-au", "alice", "-ap", "alice-secret", "-auth_uri", "sipedge.test",
            "-key", "domain", "sipedge.test", "-key", "contact_port", uas_port,
            "-key", "expires", 600, "-m", 1, local_ip=callee, transport=mode, timeout=20,
        )
        self.assertEqual(registered.returncode, 0, self.why(registered.stdout))
        uas_log, uac_log = self.work / "uas-messages.log", self.work / "uac-messages.log"
        uas = self.sipp.start(
            "uas_dialog.xml", "-key", "domain", "sipedge.test", "-s", "alice", "-m", 1,
            "-trace_msg", "-message_file", uas_log,
            port=uas_port, local_ip=callee, transport=mode, timeout=30,
        )
        result = self.sipp.run(
            "uac_dialog.xml", self.proxy_at(caller, transport), "-s", "alice",
            "-key", "domain", "sipedge.test", "-m", 1,
            "-trace_msg", "-message_file", uac_log,
            local_ip=caller, transport=mode, timeout=30,
        )
        self.assertEqual(result.returncode, 0, self.why(result.stdout))
        self.assertEqual(uas.wait(30), 0, self.why())
        return _messages(uac_log), _messages(uas_log)

    def check_dialog(self, uac: list, uas: list, caller: str, callee: str, entries: int) -> None:
        """
        What each side saw: the Record-Route entries (C{entries}, the
        caller's family last) in the INVITE the callee got and the 200 the
        caller got; SDP in each party's family naming the relay's address;
        every in-dialog request of the other party arrived, with no Route
        of ours left.
        """
        got = [m for way, m in uas if way == "received"]
        invite = got[0]
        self.assertTrue(_start_line(invite).startswith("INVITE sip:alice@"), invite)
        rr = _field(invite, "Record-Route")
        self.assertEqual(len(rr), entries, rr)
        self.assertIn(f"[{caller}]" if ":" in caller else caller, rr[-1])
        self.assertIn(f"[{callee}]" if ":" in callee else callee, rr[0])
        family = "IP6" if ":" in callee else "IP4"
        self.assertIn(f"c=IN {family} {callee}", invite)
        methods = [_start_line(m).split()[0] for m in got if not m.startswith("SIP/2.0")]
        self.assertEqual(methods, ["INVITE", "ACK", "INVITE", "ACK", "BYE"], methods)
        for message in got:
            if not message.startswith("SIP/2.0"):
                self.assertEqual(_field(message, "Route"), [], message)
        answered = [m for way, m in uac if way == "received" and m.startswith("SIP/2.0 200")]
        self.assertEqual(_field(answered[0], "Record-Route"), rr)
        family = "IP6" if ":" in caller else "IP4"
        self.assertIn(f"c=IN {family} {caller}", answered[0])
        # Each party's own in-dialog requests went along its route set: the
        # callee's in the entries' order, the caller's reversed.
        for way, message in uas:
            if way == "sent" and not message.startswith("SIP/2.0"):
                self.assertEqual(_field(message, "Route"), rr, message)
        for way, message in uac[1:]:
            if way == "sent" and not message.startswith("SIP/2.0"):
                self.assertEqual(_field(message, "Route"), rr[::-1], message)
        incoming = [m for way, m in uac if way == "received" and not m.startswith("SIP/2.0")]
        self.assertEqual([_start_line(m).split()[0] for m in incoming], ["INVITE", "ACK"])
        self.assertEqual(_field(incoming[0], "Route"), [])
        self.assertRegex(self.proxy.log(), r"Media session \S+ allocated")
        self.assertRegex(self.proxy.log(), r"Media session \S+ ended \(released\)")

    def test_ipv6(self) -> None:
        """A dialog over ::1 (UDP): one Record-Route entry, [::1]; IPv6 SDP both ways."""
        uac, uas = self.dialog(V6, V6)
        self.check_dialog(uac, uas, V6, V6, 1)

    def test_ipv4_to_ipv6(self) -> None:
        """
        A caller on 127.0.0.1 calls a phone registered on ::1: two
        Record-Route entries ([::1] on top, 127.0.0.1 below); the callee
        gets the relay's ::1 in its SDP, the caller the relay's 127.0.0.1;
        ACK, both re-INVITEs and BYE cross the families.
        """
        uac, uas = self.dialog(V4, V6)
        self.check_dialog(uac, uas, V4, V6, 2)

    def test_ipv6_to_ipv4(self) -> None:
        """The other way round: a caller on ::1, the callee on 127.0.0.1."""
        uac, uas = self.dialog(V6, V4)
        self.check_dialog(uac, uas, V6, V4, 2)

    def test_ipv6_tcp(self) -> None:
        """A dialog over ::1 over TCP (sipedge connects to the callee's Contact)."""
        uac, uas = self.dialog(V6, V6, "TCP")
        self.check_dialog(uac, uas, V6, V6, 1)


# -- baresip: audio both ways ------------------------------------------------------


class BaresipDualStackTests(MediaCallTestCase):
    """Two baresip phones through the relay, over ::1 and across families."""

    relay_hosts = (V4, V6)

    def setUp(self) -> None:
        require_ipv6()
        super().setUp()
        self.relay_ports = relay_ports()
        self.ports_a = free_rtp_ports(20, avoid=(self.relay_ports,), also=(V6,))
        self.ports_b = free_rtp_ports(20, avoid=(self.relay_ports, self.ports_a), also=(V6,))

    def start_dual(self, a_v6: bool, b_v6: bool) -> tuple[BaresipPhone, BaresipPhone]:
        """sipedge listening on both families; alice and bob, each on ::1 or IPv4 loopback."""
        self.proxy = SipEdgeProcess(self.work, _CONFIG.format(
            low=self.relay_ports[0], high=self.relay_ports[-1],
        ))
        self.addCleanup(self.proxy.stop)
        for user in ("alice", "bob"):
            add_user(self.proxy.config_path, user, f"{user}-secret")
        self.proxy.start()
        a = self.phone("alice", V6 if a_v6 else "127.0.0.2", "udp", TONE_A, False,
                       self.ports_a, proxy_host=V6 if a_v6 else V4,
                       media_address=V6 if a_v6 else V4)
        b = self.phone("bob", V6 if b_v6 else "127.0.0.3", "udp", TONE_B, False,
                       self.ports_b, proxy_host=V6 if b_v6 else V4,
                       media_address=V6 if b_v6 else V4)
        return a, b

    def check_audio(
        self, a: BaresipPhone, b: BaresipPhone, a_host: str, b_host: str
    ) -> MediaCall:
        """A calls B: each leg in its phone's family, tones both ways, each heard."""
        result = self.call(a, b)
        self.assertEqual(result.modes, "passthrough/passthrough")
        a_up, a_down = self.legs(result.datagrams, a, result.ports, relay=a_host)
        b_up, b_down = self.legs(result.datagrams, b, result.ports, relay=b_host)
        self.assert_plain(a_up, TONE_A, "A to relay")
        self.assert_plain(a_down, TONE_B, "relay to A")
        self.assert_plain(b_up, TONE_B, "B to relay")
        self.assert_plain(b_down, TONE_A, "relay to B")
        a.stop()
        b.stop()
        self.assert_heard(a, TONE_B)
        self.assert_heard(b, TONE_A)
        return result

    def test_ipv6_call(self) -> None:
        """
        alice and bob on ::1: the call's media goes through the relay's
        ::1 ports both ways (PCMU with each tone), each phone hears the
        other, the ports close after the hang-up.
        """
        a, b = self.start_dual(True, True)
        self.check_audio(a, b, V6, V6)

    def test_ipv4_calls_ipv6(self) -> None:
        """
        alice on 127.0.0.1 calls bob on ::1: alice's leg on the relay's
        127.0.0.1 ports, bob's on its ::1 ports (each phone's SDP in its
        own family), the tones cross both ways, each phone hears the
        other, and RTP from a third address (127.0.0.4) to the relay's
        IPv4 ports is dropped.
        """
        a, b = self.start_dual(False, True)
        result = self.check_audio(a, b, V4, V6)
        self.assert_attacker_dropped(result)

    def test_ipv6_calls_ipv4(self) -> None:
        """bob on ::1 is the caller this time; alice on 127.0.0.1 answers."""
        a, b = self.start_dual(True, False)
        self.check_audio(a, b, V6, V4)
