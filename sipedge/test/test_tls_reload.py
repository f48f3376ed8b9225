"""
Tests for L{sipedge.transport.ReloadableServerContext} and
C{sipedge.service.SipEdgeService.reload}: a new TLS certificate without a
restart.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory, IOpenSSLServerConnectionCreator
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.config import parse_config
from sipedge.error import ConfigError
from sipedge.service import build_service
from sipedge.testing import FakeReactor, capture_log, make_certificates
from sipedge.transport import CERTIFICATE_FILE, ReloadableServerContext, TLSSettings


def _fingerprint(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex(":").upper()


class _Pair:
    """A client and a server OpenSSL connection joined in memory."""

    def __init__(self, server_context: ReloadableServerContext) -> None:
        self.server = server_context.serverConnectionForTLS(None)
        self.server.set_accept_state()
        client_context = SSL.Context(SSL.TLS_METHOD)
        client_context.set_verify(SSL.VERIFY_NONE, lambda *a: True)
        self.client = SSL.Connection(client_context, None)
        self.client.set_connect_state()

    def _pump(self) -> None:
        for _ in range(10):
            moved = False
            for a, b in ((self.client, self.server), (self.server, self.client)):
                try:
                    data = a.bio_read(65536)
                except SSL.WantReadError:
                    continue
                b.bio_write(data)
                moved = True
            if not moved:
                return

    def _step(self, connection: SSL.Connection) -> None:
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            pass

    def handshake(self) -> str:
        """Complete the handshake; the fingerprint of the server's certificate."""
        for _ in range(10):
            self._step(self.client)
            self._pump()
            self._step(self.server)
            self._pump()
        certificate = self.client.get_peer_certificate()
        assert certificate is not None
        return _fingerprint_of(certificate)

    def echo(self, data: bytes) -> bytes:
        """Send C{data} from the client; what the server reads."""
        self.client.send(data)
        self._pump()
        return self.server.recv(65536)


def _fingerprint_of(certificate: Any) -> str:
    return str(certificate.to_cryptography().fingerprint(hashes.SHA256()).hex(":").upper())


