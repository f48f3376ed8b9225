# -*- test-case-name: sipedge.test.test_stages -*-
"""
The sanity stage: deep validation of every request (RFC 3261 16.3 items 1,
2 and 6): fields a proxy relies on must parse, CSeq must match, the
Request-URI scheme must be one we handle, Proxy-Require must name only
extensions we support.
"""

from __future__ import annotations

from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IRequestStage
from sipedge.message import DEFAULT_LIMITS, Limits, check_request
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, Respond, StageResult

__all__ = ["SanityStage"]

_CONTINUE = Continue()


def warning_text(reason: str) -> str:
    """A Warning header value (RFC 3261 20.43) safe to send back."""
    safe = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "?" for c in reason)[:120]
    return f'399 sipedge "{safe}"'


@implementer(IRequestStage)
class SanityStage:
    """Answer a malformed request with the status its fault calls for."""

    name = "sanity"

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        supported: frozenset[str] = frozenset(),
        schemes: frozenset[str] = frozenset(("sip", "sips", "tel")),
    ) -> None:
        self._limits = limits
        self._supported = supported
        self._schemes = schemes

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        try:
            check_request(
                request, self._limits, schemes=self._schemes, supported=self._supported
            )
        except MessageParseError as e:
            if request.method == "ACK":
                return Drop(f"malformed ACK: {e.reason}")
            context.log.info(
                "Refusing malformed {method} from {source}: {reason}",
                method=request.method,
                source=str(context.flow),
                reason=e.reason,
                rule="sanity",
            )
            return Respond(e.status_hint, None, (*e.headers, ("Warning", warning_text(e.reason))))
        return _CONTINUE
