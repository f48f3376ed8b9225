# -*- test-case-name: sipedge.test.test_e2e_security -*-
"""
End-to-end acceptance tests of the security edge (issue 4, "Show"): the
real C{twistd sipedge} on loopback against the real attack tools of
SIPVicious (Debian's C{sipvicious}: svmap, svwar, svcrack), a UDP flood, and
SIPp for the users who must keep being served.

Addresses, all on loopback: the attacker is 127.0.0.66, users are
127.0.0.1 and 127.0.0.30, a foreign destination is 127.0.0.20 and the
trusted peer of the configuration is 127.0.0.10. sipedge listens on
127.0.0.1, on a port the OS picks; every tool is given that port, and its
own ports come from L{free_port}. Each test starts its own sipedge with its
own state directory and stops every process it starts.

SIPVicious 0.3.3 as Debian ships it needs two repairs to attack from a
chosen address at all; L{sipedge.testing.run_sipvicious} makes them
(an attacker would too).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Response, parse_datagram
from sipedge.testing import (
    SipEdgeProcess,
    Sipp,
    add_user,
    free_port,
    require_tool,
    run_sipvicious,
    sipp_counter,
    sipvicious_table,
    sipvicious_tool,
)

ATTACKER = "127.0.0.66"
USER_IP = "127.0.0.1"
CALLER_IP = "127.0.0.30"
FOREIGN_IP = "127.0.0.20"
DOMAIN = "sipedge.test"

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0"]
trusted = ["127.0.0.10/32"]
[state]
path = "state"
"""


def _request(method: str, uri: str, port: int, *, source: str = ATTACKER,
             user_agent: str | None = "Linphone/5.0",
             from_uri: str = "sip:probe@example.org") -> bytes:
    """A request as an ordinary phone at C{source}:C{port} would send it."""
    branch = uuid.uuid4().hex
    agent = f"User-Agent: {user_agent}\r\n" if user_agent is not None else ""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:{port};branch=z9hG4bK{branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <{from_uri}>;tag={branch[:8]}\r\n"
        f"To: <{uri}>\r\nCall-ID: {branch}@{source}\r\nCSeq: 1 {method}\r\n"
        f"Contact: <sip:probe@{source}:{port}>\r\n{agent}Content-Length: 0\r\n\r\n"
    ).encode()


