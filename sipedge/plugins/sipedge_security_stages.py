"""
The security stages (C{ban-check}, C{scanner}, C{flood}, C{filter}),
registered as plugins like any third-party stage.

Each uses the shared L{sipedge.security.Security} of C{services.security}.
Options in C{[pipeline.options.<stage>]} override the C{[security]} values
for that stage alone (they build the stage its own limiter or matcher; the
bans and the allow-list stay shared).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from sipedge.config import InvalidValue
from sipedge.error import ConfigError
from sipedge.interfaces import IStageFactory

if TYPE_CHECKING:
    from sipedge.config import Config
    from sipedge.pipeline import StageServices
    from sipedge.security import SecurityConfig

_log = Logger()

#: Option name -> C{SecurityConfig} field, per stage.
FLOOD_OPTIONS: Mapping[str, str] = {
    "unauthenticated_rate": "unauthenticated_rate",
    "unauthenticated_burst": "unauthenticated_burst",
    "authenticated_rate": "authenticated_rate",
    "authenticated_burst": "authenticated_burst",
    "trusted_rate": "trusted_rate",
    "trusted_burst": "trusted_burst",
    "max_keys": "max_rate_keys",
    "offence_interval": "flood_offence_interval",
}
SCANNER_OPTIONS: Mapping[str, str] = {
    "user_agents": "scanner_user_agents",
    "user_agent_patterns": "scanner_user_agent_patterns",
}

# Security services made for StageServices that carry none, one per
# services object, so the stages built for it share their bans.
_FALLBACK: dict[int, Any] = {}


@implementer(IPlugin, IStageFactory)
class SecurityStageFactory:
    """
    A stage factory made of a name, a description, a builder and the typed
    section it reads (C{[security]} unless told otherwise), which the
    builder receives as C{builder(options, section, services, prefix)}.
    """

    def __init__(
        self,
        name: str,
        description: str,
        builder: Callable[[dict[str, Any], Any, StageServices, str], Any],
        options: Mapping[str, str] | None = None,
        section: Callable[[Config], Any] = lambda config: config.security,
    ) -> None:
        self.name = name
        self.description = description
        self.section = section
        self._builder = builder
        self._options = dict(options or {})

    def build_stage(self, options: dict[str, Any], services: StageServices) -> Any:
        unknown = sorted(set(options) - set(self._options))
        if unknown:
            raise ConfigError(
                f"pipeline.options.{self.name}: unknown option {unknown[0]!r}"
                + (f" (known: {', '.join(self._options)})" if self._options else " (takes none)")
            )
        section = self.section(services.settings)
        return self._builder(options, section, services, f"pipeline.options.{self.name}")

    def __repr__(self) -> str:
        return f"<SecurityStageFactory {self.name}>"


def security_of(services: StageServices, config: SecurityConfig | None = None) -> Any:
    """
    C{services.security}; for services without one (the composition root
    has not made one), a L{Security} of C{config} with bans in memory only,
    made once per services object and logged.
    """
    security = services.security
    if security is not None:
        return security
    found = _FALLBACK.get(id(services))
    if found is not None:
        return found
    from sipedge.security import Security

    security = Security(config, clock=services.clock, trusted=services.trusted)
    _log.warn(
        "No security service given to the stages: bans are kept in memory only"
        " and transports do not drop banned sources before parsing",
    )
    try:
        weakref.finalize(services, _forget, id(services), security)
    except TypeError:
        return security  # cannot tell when it goes: do not keep it
    _FALLBACK[id(services)] = security
    return security


def _forget(key: int, security: Any) -> None:
    _FALLBACK.pop(key, None)
    security.close()


def _ban_check(
    options: dict[str, Any], section: SecurityConfig, services: StageServices, prefix: str
) -> Any:
    from sipedge.pipeline.stages import BanCheckStage

    return BanCheckStage(security_of(services, section))


def _scanner(
    options: dict[str, Any], section: SecurityConfig, services: StageServices, prefix: str
) -> Any:
    from sipedge.pipeline.stages import ScannerStage
    from sipedge.security import UserAgentMatcher, evolve_config

    security = security_of(services, section)
    if not options:
        return ScannerStage(security)
    config = evolve_config(section, options, prefix, SCANNER_OPTIONS)
    return ScannerStage(
        security,
        UserAgentMatcher(config.scanner_user_agents, config.scanner_user_agent_patterns),
    )


def _flood(
    options: dict[str, Any], section: SecurityConfig, services: StageServices, prefix: str
) -> Any:
    from sipedge.pipeline.stages import FloodStage
    from sipedge.security import RateLimiter, evolve_config

    security = security_of(services, section)
    if not options:
        return FloodStage(security)
    config = evolve_config(section, options, prefix, FLOOD_OPTIONS)
    limiter = RateLimiter(
        config.budgets,
        max_keys=config.max_rate_keys,
        report_interval=config.flood_offence_interval,
        stats=security.stats,
    )
    return FloodStage(security, limiter)


def _filter(
    options: dict[str, Any], section: SecurityConfig, services: StageServices, prefix: str
) -> Any:
    from sipedge.pipeline.stages import FilterStage
    from sipedge.security import FilterConfig, parse_filter_config

    if not options:
        return FilterStage(FilterConfig(), security_of(services, section))
    try:
        config = parse_filter_config(options)
    except InvalidValue as e:
        raise ConfigError(f"{e.within(prefix).key}: {e.problem}") from None
    return FilterStage(config, security_of(services, section))


ban_check = SecurityStageFactory(
    "ban-check", "Drop, unanswered, requests from banned sources.", _ban_check
)
scanner = SecurityStageFactory(
    "scanner",
    "Drop, unanswered, requests from known SIP scanners (by User-Agent), and ban them.",
    _scanner,
    SCANNER_OPTIONS,
)
flood = SecurityStageFactory(
    "flood",
    "Rate-limit requests per source and method; drop, unanswered, what is over budget.",
    _flood,
    FLOOD_OPTIONS,
)
request_filter = SecurityStageFactory(
    "filter",
    "A method allow-list (405 with Allow) and ordered header rules (From, To, User-Agent,"
    " Content-Type, any header, the Request-URI) that accept, reject or drop.",
    _filter,
    {"methods": "methods", "rules": "rules"},
)
