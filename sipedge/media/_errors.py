# -*- test-case-name: sipedge.test.test_media -*-
"""
The media layer's exceptions (kept here, not in L{sipedge.error}, so the
media package stays self-contained; all derive from L{SipEdgeError}).

Errors that reject an offer carry the SIP status the signalling side should
answer with (C{status_hint}), as L{sipedge.error.MessageParseError} does.
"""

from __future__ import annotations

from sipedge.error import SipEdgeError

__all__ = [
    "ControlProtocolError",
    "MediaError",
    "MediaOfferError",
    "PortsExhausted",
    "RelayTimeout",
    "RelayUnavailable",
    "ReofferUnsupported",
    "RtpParseError",
    "SdesError",
    "SessionExists",
    "SrtpError",
    "UnknownSession",
]


class MediaError(SipEdgeError):
    """
    Base class of every media relay error.

    @ivar status_hint: the SIP status to answer the request that carried
        the offer with, when this error rejects one.
    """

    status_hint = 500


class RtpParseError(MediaError, ValueError):
    """Bytes that are not a valid RTP or RTCP header (RFC 3550 5.1, 6.4)."""


class SrtpError(MediaError):
    """
    An SRTP or SRTCP packet could not be protected or unprotected.

    @ivar reason: the relay's drop reason for the packet: C{"srtp-auth"}
        (authentication failed: forged, tampered or wrong key),
        C{"srtp-replay"} (replayed or too old, RFC 3711 3.3.2),
        C{"too-long"} (over pylibsrtp's 1500-byte buffer with the trailer),
        C{"malformed"} (libsrtp could not parse it) or C{"srtp-error"}.
    """

    def __init__(self, message: str, reason: str = "srtp-error") -> None:
        super().__init__(message)
        self.reason = reason


class MediaOfferError(MediaError, ValueError):
    """
    An offer or answer the relay cannot serve (an address that is not an IP
    literal, no crypto suite in common, a mode the legs cannot combine).
    RFC 3261 21.4.26: 488 Not Acceptable Here.
    """

    status_hint = 488


class SdesError(SrtpError, ValueError):
    """
    An SDES key parameter (RFC 4568 6.1) that cannot be used: bad base64,
    the wrong length for its suite, an MKI (pylibsrtp cannot use one), an
    unknown or unsupported suite.
    """

    status_hint = 488

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="sdes")


class PortsExhausted(MediaError):
    """
    No free port (or even/odd pair) is left in the relay's range.
    503 Service Unavailable (RFC 3261 21.5.4).
    """

    status_hint = 503


class SessionExists(MediaError):
    """C{allocate} was called again with the key of a live session."""


class UnknownSession(MediaError, KeyError):
    """No live session has this key (never allocated, or released)."""

    def __str__(self) -> str:
        # KeyError's str() would quote the message.
        return str(self.args[0]) if self.args else ""


class ReofferUnsupported(MediaError):
    """
    The relay cannot update a session in place (L{IMediaRelay.reoffer}):
    a remote relay that speaks only version 1 of the control protocol.
    The caller allocates a new session for the new offer instead, as
    before re-offers existed.
    """


class RelayUnavailable(MediaError):
    """
    A remote relay (L{sipedge.media.RemoteMediaRelay}) cannot serve the
    call: not connected, the connection was lost with the call in flight,
    or the relay did not answer in time (L{RelayTimeout}). 503 Service
    Unavailable (RFC 3261 21.5.4).
    """

    status_hint = 503


class RelayTimeout(RelayUnavailable):
    """A remote relay did not answer a call within its timeout."""


class ControlProtocolError(MediaError):
    """
    A control-protocol message that breaks the protocol (C{doc/relay-protocol.md}):
    not JSON, too long, an unknown type or method, a value that does not
    decode, a failed authentication.

    @ivar code: the protocol's error code (C{"malformed"}, C{"too-long"},
        C{"unknown-method"}, C{"bad-params"}, C{"auth-failed"}, ...).
    """

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code
