# -*- test-case-name: sipedge.test.test_security_config -*-
"""
C{[security]}: the flood limits, bans and scanner list, as a frozen section
in the style of L{sipedge.config}.

L{SecurityConfig} raises the same C{_InvalidValue} as the sections of
L{sipedge.config}, with the key relative to the section, so once it is in
that module's section table every error names C{security.<key>}.
L{parse_security_config} does the same on its own.

L{sipedge.config} is imported only when a value is checked, never at import
time, so that module can import this one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from sipedge.error import ConfigError
from sipedge.security._bucket import AUTHENTICATED, TRUSTED, UNAUTHENTICATED, Budget

__all__ = ["DEFAULT_SCANNER_USER_AGENTS", "SecurityConfig", "parse_security_config"]

#: User-Agent substrings of well-known SIP scanners and attack tools.
DEFAULT_SCANNER_USER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "VaxSIPUserAgent",
    "pplsip",
    "sundayddr",
    "iWar",
    "SIVuS",
    "sip-scan",
    "Gulp",
    "smap",
)


def _invalid(key: str, problem: str) -> ConfigError:
    """L{sipedge.config}'s C{_InvalidValue}: the key relative to the section."""
    from sipedge.config import _InvalidValue

    return _InvalidValue(key, problem)


def _describe(value: object) -> str:
    from sipedge.config import _describe as describe

    return describe(value)


