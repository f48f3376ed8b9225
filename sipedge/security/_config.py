# -*- test-case-name: sipedge.test.test_security_config -*-
"""
C{[security]}: the flood limits, bans and scanner list, as a frozen section
in the style of L{sipedge.config}, with two sub-tables:
C{[security.monitor]} (L{MonitorConfig}, the behaviour monitor) and
C{[security.toll_fraud]} (L{TollFraudConfig}, the toll-fraud stage).

L{SecurityConfig} is written in the value grammar of L{sipedge.config}:
it raises L{sipedge.config.InvalidValue} with the key relative to the
section, so the loader names C{security.<key>}.
L{parse_security_config} does the same on its own.

Errors in a sub-table name C{security.monitor.<key>} or
C{security.toll_fraud.<key>}.

It imports the grammar from the leaf C{sipedge._config_values}, never
L{sipedge.config}, which imports this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from sipedge._config_values import InvalidValue, integer, non_negative_integer, seconds, suggest
from sipedge._config_values import boolean as _boolean
from sipedge._config_values import describe as _describe
from sipedge._config_values import each as _each
from sipedge._config_values import to_float as _to_float
from sipedge.error import ConfigError
from sipedge.security._bucket import AUTHENTICATED, TRUSTED, UNAUTHENTICATED, Budget

__all__ = [
    "DEFAULT_SCANNER_USER_AGENTS",
    "MONITOR_ACTIONS",
    "MONITOR_RULES",
    "MonitorConfig",
    "SecurityConfig",
    "TollFraudConfig",
    "evolve_config",
    "parse_security_config",
]

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


def _rate(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise InvalidValue(attribute.name, f"expected a number per second, got {_describe(value)}")
    if not (math.isfinite(value) and value > 0):
        raise InvalidValue(attribute.name, f"must be a positive number, not {value!r}")


def _burst(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise InvalidValue(attribute.name, f"expected a number, got {_describe(value)}")
    if not (math.isfinite(value) and value >= 1):
        raise InvalidValue(attribute.name, f"must be at least 1, not {value!r}")


def _non_negative_rate(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise InvalidValue(attribute.name, f"expected a number per second, got {_describe(value)}")
    if not (math.isfinite(value) and value >= 0):
        raise InvalidValue(attribute.name, f"must be 0 (off) or a positive number, not {value!r}")


_count = integer(1)


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
    return _each("scanner_user_agents", _user_agent, value)


def _convert_patterns(value: object) -> tuple[str, ...]:
    return _each("scanner_user_agent_patterns", _pattern, value)


def _f(default: float, validator: Any) -> Any:
    return attrs.field(default=default, converter=_to_float, validator=validator)


_non_negative_count = non_negative_integer("no limit")


def _ratio(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise InvalidValue(attribute.name, f"expected a number from 0 to 1, got {_describe(value)}")
    if not 0 < value <= 1:
        raise InvalidValue(attribute.name, f"must be more than 0 and at most 1, not {value!r}")


#: What the monitor may do when a rule triggers: nothing (the rule is off),
#: log, put the source on the reduced budget of the C{monitor} stage, or
#: count a C{monitor} offence (which bans, at C{monitor_threshold}).
MONITOR_ACTIONS = ("off", "log", "rate-limit", "ban")

#: The monitor's rules: the metric each watches, and the L{MonitorConfig}
#: key of its threshold (its action is C{<key>_action}).
MONITOR_RULES: Mapping[str, str] = {
    "auth-failure-ratio": "auth_failure_ratio",
    "not-found-ratio": "not_found_ratio",
    "distinct-not-found-users": "distinct_not_found_users",
    "request-rate": "request_rate",
    "premium-calls": "premium_calls",
    "concurrent-calls": "concurrent_calls",
    "call-rate": "call_rate",
}


def _action(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidValue(attribute.name, f"expected an action name, got {_describe(value)}")
    if value not in MONITOR_ACTIONS:
        raise InvalidValue(
            attribute.name, f"must be one of {', '.join(MONITOR_ACTIONS)}, not {value!r}"
        )


_PREFIX = re.compile(r"\+?[0-9*#]+")


def _prefix(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a dialled prefix, got {_describe(value)}")
    text = value.strip()
    if not _PREFIX.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a dialled prefix: digits, * and #, after an optional +"
            " (e.g. '+1900' or '00')"
        )
    return text


def _convert_prefixes(key: str, value: object) -> tuple[str, ...]:
    return _each(key, _prefix, value)


def _convert_premium_prefixes(value: object) -> tuple[str, ...]:
    return _convert_prefixes("premium_prefixes", value)


def _convert_deny_prefixes(value: object) -> tuple[str, ...]:
    return _convert_prefixes("deny_prefixes", value)


def _convert_allow_prefixes(value: object) -> tuple[str, ...]:
    return _convert_prefixes("allow_prefixes", value)


def _act(default: str) -> Any:
    return attrs.field(default=default, validator=_action)


@attrs.frozen
class MonitorConfig:
    """
    C{[security.monitor]}: the behaviour monitor (L{sipedge.security.Monitor}).

    Every metric is counted per source address (and, where it says so, per
    user) over a sliding C{window}, and has a threshold and an action
    (L{MONITOR_ACTIONS}); a rule triggers at most once per window for each
    source or user, however many requests keep it over its threshold.

    @ivar window: seconds the metrics are counted over.
    @ivar slots: the window slides in steps of C{window / slots}.
    @ivar min_samples: the fewest outcomes a ratio is judged on.
    @ivar max_sources: the most source addresses tracked (and restricted).
    @ivar max_users: the most users tracked.
    @ivar max_calls: the most calls tracked for C{concurrent-calls}.
    @ivar max_call_duration: seconds after which a tracked call is
        forgotten even without a BYE.
    @ivar call_setup_timeout: seconds an INVITE forwarded without an ACK
        (seen by the C{monitor} stage) still counts as a call; 0: until
        C{max_call_duration}.
    @ivar restrict_duration: seconds the C{rate-limit} action restricts a
        source for.
    @ivar restricted_rate: the requests per second (per method class) a
        restricted source gets through the C{monitor} stage.
    @ivar restricted_burst: its burst.
    @ivar premium_prefixes: dialled prefixes (on the Request-URI user or
        C{tel} number) that count as premium or international calls.

    Thresholds and actions:

    @ivar auth_failure_ratio: failed / (failed + ok) digest outcomes of a
        source or user, judged once there are C{min_samples}.
    @ivar not_found_ratio: local 404 answers / requests of a source, judged
        once there are C{min_samples} requests.
    @ivar distinct_not_found_users: different Request-URI users answered 404
        for one source (extension scanning).
    @ivar request_rate: requests of a source in the window.
    @ivar premium_calls: INVITEs to a premium prefix in the window, per
        source and per authenticated user.
    @ivar concurrent_calls: calls of one authenticated user at once.
    @ivar call_rate: INVITEs of one authenticated user in the window.
    """

    window: float = _f(60.0, seconds())
    slots: int = attrs.field(default=6, validator=_count)
    min_samples: int = attrs.field(default=10, validator=_count)
    max_sources: int = attrs.field(default=100_000, validator=_count)
    max_users: int = attrs.field(default=100_000, validator=_count)
    max_calls: int = attrs.field(default=100_000, validator=_count)
    max_call_duration: float = _f(10800.0, seconds())
    call_setup_timeout: float = _f(300.0, seconds(minimum_exclusive=False))
    restrict_duration: float = _f(600.0, seconds())
    restricted_rate: float = _f(1.0, _rate)
    restricted_burst: float = _f(5.0, _burst)
    premium_prefixes: tuple[str, ...] = attrs.field(default=(), converter=_convert_premium_prefixes)
    auth_failure_ratio: float = _f(0.8, _ratio)
    auth_failure_ratio_action: str = _act("ban")
    not_found_ratio: float = _f(0.8, _ratio)
    not_found_ratio_action: str = _act("log")
    distinct_not_found_users: int = attrs.field(default=20, validator=_count)
    distinct_not_found_users_action: str = _act("ban")
    request_rate: int = attrs.field(default=3000, validator=_count)
    request_rate_action: str = _act("log")
    premium_calls: int = attrs.field(default=5, validator=_count)
    premium_calls_action: str = _act("log")
    concurrent_calls: int = attrs.field(default=10, validator=_count)
    concurrent_calls_action: str = _act("log")
    call_rate: int = attrs.field(default=30, validator=_count)
    call_rate_action: str = _act("log")

    def __attrs_post_init__(self) -> None:
        if self.slots > 60:
            raise InvalidValue("slots", f"must be at most 60, not {self.slots}")

    @property
    def rules(self) -> dict[str, tuple[float, str]]:
        """Rule name -> (threshold, action), for every rule (L{MONITOR_RULES})."""
        return {
            rule: (getattr(self, key), getattr(self, key + "_action"))
            for rule, key in MONITOR_RULES.items()
        }


@attrs.frozen
class TollFraudConfig:
    """
    C{[security.toll_fraud]}: limits on calls our users place outside our
    domains (L{sipedge.security.TollFraudGuard}, the C{toll-fraud} stage).

    @ivar max_concurrent_calls: calls of one user at once (0: no limit).
    @ivar calls_per_minute: new calls of one user in any 60 seconds (0: no
        limit).
    @ivar max_call_duration: seconds after which a call's slot is released
        even without a BYE.
    @ivar call_setup_timeout: seconds a call keeps its slot until an ACK
        confirms it (a call that fails or is cancelled is never ACKed
        through the chain); 0: until C{max_call_duration}.
    @ivar deny_prefixes: dialled prefixes refused (they win over
        C{allow_prefixes}).
    @ivar allow_prefixes: if not empty, the only dialled prefixes allowed.
    @ivar trusted_prefix_checks: whether calls from C{sip.trusted}
        networks are checked against the prefix lists (they always bypass
        the per-user limits).
    @ivar max_calls: the most calls tracked (the oldest forgotten first).
    @ivar max_users: the most users whose recent calls are counted.
    """

    max_concurrent_calls: int = attrs.field(default=10, validator=_non_negative_count)
    calls_per_minute: int = attrs.field(default=20, validator=_non_negative_count)
    max_call_duration: float = _f(10800.0, seconds())
    call_setup_timeout: float = _f(300.0, seconds(minimum_exclusive=False))
    deny_prefixes: tuple[str, ...] = attrs.field(default=(), converter=_convert_deny_prefixes)
    allow_prefixes: tuple[str, ...] = attrs.field(default=(), converter=_convert_allow_prefixes)
    trusted_prefix_checks: bool = attrs.field(default=True, validator=_boolean)
    max_calls: int = attrs.field(default=100_000, validator=_count)
    max_users: int = attrs.field(default=100_000, validator=_count)


_Section = TypeVar("_Section")


def _sub_table(name: str, kind: type[_Section], value: object) -> _Section:
    """C{value}, a TOML table, as a C{kind}, naming C{name.<key>} in errors."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        raise InvalidValue(name, f"expected a table ([security.{name}]), got {_describe(value)}")
    known = list(attrs.fields_dict(kind))  # type: ignore[arg-type]
    for key in value:
        if key not in known:
            raise InvalidValue(f"{name}.{key}", "unknown key" + suggest(key, known))
    try:
        return kind(**value)
    except InvalidValue as e:
        raise e.within(name) from None


