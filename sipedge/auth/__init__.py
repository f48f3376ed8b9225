"""
Digest authentication (RFC 3261 22, RFC 7616, RFC 8760): the digest math,
stateless HMAC nonces with replay protection, and credential stores that
plug into C{twisted.cred}. The C{digest-auth} pipeline stage
(C{sipedge.pipeline.stages._digest_auth}) puts them to work, and
C{sipedge user} manages the users (L{user_command}).
"""

from sipedge.auth._challenge import ChallengeCache
from sipedge.auth._config import AuthConfig, parse_auth_config
from sipedge.auth._credentials import (
    DATABASE_NAME,
    DigestCredentialsChecker,
    MemoryCredentialStore,
    SipDigestCredentials,
    SipRealm,
    SipUser,
    SQLiteCredentialStore,
    StoredUser,
    make_portal,
)
from sipedge.auth._digest import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    HASH_ALGORITHMS,
    UnsupportedAlgorithm,
    canonical_algorithm,
    ha1,
    hash_algorithm,
    response,
    responses_equal,
)
from sipedge.auth._interfaces import (
    IAlgorithmMemory,
    ICredentialStore,
    INonceSource,
    ISipDigestCredentials,
    ISipUser,
)
from sipedge.auth._nonce import SECRET_NAME, NonceSource, NonceStatus, load_secret
from sipedge.auth._offer import (
    RememberedAlgorithms,
    challenge_algorithms,
    floor_of,
    strength,
)

__all__ = [
    "ALGORITHMS",
    "DATABASE_NAME",
    "DEFAULT_ALGORITHMS",
    "HASH_ALGORITHMS",
    "SECRET_NAME",
    "AuthConfig",
    "ChallengeCache",
    "DigestCredentialsChecker",
    "IAlgorithmMemory",
    "ICredentialStore",
    "INonceSource",
    "ISipDigestCredentials",
    "ISipUser",
    "MemoryCredentialStore",
    "NonceSource",
    "NonceStatus",
    "RememberedAlgorithms",
    "SQLiteCredentialStore",
    "SipDigestCredentials",
    "SipRealm",
    "SipUser",
    "StoredUser",
    "UnsupportedAlgorithm",
    "canonical_algorithm",
    "challenge_algorithms",
    "floor_of",
    "ha1",
    "hash_algorithm",
    "load_secret",
    "make_portal",
    "parse_auth_config",
    "response",
    "responses_equal",
    "strength",
]
