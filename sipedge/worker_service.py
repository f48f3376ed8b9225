# -*- test-case-name: sipedge.test.test_worker_service -*-
"""
C{twistd sipedge} with C{[process] workers} above 1: the supervisor's
service (it binds every worker's sockets, then runs the workers) and a
worker's (it serves on the sockets it inherited). See C{doc/workers.md}.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger

from sipedge._reload import tls_settings
from sipedge.admin import (
    TOKEN_FILE,
    WorkersAdminResource,
    admin_site,
    admin_tls_context,
    listen_admin,
    read_or_make_token,
)
from sipedge.config import Config
from sipedge.error import ConfigError
from sipedge.metrics import TcpListen, WorkersMetricsResource, workers_metrics_site
from sipedge.process import (
    ADMIN,
    CHANNEL,
    CHANNEL_HOST,
    METRICS,
    OWN,
    READY_MARK,
    WorkerChannel,
    WorkerHTTP,
    WorkerRouter,
    WorkerSocket,
    WorkerSpec,
    WorkerSupervisor,
    WorkerTransportManager,
    bind_group,
    bind_private,
    channel_ports,
    own_addresses,
    private_port,
)
from sipedge.security import Ban, reread_bans
from sipedge.service import SipEdgeService
from sipedge.store import LostBindings
from sipedge.transport import ReloadableServerContext, http_fetch

__all__ = [
    "NEWS_BATCH", "SharedLostBindings", "SupervisorService", "WorkerService", "news_batches",
    "own_ports", "share_security", "worker_config",
]

_log = Logger()

_PR_SET_PDEATHSIG = 1

#: Bytes of news entries (JSON) in one channel datagram at most.
NEWS_BATCH = 30_000


def news_batches(entries: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """
    C{entries} as channel payloads: each a JSON list of entries, at most
    L{NEWS_BATCH} bytes (one entry alone may be more).
    """
    batch: list[str] = []
    size = 2
    for entry in entries:
        text = json.dumps(list(entry), separators=(",", ":"))
        if batch and size + len(text) + 1 > NEWS_BATCH:
            yield ("[" + ",".join(batch) + "]").encode()
            batch, size = [], 2
        batch.append(text)
        size += len(text) + 1
    if batch:
        yield ("[" + ",".join(batch) + "]").encode()


def worker_config(config: Config, spec: WorkerSpec) -> Config:
    """
    The configuration the worker C{spec} describes runs: the admin API and
    the metrics on the private ports its supervisor bound for it (plain
    HTTP on loopback; the supervisor serves the public ones and asks the
    workers), and an advertised address keeps its host but not its port
    (each worker names its own port).
    """
    admin_port = private_port(spec.sockets, ADMIN)
    metrics_port = private_port(spec.sockets, METRICS)
    config = attrs.evolve(
        config,
        admin=attrs.evolve(
            config.admin,
            listen=None if admin_port is None else TcpListen(CHANNEL_HOST, admin_port),
            tls=False, certificate=None, private_key=None,
        ),
        metrics=attrs.evolve(
            config.metrics,
            listen=None if metrics_port is None else TcpListen(CHANNEL_HOST, metrics_port),
        ),
    )
    advertise = config.sip.advertise
    if advertise is not None and advertise.port is not None:
        config = attrs.evolve(
            config, sip=attrs.evolve(config.sip, advertise=attrs.evolve(advertise, port=None))
        )
    return config


def share_security(security: Any, router: WorkerRouter) -> None:
    """
    What the L{sipedge.security.Security} of one worker learns, the others
    learn at once over the channel: a source that authenticated here joins
    their allow-lists (its other source ports reach other workers), and a
    ban made here makes them read the shared ban file again now, not at
    their next purge (the banned source's other ports reach them too). A
    worker that (re)starts is told every source the others know to have
    authenticated (its C{hello}).
    """

    def authenticated(source: str, user: str, expires_at: float) -> None:
        for payload in news_batches([(source, user, expires_at)]):
            router.tell_others("authenticated", payload)

    def banned(ban: Ban) -> None:
        router.tell_others("banned", ban.source.encode())

    def heard_authenticated(sender: int, payload: bytes) -> None:
        try:
            for source, user, expires_at in json.loads(payload):
                security.allow.note_authenticated(str(source), str(user), float(expires_at))
        except (TypeError, ValueError) as e:
            _log.warn("Worker {sender} said a source authenticated, not understood: {error}",
                      sender=sender, error=str(e))

    def heard_banned(sender: int, payload: bytes) -> None:
        reread_bans(security)

    def greet(index: int) -> None:
        # Those noted here and those heard of: a worker started after
        # another heard of a source tells it too (each note is idempotent).
        for payload in news_batches(security.allow.entries(security.clock.seconds())):
            router.tell(index, "authenticated", payload)

    security.on_authenticated = authenticated
    security.on_ban = banned
    router.listeners["authenticated"] = heard_authenticated
    router.listeners["banned"] = heard_banned
    router.greeters.append(greet)


class SharedLostBindings(LostBindings):
    """
    The users whose phones were lost (L{LostBindings}), told to the other
    workers: a phone's connection dies at the worker holding it, and a call
    to its user reaching another worker is answered 480 there too, not 404.
    """

    #: Tells the other workers (kind, payload), once the channel is set.
    router: WorkerRouter | None = None
    #: What says the time (the worker's reactor), once the channel is set.
    clock: Any = None

    def lost(self, aor: str, until: float) -> None:
        super().lost(aor, until)
        if self.router is not None:
            for payload in news_batches([(aor, until)]):
                self.router.tell_others("lost", payload)

    def forget(self, aor: str) -> None:
        known = self.is_lost(aor, -math.inf)
        super().forget(aor)
        if known and self.router is not None:  # the others heard of it too
            self.router.tell_others("found", aor.encode())

    def listen(self, router: WorkerRouter, clock: Any) -> None:
        """
        Tell the others through C{router}, and act on what they tell; a
        worker that (re)starts is told every user still lost.
        """
        self.router = router
        self.clock = clock
        router.listeners["lost"] = self._heard_lost
        router.listeners["found"] = self._heard_found
        router.greeters.append(self._greet)

    def _greet(self, index: int) -> None:
        assert self.router is not None
        for payload in news_batches(self.entries(self.clock.seconds())):
            self.router.tell(index, "lost", payload)

    def _heard_lost(self, sender: int, payload: bytes) -> None:
        try:
            for aor, until in json.loads(payload):
                LostBindings.lost(self, str(aor), float(until))
        except (TypeError, ValueError) as e:
            _log.warn("Worker {sender} said a phone was lost, not understood: {error}",
                      sender=sender, error=str(e))

    def _heard_found(self, sender: int, payload: bytes) -> None:
        LostBindings.forget(self, payload.decode("utf-8", "replace"))


def own_ports(spec: WorkerSpec) -> list[int]:
    """Every worker's own SIP ports (each worker makes the kernel's one table for them all)."""
    return sorted({port for sockets in spec.own for _, _, port in sockets})


def _die_with_parent() -> None:
    """Ask Linux to send us SIGTERM when the supervisor ends (best effort)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class WorkerService(SipEdgeService):
    """
    One worker: the whole proxy, listening on the sockets its supervisor
    bound (L{WorkerSpec}); its own sockets come first, so that its Via and
    Record-Route name them. Between its transports and its transaction
    layer stands a L{WorkerRouter}, which hands other workers what is
    theirs over the channel socket the supervisor gave it.
    """

    _log = Logger()
    transport_class = WorkerTransportManager
    lost_class = SharedLostBindings

    def __init__(self, config: Config, reactor: Any, spec: WorkerSpec) -> None:
        self.spec = spec
        self.router: WorkerRouter | None = None
        self._channel_port: Any = None
        super().__init__(worker_config(config, spec), reactor)
        assert self.router is not None
        self.router.transports = self.transports
        self.transports.router = self.router
        share_security(self.security, self.router)
        assert isinstance(self.lost, SharedLostBindings)
        self.lost.listen(self.router, self._reactor)
        self.started_format = (
            f"{READY_MARK} {spec.index} of {spec.count}"
            " (domains {domains}, state in {state})"
        )

    def _route(self, receiver: Any) -> WorkerRouter:
        self.router = WorkerRouter(
            receiver,
            self.spec,
            self.config.message_limits,
            clock=self._reactor,
            matches=lambda request: receiver.server_transaction_for(request) is not None,
        )
        return self.router

    def _listen_channel(self, s: WorkerSocket) -> None:
        assert self.router is not None
        channel = WorkerChannel(self.spec.index, self.spec.channels, self.router.deliver)
        self._channel_port = self._reactor.adoptDatagramPort(s.fd, socket.AF_INET, channel)
        self.router.channel = channel
        self.router.hello()

    def kernel_ban_ports(self) -> list[int]:
        """
        Our SIP ports and every other worker's own ports: the kernel's
        table is one for the host, and each worker makes it again as it
        starts (the last one's ports would be all it covered).
        """
        return sorted({*super().kernel_ban_ports(), *own_ports(self.spec)})

    def stopService(self) -> Deferred[Any]:
        port, self._channel_port = self._channel_port, None
        if self.router is not None:
            self.router.stop()
        d = super().stopService()
        if port is not None:
            d.addBoth(lambda result: maybeDeferred(port.stopListening).addBoth(lambda _: result))
        return d

    def _listen_http(self, listen: Any, site: Any, tls: Any = None) -> Any:
        """The admin API or the metrics, on the private socket the supervisor bound."""
        for s in self.spec.sockets:
            if s.role in (ADMIN, METRICS) and (s.host, s.port) == (listen.host, listen.port):
                return self._reactor.adoptStreamPort(s.fd, socket.AF_INET, site)
        return super()._listen_http(listen, site, tls)

    def _listen_one(self, s: WorkerSocket) -> Any:
        if s.transport == "UDP":
            return self.transports.listen_udp(s.host, s.port, fd=s.fd)
        if s.transport == "TCP":
            return self.transports.listen_tcp(s.host, s.port, fd=s.fd)
        if self.server_tls is None:
            self.server_tls = ReloadableServerContext(
                self._tls_settings, clock=self._reactor, ocsp_fetch=http_fetch(self._reactor)
            )
        return self.transports.listen_tls(s.host, s.port, self.server_tls, fd=s.fd)

    def _listen(self) -> list[tuple[str, str, int]]:
        _die_with_parent()
        bound = []
        for s in sorted(self.spec.sockets, key=lambda s: s.role != OWN):
            try:
                if s.role == CHANNEL:
                    self._listen_channel(s)
                    continue
                if s.role in (ADMIN, METRICS):
                    continue  # served as HTTP (_listen_http)
                t = self._listen_one(s)
            except (CannotListenError, OSError) as e:
                self.transports.close()
                raise SystemExit(f"sipedge: worker {self.spec.index}: cannot listen on"
                                 f" {s.transport} fd {s.fd}: {e}") from None
            except ConfigError as e:
                self.transports.close()
                raise SystemExit(f"sipedge: {e}") from None
            bound.append((s.transport, t.local_host, t.local_port))
            if s.role == OWN:
                self._log.info(
                    "Worker {index}'s own {transport} socket: {host} {port}"
                    " (in its Via and Record-Route)",
                    index=self.spec.index, transport=s.transport, host=t.local_host,
                    port=t.local_port,
                )
            else:
                self._log.info(
                    "Listening for SIP on {transport} {host} port {port} (worker {index})",
                    transport=s.transport, host=t.local_host, port=t.local_port,
                    index=self.spec.index,
                )
        return bound