def _convert_monitor(value: object) -> MonitorConfig:
    return _sub_table("monitor", MonitorConfig, value)


def _convert_toll_fraud(value: object) -> TollFraudConfig:
    return _sub_table("toll_fraud", TollFraudConfig, value)


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
    @ivar unauthenticated_global_rate: requests a second that all
        unauthenticated sources together get parsed and processed (UDP),
        before the rest is shed unparsed (L{sipedge.security.Screen}); 0
        turns the global budget off.
    @ivar unauthenticated_global_burst: requests at once in that budget.
    @ivar overload_lag: seconds late a 20 ms timer must fire for the
        event loop to count as overloaded, when all unauthenticated work is
        shed for 2 s (L{sipedge.security.LoadWatch}); 0 turns it off.
    @ivar kernel_bans: also drop banned sources in the kernel, with an
        nftables set fed by the ban list (L{sipedge.security.KernelBans}).

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
    @ivar filter_threshold: hits of C{filter} rules with C{offence = true}
        likewise.
    @ivar max_offence_keys: the most offence counters kept.
    @ivar purge_interval: seconds between sweeps of expired bans, idle
        buckets and stale allow-list entries (and re-reads of bans that
        C{sipedge ban} changed).

    Password guessing per account (L{sipedge.security.AccountGuard}):

    @ivar account_failures: authentication failures of one account, from
        all sources together, in C{account_window} seconds, past which its
        credentials are checked only from sources it authenticated from
        before and from C{sip.trusted}; other sources get 403 unchecked.
    @ivar account_window: the sliding window of C{account_failures}.
    @ivar account_known_sources: the most sources remembered per account.
    @ivar account_memory: seconds a source an account authenticated from
        stays known.
    @ivar max_account_keys: the most accounts tracked.

    Scanners:

    @ivar scanner_user_agents: User-Agent substrings (case-insensitive) of
        scanners.
    @ivar scanner_user_agent_patterns: regular expressions, searched
        case-insensitively in the User-Agent.

    Sub-tables:

    @ivar monitor: C{[security.monitor]}, a L{MonitorConfig}.
    @ivar toll_fraud: C{[security.toll_fraud]}, a L{TollFraudConfig}.
    """

    unauthenticated_rate: float = _f(5.0, _rate)
    unauthenticated_burst: float = _f(10.0, _burst)
    authenticated_rate: float = _f(50.0, _rate)
    authenticated_burst: float = _f(100.0, _burst)
    trusted_rate: float = _f(5000.0, _rate)
    trusted_burst: float = _f(10000.0, _burst)
    max_rate_keys: int = attrs.field(default=100_000, validator=_count)
    flood_offence_interval: float = _f(1.0, seconds())
    max_authenticated_sources: int = attrs.field(default=100_000, validator=_count)
    unauthenticated_global_rate: float = _f(500.0, _non_negative_rate)
    unauthenticated_global_burst: float = _f(1000.0, _burst)
    overload_lag: float = _f(0.05, seconds(minimum_exclusive=False))
    kernel_bans: bool = attrs.field(default=False, validator=_boolean)
    ban_base: float = _f(60.0, seconds())
    ban_max: float = _f(86400.0, seconds())
    ban_memory: float = _f(86400.0, seconds(minimum_exclusive=False))
    offence_window: float = _f(60.0, seconds())
    flood_threshold: int = attrs.field(default=3, validator=_count)
    scanner_threshold: int = attrs.field(default=1, validator=_count)
    auth_failure_threshold: int = attrs.field(default=5, validator=_count)
    monitor_threshold: int = attrs.field(default=1, validator=_count)
    filter_threshold: int = attrs.field(default=1, validator=_count)
    max_offence_keys: int = attrs.field(default=100_000, validator=_count)
    purge_interval: float = _f(10.0, seconds())
    account_failures: int = attrs.field(default=10, validator=_count)
    account_window: float = _f(600.0, seconds())
    account_known_sources: int = attrs.field(default=16, validator=_count)
    account_memory: float = _f(30 * 86400.0, seconds())
    max_account_keys: int = attrs.field(default=100_000, validator=_count)
    scanner_user_agents: tuple[str, ...] = attrs.field(
        default=DEFAULT_SCANNER_USER_AGENTS, converter=_convert_user_agents
    )
    scanner_user_agent_patterns: tuple[str, ...] = attrs.field(
        default=(), converter=_convert_patterns
    )
    monitor: MonitorConfig = attrs.field(factory=MonitorConfig, converter=_convert_monitor)
    toll_fraud: TollFraudConfig = attrs.field(
        factory=TollFraudConfig, converter=_convert_toll_fraud
    )

    def __attrs_post_init__(self) -> None:
        if self.ban_base > self.ban_max:
            raise InvalidValue(
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
    def global_budget(self) -> Budget | None:
        """The global budget of unauthenticated work, or C{None} when off."""
        if self.unauthenticated_global_rate == 0:
            return None
        return Budget(self.unauthenticated_global_rate, self.unauthenticated_global_burst)

    @property
    def thresholds(self) -> dict[str, int]:
        """Offences of each kind in the window that earn a ban."""
        return {
            "flood": self.flood_threshold,
            "scanner": self.scanner_threshold,
            "auth-failure": self.auth_failure_threshold,
            "monitor": self.monitor_threshold,
            "filter": self.filter_threshold,
        }


def evolve_config(
    config: _Section,
    changes: Mapping[str, Any],
    prefix: str,
    aliases: Mapping[str, str] | None = None,
) -> _Section:
    """
    C{config} with C{changes} applied: a stage's options that override the
    C{[security]} values for that stage. C{config} may be a
    L{SecurityConfig} or one of its sub-tables (L{MonitorConfig},
    L{TollFraudConfig}).

    @param changes: new values, keyed by option name.
    @param prefix: the options' dotted path, for errors, e.g.
        C{pipeline.options.flood}.
    @param aliases: option name -> field of C{config}, for options
        named otherwise than their field; every other option must be a
        field of that name.
    @raise ConfigError: for an unknown option or a bad value, naming
        C{prefix.<option>}.
    """
    aliases = dict(aliases or {})
    fields = {aliases.get(option, option): option for option in changes}
    known = attrs.fields_dict(type(config))  # type: ignore[arg-type]
    for field, option in fields.items():
        if field not in known:
            raise ConfigError(f"{prefix}.{option}: unknown option")
    try:
        return attrs.evolve(config, **{field: changes[o] for field, o in fields.items()})  # type: ignore[misc]
    except InvalidValue as e:
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
    if table is None:
        return SecurityConfig()
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"{source}: security: expected a table ([security]), got {_describe(table)}"
        )
    known = list(attrs.fields_dict(SecurityConfig))
    for key in table:
        if key not in known:
            raise ConfigError(f"{source}: security.{key}: unknown key" + suggest(key, known))
    try:
        return SecurityConfig(**table)
    except InvalidValue as e:
        raise ConfigError(f"{source}: security.{e.key}: {e.problem}") from None
