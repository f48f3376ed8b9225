# -*- test-case-name: sipedge.test.test_tls_reload -*-
"""
A TLS server context whose certificate can be replaced while the listeners
run: every new handshake asks L{ReloadableServerContext} for the current
OpenSSL context; connections already up keep the context they started with.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
)
from twisted.internet.ssl import CertificateOptions
from zope.interface import implementer

from sipedge.transport._ocsp import Fetch, OcspStapler
from sipedge.transport._tls import TLSSettings, server_context_factory

__all__ = ["ReloadableServerContext", "certificate_fingerprint"]


def certificate_fingerprint(options: CertificateOptions) -> str:
    """The SHA-256 fingerprint (hex, colon-separated) of C{options}' certificate."""
    certificate: Any = options.certificate
    if not isinstance(certificate, x509.Certificate):
        certificate = certificate.to_cryptography()
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class ReloadableServerContext:
    """
    The server side of TLS (see L{server_context_factory}), reloadable:
    L{reload} reads the certificate and key again and, if they are good,
    new handshakes present them. Give it to
    L{sipedge.transport.TransportManager.listen_tls} in place of the
    factory itself.

    @ivar fingerprint: the SHA-256 fingerprint of the certificate new
        handshakes present.
    @ivar stapler: the L{OcspStapler} of that certificate, or C{None}
        (no C{ocsp_fetch}, or a certificate that names no OCSP responder or
        comes without its issuer).
    """

    def __init__(
        self,
        settings: TLSSettings,
        *,
        clock: IReactorTime,
        hostname: str | None = None,
        ocsp_fetch: Fetch | None = None,
    ) -> None:
        """
        @param ocsp_fetch: with it, OCSP responses are stapled where the
            certificate allows (L{OcspStapler}); stop them with L{close}.
        @raise ConfigError: as L{server_context_factory} does.
        """
        self._clock = clock
        self._hostname = hostname
        self._ocsp_fetch = ocsp_fetch
        self.settings = settings
        self._current = server_context_factory(settings, clock=clock, hostname=hostname)
        self.fingerprint = certificate_fingerprint(self._current)
        self.stapler = self._staple(self._current)

    def _staple(self, options: CertificateOptions) -> OcspStapler | None:
        """A started stapler for C{options}' certificate, its callback set, or C{None}."""
        if self._ocsp_fetch is None:
            return None
        chain = [c if isinstance(c, x509.Certificate) else c.to_cryptography()
                 for c in [options.certificate, *(options.extraCertChain or ())]]
        stapler = OcspStapler.for_chain(chain, self._clock, self._ocsp_fetch)
        if stapler is not None:
            options.getContext().set_ocsp_server_callback(stapler.staple)
            stapler.start()
        return stapler

    def close(self) -> None:
        """Stop stapling (the stapler's timer and fetches)."""
        if self.stapler is not None:
            self.stapler.stop()

    def getContext(self) -> SSL.Context:
        """The OpenSSL context for a new connection."""
        return self._current.getContext()

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A new server-side OpenSSL connection, on the current context."""
        return SSL.Connection(self.getContext(), None)

    def reload(self, settings: TLSSettings | None = None) -> bool:
        """
        Read the certificate and key again (from C{settings}' files if
        given, else from the same settings; without configured files the
        self-signed certificate is reused, or made anew if it is gone or
        expiring). On any error nothing changes.

        @return: whether new handshakes now present another certificate.
        @raise ConfigError: naming the setting and the file at fault.
        """
        settings = settings if settings is not None else self.settings
        options = server_context_factory(settings, clock=self._clock, hostname=self._hostname)
        fingerprint = certificate_fingerprint(options)
        changed = fingerprint != self.fingerprint
        self.close()
        self.stapler = self._staple(options)
        self._current, self.fingerprint, self.settings = options, fingerprint, settings
        return changed
