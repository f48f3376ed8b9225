# -*- test-case-name: sipedge.test.test_fault_stage -*-
"""
The C{fault} stage: a deliberately misbehaving edge, for interop labs.

Put between a PBX and its trunk, it drops, delays or mangles the requests
and responses its rules match (by method, status, a header matching a
regular expression, and a probability), so a lab can see how the peers
live with a flaky network element. Every random choice comes from a
C{random.Random} seeded from the configuration, and every delay runs on
the injected clock, so a run is repeatable.

Never put it in a production chain: it exists to break things.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IResponseStage
from sipedge.message import Headers, Request, Response
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Drop, StageResult

__all__ = ["ACTIONS", "DIRECTIONS", "FaultRule", "FaultStage", "rules_from_options"]

_log = Logger()

#: What a rule does to a message it matches.
ACTIONS = ("drop", "delay", "mangle")
#: Which messages a rule looks at.
DIRECTIONS = ("request", "response", "both")

_RULE_KEYS = (
    "action", "direction", "method", "status", "header", "match", "probability",
    "seconds", "set", "remove",
)


@attrs.frozen
class FaultRule:
    """
    One rule of the C{fault} stage.

    @ivar action: C{"drop"}, C{"delay"} or C{"mangle"}.
    @ivar direction: C{"request"}, C{"response"} or C{"both"}.
    @ivar methods: the methods it applies to (a response: its CSeq
        method); empty for every method.
    @ivar statuses: the response statuses it applies to; empty for all.
    @ivar header: a header field that must be present, or C{None}.
    @ivar pattern: a regular expression one of C{header}'s values must
        contain (C{re.search}), or C{None}.
    @ivar probability: the chance that a matching message is hit, 0 to 1.
    @ivar seconds: how long C{"delay"} holds the message.
    @ivar set_headers: C{"mangle"}: fields replaced (or added), in order.
    @ivar remove_headers: C{"mangle"}: fields removed.
    """

    action: str
    direction: str = "request"
    methods: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    header: str | None = None
    pattern: re.Pattern[str] | None = None
    probability: float = 1.0
    seconds: float = 0.0
    set_headers: tuple[tuple[str, str], ...] = ()
    remove_headers: tuple[str, ...] = ()

    def matches(self, message: Request | Response) -> bool:
        """Whether C{message} is one this rule looks at (before the dice)."""
        if isinstance(message, Request):
            if self.direction == "response" or self.statuses:
                return False
            method = message.method
        else:
            if self.direction == "request":
                return False
            if self.statuses and message.status not in self.statuses:
                return False
            try:
                method = message.cseq.method
            except Exception:
                return False
        if self.methods and method not in self.methods:
            return False
        if self.header is not None:
            values = message.headers.get_all(self.header)
            if not values:
                return False
            if self.pattern is not None and not any(self.pattern.search(v) for v in values):
                return False
        return True

    def mangle(self, headers: Headers) -> Headers:
        """C{headers} with this rule's removals and replacements."""
        for name in self.remove_headers:
            headers = headers.removed(name)
        for name, value in self.set_headers:
            headers = headers.replaced(name, value)
        return headers


