# -*- test-case-name: sipedge.test.test_proxy_rr -*-
"""
Signed Record-Route values (RFC 3261 16.6 item 4, 16.4).

Our Record-Route URI carries C{;se=<minute><mac>}: the minute it was made
(hexadecimal, minutes since the epoch) and a MAC of the dialog's Call-ID
and that minute under a secret kept in the state directory. A Route that
points at us is only trusted as "this dialog was set up through us" when
the MAC matches and the value is younger than C{lifetime}: a stranger who
preloads our address as a Route gains nothing (no open relay through fake
in-dialog requests), and neither does a party of a call long over that
kept its Route (a stale Route).

A call's value is made once when its INVITE is record-routed and checked
again on its ACK and BYE: the latest values made, and found to be ours,
are remembered (bounded tables, oldest out first), so the checks of a
call's in-dialog requests that come soon after cost a dict look-up and
the age check, not an HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sipedge.message import SipURI

__all__ = ["FRESH", "STALE", "RecordRouteSigner"]

#: What L{RecordRouteSigner.check} says of a value we made, within its
#: lifetime or past it.
FRESH = "fresh"
STALE = "stale"

#: How many values each table remembers: at 600 calls a second, the last
#: 14 seconds' calls (a call's ACK comes within a second of its 2xx), for
#: about 3 MB in all.
MEMO_SIZE = 8192
#: The hexadecimal digits of the MAC, after the minute.
_MAC_SIZE = 20
#: How far ahead of our clock a value may be dated (another machine's or
#: worker's clock), in minutes.
_SKEW = 5
_HEX = frozenset("0123456789abcdef")


class _Frozen:
    """A clock that stays at 0: values never age (no clock given)."""

    @staticmethod
    def seconds() -> float:
        return 0.0


class RecordRouteSigner:
    """
    Makes and checks the C{se} parameter of our Record-Route URIs.

    @param secret: at least 16 bytes.
    @param clock: an C{IReactorTime}; without one, time stands still and
        no value ever expires.
    @param lifetime: seconds a value counts after it was made; 0: forever.
    """

    def __init__(
        self,
        secret: bytes,
        clock: Any = None,
        lifetime: float = 0.0,
        memo_size: int = MEMO_SIZE,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("Record-Route secret must be at least 16 bytes")
        self._secret = secret
        # Keyed once: a copy per MAC costs a third of a new HMAC (OpenSSL 3
        # looks the digest up again for every new one).
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self._clock = clock if clock is not None else _Frozen()
        # in whole minutes, at least one
        self._lifetime = max(1, -int(-lifetime // 60)) if lifetime > 0 else None
        #: (Call-ID, minute) -> the value we made; (Call-ID, value) -> the
        #: minute of a value known to be ours: bounded, oldest out first.
        self._made: dict[tuple[str, int], str] = {}
        self._known: dict[tuple[str, str], int] = {}
        self._memo_size = memo_size

    def _remember(self, memo: dict[Any, Any], key: Any, value: Any) -> None:
        if len(memo) >= self._memo_size:
            del memo[next(iter(memo))]
        memo[key] = value

    def _hmac(self, call_id: str, minute: int) -> str:
        mac = self._keyed.copy()
        mac.update(f"{call_id}\x00{minute:x}".encode("utf-8", "surrogateescape"))
        return mac.hexdigest()[:_MAC_SIZE]

    def mac(self, call_id: str) -> str:
        """The C{se} value for a dialog's Call-ID, made now."""
        minute = int(self._clock.seconds() // 60)
        key = (call_id, minute)
        value = self._made.get(key)
        if value is None:
            value = f"{minute:x}{self._hmac(call_id, minute)}"
            self._remember(self._made, key, value)
            self._remember(self._known, (call_id, value), minute)
        return value

    def verify(self, uri: SipURI, call_id: str) -> bool:
        """
        True if C{uri}'s C{se} parameter is one we made for C{call_id}
        and it has not expired.
        """
        return self._check(uri, call_id) is FRESH

    def check(self, uri: SipURI, call_id: str) -> str | None:
        """
        L{FRESH} if C{uri}'s C{se} parameter is one we made for
        C{call_id} and has not expired, L{STALE} if we made it but it has,
        C{None} if we did not make it.
        """
        return self._check(uri, call_id)

    def _check(self, uri: SipURI, call_id: str) -> str | None:
        value = uri.param("se")
        if not value:
            return None
        minute = self._known.get((call_id, value))
        if minute is None:
            minute = self._authentic(value, call_id)
            if minute is None:
                return None
        now = int(self._clock.seconds() // 60)
        if minute > now + _SKEW:
            return None  # not made by a clock of ours
        if self._lifetime is not None and now - minute > self._lifetime:
            return STALE
        return FRESH

    def _authentic(self, value: str, call_id: str) -> int | None:
        """The minute of C{value} if we made it for C{call_id}, else C{None}."""
        if not _MAC_SIZE < len(value) <= _MAC_SIZE + 12 or not value.isascii():
            return None  # (compare_digest refuses text that is not ASCII)
        dated = value[:-_MAC_SIZE]
        if not _HEX.issuperset(dated):
            return None
        minute = int(dated, 16)
        if not hmac.compare_digest(value[-_MAC_SIZE:], self._hmac(call_id, minute)):
            return None
        self._remember(self._known, (call_id, value), minute)
        return minute
