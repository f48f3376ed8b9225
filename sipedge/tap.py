# -*- test-case-name: sipedge.test.test_tap -*-
"""
C{twistd sipedge}: command-line options and the service they make.

The only module, with L{sipedge.service}, that touches the global reactor.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import attrs
from twisted.python import usage

from sipedge._reload import ConfigSource
from sipedge.config import DEFAULT_CONFIG, Config, Listener, load_config
from sipedge.error import ConfigError

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    """
    Options of C{twistd sipedge}. With none, sipedge runs on its embedded
    defaults; C{--config} reads a TOML file; the other flags override it.
    """

    synopsis = "[--config FILE] [--listen SPEC ...] [--domain NAME ...] [--state DIR]"
    optParameters = [
        ["config", "c", None, "TOML configuration file (see doc/configuration.md)."],
        ["state", "s", None, "State directory (overrides state.path)."],
        ["worker", None, None, "(Internal) run as one worker of a supervisor."],
    ]
    optFlags = [
        ["hold", None, "(Internal) as a worker, wait for the supervisor's word on standard"
                       " input before making anything (worker 0 makes the shared state)."],
    ]
    longdesc = (
        "Run the sipedge SIP edge proxy. Listen specs are transport:host:port, "
        "e.g. udp:127.0.0.1:5060, tcp:[::1]:5060 or tls:0.0.0.0:5061."
    )

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["domain"] = []
        self.config: Config = DEFAULT_CONFIG

    def opt_listen(self, spec: str) -> None:
        """Listen on transport:host:port (repeatable; replaces sip.listen)."""
        try:
            self["listen"].append(Listener.parse(spec))
        except ValueError as e:
            raise usage.UsageError(f"--listen {spec}: {e}") from None

    def opt_domain(self, name: str) -> None:
        """A domain we are responsible for (repeatable; replaces sip.domains)."""
        self["domain"].append(name)

    def postOptions(self) -> None:
        if self["state"]:
            self["state"] = str(Path(self["state"]).absolute())
        try:
            config = self.overrides(
                load_config(self["config"]) if self["config"] else DEFAULT_CONFIG
            )
        except (ConfigError, ValueError, TypeError) as e:
            raise usage.UsageError(str(e)) from None
        self.config = config

    def overrides(self, config: Config) -> Config:
        """C{config} with the command line's C{--listen}, C{--domain} and C{--state}."""
        sip = config.sip
        if self["listen"]:
            sip = attrs.evolve(sip, listen=tuple(self["listen"]))
        if self["domain"]:
            sip = attrs.evolve(sip, domains=tuple(self["domain"]))
        config = attrs.evolve(config, sip=sip)
        if self["state"]:
            state = attrs.evolve(config.state, path=Path(self["state"]))
            config = attrs.evolve(config, state=state)
        return config


def _twistd_command() -> list[str]:
    """How to run twistd with this Python."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _worker_command(options: Options, spec: Any) -> list[str]:
    """
    The command line of the worker C{spec} describes: C{twistd -n sipedge}
    with the options this process was given, in the foreground, logging
    to its standard output (which the supervisor reads).
    """
    argv = [*_twistd_command(), "--nodaemon", "--pidfile=", "--logfile=-", "sipedge"]
    if options["config"]:
        argv += ["--config", os.path.abspath(options["config"])]
    for listener in options["listen"]:
        argv += ["--listen", str(listener)]
    for domain in options["domain"]:
        argv += ["--domain", domain]
    argv += ["--state", str(Path(options.config.state.path).absolute())]
    if spec.index != 0:  # worker 0 makes the shared state (WorkerSupervisor first_alone)
        argv.append("--hold")
    return [*argv, "--worker", spec.encode()]


def makeService(options: Options) -> Any:
    """Build the sipedge service on the global reactor."""
    from twisted.internet import reactor

    from sipedge._logging import log_observer, twistd_log_output
    from sipedge.process import WorkerSpec, wait_released
    from sipedge.service import build_service
    from sipedge.worker_service import SupervisorService, WorkerService, worker_config

    service: Any
    try:
        if options["worker"]:
            spec = WorkerSpec.decode(options["worker"])
            if options["hold"]:
                wait_released()
            service = WorkerService(options.config, reactor, spec)
        elif (count := options.config.process.worker_count()) > 1:
            service = SupervisorService(
                options.config, reactor, count, lambda spec: _worker_command(options, spec)
            )
        else:
            service = build_service(options.config, reactor)
    except ConfigError as e:
        source = options["config"] or "the embedded defaults"
        raise SystemExit(f"sipedge: {source}: {e}") from None
    except ValueError as e:  # a --worker spec that is not one
        raise SystemExit(f"sipedge: --worker: {e}") from None
    service.reload_on_sighup = True
    # Read again on reload (absolute: twistd may change directory).
    path = os.path.abspath(options["config"]) if options["config"] else None
    overrides = options.overrides
    if isinstance(service, WorkerService):  # as it runs: admin and metrics on private ports
        spec = service.spec
        overrides = lambda config: worker_config(options.overrides(config), spec)  # noqa: E731
    service.config_source = ConfigSource(path, overrides)
    # [log] level and format, written where twistd would have logged.
    output = twistd_log_output(getattr(options, "parent", None))
    if output is not None:
        log = options.config.log
        service.log_observer = log_observer(log.log_level, log.format, output)
    return service
