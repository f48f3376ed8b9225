# -*- test-case-name: sipedge.test.test_transport -*-
"""
TLS settings for SIP over TLS (RFC 3261 26.2.1, RFC 5922, RFC 5630): the
server's certificate (configured, or a self-signed one made on first start),
optional client certificates, and verifying clients for outgoing
connections.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet.interfaces import IReactorTime
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)
from twisted.logger import Logger

from sipedge.error import ConfigError
from sipedge.tls_profiles import TlsProfile, tls_profile

__all__ = [
    "CERTIFICATE_FILE",
    "KEY_FILE",
    "MINIMUM_TLS_VERSION",
    "ClientTLSContexts",
    "TLSSettings",
    "ensure_self_signed",
    "generate_self_signed",
    "server_context_factory",
]

#: File names of a generated self-signed certificate in the state directory.
CERTIFICATE_FILE = "sipedge-cert.pem"
KEY_FILE = "sipedge-key.pem"

#: Nothing older than TLS 1.2 (RFC 8996 deprecates 1.0 and 1.1).
MINIMUM_TLS_VERSION = TLSVersion.TLSv1_2

_CLIENT_CERTIFICATE_MODES = ("none", "request", "require")
_log = Logger()


def _optional_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TLSSettings:
    """
    TLS configuration (frozen; build it from the config file).

    @ivar certificate: PEM file with our certificate, then any
        intermediates. With C{private_key}; if neither is set, a
        self-signed certificate is made in C{state_dir}.
    @ivar private_key: PEM file with the certificate's private key.
    @ivar state_dir: where a self-signed certificate is kept.
    @ivar domains: our SIP domains: the first is the self-signed
        certificate's common name, all go into its subjectAltName.
    @ivar addresses: IP addresses for a self-signed certificate's
        subjectAltName (wildcards are skipped).
    @ivar client_certificates: C{"none"}, C{"request"} (verified if sent)
        or C{"require"}: client certificates on incoming connections.
    @ivar client_ca: PEM bundle of the CAs client certificates must chain
        to (needed unless C{client_certificates} is C{"none"}).
    @ivar trust_roots: PEM bundle of CAs that servers we connect to must
        chain to; C{None} for the platform's trust store.
    @ivar client_certificate: PEM file (certificate, then intermediates) we
        present on outgoing connections, or C{None}.
    @ivar client_private_key: its private key.
    @ivar insecure_client: do not verify servers we connect to. For labs
        only: anyone on the path can then read and change the signalling.
    @ivar profile: the protocol versions and ciphers, in and out (see
        L{sipedge.tls_profiles}): C{"intermediate"} or C{"modern"}.
    @ivar ciphers: an OpenSSL cipher string in place of the profile's TLS
        1.2 list, or C{None}.
    @ivar key_type: the key of a self-signed certificate made anew:
        C{"ec"} (ECDSA P-256) or C{"rsa"} (2048 bits).
    """

    certificate: str | None = None
    private_key: str | None = None
    state_dir: str | None = None
    domains: tuple[str, ...] = attrs.field(default=(), converter=_optional_tuple)
    addresses: tuple[str, ...] = attrs.field(default=(), converter=_optional_tuple)
    client_certificates: str = attrs.field(
        default="none", validator=attrs.validators.in_(_CLIENT_CERTIFICATE_MODES)
    )
    client_ca: str | None = None
    trust_roots: str | None = None
    client_certificate: str | None = None
    client_private_key: str | None = None
    insecure_client: bool = False
    profile: str = "intermediate"
    ciphers: str | None = None
    key_type: str = attrs.field(default="ec", validator=attrs.validators.in_(("ec", "rsa")))

    def tls_profile(self) -> TlsProfile:
        """The versions and ciphers these settings ask for.

        @raise ConfigError: for an unknown profile or unusable ciphers."""
        return tls_profile(self.profile, self.ciphers)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror}") from e


def _load_chain(path: str, what: str) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ConfigError(f"{what}: no PEM certificate in {path}: {e}") from e
    return chain


def _load_key(path: str, what: str) -> Any:
    data = _read(path, what)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{what}: no unencrypted PEM private key in {path}: {e}") from e


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_pair(chain: list[x509.Certificate], key: Any, what: str) -> None:
    if _public_bytes(chain[0].public_key()) != _public_bytes(key.public_key()):
        raise ConfigError(f"{what}: the private key does not match the certificate")


def generate_self_signed(
    common_name: str,
    dns_names: tuple[str, ...] | list[str] = (),
    ip_addresses: tuple[str, ...] | list[str] = (),
    *,
    not_before: datetime,
    not_after: datetime,
    key_type: str = "ec",
) -> tuple[bytes, bytes]:
    """
    A self-signed server certificate and its key, both PEM.

    @param key_type: C{"ec"} (ECDSA P-256, the default) or C{"rsa"}
        (2048 bits, for the rare phone that takes no ECDSA).
    @return: C{(certificate_pem, key_pem)}.
    """
    if key_type == "rsa":
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ip_addresses)]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _write_private(path: str, data: bytes, mode: int) -> None:
    """Write C{data} to C{path} atomically, created with C{mode}."""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".sipedge-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _reusable(cert_path: str, key_path: str, common_name: str, now: datetime) -> str | None:
    """Why the certificate in the state directory cannot be reused, or None."""
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        return "none there yet"
    try:
        chain = _load_chain(cert_path, "self-signed certificate")
        key = _load_key(key_path, "self-signed certificate key")
        _check_pair(chain, key, "self-signed certificate")
    except ConfigError as e:
        return str(e)
    certificate = chain[0]
    if certificate.not_valid_before_utc > now:
        return "it is not valid yet"
    if certificate.not_valid_after_utc < now + timedelta(days=1):
        return "it has expired or is about to"
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != common_name:
        return f"it is not for {common_name}"
    return None


def ensure_self_signed(
    state_dir: str,
    common_name: str,
    dns_names: tuple[str, ...] | list[str] = (),
    ip_addresses: tuple[str, ...] | list[str] = (),
    *,
    clock: IReactorTime,
    key_type: str = "ec",
    lifetime: timedelta = timedelta(days=825),
) -> tuple[str, str]:
    """
    The paths of a self-signed certificate and key in C{state_dir}
    (L{CERTIFICATE_FILE}, L{KEY_FILE}): the ones already there if they are
    valid at C{clock}'s time and for C{common_name}, else new ones. The key
    file is created with mode 0600, the directory (if missing) with 0700.

    @return: C{(certificate_path, key_path)}.
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    cert_path = os.path.join(state_dir, CERTIFICATE_FILE)
    key_path = os.path.join(state_dir, KEY_FILE)
    now = datetime.fromtimestamp(clock.seconds(), UTC)
    why = _reusable(cert_path, key_path, common_name, now)
    if why is None:
        return cert_path, key_path
    _log.info(
        "Generating a self-signed certificate for {common_name} in {path}: {why}",
        common_name=common_name,
        path=state_dir,
        why=why,
    )
    cert_pem, key_pem = generate_self_signed(
        common_name,
        dns_names,
        ip_addresses,
        not_before=now - timedelta(hours=1),
        not_after=now + lifetime,
        key_type=key_type,
    )
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert_pem, 0o644)
    return cert_path, key_path


