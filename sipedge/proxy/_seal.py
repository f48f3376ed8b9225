# -*- test-case-name: sipedge.test.test_proxy_topology -*-
"""
Sealed tokens for topology hiding: deterministic authenticated encryption
(an SIV construction, RFC 5297's idea, on HMAC-SHA256 from the standard
library).

   tag   = HMAC(mac_key, kind || len(ad) || ad || plaintext)[:16]
   ct    = plaintext XOR HMAC(enc_key, tag || counter) ...
   token = base64url(kind || tag || ct), without padding

The same plaintext under the same associated data always gives the same
token: a masked Call-ID stays the same for every message of a call, and a
retransmission is the same bytes. Anything changed in a token (or a token
made with another key, or presented with other associated data, such as
another call's Call-ID) fails the tag check. The tag is a synthetic IV, so
the encryption needs no nonce.

Both keys are derived from one secret (the Record-Route key by default),
with labels that keep them apart from the Record-Route MAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from sipedge.error import TokenError

__all__ = ["Sealer"]

_TAG_SIZE = 16
_BLOCK = hashlib.sha256().digest_size


class Sealer:
    """
    Seals and opens tokens of one-byte kinds under one secret.

    @param secret: at least 16 bytes.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a topology hiding secret needs at least 16 bytes")
        self._mac_key = hmac.digest(secret, b"sipedge topology-hiding mac", "sha256")
        self._enc_key = hmac.digest(secret, b"sipedge topology-hiding enc", "sha256")

    def _tag(self, kind: bytes, ad: bytes, plaintext: bytes) -> bytes:
        data = kind + len(ad).to_bytes(4, "big") + ad + plaintext
        return hmac.digest(self._mac_key, data, "sha256")[:_TAG_SIZE]

    def _stream(self, tag: bytes, size: int) -> bytes:
        key = self._enc_key
        blocks = [
            hmac.digest(key, tag + counter.to_bytes(4, "big"), "sha256")
            for counter in range((size + _BLOCK - 1) // _BLOCK)
        ]
        return b"".join(blocks)[:size]

    def seal(self, kind: bytes, plaintext: bytes, ad: bytes = b"") -> str:
        """The token for C{plaintext} of C{kind} (one byte), bound to C{ad}."""
        if len(kind) != 1:
            raise ValueError("a token kind is one byte")
        tag = self._tag(kind, ad, plaintext)
        ciphertext = _xor(plaintext, self._stream(tag, len(plaintext)))
        return base64.urlsafe_b64encode(kind + tag + ciphertext).rstrip(b"=").decode("ascii")

    def kind_of(self, token: str) -> bytes:
        """
        The kind of C{token}, unchecked (to choose the associated data).

        @raise TokenError: if C{token} is not base64url text.
        """
        return self._decode(token)[:1]

    @staticmethod
    def _decode(token: str) -> bytes:
        if not token.isascii():
            raise TokenError("not a token")
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise TokenError("not base64url") from None
        if len(blob) < 1 + _TAG_SIZE:
            raise TokenError("too short")
        return blob

    def open(self, token: str, kind: bytes, ad: bytes = b"") -> bytes:
        """
        The plaintext of C{token}.

        @raise TokenError: if it is not a token of C{kind} that this key
            sealed with C{ad}.
        """
        blob = self._decode(token)
        if blob[:1] != kind:
            raise TokenError("wrong kind")
        tag, ciphertext = blob[1 : 1 + _TAG_SIZE], blob[1 + _TAG_SIZE :]
        plaintext = _xor(ciphertext, self._stream(tag, len(ciphertext)))
        if not hmac.compare_digest(tag, self._tag(kind, ad, plaintext)):
            raise TokenError("bad tag")
        return plaintext


def _xor(data: bytes, stream: bytes) -> bytes:
    """C{data} XOR C{stream} (of the same length), a whole number at a time."""
    size = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")