class ReloadableServerContextTests(SynchronousTestCase):
    """L{ReloadableServerContext}: new handshakes get a reloaded certificate."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_750_000_000)
        self.first = make_certificates("sip.example.test")
        self.directory = self.mktemp()
        _, self.cert, self.key = self.first.write(self.directory)
        self.settings = TLSSettings(certificate=self.cert, private_key=self.key)
        self.context = ReloadableServerContext(self.settings, clock=self.clock)

    def replace(self, certificates: Any) -> None:
        """Write C{certificates} over the configured files."""
        certificates.write(self.directory)

    def test_interfaces(self) -> None:
        """It is a server connection creator and an old-style context factory."""
        self.assertTrue(verifyObject(IOpenSSLServerConnectionCreator, self.context))
        self.assertTrue(verifyObject(IOpenSSLContextFactory, self.context))
        self.assertIsInstance(self.context.getContext(), SSL.Context)

    def test_new_handshakes_see_new_certificate(self) -> None:
        """
        After L{ReloadableServerContext.reload} with new files, a new
        handshake presents the new certificate; a connection made before
        still carries data and still has the old one.
        """
        before = _Pair(self.context)
        self.assertEqual(before.handshake(), _fingerprint(self.first.cert_pem))
        self.assertEqual(self.context.fingerprint, _fingerprint(self.first.cert_pem))
        second = make_certificates("sip.example.test")
        self.replace(second)
        self.assertTrue(self.context.reload())
        self.assertEqual(self.context.fingerprint, _fingerprint(second.cert_pem))
        after = _Pair(self.context)
        self.assertEqual(after.handshake(), _fingerprint(second.cert_pem))
        self.assertEqual(before.echo(b"OPTIONS"), b"OPTIONS")
        old = before.client.get_peer_certificate()
        self.assertEqual(_fingerprint_of(old), _fingerprint(self.first.cert_pem))

    def test_unchanged(self) -> None:
        """A reload of the same files says nothing changed."""
        self.assertFalse(self.context.reload())

    def test_bad_files_keep_running_certificate(self) -> None:
        """
        A reload from a missing certificate, an unreadable key or a key that
        does not match raises a L{ConfigError} naming the key and the file,
        and new handshakes still get the running certificate.
        """
        other = make_certificates("other.test").write(self.mktemp())
        cases = [
            (TLSSettings(certificate=self.cert + ".gone", private_key=self.key),
             "tls.certificate", self.cert + ".gone"),
            (TLSSettings(certificate=self.cert, private_key=self.cert),
             "tls.private_key", self.cert),
            (TLSSettings(certificate=self.cert, private_key=other[2]),
             "tls.private_key: the private key does not match", ""),
        ]
        for settings, key, path in cases:
            error = self.assertRaises(ConfigError, self.context.reload, settings)
            self.assertIn(key, str(error))
            self.assertIn(path, str(error))
            self.assertEqual(self.context.fingerprint, _fingerprint(self.first.cert_pem))
            self.assertIs(self.context.settings, self.settings)
            self.assertEqual(_Pair(self.context).handshake(), _fingerprint(self.first.cert_pem))

    def test_half_written_files(self) -> None:
        """
        A certificate replaced but its key not yet (the operator is half way
        through) is refused: the running certificate stays.
        """
        with open(self.cert, "wb") as f:
            f.write(make_certificates("sip.example.test").cert_pem)
        error = self.assertRaises(ConfigError, self.context.reload)
        self.assertIn("tls.private_key", str(error))
        self.assertEqual(_Pair(self.context).handshake(), _fingerprint(self.first.cert_pem))

    def test_self_signed_remade(self) -> None:
        """
        Without configured files, a reload keeps the self-signed certificate
        while it is good, and makes a new one if it is gone.
        """
        state = self.mktemp()
        settings = TLSSettings(state_dir=state, domains=("example.test",))
        context = ReloadableServerContext(settings, clock=self.clock)
        first = context.fingerprint
        self.assertFalse(context.reload())
        os.unlink(os.path.join(state, CERTIFICATE_FILE))
        self.assertTrue(context.reload())
        self.assertNotEqual(context.fingerprint, first)
        self.assertEqual(_Pair(context).handshake(), context.fingerprint)


class ServiceReloadTests(SynchronousTestCase):
    """L{SipEdgeService.reload} and SIGHUP."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.first = make_certificates("sipedge.test")
        _, cert, key = self.first.write(str(self.directory))
        config = parse_config(
            {
                "sip": {"domains": ["sipedge.test"], "listen": ["tls:127.0.0.1:5071"]},
                "tls": {"certificate": cert, "private_key": key},
                "state": {"path": str(self.directory / "state")},
            }
        )
        self.reactor = FakeReactor()
        self.service = build_service(config, self.reactor)
        self.addCleanup(self.service.stopService)
        self.events = capture_log(self)

    def test_reload_before_listening(self) -> None:
        """Before the TLS listeners exist, a reload has nothing to change."""
        self.assertEqual(self.service.reload().changed, ())

    def test_reload_new_certificate(self) -> None:
        """
        L{SipEdgeService.reload} after the files changed says the certificate
        changed, with its fingerprint; the listener's context presents it.
        """
        self.service.privilegedStartService()
        second = make_certificates("sipedge.test")
        second.write(str(self.directory))
        [line] = self.service.reload().changed
        self.assertIn("tls.certificate", line)
        self.assertIn(_fingerprint(second.cert_pem), line)
        server_tls = self.service.server_tls
        assert server_tls is not None
        self.assertEqual(_Pair(server_tls).handshake(), _fingerprint(second.cert_pem))
        self.assertEqual(self.service.reload().changed, ())

    def test_reload_refused_logged(self) -> None:
        """
        A reload whose key file is gone raises L{ConfigError}, logged as an
        error naming the key (by L{SipEdgeService.reload}, and by
        L{SipEdgeService.reload_and_log}, which raises nothing), and the
        running certificate stays.
        """
        self.service.privilegedStartService()
        shutil.move(self.directory / "key.pem", self.directory / "key.pem.old")
        self.assertRaises(ConfigError, self.service.reload)
        self.service.reload_and_log()
        texts = [formatEvent(e) for e in self.events]
        refused = [t for t in texts if t.startswith("Reload refused")]
        self.assertEqual(len(refused), 2, texts)
        self.assertEqual(refused[0], refused[1])
        self.assertIn("tls.private_key", refused[0])
        self.assertIn(str(self.directory / "key.pem"), refused[0])
        server_tls = self.service.server_tls
        assert server_tls is not None
        self.assertEqual(_Pair(server_tls).handshake(), _fingerprint(self.first.cert_pem))

    def test_sighup_handler(self) -> None:
        """
        With C{reload_on_sighup} (what C{twistd sipedge} sets), the started
        service handles SIGHUP by reloading in the reactor's turn; stopping
        puts the previous handler back. Without it SIGHUP is left alone.
        """
        previous = signal.getsignal(signal.SIGHUP)
        self.service.startService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
        self.service.stopService()
        service = build_service(self.service.config, self.reactor)
        service.reload_on_sighup = True
        called: list[Any] = []
        self.reactor.callFromThread = lambda f, *a: called.append(f)  # type: ignore[attr-defined]
        service.startService()
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        handler(signal.SIGHUP, None)
        self.assertEqual(called, [service.reload_and_log])
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