@implementer(IRequestStage, IResponseStage)
class FaultStage:
    """
    Applies the first matching L{FaultRule} that the dice let through to
    each request and relayed response. A dropped request gets no answer
    (its sender retransmits, as after a lost datagram); a dropped response
    is absorbed (a final response then goes on as it came, which is all
    the response chain allows: drop finals upstream of the proxy with a
    network model instead).

    @ivar hits: C{(action, first line)} of the last L{KEEP_HITS} messages
        hit, oldest first (each hit is also logged).
    """

    name = "fault"

    #: How many hits L{hits} keeps (a lab edge may run for days).
    KEEP_HITS = 1000

    def __init__(
        self, rules: Iterable[FaultRule], clock: Any, seed: int = 0,
    ) -> None:
        self.rules = tuple(rules)
        self._clock = clock
        self._random = random.Random(seed)
        self.hits: deque[tuple[str, str]] = deque(maxlen=self.KEEP_HITS)

    def _rule_for(self, message: Request | Response) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(message) and self._random.random() < rule.probability:
                return rule
        return None

    def _hit(self, rule: FaultRule, message: Request | Response) -> None:
        line = (
            f"{message.method} {message.uri}"
            if isinstance(message, Request)
            else f"{message.status} {message.reason}"
        )
        self.hits.append((rule.action, line))
        _log.info("Fault injection: {action} {line}", action=rule.action, line=line)

    def _later(self, seconds: float, value: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(lambda d: call.cancel())
        call = self._clock.callLater(seconds, d.callback, value)
        return d

    def process_request(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        request = context.request
        rule = self._rule_for(request)
        if rule is None:
            return Continue()
        self._hit(rule, request)
        if rule.action == "drop":
            return Drop(f"fault injection: {rule.action}")
        if rule.action == "mangle":
            context.request = request.with_headers(rule.mangle(request.headers))
            return Continue()
        return self._later(rule.seconds, Continue())

    def process_response(
        self, context: Any, response: Response
    ) -> Response | Deferred[Response] | None:
        rule = self._rule_for(response)
        if rule is None:
            return response
        self._hit(rule, response)
        if rule.action == "drop":
            return None
        if rule.action == "mangle":
            return response.with_headers(rule.mangle(response.headers))
        return self._later(rule.seconds, response)


def _names(value: Any, key: str, convert: Callable[[Any], Any]) -> frozenset[Any]:
    items = value if isinstance(value, list) else [value]
    try:
        return frozenset(convert(item) for item in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not valid here") from None


def _rule(index: int, table: Any, prefix: str) -> FaultRule:
    key = f"{prefix}.rules[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{key}: must be a table")
    unknown = sorted(set(table) - set(_RULE_KEYS))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key (known: {', '.join(_RULE_KEYS)})")
    action = table.get("action")
    if action not in ACTIONS:
        raise ConfigError(f"{key}.action: must be one of {', '.join(ACTIONS)}, not {action!r}")
    direction = table.get("direction", "request")
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"{key}.direction: must be one of {', '.join(DIRECTIONS)}, not {direction!r}"
        )

    def method(item: Any) -> str:
        if not isinstance(item, str) or not item.isalpha():
            raise ValueError(item)
        return item.upper()

    def status(item: Any) -> int:
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 699:
            raise ValueError(item)
        return item

    methods: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    if "method" in table:
        methods = _names(table["method"], f"{key}.method", method)
    if "status" in table:
        statuses = _names(table["status"], f"{key}.status", status)
    if statuses and direction == "request":
        raise ConfigError(f"{key}.status: a status matches responses: set direction")
    header = table.get("header")
    if header is not None and (not isinstance(header, str) or not header.strip()):
        raise ConfigError(f"{key}.header: must be a header field name")
    pattern = None
    if "match" in table:
        if header is None:
            raise ConfigError(f"{key}.match: needs header (the field to match)")
        try:
            pattern = re.compile(str(table["match"]))
        except re.error as e:
            raise ConfigError(f"{key}.match: not a regular expression: {e}") from None
    probability = table.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not (
        0.0 <= probability <= 1.0
    ):
        raise ConfigError(f"{key}.probability: must be a number from 0 to 1")
    seconds = table.get("seconds", 0.0)
    if action == "delay" and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            0 < seconds <= 300
        )
    ):
        raise ConfigError(f"{key}.seconds: a delay needs seconds, more than 0 and at most 300")
    if action != "delay" and "seconds" in table:
        raise ConfigError(f"{key}.seconds: only for action = \"delay\"")
    set_table = table.get("set", {})
    remove = table.get("remove", [])
    if action == "mangle":
        if not isinstance(set_table, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in set_table.items()
        ):
            raise ConfigError(f"{key}.set: must be a table of header = \"value\"")
        if not isinstance(remove, list) or not all(isinstance(n, str) for n in remove):
            raise ConfigError(f"{key}.remove: must be a list of header names")
        if not set_table and not remove:
            raise ConfigError(f"{key}: mangle needs set or remove")
        for name, value in set_table.items():
            if "\r" in value or "\n" in value:
                raise ConfigError(f"{key}.set.{name}: a value cannot hold a line break")
    elif "set" in table or "remove" in table:
        raise ConfigError(f"{key}: set and remove are only for action = \"mangle\"")
    return FaultRule(
        action=action,
        direction=direction,
        methods=methods,
        statuses=statuses,
        header=header,
        pattern=pattern,
        probability=float(probability),
        seconds=float(seconds),
        set_headers=tuple(set_table.items()) if action == "mangle" else (),
        remove_headers=tuple(remove) if action == "mangle" else (),
    )


def rules_from_options(
    options: Mapping[str, Any], prefix: str = "pipeline.options.fault"
) -> tuple[tuple[FaultRule, ...], int]:
    """
    The rules and the seed of C{[pipeline.options.fault]}; every error
    names its key.
    """
    unknown = sorted(set(options) - {"rules", "seed"})
    if unknown:
        raise ConfigError(f"{prefix}: unknown option {unknown[0]!r} (known: rules, seed)")
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{prefix}.seed: must be an integer")
    tables = options.get("rules", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{prefix}.rules: must be a list of tables ([[{prefix}.rules]])")
    return tuple(_rule(i, t, prefix) for i, t in enumerate(tables)), seed
