# -*- test-case-name: sipedge.test.test_reload -*-
"""
Reloading the configuration file into the running proxy (SIGHUP,
C{POST /api/v1/reload}, C{sipedge ctl reload}).

All or nothing: L{reload_service} reads the file, decides what can change
live (C{sipedge._reload_keys}), and builds every new object first: the
request chain (a stage whose options and settings did not change is kept
as it is, with its state; the others are built anew), the stage services,
the new security settings, the TLS settings. Anything that fails there
(a file that cannot be read or parsed, a bad value, a stage that refuses
its options) raises L{ConfigError} naming the file, the key and the
problem, and nothing has changed. Then the certificate is read (the last
thing that can fail), and the rest is swapped in by assignments within
one reactor turn: a request is handled by the old chain or the new one,
never a mix. Transactions, dialogs, registrations, bans, buckets and
monitor scores are left where they are.

A supervisor of worker processes calls L{reload_service} (through
C{SipEdgeService.reload}) in each worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.logger import Logger

from sipedge._reload_keys import PINNED_STAGE, split_config
from sipedge.config import DEFAULT_CONFIG, Config, load_config
from sipedge.error import ConfigError
from sipedge.interfaces import IProxyObserver
from sipedge.pipeline import LocalIdentity, RequestChain, build_chain, stage_factories
from sipedge.security import prepare_security, reread_bans
from sipedge.transport import TLSSettings

__all__ = [
    "ConfigSource",
    "ReloadReport",
    "log_reload",
    "reload_service",
    "tls_settings",
]

_CLIENT_CERTIFICATES = {"none": "none", "optional": "request", "required": "require"}
_log = Logger(namespace="sipedge.reload")


def _same(config: Config) -> Config:
    return config


@attrs.frozen
class ConfigSource:
    """
    Where the running configuration came from, to read it again.

    @ivar path: the configuration file (absolute), or C{None} for the
        embedded defaults.
    @ivar overrides: what the command line changes in what is read
        (C{--listen}, C{--domain}, C{--state}).
    """

    path: str | None = None
    overrides: Callable[[Config], Config] = _same

    @property
    def name(self) -> str:
        return self.path if self.path is not None else "the embedded defaults"

    def load(self) -> Config:
        """
        Read it again.

        @raise ConfigError: naming the file, the key and the problem.
        """
        config = load_config(self.path) if self.path is not None else DEFAULT_CONFIG
        try:
            return self.overrides(config)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{self.name}: {e}") from None


@attrs.frozen
class ReloadReport:
    """
    @ivar changed: what changed, one line each.
    @ivar needs_restart: what the file changes but only a restart applies,
        one line each (the running value is kept).
    """

    changed: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        """The admin API's answer."""
        return {"reloaded": list(self.changed), "needs_restart": list(self.needs_restart)}


def tls_settings(config: Config, state_dir: str) -> TLSSettings:
    """The TLS settings of C{config}, with its self-signed certificate in C{state_dir}."""
    tls = config.tls
    return TLSSettings(
        certificate=str(tls.certificate) if tls.certificate else None,
        private_key=str(tls.private_key) if tls.certificate else None,
        state_dir=state_dir,
        domains=tuple(config.sip.domains),
        addresses=tuple(listener.host for listener in config.listeners),
        client_certificates=_CLIENT_CERTIFICATES[tls.verify_client],
        client_ca=str(tls.ca_certificates) if tls.ca_certificates else None,
        trust_roots=str(tls.ca_certificates) if tls.ca_certificates else None,
        insecure_client=not tls.verify_server,
        profile=tls.profile,
        ciphers=tls.ciphers,
    )


@attrs.frozen
class _Kept:
    """A stage factory that gives back the running stage (kept with its state)."""

    name: str
    stage: Any

    def build_stage(self, options: dict[str, Any], services: Any) -> Any:
        return self.stage


_WHOLE = object()


def _inputs(factory: Any, name: str, config: Config) -> tuple[Any, ...]:
    """What a stage is built from: equal inputs, the same stage."""
    options = config.pipeline.options.get(name)
    if name == PINNED_STAGE:
        return (options, config.media)
    section: Any = getattr(factory, "section", _WHOLE)
    if section is _WHOLE:  # a factory that does not say what it reads
        return (options, config)
    return (options, config.sip, None if section is None else section(config))


