# -*- test-case-name: sipedge.test.test_auth -*-
"""
Stateless nonces (RFC 7616 3.3, 5.4; RFC 3261 22.4) and replay protection.

A nonce is the unpadded URL-safe base64 of 39 bytes:

   timestamp (8, big-endian milliseconds on the injected clock)
   random    (15)
   MAC       (16: HMAC-SHA256(secret, timestamp random realm), truncated)

so any nonce we issued can be checked without remembering it, and one for
another realm, forged or changed is C{INVALID}. It is C{STALE} once
C{lifetime} seconds have passed (or if it comes from the future: our clock
went back), and a client answered with C{stale=true} retries with a fresh
one without asking its user again (RFC 7616 3.3).

The secret is kept in the state directory (L{SECRET_NAME}, mode 0600,
created once), so nonces stay valid across a restart.

Replays: L{NonceSource.record_use} remembers, per nonce, the highest nonce
count accepted; a response whose count is not higher is a replay (RFC 7616
3.4, 5.5). A response without qop (RFC 2069) has no count: such a nonce is
accepted once only (count 0), since nothing else would stop a captured
response from being sent again for as long as the nonce lives. Clients that
use qop, as SIP clients do, may reuse a nonce with rising counts.

Memory stays bounded: entries go once their nonce is stale (a stale nonce
is refused before its count matters), and at most C{max_tracked} are kept.
When that many are tracked, the oldest entry is evicted and every nonce
issued no later than it and not tracked counts as used: the client gets
C{stale=true} and a fresh nonce, never a replay window.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from sipedge.auth._interfaces import INonceSource
from sipedge.error import ConfigError

__all__ = ["SECRET_NAME", "NonceSource", "NonceStatus", "load_secret"]

_log = Logger()

#: The file name of the nonce secret in the state directory.
SECRET_NAME = "nonce-secret"

_SECRET_SIZE = 32
_RANDOM_SIZE = 15
_MAC_SIZE = 16
_TIMESTAMP = struct.Struct(">Q")
_RAW_SIZE = _TIMESTAMP.size + _RANDOM_SIZE + _MAC_SIZE  # 39 bytes: no base64 padding
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{52}")


class NonceStatus(enum.Enum):
    """What L{NonceSource.validate} says of a nonce."""

    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


def load_secret(directory: str | os.PathLike[str]) -> bytes:
    """
    The nonce secret in C{directory}: read from L{SECRET_NAME}, or created
    there (32 random bytes, mode 0600) if missing. Creation is atomic (a
    complete temporary file is linked into place), so two processes that
    start together agree on one secret. The directory is created (mode
    0700) if needed.

    @raise ConfigError: if the file cannot be read or written, or is too
        short to be a secret.
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, SECRET_NAME)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not os.path.exists(path):
            temporary = f"{path}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(os.urandom(_SECRET_SIZE))
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(temporary, path)
                except FileExistsError:
                    pass  # another process won the race; use its secret
            finally:
                os.unlink(temporary)
        mode = os.stat(path).st_mode
        if mode & 0o077:
            _log.warn(
                "The nonce secret {path} is readable by others (mode {mode:o}); chmod 600 it",
                path=path,
                mode=mode & 0o777,
            )
        with open(path, "rb") as f:
            secret = f.read()
    except OSError as e:
        raise ConfigError(f"cannot use the nonce secret {path!r}: {e.strerror or e}") from e
    if len(secret) < 16:
        raise ConfigError(f"the nonce secret {path!r} is too short ({len(secret)} bytes)")
    return secret


@implementer(INonceSource)
class NonceSource:
    """
    Issues and checks stateless HMAC nonces, and tracks nonce counts.

    @param secret: the HMAC key (at least 16 bytes).
    @param clock: an C{IReactorTime}; only C{seconds()} is used.
    @param lifetime: seconds a nonce stays fresh.
    @param random: where random bytes come from (C{os.urandom}).
    @param max_tracked: the most nonces whose counts are remembered.
    """

    def __init__(
        self,
        secret: bytes,
        clock: Any,
        lifetime: float = 300.0,
        *,
        random: Callable[[int], bytes] = os.urandom,
        max_tracked: int = 100_000,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("a nonce secret needs at least 16 bytes")
        if not lifetime > 0:
            raise ValueError(f"lifetime must be positive, not {lifetime!r}")
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be at least 1, not {max_tracked!r}")
        self._secret = secret
        self._clock = clock
        self.lifetime = float(lifetime)
        self._random = random
        self._max_tracked = max_tracked
        # nonce -> [timestamp in ms, highest count], in order of first use
        self._seen: OrderedDict[str, list[int]] = OrderedDict()
        # untracked nonces issued at or before this were evicted: used up
        self._floor = -1

    @classmethod
    def in_state_directory(
        cls, directory: str | os.PathLike[str], clock: Any, lifetime: float = 300.0, **kwargs: Any
    ) -> NonceSource:
        """A source keyed with the secret of C{directory} (see L{load_secret})."""
        return cls(load_secret(directory), clock, lifetime, **kwargs)

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def _mac(self, head: bytes, realm: str) -> bytes:
        data = head + realm.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, data, hashlib.sha256).digest()[:_MAC_SIZE]

    def issue(self, realm: str) -> str:
        """A new nonce for a challenge in C{realm}."""
        head = _TIMESTAMP.pack(self._now()) + self._random(_RANDOM_SIZE)
        raw = head + self._mac(head, realm)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    @staticmethod
    def _timestamp(nonce: str) -> int | None:
        """The timestamp of a well-formed nonce (its MAC unchecked), or C{None}."""
        if _NONCE_RE.fullmatch(nonce) is None:
            return None
        raw = base64.urlsafe_b64decode(nonce)
        return int(_TIMESTAMP.unpack_from(raw)[0])

    def validate(self, nonce: str, realm: str) -> NonceStatus:
        """
        C{VALID}, C{STALE} (ours, but C{lifetime} seconds old or more, or
        from the future), or C{INVALID} (malformed, a bad MAC, or another
        realm's).
        """
        if _NONCE_RE.fullmatch(nonce) is None:
            return NonceStatus.INVALID
        raw = base64.urlsafe_b64decode(nonce)
        head, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(head, realm)):
            return NonceStatus.INVALID
        (issued,) = _TIMESTAMP.unpack_from(head)
        age = self._now() - issued
        if age < 0 or age >= self.lifetime * 1000:
            return NonceStatus.STALE
        return NonceStatus.VALID

    def _prune(self, now: int) -> None:
        limit = now - self.lifetime * 1000
        seen = self._seen
        while seen:
            issued, _ = next(iter(seen.values()))
            if issued > limit:
                break
            seen.popitem(last=False)

    def record_use(self, nonce: str, count: int | None) -> bool:
        """
        Record an accepted response with C{nonce} and nonce count C{count}
        (C{None} without qop); C{False} if it is a replay.
        """
        issued = self._timestamp(nonce)
        if issued is None:
            return False
        if count is None:
            count = 0
        self._prune(self._now())
        entry = self._seen.get(nonce)
        if entry is None:
            if issued <= self._floor:
                return False
            if len(self._seen) >= self._max_tracked:
                _, (evicted, _) = self._seen.popitem(last=False)
                self._floor = max(self._floor, evicted)
                if issued <= self._floor:
                    return False
            self._seen[nonce] = [issued, count]
            return True
        if count <= entry[1]:
            return False
        entry[1] = count
        return True

    @property
    def tracked(self) -> int:
        """How many nonces have their counts remembered now."""
        return len(self._seen)
