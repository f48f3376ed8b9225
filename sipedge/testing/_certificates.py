# -*- test-case-name: sipedge.test.test_testing -*-
"""
L{make_certificates}: a CA and a server certificate made on the spot.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.ssl import Certificate, CertificateOptions

__all__ = ["CertificateSet", "make_certificates"]


@attrs.frozen
class CertificateSet:
    """
    A CA and a certificate it issued, PEM-encoded.

    @ivar ca_pem: the CA certificate (the trust root to verify with).
    @ivar cert_pem: the issued certificate.
    @ivar key_pem: its private key.
    @ivar ca_key_pem: the CA's private key (to sign OCSP responses, say).
    """

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    ca_key_pem: bytes = b""

    def server_options(self, **options: Any) -> CertificateOptions:
        """C{CertificateOptions} for a server that presents this certificate."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from twisted.internet.ssl import TLSVersion

        options.setdefault("raiseMinimumTo", TLSVersion.TLSv1_2)
        # pyOpenSSL takes cryptography objects (Twisted's annotations lag).
        return CertificateOptions(
            privateKey=load_pem_private_key(self.key_pem, None),  # type: ignore[arg-type]
            certificate=x509.load_pem_x509_certificate(self.cert_pem),  # type: ignore[arg-type]
            **options,
        )

    def trust_root(self) -> Certificate:
        """The CA, as a trust root for C{optionsForClientTLS}."""
        return Certificate.loadPEM(self.ca_pem)

    def write(self, directory: str) -> tuple[str, str, str]:
        """
        Write C{ca.pem}, C{cert.pem} and C{key.pem} (mode 0600) to
        C{directory} (made if missing).

        @return: their paths, in that order.
        """
        os.makedirs(directory, exist_ok=True)
        paths = []
        for name, data, mode in (
            ("ca.pem", self.ca_pem, 0o644),
            ("cert.pem", self.cert_pem, 0o644),
            ("key.pem", self.key_pem, 0o600),
        ):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(path)
        return paths[0], paths[1], paths[2]


def make_certificates(
    *dns_names: str,
    ip_addresses: Sequence[str] = (),
    common_name: str | None = None,
    ca_name: str = "sipedge test CA",
    key_type: str = "ec",
    ocsp_url: str | None = None,
) -> CertificateSet:
    """
    A new CA and a certificate for C{dns_names} and C{ip_addresses}
    (subjectAltName; the common name is the first DNS name unless given),
    valid from 2000 to 2100 and usable by servers and clients.

    @param key_type: C{"ec"} (P-256, fast) or C{"rsa"} (2048 bits).
    @param ocsp_url: the CA's OCSP responder, named in the certificate's
        Authority Information Access extension.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import (
        AuthorityInformationAccessOID,
        ExtendedKeyUsageOID,
        NameOID,
    )

    def new_key() -> Any:
        if key_type == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    not_before = datetime(2000, 1, 1, tzinfo=UTC)
    not_after = datetime(2100, 1, 1, tzinfo=UTC)
    ca_key = new_key()
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = new_key()
    cn = common_name or (dns_names[0] if dns_names else (ip_addresses[0] if ip_addresses
                                                          else "sipedge test"))
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ocsp_url is not None:
        builder = builder.add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(ocsp_url)),
        ]), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return CertificateSet(
        ca_pem=ca.public_bytes(pem),
        cert_pem=certificate.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        ca_key_pem=ca_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
