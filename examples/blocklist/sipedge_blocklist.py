# -*- test-case-name: test_sipedge_blocklist -*-
"""
A sipedge request stage that turns away requests from blocked callers.

A rule is a C{user@host} pattern with shell-style wildcards (C{*}, C{?},
C{[seq]}) matched against the From URI: the user part as written (user
parts are case-sensitive, RFC 3261 19.1.4) and the host in lower case. A
C{tel:} From has its number as the user and an empty host.

A request from a caller that matches a rule gets 403 (an ACK, which cannot
be answered, is dropped), and a log event names the rule. Every other
request goes on, with a header saying it was screened if C{mark} is set.
The header replaces any the caller sent, so it cannot be forged::

    [pipeline]
    stages = ["sanity", "blocklist", "max-forwards", ...]

    [pipeline.options.blocklist]
    block = ["sipvicious@*", "*@198.51.100.*"]
    mark = "X-Screened: yes"
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

import attrs
from sipedge.error import ConfigError, MessageParseError
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.message import Request
from sipedge.pipeline import Continue, Drop, RequestContext, Respond, StageResult
from twisted.plugin import IPlugin
from zope.interface import implementer

__all__ = ["BlocklistFactory", "BlocklistStage", "Rule", "caller_of"]

NAME = "blocklist"
_OPTIONS = f"pipeline.options.{NAME}"
_CONTINUE = Continue()
# RFC 3261 25.1: field-name = token
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


@attrs.frozen
class Rule:
    """One C{user@host} pattern, split at its last C{@}."""

    pattern: str
    user: str
    host: str

    @classmethod
    def parse(cls, pattern: object) -> Rule:
        """
        @raise ValueError: if C{pattern} is not C{user@host}.
        """
        if not isinstance(pattern, str):
            raise ValueError(f"expected a 'user@host' pattern, not {pattern!r}")
        user, at, host = pattern.rpartition("@")
        if not (at and user and host):
            raise ValueError(f"expected 'user@host' (wildcards allowed), not {pattern!r}")
        return cls(pattern, user, host.lower())

    def matches(self, user: str, host: str) -> bool:
        """True if a caller C{user@host} (host in lower case) is blocked."""
        return fnmatch.fnmatchcase(user, self.user) and fnmatch.fnmatchcase(host, self.host)


def caller_of(request: Request) -> tuple[str, str]:
    """
    The user and host (lower case, IPv6 without brackets) of the From URI.

    @raise MessageParseError: if the From header field does not parse.
    """
    uri = request.from_address.uri
    if uri.scheme == "tel":
        return getattr(uri, "number", ""), ""
    return getattr(uri, "unescaped_user", None) or "", getattr(uri, "bare_host", "").lower()


@implementer(IRequestStage)
class BlocklistStage:
    """
    @ivar rules: the L{Rule}s, tried in order.
    @ivar mark: the C{(name, value)} of the header added to requests let
        through, or C{None}.
    """

    name = NAME

    def __init__(self, rules: Sequence[Rule], mark: tuple[str, str] | None = None) -> None:
        self.rules = tuple(rules)
        self.mark = mark

    def process_request(self, context: RequestContext) -> StageResult:
        request = context.request
        try:
            user, host = caller_of(request)
        except MessageParseError as e:
            # The sanity stage, earlier in the chain, answers these first.
            return Drop(f"bad From: {e.reason}") if request.method == "ACK" else Respond(400)
        for rule in self.rules:
            if rule.matches(user, host):
                context.log.info(
                    "Refusing {method} from {caller}: blocked by rule {rule}",
                    method=request.method,
                    caller=f"{user}@{host}",
                    rule=rule.pattern,
                    source=str(context.flow),
                    stage=self.name,
                )
                if request.method == "ACK":
                    return Drop(f"blocked by rule {rule.pattern}")
                return Respond(403)
        if self.mark is not None:
            name, value = self.mark
            context.request = request.with_headers(request.headers.replaced(name, value))
        return _CONTINUE


def _mark(value: object) -> tuple[str, str] | None:
    """C{"Name: value"} as C{(name, value)}; C{None} for no value."""
    if value is None:
        return None
    if isinstance(value, str):
        name, colon, text = value.partition(":")
        name, text = name.strip(), text.strip()
        if colon and _TOKEN.fullmatch(name) and text and text.isprintable():
            return name, text
    raise ConfigError(f"{_OPTIONS}.mark: expected 'Header-Name: value', not {value!r}")


@implementer(IPlugin, IStageFactory)
class BlocklistFactory:
    """Builds the stage from C{[pipeline.options.blocklist]}."""

    name = NAME
    description = "Answer 403 to callers whose From matches a blocked user@host pattern."

    def build_stage(self, options: dict[str, Any], services: Any) -> BlocklistStage:
        for key in options:
            if key not in ("block", "mark"):
                raise ConfigError(f"{_OPTIONS}.{key}: unknown option (known: block, mark)")
        block = options.get("block", [])
        if not isinstance(block, list):
            raise ConfigError(f"{_OPTIONS}.block: expected an array of 'user@host' patterns")
        rules = []
        for index, pattern in enumerate(block):
            try:
                rules.append(Rule.parse(pattern))
            except ValueError as e:
                raise ConfigError(f"{_OPTIONS}.block[{index}]: {e}") from None
        return BlocklistStage(rules, _mark(options.get("mark")))
