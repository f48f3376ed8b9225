# -*- test-case-name: sipedge.test.test_config -*-
"""
sipedge's configuration: frozen values, read from TOML.

The package has three parts:

 - the value grammar (L{InvalidValue}, L{describe}, L{boolean}, L{seconds},
   L{network}, L{parse_table}, ...): how every section checks its values,
   so that each error names its key. A stage that reads its own
   C{[pipeline.options.<stage>]} table uses it too.
 - one typed section per concern, each a frozen C{attrs} value that checks
   itself when constructed: L{SipConfig}, L{TlsConfig}, L{StateConfig},
   L{LimitsConfig}, L{TimersConfig}, L{RegistrarConfig}, L{Route},
   L{PipelineConfig}, L{LogConfig}, L{DialogsConfig},
   L{TopologyHidingConfig} here; C{[auth]}, C{[security]}, C{[media]} and
   C{[relay]} in their own packages (L{sipedge.auth.AuthConfig},
   L{sipedge.security.SecurityConfig}, L{sipedge.media.MediaConfig},
   L{sipedge.media.RelayServiceConfig}), written with the same grammar.
 - the loader: L{Config} holds one value per section of the file;
   L{parse_config} and L{load_config} turn the first problem into one
   L{ConfigError} whose message names the file, the key (a dotted path such
   as C{sip.listen[2]}) and what is wrong. C{doc/configuration.md}
   documents every key.

L{DEFAULT_CONFIG} is what C{twistd -n sipedge} runs on without C{--config}.

The grammar itself is the leaf module C{sipedge._config_values}, so that
the packages below the configuration (auth, security, media, capture,
metrics) can write their sections in it; this package re-exports it.
"""

from __future__ import annotations

from sipedge._config_values import (
    InvalidValue,
    IPNetwork,
    as_tuple,
    boolean,
    choice,
    describe,
    each,
    format_host,
    host,
    integer,
    ip_literal,
    join,
    network,
    non_negative_integer,
    one,
    optional_path,
    parse_table,
    path,
    seconds,
    split_hostport,
    string,
    suggest,
    to_float,
)
from sipedge.config._hosts import DEFAULT_LISTEN, TRANSPORTS, HostPort, Listener, default_domains
from sipedge.config._loader import DEFAULT_CONFIG, SECTIONS, Config, load_config, parse_config
from sipedge.config._pipeline import DEFAULT_STAGES, PipelineConfig, Route
from sipedge.config._process import MAX_WORKERS, ProcessConfig
from sipedge.config._sections import (
    DEFAULT_INTERNAL_NETWORKS,
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

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_INTERNAL_NETWORKS",
    "DEFAULT_LISTEN",
    "DEFAULT_STAGES",
    "MAX_WORKERS",
    "SECTIONS",
    "TRANSPORTS",
    "Config",
    "ConfigError",
    "DialogsConfig",
    "HostPort",
    "IPNetwork",
    "InvalidValue",
    "LimitsConfig",
    "Listener",
    "LogConfig",
    "PipelineConfig",
    "ProcessConfig",
    "RegistrarConfig",
    "Route",
    "SipConfig",
    "StateConfig",
    "TimersConfig",
    "TlsConfig",
    "TopologyHidingConfig",
    "as_tuple",
    "boolean",
    "choice",
    "default_domains",
    "describe",
    "each",
    "format_host",
    "host",
    "integer",
    "ip_literal",
    "join",
    "load_config",
    "network",
    "non_negative_integer",
    "one",
    "optional_path",
    "parse_config",
    "parse_table",
    "path",
    "seconds",
    "split_hostport",
    "string",
    "suggest",
    "to_float",
]
