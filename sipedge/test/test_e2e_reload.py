# -*- test-case-name: sipedge.test.test_e2e_reload -*-
"""
End to end, under the real C{twistd sipedge} on loopback: a TLS
certificate replaced, then SIGHUP: new TLS clients (Python's C{ssl}) see
the new certificate while a client connected before keeps placing calls on
its connection (to a SIPp phone); the configuration file changed, then
SIGHUP or C{sipedge ctl reload}: filter rules and routes change behaviour,
and a broken file leaves it serving as before, saying why.
"""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import TestCase

from sipedge.testing import (
    SipEdgeProcess,
    TlsCaller,
    add_user,
    free_port,
    make_certificates,
    start_with_sipp,
)

_CONFIG = """
[sip]
listen = ["tls:127.0.0.1:0"]
domains = ["sipedge.test"]

[tls]
certificate = "cert.pem"
private_key = "key.pem"
"""


def _der_digest(pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


class ReloadTests(TestCase):
    """SIGHUP to C{twistd sipedge} reloads its TLS certificate."""

    def setUp(self) -> None:
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.first = make_certificates("sipedge.test")
        self.first.write(str(self.work))
        self.proxy = SipEdgeProcess(self.work, _CONFIG)
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.port = self.proxy.ports["TLS"]
        self.clients: list[ssl.SSLSocket] = []
        self.addCleanup(self.close_clients)

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()

    def connect(self) -> ssl.SSLSocket:
        """A TLS client connection to sipedge (not verifying: we compare certificates)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        client = context.wrap_socket(raw)
        self.clients.append(client)
        return client

    def presented(self, client: ssl.SSLSocket) -> str:
        der = client.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha256(der).hexdigest()

    def options(self, client: ssl.SSLSocket) -> bytes:
        """Send an OPTIONS on C{client}'s connection; the status line of its answer."""
        branch = uuid.uuid4().hex
        host, port = client.getsockname()[:2]
        client.sendall((
            "OPTIONS sip:100@sipedge.test SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@example.org>;tag=1\r\n"
            f"To: <sip:100@sipedge.test>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode())
        data = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]

    def hangup(self, expected: str) -> None:
        """SIGHUP to sipedge; wait (bounded) until its log shows C{expected} once more."""
        before = self.proxy.log().count(expected)
        assert self.proxy.process is not None
        self.proxy.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # every worker reloads
            if self.proxy.log().count(expected) >= before + self.proxy.worker_count:
                return
            time.sleep(0.1)
        self.fail(f"no {expected!r} after SIGHUP:\n{self.proxy.log()[-3000:]}")

    def test_certificate_replaced(self) -> None:
        """
        After the certificate and key files are replaced and SIGHUP sent, a
        new client gets the new certificate; a client connected before is
        still answered on its connection. A later reload from a key that
        does not match is refused with a log line naming tls.private_key,
        and new clients still get the running certificate.
        """
        before = self.connect()
        self.assertEqual(self.presented(before), _der_digest(self.first.cert_pem))
        self.assertTrue(self.options(before).startswith(b"SIP/2.0 "))

        second = make_certificates("sipedge.test")
        second.write(str(self.work))
        self.hangup("Reload done")
        self.assertIn("tls.certificate: new TLS connections get", self.proxy.log())
        after = self.connect()
        self.assertEqual(self.presented(after), _der_digest(second.cert_pem))
        self.assertTrue(self.options(after).startswith(b"SIP/2.0 "))
        self.assertTrue(self.options(before).startswith(b"SIP/2.0 "))
        self.assertEqual(self.presented(before), _der_digest(self.first.cert_pem))

        (self.work / "key.pem").write_bytes(make_certificates("sipedge.test").key_pem)
        self.hangup("Reload refused")
        refused = [line for line in self.proxy.log().splitlines() if "Reload refused" in line]
        self.assertIn("tls.private_key: the private key does not match", refused[-1])
        third = self.connect()
        self.assertEqual(self.presented(third), _der_digest(second.cert_pem))
        self.assertTrue(self.options(before).startswith(b"SIP/2.0 "))
        self.assertIsNotNone(self.proxy.process)
        assert self.proxy.process is not None
        self.assertIsNone(self.proxy.process.poll())


_CALLS = """
[sip]
listen = ["udp:127.0.0.1:0", "tls:127.0.0.1:0"]
domains = ["sipedge.test"]

[state]
path = "state"

[tls]
certificate = "cert.pem"
private_key = "key.pem"
"""


class CallsOverTlsTests(TestCase):
    """A TLS caller connected before a certificate reload keeps placing calls."""

    def hangup(self, expected: str) -> None:
        before = self.proxy.log().count(expected)
        assert self.proxy.process is not None
        self.proxy.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # every worker reloads
            if self.proxy.log().count(expected) >= before + self.proxy.worker_count:
                return
            time.sleep(0.1)
        self.fail(f"no {expected!r} after SIGHUP:\n{self.proxy.log()[-3000:]}")

    def test_calls_across_reload(self) -> None:
        """
        A caller on one TLS connection calls a phone (SIPp, registered over
        UDP); the certificate is replaced and SIGHUP sent; on the same
        connection (same port, still the first certificate) the next call
        sets up and ends too, while a new TLS client gets the new
        certificate.
        """
        work = Path(self.mktemp()).absolute()
        work.mkdir(parents=True)
        first = make_certificates("sipedge.test")
        first.write(str(work))
        # start_with_sipp makes its own directory: give it the certificates' paths.
        config = _CALLS.replace('"cert.pem"', f'"{work}/cert.pem"').replace(
            '"key.pem"', f'"{work}/key.pem"')
        _, self.proxy, sipp = start_with_sipp(self, config)
        add_user(self.proxy.config_path, "erin", "erin-secret")
        uas_port = free_port()
        registered = sipp.run(
            "register.xml", f"127.0.0.1:{self.proxy.ports['UDP']}", "-s", "erin",
            "-au", "erin", "-ap", "erin-secret", "-auth_uri", "sipedge.test",
            "-key", "domain", "sipedge.test", "-key", "contact_port", uas_port,
            "-key", "expires", 600, "-m", 1, timeout=20,
        )
        self.assertEqual(registered.returncode, 0, registered.stdout[-2000:])
        sipp.start("uas.xml", "-m", 2, port=uas_port, timeout=60)

        caller = TlsCaller(self.proxy.ports["TLS"])
        self.addCleanup(caller.close)
        port = caller.local_port
        self.assertEqual(caller.call("sip:erin@sipedge.test"), (200, 200))
        self.assertEqual(caller.certificate_digest(), _der_digest(first.cert_pem))

        second = make_certificates("sipedge.test")
        second.write(str(work))
        self.hangup("Reload done: tls.certificate")
        newcomer = TlsCaller(self.proxy.ports["TLS"])
        self.addCleanup(newcomer.close)
        self.assertEqual(newcomer.certificate_digest(), _der_digest(second.cert_pem))

        self.assertEqual(caller.call("sip:erin@sipedge.test"), (200, 200))
        self.assertEqual(caller.local_port, port)
        self.assertEqual(caller.certificate_digest(), _der_digest(first.cert_pem))


_SIP = """
[sip]
listen = ["udp:127.0.0.1:0"]
domains = ["sipedge.test"]
trusted = ["127.0.0.10/32"]

[admin]
listen = "tcp:127.0.0.1:0"
"""

_FILTER = """
[pipeline.options.filter]
[[pipeline.options.filter.rules]]
name = "no-evil"
header = "User-Agent"
pattern = "evil"
"""


def _answer(data: bytes) -> bytes:
    """A 200 to the request C{data} (its Via, From, To, Call-ID and CSeq copied)."""
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    copied = [line for line in lines[1:]
              if line.split(b":", 1)[0].strip().lower() in (b"via", b"from", b"to", b"call-id",
                                                            b"cseq")]
    return b"\r\n".join([b"SIP/2.0 200 OK", *copied, b"Content-Length: 0", b"", b""])


class ConfigReloadTests(TestCase):
    """
    SIGHUP and C{sipedge ctl reload} to the real C{twistd sipedge} read its
    configuration file again: filter rules and routes change its behaviour;
    a broken file leaves it serving on the old rules and says why.
    """

    def setUp(self) -> None:
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.proxy = SipEdgeProcess(self.work, _SIP)
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.port = self.proxy.ports["UDP"]
        found = re.search(r"admin API on http://127\.0\.0\.1:(\d+)/", self.proxy.log())
        assert found is not None, self.proxy.log()[-2000:]
        self.url = f"http://127.0.0.1:{found.group(1)}"
        self.sockets: list[socket.socket] = []
        self.addCleanup(self.close_sockets)

    def close_sockets(self) -> None:
        for s in self.sockets:
            s.close()

    def udp(self, host: str = "127.0.0.1") -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sockets.append(s)
        s.bind((host, 0))
        s.settimeout(5)
        return s

    def write(self, extra: str) -> None:
        self.proxy.config_path.write_text(_SIP + extra)

    def hangup(self, expected: str) -> str:
        """SIGHUP; wait (bounded) for a new log line with C{expected}; that line."""
        before = self.proxy.log().count(expected)
        assert self.proxy.process is not None
        self.proxy.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            lines = [line for line in self.proxy.log().splitlines() if expected in line]
            if len(lines) >= before + self.proxy.worker_count:  # every worker reloads
                return lines[-1]
            time.sleep(0.1)
        self.fail(f"no {expected!r} after SIGHUP:\n{self.proxy.log()[-3000:]}")

    def options(self, user_agent: str) -> bytes:
        """An OPTIONS to sipedge itself with C{user_agent}; the status line of its answer."""
        s = self.udp()
        branch = uuid.uuid4().hex
        s.sendto((
            f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{s.getsockname()[1]};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@example.org>;tag=1\r\n"
            f"To: <sip:127.0.0.1:{self.port}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
            f"User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n"
        ).encode(), ("127.0.0.1", self.port))
        for _ in range(5):
            try:
                data = s.recv(65535)
            except TimeoutError:
                return b"(no answer)"
            if not data.startswith(b"SIP/2.0 1"):
                return data.split(b"\r\n", 1)[0]
        return b"(no final answer)"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "ctl", "--url", self.url,
             "--token-file", str(self.work / "sipedge-state" / "admin.token"), *args],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )

    def test_filter_rule(self) -> None:
        """
        A filter rule written into the file refuses requests after SIGHUP;
        then a file with a syntax error is refused with a log line naming
        the file and the problem, and the rule still holds; the process
        keeps serving.
        """
        self.assertEqual(self.options("evil/1.0"), b"SIP/2.0 200 OK")
        self.write(_FILTER)
        self.hangup("Reload done: pipeline")
        self.assertEqual(self.options("evil/1.0"), b"SIP/2.0 403 Forbidden")
        self.assertEqual(self.options("good/1.0"), b"SIP/2.0 200 OK")

        self.proxy.config_path.write_text(_SIP + _FILTER + "[security\n")
        line = self.hangup("Reload refused")
        self.assertIn(f"still running as before: {self.proxy.config_path}: invalid TOML", line)
        self.assertEqual(self.options("evil/1.0"), b"SIP/2.0 403 Forbidden")
        self.assertEqual(self.options("good/1.0"), b"SIP/2.0 200 OK")
        assert self.proxy.process is not None
        self.assertIsNone(self.proxy.process.poll())

    def test_route(self) -> None:
        """
        A static route written into the file sends a trusted PBX's calls
        for +44 to the trunk after SIGHUP; before, they went where their
        Request-URI said.
        """
        pbx, direct, trunk = self.udp("127.0.0.10"), self.udp(), self.udp()
        direct_port, trunk_port = direct.getsockname()[1], trunk.getsockname()[1]

        def send() -> None:
            branch = uuid.uuid4().hex
            uri = f"sip:+442071234567@127.0.0.1:{direct_port}"
            pbx.sendto((
                f"OPTIONS {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.10:{pbx.getsockname()[1]};branch=z9hG4bK{branch}"
                ";rport\r\nMax-Forwards: 70\r\nFrom: <sip:pbx@pbx.example>;tag=1\r\n"
                f"To: <{uri}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(), ("127.0.0.1", self.port))

        def arrives(at: socket.socket) -> bytes:
            data, source = at.recvfrom(65535)
            at.sendto(_answer(data), source)
            self.assertTrue(pbx.recv(65535).startswith(b"SIP/2.0 200"))
            return data

        send()
        self.assertTrue(arrives(direct).startswith(b"OPTIONS sip:+442071234567@"))
        self.write(f'\n[[routes]]\nmatch_prefix = "+44"\nnext_hop = "sip:127.0.0.1:{trunk_port}"\n')
        self.hangup("Reload done: routes: 1 static routes (were 0)")
        send()
        data = arrives(trunk)
        self.assertIn(f"Route: <sip:127.0.0.1:{trunk_port};lr>".encode(), data)

    def test_ctl_reload(self) -> None:
        """
        C{sipedge ctl reload} prints what changed and what only a restart
        applies; with a broken file it prints the reason (the file, the key)
        and exits 1, and the proxy serves on.
        """
        self.write(_FILTER + "\n[timers]\nt1 = 1.0\n")
        result = self.ctl("reload")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("reloaded: pipeline: stages and options as in the file", result.stdout)
        self.assertIn(
            "not applied: timers.t1: needs a restart (running with 0.5, the file has 1.0)",
            result.stdout,
        )
        self.write(_FILTER.replace('pattern = "evil"', 'pattern = "evil("'))
        result = self.ctl("reload")
        self.assertEqual(result.returncode, 1)
        self.assertIn("400", result.stderr)
        self.assertIn(f"{self.proxy.config_path}: pipeline.options.filter.rules[0].pattern",
                      result.stderr)
        self.assertIn("Reload refused, still running as before", self.proxy.log())
        self.assertEqual(self.options("evil/1.0"), b"SIP/2.0 403 Forbidden")