def _openssl_chain(chain: list[x509.Certificate]) -> list[crypto.X509]:
    return [crypto.X509.from_cryptography(c) for c in chain]


def server_context_factory(
    settings: TLSSettings, *, clock: IReactorTime, hostname: str | None = None
) -> CertificateOptions:
    """
    The server side of TLS: our certificate chain and key, TLS 1.2 or
    newer, and client certificates as configured.

    Without a configured certificate, a self-signed one is made (or
    reused) in C{settings.state_dir} for the first domain (or C{hostname},
    by default this host's name), and a warning is logged: peers that
    verify certificates will refuse it.

    @raise ConfigError: for a missing, unreadable or mismatched file.
    """
    if (settings.certificate is None) != (settings.private_key is None):
        raise ConfigError("tls.certificate and tls.private_key must be given together")
    if settings.certificate is not None and settings.private_key is not None:
        cert_path, key_path = settings.certificate, settings.private_key
    else:
        if settings.state_dir is None:
            raise ConfigError("no certificate configured and no state_dir to make one in")
        host = hostname or socket.gethostname()
        common_name = settings.domains[0] if settings.domains else host
        dns_names = settings.domains or (host,)
        addresses = tuple(a for a in settings.addresses if a not in ("", "0.0.0.0", "::"))
        cert_path, key_path = ensure_self_signed(
            settings.state_dir, common_name, dns_names, addresses, clock=clock,
            key_type=settings.key_type,
        )
        _log.warn(
            "TLS uses a self-signed certificate for {common_name} ({path}); peers that"
            " verify certificates will refuse it: configure certificate and private_key",
            common_name=common_name,
            path=cert_path,
        )
    chain = _load_chain(cert_path, "tls.certificate")
    key = _load_key(key_path, "tls.private_key")
    _check_pair(chain, key, "tls.private_key")
    # pyOpenSSL takes cryptography objects (and deprecates its own).
    profile = settings.tls_profile()
    options: dict[str, Any] = {
        "privateKey": key,
        "certificate": chain[0],
        "raiseMinimumTo": profile.minimum,
        "acceptableCiphers": profile.acceptable_ciphers(),
    }
    if len(chain) > 1:
        options["extraCertChain"] = chain[1:]
    if settings.client_certificates != "none":
        if settings.client_ca is None:
            raise ConfigError(
                f"client_certificates = {settings.client_certificates!r} needs client_ca"
            )
        options.update(
            verify=True,
            caCerts=_openssl_chain(_load_chain(settings.client_ca, "client_ca")),
            requireCertificate=settings.client_certificates == "require",
        )
    factory = CertificateOptions(**options)
    factory.getContext()  # fail now, not on the first connection
    return factory