class _SecurityEndToEnd(SynchronousTestCase):
    """
    Starts sipedge with C{_CONFIG} plus the class's C{extra_config}, with
    SIPp helpers and cleanups.
    """

    extra_config = ""

    def setUp(self) -> None:
        require_tool("sipp")
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.proxy = SipEdgeProcess(self.work, _CONFIG + self.extra_config)
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.port = self.proxy.ports["UDP"]
        self.sipp = Sipp(self.work)
        self.addCleanup(self.sipp.stop_all)

    # -- peers ---------------------------------------------------------------

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def register(self, user: str, password: str, local_ip: str = USER_IP,
                 contact_port: int | None = None) -> int:
        """
        Create C{user} and REGISTER sip:user@sipedge.test from C{local_ip}
        with SIPp, answering the 401; return the contact port.
        """
        contact_port = contact_port or free_port(local_ip)
        add_user(self.proxy.config_path, user, password)
        result = self.sipp.run(
            "register.xml", self.address(), "-s", user,
            "-au", user, "-ap", password, "-auth_uri", DOMAIN,
            "-key", "domain", DOMAIN, "-key", "contact_port", contact_port,
            "-key", "expires", 600, "-m", 1, local_ip=local_ip, timeout=20,
        )
        self.assertEqual(result.returncode, 0, self.why(result))
        return contact_port

    def udp(self, source: str = ATTACKER, timeout: float = 2.0) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((source, 0))
        sock.settimeout(timeout)
        return sock

    def ask(self, sock: socket.socket, data: bytes) -> Response | None:
        """Send C{data} to sipedge; its first response, or None if none in time."""
        sock.sendto(data, ("127.0.0.1", self.port))
        try:
            reply = parse_datagram(sock.recv(65535))
        except TimeoutError:
            return None
        assert isinstance(reply, Response), reply
        return reply

    def options(
        self, sock: socket.socket, user_agent: str | None = "Linphone/5.0"
    ) -> Response | None:
        host, port = sock.getsockname()
        return self.ask(sock, _request(
            "OPTIONS", f"sip:100@{DOMAIN}", port, source=host, user_agent=user_agent))

    # -- sipedge's log -------------------------------------------------------

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.proxy.log().splitlines() if re.search(pattern, line)]

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> str:
        """The first log line matching C{pattern}, waiting at most C{timeout} s."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(pattern)
            if lines:
                return lines[0]
            if time.monotonic() > deadline:
                self.fail(f"no log line matching {pattern!r} in {timeout} s:\n"
                          f"{self.proxy.log()[-4000:]}")
            time.sleep(0.1)

    def why(self, result: object) -> str:
        errors = "\n".join(
            p.read_text(errors="replace")[-2000:] for p in self.work.glob("*errors.log")
        )
        stdout = getattr(result, "stdout", "") or ""
        stderr = getattr(result, "stderr", "") or ""
        return (f"{stdout[-2000:]}\n{stderr[-2000:]}\n{errors}\n"
                f"--- sipedge log:\n{self.proxy.log()[-4000:]}")

    # -- attack tools ----------------------------------------------------------

    def sipvicious(self, name: str, *args: object, timeout: float = 60.0
                   ) -> subprocess.CompletedProcess[str]:
        """Run SIPVicious' C{name} from the attacker's address and its own free port."""
        result = run_sipvicious(
            name, ATTACKER, "-b", ATTACKER, "-P", free_port(ATTACKER), "-p", self.port, "-v",
            *args, "127.0.0.1",
            timeout=timeout, cwd=self.work,
        )
        self.assertNotIn("Traceback", result.stderr, self.why(result))
        return result


class ScannerTests(_SecurityEndToEnd):
    """svmap, the SIPVicious network scanner."""

    def setUp(self) -> None:
        sipvicious_tool("svmap")
        super().setUp()

    def test_svmap_finds_nothing_and_is_banned(self) -> None:
        """
        If svmap scans sipedge, it finds no SIP device: its probe (User-Agent
        friendly-scanner) is not answered, and its source is banned. After
        that nothing from that source is answered either: not a second scan
        that leaves the User-Agent out (svmap -c), not an ordinary OPTIONS.
        Another address is still served.
        """
        first = self.sipvicious("svmap")
        self.assertEqual(sipvicious_table(first.stdout), [], self.why(first))
        self.assertIn("found nothing", first.stderr, self.why(first))
        self.assertIn("Banning 127.0.0.66", self.wait_for_log("Banning 127.0.0.66"))

        second = self.sipvicious("svmap", "-c")
        self.assertEqual(sipvicious_table(second.stdout), [], self.why(second))
        self.assertNotIn("sipedge", second.stdout + second.stderr)

        self.assertIsNone(self.options(self.udp(ATTACKER, timeout=1.5)))
        self.assertIsNotNone(self.options(self.udp(USER_IP, timeout=5)))
        self.assertEqual(len(self.log_lines(r"Banning 127\.0\.0\.66")), 1, self.proxy.log())

    def test_ban_survives_restart(self) -> None:
        """
        If sipedge restarts while a source is banned, the source is still
        banned (bans live in the state directory), and others are served.
        """
        sock = self.udp(ATTACKER, timeout=1)
        self.assertIsNone(self.options(sock, user_agent="friendly-scanner"))
        self.wait_for_log(r"Banning 127\.0\.0\.66")
        self.proxy.stop()
        self.proxy.start()
        self.port = self.proxy.ports["UDP"]
        self.assertIsNone(self.options(sock))
        self.assertIsNotNone(self.options(self.udp(USER_IP, timeout=5)))


class EnumerationTests(_SecurityEndToEnd):
    """svwar, the SIPVicious extension enumerator, against a registered user 200."""

    def setUp(self) -> None:
        sipvicious_tool("svwar")
        super().setUp()
        self.register("200", "two-hundred-secret")

    def assertNotFound(self, result: subprocess.CompletedProcess[str]) -> None:
        extensions = [row[0] for row in sipvicious_table(result.stdout)]
        self.assertNotIn("200", extensions, self.why(result))
        self.assertEqual(extensions, [], self.why(result))

    def test_svwar_banned_as_scanner(self) -> None:
        """
        If svwar enumerates extensions 100-300 (as it comes, User-Agent
        friendly-scanner, INVITE, checks forced), it reports no extension:
        its very first request bans its source, so nothing it sends is
        answered and it stops there.
        """
        result = self.sipvicious("svwar", "-e", "100-300", "-m", "INVITE", "--force",
                                 "--domain", DOMAIN, "--maximumtime", 2)
        self.assertNotFound(result)
        self.assertIn("scanner", self.wait_for_log(r"Banning 127\.0\.0\.66"))
        self.assertEqual(self.log_lines(r"(challenged|Forwarding|\b404\b).*127\.0\.0\.66"), [])

    def test_svwar_without_user_agent_learns_nothing(self) -> None:
        """
        If svwar leaves its User-Agent out (-c, compact headers), every
        extension, unknown or registered, gets the same answer: a request
        whose From is in our domain is challenged whether the user exists or
        not (REGISTER: 401; INVITE, OPTIONS: 407). svwar finds no extension
        and gives up.
        """
        for method in ("REGISTER", "INVITE", "OPTIONS"):
            result = self.sipvicious("svwar", "-c", "-e", "100-300", "-m", method, "--force",
                                     "--domain", DOMAIN, "--maximumtime", 2, timeout=30)
            self.assertNotFound(result)
        self.assertEqual(self.log_lines(r"Digest authentication ok.*127\.0\.0\.66"), [])

    def test_persistent_enumeration_is_banned(self) -> None:
        """
        An enumerator without scanner User-Agent that does not give up on
        uniform answers (INVITE sip:N@sipedge.test from a foreign domain, so
        unchallenged: 404 for an unknown N, a forwarded call for a
        registered one, N = 100, 101, ... at 25 requests a second) is held
        to the unauthenticated budget (5/s, burst 10) and banned before it
        reaches 200, for flooding or by the behaviour monitor (20 different
        users answered 404: an extension scan), whichever comes first: it
        gets no answer about 200.
        """
        sock = self.udp(ATTACKER, timeout=0.005)
        port = sock.getsockname()[1]
        answers: dict[str, set[int]] = {}
        calls: dict[str, str] = {}
        deadline = time.monotonic() + 8.0
        for extension in range(100, 221):
            if time.monotonic() > deadline:
                break
            data = _request("INVITE", f"sip:{extension}@{DOMAIN}", port,
                            from_uri="sip:scanner@example.org")
            call_id = re.search(rb"Call-ID: (\S+)", data)
            assert call_id is not None
            calls[call_id.group(1).decode()] = str(extension)
            sock.sendto(data, ("127.0.0.1", self.port))
            until = time.monotonic() + 0.04
            while time.monotonic() < until:
                try:
                    reply = parse_datagram(sock.recv(65535))
                except TimeoutError:
                    continue
                which = calls.get(reply.headers.get("Call-ID") or "")
                if isinstance(reply, Response) and which is not None:
                    answers.setdefault(which, set()).add(reply.status)
        ban = self.wait_for_log(r"Banning 127\.0\.0\.66")
        self.assertRegex(ban, "flood|distinct-not-found-users")
        self.assertNotIn("200", answers, answers)
        self.assertTrue(answers, "sipedge answered none of the first requests")
        finals = {status for statuses in answers.values() for status in statuses if status >= 200}
        self.assertEqual(finals, {404}, answers)
        self.assertLess(max(int(e) for e in answers), 200, answers)


class EnumerationBehindUsTests(_SecurityEndToEnd):
    """
    Extension scanning through sipedge to a PBX behind it (SIPp at
    127.0.0.20, a static route for our domain, no location stage): the
    PBX's 404s, relayed upstream, count for the behaviour monitor.
    """

    def setUp(self) -> None:
        self.pbx_port = free_port(FOREIGN_IP)
        self.extra_config = f"""
