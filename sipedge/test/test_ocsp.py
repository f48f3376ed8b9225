# -*- test-case-name: sipedge.test.test_ocsp -*-
"""
Tests for OCSP stapling: L{sipedge.transport.OcspStapler} on a Clock with
responses made here, and the real C{twistd sipedge} stapling what
C{openssl ocsp} answers on loopback.
"""

from __future__ import annotations

import datetime
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import SipEdgeProcess, make_certificates, require_tool
from sipedge.transport import (
    OcspError,
    OcspStapler,
    ReloadableServerContext,
    TLSSettings,
    check_ocsp_response,
    ocsp_url,
)

URL = "http://127.0.0.1:8888/"
NOW = 1_800_000_000.0


def _load(certs: Any) -> tuple[x509.Certificate, x509.Certificate, Any]:
    """(certificate, issuer, issuer's key) of a L{make_certificates} set."""
    return (x509.load_pem_x509_certificate(certs.cert_pem),
            x509.load_pem_x509_certificate(certs.ca_pem),
            serialization.load_pem_private_key(certs.ca_key_pem, None))


def _response(certificate: x509.Certificate, issuer: x509.Certificate, key: Any, *,
              status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
              this_update: float = NOW - 60, next_update: float | None = NOW + 7200,
              signer: tuple[x509.Certificate, Any] | None = None) -> bytes:
    """A signed OCSP response about C{certificate}."""
    def when(t: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(t, datetime.UTC)

    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=certificate, issuer=issuer, algorithm=hashes.SHA1(), cert_status=status,
        this_update=when(this_update),
        next_update=None if next_update is None else when(next_update),
        revocation_time=when(NOW - 3600) if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    responder, responder_key = signer or (issuer, key)
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
    if signer is not None:
        builder = builder.certificates([responder])
    return builder.sign(responder_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class CheckTests(SynchronousTestCase):
    """L{check_ocsp_response} and L{ocsp_url}."""

    def setUp(self) -> None:
        self.certificate, self.issuer, self.key = _load(
            make_certificates("sip.example.test", ocsp_url=URL))

    def test_url(self) -> None:
        """The responder URL is read from the certificate; without one, C{None}."""
        self.assertEqual(ocsp_url(self.certificate), URL)
        self.assertIsNone(ocsp_url(self.issuer))

    def test_good(self) -> None:
        """A good, current response signed by the issuer checks out."""
        der = _response(self.certificate, self.issuer, self.key)
        response = check_ocsp_response(der, self.certificate, self.issuer, NOW)
        self.assertEqual(response.certificate_status, ocsp.OCSPCertStatus.GOOD)

    def test_refused(self) -> None:
        """
        Revoked, expired, about another certificate, signed by someone
        else, or not OCSP at all: each is refused with its reason.
        """
        other, other_issuer, other_key = _load(make_certificates("other.test", ocsp_url=URL))
        cases = [
            (_response(self.certificate, self.issuer, self.key,
                       status=ocsp.OCSPCertStatus.REVOKED), "revoked"),
            (_response(self.certificate, self.issuer, self.key, next_update=NOW - 1),
             "expired"),
            (_response(other, other_issuer, other_key), "another certificate"),
            (_response(self.certificate, self.issuer, self.key,
                       signer=(other_issuer, other_key)), "not signed"),
            (b"\x30\x03\x0a\x01\x01", "malformed_request"),
            (b"junk", "not an OCSP response"),
        ]
        for der, why in cases:
            error = self.assertRaises(OcspError, check_ocsp_response, der, self.certificate,
                                      self.issuer, NOW)
            self.assertIn(why.lower(), str(error).lower())

    def test_delegated_responder(self) -> None:
        """A responder the issuer gave the OCSP signing usage may sign."""
        responder_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "OCSP responder")])
        responder = (
            x509.CertificateBuilder().subject_name(name).issuer_name(self.issuer.subject)
            .public_key(responder_key.public_key()).serial_number(7)
            .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.OCSP_SIGNING]),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        der = _response(self.certificate, self.issuer, self.key,
                        signer=(responder, responder_key))
        check_ocsp_response(der, self.certificate, self.issuer, NOW)


