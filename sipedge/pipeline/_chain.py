# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
Running the request chain: each stage in order until one decides.

Stages may answer at once or with a Deferred (a store lookup); the runner
stays synchronous until a stage returns a Deferred that has not fired yet
(one that has, such as C{maybeDeferred} of a synchronous lookup, is taken
as its value: L{sipedge.pipeline.settled}), so the common case costs no
Deferred at all. The same holds for the response chain
(L{RequestChain.run_responses}) and the routed stages. The branch checks
(L{RequestChain.run_branch}) are synchronous. A chain that ends with
C{Forward} tells the stages that provide L{IRoutedStage} the chosen
targets before the decision is returned. A request within a dialog set up
through us (our signed Record-Route came back) skips the stages that
declare L{IDialogNeutralStage}: they cannot change its fate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.interfaces import IBranchStage, IDialogNeutralStage, IResponseStage, IRoutedStage
from sipedge.message import Request, Response
from sipedge.pipeline._context import RequestContext
from sipedge.pipeline._settled import settled
from sipedge.results import Continue, Drop, Forward, Respond, StageResult

__all__ = ["RequestChain"]

_DECISIONS = (Respond, Forward, Drop)


def _bad_response(result: object) -> Failure:
    try:
        RequestChain._check_response(result)
    except TypeError:
        return Failure()
    raise AssertionError("a response")  # pragma: no cover


def _in_dialog(context: RequestContext) -> bool:
    """
    Whether the request of C{context} belongs to a dialog set up through
    us: the C{route} stage found our signed Record-Route on it (a REGISTER
    never belongs to a dialog).
    """
    return (
        context.annotations.get("route") == "dialog" and context.request.method != "REGISTER"
    )


