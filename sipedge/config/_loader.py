# -*- test-case-name: sipedge.test.test_config -*-
"""
The whole configuration (L{Config}, one typed section per concern) and the
loader that reads it from TOML: L{parse_config} and L{load_config} turn the
first problem into one L{ConfigError} naming the file, the key (a dotted
path such as C{sip.listen[2]}) and what is wrong.

The sections of C{[auth]}, C{[security]}, C{[media]}, C{[relay]}, C{[hep]}
and C{[metrics]} belong to their packages (below this one), written in the
same value grammar (the leaf C{sipedge._config_values}).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from sipedge._config_values import InvalidValue as _InvalidValue
from sipedge._config_values import as_tuple as _as_tuple
from sipedge._config_values import describe as _describe
from sipedge._config_values import join as _join
from sipedge._config_values import suggest as _suggest
from sipedge.accounting import AccountingConfig
from sipedge.admin import AdminConfig
from sipedge.auth import AuthConfig
from sipedge.capture import HepConfig
from sipedge.config._hosts import Listener
from sipedge.config._pipeline import PipelineConfig, Route
from sipedge.config._process import ProcessConfig
from sipedge.config._sections import (
    DialogsConfig,
    LimitsConfig,
    LogConfig,
    RegistrarConfig,
    SipConfig,
    StateConfig,
    TimersConfig,
    TlsConfig,
    TopologyHidingConfig,
)
from sipedge.error import ConfigError
from sipedge.media import MediaConfig, RelayServiceConfig
from sipedge.message import Limits
from sipedge.metrics import MetricsConfig
from sipedge.security import SecurityConfig

__all__ = [
    "DEFAULT_CONFIG",
    "SECTIONS",
    "Config",
    "load_config",
    "parse_config",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

def _check_routes(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, tuple):
        raise _InvalidValue("routes", f"expected an array of tables, got {_describe(value)}")
    for index, route in enumerate(value):
        if not isinstance(route, Route):
            raise _InvalidValue(f"routes[{index}]", f"expected a Route, got {_describe(route)}")


def _section(kind: type) -> Callable[..., None]:
    return attrs.validators.instance_of(kind)


@attrs.frozen
class Config:
    """
    A whole sipedge configuration: one value per section of the file.
    """

    sip: SipConfig = attrs.field(factory=SipConfig, validator=_section(SipConfig))
    tls: TlsConfig = attrs.field(factory=TlsConfig, validator=_section(TlsConfig))
    state: StateConfig = attrs.field(factory=StateConfig, validator=_section(StateConfig))
    limits: LimitsConfig = attrs.field(factory=LimitsConfig, validator=_section(LimitsConfig))
    timers: TimersConfig = attrs.field(factory=TimersConfig, validator=_section(TimersConfig))
    registrar: RegistrarConfig = attrs.field(
        factory=RegistrarConfig, validator=_section(RegistrarConfig)
    )
    routes: tuple[Route, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_check_routes
    )
    pipeline: PipelineConfig = attrs.field(
        factory=PipelineConfig, validator=_section(PipelineConfig)
    )
    log: LogConfig = attrs.field(factory=LogConfig, validator=_section(LogConfig))
    auth: AuthConfig = attrs.field(factory=AuthConfig, validator=_section(AuthConfig))
    security: SecurityConfig = attrs.field(
        factory=SecurityConfig, validator=_section(SecurityConfig)
    )
    media: MediaConfig = attrs.field(factory=MediaConfig, validator=_section(MediaConfig))
    dialogs: DialogsConfig = attrs.field(factory=DialogsConfig, validator=_section(DialogsConfig))
    topology_hiding: TopologyHidingConfig = attrs.field(
        factory=TopologyHidingConfig, validator=_section(TopologyHidingConfig)
    )
    relay: RelayServiceConfig = attrs.field(
        factory=RelayServiceConfig, validator=_section(RelayServiceConfig)
    )
    hep: HepConfig = attrs.field(factory=HepConfig, validator=_section(HepConfig))
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig, validator=_section(MetricsConfig))
    accounting: AccountingConfig = attrs.field(
        factory=AccountingConfig, validator=_section(AccountingConfig)
    )
    admin: AdminConfig = attrs.field(factory=AdminConfig, validator=_section(AdminConfig))
    process: ProcessConfig = attrs.field(
        factory=ProcessConfig, validator=_section(ProcessConfig)
    )

    def __attrs_post_init__(self) -> None:
        if self.topology_hiding.enabled and not self.sip.record_route:
            raise _InvalidValue(
                "topology_hiding.enabled",
                "needs sip.record_route = true: in-dialog requests from outside find"
                " the hidden hops through our Record-Route",
            )

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """The transport addresses to listen on (C{sip.listen})."""
        return self.sip.listen

    @property
    def message_limits(self) -> Limits:
        """The limits the message parser enforces (from C{[limits]})."""
        return self.limits.message_limits


DEFAULT_CONFIG = Config()
"""The embedded defaults, which C{twistd -n sipedge} runs on."""


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

SECTIONS: Mapping[str, type] = MappingProxyType({
    "sip": SipConfig,
    "tls": TlsConfig,
    "state": StateConfig,
    "limits": LimitsConfig,
    "timers": TimersConfig,
    "registrar": RegistrarConfig,
    "pipeline": PipelineConfig,
    "log": LogConfig,
    "auth": AuthConfig,
    "security": SecurityConfig,
    "media": MediaConfig,
    "dialogs": DialogsConfig,
    "topology_hiding": TopologyHidingConfig,
    "relay": RelayServiceConfig,
    "hep": HepConfig,
    "metrics": MetricsConfig,
    "accounting": AccountingConfig,
    "admin": AdminConfig,
    "process": ProcessConfig,
})
"""Each C{[section]} of the file and the frozen value it becomes (C{[[routes]]}
becomes a tuple of L{Route})."""
_KNOWN_SECTIONS = [*SECTIONS, "routes"]

# Keys that name files, resolved against the configuration file's directory.
_PATH_KEYS = {
    "tls": ("certificate", "private_key", "ca_certificates"),
    "state": ("path",),
    "topology_hiding": ("key_file",),
    "media": ("relay_secret_file", "relay_ca"),
    "relay": ("secret_file", "certificate", "private_key"),
    "accounting": ("path",),
    "admin": ("token_file", "certificate", "private_key"),
}


def _table(value: object, key: str, hint: str = "") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _InvalidValue(key, f"expected a table{hint}, got {_describe(value)}")
    return value


def _check_keys(table: Mapping[str, Any], known: Iterable[str], prefix: str, what: str) -> None:
    known = list(known)
    for key in table:
        if key not in known:
            raise _InvalidValue(_join(prefix, key), f"unknown {what}" + _suggest(key, known))


def _resolve(value: object, base_dir: Path | None) -> object:
    """A path string, with C{~} expanded and made relative to C{base_dir}."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path