def _to_float(value: object) -> object:
    """TOML writes C{5} for C{5.0}: accept integers where numbers are due."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _rate(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise _invalid(attribute.name, f"expected a number per second, got {_describe(value)}")
    if not (math.isfinite(value) and value > 0):
        raise _invalid(attribute.name, f"must be a positive number, not {value!r}")


def _burst(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise _invalid(attribute.name, f"expected a number, got {_describe(value)}")
    if not (math.isfinite(value) and value >= 1):
        raise _invalid(attribute.name, f"must be at least 1, not {value!r}")


def _seconds(minimum_exclusive: bool = True) -> Any:
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, float):
            raise _invalid(attribute.name, f"expected a number of seconds, got {_describe(value)}")
        ok = value > 0 if minimum_exclusive else value >= 0
        if not (math.isfinite(value) and ok):
            what = "positive" if minimum_exclusive else "non-negative"
            raise _invalid(attribute.name, f"must be a {what} number of seconds, not {value!r}")

    return check


def _count(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(attribute.name, f"expected an integer, got {_describe(value)}")
    if value < 1:
        raise _invalid(attribute.name, f"must be at least 1, not {value}")


def _user_agent(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_describe(value)}")
    if not value.strip():
        raise ValueError("must not be empty (it would match every User-Agent)")
    return value


def _pattern(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression, got {_describe(value)}")
    try:
        compiled = re.compile(value, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"{value!r} is not a valid regular expression: {e}") from None
    if compiled.search(""):
        raise ValueError(f"{value!r} matches the empty string (so every User-Agent)")
    return value


def _convert_user_agents(value: object) -> tuple[str, ...]:
    from sipedge.config import _each

    return _each("scanner_user_agents", _user_agent, value)


def _convert_patterns(value: object) -> tuple[str, ...]:
    from sipedge.config import _each

    return _each("scanner_user_agent_patterns", _pattern, value)


def _f(default: float, validator: Any) -> Any:
    return attrs.field(default=default, converter=_to_float, validator=validator)


@attrs.frozen
class SecurityConfig:
    """
    C{[security]}: flood limits, bans and the scanner list.

    Rate budgets (token buckets per source address and method class:
    INVITE, REGISTER, the rest), in requests per second and requests at
    once:

    @ivar unauthenticated_rate: for sources nobody has authenticated from.
    @ivar unauthenticated_burst:
    @ivar authenticated_rate: for sources a user has authenticated from
        (until that registration expires).
    @ivar authenticated_burst:
    @ivar trusted_rate: for C{sip.trusted} networks (trunks, PBXes).
    @ivar trusted_burst:
    @ivar max_rate_keys: the most buckets kept (least recently used
        evicted).
    @ivar flood_offence_interval: an over-budget source counts one flood
        offence at most this often, in seconds.
    @ivar max_authenticated_sources: the most allow-list addresses kept.

    Bans:

    @ivar ban_base: seconds of a first ban.
    @ivar ban_max: the longest a ban grows to.
    @ivar ban_memory: seconds after a ban ends during which a new ban of the
        same address is a repeat (and lasts twice as long as the last).
    @ivar offence_window: the sliding window offences are counted in.
    @ivar flood_threshold: flood offences in the window that earn a ban.
    @ivar scanner_threshold: scanner hits in the window that earn a ban.
    @ivar auth_failure_threshold: authentication failures likewise.
    @ivar monitor_threshold: anomaly monitor reports likewise.
    @ivar max_offence_keys: the most offence counters kept.
    @ivar purge_interval: seconds between sweeps of expired bans, idle
        buckets and stale allow-list entries (and re-reads of bans that
        C{sipedge ban} changed).

    Scanners:

    @ivar scanner_user_agents: User-Agent substrings (case-insensitive) of
        scanners.
    @ivar scanner_user_agent_patterns: regular expressions, searched
        case-insensitively in the User-Agent.
    """

    unauthenticated_rate: float = _f(5.0, _rate)
    unauthenticated_burst: float = _f(10.0, _burst)
    authenticated_rate: float = _f(50.0, _rate)
    authenticated_burst: float = _f(100.0, _burst)
    trusted_rate: float = _f(5000.0, _rate)
    trusted_burst: float = _f(10000.0, _burst)
    max_rate_keys: int = attrs.field(default=100_000, validator=_count)
    flood_offence_interval: float = _f(1.0, _seconds())
    max_authenticated_sources: int = attrs.field(default=100_000, validator=_count)
    ban_base: float = _f(60.0, _seconds())
    ban_max: float = _f(86400.0, _seconds())
    ban_memory: float = _f(86400.0, _seconds(minimum_exclusive=False))
    offence_window: float = _f(60.0, _seconds())
    flood_threshold: int = attrs.field(default=3, validator=_count)
    scanner_threshold: int = attrs.field(default=1, validator=_count)
    auth_failure_threshold: int = attrs.field(default=5, validator=_count)
    monitor_threshold: int = attrs.field(default=1, validator=_count)
    max_offence_keys: int = attrs.field(default=100_000, validator=_count)
    purge_interval: float = _f(10.0, _seconds())
    scanner_user_agents: tuple[str, ...] = attrs.field(
        default=DEFAULT_SCANNER_USER_AGENTS, converter=_convert_user_agents
    )
    scanner_user_agent_patterns: tuple[str, ...] = attrs.field(
        default=(), converter=_convert_patterns
    )

    def __attrs_post_init__(self) -> None:
        if self.ban_base > self.ban_max:
            raise _invalid(
                "ban_base", f"must not exceed ban_max ({self.ban_max}), not {self.ban_base}"
            )

    @property
    def budgets(self) -> dict[str, Budget]:
        """The rate budget of each tier."""
        return {
            UNAUTHENTICATED: Budget(self.unauthenticated_rate, self.unauthenticated_burst),
            AUTHENTICATED: Budget(self.authenticated_rate, self.authenticated_burst),
            TRUSTED: Budget(self.trusted_rate, self.trusted_burst),
        }

    @property
    def thresholds(self) -> dict[str, int]:
        """Offences of each kind in the window that earn a ban."""
        return {
            "flood": self.flood_threshold,
            "scanner": self.scanner_threshold,
            "auth-failure": self.auth_failure_threshold,
            "monitor": self.monitor_threshold,
        }


def evolve_config(
    config: SecurityConfig,
    changes: Mapping[str, Any],
    prefix: str,
    aliases: Mapping[str, str] | None = None,
) -> SecurityConfig:
    """
    C{config} with C{changes} applied: a stage's options that override the
    C{[security]} values for that stage.

    @param changes: new values, keyed by option name.
    @param prefix: the options' dotted path, for errors, e.g.
        C{pipeline.options.flood}.
    @param aliases: option name -> L{SecurityConfig} field, for options
        named otherwise than their field; every other option must be a
        field of that name.
    @raise ConfigError: for an unknown option or a bad value, naming
        C{prefix.<option>}.
    """
    from sipedge.config import _InvalidValue

    aliases = dict(aliases or {})
    fields = {aliases.get(option, option): option for option in changes}
    known = attrs.fields_dict(SecurityConfig)
    for field, option in fields.items():
        if field not in known:
            raise ConfigError(f"{prefix}.{option}: unknown option")
    try:
        return attrs.evolve(config, **{field: changes[o] for field, o in fields.items()})
    except _InvalidValue as e:
        name = e.key.split("[", 1)
        option = fields.get(name[0], name[0])
        where = option + ("[" + name[1] if len(name) > 1 else "")
        raise ConfigError(f"{prefix}.{where}: {e.problem}") from None


def parse_security_config(
    table: Mapping[str, Any] | None, source: str = "<config>"
) -> SecurityConfig:
    """
    A L{SecurityConfig} from the C{[security]} table of a TOML document
    (absent keys take their defaults; C{None} for no table).

    @raise ConfigError: naming C{source} and C{security.<key>}.
    """
    from sipedge.config import _InvalidValue, _suggest

    if table is None:
        return SecurityConfig()
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"{source}: security: expected a table ([security]), got {_describe(table)}"
        )
    known = list(attrs.fields_dict(SecurityConfig))
    for key in table:
        if key not in known:
            raise ConfigError(f"{source}: security.{key}: unknown key" + _suggest(key, known))
    try:
        return SecurityConfig(**table)
    except _InvalidValue as e:
        raise ConfigError(f"{source}: security.{e.key}: {e.problem}") from None
