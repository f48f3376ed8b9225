# -*- test-case-name: sipedge.test.test_config_values -*-
"""
The value grammar of the configuration: the error that names a key
relative to its section (L{InvalidValue}), how values are named in messages
(L{describe}, L{suggest}), the validators and converters every section
uses (numbers, seconds, booleans, choices, arrays, networks, paths, hosts),
and L{parse_table}, the one way a section is read from a TOML table (by the
loader, and by a stage for its C{[pipeline.options.<stage>]}).

Every section, also those that other packages own (C{[auth]},
C{[security]}, C{[media]}, C{[relay]}, C{[hep]}, C{[metrics]}), is written
in it, so this leaf imports none of them: standard library, C{attrs} and
L{sipedge.error} only. L{sipedge.config} re-exports it.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from sipedge.error import ConfigError

__all__ = [
    "IPNetwork",
    "InvalidValue",
    "as_tuple",
    "boolean",
    "choice",
    "describe",
    "each",
    "format_host",
    "host",
    "integer",
    "ip_literal",
    "join",
    "network",
    "non_negative_integer",
    "one",
    "optional_path",
    "parse_endpoint",
    "parse_table",
    "path",
    "port_number",
    "seconds",
    "split_hostport",
    "string",
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


# --------------------------------------------------------------------------
# Small values
# --------------------------------------------------------------------------


def string(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidValue(attribute.name, f"expected a string, got {describe(value)}")


def choice(*choices: str) -> Callable[..., None]:
    """A validator: one of the strings C{choices}."""

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        string(instance, attribute, value)
        if value not in choices:
            names = ", ".join(repr(c) for c in choices)
            raise InvalidValue(attribute.name, f"must be one of {names}, not {value!r}")

    return check


def as_tuple(value: object) -> object:
    """Arrays become tuples (so values stay hashable); others are checked later."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def one(key: str, convert: Callable[[Any], Any], value: object) -> Any:
    """Convert one value, naming C{key} if C{convert} raises L{ValueError}."""
    try:
        return convert(value)
    except ValueError as e:
        raise InvalidValue(key, str(e)) from None


def optional_path(value: object) -> object:
    if isinstance(value, str) and value:
        return Path(value)
    return value


def path(optional: bool) -> Callable[..., None]:
    """A validator: a L{Path} (or C{None} if C{optional})."""

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if value is None and optional:
            return
        if value == "":
            raise InvalidValue(attribute.name, "must not be empty")
        if not isinstance(value, Path):
            raise InvalidValue(attribute.name, f"expected a path, got {describe(value)}")

    return check


# --------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------

# RFC 3261 section 25.1:
#   hostname     =  *( domainlabel "." ) toplabel [ "." ]
#   domainlabel  =  alphanum / alphanum *( alphanum / "-" ) alphanum
#   toplabel     =  ALPHA / ALPHA *( alphanum / "-" ) alphanum
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_TOPLABEL = r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_TOPLABEL}\.?")


def ip_literal(text: str) -> str | None:
    """The canonical form of an IP address (IPv6 without brackets), or C{None}."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def host(value: object) -> str:
    """
    Normalize a host name or IP address: host names lower-cased without a
    trailing dot, IP addresses canonical, IPv6 without brackets.

    @raise ValueError: if C{value} is neither.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
    text = value
    if text.startswith("[") and text.endswith("]"):
        address = ip_literal(text[1:-1])
        if address is None or ":" not in address:
            raise ValueError(f"{value!r} is not a valid IPv6 reference")
        return address
    address = ip_literal(text)
    if address is not None:
        return address
    if len(text) > 253 or not _HOSTNAME_RE.fullmatch(text):
        raise ValueError(f"{value!r} is not a valid host name or IP address")
    return text.rstrip(".").lower()


def format_host(host: str) -> str:
    """C{host}, with brackets if it is an IPv6 address."""
    return f"[{host}]" if ":" in host else host


def split_hostport(text: str) -> tuple[str, str | None]:
    """
    Split C{host}, C{host:port}, C{[v6]} or C{[v6]:port} into the host (as
    written, IPv6 without brackets) and the port text (or C{None}).

    @raise ValueError: on a bare IPv6 address or a bad bracket.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if ip_literal(host) is None or ":" not in host:
            raise ValueError(f"{host!r} is not an IPv6 address, in {text!r}")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"expected ':port' after ']', in {text!r}")
        return host, rest[1:]
    if text.count(":") > 1:
        raise ValueError(f"write an IPv6 address in brackets, as in '[::1]:5060', not {text!r}")
    host, colon, port = text.partition(":")
    return host, (port if colon else None)


def port_number(text: str, low: int, whole: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"bad port {text!r} in {whole!r}")
    port = int(text)
    if not low <= port <= 65535:
        raise ValueError(f"port {port} in {whole!r} must be {low} to 65535")
    return port


def parse_endpoint(
    text: object, schemes: tuple[str, ...], example: str, *, min_port: int = 1
) -> tuple[str, str, int]:
    """
    C{scheme:host:port}, the scheme one of C{schemes} (any case), the host
    an IP address (IPv6 in brackets), the port C{min_port} to 65535: the
    grammar of the operations endpoints (C{[hep] destination},
    C{[metrics] listen}, C{[admin] listen}).

    @param example: a valid value, quoted in the error for a non-string.
    @return: C{(scheme, canonical IP, port)}.
    @raise ValueError: naming what is wrong with C{text}.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as {example!r}, got {describe(text)}")
    scheme, _, hostport = text.partition(":")
    scheme = scheme.lower()
    if scheme not in schemes:
        forms = " or ".join(f"'{s}:host:port'" for s in schemes)
        raise ValueError(f"expected {forms}, not {text!r}")
    host, colon, port = hostport.rpartition(":")
    if not colon or not port.isascii() or not port.isdigit():
        raise ValueError(f"missing or bad port in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad host {host!r} in {text!r}: must be an IP address") from None
    number = int(port)
    if not min_port <= number <= 65535:
        raise ValueError(f"bad port {number} in {text!r}: must be {min_port} to 65535")
    return scheme, str(address), number