[pipeline]
stages = ["ban-check", "scanner", "flood", "monitor", "filter", "sanity", "max-forwards",
          "loop-detect", "route", "digest-auth", "responsibility", "static-route", "forward"]

[security.monitor]
distinct_not_found_users = 5
distinct_not_found_users_action = "ban"

[[routes]]
match_domain = "{DOMAIN}"
next_hop = "sip:{FOREIGN_IP}:{self.pbx_port}"
"""
        super().setUp()

    def test_pbx_404s_ban_the_scanner(self) -> None:
        """
        If a source without a scanner User-Agent asks for extensions 100,
        101, ... slowly (under the flood budget) and the PBX behind sipedge
        answers each with 404, the 404s reach the source until the fifth
        different extension; then the monitor bans the source
        (distinct-not-found-users) and what it sends is no longer answered.
        Another source is still served.
        """
        pbx = self.sipp.start("uas_404.xml", "-m", 20, port=self.pbx_port,
                              local_ip=FOREIGN_IP, timeout=60)
        sock = self.udp(ATTACKER, timeout=2.0)

        def call(extension: int, via: socket.socket = sock) -> int | None:
            """INVITE sip:<extension>@sipedge.test; the final status, or None."""
            host, local = via.getsockname()
            data = _request("INVITE", f"sip:{extension}@{DOMAIN}", local, source=host,
                            from_uri="sip:scanner@example.org")
            call_id = re.search(rb"Call-ID: (\S+)", data)
            assert call_id is not None
            via.sendto(data, ("127.0.0.1", self.port))
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                try:
                    reply = parse_datagram(via.recv(65535))
                except TimeoutError:
                    return None
                # (Retransmitted 404s of earlier calls, never ACKed, come too.)
                if (
                    isinstance(reply, Response)
                    and reply.status >= 200
                    and reply.headers.get("Call-ID") == call_id.group(1).decode()
                ):
                    return reply.status
            return None

        statuses = [call(extension) for extension in range(100, 105)]
        self.assertEqual(statuses, [404] * 5, self.why(None))
        ban = self.wait_for_log(r"Banning 127\.0\.0\.66")
        self.assertIn("distinct-not-found-users", ban)
        self.assertIsNone(call(105))
        self.assertIsNone(call(106))
        self.assertEqual(call(107, self.udp(CALLER_IP)), 404)
        self.assertEqual(len(self.log_lines(r"Monitor: distinct-not-found-users")), 1)
        self.assertIsNone(pbx.poll(), "the PBX gave up early")


class FilterTests(_SecurityEndToEnd):
    """The request filter of C{[pipeline.options.filter]}, in the running proxy."""

    extra_config = """
