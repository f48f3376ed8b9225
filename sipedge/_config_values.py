# -*- test-case-name: sipedge.test.test_config_values -*-
"""
What every section of the configuration checks its values with: the error
that names a key relative to its section (L{InvalidValue}), how values are
named in messages (L{describe}, L{suggest}), and the validators and
converters that more than one section uses.

L{sipedge.config} and the sections it imports from other packages
(C{[auth]}, C{[security]}, C{[media]}) all use this module, so it must not
import any of them: standard library and C{attrs} only.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from sipedge.error import ConfigError

__all__ = [
    "IPNetwork",
    "InvalidValue",
    "boolean",
    "describe",
    "each",
    "integer",
    "join",
    "network",
    "non_negative_integer",
    "parse_table",
    "seconds",
    "suggest",
    "to_float",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class InvalidValue(ConfigError):
    """
    A value that a section rejected, with the key relative to that section,
    so the caller can prefix the section's own path.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem

    def within(self, prefix: str) -> InvalidValue:
        """The same problem, with C{prefix} put before the key."""
        return InvalidValue(join(prefix, self.key), self.problem)


def join(prefix: str, key: str) -> str:
    """Join dotted key paths: C{sip} + C{listen[2]} is C{sip.listen[2]}."""
    if not prefix:
        return key
    if not key:
        return prefix
    if key.startswith("["):
        return prefix + key
    return f"{prefix}.{key}"


_TYPE_NAMES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (tuple, "array"),
    (dict, "table"),
)


def describe(value: object) -> str:
    """Name a value the way TOML does, for an error message."""
    if value is None:
        return "nothing"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            if kind is bool:
                return f"boolean {str(value).lower()}"
            if kind in (int, float, str):
                return f"{name} {value!r}"
            return name
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"date/time {value.isoformat()}"
    return f"{type(value).__name__} {value!r}"


def suggest(word: str, known: Iterable[str]) -> str:
    """C{"; did you mean 'x'?"} for the closest known word, else the list."""
    known = sorted(known)
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(known)}" if known else ""


# --------------------------------------------------------------------------
# Validators and converters
# --------------------------------------------------------------------------


def boolean(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """A validator: C{true} or C{false}."""
    if not isinstance(value, bool):
        raise InvalidValue(attribute.name, f"expected true or false, got {describe(value)}")


def integer(low: int, high: int | None = None) -> Callable[..., None]:
    """A validator: an integer (not a boolean) in C{[low, high]}."""

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(attribute.name, f"expected an integer, got {describe(value)}")
        if high is None and value < low:
            raise InvalidValue(attribute.name, f"must be at least {low}, not {value}")
        if high is not None and not low <= value <= high:
            raise InvalidValue(attribute.name, f"must be {low} to {high}, not {value}")

    return check


def non_negative_integer(zero: str) -> Callable[..., None]:
    """
    A validator: an integer (not a boolean), 0 or more; C{zero} says what 0
    means (C{"off"}, C{"no limit"}).
    """

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(attribute.name, f"expected an integer, got {describe(value)}")
        if value < 0:
            raise InvalidValue(attribute.name, f"must be 0 ({zero}) or more, not {value}")

    return check


def to_float(value: object) -> object:
    """TOML writes C{5} for C{5.0}: accept integers where numbers are due."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def seconds(minimum_exclusive: bool = True) -> Callable[..., None]:
    """
    A validator: a finite number of seconds (a float, see L{to_float}),
    more than 0, or 0 or more if not C{minimum_exclusive}.
    """

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, float):
            raise InvalidValue(
                attribute.name, f"expected a number of seconds, got {describe(value)}"
            )
        ok = value > 0 if minimum_exclusive else value >= 0
        if not (math.isfinite(value) and ok):
            what = "positive" if minimum_exclusive else "non-negative"
            raise InvalidValue(attribute.name, f"must be a {what} number of seconds, not {value!r}")

    return check


def each(key: str, convert: Callable[[Any], Any], value: object) -> tuple[Any, ...]:
    """
    Convert an array: C{convert} each item, naming C{key[i]} if one raises
    L{ValueError}.
    """
    if not isinstance(value, (list, tuple)):
        raise InvalidValue(key, f"expected an array, got {describe(value)}")
    result = []
    for index, item in enumerate(value):
        try:
            result.append(convert(item))
        except ValueError as e:
            raise InvalidValue(f"{key}[{index}]", str(e)) from None
    return tuple(result)


def network(value: object) -> IPNetwork:
    """
    An IP network, from C{"address/prefix"} (host bits allowed).

    @raise ValueError: if C{value} is not one.
    """
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a network such as '10.0.0.0/8', got {describe(value)}")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP network (expected 'address/prefix', as in '10.0.0.0/8')"
        ) from None


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

_Section = TypeVar("_Section")


def parse_table(
    kind: type[_Section], table: object, prefix: str, base: _Section | None
) -> _Section:
    """
    A C{kind} (an C{attrs} class whose checks raise L{InvalidValue}) from a
    TOML table: the keys given replace those of C{base} (the defaults if
    C{None}).

    @param prefix: the dotted key of C{table}, to name in errors.
    @raise ConfigError: naming C{prefix.key} and the problem, for a value
        that is not a table, an unknown key or a bad value.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{prefix}: expected a table, got {describe(table)}")
    known = list(attrs.fields_dict(kind))  # type: ignore[arg-type]
    for key in table:
        if key not in known:
            raise ConfigError(f"{prefix}.{key}: unknown key" + suggest(str(key), known))
    values: dict[str, Any] = dict(table)
    try:
        if base is None:
            return kind(**values)
        return attrs.evolve(base, **values)  # type: ignore[misc]
    except InvalidValue as e:
        raise ConfigError(f"{e.within(prefix).key}: {e.problem}") from None
