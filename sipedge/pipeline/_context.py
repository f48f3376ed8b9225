# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
The state one request carries through the chain (cf. repro's
RequestContext with its KeyValueStore).
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger

from sipedge.flow import Flow
from sipedge.message import Request

__all__ = ["RequestContext"]

#: The log of a context no chain has given a stage's logger yet: one for
#: all (a Logger per request would look up its caller's module each time).
_DEFAULT_LOG = Logger(namespace="sipedge.pipeline")


@attrs.define
class RequestContext:
    """
    Mutable on purpose: stages replace L{request} (never mutate it) and
    leave notes for later stages in L{annotations}.

    @ivar request: the request as the stages have shaped it so far.
    @ivar original: the request as it arrived (after transport stamping).
    @ivar flow: the flow it arrived on.
    @ivar identity: the authenticated user (AOR text), set by auth stages.
    @ivar annotations: notes keyed by stage name, e.g. C{"route"} records
        that the request was routed to us by our own Record-Route.
    @ivar services: the shared services (L{sipedge.pipeline.StageServices}).
    """

    request: Request
    flow: Flow
    services: Any = None
    original: Request = attrs.field()
    identity: str | None = None
    annotations: dict[str, Any] = attrs.Factory(dict)
    log: Logger = _DEFAULT_LOG

    @original.default
    def _original(self) -> Request:
        return self.request
