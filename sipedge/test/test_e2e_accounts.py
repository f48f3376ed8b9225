# -*- test-case-name: sipedge.test.test_e2e_accounts -*-
"""
End-to-end: distributed password guessing is stopped per account (issue
12, item 4). The real C{twistd sipedge} on loopback, configured as a new
user would (a domain, a user, a state directory), against a small scripted
UAC that registers from 101 loopback addresses: the user's own phone at
127.0.0.1 and 100 guessing sources, 127.0.0.101 to 127.0.0.200, each
trying 3 wrong passwords.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.auth import ha1, response
from sipedge.message import DigestCredentials, Response, parse_auth_header, parse_datagram
from sipedge.testing import SipEdgeProcess, add_user

DOMAIN = "sipedge.test"
USER = "victim"
PASSWORD = "correct-horse-battery"
PHONE = "127.0.0.1"
BOTS = [f"127.0.0.{n}" for n in range(101, 201)]
NEW_PLACE = "127.0.0.201"

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0"]
[state]
path = "state"
"""


class ScriptedRegistrar:
    """
    A UAC at one loopback address that REGISTERs C{user}, answering the
    401 with C{password} (digest, the first algorithm offered, qop=auth).
    """

    def __init__(
        self, test: SynchronousTestCase, source: str, port: int, patience: float = 8.0
    ) -> None:
        """
        @param patience: how long to wait for each final answer, resending
            the request at 0.5, 1, 2, 4 s intervals as a real UAC does
            over UDP (RFC 3261 Timer E); a bot waits 1 s, so a banned bot
            costs the test 1 s, not 8.
        """
        self.source = source
        self.patience = patience
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        test.addCleanup(self.sock.close)
        self.sock.bind((source, 0))
        self.call_id = f"{uuid.uuid4().hex}@{source}"
        self.cseq = 0

    def _send(self, authorization: str | None) -> Response | None:
        self.cseq += 1
        host, port = self.sock.getsockname()
        branch = uuid.uuid4().hex
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        data = (
            f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{USER}@{DOMAIN}>;tag={branch[:8]}\r\n"
            f"To: <sip:{USER}@{DOMAIN}>\r\nCall-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\nContact: <sip:{USER}@{host}:{port}>\r\n"
            f"Expires: 600\r\nUser-Agent: scripted-uac\r\n{auth}Content-Length: 0\r\n\r\n"
        ).encode()
        self.sock.sendto(data, self.server)
        deadline = time.monotonic() + self.patience
        interval = 0.5
        resend = time.monotonic() + interval
        while True:  # skip provisional and stray answers; each wait is bounded
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= resend:
                self.sock.sendto(data, self.server)
                interval = min(interval * 2, 4.0)
                resend = now + interval
            self.sock.settimeout(max(0.01, min(deadline, resend) - now))
            try:
                reply = parse_datagram(self.sock.recv(65535))
            except TimeoutError:
                continue
            if (
                isinstance(reply, Response)
                and reply.headers.get("CSeq", "").startswith(f"{self.cseq} ")
                and reply.status >= 200
            ):
                return reply

    def register(self, password: str) -> Response | None:
        """One REGISTER, its challenge answered; the final answer (None: no answer)."""
        challenge = self._send(None)
        if challenge is None or challenge.status != 401:
            return challenge
        offer = parse_auth_header(challenge.headers.get("WWW-Authenticate") or "").as_challenge()
        uri = f"sip:{DOMAIN}"
        cnonce = secrets.token_hex(8)
        digest = response(
            offer.algorithm,
            ha1(offer.algorithm, USER, offer.realm, password),
            "REGISTER",
            uri,
            offer.nonce,
            qop="auth",
            nc="00000001",
            cnonce=cnonce,
        )
        credentials = DigestCredentials(
            username=USER,
            realm=offer.realm,
            nonce=offer.nonce,
            uri=uri,
            response=digest,
            algorithm=offer.algorithm,
            cnonce=cnonce,
            qop="auth",
            nc="00000001",
        )
        return self._send(str(credentials))