class StaplerTests(SynchronousTestCase):
    """L{OcspStapler} on a Clock, its fetches answered here."""

    def setUp(self) -> None:
        self.certs = make_certificates("sip.example.test", ocsp_url=URL)
        self.certificate, self.issuer, self.key = _load(self.certs)
        self.clock = Clock()
        self.clock.advance(NOW)
        self.requests: list[tuple[str, bytes]] = []
        self.answers: list[Deferred[bytes]] = []
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def fetch(self, url: str, request: bytes) -> Deferred[bytes]:
        self.requests.append((url, request))
        return self.answers.pop(0) if self.answers else fail(ConnectionRefusedError())

    def stapler(self) -> OcspStapler:
        stapler = OcspStapler.for_chain([self.certificate, self.issuer], self.clock, self.fetch)
        assert stapler is not None
        self.addCleanup(stapler.stop)
        return stapler

    def test_no_stapler(self) -> None:
        """No responder URL (self-signed), or no issuer in the chain: no stapler."""
        plain = _load(make_certificates("sip.example.test"))
        self.assertIsNone(OcspStapler.for_chain([plain[0], plain[1]], self.clock, self.fetch))
        self.assertIsNone(OcspStapler.for_chain([self.certificate], self.clock, self.fetch))
        self.assertEqual(self.requests, [])

    def test_fetch_and_refresh(self) -> None:
        """
        Started, it asks the responder about the certificate (a DER OCSP
        request for its serial number) and staples the good answer; it
        fetches again at half the time to the response's next update.
        """
        good = _response(self.certificate, self.issuer, self.key, next_update=NOW + 7200)
        self.answers.append(succeed(good))
        stapler = self.stapler()
        self.assertEqual(stapler.staple(), b"")
        stapler.start()
        [(url, request)] = self.requests
        self.assertEqual(url, URL)
        self.assertEqual(ocsp.load_der_ocsp_request(request).serial_number,
                         self.certificate.serial_number)
        self.assertEqual(stapler.staple(), good)
        self.clock.advance(3599)
        self.assertEqual(len(self.requests), 1)
        newer = _response(self.certificate, self.issuer, self.key, this_update=NOW + 3600,
                          next_update=NOW + 14400)
        self.answers.append(succeed(newer))
        self.clock.advance(1)
        self.assertEqual((len(self.requests), stapler.staple()), (2, newer))

    def test_failure_keeps_valid_response(self) -> None:
        """
        A failed refresh keeps the previous response while it is valid and
        retries later; once it expires, nothing is stapled.
        """
        events = _capture(self)
        self.answers.append(succeed(_response(self.certificate, self.issuer, self.key,
                                              next_update=NOW + 600)))
        stapler = self.stapler()
        stapler.start()
        good = stapler.staple()
        self.clock.advance(300)  # refresh fails (no answer queued: refused)
        self.assertEqual((stapler.failures, stapler.staple()), (1, good))
        self.assertTrue(any("still stapled" in _text(e) for e in events))
        self.clock.advance(300)  # expired; the retry fails again
        self.assertEqual(stapler.staple(), b"")
        self.assertEqual(stapler.failures, 2)

    def test_bad_response_not_stapled(self) -> None:
        """A revoked answer is logged and not stapled; the next try is in C{retry} seconds."""
        events = _capture(self)
        self.answers.append(succeed(_response(self.certificate, self.issuer, self.key,
                                              status=ocsp.OCSPCertStatus.REVOKED)))
        stapler = self.stapler()
        stapler.start()
        self.assertEqual((stapler.staple(), stapler.failures), (b"", 1))
        self.assertTrue(any("revoked" in _text(e) for e in events))
        self.answers.append(succeed(_response(self.certificate, self.issuer, self.key)))
        self.clock.advance(300)
        self.assertNotEqual(stapler.staple(), b"")

    def test_slow_responder(self) -> None:
        """
        A handshake never waits: while a fetch is under way nothing is
        stapled; stopped, a late answer is ignored.
        """
        pending: Deferred[bytes] = Deferred()
        self.answers.append(pending)
        stapler = self.stapler()
        stapler.start()
        self.assertEqual(stapler.staple(), b"")
        stapler.stop()
        pending.callback(_response(self.certificate, self.issuer, self.key))
        self.assertEqual(stapler.staple(), b"")  # stopped: the late answer is ignored

    def test_server_context(self) -> None:
        """
        L{ReloadableServerContext} with a fetch staples for a certificate
        file whose chain allows it (the issuer after the certificate), and
        not for the self-signed one; L{ReloadableServerContext.close}
        stops it.
        """
        directory = Path(self.mktemp())
        _, _, key = self.certs.write(str(directory))
        chain = directory / "chain.pem"
        chain.write_bytes(self.certs.cert_pem + self.certs.ca_pem)
        self.answers.append(succeed(_response(self.certificate, self.issuer, self.key)))
        context = ReloadableServerContext(
            TLSSettings(certificate=str(chain), private_key=key), clock=self.clock,
            ocsp_fetch=self.fetch)
        self.addCleanup(context.close)
        assert context.stapler is not None
        self.assertNotEqual(context.stapler.staple(), b"")
        self_signed = ReloadableServerContext(
            TLSSettings(state_dir=str(directory / "state"), domains=("sip.example.test",)),
            clock=self.clock, ocsp_fetch=self.fetch)
        self.assertIsNone(self_signed.stapler)
        context.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])


def _capture(case: SynchronousTestCase) -> Any:
    from sipedge.testing import capture_log

    return capture_log(case)


def _text(event: dict[str, Any]) -> str:
    from twisted.logger import formatEvent

    return formatEvent(event)


