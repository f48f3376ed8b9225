# -*- test-case-name: sipedge.test.test_testing_agents -*-
"""
A whole C{twistd sipedge} service in memory, in one call: L{edge_in_memory}
builds it from a configuration's TOML text (what a user writes in
C{sipedge.toml}) on a L{FakeReactor}, with a L{FakeResolver} for DNS,
starts it, and gives back a L{LabEdge} that knows its ports and users and
stops it cleanly.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sipedge.config import Config, parse_config
from sipedge.service import SipEdgeService, build_service
from sipedge.testing._dns import FakeResolver
from sipedge.testing._reactor import FakeReactor
from sipedge.transport import ServerLocator

__all__ = ["LabEdge", "edge_in_memory"]


class LabEdge:
    """
    A started sipedge service on a L{FakeReactor}.

    @ivar service: the L{SipEdgeService}.
    @ivar reactor: its L{FakeReactor} (its clock and its network).
    @ivar resolver: the L{FakeResolver} its proxy resolves with.
    @ivar ports: C{{"UDP": (host, port), ...}}, where it listens.
    """

    def __init__(self, service: SipEdgeService, reactor: FakeReactor, resolver: FakeResolver):
        self.service = service
        self.reactor = reactor
        self.resolver = resolver
        self.ports = {t: (host, port) for t, host, port in service.bound}
        self._stopped = False

    @property
    def config(self) -> Config:
        return self.service.config

    @property
    def udp(self) -> tuple[str, int]:
        """Where it listens for SIP over UDP."""
        return self.ports["UDP"]

    def add_user(self, user: str, password: str) -> None:
        """Add C{user} to its credential store (as C{sipedge user add} does)."""
        realm = self.config.auth.realm_for(self.config.sip.domains)
        self.service.credentials.add(user, realm, password)

    def stop(self) -> None:
        """Stop the service and let what it scheduled run out (call in a cleanup)."""
        if self._stopped:
            return
        self._stopped = True
        self.service.stopService()
        self.reactor.flush()


def edge_in_memory(
    config_text: str,
    state_dir: str | Path,
    *,
    reactor: FakeReactor | None = None,
    resolver: FakeResolver | None = None,
) -> LabEdge:
    """
    The C{twistd sipedge} service of C{config_text} (TOML, as in
    C{sipedge.toml}; C{[state] path} is set to C{state_dir}), built on
    C{reactor} (a new L{FakeReactor} by default) and started: it listens
    on the fake network. DNS queries go to C{resolver} (a new, empty
    L{FakeResolver} by default). Call L{LabEdge.stop} when done.

    @raise sipedge.error.ConfigError: as C{twistd sipedge} would refuse it.
    """
    data = tomllib.loads(config_text)
    data.setdefault("state", {})["path"] = str(state_dir)
    config = parse_config(data, "<lab>")
    reactor = reactor if reactor is not None else FakeReactor()
    resolver = resolver if resolver is not None else FakeResolver(clock=reactor)
    service = build_service(config, reactor)
    service.core.locator = ServerLocator(resolver, clock=reactor, timeout=(1, 3))
    service.privilegedStartService()
    _start(service)
    return LabEdge(service, reactor, resolver)


def _start(service: Any) -> None:
    """C{startService} without the process-wide garbage collector tuning."""
    import gc

    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    service.startService()
    if gc.get_freeze_count() != frozen:
        gc.unfreeze()
    gc.set_threshold(*thresholds)
