"""
The intrusion detection and prevention layer: token-bucket flood limits,
bans that expire (kept in the state directory), the allow-list of sources
that have authenticated, and the scanner list. L{Security} bundles them
for the transports (L{Security.admit}) and the pipeline stages
(C{services.security}). See C{doc/security.md}.
"""

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
    Verdict,
    method_class,
)
from sipedge.security._config import (
    DEFAULT_SCANNER_USER_AGENTS,
    SecurityConfig,
    evolve_config,
    parse_security_config,
)
from sipedge.security._security import STAT_KEYS, Security
from sipedge.security._useragent import UserAgentMatcher

__all__ = [
    "AUTHENTICATED",
    "DATABASE_NAME",
    "DEFAULT_SCANNER_USER_AGENTS",
    "DEFAULT_THRESHOLDS",
    "METHOD_CLASSES",
    "OFFENCE_KINDS",
    "STAT_KEYS",
    "TIERS",
    "TRUSTED",
    "UNAUTHENTICATED",
    "AllowList",
    "Ban",
    "Bans",
    "Budget",
    "RateLimiter",
    "Security",
    "SecurityConfig",
    "TrustedNetworks",
    "UserAgentMatcher",
    "Verdict",
    "canonical_ip",
    "evolve_config",
    "method_class",
    "parse_security_config",
]
