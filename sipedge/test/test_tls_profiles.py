# -*- test-case-name: sipedge.test.test_tls_profiles -*-
"""
Tests for L{sipedge.tls_profiles} and its use by the server and
client TLS contexts: real handshakes in memory with pyOpenSSL.
"""

from __future__ import annotations

import os

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from twisted.internet.ssl import TLSVersion
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import ConfigError
from sipedge.testing import make_certificates
from sipedge.tls_profiles import TLS_PROFILES, tls_profile
from sipedge.transport import (
    CERTIFICATE_FILE,
    ClientTLSContexts,
    TLSSettings,
    server_context_factory,
)

_WEAK = "AES128-SHA:AES256-SHA:AES128-SHA256:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA"


def _handshake(server: SSL.Context, client: SSL.Context) -> SSL.Connection:
    """
    Run a TLS handshake between C{server} and C{client} through memory BIOs.

    @return: the client's connection once the handshake is done.
    @raise SSL.Error: if either side refuses.
    """
    s = SSL.Connection(server, None)
    s.set_accept_state()
    c = SSL.Connection(client, None)
    c.set_connect_state()
    done = {"s": False, "c": False}
    for _ in range(20):
        for name, conn in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    conn.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
        for src, dst in ((c, s), (s, c)):
            try:
                data = src.bio_read(65536)
            except SSL.WantReadError:
                continue
            dst.bio_write(data)
        if done["s"] and done["c"]:
            return c
    raise AssertionError("handshake did not finish")


def _client_context(ciphers: str | None = None, version: int | None = None) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    if ciphers is not None:
        context.set_cipher_list(ciphers.encode())
    if version is not None:
        context.set_min_proto_version(version)
        context.set_max_proto_version(version)
    return context