def _build(kind: type, table: Mapping[str, Any], prefix: str) -> Any:
    """C{kind(**table)}, naming C{prefix} in any error."""
    try:
        return kind(**table)
    except _InvalidValue as e:
        raise e.within(prefix) from None


def _parse(data: object, base_dir: Path | None) -> Config:
    data = _table(data, "", "")
    _check_keys(data, _KNOWN_SECTIONS, "", "section")
    sections: dict[str, Any] = {}
    for name, kind in SECTIONS.items():
        if name not in data:
            continue
        table = dict(_table(data[name], name, f" ([{name}])"))
        _check_keys(table, attrs.fields_dict(kind), name, "key")
        for key in _PATH_KEYS.get(name, ()):
            if key in table:
                table[key] = _resolve(table[key], base_dir)
        sections[name] = _build(kind, table, name)
    if "routes" in data:
        routes = data["routes"]
        if not isinstance(routes, (list, tuple)):
            raise _InvalidValue(
                "routes", f"expected an array of tables ([[routes]]), got {_describe(routes)}"
            )
        built = []
        for index, route in enumerate(routes):
            key = f"routes[{index}]"
            route = _table(route, key, " ([[routes]])")
            _check_keys(route, attrs.fields_dict(Route), key, "key")
            if "next_hop" not in route:
                raise _InvalidValue(
                    f"{key}.next_hop", "missing: give a SIP URI such as 'sip:10.0.0.5:5060'"
                )
            built.append(_build(Route, route, key))
        sections["routes"] = tuple(built)
    return Config(**sections)


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", base_dir: Path | None = None
) -> Config:
    """
    Make a L{Config} from parsed TOML: keys that are absent take their
    defaults.

    @param data: the TOML document, as C{tomllib} returns it.
    @param source: where C{data} came from, to start error messages with.
    @param base_dir: the directory relative paths are relative to; C{None}
        leaves them relative (to the current directory).
    @raise ConfigError: on the first problem; the message names C{source},
        the key and what is wrong.
    """
    try:
        return _parse(data, base_dir)
    except _InvalidValue as e:
        raise ConfigError(f"{source}: {e.key or '(top level)'}: {e.problem}") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """
    Read the TOML file at C{path} into a L{Config}. Relative paths in it are
    relative to the directory the file is in.

    @raise ConfigError: if the file cannot be read, is not TOML, or holds a
        bad value; the message names the file.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ConfigError(f"{os.fspath(path)}: cannot read configuration file: {reason}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{os.fspath(path)}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        column = e.start - (e.object.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{os.fspath(path)}: invalid TOML: not UTF-8 text"
            f" (byte 0x{e.object[e.start]:02x} at line {line}, column {column})"
        ) from None
    base_dir = Path(os.path.abspath(path)).parent
    return parse_config(data, os.fspath(path), base_dir)
