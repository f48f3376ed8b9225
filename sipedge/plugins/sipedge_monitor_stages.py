"""
The behaviour monitor's stage (C{monitor}) and the C{toll-fraud} stage,
registered as plugins like any third-party stage.

Both take their settings from C{[security.monitor]} and
C{[security.toll_fraud]} (no stage options), and use the
L{sipedge.security.Monitor} of C{services.monitor} and the
L{sipedge.security.TollFraudGuard} of C{services.toll_fraud}, which the
composition root also gives the proxy core as observers. For services
without them, each stage makes its own, and says what that costs.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from sipedge.plugins.sipedge_security_stages import SecurityStageFactory, security_of

if TYPE_CHECKING:
    from sipedge.pipeline import StageServices
    from sipedge.security import MonitorConfig, TollFraudConfig

_log = Logger()


class MonitorStageFactory(SecurityStageFactory):
    """
    L{SecurityStageFactory}, under this module's name (stage factories are
    told apart by their module).
    """

    def __repr__(self) -> str:
        return f"<MonitorStageFactory {self.name}>"


# Monitors made for StageServices that carry none, one per services object.
_FALLBACK: dict[int, Any] = {}


def monitor_of(services: StageServices, config: MonitorConfig | None = None) -> Any:
    """
    C{services.monitor}; for services without one, a L{Monitor} made from
    the configuration once per services object, and a warning: it is no
    observer of the proxy core, so it sees no decision and restricts
    nobody.
    """
    monitor = services.monitor
    if monitor is not None:
        return monitor
    found = _FALLBACK.get(id(services))
    if found is not None:
        return found
    from sipedge.security import Monitor

    monitor = Monitor(config, clock=services.clock, security=security_of(services))
    _log.warn(
        "No monitor given to the stages: the monitor stage's monitor sees no decision"
        " of the proxy, so it restricts nobody",
    )
    try:
        weakref.finalize(services, _FALLBACK.pop, id(services), None)
    except TypeError:
        return monitor
    _FALLBACK[id(services)] = monitor
    return monitor


def toll_fraud_of(services: StageServices, config: TollFraudConfig | None = None) -> Any:
    """
    C{services.toll_fraud}; for services without one, a new
    L{TollFraudGuard} from the configuration (its calls are then given
    back by BYE, a failure response and the timeouts, not when a later
    stage answers the INVITE).
    """
    guard = services.toll_fraud
    if guard is not None:
        return guard
    from sipedge.security import TollFraudGuard

    security = services.security
    is_trusted = services.is_trusted
    if not services.trusted and security is not None:
        is_trusted = security.trusted.__contains__
    return TollFraudGuard(
        config,
        clock=services.clock,
        is_trusted=is_trusted,
        stats=security.stats if security is not None else None,
    )


def _monitor(
    options: dict[str, Any], section: MonitorConfig, services: StageServices, prefix: str
) -> Any:
    from sipedge.pipeline.stages import MonitorStage

    return MonitorStage(monitor_of(services, section))


def _toll_fraud(
    options: dict[str, Any], section: TollFraudConfig, services: StageServices, prefix: str
) -> Any:
    from sipedge.pipeline.stages import TollFraudStage

    return TollFraudStage(toll_fraud_of(services, section))


monitor = MonitorStageFactory(
    "monitor",
    "Drop, unanswered, what sources the behaviour monitor restricted send over their"
    " reduced budget; show the monitor every ACK, BYE and CANCEL, and every final"
    " response relayed upstream (404s and authentication failures from behind us).",
    _monitor,
    section=lambda config: config.security.monitor,
)
toll_fraud = MonitorStageFactory(
    "toll-fraud",
    "Refuse (403) calls our users relay to denied or not allowed prefixes, or over their"
    " concurrent-call or calls-per-minute limits; free a call's slot when it fails or ends.",
    _toll_fraud,
    section=lambda config: config.security.toll_fraud,
)