class RequestChain:
    """An ordered chain of request stages (cf. repro's ProcessorChain)."""

    _log = Logger()

    def __init__(self, stages: Sequence[Any]) -> None:
        self.stages = tuple(stages)
        #: The stages that also provide L{IResponseStage}, in the same order:
        #: they see every response relayed upstream.
        self.response_stages = tuple(s for s in self.stages if IResponseStage.providedBy(s))
        #: The stages that also provide L{IBranchStage}, in the same order:
        #: the proxy core asks them about each branch's flow before sending
        #: (empty: the core skips the check).
        self.branch_stages = tuple(s for s in self.stages if IBranchStage.providedBy(s))
        #: The stages that also provide L{IRoutedStage}, in the same order:
        #: told the targets when the chain ends with Forward.
        self.routed_stages = tuple(s for s in self.stages if IRoutedStage.providedBy(s))
        #: For each stage, whether it provides L{IDialogNeutralStage}: not
        #: run on requests within a dialog set up through us.
        self.dialog_neutral = tuple(IDialogNeutralStage.providedBy(s) for s in self.stages)
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
        result = self._run_from(0, context)
        if not self.routed_stages:
            return result
        if isinstance(result, Deferred):
            return result.addCallback(self._routed, 0, context)
        return self._routed(result, 0, context)

    def _routed(
        self, result: Any, index: int, context: RequestContext
    ) -> StageResult | Deferred[StageResult]:
        """
        Tell the routed stages from C{index} on that the chain chose
        C{result}'s targets, while it is a Forward.
        """
        stages = self.routed_stages
        for i in range(index, len(stages)):
            if not isinstance(result, Forward):
                return result
            stage = stages[i]
            outcome: Any
            try:
                outcome = stage.targets_chosen(context, result)
            except Exception:
                return self._failed(Failure(), stage, context)
            if isinstance(outcome, Deferred):
                outcome = settled(outcome)
                if isinstance(outcome, Failure):
                    return self._failed(outcome, stage, context)
            if isinstance(outcome, Deferred):
                d = outcome.addCallback(self._targets_taken, result, stage, context)
                d.addCallback(self._routed, i + 1, context)
                d.addErrback(self._failed, stage, context)
                return d
            result = self._targets_taken(outcome, result, stage, context)
        return result

    def _targets_taken(
        self, outcome: object, forward: Forward, stage: Any, context: RequestContext
    ) -> Any:
        if isinstance(outcome, Continue):
            return forward
        if isinstance(outcome, _DECISIONS):
            return outcome
        return self._bad_result(outcome, stage, context)

    def _run_from(self, index: int, context: RequestContext) -> StageResult | Deferred[StageResult]:
        stages = self.stages
        loggers = self._loggers
        neutral = self.dialog_neutral
        for i in range(index, len(stages)):
            stage = stages[i]
            if neutral[i] and _in_dialog(context):
                continue
            context.log = loggers[i]
            try:
                result = stage.process_request(context)
            except Exception:
                return self._failed(Failure(), stage, context)
            if type(result) is Continue:
                # Most stages, most of the time: checked first, by type (an
                # isinstance check against Deferred, an ABC, costs more).
                continue
            if isinstance(result, Deferred):
                result = settled(result)
                if isinstance(result, Failure):
                    return self._failed(result, stage, context)
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

    # -- the response chain ------------------------------------------------------

    def run_responses(
        self, context: RequestContext | None, response: Response
    ) -> Response | Deferred[Response | None] | None:
        """
        Run the response stages on C{response}, in order: the response as
        the last stage left it, C{None} if a stage absorbed it, or a
        Deferred that fires with one of these once a stage that answered
        with a Deferred has fired (no Deferred is made while every stage
        answers at once).

        A stage that fails (raises, returns something that is not a
        response or C{None}, or its Deferred fails or is cancelled) is
        logged; a provisional response is then dropped (C{None}: what the
        stage would have changed in it is unknown), a final one goes on to
        the next stage as it was.
        """
        return self._respond_from(0, context, response)

    def _respond_from(
        self, index: int, context: RequestContext | None, response: Response
    ) -> Response | Deferred[Response | None] | None:
        stages = self.response_stages
        for i in range(index, len(stages)):
            stage = stages[i]
            changed: Any
            try:
                changed = stage.process_response(context, response)
            except Exception:
                changed = Failure()
            if type(changed) is Response:
                response = changed  # the common case, checked first
                continue
            if isinstance(changed, Deferred):
                changed = settled(changed)
            if isinstance(changed, Deferred):
                changed.addCallback(self._check_response)
                changed.addCallbacks(
                    self._responded,
                    self._response_failed,
                    callbackArgs=(i, context),
                    errbackArgs=(stage, i, context, response),
                )
                return changed
            if changed is None:
                return None
            if not isinstance(changed, Response):
                if not isinstance(changed, Failure):
                    changed = _bad_response(changed)
                if self._stage_failed(changed, stage, response):
                    return None
                continue
            response = changed
        return response

    @staticmethod
    def _check_response(result: object) -> Response | None:
        if result is None or isinstance(result, Response):
            return result
        raise TypeError(f"returned {result!r}, not a response or None")

    def _responded(
        self, changed: Response | None, index: int, context: RequestContext | None
    ) -> Response | Deferred[Response | None] | None:
        if changed is None:
            return None
        return self._respond_from(index + 1, context, changed)

    def _response_failed(
        self,
        failure: Failure,
        stage: Any,
        index: int,
        context: RequestContext | None,
        response: Response,
    ) -> Response | Deferred[Response | None] | None:
        if self._stage_failed(failure, stage, response):
            return None
        return self._respond_from(index + 1, context, response)

    def _stage_failed(self, failure: Failure, stage: Any, response: Response) -> bool:
        """Log a response stage's failure; True if the response is dropped."""
        dropped = response.status < 200
        self._log.failure(
            "Response stage {stage} failed on {status} {call_id}: {outcome}",
            failure,
            stage=getattr(stage, "name", stage),
            status=response.status,
            call_id=response.headers.get("Call-ID"),
            outcome="dropped" if dropped else "relayed as it was",
        )
        return dropped

    # -- the branch checks ------------------------------------------------------

    def run_branch(self, context: Any, request: Request, flow: Any) -> Request | Respond:
        """
        Ask the branch stages, in order, about sending C{request} on
        C{flow}: the request as the last stage left it, or the first
        refusal (a C{Respond}), logged with the stage's name as the rule,
        the request's source and the destination. A stage that raises or
        answers something else refuses with 500.
        """
        for stage in self.branch_stages:
            try:
                result = stage.process_branch(context, request, flow)
            except Exception:
                self._log.failure(
                    "Branch stage {stage} failed on {method} to {destination}",
                    stage=getattr(stage, "name", stage),
                    method=request.method,
                    destination=str(flow),
                )
                result = Respond(500)
            if isinstance(result, Request):
                request = result
                continue
            if not isinstance(result, Respond):
                self._log.error(
                    "Branch stage {stage} returned {result!r}, not a request or Respond",
                    stage=getattr(stage, "name", stage),
                    result=result,
                )
                result = Respond(500)
            self._log.info(
                "Refusing to send {method} {call_id} from {source} to {destination}:"
                " {status} ({rule})",
                method=request.method,
                call_id=request.headers.get("Call-ID"),
                source=str(context.flow) if context is not None else None,
                destination=str(flow),
                status=result.status,
                rule=getattr(stage, "name", type(stage).__name__),
            )
            return result
        return request

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
