"""
The intrusion detection and prevention layer: token-bucket flood limits,
bans that expire (kept in the state directory), the allow-list of sources
that have authenticated, and the scanner list. L{Security} bundles them
for the transports (L{Security.admit}) and the pipeline stages
(C{services.security}). L{Monitor} is the behaviour monitor (an
C{IProxyObserver}) and L{TollFraudGuard} the toll-fraud limits. See
C{doc/security.md}.
"""

from sipedge.security._accounts import (
    ACCOUNT_STAT_KEYS,
    AccountCheck,
    AccountGuard,
    AccountState,
)
from sipedge.security._address import TrustedNetworks, canonical_ip
from sipedge.security._allow import AllowList
from sipedge.security._bans import (
    DATABASE_NAME,
    DEFAULT_THRESHOLDS,
    OFFENCE_KINDS,
    Ban,
    Bans,
)
from sipedge.security._bucket import (
    AUTHENTICATED,
    METHOD_CLASSES,
    TIERS,
    TRUSTED,
    UNAUTHENTICATED,
    Budget,
    RateLimiter,
    SharedBucket,
    Verdict,
    method_class,
)
from sipedge.security._config import (
    DEFAULT_SCANNER_USER_AGENTS,
    MONITOR_ACTIONS,
    MONITOR_RULES,
    MonitorConfig,
    SecurityConfig,
    TollFraudConfig,
    evolve_config,
    parse_security_config,
)
from sipedge.security._filter import (
    FILTER_ACTIONS,
    FilterConfig,
    FilterMatch,
    FilterRule,
    parse_filter_config,
)
from sipedge.security._kernel import KernelBans, run_nft
from sipedge.security._monitor import MONITOR_STAT_KEYS, Monitor
from sipedge.security._overload import LoadWatch
from sipedge.security._reconfigure import (
    LIVE_KEYS,
    SecurityUpdate,
    prepare_security,
    reread_bans,
)
from sipedge.security._screen import SCREEN_STAT_KEYS, SURGE, Screen
from sipedge.security._security import BAN_WATCH_INTERVAL, RETRY_AFTER, STAT_KEYS, Security
from sipedge.security._tollfraud import (
    TOLL_FRAUD_RULES,
    TOLL_FRAUD_STAT_KEYS,
    Call,
    CallTracker,
    Refusal,
    TollFraudGuard,
    dialled_number,
    match_prefix,
)
from sipedge.security._useragent import UserAgentMatcher

__all__ = [
    "ACCOUNT_STAT_KEYS",
    "AUTHENTICATED",
    "BAN_WATCH_INTERVAL",
    "DATABASE_NAME",
    "DEFAULT_SCANNER_USER_AGENTS",
    "DEFAULT_THRESHOLDS",
    "FILTER_ACTIONS",
    "LIVE_KEYS",
    "METHOD_CLASSES",
    "MONITOR_ACTIONS",
    "MONITOR_RULES",
    "MONITOR_STAT_KEYS",
    "OFFENCE_KINDS",
    "RETRY_AFTER",
    "SCREEN_STAT_KEYS",
    "STAT_KEYS",
    "SURGE",
    "TIERS",
    "TOLL_FRAUD_RULES",
    "TOLL_FRAUD_STAT_KEYS",
    "TRUSTED",
    "UNAUTHENTICATED",
    "AccountCheck",
    "AccountGuard",
    "AccountState",
    "AllowList",
    "Ban",
    "Bans",
    "Budget",
    "Call",
    "CallTracker",
    "FilterConfig",
    "FilterMatch",
    "FilterRule",
    "KernelBans",
    "LoadWatch",
    "Monitor",
    "MonitorConfig",
    "RateLimiter",
    "Refusal",
    "Screen",
    "Security",
    "SecurityConfig",
    "SecurityUpdate",
    "SharedBucket",
    "TollFraudConfig",
    "TollFraudGuard",
    "TrustedNetworks",
    "UserAgentMatcher",
    "Verdict",
    "canonical_ip",
    "dialled_number",
    "evolve_config",
    "match_prefix",
    "method_class",
    "parse_filter_config",
    "parse_security_config",
    "prepare_security",
    "reread_bans",
    "run_nft",
]
