# -*- test-case-name: sipedge.test.test_auth_config -*-
"""
The C{[auth]} section of the configuration:

   [auth]
   realm = "example.com"            # default: the first of sip.domains
   nonce_lifetime = 300             # seconds a nonce stays fresh
   algorithms = ["SHA-512-256", "SHA-256", "MD5"]   # what is accepted
   minimum_algorithm = "MD5"        # the weakest offered to anyone
   require_for_our_domains = true   # false: challenge REGISTER only

L{AuthConfig} is written in the value grammar of L{sipedge.config} and
checks its values when constructed: its validators raise
L{sipedge.config.InvalidValue} with the key relative to the section, so the
loader names C{auth.<key>}. L{parse_auth_config} reads it from a table
(L{sipedge.config.parse_table}), for the stage's options and for tests.

It imports the grammar from the leaf C{sipedge._config_values}, never
L{sipedge.config}, which imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from sipedge._config_values import InvalidValue, parse_table
from sipedge._config_values import boolean as _check_boolean
from sipedge._config_values import describe as _describe
from sipedge._config_values import to_float as _to_float
from sipedge.auth._digest import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    HASH_ALGORITHMS,
    UnsupportedAlgorithm,
    canonical_algorithm,
)
from sipedge.auth._offer import strength
from sipedge.error import ConfigError

__all__ = ["MAX_NONCE_LIFETIME", "AuthConfig", "parse_auth_config"]

#: The longest nonce lifetime accepted, in seconds (a day).
MAX_NONCE_LIFETIME = 86400.0


def _check_realm(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidValue(attribute.name, f"expected a string, got {_describe(value)}")
    if not value or value != value.strip():
        raise InvalidValue(
            attribute.name, f"must be non-empty text without outer spaces, not {value!r}"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidValue(attribute.name, f"must not contain control characters: {value!r}")


def _check_lifetime(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise InvalidValue(attribute.name, f"expected a number of seconds, got {_describe(value)}")
    if not (math.isfinite(value) and 0 < value <= MAX_NONCE_LIFETIME):
        raise InvalidValue(
            attribute.name,
            f"must be more than 0 and at most {MAX_NONCE_LIFETIME:g} seconds, not {value!r}",
        )


def _convert_algorithms(value: object) -> tuple[str, ...]:
    """
    Canonical names, strongest first (RFC 8760 2.4: challenges go out in
    order of preference, and nothing is gained by preferring MD5).
    """
    if not isinstance(value, (list, tuple)):
        raise InvalidValue("algorithms", f"expected an array of names, got {_describe(value)}")
    if not value:
        raise InvalidValue("algorithms", "must name at least one algorithm")
    names: list[str] = []
    for index, item in enumerate(value):
        key = f"algorithms[{index}]"
        if not isinstance(item, str):
            raise InvalidValue(key, f"expected an algorithm name, got {_describe(item)}")
        try:
            name = canonical_algorithm(item)
        except UnsupportedAlgorithm:
            raise InvalidValue(
                key, f"unknown algorithm {item!r}; expected one of: {', '.join(ALGORITHMS)}"
            ) from None
        if name in names:
            raise InvalidValue(key, f"{name!r} is already algorithms[{names.index(name)}]")
        names.append(name)
    return tuple(sorted(names, key=ALGORITHMS.index))


def _convert_minimum(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue(
            "minimum_algorithm", f"expected an algorithm name, got {_describe(value)}"
        )
    try:
        name = canonical_algorithm(value)
    except UnsupportedAlgorithm:
        name = ""
    if name not in HASH_ALGORITHMS:
        raise InvalidValue(
            "minimum_algorithm",
            f"unknown hash algorithm {value!r}; expected one of: {', '.join(HASH_ALGORITHMS)}",
        )
    return name


def _check_minimum(instance: AuthConfig, attribute: attrs.Attribute, value: str) -> None:
    if all(strength(a) < strength(value) for a in instance.algorithms):
        raise InvalidValue(
            attribute.name,
            f"{value} is stronger than every algorithm in algorithms"
            f" ({', '.join(instance.algorithms)}): nobody could authenticate",
        )


@attrs.frozen
class AuthConfig:
    """
    C{[auth]}: digest authentication (RFC 3261 22, RFC 8760).

    @ivar realm: the realm of our challenges and of the credential store,
        or C{None} for the first of C{sip.domains} (see L{realm_for}).
    @ivar nonce_lifetime: seconds a nonce stays fresh; a response with an
        older one gets a new challenge with C{stale=true}.
    @ivar algorithms: the algorithms accepted, canonical names, strongest
        first. Which of them a challenge offers, and in what order, depends
        on the user (see C{sipedge.auth._offer}): MD5 alone until the user
        has proven a stronger one, then only those at least as strong.
    @ivar minimum_algorithm: the weakest hash algorithm offered to or
        accepted from anyone (C{"MD5"}: every client can register; the
        clients that cannot do better are in C{doc/interop.md}).
    @ivar require_for_our_domains: whether every request whose From is in
        one of our domains must authenticate; C{False} challenges only a
        REGISTER for one of our domains.
    """

    realm: str | None = attrs.field(default=None, validator=_check_realm)
    nonce_lifetime: float = attrs.field(
        default=300.0, converter=_to_float, validator=_check_lifetime
    )
    algorithms: tuple[str, ...] = attrs.field(
        default=DEFAULT_ALGORITHMS, converter=_convert_algorithms
    )
    require_for_our_domains: bool = attrs.field(default=True, validator=_check_boolean)
    minimum_algorithm: str = attrs.field(
        default="MD5", converter=_convert_minimum, validator=_check_minimum
    )

    def realm_for(self, domains: Sequence[str]) -> str:
        """
        The realm to use: L{realm}, or the first of C{domains} (C{sip.domains}).

        @raise ConfigError: if neither is there.
        """
        if self.realm is not None:
            return self.realm
        if not domains:
            raise ConfigError("auth.realm: not set, and sip.domains is empty: set one of them")
        return domains[0]


def parse_auth_config(
    table: object, prefix: str = "auth", base: AuthConfig | None = None
) -> AuthConfig:
    """
    An L{AuthConfig} from a TOML table: the keys given replace those of
    C{base} (the defaults if C{None}).

    @param prefix: the dotted key of C{table}, to name in errors
        (C{"auth"}, or C{"pipeline.options.digest-auth"}).
    @raise ConfigError: naming C{prefix.key} and the problem.
    """
    return parse_table(AuthConfig, table, prefix, base)
