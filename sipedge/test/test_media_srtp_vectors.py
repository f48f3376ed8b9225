# -*- test-case-name: sipedge.test.test_media_srtp_vectors -*-
"""
Known-answer tests for L{sipedge.media._srtp}: what L{SrtpContext} puts on
the wire, byte for byte, against an independent implementation of RFC 3711
(key derivation 4.3, AES-CM 4.1.1, HMAC-SHA1 4.2.1) and RFC 7714 (AES-GCM)
written here on the C{cryptography} package. A round trip through one
library passes even if a suite were mapped to the wrong profile; this does
not. The reference itself is checked against RFC 3711 appendix B.3.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import SUPPORTED_SUITES, CryptoSuite, SrtpContext, SrtpKey, build_rtp

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # pragma: no cover - pyOpenSSL brings it
    Cipher = None  # type: ignore[assignment,misc]


def _aes_cm(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES in counter mode (RFC 3711 4.1.1) from a 16-byte initial counter."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 4.3.1 with key derivation rate 0: the session key of C{label}."""
    salt = master_salt.ljust(14, b"\0")  # a 96-bit (GCM) salt is left-aligned
    x = int.from_bytes(salt, "big") ^ (label << 48)
    return _aes_cm(master_key, (x << 16).to_bytes(16, "big"), bytes(length))


def protect_reference(suite: CryptoSuite, material: bytes, packet: bytes, roc: int = 0) -> bytes:
    """SRTP of one RTP packet with a 12-byte header, as the RFCs define it."""
    master_key, master_salt = material[: suite.key_length], material[suite.key_length :]
    header, payload = packet[:12], packet[12:]
    sequence, ssrc = struct.unpack("!H", header[2:4])[0], struct.unpack("!I", header[8:12])[0]
    k_e = derive(master_key, master_salt, 0, suite.key_length)
    k_s = derive(master_key, master_salt, 2, suite.salt_length)
    if suite.name.startswith("AEAD"):  # RFC 7714 8.1: IV, AAD = the header
        iv = bytes(2) + ssrc.to_bytes(4, "big") + roc.to_bytes(4, "big")
        iv += sequence.to_bytes(2, "big")
        iv = bytes(a ^ b for a, b in zip(iv, k_s, strict=True))
        return header + AESGCM(k_e).encrypt(iv, payload, header)
    index = (roc << 16) | sequence  # RFC 3711 4.1.1
    iv_int = (int.from_bytes(k_s, "big") << 16) ^ (ssrc << 64) ^ (index << 16)
    encrypted = header + _aes_cm(k_e, iv_int.to_bytes(16, "big"), payload)
    k_a = derive(master_key, master_salt, 1, 20)
    tag = hmac.new(k_a, encrypted + roc.to_bytes(4, "big"), hashlib.sha1).digest()
    return encrypted + tag[: 10 if suite.name.endswith("_80") else 4]


class ReferenceTests(SynchronousTestCase):
    """The reference implementation reproduces the RFC's own vectors."""

    skip = None if Cipher is not None else "the cryptography package is not installed"

    def test_rfc3711_key_derivation(self) -> None:
        """RFC 3711 B.3: the cipher, salt and authentication keys."""
        master_key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
        master_salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
        self.assertEqual(
            derive(master_key, master_salt, 0, 16).hex().upper(),
            "C61E7A93744F39EE10734AFE3FF7A087",
        )
        self.assertEqual(
            derive(master_key, master_salt, 2, 14).hex().upper(), "30CBBC08863D8C85D49DB34A9AE1"
        )
        self.assertEqual(
            derive(master_key, master_salt, 1, 20).hex().upper(),
            "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4",
        )


class KnownAnswerTests(SynchronousTestCase):
    """L{SrtpContext} matches the reference for every supported suite."""

    skip = None if Cipher is not None else "the cryptography package is not installed"

    def test_protect_matches_reference(self) -> None:
        """
        For every suite in C{SUPPORTED_SUITES}, fixed keys and packets
        protect to the reference's bytes, and the reference's bytes
        unprotect to the packet.
        """
        self.assertTrue(SUPPORTED_SUITES)
        for suite in SUPPORTED_SUITES:
            material = bytes(range(1, suite.master_length + 1))
            key = SrtpKey(suite, material)
            sender = SrtpContext(inbound=key, outbound=key)
            receiver = SrtpContext(inbound=key, outbound=key)
            for sequence in (1, 2, 1000, 65535):
                packet = build_rtp(
                    payload_type=0, sequence=sequence, timestamp=160 * sequence,
                    ssrc=0xCAFEBABE, payload=bytes((sequence + i) % 256 for i in range(160)),
                )
                expected = protect_reference(suite, material, packet)
                self.assertEqual(sender.protect(packet).hex(), expected.hex(), suite.name)
                self.assertEqual(receiver.unprotect(expected), packet, suite.name)
