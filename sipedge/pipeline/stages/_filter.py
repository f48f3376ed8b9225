# -*- test-case-name: sipedge.test.test_filter -*-
"""
The filter stage: a method allow-list and ordered header rules
(L{sipedge.security.FilterConfig}), from C{[pipeline.options.filter]}.

 - A request whose method is not allowed gets 405 Method Not Allowed with
   an C{Allow} header listing what is (RFC 3261 8.2.1, 21.4.6).
 - Then the rules, in order; the first that applies to the method and
   matches decides: C{accept} ends the rules (the chain goes on),
   C{reject} answers with the rule's status, C{drop} answers nothing. A
   request no rule matches goes on.
 - An ACK is never answered (RFC 3261 17.1.1.3): what would refuse it
   drops it instead. ACK and CANCEL are allowed wherever INVITE is (and
   the proxy core answers a CANCEL itself, before any stage).

Every refusal bumps a counter of C{services.security} (C{filter_rejected},
C{filter_dropped}, C{filter_method_refused}) and is a log event with
C{rule="filter"}, C{filter} (the rule's name, or C{methods}), C{action},
C{source}, C{method}, and for a header rule C{header} and C{value}. A rule
with C{offence = true} also counts a C{filter} offence of the source.

Without methods or rules (the default) the stage costs two attribute
tests per request.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from sipedge.interfaces import IRequestStage
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, Respond, StageResult
from sipedge.security import FilterConfig, FilterMatch

__all__ = ["FilterStage"]

_CONTINUE = Continue()

#: The most of a matched value put in a log event or an offence's detail.
_SHOWN = 120


@implementer(IRequestStage)
class FilterStage:
    """
    @param config: the allow-list and rules.
    @param security: the L{sipedge.security.Security} whose C{stats} are
        bumped and whose C{offence} is called; C{None} to count in
        C{self.stats} only (and count no offence).
    """

    name = "filter"

    def __init__(self, config: FilterConfig, security: Any = None) -> None:
        self.config = config
        self.security = security
        self.stats: dict[str, int] = security.stats if security is not None else {}
        for key in ("filter_rejected", "filter_dropped", "filter_method_refused"):
            self.stats.setdefault(key, 0)
        self._methods = config.methods
        self._rules = config.rules
        self._refusal = Respond(405, None, (("Allow", config.allow),)) if config.methods else None

    def __repr__(self) -> str:
        return f"<FilterStage methods={len(self._methods)} rules={len(self._rules)}>"

    def process_request(self, context: RequestContext) -> StageResult:
        method = context.request.method
        if self._methods and method not in self._methods:
            return self._method_refused(context, method)
        if not self._rules:
            return _CONTINUE
        found = self.config.match(context.request)
        if found is None or found.rule.action == "accept":
            return _CONTINUE
        return self._refuse(context, method, found)

    def _method_refused(self, context: RequestContext, method: str) -> StageResult:
        self.stats["filter_method_refused"] += 1
        ack = method == "ACK"
        context.log.info(
            "{what} {method} from {source}: method not allowed",
            what="Dropping" if ack else "Refusing",
            method=method,
            source=context.flow.remote_host,
            rule="filter",
            filter="methods",
            action="drop" if ack else "reject",
            status=None if ack else 405,
        )
        if ack:
            return Drop("filter: method not allowed")
        assert self._refusal is not None
        return self._refusal

    def _refuse(self, context: RequestContext, method: str, found: FilterMatch) -> StageResult:
        rule = found.rule
        drop = rule.action == "drop" or method == "ACK"
        source = context.flow.remote_host
        shown = found.value[:_SHOWN]
        self.stats["filter_dropped" if drop else "filter_rejected"] += 1
        context.log.info(
            "{what} {method} from {source}: filter rule {filter} matched {header} {value!r}",
            what="Dropping" if drop else "Refusing",
            method=method,
            source=source,
            rule="filter",
            filter=rule.name,
            action="drop" if drop else "reject",
            status=None if drop else rule.status,
            header=rule.header,
            value=shown,
        )
        if rule.offence and self.security is not None:
            self.security.offence(source, "filter", f"rule {rule.name}: {rule.header} {shown!r}")
        if drop:
            return Drop(f"filter rule {rule.name}")
        return Respond(rule.status, rule.reason)