[pipeline.options.filter]
methods = ["INVITE", "REGISTER", "BYE", "OPTIONS"]

[[pipeline.options.filter.rules]]
name = "bots"
header = "User-Agent"
pattern = "^evilbot"
ignore_case = true
action = "drop"
offence = true

[[pipeline.options.filter.rules]]
name = "no-messages-from-spam"
header = "From"
pattern = '@spam\\.example>'
status = 603
reason = "Go Away"
"""

    def test_filter(self) -> None:
        """
        A method not allowed gets 405 with an Allow header; a reject rule
        answers with its status and reason; a drop rule with C{offence}
        answers nothing and bans the source, so its next ordinary request
        goes unanswered too. Each is logged with the rule.
        """
        sock = self.udp(USER_IP, timeout=5)
        host, port = sock.getsockname()
        reply = self.ask(sock, _request("MESSAGE", f"sip:100@{DOMAIN}", port, source=host))
        assert reply is not None, self.why(None)
        self.assertEqual(reply.status, 405)
        self.assertEqual(reply.headers.get("Allow"), "ACK, BYE, CANCEL, INVITE, OPTIONS, REGISTER")
        reply = self.ask(sock, _request("OPTIONS", f"sip:100@{DOMAIN}", port, source=host,
                                        from_uri="sip:x@spam.example"))
        assert reply is not None, self.why(None)
        self.assertEqual((reply.status, reply.reason), (603, "Go Away"))

        attacker = self.udp(ATTACKER, timeout=1.5)
        self.assertIsNone(self.options(attacker, user_agent="EvilBot/2"))
        self.assertIn("filter", self.wait_for_log(r"Banning 127\.0\.0\.66"))
        self.assertIsNone(self.options(attacker))
        self.assertEqual(len(self.log_lines(r"filter rule bots matched")), 1, self.proxy.log())


class _Cracking(_SecurityEndToEnd):
    """
    svcrack, the SIPVicious password cracker, against user 200. It runs
    with -c (no User-Agent), so that the scanner list does not stop it
    first.
    """

    password = "two-hundred-secret"

    def setUp(self) -> None:
        sipvicious_tool("svcrack")
        super().setUp()
        self.register("200", self.password)

    def wordlist(self, name: str, position: int | None, length: int = 60) -> Path:
        """A word list of C{length} wrong passwords, the right one at C{position} (from 1)."""
        words = [f"guess{n:03d}" for n in range(1, length + 1)]
        if position is not None:
            words[position - 1] = self.password
        path = self.work / name
        path.write_text("\n".join(words) + "\n")
        return path

    def crack(self, words: Path) -> subprocess.CompletedProcess[str]:
        return self.sipvicious("svcrack", "-c", "-u", "200", "-d", words, "--domain", DOMAIN,
                               "--maximumtime", 2, timeout=60)

    def assertNotCracked(self, result: subprocess.CompletedProcess[str]) -> None:
        self.assertEqual(sipvicious_table(result.stdout), [], self.why(result))
        self.assertNotIn(self.password, result.stdout + result.stderr)
        self.assertEqual(self.log_lines(r"Digest authentication ok for 200 from 127\.0\.0\.66"), [])


class PasswordCrackingTests(_Cracking):
    """
    What stops svcrack: the limit on authentication failures (5 in 60 s by
    default).
    """

    def test_wrong_wordlist(self) -> None:
        """
        If svcrack tries a word list without the password, it finds nothing,
        and its source is banned after 5 failed answers (not 60).
        """
        result = self.crack(self.wordlist("wrong.txt", None, length=30))
        self.assertNotCracked(result)
        ban = self.wait_for_log(r"Banning 127\.0\.0\.66")
        self.assertIn("auth-failure", ban)
        failures = self.log_lines(r"Digest authentication failed for 200 from 127\.0\.0\.66")
        self.assertGreaterEqual(len(failures), 5)
        self.assertLess(len(failures), 10, failures)

    def test_banned_before_reaching_password(self) -> None:
        """
        If svcrack's word list holds the password at position 50, its source
        is banned after 5 failed answers, long before it gets there: the
        password is not found, and the user's own phone (another address)
        still registers.
        """
        result = self.crack(self.wordlist("right-at-50.txt", 50))
        self.assertNotCracked(result)
        self.assertIn("auth-failure", self.wait_for_log(r"Banning 127\.0\.0\.66"))
        failures = self.log_lines(r"Digest authentication failed for 200 from 127\.0\.0\.66")
        self.assertLess(len(failures), 10, failures)
        self.register("200", self.password)


class PasswordCrackingControlTests(_Cracking):
    """
    The same svcrack with the limits out of its way: a check of the test
    harness, not of a defence.
    """

    extra_config = """
