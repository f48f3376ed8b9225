# -*- test-case-name: sipedge.test.test_config -*-
"""
C{[pipeline]} (the stages of the request chain and their options) and
C{[[routes]]} (the static routes of the C{static-route} stage).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from sipedge._config_values import InvalidValue as _InvalidValue
from sipedge._config_values import describe as _describe
from sipedge._config_values import each as _each
from sipedge._config_values import host as _host
from sipedge._config_values import one as _one
from sipedge._config_values import suggest as _suggest
from sipedge.error import MessageParseError
from sipedge.message import SipURI, parse_sip_uri

__all__ = [
    "DEFAULT_STAGES",
    "PipelineConfig",
    "Route",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_STAGES = (
    "ban-check",
    "scanner",
    "flood",
    "monitor",
    "filter",
    "sanity",
    "max-forwards",
    "loop-detect",
    "route",
    "digest-auth",
    "responsibility",
    "toll-fraud",
    "media-anchor",
    "registrar",
    "location",
    "static-route",
    "forward",
)
"""C{pipeline.stages} when the configuration does not set it."""


_PREFIX_RE = re.compile(r"\+[0-9]*|[0-9]+")


def _match_prefix(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string of digits, got {_describe(value)}")
    if not _PREFIX_RE.fullmatch(value):
        raise ValueError(f"must be digits with an optional leading '+', not {value!r}")
    return value


def _next_hop(value: object) -> SipURI:
    if isinstance(value, SipURI):
        uri = value
    elif not isinstance(value, str):
        raise ValueError(f"expected a SIP URI such as 'sip:10.0.0.5:5060', got {_describe(value)}")
    else:
        try:
            uri = parse_sip_uri(value)
        except MessageParseError as e:
            raise ValueError(f"{value!r} is not a valid SIP URI ({e.reason})") from None
    if uri.headers:
        raise ValueError(f"a next hop cannot carry URI headers ('?...'): {str(uri)!r}")
    return uri


def _convert_next_hop(value: object) -> SipURI:
    return _one("next_hop", _next_hop, value)


def _convert_match_domain(value: object) -> str | None:
    return None if value is None else _one("match_domain", _host, value)


def _convert_match_prefix(value: object) -> str | None:
    return _one("match_prefix", _match_prefix, value)


@attrs.frozen
class Route:
    """
    C{[[routes]]}: one static route. A request whose Request-URI matches is
    forwarded to C{next_hop}; the static-route stage decides the order.

    @ivar match_domain: the Request-URI host this route is for (normalized
        as in L{SipConfig.domains}), or C{None}.
    @ivar match_prefix: leading digits (and C{+}) of the Request-URI user
        part this route is for, or C{None}. Exactly one of C{match_domain}
        and C{match_prefix} is set.
    @ivar next_hop: where to send matching requests.
    """

    next_hop: SipURI = attrs.field(converter=_convert_next_hop)
    match_domain: str | None = attrs.field(
        default=None,
        converter=_convert_match_domain,
    )
    match_prefix: str | None = attrs.field(default=None, converter=_convert_match_prefix)

    def __attrs_post_init__(self) -> None:
        if (self.match_domain is None) == (self.match_prefix is None):
            raise _InvalidValue("", "give exactly one of match_domain and match_prefix")

    def matches(self, host: str, user: str | None) -> bool:
        """
        True if a Request-URI with this C{host} (IPv6 with or without
        brackets, any case) and C{user} part (or C{None}) matches the route.
        """
        if self.match_prefix is not None:
            return user is not None and user.startswith(self.match_prefix)
        try:
            return _host(host) == self.match_domain
        except ValueError:
            return False


def _stage_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a stage name, got {_describe(value)}")
    if not value:
        raise ValueError("a stage name must not be empty")
    return value


def _convert_stages(value: object) -> tuple[str, ...]:
    return _each("stages", _stage_name, value)


def _freeze_options(value: object) -> object:
    """Copy C{[pipeline.options.*]} tables into read-only mappings."""
    if not isinstance(value, Mapping):
        return value
    return MappingProxyType(
        {
            name: MappingProxyType(copy.deepcopy(dict(table)))
            if isinstance(table, Mapping)
            else table
            for name, table in value.items()
        }
    )


def _check_stages(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    if not value:
        raise _InvalidValue("stages", "must name at least one stage")
    seen: dict[str, int] = {}
    for index, name in enumerate(value):
        if name in seen:
            raise _InvalidValue(f"stages[{index}]", f"{name!r} is already stages[{seen[name]}]")
        seen[name] = index


@attrs.frozen
class PipelineConfig:
    """
    C{[pipeline]}: the request chain.

    @ivar stages: stage names in order; the plugin registry checks them.
    @ivar options: C{[pipeline.options.<stage>]} tables, read-only, by stage
        name; a stage gets a copy from L{options_for}.
    """

    stages: tuple[str, ...] = attrs.field(
        default=DEFAULT_STAGES, converter=_convert_stages, validator=_check_stages
    )
    options: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, converter=_freeze_options, hash=False
    )

    @options.validator
    def _check_options(self, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, Mapping):
            raise _InvalidValue("options", f"expected a table, got {_describe(value)}")
        for name, table in value.items():
            if name not in self.stages:
                raise _InvalidValue(
                    f"options.{name}",
                    "options for a stage that is not in pipeline.stages"
                    + _suggest(name, self.stages),
                )
            if not isinstance(table, Mapping):
                raise _InvalidValue(f"options.{name}", f"expected a table, got {_describe(table)}")

    def options_for(self, stage: str) -> dict[str, Any]:
        """A fresh copy of the options of C{stage} (C{{}} if it has none)."""
        return copy.deepcopy(dict(self.options.get(stage, {})))