def _chain(
    running: RequestChain,
    old: Config,
    new: Config,
    services: Any,
    factories: dict[str, Any],
) -> tuple[RequestChain, list[str]]:
    """The chain of C{new}, keeping the running stages whose inputs did not change."""
    stages = dict(zip(old.pipeline.stages, running.stages, strict=True))
    chosen = dict(factories)
    rebuilt = []
    for name in new.pipeline.stages:
        factory = factories.get(name)
        stage = stages.get(name)
        if factory is not None and stage is not None and (
            name == PINNED_STAGE or _inputs(factory, name, old) == _inputs(factory, name, new)
        ):
            chosen[name] = _Kept(name, stage)
        else:
            rebuilt.append(name)
    pipeline = new.pipeline
    chain = build_chain(
        pipeline.stages,
        {name: pipeline.options_for(name) for name in pipeline.stages},
        services,
        chosen,
    )
    return chain, rebuilt


def _observers(current: Sequence[Any], old: RequestChain, new: RequestChain) -> list[Any]:
    """The proxy core's observers with the old chain's stages replaced by the new one's."""
    gone = [s for s in old.stages if IProxyObserver.providedBy(s) and s not in new.stages]
    kept = [o for o in current if not any(o is s for s in gone)]
    return kept + [
        s for s in new.stages
        if IProxyObserver.providedBy(s) and not any(s is o for o in kept)
    ]


def _named(source: str | None, error: ConfigError) -> ConfigError:
    text = str(error)
    if source is None or text.startswith(source):
        return error
    return ConfigError(f"{source}: {text}")


def reload_service(
    service: Any, factories: dict[str, Any] | None = None
) -> ReloadReport:
    """
    Read C{service.config_source} again and apply what can change live
    (without one, read the certificate and the bans again).

    @param service: a C{SipEdgeService} (its C{config}, C{core},
        C{security}, C{monitor}, C{toll_fraud}, C{registrar},
        C{server_tls}, C{state_dir}, C{config_source}).
    @param factories: the stage factories (the installed plugins by default).
    @raise ConfigError: naming the file, the key and the problem; then
        nothing has changed.
    """
    source: ConfigSource | None = service.config_source
    name: str | None
    if source is None:  # no file to read again: the certificate and the bans only
        name, loaded = None, service.config
    else:
        name, loaded = source.name, source.load()
    split = split_config(service.config, loaded)
    running = split.running
    core = service.core
    try:
        update = prepare_security(
            service.security, service.monitor, service.toll_fraud, running.security
        )
        services = attrs.evolve(
            core.services,
            config=running,
            local=LocalIdentity(running.sip.domains, core.services.local.addresses),
        )
        chain, rebuilt = _chain(
            core.chain,
            service.config,
            running,
            services,
            stage_factories() if factories is None else factories,
        )
        settings = tls_settings(running, str(service.state_dir))
        changed = list(split.changes)
        # The last step that can fail: reading the certificate and key.
        server_tls = service.server_tls
        if server_tls is not None and server_tls.reload(settings):
            changed.append(
                f"tls.certificate: new TLS connections get {server_tls.fingerprint} (SHA-256)"
            )
    except ConfigError as e:
        raise _named(name, e) from None
    # From here on only assignments: nothing fails half-way.
    service._tls_settings = settings
    update.apply()
    registrar, section = service.registrar, running.registrar
    registrar.min_expires = section.min_expires
    registrar.max_expires = section.max_expires
    registrar.default_expires = section.default_expires
    registrar.nat_expires = section.nat_expires or None
    core.observers = _observers(core.observers, core.chain, chain)
    core.chain, core.services = chain, services
    service.config = running
    if rebuilt:
        changed.append(f"stages rebuilt: {', '.join(rebuilt)} (the others kept as they run)")
    bans = reread_bans(service.security)
    if bans is not None:
        changed.append(f"bans: {bans} read again from the ban database")
    return ReloadReport(tuple(changed), split.needs_restart)


def log_reload(reload: Callable[[], ReloadReport], why: str) -> ReloadReport:
    """
    Call C{reload} and log its outcome: each change, each key that needs a
    restart, or why it was refused (the running state kept).

    @raise ConfigError: as C{reload} does, once logged.
    """
    _log.info("Reloading ({why})", why=why)
    try:
        report = reload()
    except ConfigError as e:
        _log.error("Reload refused, still running as before: {error}", error=str(e))
        raise
    if not report.changed:
        _log.info("Reload done: nothing changed")
    for line in report.changed:
        _log.info("Reload done: {change}", change=line)
    for line in report.needs_restart:
        _log.warn("Reload: {key_line}", key_line=line)
    return report