class DistributedGuessingTests(SynchronousTestCase):
    """100 sources, 3 wrong passwords each, against one account."""

    def setUp(self) -> None:
        self.work = Path(self.mktemp()).absolute()
        self.proxy = SipEdgeProcess(self.work, _CONFIG)
        self.addCleanup(self.proxy.stop)
        add_user(self.proxy.config_path, USER, PASSWORD)
        self.proxy.start()
        self.port = self.proxy.ports["UDP"]

    def status(self, reply: Response | None) -> int | None:
        return None if reply is None else reply.status

    def test_botnet_gets_few_guesses_and_user_keeps_registering(self) -> None:
        """
        The user's phone registers; 100 sources then try 3 wrong passwords
        each: at most 30 of the 300 guesses are checked (a 401 after
        credentials; the rest get 403 unchecked, or no answer once a source
        is banned), the lock is logged naming the user, a new address is
        refused even with the right password, and the phone still
        registers from the address it used before.
        """
        phone = ScriptedRegistrar(self, PHONE, self.port)
        self.assertEqual(self.status(phone.register(PASSWORD)), 200, self.proxy.log()[-3000:])

        outcomes: dict[int | None, int] = {}
        for source in BOTS:
            bot = ScriptedRegistrar(self, source, self.port, patience=1.0)
            for attempt in range(3):
                status = self.status(bot.register(f"guess-{source}-{attempt}"))
                outcomes[status] = outcomes.get(status, 0) + 1
                if status is None:
                    break  # banned: a real bot moves on too
        checked = outcomes.get(401, 0)
        self.assertLessEqual(checked, 30, outcomes)
        self.assertGreater(outcomes.get(403, 0), 0, outcomes)
        failed_lines = [
            line
            for line in self.proxy.log().splitlines()
            if f"Digest authentication failed for {USER} from 127.0.0." in line
        ]
        self.assertEqual(len(failed_lines), checked, outcomes)
        self.assertIn(f"Account {USER} had", self.proxy.log())

        newcomer = ScriptedRegistrar(self, NEW_PLACE, self.port)
        self.assertEqual(self.status(newcomer.register(PASSWORD)), 403)
        self.assertEqual(self.status(phone.register(PASSWORD)), 200, self.proxy.log()[-3000:])


class WorkersGuessingTests(SynchronousTestCase):
    """
    The same attack on C{[process] workers = 2}: the kernel spreads the
    100 sources over both workers, which count against one budget for the
    account (C{accounts.sqlite3} in the state directory). Per-worker
    budgets would check up to 20 guesses.
    """

    def setUp(self) -> None:
        self.work = Path(self.mktemp()).absolute()
        self.proxy = SipEdgeProcess(self.work, _CONFIG + "[process]\nworkers = 2\n")
        self.addCleanup(self.proxy.stop)
        add_user(self.proxy.config_path, USER, PASSWORD)
        self.proxy.start(timeout=60.0)
        self.port = self.proxy.ports["UDP"]

    def test_one_budget_across_workers(self) -> None:
        """
        At most 10 of the 300 guesses are checked (the default budget: the
        guesses come one at a time, so none is in flight on another worker
        when one is checked); both workers refuse guesses unchecked; the
        phone still registers from the address it used before.
        """
        phone = ScriptedRegistrar(self, PHONE, self.port)
        first = phone.register(PASSWORD)
        self.assertEqual(None if first is None else first.status, 200, self.proxy.log()[-3000:])
        outcomes: dict[int | None, int] = {}
        for source in BOTS:
            bot = ScriptedRegistrar(self, source, self.port, patience=1.0)
            for attempt in range(3):
                reply = bot.register(f"guess-{source}-{attempt}")
                status = None if reply is None else reply.status
                outcomes[status] = outcomes.get(status, 0) + 1
                if status is None:
                    break
        self.assertLessEqual(outcomes.get(401, 0), 10, outcomes)
        log = self.proxy.log()
        refused = rf"worker (\d+): .*Digest authentication refused for {USER}"
        refusing = set(re.findall(refused, log))
        self.assertEqual(refusing, {"0", "1"}, outcomes)
        reply = phone.register(PASSWORD)
        self.assertEqual(None if reply is None else reply.status, 200, log[-3000:])
