# -*- test-case-name: sipedge.test.test_error -*-
"""
Every exception sipedge raises.

Errors caused by what a peer sent are I{remote} errors and carry the status a
server should answer with (cf. h11's C{error_status_hint}); errors caused by
our own code or configuration are I{local}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sipedge.message import Request, Response

__all__ = [
    "ConfigError",
    "LocalProtocolError",
    "MessageParseError",
    "OriginateError",
    "RemoteProtocolError",
    "SipEdgeError",
    "TokenError",
    "TransactionTimeout",
    "TransportError",
]


class SipEdgeError(Exception):
    """Base class of every sipedge exception."""


class MessageParseError(SipEdgeError, ValueError):
    """
    Bytes or a header value that do not make a valid SIP message.

    @ivar reason: a short human-readable description of what is wrong.
    @ivar status_hint: the SIP status a server should answer a request with
        (400, 413, 414, 416, 420, 505, 513, ...).
    @ivar headers: extra header fields for that answer, as C{(name, value)}
        pairs (e.g. C{("Unsupported", "foo")} with a 420).
    @ivar message: the request or response as far as it parsed (start line
        and headers, no body), so a server can still answer a request whose
        framing is broken; C{None} if not even that parsed.
    """

    def __init__(
        self,
        reason: str,
        status_hint: int = 400,
        headers: tuple[tuple[str, str], ...] = (),
        message: Request | Response | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        self.headers = headers
        self.message = message

    def __repr__(self) -> str:
        return f"MessageParseError({self.reason!r}, status_hint={self.status_hint})"


class LocalProtocolError(SipEdgeError):
    """Our own code asked a protocol machine to do something it cannot."""


class RemoteProtocolError(SipEdgeError):
    """A peer did something a protocol machine cannot accept."""


class ConfigError(SipEdgeError):
    """A configuration value is wrong; the message names the key."""


class TransportError(SipEdgeError):
    """A message could not be sent: no transport, or the flow is gone."""


class TransactionTimeout(SipEdgeError):
    """A client transaction got no final response in time (Timer B or F)."""


class OriginateError(SipEdgeError):
    """A request the proxy sends itself (a BYE that ends a call) could not
    be sent, or got no final response."""


class TokenError(SipEdgeError):
    """
    A sealed topology-hiding token that does not open: corrupted, forged,
    made with another key, or presented with the wrong associated data.
    """
