# -*- test-case-name: sipedge.test.test_ocsp -*-
"""
OCSP stapling (RFC 6066 section 8, RFC 6960): the TLS server sends, in its
handshake, a recent signed statement from its CA that its certificate is
not revoked, so clients need not ask the CA themselves.

L{OcspStapler} fetches that statement in the background from the OCSP
responder the certificate names (its Authority Information Access
extension) and refreshes it at half its validity; the handshake only reads
what is there. A certificate with no responder URL (the self-signed one
sipedge makes) or without its issuer in the chain gets no stapler. A fetch
that fails, or a response that does not check out (wrong signature,
another certificate's, revoked, expired), is logged and leaves no staple
(or the previous one, while it is still valid); the next try is
C{retry} seconds later. A handshake never waits for a fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["OcspError", "OcspStapler", "check_ocsp_response", "http_fetch", "ocsp_url"]

#: C{fetch(url, request) -> Deferred[response]}: one OCSP exchange over HTTP.
Fetch = Callable[[str, bytes], "Deferred[bytes]"]

_MAX_RESPONSE = 64 * 1024


class OcspError(Exception):
    """An OCSP response that cannot be stapled; the message says why."""


def ocsp_url(certificate: x509.Certificate) -> str | None:
    """The C{http://} URL of the OCSP responder C{certificate} names, if any."""
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for description in aia.value:
        location = description.access_location
        if (description.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(location, x509.UniformResourceIdentifier)
                and location.value.startswith("http://")):
            return location.value
    return None


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _verify(key: Any, signature: bytes, data: bytes, algorithm: Any) -> None:
    """@raise InvalidSignature: unless C{key} signed C{data}."""
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(signature, data)
    else:
        raise InvalidSignature(f"unsupported responder key {type(key).__name__}")


def check_ocsp_response(
    der: bytes, certificate: x509.Certificate, issuer: x509.Certificate, now: float
) -> ocsp.OCSPResponse:
    """
    The response in C{der} if it can be stapled for C{certificate} at
    C{now}: successful, about C{certificate}, signed by C{issuer} or by a
    responder C{issuer} delegated OCSP signing to, status good, and
    current.

    @raise OcspError: saying what is wrong.
    """
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as e:
        raise OcspError(f"not an OCSP response: {e}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"the responder answered {response.response_status.name}")
    if response.serial_number != certificate.serial_number:
        raise OcspError("the response is about another certificate")
    signer = issuer
    for responder in response.certificates:
        if responder == issuer:
            break
        try:
            usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = x509.ExtendedKeyUsage([])
        if _issued_by(responder, issuer) and ExtendedKeyUsageOID.OCSP_SIGNING in usages:
            signer = responder
            break
    try:
        _verify(signer.public_key(), response.signature, response.tbs_response_bytes,
                response.signature_hash_algorithm)
    except InvalidSignature:
        raise OcspError("the response is not signed by the certificate's issuer") from None
    status = response.certificate_status
    if status != ocsp.OCSPCertStatus.GOOD:
        raise OcspError(f"the responder says the certificate is {status.name.lower()}")
    if response.this_update_utc.timestamp() > now + 300:
        raise OcspError("the response is not valid yet (clock skew?)")
    next_update = response.next_update_utc
    if next_update is not None and next_update.timestamp() <= now:
        raise OcspError("the response has expired")
    return response


class OcspStapler:
    """
    The OCSP response to staple for one certificate, kept fresh.

    @ivar response: the DER response stapled now, or C{None}.
    @ivar fetched: good responses received; C{failures}: fetches that
        failed or did not check out.
    """

    _log = Logger()

    def __init__(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        url: str,
        clock: IReactorTime,
        fetch: Fetch,
        *,
        retry: float = 300.0,
        refresh: float = 3600.0,
    ) -> None:
        """
        @param url: the responder's URL.
        @param fetch: one OCSP exchange (L{http_fetch}).
        @param retry: seconds to the next try after a failure.
        @param refresh: seconds to the next fetch when a response gives no
            next update (else half the time to it).
        """
        self.certificate = certificate
        self.issuer = issuer
        self.url = url
        self._clock = clock
        self._fetch = fetch
        self._retry = retry
        self._refresh = refresh
        self._request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        self._expires: float | None = None
        self._call: IDelayedCall | None = None
        self._running = False
        self.response: bytes | None = None
        self.fetched = 0
        self.failures = 0

    @classmethod
    def for_chain(
        cls, chain: Sequence[x509.Certificate], clock: IReactorTime, fetch: Fetch, **kw: Any
    ) -> OcspStapler | None:
        """
        A stapler for C{chain[0]}, or C{None} if it names no OCSP
        responder (a self-signed certificate) or its issuer is not in the
        chain (the request needs the issuer's name and key hashes).
        """
        if not chain:
            return None
        certificate = chain[0]
        url = ocsp_url(certificate)
        if url is None:
            return None
        issuer = next((c for c in chain[1:] if _issued_by(certificate, c)), None)
        if issuer is None:
            cls._log.warn(
                "OCSP stapling off: the certificate names the responder {url} but its issuer"
                " is not in the certificate file (add the intermediate after it)", url=url)
            return None
        return cls(certificate, issuer, url, clock, fetch, **kw)

    def start(self) -> None:
        """Fetch now, and keep fetching."""
        self._running = True
        self._fetch_now()

    def stop(self) -> None:
        """Fetch no more (a fetch under way is ignored when it ends)."""
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def staple(self, connection: object = None, data: object = None) -> bytes:
        """
        The response to staple now (empty: none); pyOpenSSL's OCSP server
        callback. Never waits: it reads what the last fetch left.
        """
        if self.response is not None and self._expires is not None and (
            self._clock.seconds() >= self._expires
        ):
            self._log.warn("OCSP response for the certificate expired before a new one came:"
                           " stapling none")
            self.response = None
        return self.response or b""

    def _fetch_now(self) -> None:
        self._call = None
        try:
            d = self._fetch(self.url, self._request)
        except Exception:
            self._failed(Failure())
            return
        d.addCallbacks(self._fetched, self._failed)

    def _fetched(self, der: bytes) -> None:
        if not self._running:
            return
        now = self._clock.seconds()
        try:
            response = check_ocsp_response(der, self.certificate, self.issuer, now)
        except OcspError:
            self._failed(Failure())
            return
        self.response = der
        self.fetched += 1
        next_update = response.next_update_utc
        self._expires = None if next_update is None else next_update.timestamp()
        delay = self._refresh if self._expires is None else max(60.0, (self._expires - now) / 2)
        self._log.info(
            "OCSP response for the TLS certificate (serial {serial:x}) from {url}: good,"
            " stapled; next fetch in {delay:.0f} s",
            serial=self.certificate.serial_number, url=self.url, delay=delay)
        self._schedule(delay)

    def _failed(self, failure: Failure) -> None:
        if not self._running:
            return
        self.failures += 1
        kept = self.response is not None and (
            self._expires is None or self._clock.seconds() < self._expires)
        self._log.warn(
            "OCSP: no usable response from {url}: {why}; {what}; next try in {retry:.0f} s",
            url=self.url, why=failure.getErrorMessage() or repr(failure.value),
            what="the previous one is still stapled" if kept else "stapling none",
            retry=self._retry)
        if not kept:
            self.response = None
        self._schedule(self._retry)

    def _schedule(self, delay: float) -> None:
        if self._running:
            self._call = self._clock.callLater(delay, self._fetch_now)


def http_fetch(reactor: Any, timeout: float = 10.0) -> Fetch:
    """One OCSP exchange over HTTP POST (RFC 6960 appendix A) on C{reactor}."""
    from twisted.web.client import Agent, FileBodyProducer, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor)

    def fetch(url: str, request: bytes) -> Deferred[bytes]:
        d: Deferred[Any] = agent.request(
            b"POST", url.encode("ascii"),
            Headers({b"Content-Type": [b"application/ocsp-request"]}),
            FileBodyProducer(BytesIO(request)),
        )

        def read(response: Any) -> Deferred[bytes]:
            if response.code != 200:
                raise OcspError(f"HTTP {response.code} from the responder")
            length = response.length
            if isinstance(length, int) and length > _MAX_RESPONSE:
                raise OcspError(f"a response of {length} bytes")
            body: Deferred[bytes] = readBody(response)
            return body

        d.addCallback(read)
        d.addTimeout(timeout, reactor)
        return d

    return fetch