class ClientTLSContexts:
    """
    The client side of TLS: called with the name a server must prove
    (a SIP domain or host name, RFC 5922 7.2, or an IP address) it returns
    the connection creator for L{TLSMemoryBIOFactory}. Servers are verified
    against C{settings.trust_roots} (or the platform's trust store) with
    service_identity, unless C{settings.insecure_client} says not to.
    """

    _log = Logger()
    _CACHE_SIZE = 1024

    def __init__(self, settings: TLSSettings | None = None) -> None:
        settings = settings or TLSSettings()
        self._trust: Any = None
        if settings.trust_roots is not None:
            self._trust = trustRootFromCertificates(
                [Certificate(c) for c in _openssl_chain(_load_chain(settings.trust_roots,
                                                                    "trust_roots"))]
            )
        # Our certificate for outgoing connections, as CertificateOptions
        # arguments (cryptography objects: pyOpenSSL deprecates its own).
        self._client: dict[str, Any] = {}
        if (settings.client_certificate is None) != (settings.client_private_key is None):
            raise ConfigError("client_certificate and client_private_key must be given together")
        if settings.client_certificate is not None and settings.client_private_key is not None:
            chain = _load_chain(settings.client_certificate, "client_certificate")
            key = _load_key(settings.client_private_key, "client_private_key")
            _check_pair(chain, key, "client_private_key")
            self._client = {"privateKey": key, "certificate": chain[0]}
            if len(chain) > 1:
                self._client["extraCertChain"] = chain[1:]
        profile = settings.tls_profile()
        self._client["raiseMinimumTo"] = profile.minimum
        self._client["acceptableCiphers"] = profile.acceptable_ciphers()
        self._insecure = settings.insecure_client
        self._insecure_options: CertificateOptions | None = None
        if self._insecure:
            self._log.warn(
                "Outgoing TLS does not verify servers (insecure_client): for labs only"
            )
        self._cache: dict[str, Any] = {}

    def __call__(self, server_name: str) -> Any:
        """The connection creator for a server that must prove C{server_name}."""
        if self._insecure:
            if self._insecure_options is None:
                self._insecure_options = CertificateOptions(verify=False, **self._client)
            return self._insecure_options
        creator = self._cache.get(server_name)
        if creator is None:
            creator = optionsForClientTLS(
                server_name,
                trustRoot=self._trust,
                extraCertificateOptions=self._client,
            )
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[server_name] = creator
        return creator