[security]
auth_failure_threshold = 1000
account_failures = 1000
unauthenticated_rate = 1000
unauthenticated_burst = 1000
[security.monitor]
auth_failure_ratio_action = "off"
"""

    def test_cracks_without_limits(self) -> None:
        """
        Without the limits on authentication failures (the count per source
        and per account, and the monitor's failure ratio), svcrack (as repaired
        by run_sipvicious) does find the password at position 50 of its list:
        so the tool works against sipedge, and in the tests above it is the
        ban that stops it.
        """
        result = self.crack(self.wordlist("right-at-50.txt", 50))
        self.assertEqual(sipvicious_table(result.stdout), [("200", self.password)],
                         self.why(result))
        self.assertEqual(self.log_lines(r"Banning 127\.0\.0\.66"), [])


class FloodTests(_SecurityEndToEnd):
    """A flood from one address while a registered user keeps calling."""

    # The caller is a load generator: 120 calls in 12 s, more than the
    # monitor's call-rate rule allows one user (30 a minute; logged by
    # default, or restricting his address if configured). That rule is not
    # under test here.
    extra_config = """
[security.monitor]
call_rate_action = "off"
"""

    calls = 120
    rate = 10

    def flood(self, count: int = 10_000, seconds: float = 6.0, per_second: int = 2000) -> int:
        """
        Send up to C{count} unauthenticated INVITEs and OPTIONS (alternately)
        from the attacker, about C{per_second} a second, for at most
        C{seconds}; return how many were sent.
        """
        sock = self.udp(ATTACKER)
        port = sock.getsockname()[1]
        target = ("127.0.0.1", self.port)
        invite = _request("INVITE", f"sip:nobody@{DOMAIN}", port, from_uri="sip:x@example.org")
        options = _request("OPTIONS", f"sip:nobody@{DOMAIN}", port, from_uri="sip:x@example.org")
        start = time.monotonic()
        sent = 0
        while sent < count and time.monotonic() - start < seconds:
            for _ in range(50):
                data = invite if sent % 2 else options
                # A new transaction each time: new branch and Call-ID.
                tag = f"{sent:08d}".encode()
                sock.sendto(data.replace(b"z9hG4bK", b"z9hG4bK" + tag, 1)
                            .replace(b"Call-ID: ", b"Call-ID: " + tag, 1), target)
                sent += 1
            ahead = sent / per_second - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        return sent

    def test_calls_complete_during_flood(self) -> None:
        """
        If 127.0.0.66 floods sipedge with unauthenticated INVITEs and OPTIONS
        (10,000 datagrams, about 2,000 a second), a user registered from
        another address (bob, 127.0.0.30: his REGISTER is authenticated, so
        his address gets the authenticated budget) keeps calling a
        registered phone at 10 calls a second, each INVITE (and BYE)
        answering a 407 challenge, with fewer than 1% failed calls; and the
        flooder is banned for flooding.
        """
        uas_port = self.register("alice", "alice-secret")
        self.register("bob", "bob-secret", local_ip=CALLER_IP)
        self.sipp.start("uas.xml", "-m", self.calls, port=uas_port, timeout=90)
        out = self.work / "caller.out"
        with out.open("wb") as output:
            caller = subprocess.Popen(
                self.sipp.command(
                    "uac_auth.xml", self.address(), "-s", "alice",
                    "-key", "domain", DOMAIN, "-key", "caller", "bob",
                    "-key", "caller_domain", DOMAIN,
                    "-au", "bob", "-ap", "bob-secret", "-auth_uri", f"alice@{DOMAIN}",
                    "-d", 50, "-m", self.calls, "-r", self.rate,
                    local_ip=CALLER_IP, timeout=60,
                ),
                cwd=self.work, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.addCleanup(_stop, caller)
        time.sleep(1.0)
        sent = self.flood()
        self.assertIsNone(caller.poll(), "the calls were over before the flood ended")
        try:
            caller.wait(90)
        except subprocess.TimeoutExpired:
            self.fail("SIPp's calls did not end in 90 s")
        output_text = out.read_text(errors="replace")
        why = self.why(subprocess.CompletedProcess([], caller.returncode, output_text, ""))
        successful = sipp_counter(output_text, "Successful call")
        failed = sipp_counter(output_text, "Failed call")
        self.assertEqual(successful + failed, self.calls, why)
        self.assertLess(failed * 100, self.calls, why)
        self.assertGreater(sent, 5000)
        self.assertIn("flood", self.wait_for_log(r"Banning 127\.0\.0\.66"))
        self.assertEqual(self.log_lines(r"Banning 127\.0\.0\.30"), [])

    def test_trusted_peer_not_limited_nor_banned(self) -> None:
        """
        A trusted peer (127.0.0.10, in sip.trusted) gets the trusted budget:
        200 requests in a row are all answered, where an unknown source gets
        about its burst of 10. A scanner User-Agent from it is dropped, but
        the peer is not banned (the refusal is logged).
        """
        answered = {}
        for source in ("127.0.0.10", "127.0.0.11"):
            sock = self.udp(source, timeout=1)
            port = sock.getsockname()[1]
            for n in range(200):
                sock.sendto(_request("OPTIONS", f"sip:{n}@{DOMAIN}", port, source=source),
                            ("127.0.0.1", self.port))
            finals: set[str | None] = set()
            deadline = time.monotonic() + 10
            while len(finals) < 200 and time.monotonic() < deadline:
                try:
                    reply = parse_datagram(sock.recv(65535))
                except TimeoutError:
                    break
                if isinstance(reply, Response) and reply.status >= 200:
                    finals.add(reply.headers.get("Call-ID"))
            answered[source] = len(finals)
        self.assertEqual(answered["127.0.0.10"], 200, answered)
        self.assertLess(answered["127.0.0.11"], 50, answered)

        trusted = self.udp("127.0.0.10", timeout=1)
        self.assertIsNone(self.options(trusted, user_agent="friendly-scanner"))
        self.wait_for_log(r"Not banning 127\.0\.0\.10")
        self.assertIsNotNone(self.options(trusted))
        self.assertEqual(self.log_lines(r"Banning 127\.0\.0\.10"), [])


class RelayTests(_SecurityEndToEnd):
    """Relaying for our authenticated users."""

    def test_authenticated_user_relayed_to_foreign_destination(self) -> None:
        """
        If one of our users (bob, who authenticates his INVITE when
        challenged with 407) calls a foreign destination,
        sip:x@127.0.0.20:PORT, sipedge relays the call there (record-
        routing it: ACK and BYE go through it too). (An unauthenticated
        source gets 403 instead: test_e2e.PolicyTests.test_no_open_relay.)
        """
        add_user(self.proxy.config_path, "bob", "bob-secret")
        uas_port = free_port(FOREIGN_IP)
        uas = self.sipp.start("uas.xml", "-m", 3, port=uas_port, local_ip=FOREIGN_IP, timeout=60)
        destination = f"{FOREIGN_IP}:{uas_port}"
        result = self.sipp.run(
            "uac_auth.xml", self.address(), "-s", "x",
            "-key", "domain", destination, "-key", "caller", "bob",
            "-key", "caller_domain", DOMAIN,
            "-au", "bob", "-ap", "bob-secret", "-auth_uri", f"x@{destination}",
            "-d", 50, "-m", 3, "-r", 3, local_ip=CALLER_IP, timeout=30,
        )
        self.assertEqual(result.returncode, 0, self.why(result))
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 3, self.why(result))
        self.assertEqual(uas.wait(30), 0, self.why(result))
        self.assertGreaterEqual(len(self.log_lines(r"Digest authentication ok for bob")), 3)
        self.assertEqual(self.log_lines("Refusing to relay"), [])


class BanExpiryTests(_SecurityEndToEnd):
    """Bans end."""

    extra_config = """