class _Responder(BaseHTTPRequestHandler):
    """HTTP in front of C{openssl ocsp}: each POSTed request is answered by it."""

    server: Any

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.server.answer(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _OpensslResponder(HTTPServer):
    """
    An OCSP responder on 127.0.0.1: C{openssl ocsp} signs each answer
    with the test CA from its index file. (C{openssl ocsp -port} would
    listen on every interface: here only the HTTP in front of it listens,
    on loopback.)
    """

    def __init__(self, work: Path, openssl: str) -> None:
        super().__init__(("127.0.0.1", 0), _Responder)
        self.work = work
        self.openssl = openssl
        self.requests = 0
        self.lock = threading.Lock()

    def answer(self, request: bytes) -> bytes:
        with self.lock:
            self.requests += 1
            (self.work / "req.der").write_bytes(request)
            subprocess.run(
                [self.openssl, "ocsp", "-index", "index.txt", "-CA", "ca.pem",
                 "-rsigner", "ca.pem", "-rkey", "ca-key.pem", "-reqin", "req.der",
                 "-respout", "resp.der", "-ndays", "1"],
                cwd=self.work, capture_output=True, timeout=30, check=True,
            )
            return (self.work / "resp.der").read_bytes()


_CONFIG = """
[sip]
listen = ["tls:127.0.0.1:0"]
domains = ["sip.example.test"]
[state]
path = "state"
"""


class OpensslTests(SynchronousTestCase):
    """
    The real C{twistd sipedge} stapling what C{openssl ocsp} answers, as
    C{openssl s_client} sees it.
    """

    def setUp(self) -> None:
        self.openssl = require_tool("openssl")
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)

    def start(self, tls: str) -> SipEdgeProcess:
        proxy = SipEdgeProcess(self.work / "edge", _CONFIG + tls)
        self.addCleanup(proxy.stop)
        proxy.start()
        return proxy

    def status(self, port: int) -> str:
        """What C{openssl s_client -status} says of the stapled OCSP response."""
        result = subprocess.run(
            [self.openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-status",
             "-servername", "sip.example.test"],
            input="", capture_output=True, text=True, timeout=30,
        )
        return result.stdout

    def test_stapled(self) -> None:
        """
        A certificate from a CA whose OCSP responder (its AIA URL) is
        C{openssl ocsp} on loopback, with the CA after it in the file:
        sipedge fetches the response in the background and a TLS client
        asking for the status gets it stapled: successful, good, for the
        certificate's serial number.
        """
        self.stapled()

    def test_stapled_by_workers(self) -> None:
        """With C{[process] workers = 2}, every worker staples its response."""
        self.stapled("[process]\nworkers = 2\n", workers=2)

    def stapled(self, extra: str = "", workers: int = 1) -> None:
        """The TLS listeners staple a good OCSP response (C{workers} of them fetch it)."""
        responder = _OpensslResponder(self.work, self.openssl)
        thread = threading.Thread(target=responder.serve_forever, kwargs={"poll_interval": 0.1})
        thread.start()

        def stop() -> None:
            responder.shutdown()
            thread.join(10)
            responder.server_close()

        self.addCleanup(stop)
        url = f"http://127.0.0.1:{responder.server_address[1]}/"
        certs = make_certificates("sip.example.test", ocsp_url=url)
        certificate = x509.load_pem_x509_certificate(certs.cert_pem)
        serial = f"{certificate.serial_number:X}"
        serial = "0" * (len(serial) % 2) + serial  # as OpenSSL writes it: whole bytes
        (self.work / "ca.pem").write_bytes(certs.ca_pem)
        (self.work / "ca-key.pem").write_bytes(certs.ca_key_pem)
        (self.work / "index.txt").write_text(
            f"V\t21000101000000Z\t\t{serial}\tunknown\t"
            "/CN=sip.example.test\n")
        (self.work / "chain.pem").write_bytes(certs.cert_pem + certs.ca_pem)
        (self.work / "key.pem").write_bytes(certs.key_pem)
        proxy = self.start(f'[tls]\ncertificate = "{self.work / "chain.pem"}"\n'
                           f'private_key = "{self.work / "key.pem"}"\n' + extra)
        deadline = time.monotonic() + 20
        while proxy.log().count("good, stapled") < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertGreaterEqual(proxy.log().count("good, stapled"), workers, proxy.log()[-3000:])
        status = self.status(proxy.ports["TLS"])
        self.assertIn("OCSP Response Status: successful", status)
        self.assertIn("Cert Status: good", status)
        self.assertIn(f"Serial Number: {serial}", status)
        self.assertGreaterEqual(responder.requests, 1)

    def test_self_signed_not_stapled(self) -> None:
        """sipedge's self-signed certificate names no responder: nothing is stapled."""
        proxy = self.start("")
        status = self.status(proxy.ports["TLS"])
        self.assertIn("OCSP response: no response sent", status)
        self.assertNotIn("OCSP", proxy.log())
