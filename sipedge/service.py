# -*- test-case-name: sipedge.test.test_service -*-
"""
The composition root: from a L{Config} and a reactor to the running
service tree. Everything below takes its reactor or clock from here.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger

from sipedge._reload import ConfigSource, ReloadReport, log_reload, reload_service, tls_settings
from sipedge.accounting import CallRecorder, JsonLinesWriter
from sipedge.admin import (
    TOKEN_FILE,
    AdminResource,
    admin_site,
    admin_tls_context,
    listen_admin,
    read_or_make_token,
)
from sipedge.auth import NonceSource, SQLiteCredentialStore
from sipedge.capture import HepCapture, HepSender
from sipedge.config import Config
from sipedge.error import ConfigError
from sipedge.interfaces import IMessageTap, IProxyObserver
from sipedge.metrics import LoopLag, MessageCounter, metrics_site, service_registry
from sipedge.pipeline import StageServices, build_chain
from sipedge.pipeline.stages import MediaAnchorStage
from sipedge.proxy import (
    DialogTracker,
    FlowTokens,
    LocalIdentity,
    NatKeepalive,
    ProxyCore,
    RecordRouteSigner,
    Registrar,
    Sealer,
    TopologyHider,
)
from sipedge.security import Monitor, Security, TollFraudGuard
from sipedge.store import LostBindings, SQLiteLocationStore
from sipedge.transaction import TimerSettings, TimerWheel, set_tracing
from sipedge.transport import (
    ClientTLSContexts,
    ReloadableServerContext,
    ServerLocator,
    TransportManager,
    http_fetch,
)

__all__ = ["SECRET_FILE", "SipEdgeService", "build_service"]

SECRET_FILE = "record-route.key"


def _state_secret(state_dir: Path) -> bytes:
    """The Record-Route signing key, made once and kept (mode 0600)."""
    path = state_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) >= 32:
            os.chmod(path, 0o600)
            return secret
    except FileNotFoundError:
        pass
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


def _topology_hider(config: Config, rr_secret: bytes) -> TopologyHider | None:
    """
    The topology hider C{[topology_hiding]} asks for, or C{None}; its key
    is C{key_file}'s, else the Record-Route key.
    """
    section = config.topology_hiding
    if not section.enabled:
        return None
    secret = rr_secret
    if section.key_file is not None:
        path = section.key_file
        try:
            secret = path.read_bytes()
        except OSError as e:
            raise ConfigError(
                f"topology_hiding.key_file: cannot read {str(path)!r}: {e.strerror or e}"
            ) from None
        if len(secret) < 32:
            raise ConfigError(
                f"topology_hiding.key_file: {str(path)!r} holds {len(secret)} bytes;"
                " a key needs at least 32 (e.g. head -c 32 /dev/urandom > file)"
            )
    return TopologyHider(Sealer(secret), section.internal)


def _primary_address(family: int) -> str | None:
    """
    The address this host would use to reach the Internet (no packet is
    sent: a UDP socket is connected, not written to).
    """
    target = ("192.0.2.1", 9) if family == socket.AF_INET else ("2001:db8::1", 9)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(target)
            return str(s.getsockname()[0])
    except OSError:
        return None


def _resolver(reactor: Any) -> tuple[Any, Any]:
    """
    /etc/hosts, then the DNS servers of /etc/resolv.conf, on C{reactor};
    returns the chain and the DNS client (whose re-reading of resolv.conf
    must be stopped with the service).
    """
    from twisted.names import client, hosts, resolve

    resolv = "/etc/resolv.conf"
    exists = os.path.exists(resolv)
    dns = client.Resolver(
        resolv=resolv if exists else None,
        servers=None if exists else [("127.0.0.1", 53)],
        reactor=reactor,
    )
    return resolve.ResolverChain([hosts.Resolver(), dns]), dns


def _host_addresses(host: str) -> list[str]:
    """
    The addresses a listener bound to C{host} answers on: C{host} itself,
    or for a wildcard this host's loopback, primary and named addresses.
    """
    if host not in ("0.0.0.0", "::"):
        return [host]
    family = socket.AF_INET if host == "0.0.0.0" else socket.AF_INET6
    found = ["127.0.0.1" if family == socket.AF_INET else "::1"]
    primary = _primary_address(family)
    if primary is not None:
        found.append(primary)
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, family):
            found.append(str(info[4][0]))
    except OSError:
        pass
    return list(dict.fromkeys(found))


def _media_relay(config: Config, reactor: Any) -> Any:
    """
    The media relay the C{media-anchor} stage drives: none unless
    C{media.anchor}; a L{RemoteMediaRelay} (not started) to
    C{twistd sipedge-relay} when C{media.relay} is set; else the
    in-process one.

    @raise ConfigError: naming the key of a secret that cannot be read.
    """
    media = config.media
    if not media.anchor:
        return None
    if media.relay is None:
        return media.build_relay(reactor)
    return media.build_remote_relay(reactor)


class SipEdgeService(MultiService):
    """
    The running proxy: transports, transactions, the proxy core, the
    registrar and its store. Listening happens in
    C{privilegedStartService}, so ports below 1024 can be bound before
    twistd drops privileges; a port that cannot be bound stops start-up with
    one message naming the listener.
    """

    _log = Logger()
    #: What is logged once the service serves.
    started_format = "sipedge started: domains {domains}, state in {state}"
    #: The transports' class, and what stands between them and the
    #: transaction layer (a worker's hand messages to other workers).
    transport_class: Any = TransportManager
    lost_class: Any = LostBindings
    _route: Any = staticmethod(lambda receiver: receiver)

    def __init__(self, config: Config, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self._reactor = reactor
        #: The log observer twistd's application is to use (C{[log]} applied),
        #: or C{None} to keep twistd's: set by the composition root.
        self.log_observer: ILogObserver | None = None
        #: Whether SIGHUP calls L{reload} while the service runs (set by
        #: C{twistd sipedge}; never in a test process).
        self.reload_on_sighup = False
        self._previous_sighup: Any = None
        #: Where L{config} came from, read again by L{reload} (C{None}: the
        #: embedded defaults, or a test's configuration, which stays).
        self.config_source: ConfigSource | None = None
        #: The TLS listeners' certificate, once they listen.
        self.server_tls: ReloadableServerContext | None = None
        state_dir = Path(config.state.path)
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise ConfigError(f"state.path: cannot create {state_dir}: {e.strerror}") from None
        self.state_dir = state_dir
        self.store = SQLiteLocationStore.in_state_directory(str(state_dir))
        self.security = Security.from_config(config, reactor)
        self.credentials = SQLiteCredentialStore.in_state_directory(str(state_dir))
        self.registrar = Registrar(
            self.store,
            reactor,
            min_expires=config.registrar.min_expires,
            max_expires=config.registrar.max_expires,
            default_expires=config.registrar.default_expires,
            nat_expires=config.registrar.nat_expires or None,
        )
        try:
            self._build(config, reactor, state_dir)
        except BaseException:
            self._close_stores()
            raise

    def _close_stores(self) -> None:
        self.store.close()
        self.security.close()
        self.credentials.close()

    def _build(self, config: Config, reactor: Any, state_dir: Path) -> None:
        rr_secret = _state_secret(state_dir)
        self.signer = RecordRouteSigner(rr_secret, reactor, config.dialogs.route_lifetime)
        # Phones behind NAT: their flows ride in our Record-Route.
        self.flow_tokens = FlowTokens(Sealer(rr_secret))
        self.topology = _topology_hider(config, rr_secret)
        self.monitor = Monitor.from_config(config, reactor, self.security)
        self.toll_fraud = TollFraudGuard.from_config(config, reactor, self.security.stats)
        self.media = _media_relay(config, reactor)
        #: Users whose phones' flows died: answered 480, not 404.
        self.lost = self.lost_class()
        services = StageServices(
            clock=reactor,
            local=LocalIdentity(config.sip.domains, ()),
            trusted=tuple(config.sip.trusted),
            location=self.store,
            registrar=self.registrar,
            config=config,
            signer=self.signer,
            security=self.security,
            credentials=self.credentials,
            nonces=NonceSource.in_state_directory(
                str(state_dir), reactor, config.auth.nonce_lifetime
            ),
            monitor=self.monitor,
            toll_fraud=self.toll_fraud,
            media=self.media,
            flow_tokens=self.flow_tokens,
            lost=self.lost,
        )
        chain = build_chain(
            config.pipeline.stages,
            {name: config.pipeline.options_for(name) for name in config.pipeline.stages},
            services,
        )
        dialogs = config.dialogs
        # [accounting]: one JSON object per call, written off the reactor thread.
        self.call_writer: JsonLinesWriter | None = None
        self.call_recorder: CallRecorder | None = None
        if config.accounting.path is not None:
            self.call_writer = JsonLinesWriter(config.accounting.path, reactor)
            self.call_recorder = CallRecorder(self.call_writer, reactor, relay=self.media)
        # Every per-call timer (transactions, Timer C, dialogs) in one wheel.
        self.timer_wheel = TimerWheel(reactor)
        self.dialogs = (
            DialogTracker(
                self.timer_wheel,
                max_lifetime=dialogs.max_lifetime,
                max_dialogs=dialogs.max_dialogs,
                session_timers=dialogs.session_timers,
                max_forwards=config.sip.max_forwards,
            )
            if dialogs.track and config.sip.record_route
            else None
        )
        resolver, self._dns = _resolver(reactor)
        advertise = config.sip.advertise
        timers = config.timers
        self.core = ProxyCore(
            chain=chain,
            services=services,
            clock=self.timer_wheel,
            signer=self.signer,
            locator=ServerLocator(resolver, clock=reactor, timeout=(1, 3)),
            timers=TimerSettings(T1=timers.t1, T2=timers.t2, T4=timers.t4, timer_c=timers.timer_c),
            response_chain_timeout=timers.response_chain_timeout,
            record_route=config.sip.record_route,
            max_forwards=config.sip.max_forwards,
            advertise=(advertise.host, advertise.port) if advertise is not None else None,
            wildcard_hosts={
                family: address
                for family in (socket.AF_INET, socket.AF_INET6)
                if (address := _primary_address(family)) is not None
            },
            observers=[
                self.monitor,
                self.toll_fraud,
                *([self.call_recorder] if self.call_recorder is not None else []),
                *(s for s in chain.stages if IProxyObserver.providedBy(s)),
            ],
            dialogs=self.dialogs,
            topology=self.topology,
            flow_tokens=self.flow_tokens,
        )
        #: Pings that keep the NAT bindings of registered UDP phones open.
        self.keepalive: NatKeepalive | None = None
        if config.registrar.keepalive_interval:
            self.keepalive = NatKeepalive(
                self.store,
                reactor,
                self.core.originate,
                interval=config.registrar.keepalive_interval,
                lost=self.lost,
            )
            self.registrar.on_registered.append(self.keepalive.registered)
        if self.dialogs is not None:
            # The proxy ends a call itself (BYE to both parties) when the
            # relay ends its media or its session expires; the media of a
            # call it ends (or forgets) is released.
            self.dialogs.originate = self.core.originate
            self.dialogs.add_listener(self.toll_fraud)
            for stage in chain.stages:
                if isinstance(stage, MediaAnchorStage):
                    stage.on_media_ended = self.dialogs.media_ended
                    self.dialogs.add_listener(stage)
        self._tls_settings = tls_settings(config, str(state_dir))
        self.hep_sender: HepSender | None = None
        self.messages = MessageCounter()
        taps: list[IMessageTap] = [self.messages]
        if self.call_recorder is not None:
            taps.append(self.call_recorder)
        hep = config.hep
        if hep.destination is not None:
            self.hep_sender = HepSender(
                reactor, hep.destination.transport, hep.destination.host, hep.destination.port
            )
            taps.append(
                HepCapture(self.hep_sender, reactor, node_id=hep.node_id, password=hep.password)
            )
        limits = config.limits
        self.transports = self.transport_class(
            self._route(self.core.transactions),
            reactor,
            limits=limits.message_limits,
            idle_timeout=limits.idle_timeout,
            max_connections_per_source=limits.max_connections_per_source,
            max_connections=limits.max_connections,
            tls_client_context_factory=ClientTLSContexts(self._tls_settings),
            admission=self.security.admit,
            screen=self.security.screen,
            stream_screen=self.security.screen_stream,
            taps=taps,
        )
        self.core.transports = self.transports
        if self.keepalive is not None:
            self.transports.on_stream_lost.append(self.keepalive.flow_lost)
        self.admin_token: str | None = None
        self._admin_port: Any = None
        admin = config.admin
        if admin.listen is not None:
            token_file = admin.token_file or state_dir / TOKEN_FILE
            self.admin_token = read_or_make_token(token_file, make=admin.token_file is None)
        self.loop_lag = LoopLag(reactor)
        self.metrics_registry = service_registry(self)
        self._metrics_port: Any = None

    def setServiceParent(self, parent: Any) -> None:
        """
        Join C{parent}; on twistd's application, also give it
        L{log_observer}, which twistd then logs everything to (its own
        start-up lines included), unless another observer was set.
        """
        super().setServiceParent(parent)
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self.log_observer)

    def _listen(self) -> list[tuple[str, str, int]]:
        """Listen as C{sip.listen} says: C{(transport, host, port)} of each listener."""
        bound = []
        for listener in self.config.listeners:
            t: Any
            try:
                if listener.transport == "udp":
                    t = self.transports.listen_udp(listener.host, listener.port)
                elif listener.transport == "tcp":
                    t = self.transports.listen_tcp(listener.host, listener.port)
                else:
                    if self.server_tls is None:
                        self.server_tls = ReloadableServerContext(
                            self._tls_settings, clock=self._reactor,
                            ocsp_fetch=http_fetch(self._reactor),
                        )
                    t = self.transports.listen_tls(listener.host, listener.port, self.server_tls)
            except CannotListenError as e:
                self.transports.close()
                raise SystemExit(f"sipedge: cannot listen on {listener}: {e.socketError}") from None
            except ConfigError as e:
                self.transports.close()
                raise SystemExit(f"sipedge: {e}") from None
            bound.append((listener.transport.upper(), t.local_host, t.local_port))
            self._log.info(
                "Listening for SIP on {transport} {host} port {port}",
                transport=listener.transport.upper(),
                host=t.local_host,
                port=t.local_port,
            )
        return bound

    def privilegedStartService(self) -> None:
        bound = self._listen()
        addresses = [
            (transport, address, port)
            for transport, host, port in bound
            for address in _host_addresses(host)
        ]
        advertise = self.config.sip.advertise
        if advertise is not None:
            addresses += [(t, advertise.host, advertise.port or p) for t, _, p in bound]
        self.core.services = attrs.evolve(
            self.core.services, local=LocalIdentity(self.config.sip.domains, addresses)
        )
        self.bound = tuple(bound)
        admin = self.config.admin.listen
        if admin is not None and self.admin_token is not None:
            resource = AdminResource(self, self.admin_token, self._reactor)
            try:
                tls = admin_tls_context(self.config.admin, self._tls_settings, self._reactor,
                                        self.server_tls)
                self._admin_port = self._listen_http(admin, admin_site(resource), tls)
            except (CannotListenError, ConfigError) as e:
                self.transports.close()
                raise SystemExit(f"sipedge: cannot serve the admin API on {admin}: "
                                 f"{getattr(e, 'socketError', e)}") from None
            address = self._admin_port.getHost()
            self._log.info(
                "Serving the admin API on {scheme}://{host}:{port}/api/v1/",
                scheme="http" if tls is None else "https",
                host=f"[{address.host}]" if ":" in address.host else address.host,
                port=address.port,
            )
        metrics = self.config.metrics.listen
        if metrics is not None:
            try:
                self._metrics_port = self._listen_http(metrics, metrics_site(self.metrics_registry))
            except CannotListenError as e:
                self.transports.close()
                raise SystemExit(
                    f"sipedge: cannot serve metrics on {metrics}: {e.socketError}"
                ) from None
            address = self._metrics_port.getHost()
            self._log.info(
                "Serving Prometheus metrics on http://{host}:{port}/metrics",
                host=f"[{address.host}]" if ":" in address.host else address.host,
                port=address.port,
            )
        super().privilegedStartService()

    def _listen_http(self, listen: Any, site: Any, tls: Any = None) -> Any:
        """Serve C{site} on C{listen} (a worker: on a socket its supervisor bound)."""
        return listen_admin(self._reactor, listen, site, tls)

    def kernel_ban_ports(self) -> list[int]:
        """The ports kernel bans cover (C{[security] kernel_bans}): our SIP ports."""
        return [port for _, _, port in getattr(self, "bound", ())]

    def startService(self) -> None:
        # Everything built so far lives as long as the process: keep it out
        # of the collector's way, and collect the young generation less
        # often. Measured with benchmarks/cps.py: the default thresholds
        # cause pauses of 0.3-0.5 s under load, which cost retransmissions.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        # Per-packet and per-transition debug events only when asked for:
        # twistd's observer writes every level.
        set_tracing(self.config.log.level == "debug")
        super().startService()
        start_relay = getattr(self.media, "start", None)
        if start_relay is not None:
            start_relay()  # a RemoteMediaRelay: connect to the relay
        self.registrar.start_expiry(60.0)
        if self.keepalive is not None:
            self.keepalive.start()
        self.security.start(ports=self.kernel_ban_ports())
        self.loop_lag.start()
        if self.call_writer is not None:
            self.call_writer.start()
        if self.hep_sender is not None:
            self.hep_sender.start()
            self._log.info("HEPv3 capture to {destination} as node {node_id}",
                           destination=str(self.config.hep.destination),
                           node_id=self.config.hep.node_id)
        if self.reload_on_sighup:
            self._previous_sighup = signal.signal(signal.SIGHUP, self._sighup)
        self._log.info(
            self.started_format,
            domains=", ".join(self.config.sip.domains) or "(none)",
            state=str(self.state_dir),
        )

    def _stop_accounting(self) -> Deferred[None]:
        """Write the calls still up as ended by the shutdown, then close the file."""
        assert self.call_recorder is not None and self.call_writer is not None
        self.call_recorder.flush()
        return self.call_writer.stop()

    def reload(self, why: str = "asked") -> ReloadReport:
        """
        Read the configuration file again and apply what can change without
        a restart (see L{sipedge._reload}): users, bans, filter rules,
        routes, the pipeline, security limits and thresholds, domains, the
        TLS certificate and key (new handshakes present them; connections
        already up keep theirs).

        The outcome is logged, a refusal as an error with its reason.

        @param why: what asked for it, for the log (C{"SIGHUP"}).
        @return: what changed, and what needs a restart.
        @raise ConfigError: naming the file, the key and the problem; then
            nothing has changed.
        """
        return log_reload(lambda: reload_service(self), why)

    def reload_and_log(self) -> ReloadReport | None:
        """L{reload}, refused or not (what SIGHUP does); C{None} if refused."""
        try:
            return self.reload("SIGHUP")
        except ConfigError:
            return None

    def _sighup(self, signum: int, frame: Any) -> None:
        # A signal handler: do the work in the reactor's turn.
        self._reactor.callFromThread(self.reload_and_log)

    def stopService(self) -> Deferred[Any]:
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        self.loop_lag.stop()
        if self.server_tls is not None:
            self.server_tls.close()  # OCSP stapling's fetches
        metrics_port, self._metrics_port = self._metrics_port, None
        admin_port, self._admin_port = self._admin_port, None
        self.registrar.stop_expiry()
        if self.keepalive is not None:
            self.keepalive.stop()
        self.security.stop()
        self.core.stop()
        parse_call = getattr(self._dns, "_parseCall", None)
        if parse_call is not None and parse_call.active():
            parse_call.cancel()
        d = DeferredList(
            [
                maybeDeferred(super().stopService),
                maybeDeferred(self.transports.close),
                *([maybeDeferred(self.media.close)] if self.media is not None else []),
                *([maybeDeferred(self.hep_sender.stop)] if self.hep_sender is not None else []),
                *([maybeDeferred(metrics_port.stopListening)] if metrics_port is not None else []),
                *([maybeDeferred(admin_port.stopListening)] if admin_port is not None else []),
                *([maybeDeferred(self._stop_accounting)] if self.call_writer is not None else []),
            ],
            consumeErrors=True,
        )
        d.addBoth(lambda _: self._close_stores())
        return d


def build_service(config: Config, reactor: Any) -> SipEdgeService:
    """
    The service tree for C{config}, on C{reactor} (not started).

    @raise ConfigError: for what only shows when the parts are built (an
        unknown stage, bad stage options, a state directory we cannot use).
    """
    return SipEdgeService(config, reactor)
