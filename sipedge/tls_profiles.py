# -*- test-case-name: sipedge.test.test_tls_profiles -*-
"""
TLS protocol versions and cipher suites (a leaf module: the SIP transports
and the media relay's control port both use it), after Mozilla's server-side TLS
recommendations (version 5.7): the C{intermediate} profile, the default,
takes TLS 1.2 with ECDHE key exchange and AEAD ciphers only, and TLS 1.3;
C{modern} takes TLS 1.3 alone. C{[tls] ciphers} replaces a profile's TLS
1.2 list with an OpenSSL cipher string of the operator's.

Static RSA key exchange (no forward secrecy) and CBC suites with SHA-1 or
SHA-2 MACs are what reviewers flag; neither profile has them. The
finite-field DHE suites of Mozilla's list are left out too: they need
Diffie-Hellman parameters of their own and add nothing ECDHE lacks for SIP
phones, which have all offered ECDHE for a decade.
"""

from __future__ import annotations

import attrs
from OpenSSL import SSL
from twisted.internet.ssl import AcceptableCiphers, TLSVersion

from sipedge.error import ConfigError

__all__ = ["TLS_PROFILES", "TlsProfile", "tls_profile"]


@attrs.frozen
class TlsProfile:
    """
    One TLS policy.

    @ivar name: what C{[tls] profile} calls it.
    @ivar minimum: the oldest protocol version accepted.
    @ivar ciphers: the OpenSSL cipher string for TLS 1.2 (TLS 1.3 has its
        own, all-AEAD suites, which OpenSSL enables by default).
    """

    name: str
    minimum: TLSVersion
    ciphers: str

    def with_ciphers(self, ciphers: str) -> TlsProfile:
        """This profile with C{ciphers} as its TLS 1.2 cipher string."""
        return attrs.evolve(self, ciphers=ciphers)

    def acceptable_ciphers(self) -> AcceptableCiphers:
        """
        The ciphers for Twisted's C{CertificateOptions(acceptableCiphers=)}.

        @raise ConfigError: if OpenSSL knows none of the cipher string's
            suites, naming C{tls.ciphers}.
        """
        try:
            context = SSL.Context(SSL.TLS_METHOD)
            context.set_cipher_list(self.ciphers.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError) as e:
            raise ConfigError(
                f"tls.ciphers: OpenSSL accepts no cipher in {self.ciphers!r} ({e})"
            ) from None
        return AcceptableCiphers.fromOpenSSLCipherString(self.ciphers)


_INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

#: The profiles C{[tls] profile} may name.
TLS_PROFILES: dict[str, TlsProfile] = {
    "intermediate": TlsProfile("intermediate", TLSVersion.TLSv1_2, _INTERMEDIATE_CIPHERS),
    # TLS 1.3 only; the TLS 1.2 list is kept for a client context that
    # must still name ciphers, but no TLS 1.2 handshake can happen.
    "modern": TlsProfile("modern", TLSVersion.TLSv1_3, _INTERMEDIATE_CIPHERS),
}


def tls_profile(name: str, ciphers: str | None = None) -> TlsProfile:
    """
    The profile called C{name}, with C{ciphers} (an OpenSSL cipher string)
    in place of its TLS 1.2 list if given.

    @raise ConfigError: for an unknown profile or an unusable cipher string.
    """
    try:
        profile = TLS_PROFILES[name]
    except KeyError:
        choices = ", ".join(sorted(TLS_PROFILES))
        raise ConfigError(f"tls.profile: unknown profile {name!r} (choose {choices})") from None
    if ciphers is not None:
        if not ciphers.strip():
            raise ConfigError("tls.ciphers: empty; leave it out for the profile's list")
        profile = profile.with_ciphers(ciphers)
    profile.acceptable_ciphers()  # fail at start-up, not at the first handshake
    return profile