class ProfileTests(SynchronousTestCase):
    """L{tls_profile}: the table and its errors."""

    def test_profiles(self) -> None:
        """
        C{intermediate} starts at TLS 1.2, C{modern} at TLS 1.3, and neither
        TLS 1.2 list holds a suite without ECDHE or without AEAD.
        """
        self.assertEqual(TLS_PROFILES["intermediate"].minimum, TLSVersion.TLSv1_2)
        self.assertEqual(TLS_PROFILES["modern"].minimum, TLSVersion.TLSv1_3)
        for profile in TLS_PROFILES.values():
            for suite in profile.ciphers.split(":"):
                self.assertTrue(suite.startswith("ECDHE-"), suite)
                self.assertTrue("GCM" in suite or "CHACHA20" in suite, suite)

    def test_unknown_profile(self) -> None:
        """An unknown profile is a ConfigError naming C{tls.profile} and the choices."""
        error = self.assertRaises(ConfigError, tls_profile, "old")
        self.assertIn("tls.profile", str(error))
        self.assertIn("intermediate", str(error))

    def test_bad_ciphers(self) -> None:
        """A cipher string OpenSSL takes nothing from is a ConfigError naming C{tls.ciphers}."""
        error = self.assertRaises(ConfigError, tls_profile, "intermediate", "NO-SUCH-CIPHER")
        self.assertIn("tls.ciphers", str(error))
        error = self.assertRaises(ConfigError, tls_profile, "intermediate", " ")
        self.assertIn("tls.ciphers", str(error))

    def test_custom_ciphers(self) -> None:
        """C{ciphers} replaces the profile's TLS 1.2 list and keeps its minimum version."""
        profile = tls_profile("intermediate", "ECDHE-ECDSA-AES256-GCM-SHA384")
        self.assertEqual(profile.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384")
        self.assertEqual(profile.minimum, TLSVersion.TLSv1_2)


class ServerHandshakeTests(SynchronousTestCase):
    """What the server context accepts, shown by real handshakes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_750_000_000)
        self.certs = {kind: make_certificates("sip.example.test", key_type=kind)
                      for kind in ("ec", "rsa")}
        directory = self.mktemp()
        os.makedirs(directory)
        self.paths = {kind: certs.write(directory + "/" + kind)
                      for kind, certs in self.certs.items()}

    def _server(self, kind: str = "ec", **settings: object) -> SSL.Context:
        _, cert, key = self.paths[kind]
        factory = server_context_factory(
            TLSSettings(certificate=cert, private_key=key, **settings),  # type: ignore[arg-type]
            clock=self.clock,
        )
        return factory.getContext()

    def test_weak_suites_refused(self) -> None:
        """
        By default a TLS 1.2 client that offers only static-RSA or CBC suites
        (AES128-SHA and the like) is refused, with an RSA or an ECDSA
        certificate.
        """
        for kind in ("ec", "rsa"):
            self.assertRaises(
                SSL.Error, _handshake, self._server(kind),
                _client_context(_WEAK, SSL.TLS1_2_VERSION),
            )

    def test_tls11_refused(self) -> None:
        """A TLS 1.1 client is refused."""
        client = SSL.Context(SSL.TLS_METHOD)
        client.set_cipher_list(b"ALL:@SECLEVEL=0")
        client.set_min_proto_version(SSL.TLS1_1_VERSION)
        client.set_max_proto_version(SSL.TLS1_1_VERSION)
        self.assertRaises(SSL.Error, _handshake, self._server(), client)

    def test_ecdhe_aead_accepted(self) -> None:
        """
        TLS 1.2 with ECDHE and AES-GCM is accepted for both key types, and
        TLS 1.3 too.
        """
        for kind, suite in (("ec", "ECDHE-ECDSA-AES128-GCM-SHA256"),
                            ("rsa", "ECDHE-RSA-AES256-GCM-SHA384")):
            client = _handshake(self._server(kind), _client_context(suite, SSL.TLS1_2_VERSION))
            self.assertEqual(client.get_cipher_name(), suite)
            self.assertEqual(client.get_protocol_version_name(), "TLSv1.2")
        client = _handshake(self._server(), _client_context(None, SSL.TLS1_3_VERSION))
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.3")

    def test_modern_refuses_tls12(self) -> None:
        """The C{modern} profile refuses TLS 1.2 and takes TLS 1.3."""
        server = self._server(profile="modern")
        self.assertRaises(
            SSL.Error, _handshake, server,
            _client_context("ECDHE-ECDSA-AES128-GCM-SHA256", SSL.TLS1_2_VERSION),
        )
        client = _handshake(self._server(profile="modern"),
                            _client_context(None, SSL.TLS1_3_VERSION))
        self.assertEqual(client.get_protocol_version_name(), "TLSv1.3")

    def test_custom_ciphers_applied(self) -> None:
        """With C{ciphers}, a suite outside the list is refused and one inside taken."""
        server = self._server(ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
        self.assertRaises(
            SSL.Error, _handshake, server,
            _client_context("ECDHE-ECDSA-AES128-GCM-SHA256", SSL.TLS1_2_VERSION),
        )
        client = _handshake(self._server(ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"),
                            _client_context(None, SSL.TLS1_2_VERSION))
        self.assertEqual(client.get_cipher_name(), "ECDHE-ECDSA-AES256-GCM-SHA384")

    def test_bad_profile_at_startup(self) -> None:
        """An unknown profile stops the server context from being made."""
        _, cert, key = self.paths["ec"]
        self.assertRaises(
            ConfigError, server_context_factory,
            TLSSettings(certificate=cert, private_key=key, profile="legacy"), clock=self.clock,
        )

    def test_self_signed_is_ecdsa(self) -> None:
        """The self-signed certificate made by default has an ECDSA P-256 key."""
        state = self.mktemp()
        server_context_factory(TLSSettings(state_dir=state, domains=("example.test",)),
                               clock=self.clock)
        with open(os.path.join(state, CERTIFICATE_FILE), "rb") as f:
            key = x509.load_pem_x509_certificate(f.read()).public_key()
        self.assertIsInstance(key, ec.EllipticCurvePublicKey)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        self.assertEqual(key.curve.name, "secp256r1")


class ClientHandshakeTests(SynchronousTestCase):
    """Outgoing connections follow the profile too."""

    def test_client_offers_no_weak_suite(self) -> None:
        """
        A server that takes only AES128-SHA gets no handshake from our
        client side.
        """
        certs = make_certificates("sip.example.test", key_type="rsa")
        directory = self.mktemp()
        os.makedirs(directory)
        _, cert, key = certs.write(directory + "/c")
        server = SSL.Context(SSL.TLS_METHOD)
        server.use_certificate_file(cert)
        server.use_privatekey_file(key)
        server.set_cipher_list(b"AES128-SHA")
        server.set_max_proto_version(SSL.TLS1_2_VERSION)
        options = ClientTLSContexts(TLSSettings(insecure_client=True))("sip.example.test")
        self.assertRaises(SSL.Error, _handshake, server, options.getContext())
