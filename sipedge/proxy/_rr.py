# -*- test-case-name: sipedge.test.test_proxy_rr -*-
"""
Signed Record-Route values (RFC 3261 16.6 item 4, 16.4).

Our Record-Route URI carries C{;se=<mac>}, a MAC of the dialog's Call-ID
under a secret kept in the state directory. A Route that points at us is
only trusted as "this dialog was set up through us" when the MAC matches:
a stranger who preloads our address as a Route gains nothing (no open relay
through fake in-dialog requests).

A call's MAC is computed once when its INVITE is record-routed and checked
again on its ACK and BYE: the MACs of the latest Call-IDs are remembered
(a bounded table, oldest out first), so the checks of a call's in-dialog
requests that come soon after usually cost a dict look-up, not an HMAC.
"""

from __future__ import annotations

import hashlib
import hmac

from sipedge.message import SipURI

__all__ = ["RecordRouteSigner"]

#: How many Call-IDs' MACs are remembered: at 600 calls a second, the last
#: 14 seconds' calls (a call's ACK comes within a second of its 2xx), for
#: about 1.5 MB.
MEMO_SIZE = 8192


class RecordRouteSigner:
    """Makes and checks the C{se} parameter of our Record-Route URIs."""

    def __init__(self, secret: bytes, memo_size: int = MEMO_SIZE) -> None:
        if len(secret) < 16:
            raise ValueError("Record-Route secret must be at least 16 bytes")
        self._secret = secret
        # Keyed once: a copy per MAC costs a third of a new HMAC (OpenSSL 3
        # looks the digest up again for every new one).
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self._memo: dict[str, str] = {}
        self._memo_size = memo_size

    def mac(self, call_id: str) -> str:
        """The MAC for a dialog's Call-ID."""
        memo = self._memo
        value = memo.get(call_id)
        if value is not None:
            return value
        mac = self._keyed.copy()
        mac.update(call_id.encode("utf-8", "surrogateescape"))
        value = mac.hexdigest()[:20]
        if len(memo) >= self._memo_size:
            del memo[next(iter(memo))]
        memo[call_id] = value
        return value

    def verify(self, uri: SipURI, call_id: str) -> bool:
        """True if C{uri}'s C{se} parameter is the MAC of C{call_id}."""
        value = uri.param("se")
        if not value or not value.isascii():
            # (compare_digest refuses text that is not ASCII)
            return False
        return hmac.compare_digest(value, self.mac(call_id))
