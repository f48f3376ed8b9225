# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
What stages may use: the shared services of one running proxy.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

import attrs

from sipedge.pipeline._local import LocalIdentity

if TYPE_CHECKING:
    from sipedge.config import Config

__all__ = ["StageServices"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class StageServices:
    """
    @ivar clock: an C{IReactorTime}.
    @ivar local: who we are: our domains and addresses.
    @ivar trusted: networks allowed to relay through us.
    @ivar location: the L{ILocationStore}.
    @ivar registrar: the registrar (C{sipedge.proxy.Registrar}) or C{None}.
    @ivar config: the whole L{sipedge.config.Config}, or C{None} for
        services made without one (in tests); each built-in stage factory
        hands its stage only its own typed section of it (L{settings}).
    @ivar signer: the L{sipedge.proxy.RecordRouteSigner} that signs and
        checks our Record-Route values.
    @ivar security: the L{sipedge.security.Security} service (rate limits,
        allow-list of authenticated sources, bans), or C{None}.
    @ivar credentials: the credential store (L{sipedge.auth.ICredentialStore}).
    @ivar nonces: the nonce source (L{sipedge.auth.INonceSource}).
    @ivar monitor: the behaviour monitor (L{sipedge.security.Monitor}).
    @ivar toll_fraud: the toll-fraud guard (L{sipedge.security.TollFraudGuard}).
    @ivar media: the media relay (L{sipedge.media.MediaRelay}), or C{None}.
    @ivar flow_tokens: the L{sipedge.proxy.FlowTokens} that open the flow
        tokens of our Record-Route (parties behind NAT), or C{None}.
    @ivar lost: the L{sipedge.store.LostBindings}: users whose bindings
        were dropped because their flow died (answered 480, not 404), or
        C{None}.
    """

    clock: Any
    local: LocalIdentity
    trusted: tuple[Network, ...] = ()
    location: Any = None
    registrar: Any = None
    config: Config | None = None
    signer: Any = None
    security: Any = None
    credentials: Any = None
    nonces: Any = None
    monitor: Any = None
    toll_fraud: Any = None
    media: Any = None
    flow_tokens: Any = None
    lost: Any = None

    @property
    def settings(self) -> Config:
        """C{config}, or the built-in defaults if there is none."""
        if self.config is not None:
            return self.config
        from sipedge.config import DEFAULT_CONFIG

        return DEFAULT_CONFIG

    def is_trusted(self, host: str) -> bool:
        """True if C{host} (an IP literal) is in a trusted network."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.trusted)
