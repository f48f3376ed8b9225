# -*- test-case-name: sipedge.test.test_filter, sipedge.test.test_doc_config -*-
"""
The request filter's configuration and matcher: a method allow-list and
ordered header rules, for the C{filter} stage.

A rule names what it looks at (a header field by any of its names, C{From},
C{t}, C{User-Agent}, C{Content-Type}, ...; or the Request-URI, as
C{request-uri}), a regular expression searched in it, and what to do when
it matches: C{accept} (stop looking at rules; the chain goes on), C{reject}
(answer with C{status}/C{reason}) or C{drop} (no answer). The first rule
that matches decides; a request no rule matches goes on. A rule may be
limited to some methods, and may count a C{filter} offence of the source
(so that, at C{security.filter_threshold}, it is banned).

Everything is checked when it is built: a bad value raises
L{sipedge.config.InvalidValue} naming its key (C{rules[2].status}),
which the stage factory turns into a L{ConfigError} naming
C{pipeline.options.filter.rules[2].status}.

Standard library and C{attrs} only: no Twisted, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from sipedge._config_values import InvalidValue, describe, suggest
from sipedge.message import header_key

__all__ = [
    "FILTER_ACTIONS",
    "REQUEST_URI",
    "FilterConfig",
    "FilterMatch",
    "FilterRule",
    "parse_filter_config",
]

#: What a matching rule does.
FILTER_ACTIONS = ("accept", "reject", "drop")

#: The name a rule gives the Request-URI in its C{header} key.
REQUEST_URI = "request-uri"

#: RFC 3261 25.1: a method is a token.
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+\Z")
#: A Reason-Phrase we can send: no control characters (RFC 3261 25.1).
_BAD_REASON = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: The most of a header value a rule searches (a larger field is cut).
MAX_SEARCHED = 4096

_RULE_KEYS = (
    "name",
    "header",
    "pattern",
    "ignore_case",
    "action",
    "status",
    "reason",
    "methods",
    "offence",
)
_OPTION_KEYS = ("methods", "rules")


def _method(value: object) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise ValueError(f"expected a SIP method (a token such as 'INVITE'), got {describe(value)}")
    return value


def _methods(key: str, value: object) -> frozenset[str]:
    if not isinstance(value, (list, tuple)):
        raise InvalidValue(key, f"expected an array of methods, got {describe(value)}")
    methods = []
    for index, item in enumerate(value):
        try:
            methods.append(_method(item))
        except ValueError as e:
            raise InvalidValue(f"{key}[{index}]", str(e)) from None
    return frozenset(methods)


@attrs.frozen
class FilterRule:
    """
    One header rule.

    @ivar name: names the rule in logs (C{rules[<index>]} if not given).
    @ivar header: the header field's name as configured, or L{REQUEST_URI}.
    @ivar pattern: the regular expression, searched (C{re.search}) in each
        value of the field (the first L{MAX_SEARCHED} characters).
    @ivar ignore_case: search case-insensitively.
    @ivar action: one of L{FILTER_ACTIONS}.
    @ivar status: the answer of C{reject} (400-699).
    @ivar reason: its reason phrase; the standard one if C{None}.
    @ivar methods: the methods the rule applies to; all if empty.
    @ivar offence: a C{reject} or C{drop} also counts a C{filter} offence
        of the source (bans at C{security.filter_threshold}).
    @ivar key: the header's look-up key (L{header_key}: C{f} and C{From}
        are one), or C{None} for the Request-URI.
    """

    name: str
    header: str
    pattern: str
    ignore_case: bool = False
    action: str = "reject"
    status: int = 403
    reason: str | None = None
    methods: frozenset[str] = frozenset()
    offence: bool = False
    compiled: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)
    key: str | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        object.__setattr__(self, "compiled", re.compile(self.pattern, flags))
        uri = self.header.lower() == REQUEST_URI
        object.__setattr__(self, "key", None if uri else header_key(self.header))

    def search(self, values: Iterable[str]) -> str | None:
        """The first of C{values} the pattern is found in, or C{None}."""
        search = self.compiled.search
        for value in values:
            if search(value[:MAX_SEARCHED]) is not None:
                return value
        return None


@attrs.frozen
class FilterMatch:
    """The rule that matched a request, and the value it matched in."""

    rule: FilterRule
    value: str


@attrs.frozen
class FilterConfig:
    """
    C{[pipeline.options.filter]}.

    @ivar methods: the methods allowed; every method if empty. ACK and
        CANCEL are allowed with INVITE.
    @ivar rules: the header rules, in order.
    """

    methods: frozenset[str] = frozenset()
    rules: tuple[FilterRule, ...] = ()
    _keys: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        keys = frozenset(rule.key for rule in self.rules if rule.key is not None)
        object.__setattr__(self, "_keys", keys)

    @property
    def allow(self) -> str:
        """The Allow header value of a 405 (RFC 3261 20.5), sorted."""
        return ", ".join(sorted(self.methods))

    def allows(self, method: str) -> bool:
        """Whether C{method} passes the allow-list."""
        return not self.methods or method in self.methods

    def match(self, request: Any) -> FilterMatch | None:
        """The first rule that applies to C{request} and matches it, or C{None}."""
        method = request.method
        # One pass over the header fields for every rule.
        keys = self._keys
        fields: dict[str, list[str]] = {}
        if keys:
            for key, _, value in request.headers.fields:
                if key in keys:
                    found = fields.get(key)
                    if found is None:
                        fields[key] = [value]
                    else:
                        found.append(value)
        for rule in self.rules:
            if rule.methods and method not in rule.methods:
                continue
            key = rule.key
            matched = rule.search((request.uri,) if key is None else fields.get(key, ()))
            if matched is not None:
                return FilterMatch(rule, matched)
        return None


def _rule(index: int, table: object) -> FilterRule:
    where = f"rules[{index}]"
    if not isinstance(table, Mapping):
        raise InvalidValue(where, f"expected a table, got {describe(table)}")
    for key in table:
        if key not in _RULE_KEYS:
            raise InvalidValue(f"{where}.{key}", "unknown key" + suggest(str(key), _RULE_KEYS))
    for key in ("header", "pattern"):
        if key not in table:
            raise InvalidValue(f"{where}.{key}", "missing (every rule needs header and pattern)")
    name = table.get("name", where)
    if not isinstance(name, str) or not name:
        raise InvalidValue(f"{where}.name", f"expected a non-empty string, got {describe(name)}")
    header = table["header"]
    if not isinstance(header, str) or not _TOKEN.match(header):
        raise InvalidValue(
            f"{where}.header",
            f"expected a header name or {REQUEST_URI!r}, got {describe(header)}",
        )
    ignore_case = table.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise InvalidValue(
            f"{where}.ignore_case", f"expected true or false, got {describe(ignore_case)}"
        )
    pattern = table["pattern"]
    if not isinstance(pattern, str) or not pattern:
        raise InvalidValue(
            f"{where}.pattern", f"expected a regular expression, got {describe(pattern)}"
        )
    try:
        re.compile(pattern)
    except re.error as e:
        raise InvalidValue(
            f"{where}.pattern", f"{pattern!r} is not a valid regular expression: {e}"
        ) from None
    action = table.get("action", "reject")
    if action not in FILTER_ACTIONS:
        raise InvalidValue(
            f"{where}.action",
            f"must be one of {', '.join(FILTER_ACTIONS)}, not {describe(action)}",
        )
    status = table.get("status", 403)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 699:
        raise InvalidValue(
            f"{where}.status", f"expected a status from 400 to 699, got {describe(status)}"
        )
    reason = table.get("reason")
    if reason is not None and (
        not isinstance(reason, str) or not reason.strip() or _BAD_REASON.search(reason)
    ):
        raise InvalidValue(
            f"{where}.reason",
            f"expected a reason phrase (text without control characters), got {describe(reason)}",
        )
    for key in ("status", "reason"):
        if key in table and action != "reject":
            raise InvalidValue(f"{where}.{key}", f"only a reject rule has a {key}, not {action!r}")
    offence = table.get("offence", False)
    if not isinstance(offence, bool):
        raise InvalidValue(f"{where}.offence", f"expected true or false, got {describe(offence)}")
    if offence and action == "accept":
        raise InvalidValue(f"{where}.offence", "an accept rule counts no offence")
    methods = _methods(f"{where}.methods", table.get("methods", []))
    return FilterRule(
        name=name,
        header=header,
        pattern=pattern,
        ignore_case=ignore_case,
        action=action,
        status=status,
        reason=reason,
        methods=methods,
        offence=offence,
    )


def parse_filter_config(table: Mapping[str, Any]) -> FilterConfig:
    """
    A L{FilterConfig} from the stage's options: C{methods} (an array of
    methods) and C{rules} (an array of tables).

    @raise InvalidValue: naming the key relative to the options
        (C{methods[1]}, C{rules[0].pattern}).
    """
    for key in table:
        if key not in _OPTION_KEYS:
            raise InvalidValue(str(key), "unknown option" + suggest(str(key), _OPTION_KEYS))
    methods = _methods("methods", table.get("methods", []))
    if "methods" in table and not methods:
        raise InvalidValue("methods", "must allow at least one method (leave it out to allow all)")
    if "INVITE" in methods:
        # RFC 3261 17.1.1.3, 9.2: ACK and CANCEL belong to INVITE transactions.
        methods |= {"ACK", "CANCEL"}
    rules = table.get("rules", [])
    if not isinstance(rules, (list, tuple)):
        raise InvalidValue("rules", f"expected an array of tables, got {describe(rules)}")
    parsed = tuple(_rule(index, rule) for index, rule in enumerate(rules))
    names: dict[str, int] = {}
    for index, rule in enumerate(parsed):
        if rule.name in names:
            raise InvalidValue(
                f"rules[{index}].name", f"{rule.name!r} is already rules[{names[rule.name]}]"
            )
        names[rule.name] = index
    return FilterConfig(methods, parsed)
