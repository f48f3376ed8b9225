# -*- test-case-name: sipedge.test.test_auth -*-
"""
The digest computation: pure functions, no state, no I/O (RFC 7616 3.4.1
to 3.4.3, RFC 2617 3.2.2, RFC 2069, RFC 3261 22.4, RFC 8760).

   response = KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))
                                        ; qop auth or auth-int
   response = KD(H(A1), nonce ":" H(A2))  ; no qop (RFC 2069)
   KD(secret, data) = H(secret ":" data)
   A1       = username ":" realm ":" passwd
   A1       = H(username ":" realm ":" passwd) ":" nonce ":" cnonce
                                        ; the -sess algorithms
   A2       = Method ":" digest-uri        ; qop auth or none
   A2       = Method ":" digest-uri ":" H(entity-body)   ; qop auth-int

Names are the tokens of RFC 7616 6.1 (IANA "HTTP Digest Hash Algorithms"),
which RFC 8760 uses for SIP; they are matched case-insensitively. Text is
hashed as UTF-8 (RFC 7616 charset=UTF-8, the only charset SIP knows).

The hash functions are probed at import: SHA-512/256 needs OpenSSL's
C{sha512_256} (C{hashlib.new("sha512_256")}); where it is missing, its two
algorithms are left out of L{ALGORITHMS} and L{DEFAULT_ALGORITHMS}.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "HASH_ALGORITHMS",
    "UnsupportedAlgorithm",
    "canonical_algorithm",
    "digest_hex",
    "ha1",
    "ha2",
    "hash_algorithm",
    "response",
    "responses_equal",
    "session_ha1",
]


class UnsupportedAlgorithm(ValueError):
    """An algorithm name this module does not know (or cannot compute)."""


def _probe(name: str) -> Callable[[bytes], str] | None:
    """A hex digest function for the hashlib algorithm C{name}, if it works."""
    try:
        hashlib.new(name, b"")
    except (ValueError, TypeError):
        return None

    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


_HASHES: dict[str, Callable[[bytes], str]] = {}
for _name, _hashlib_name in (("MD5", "md5"), ("SHA-256", "sha256"), ("SHA-512-256", "sha512_256")):
    _function = _probe(_hashlib_name)
    if _function is not None:
        _HASHES[_name] = _function

#: The hash algorithms that work here, strongest first: the keys of the
#: stored H(A1) values.
HASH_ALGORITHMS: tuple[str, ...] = tuple(
    name for name in ("SHA-512-256", "SHA-256", "MD5") if name in _HASHES
)

#: Every algorithm that works here, strongest first, each before its -sess
#: variant.
ALGORITHMS: tuple[str, ...] = tuple(
    name for base in HASH_ALGORITHMS for name in (base, base + "-sess")
)

#: What a challenge offers by default: one challenge per hash algorithm,
#: SHA-512-256 first, then SHA-256, then MD5 (RFC 8760 2.4).
DEFAULT_ALGORITHMS: tuple[str, ...] = HASH_ALGORITHMS

_CANONICAL = {name.lower(): name for name in ALGORITHMS}


def canonical_algorithm(name: str | None) -> str:
    """
    The canonical spelling of the algorithm C{name} (any case); C{None}
    (no algorithm parameter) is MD5 (RFC 7616 3.3).

    @raise UnsupportedAlgorithm: for an algorithm not in L{ALGORITHMS}.
    """
    if name is None:
        name = "MD5"
    canonical = _CANONICAL.get(name.lower())
    if canonical is None:
        raise UnsupportedAlgorithm(f"unsupported digest algorithm {name!r}")
    return canonical


def hash_algorithm(algorithm: str | None) -> str:
    """The algorithm without C{-sess}: C{'SHA-256-sess'} -> C{'SHA-256'}."""
    canonical = canonical_algorithm(algorithm)
    return canonical.removesuffix("-sess")


def _is_session(algorithm: str) -> bool:
    return algorithm.endswith("-sess")


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def digest_hex(algorithm: str | None, data: str | bytes) -> str:
    """H(data): the lower-case hex digest of C{data} under C{algorithm}."""
    return _HASHES[hash_algorithm(algorithm)](_bytes(data))


def ha1(algorithm: str | None, username: str, realm: str, password: str) -> str:
    """
    H(username ":" realm ":" password): what a credential store keeps.
    For a C{-sess} algorithm this is the stored part only; see
    L{session_ha1}.
    """
    return digest_hex(algorithm, f"{username}:{realm}:{password}")


def session_ha1(algorithm: str | None, ha1: str, nonce: str, cnonce: str) -> str:
    """The H(A1) of a C{-sess} algorithm: H(H(user:realm:pass) ":" nonce ":" cnonce)."""
    return digest_hex(algorithm, f"{ha1}:{nonce}:{cnonce}")


def ha2(algorithm: str | None, method: str, uri: str, qop: str | None, body: bytes = b"") -> str:
    """
    H(A2): H(method ":" uri), or H(method ":" uri ":" H(body)) for qop
    C{auth-int}.
    """
    if qop is not None and qop.lower() == "auth-int":
        return digest_hex(algorithm, f"{method}:{uri}:{digest_hex(algorithm, body)}")
    return digest_hex(algorithm, f"{method}:{uri}")


def response(
    algorithm: str | None,
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """
    The expected C{response} parameter, from the stored H(A1) (the
    C{-sess} step is done here).

    @param nc: the nonce count as sent: 8 hex digits.
    @raise UnsupportedAlgorithm: for an unknown algorithm.
    @raise ValueError: for a qop other than C{auth} and C{auth-int}, a qop
        without C{nc} and C{cnonce}, or a C{-sess} algorithm without
        C{cnonce}.
    """
    algorithm = canonical_algorithm(algorithm)
    if _is_session(algorithm):
        if cnonce is None:
            raise ValueError(f"{algorithm} needs a cnonce")
        ha1 = session_ha1(algorithm, ha1, nonce, cnonce)
    hash2 = ha2(algorithm, method, uri, qop, body)
    if qop is None:
        return digest_hex(algorithm, f"{ha1}:{nonce}:{hash2}")
    if qop.lower() not in ("auth", "auth-int"):
        raise ValueError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise ValueError("a qop needs nc and cnonce")
    return digest_hex(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{hash2}")


def responses_equal(expected: str, received: str) -> bool:
    """
    Compare digests in constant time (C{hmac.compare_digest}); hex case
    does not matter.
    """
    try:
        return hmac.compare_digest(
            expected.lower().encode("ascii"), received.lower().encode("ascii")
        )
    except UnicodeEncodeError:
        return False
