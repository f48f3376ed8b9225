# -*- test-case-name: sipedge.test.test_admin_tls -*-
"""
Tests for the admin API over TLS (L{sipedge.admin.admin_tls_context},
C{[admin] tls}, C{certificate} and C{private_key}): in memory, and with
C{sipedge ctl} against the real C{twistd sipedge}.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.admin import AdminConfig, admin_tls_context
from sipedge.config import parse_config
from sipedge.error import ConfigError
from sipedge.testing import SipEdgeProcess, make_certificates
from sipedge.transport import ReloadableServerContext, TLSSettings

_SERVING = re.compile(r"admin API on (https?)://127\.0\.0\.1:(\d+)/")


class ConfigTests(SynchronousTestCase):
    """C{[admin]}'s TLS keys."""

    def test_secure(self) -> None:
        """C{tls = true}, or a certificate and key, serve the API over TLS; neither does not."""
        self.assertFalse(parse_config({}).admin.secure)
        self.assertTrue(parse_config({"admin": {"tls": True}}).admin.secure)
        pair = parse_config({"admin": {"certificate": "/c.pem", "private_key": "/k.pem"}}).admin
        self.assertTrue(pair.secure)
        self.assertEqual(pair.certificate, Path("/c.pem"))

    def test_errors(self) -> None:
        """A certificate without its key (or the other way), or a tls that is no boolean."""
        for table, key in (({"certificate": "c.pem"}, "admin.private_key"),
                           ({"private_key": "k.pem"}, "admin.certificate"),
                           ({"tls": "yes"}, "admin.tls")):
            error = self.assertRaises(ConfigError, parse_config, {"admin": table})
            self.assertIn(key, str(error))