[security]
ban_base = 2
"""

    def test_served_again_after_ban(self) -> None:
        """
        If a source is banned for 2 s (security.ban_base = 2), its requests
        are dropped while the ban lasts and answered again once it is over;
        its next ban lasts twice as long.
        """
        sock = self.udp(ATTACKER, timeout=0.25)
        banned_at = time.monotonic()
        self.assertIsNone(self.options(sock, user_agent="friendly-scanner"))
        ban = self.wait_for_log(r"Banning 127\.0\.0\.66")
        self.assertIn("for 2.0 s (ban 1)", ban)
        self.assertIsNone(self.options(sock))
        reply = None
        while reply is None and time.monotonic() - banned_at < 10:
            reply = self.options(sock)
            if reply is None:
                time.sleep(0.25)
        self.assertIsNotNone(reply, "still banned after 10 s:\n" + self.proxy.log()[-3000:])
        self.assertGreater(time.monotonic() - banned_at, 1.5)

        self.assertIsNone(self.options(sock, user_agent="friendly-scanner"))
        self.wait_for_log(r"Banning 127\.0\.0\.66 for 4\.0 s \(ban 2\)")


class LogVolumeTests(_SecurityEndToEnd):
    """What a flood costs in log lines."""

    extra_config = """
[log]
level = "info"
"""

    def test_banned_flood_not_logged_per_packet(self) -> None:
        """
        With [log] level = "info", a flood from a banned source writes no
        line per packet (the drops of banned sources are debug events): the
        log must not become the flood's amplifier.
        """
        sock = self.udp(ATTACKER, timeout=0.5)
        self.assertIsNone(self.options(sock, user_agent="friendly-scanner"))
        self.wait_for_log(r"Banning 127\.0\.0\.66")
        before = len(self.proxy.log().splitlines())
        port = sock.getsockname()[1]
        for n in range(2000):
            sock.sendto(_request("OPTIONS", f"sip:{n}@{DOMAIN}", port), ("127.0.0.1", self.port))
        # Once another address is answered, the flood has been read. (The
        # kernel may have dropped some of it, and the first tries.)
        user = self.udp(USER_IP, timeout=1)
        self.assertTrue(any(self.options(user) is not None for _ in range(10)))
        added = self.proxy.log().splitlines()[before:]
        self.assertLess(len(added), 20, "\n".join(added[:5]))



def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
