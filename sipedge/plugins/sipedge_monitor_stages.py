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
from typing import Any

from twisted.logger import Logger

from sipedge.plugins.sipedge_security_stages import SecurityStageFactory, security_of

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


def monitor_of(services: Any) -> Any:
    """
    C{services.monitor}; for services without one, a L{Monitor} made from
    the configuration once per services object, and a warning: it is no
    observer of the proxy core, so it sees no decision and restricts
    nobody.
    """
    monitor = getattr(services, "monitor", None)
    if monitor is not None:
        return monitor
    found = _FALLBACK.get(id(services))
    if found is not None:
        return found
    from sipedge.security import Monitor, MonitorConfig

    section = getattr(getattr(services, "config", None), "security", None)
    config = getattr(section, "monitor", None)
    monitor = Monitor(
        config if isinstance(config, MonitorConfig) else None,
        clock=services.clock,
        security=security_of(services),
    )
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


def toll_fraud_of(services: Any) -> Any:
    """
    C{services.toll_fraud}; for services without one, a new
    L{TollFraudGuard} from the configuration (its calls are then given
    back by BYE, a failure response and the timeouts, not when a later
    stage answers the INVITE).
    """
    guard = getattr(services, "toll_fraud", None)
    if guard is not None:
        return guard
    from sipedge.security import TollFraudConfig, TollFraudGuard

    config = getattr(
        getattr(getattr(services, "config", None), "security", None), "toll_fraud", None
    )
    security = getattr(services, "security", None)
    is_trusted = getattr(services, "is_trusted", None)
    if is_trusted is None and security is not None:
        is_trusted = security.trusted.__contains__
    return TollFraudGuard(
        config if isinstance(config, TollFraudConfig) else None,
        clock=services.clock,
        is_trusted=is_trusted,
        stats=getattr(security, "stats", None),
    )


def _monitor(options: dict[str, Any], services: Any, prefix: str) -> Any:
    from sipedge.pipeline.stages import MonitorStage

    return MonitorStage(monitor_of(services))


def _toll_fraud(options: dict[str, Any], services: Any, prefix: str) -> Any:
    from sipedge.pipeline.stages import TollFraudStage

    return TollFraudStage(toll_fraud_of(services))


monitor = MonitorStageFactory(
    "monitor",
    "Drop, unanswered, what sources the behaviour monitor restricted send over their"
    " reduced budget; show the monitor every ACK, BYE and CANCEL, and every final"
    " response relayed upstream (404s and authentication failures from behind us).",
    _monitor,
)
toll_fraud = MonitorStageFactory(
    "toll-fraud",
    "Refuse (403) calls our users relay to denied or not allowed prefixes, or over their"
    " concurrent-call or calls-per-minute limits; free a call's slot when it fails or ends.",
    _toll_fraud,
)