class SupervisorService(Service):
    """
    C{twistd sipedge} running C{count} workers: binds their sockets in
    L{privilegedStartService} (so ports below 1024 work before twistd drops
    privileges), starts them, starts again any that ends, passes SIGHUP on
    to them (each reloads), and stops them when it stops.

    @ivar supervisor: the L{WorkerSupervisor}, once listening.
    """

    _log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any,
        count: int,
        command: Callable[[WorkerSpec], Sequence[str]],
    ) -> None:
        """
        @param command: the command line of the worker a spec describes.
        """
        self.config = config
        self._reactor = reactor
        self.count = count
        self._command = command
        self.log_observer: ILogObserver | None = None
        self.reload_on_sighup = False
        self._previous_sighup: Any = None
        self._sockets: list[Any] = []
        self.specs: tuple[WorkerSpec, ...] = ()
        self.supervisor: WorkerSupervisor | None = None
        self._http_ports: list[Any] = []
        self._admin_tls: ReloadableServerContext | None = None
        #: The admin API's bearer token (the workers read the same file).
        self.admin_token: str | None = None
        admin = config.admin
        if admin.listen is not None:
            state_dir = Path(config.state.path)
            try:
                state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as e:
                raise ConfigError(f"state.path: cannot create {state_dir}: {e.strerror}") from None
            self.admin_token = read_or_make_token(admin.token_file or state_dir / TOKEN_FILE,
                                                  make=admin.token_file is None)

    def setServiceParent(self, parent: Any) -> None:
        """As L{SipEdgeService.setServiceParent}: hand twistd our log observer."""
        super().setServiceParent(parent)
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self.log_observer)

    def privilegedStartService(self) -> None:
        listeners = [(lst.transport.upper(), lst.host, lst.port) for lst in self.config.listeners]
        try:
            per_worker, self._sockets = bind_group(listeners, self.count)
        except OSError as e:
            raise SystemExit(f"sipedge: cannot listen on {e.strerror}") from None
        own = own_addresses(per_worker)
        channels = channel_ports(per_worker)
        private: dict[str, list[WorkerSocket]] = {}
        for role, listen in ((ADMIN, self.config.admin.listen),
                             (METRICS, self.config.metrics.listen)):
            if listen is not None:
                try:
                    private[role], opened = bind_private(role, self.count)
                except OSError as e:
                    self._close_sockets()
                    raise SystemExit(f"sipedge: cannot listen on {CHANNEL_HOST} for the"
                                     f" workers' {role}: {e.strerror}") from None
                self._sockets += opened
        self.specs = tuple(
            WorkerSpec(index, self.count,
                       (*sockets, *(mine[index] for mine in private.values())), own, channels)
            for index, sockets in enumerate(per_worker)
        )
        for s in per_worker[0]:
            if s.role not in (OWN, CHANNEL):
                self._log.info(
                    "Listening for SIP on {transport} {host} port {port} ({count} workers)",
                    transport=s.transport, host=s.host, port=s.port, count=self.count,
                )
        self.supervisor = WorkerSupervisor(
            self._reactor,
            self.count,
            lambda index: self._command(self.specs[index]),
            child_fds=lambda index: {s.fd: s.fd for s in self.specs[index].sockets},
            env=os.environ,
            on_ready=self._ready,
        )
        self._serve_admin(private.get(ADMIN, []))
        self._serve_metrics(private.get(METRICS, []))
        super().privilegedStartService()

    def _serving(self) -> list[int]:
        return [] if self.supervisor is None else self.supervisor.serving

    def _serve_admin(self, private: list[WorkerSocket]) -> None:
        """The public admin API, asking the workers on their C{private} sockets."""
        listen = self.config.admin.listen
        if listen is None or self.admin_token is None:
            return
        http = WorkerHTTP(self._reactor, {index: s.port for index, s in enumerate(private)})
        resource = WorkersAdminResource(
            self.admin_token, self._reactor, http.request, self._serving, self.count,
            shared_relay=self.config.media.relay is not None,
        )
        try:
            settings = tls_settings(self.config, str(Path(self.config.state.path)))
            self._admin_tls = admin_tls_context(self.config.admin, settings, self._reactor)
            port = listen_admin(self._reactor, listen, admin_site(resource), self._admin_tls)
        except (CannotListenError, ConfigError) as e:
            self._close_sockets()
            raise SystemExit(f"sipedge: cannot serve the admin API on {listen}: "
                             f"{getattr(e, 'socketError', e)}") from None
        self._http_ports.append(port)
        address: Any = port.getHost()
        self._log.info(
            "Serving the admin API on {scheme}://{host}:{port}/api/v1/ ({count} workers)",
            scheme="http" if self._admin_tls is None else "https",
            host=f"[{address.host}]" if ":" in address.host else address.host,
            port=address.port, count=self.count,
        )

    def _serve_metrics(self, private: list[WorkerSocket]) -> None:
        """The public C{/metrics}, scraping the workers on their C{private} sockets."""
        listen = self.config.metrics.listen
        if listen is None:
            return
        http = WorkerHTTP(self._reactor, {index: s.port for index, s in enumerate(private)})

        def scrape(index: int) -> Deferred[str]:
            def text(answer: Any) -> str:
                if answer.status != 200:
                    raise ValueError(f"HTTP status {answer.status}")
                return str(answer.body.decode("utf-8"))

            return http.request(index, "GET", "/metrics").addCallback(text)

        resource = WorkersMetricsResource(
            scrape, self._serving,
            lambda: [] if self.supervisor is None else self.supervisor.started,
        )
        try:
            port = listen_admin(self._reactor, listen, workers_metrics_site(resource))
        except CannotListenError as e:
            self._close_sockets()
            raise SystemExit(f"sipedge: cannot serve metrics on {listen}: {e.socketError}"
                             ) from None
        self._http_ports.append(port)
        address: Any = port.getHost()
        self._log.info(
            "Serving Prometheus metrics on http://{host}:{port}/metrics ({count} workers)",
            host=f"[{address.host}]" if ":" in address.host else address.host,
            port=address.port, count=self.count,
        )

    def _close_sockets(self) -> None:
        for port in self._http_ports:
            port.stopListening()
        self._http_ports = []
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def _ready(self) -> None:
        self._log.info(
            "sipedge started: {count} workers, domains {domains}, state in {state}",
            count=self.count,
            domains=", ".join(self.config.sip.domains) or "(none)",
            state=str(self.config.state.path),
        )

    def startService(self) -> None:
        super().startService()
        assert self.supervisor is not None
        self.supervisor.startService()
        if self.reload_on_sighup:
            self._previous_sighup = signal.signal(signal.SIGHUP, self._sighup)

    def _sighup(self, signum: int, frame: Any) -> None:
        self._reactor.callFromThread(self._reload)

    def _reload(self) -> None:
        self._log.info("Reloading (SIGHUP): passing it on to every worker")
        if self.supervisor is not None:
            self.supervisor.signal_all("HUP")
        if self._admin_tls is not None:
            try:
                self._admin_tls.reload()
            except ConfigError as e:
                self._log.error("The admin API keeps its certificate: {error}", error=str(e))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        assert self.supervisor is not None
        ports, self._http_ports = self._http_ports, []
        d = DeferredList(
            [self.supervisor.stopService(), *(maybeDeferred(p.stopListening) for p in ports)],
            consumeErrors=True,
        )

        def close(result: object) -> None:
            self._close_sockets()

        return d.addBoth(close)
