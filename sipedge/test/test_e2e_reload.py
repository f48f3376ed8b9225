# -*- test-case-name: sipedge.test.test_e2e_reload -*-
"""
End to end: a TLS certificate replaced under the real C{twistd sipedge},
then SIGHUP: new TLS clients (Python's C{ssl}, on loopback) see the new
certificate while a client connected before keeps its connection.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import ssl
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import TestCase

from sipedge.testing import SipEdgeProcess, make_certificates

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
        while time.monotonic() < deadline:
            if self.proxy.log().count(expected) > before:
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
