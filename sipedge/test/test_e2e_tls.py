# -*- test-case-name: sipedge.test.test_e2e_tls -*-
"""
End to end: the real C{twistd sipedge} on its default TLS settings,
examined by sslscan (Debian's C{sslscan}) as a security reviewer would.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from twisted.trial.unittest import TestCase

from sipedge.testing import SipEdgeProcess, require_tool

_CONFIG = """
[sip]
listen = ["tls:127.0.0.1:0"]
domains = ["example.test"]
"""


class SslscanTests(TestCase):
    """sslscan finds nothing worse than low on the default TLS listener."""

    def test_default_listener(self) -> None:
        """
        On the defaults (a self-signed certificate made at start-up):
        SSL 2/3 and TLS 1.0/1.1 are off, TLS 1.2 and 1.3 on; every cipher
        sslscan gets accepted is rated strong or acceptable, TLS 1.2 ones all
        ECDHE with AES-GCM or ChaCha20-Poly1305; no insecure renegotiation,
        no Heartbleed, no compression; the certificate is ECDSA P-256 signed
        with SHA-256.
        """
        sslscan = require_tool("sslscan")
        work = Path(self.mktemp())
        work.mkdir(parents=True)
        proxy = SipEdgeProcess(work, _CONFIG)
        self.addCleanup(proxy.stop)
        proxy.start()
        port = proxy.ports["TLS"]
        result = subprocess.run(
            [sslscan, "--xml=-", "--no-colour", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        document = ET.fromstring(result.stdout[result.stdout.index("<?xml"):])
        test = document.find("ssltest")
        assert test is not None, result.stdout

        enabled = {
            (p.get("type"), p.get("version")): p.get("enabled") == "1"
            for p in test.findall("protocol")
        }
        self.assertEqual(
            enabled,
            {("ssl", "2"): False, ("ssl", "3"): False, ("tls", "1.0"): False,
             ("tls", "1.1"): False, ("tls", "1.2"): True, ("tls", "1.3"): True},
        )

        ciphers = test.findall("cipher")
        self.assertTrue(ciphers, result.stdout)
        for cipher in ciphers:
            name, version = cipher.get("cipher", ""), cipher.get("sslversion")
            self.assertIn(cipher.get("strength"), ("strong", "acceptable"), name)
            self.assertIn(version, ("TLSv1.2", "TLSv1.3"), name)
            if version == "TLSv1.2":
                self.assertTrue(name.startswith("ECDHE-"), name)
                self.assertTrue("GCM" in name or "CHACHA20" in name, name)

        renegotiation = test.find("renegotiation")
        if renegotiation is not None and renegotiation.get("supported") == "1":
            self.assertEqual(renegotiation.get("secure"), "1")
        for heartbleed in test.findall("heartbleed"):
            self.assertEqual(heartbleed.get("vulnerable"), "0")
        compression = test.find("compression")
        if compression is not None:
            self.assertEqual(compression.get("supported"), "0")

        certificate = test.find("certificates/certificate")
        assert certificate is not None, result.stdout
        self.assertEqual(certificate.findtext("signature-algorithm"), "ecdsa-with-SHA256")
        pk = certificate.find("pk")
        assert pk is not None
        self.assertEqual((pk.get("type"), pk.get("curve_name")), ("EC", "prime256v1"))