class ContextTests(SynchronousTestCase):
    """L{admin_tls_context}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.state = self.mktemp()
        self.settings = TLSSettings(state_dir=self.state, domains=("sipedge.test",),
                                    addresses=("127.0.0.1",))

    def test_plain(self) -> None:
        """Without TLS keys there is no context: plain HTTP."""
        self.assertIsNone(admin_tls_context(AdminConfig(), self.settings, self.clock))

    def test_shared(self) -> None:
        """
        C{tls = true} shares the SIP listeners' context (so SIGHUP reloads
        both), or makes one from C{[tls]} (here the self-signed certificate)
        if there is none; one asking for client certificates is not shared.
        """
        shared = ReloadableServerContext(self.settings, clock=self.clock)
        admin = AdminConfig(tls=True)
        self.assertIs(admin_tls_context(admin, self.settings, self.clock, shared), shared)
        own = admin_tls_context(admin, self.settings, self.clock)
        assert own is not None
        self.assertEqual(own.fingerprint, shared.fingerprint)
        certs = make_certificates("sipedge.test")
        ca, _, _ = certs.write(self.mktemp())
        asking = ReloadableServerContext(
            TLSSettings(state_dir=self.state, domains=("sipedge.test",),
                        client_certificates="require", client_ca=ca), clock=self.clock)
        context = admin_tls_context(admin, self.settings, self.clock, asking)
        assert context is not None
        self.assertIsNot(context, asking)
        self.assertEqual(context.settings.client_certificates, "none")

    def test_own_pair(self) -> None:
        """
        A certificate and key of the API's own are what it presents, under
        the configured profile; a key that does not fit is an error naming
        C{admin.private_key}.
        """
        certs = make_certificates("admin.sipedge.test")
        _, cert, key = certs.write(self.mktemp())
        modern = TLSSettings(state_dir=self.state, profile="modern")
        admin = AdminConfig(certificate=Path(cert), private_key=Path(key))
        context = admin_tls_context(admin, modern, self.clock)
        assert context is not None
        self.assertEqual(context.settings.certificate, cert)
        self.assertEqual(context.settings.profile, "modern")
        _, _, other_key = make_certificates("other.test").write(self.mktemp())
        wrong = AdminConfig(certificate=Path(cert), private_key=Path(other_key))
        error = self.assertRaises(ConfigError, admin_tls_context, wrong, modern, self.clock)
        self.assertTrue(str(error).startswith("admin.private_key:"), str(error))


_CONFIG = """
[sip]
listen = ["udp:127.0.0.1:0"]
domains = ["sipedge.test"]
[state]
path = "state"
[admin]
listen = "tcp:127.0.0.1:0"
"""


class CtlOverTlsTests(SynchronousTestCase):
    """C{sipedge ctl} and the API over HTTPS on the real C{twistd sipedge}."""

    def start(self, admin: str) -> tuple[Path, SipEdgeProcess, int]:
        work = Path(self.mktemp()).absolute()
        work.mkdir(parents=True)
        proxy = SipEdgeProcess(work, _CONFIG + admin)
        self.addCleanup(proxy.stop)
        proxy.start()
        found = _SERVING.search(proxy.log())
        assert found is not None, proxy.log()[-2000:]
        self.assertEqual(found.group(1), "https")
        port = int(found.group(2))
        # ctl --config finds the address in the file: give it the real port.
        proxy.config_path.write_text(proxy.config_path.read_text().replace(
            'listen = "tcp:127.0.0.1:0"', f'listen = "tcp:127.0.0.1:{port}"'))
        return work, proxy, port

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "ctl", *args],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )

    def test_sipedge_certificate(self) -> None:
        """
        With C{tls = true} the API speaks only HTTPS, with sipedge's own
        (self-signed) certificate: C{sipedge ctl --config} finds the https
        URL and trusts that certificate; plain HTTP gets no answer; a
        client offering only a cipher the default profile refuses (static
        RSA key exchange, CBC) or only TLS 1.1 cannot connect.
        """
        work, proxy, port = self.start("tls = true\n")
        config = str(proxy.config_path)
        result = self.ctl("--config", config, "ban", "192.0.2.9")
        self.assertEqual(result.returncode, 0, result.stderr)
        result = self.ctl("--config", config, "--json", "bans")
        self.assertEqual(json.loads(result.stdout)["bans"][0]["address"], "192.0.2.9")
        served = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
        self.assertEqual(
            ssl.PEM_cert_to_DER_cert(served),
            ssl.PEM_cert_to_DER_cert((work / "state" / "sipedge-cert.pem").read_text()),
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.assertRaises((urllib.error.URLError, OSError), opener.open,
                          f"http://127.0.0.1:{port}/api/v1/bans", timeout=5)
        for weak in (_client(ciphers="AES128-SHA"), _client(version=ssl.TLSVersion.TLSv1_1)):
            self.assertRaises((ssl.SSLError, OSError), _handshake, weak, port)
        self.assertIsNotNone(_handshake(_client(), port))

    def test_own_certificate(self) -> None:
        """
        With a certificate and key of its own, the API presents them:
        C{sipedge ctl --config} pins that certificate, and C{--url} with
        C{--cafile} (the issuing CA) verifies it by name; another CA's
        certificate is refused.
        """
        certs = make_certificates("admin.sipedge.test", ip_addresses=["127.0.0.1"])
        ca, cert, key = certs.write(str(Path(self.mktemp()).absolute()))
        work, proxy, port = self.start(f'certificate = "{cert}"\nprivate_key = "{key}"\n')
        result = self.ctl("--config", str(proxy.config_path), "--json", "bans")
        self.assertEqual((result.returncode, json.loads(result.stdout or "{}").get("count")),
                         (0, 0), result.stderr)
        token = str(work / "state" / "admin.token")
        url = f"https://127.0.0.1:{port}"
        result = self.ctl("--url", url, "--token-file", token, "--cafile", ca, "bans")
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "(none)"), result.stderr)
        other_ca, _, _ = make_certificates("admin.sipedge.test").write(self.mktemp())
        result = self.ctl("--url", url, "--token-file", token, "--cafile", other_ca, "bans")
        self.assertEqual(result.returncode, 1)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", result.stderr)


def _client(ciphers: str | None = None,
            version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that checks nothing of the certificate, offering what it is told."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
    if version is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
        try:
            context.set_ciphers("ALL:@SECLEVEL=0")
        except ssl.SSLError:
            pass
    return context


def _handshake(context: ssl.SSLContext, port: int) -> str | None:
    """The TLS version negotiated with the API on C{port}."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.version()
