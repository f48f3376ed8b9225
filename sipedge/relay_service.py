# -*- test-case-name: sipedge.test.test_relay_tap -*-
"""
The composition root of C{twistd sipedge-relay}: from a L{Config} (its
C{[media]} and C{[relay]} sections) and a reactor to the running relay, a
L{MediaRelay} served over the control protocol (C{doc/relay-protocol.md}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError

from sipedge._log import NamedLogger
from sipedge.config import Config
from sipedge.error import ConfigError
from sipedge.media import ControlServerFactory

__all__ = ["RelayService", "build_relay_service"]


class RelayService(Service):
    """
    The media relay as a service of its own: the relay's ports are bound
    per call, the control port when the service starts (in
    C{privilegedStartService}, so a port below 1024 can be bound before
    twistd drops privileges); a port that cannot be bound stops start-up
    with one message naming it.

    @ivar relay: the L{sipedge.media.MediaRelay}.
    @ivar factory: the control protocol's L{ControlServerFactory}.
    @ivar control_port: the listening port, once started.
    """

    _log = NamedLogger(namespace="sipedge.relay")

    def __init__(self, config: Config, reactor: Any, secret: bytes) -> None:
        self.config = config
        self._reactor = reactor
        self.relay = config.media.build_relay(reactor)
        relay = config.relay
        self.factory = ControlServerFactory(
            self.relay,
            secret,
            reactor,
            max_line=relay.max_line,
            max_pending=relay.max_pending,
            auth_timeout=relay.auth_timeout,
        )
        self.control_port: Any = None

    def privilegedStartService(self) -> None:
        control = self.config.relay.control
        factory: Any = self.factory
        if control.secure:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            try:
                options = self.config.relay.server_tls_options()
            except ConfigError as e:
                raise SystemExit(f"sipedge-relay: {e}") from None
            factory = TLSMemoryBIOFactory(options, False, self.factory, clock=self._reactor)
        try:
            self.control_port = self._reactor.listenTCP(
                control.port, factory, interface=control.host
            )
        except CannotListenError as e:
            raise SystemExit(
                f"sipedge-relay: cannot listen on relay.control {control}: {e.socketError}"
            ) from None
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        if self.control_port is None:  # started without privilegedStartService
            self.privilegedStartService()
        control = self.config.relay.control
        host = self.control_port.getHost()
        shown_host = f"[{host.host}]" if ":" in host.host else host.host
        bound = f"{control.transport}:{shown_host}"
        media = self.config.media
        interfaces = ", ".join(
            f"{name} {bound_at}" + (f" (SDP {shown})" if shown != bound_at else "")
            for name, (bound_at, shown) in media.interfaces.items()
        )
        if not control.is_loopback and not control.secure:
            self._log.warn(
                "The relay's control port {control} is reachable from the network without "
                "TLS: keep it on a private network or behind a firewall, or use tls:",
                control=str(control),
            )
        self._log.info(
            "sipedge-relay started: control on {control}, media ports {low}-{high} on {interfaces}",
            control=f"{bound}:{host.port}",
            control_host=host.host,
            control_port=host.port,
            low=media.ports[0],
            high=media.ports[1],
            interfaces=interfaces,
        )

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        port, self.control_port = self.control_port, None
        return DeferredList(
            [
                *([maybeDeferred(port.stopListening)] if port is not None else []),
                maybeDeferred(self.relay.close),
            ],
            consumeErrors=True,
        )


def build_relay_service(config: Config, reactor: Any, secret: bytes) -> RelayService:
    """The relay service for C{config} on C{reactor} (not started)."""
    return RelayService(config, reactor, secret)
