# -*- test-case-name: sipedge.test.test_relay_tap -*-
"""
C{twistd sipedge-relay}: the media relay as its own service, controlled by
proxies over the control protocol (C{doc/relay-protocol.md}).

The only module, with L{sipedge.relay_service}'s caller here, that touches
the global reactor for the relay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from twisted.python import usage

from sipedge.config import DEFAULT_CONFIG, Config, InvalidValue, load_config
from sipedge.error import ConfigError
from sipedge.media import ControlAddress

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    """
    Options of C{twistd sipedge-relay}: C{--config} reads the C{[media]}
    (ports, addresses, limits, SRTP suites) and C{[relay]} (control port,
    secret) sections of a TOML file; the flags override it.
    """

    synopsis = "[--config FILE] [--control tcp|tls:HOST:PORT] [--secret-file FILE]"
    optParameters = [
        ["config", "c", None, "TOML configuration file (see doc/configuration.md)."],
        ["control", None, None, "Control port, tcp:HOST:PORT or tls:HOST:PORT (overrides "
         "relay.control; tls: needs relay.certificate)."],
        ["secret-file", None, None, "The shared secret's file (overrides relay.secret_file)."],
    ]
    longdesc = (
        "Run sipedge's media relay as a service of its own, controlled by sipedge "
        "proxies ([media] relay = \"tcp:HOST:PORT\") over the protocol of "
        "doc/relay-protocol.md. The control port needs a shared secret."
    )

    def __init__(self) -> None:
        super().__init__()
        self.config: Config = DEFAULT_CONFIG
        self.secret = b""

    def postOptions(self) -> None:
        try:
            config = load_config(self["config"]) if self["config"] else DEFAULT_CONFIG
            relay = config.relay
            if self["control"]:
                try:
                    control = ControlAddress.parse(self["control"])
                except ValueError as e:
                    raise usage.UsageError(f"--control: {e}") from None
                relay = attrs.evolve(relay, control=control)
            if self["secret-file"]:
                relay = attrs.evolve(
                    relay, secret=None, secret_file=Path(self["secret-file"]).absolute()
                )
            config = attrs.evolve(config, relay=relay)
            self.secret = relay.read_secret()
        except InvalidValue as e:
            raise usage.UsageError(str(e.within("relay"))) from None
        except (ConfigError, ValueError, TypeError) as e:
            raise usage.UsageError(str(e)) from None
        self.config = config


def makeService(options: Options) -> Any:
    """Build the relay service on the global reactor."""
    from twisted.internet import reactor

    from sipedge.relay_service import build_relay_service

    try:
        return build_relay_service(options.config, reactor, options.secret)
    except ConfigError as e:
        source = options["config"] or "the embedded defaults"
        raise SystemExit(f"sipedge-relay: {source}: {e}") from None
