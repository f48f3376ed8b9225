# -*- test-case-name: sipedge.test.test_monitor -*-
"""
The monitor stage: where the behaviour monitor (L{sipedge.security.Monitor})
acts on the traffic itself.

- A source the monitor restricted (a rule with the C{rate-limit} action)
  gets the reduced budget C{restricted_rate}/C{restricted_burst} per method
  class until the restriction ends; what is over it is dropped without an
  answer, like a flood.
- Every ACK, BYE and CANCEL is shown to the monitor, so that the calls it
  counts for C{concurrent-calls} are confirmed and ended.
- It is a response stage too: every final response the proxy relays
  upstream is shown to the monitor (L{Monitor.response_relayed}), so that
  a 404 or an authentication failure from a server behind us counts
  against the source of the request, as the chain's own answers do. The
  response goes on unchanged.

Put it early, right after C{flood}: a restricted source should cost as
little as possible.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge import _debug
from sipedge.interfaces import IRequestStage, IResponseStage
from sipedge.message import Response
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, StageResult
from sipedge.security import Verdict

__all__ = ["MonitorStage"]

_CONTINUE = Continue()
_ADMIT = Verdict.ADMIT
_REPORT = Verdict.OVER_REPORT
_DROP = Drop("monitor: restricted source over its reduced budget")
_DIALOG = frozenset(("ACK", "BYE", "CANCEL"))


@implementer(IRequestStage, IResponseStage)
class MonitorStage:
    """
    @param monitor: the L{sipedge.security.Monitor} (the one the proxy
        core tells of its decisions).
    """

    name = "monitor"

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        monitor.watch_dialogs()

    def process_request(self, context: RequestContext) -> StageResult:
        monitor = self.monitor
        request = context.request
        method = request.method
        source = context.flow.remote_host
        verdict = monitor.admit(source, method)
        if verdict is not _ADMIT:
            if verdict is not _REPORT and not _debug.enabled():
                return _DROP
            log = context.log.info if verdict is _REPORT else context.log.debug
            log(
                "Dropping {method} from {source}: restricted by the monitor, over its"
                " reduced budget",
                method=method,
                source=source,
                rule="monitor",
                action="rate-limit",
            )
            return _DROP
        if method in _DIALOG:
            monitor.note_dialog_request(request)
        return _CONTINUE

    def process_response(self, context: RequestContext | None, response: Response) -> Response:
        if response.status >= 200:
            self.monitor.response_relayed(context, response)
        return response
