# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
Running the request chain: each stage in order until one decides.

Stages may answer at once or with a Deferred (a store lookup); the runner
stays synchronous until a stage returns a Deferred, so the common case
costs no Deferred at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.interfaces import IResponseStage
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._results import Continue, Drop, Forward, Respond, StageResult

__all__ = ["RequestChain"]

_DECISIONS = (Respond, Forward, Drop)


class RequestChain:
    """An ordered chain of request stages (cf. repro's ProcessorChain)."""

    _log = Logger()

    def __init__(self, stages: Sequence[Any]) -> None:
        self.stages = tuple(stages)
        #: The stages that also provide L{IResponseStage}, in the same order:
        #: they see every response relayed upstream.
        self.response_stages = tuple(s for s in self.stages if IResponseStage.providedBy(s))
        # Each stage logs under its own namespace (sipedge.stage.<name>), so
        # every event says which stage wrote it.
        self._loggers = tuple(
            Logger(namespace=f"sipedge.stage.{getattr(stage, 'name', type(stage).__name__)}")
            for stage in self.stages
        )

    def run(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        """
        Run the stages on C{context}; the result is the first decision, or
        a Deferred that fires with it. A stage that raises, or returns
        something that is not a stage result, ends the chain with a 500; a
        chain where no stage decides ends with a 500 too (a configuration
        error: the last stage should always decide).
        """
        return self._run_from(0, context)

    def _run_from(self, index: int, context: RequestContext) -> StageResult | Deferred[StageResult]:
        stages = self.stages
        for i in range(index, len(stages)):
            stage = stages[i]
            context.log = self._loggers[i]
            try:
                result = stage.process_request(context)
            except Exception:
                return self._failed(Failure(), stage, context)
            if isinstance(result, Deferred):
                d = result.addCallback(self._resume, i, context)
                d.addErrback(self._failed, stage, context)
                return d
            if isinstance(result, _DECISIONS):
                return result
            if not isinstance(result, Continue):
                return self._bad_result(result, stage, context)
        self._log.error(
            "No stage decided for {method} {uri}: the chain should end with a deciding stage",
            method=context.request.method,
            uri=context.request.uri,
        )
        return Respond(500, "No Route Decision")

    def _resume(self, result: object, index: int, context: RequestContext) -> Any:
        if isinstance(result, _DECISIONS):
            return result
        if not isinstance(result, Continue):
            return self._bad_result(result, self.stages[index], context)
        return self._run_from(index + 1, context)

    def _bad_result(self, result: object, stage: Any, context: RequestContext) -> Respond:
        self._log.error(
            "Stage {stage} returned {result!r}, not a stage result",
            stage=getattr(stage, "name", stage),
            result=result,
        )
        return Respond(500)

    def _failed(self, failure: Failure, stage: Any, context: RequestContext) -> Respond:
        self._log.failure(
            "Stage {stage} failed on {method} {call_id}",
            failure,
            stage=getattr(stage, "name", stage),
            method=context.request.method,
            call_id=context.request.headers.get("Call-ID"),
        )
        return Respond(500)
