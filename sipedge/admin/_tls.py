# -*- test-case-name: sipedge.test.test_admin_tls -*-
"""
TLS for the admin API (C{[admin] tls = true}, or C{[admin] certificate} and
C{private_key}): the site wrapped in TLS with the C{[tls] profile}'s
versions and ciphers, on sipedge's own certificate or a pair of its own.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site

from sipedge.admin._config import AdminConfig
from sipedge.error import ConfigError
from sipedge.metrics import TcpListen
from sipedge.transport import ReloadableServerContext, TLSSettings

__all__ = ["admin_tls_context", "listen_admin"]


def admin_tls_context(
    admin: AdminConfig,
    settings: TLSSettings,
    clock: IReactorTime,
    shared: ReloadableServerContext | None = None,
) -> ReloadableServerContext | None:
    """
    The admin API's TLS server context, or C{None} for plain HTTP.

    With C{tls = true} alone it is sipedge's: C{shared} (the SIP TLS
    listeners', which SIGHUP reloads) if there is one, else one made from
    C{settings} (C{[tls]} certificate and key, or the self-signed one in
    the state directory). With C{certificate} and C{private_key}, those,
    under C{settings}' profile and ciphers. No client certificates: the
    bearer token authenticates.

    @raise sipedge.error.ConfigError: for a certificate or key that cannot
        be used.
    """
    if not admin.secure:
        return None
    if admin.certificate is None:
        if shared is not None and shared.settings.client_certificates == "none":
            return shared
        return ReloadableServerContext(
            attrs.evolve(settings, client_certificates="none", client_ca=None), clock=clock
        )
    own = attrs.evolve(
        settings,
        certificate=str(admin.certificate),
        private_key=str(admin.private_key),
        client_certificates="none",
        client_ca=None,
    )
    try:
        return ReloadableServerContext(own, clock=clock)
    except ConfigError as e:  # it names tls.certificate or tls.private_key
        raise ConfigError(str(e).replace("tls.", "admin.", 1)) from None


def listen_admin(
    reactor: IReactorTCP, listen: TcpListen, site: Site, tls: Any = None
) -> IListeningPort:
    """
    Serve C{site} on C{listen}, in TLS if C{tls} (a server connection
    creator) is given.

    @raise twisted.internet.error.CannotListenError: if the port is taken.
    """
    factory: Any = site if tls is None else TLSMemoryBIOFactory(tls, False, site)
    return reactor.listenTCP(listen.port, factory, interface=listen.host)
