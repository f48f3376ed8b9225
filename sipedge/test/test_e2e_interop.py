# -*- test-case-name: sipedge.test.test_e2e_interop -*-
"""
The clients people use, on sipedge's defaults: the real C{twistd sipedge}
configured as a new user would (its domain and its users; the listening
addresses and the state directory are the test's loopback ports and work
directory), and baresip 1.0, linphone 5.1 (linphone-daemon), SIPp 3.6 and
sipsak 0.9.8 as Debian ships them. Each registers with digest
authentication, baresip and linphone call each other both ways, and SIPp
calls with digest. Nothing in the configuration is tuned for a client;
C{doc/interop.md} has the matrix these tests hold (SIPVicious' svcrack is
in C{test_e2e_security}).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    BaresipPhone,
    LinphonePhone,
    SipEdgeProcess,
    Sipp,
    add_user,
    free_port,
    free_rtp_ports,
    require_tool,
    sipp_counter,
)

DOMAIN = "sipedge.test"

# What a new user writes: a domain (sipsak resolves the domain of the
# URI it registers, so its test uses one that resolves: localhost).
_DEFAULTS = """
[sip]
domains = ["{domain}"]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
[state]
path = "state"
"""

USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


class _Interop(SynchronousTestCase):
    """sipedge on its defaults with three users, stopped in a cleanup."""

    domain = DOMAIN

    def setUp(self) -> None:
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.proxy = SipEdgeProcess(self.work, _DEFAULTS.format(domain=self.domain))
        for user, password in USERS.items():
            add_user(self.proxy.config_path, user, password)
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.udp = f"127.0.0.1:{self.proxy.ports['UDP']}"

    def baresip(self, user: str, address: str) -> BaresipPhone:
        """A baresip phone for C{user} on C{address}, registered over UDP."""
        account = (
            f"<sip:{user}@{self.domain};transport=udp>;auth_pass={USERS[user]}"
            f';outbound="sip:{self.udp};transport=udp";regint=600;audio_codecs=pcmu'
        )
        phone = BaresipPhone(
            self.work, user, sip_address=address, account=account, tone=440,
            rtp_ports=free_rtp_ports(20),
        )
        self.addCleanup(phone.stop)
        phone.start()
        return phone

    def linphone(self, user: str) -> LinphonePhone:
        """A linphone registered as C{user} over UDP."""
        phone = LinphonePhone(self.work, user, self.domain, self.udp, USERS[user])
        self.addCleanup(phone.stop)
        phone.start()
        return phone


class RegisterTests(_Interop):
    """Every client registers on the defaults."""

    def test_baresip(self) -> None:
        """
        baresip 1.0 registers: it is offered MD5 alone (it gives up on a
        response holding any other algorithm).
        """
        self.baresip("alice", "127.0.0.2")
        self.proxy.wait_log(r"REGISTER \S+ for sip:alice@sipedge\.test: 1 binding")

    def test_linphone(self) -> None:
        """linphone 5.1 (linphone-daemon) registers."""
        self.linphone("bob")
        self.proxy.wait_log(r"REGISTER \S+ for sip:bob@sipedge\.test: 1 binding")

    def test_sipp(self) -> None:
        """SIPp 3.6 registers, answering the challenge with C{-au/-ap}."""
        sipp = Sipp(self.work)
        self.addCleanup(sipp.stop_all)
        result = sipp.run(
            "register.xml", self.udp, "-s", "carol",
            "-au", "carol", "-ap", USERS["carol"], "-auth_uri", DOMAIN,
            "-key", "domain", DOMAIN, "-key", "contact_port", free_port(),
            "-key", "expires", 600, "-m", 1, timeout=20,
        )
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + self.proxy.log()[-3000:])
        self.proxy.wait_log(r"REGISTER \S+ for sip:carol@sipedge\.test: 1 binding")


class SipsakTests(_Interop):
    """sipsak registers on the defaults (its domain must resolve: localhost)."""

    domain = "localhost"

    def test_sipsak(self) -> None:
        """
        sipsak 0.9.8's usrloc mode registers alice (challenged, MD5),
        asking for 600 s (its own default, 15 s, is below the registrar's
        Min-Expires of 60 s, and it does not retry after 423), and removes
        the binding again.
        """
        tool = require_tool("sipsak")
        result = subprocess.run(
            [tool, "-U", "-C", f"sip:alice@127.0.0.1:{free_port()}",
             "-s", "sip:alice@localhost", "-p", self.udp,
             "-u", "alice", "-a", USERS["alice"], "-x", "600", "-i", "-vv"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
            cwd=self.work,
        )
        why = result.stdout[-3000:] + result.stderr[-1000:] + self.proxy.log()[-3000:]
        self.assertEqual(result.returncode, 0, why)
        self.assertIn("All usrloc tests completed successful", result.stdout, why)
        self.proxy.wait_log(r"REGISTER \S+ for sip:alice@localhost: 1 binding")


class CallTests(_Interop):
    """baresip and linphone call each other through sipedge on the defaults."""

    def test_baresip_calls_linphone(self) -> None:
        """
        alice (baresip) calls bob (linphone): the INVITE is challenged,
        answered with MD5, routed to bob's binding; bob answers and alice
        hangs up.
        """
        bob = self.linphone("bob")
        alice = self.baresip("alice", "127.0.0.2")
        alice.command("dial", f"sip:bob@{DOMAIN}")
        alice.wait_event("CALL_ESTABLISHED", timeout=20)
        bob.wait("call-status", "State", "LinphoneCallStreamsRunning")
        alice.command("hangup")
        alice.wait_event("CALL_CLOSED")
        bob.wait("call-status", "Reason", "No current call available.")
        self.assertRegex(self.proxy.log(), r"Digest authentication ok for alice")

    def test_linphone_calls_baresip(self) -> None:
        """
        bob (linphone) calls alice (baresip): challenged, answered, routed;
        alice accepts, the call runs, bob hangs up.
        """
        alice = self.baresip("alice", "127.0.0.2")
        bob = self.linphone("bob")
        call = bob.command(f"call sip:alice@{DOMAIN}")["Id"]
        alice.wait_event("CALL_INCOMING", timeout=20)
        alice.command("accept")
        alice.wait_event("CALL_ESTABLISHED")
        bob.wait(f"call-status {call}", "State", "LinphoneCallStreamsRunning")
        bob.command(f"terminate {call}")
        alice.wait_event("CALL_CLOSED")
        self.assertRegex(self.proxy.log(), r"Digest authentication ok for bob")

    def test_sipp_calls_with_digest(self) -> None:
        """
        A SIPp UAC calls as carol: its INVITE and BYE are challenged and
        answered with digest (C{-au/-ap}), and every call reaches a SIPp
        UAS registered as alice.
        """
        sipp = Sipp(self.work)
        self.addCleanup(sipp.stop_all)
        uas_port = free_port()
        registered = sipp.run(
            "register.xml", self.udp, "-s", "alice",
            "-au", "alice", "-ap", USERS["alice"], "-auth_uri", DOMAIN,
            "-key", "domain", DOMAIN, "-key", "contact_port", uas_port,
            "-key", "expires", 600, "-m", 1, timeout=20,
        )
        self.assertEqual(registered.returncode, 0, registered.stdout[-2000:])
        uas = sipp.start("uas.xml", "-m", 3, port=uas_port, timeout=60)
        result = sipp.run(
            "uac_auth.xml", self.udp, "-s", "alice",
            "-key", "domain", DOMAIN, "-key", "caller", "carol", "-key", "caller_domain", DOMAIN,
            "-au", "carol", "-ap", USERS["carol"], "-auth_uri", f"alice@{DOMAIN}",
            "-d", 50, "-m", 3, "-r", 3, timeout=30,
        )
        why = result.stdout[-2000:] + self.proxy.log()[-3000:]
        self.assertEqual(result.returncode, 0, why)
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 3, why)
        self.assertEqual(uas.wait(30), 0, why)
