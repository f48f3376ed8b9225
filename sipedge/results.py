# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
What a request stage decides, as small frozen values (cf. repro's
C{processor_action_t} and h11's events).

C{Continue()} hands the request to the next stage; C{Respond}, C{Forward}
and C{Drop} end the chain.

A leaf module (as L{sipedge.error} and L{sipedge.flow} are): the pipeline
exports these values (C{sipedge.pipeline.Forward}, ...) to stage authors,
the proxy core acts on them, and the observers below the pipeline (the
behaviour monitor and the toll-fraud guard in L{sipedge.security}) read
them, without any of those layers importing another upwards.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from sipedge.flow import Flow

__all__ = ["Continue", "Drop", "Forward", "Respond", "StageResult", "Target"]


@attrs.frozen
class Continue:
    """Go on with the next stage."""


@attrs.frozen
class Respond:
    """
    Answer the request ourselves.

    @ivar status: the status code (200-699; 1xx is sent by the proxy itself).
    @ivar reason: the reason phrase; C{None} for the standard one.
    @ivar headers: extra header fields, as C{(name, value)} pairs.
    """

    status: int = attrs.field(validator=attrs.validators.in_(range(200, 700)))
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@attrs.frozen
class Target:
    """
    Where to forward a request (RFC 3261 16.5).

    @ivar uri: the target URI: the forwarded request's Request-URI.
    @ivar flow: a known flow to send on (a registered phone's connection or
        NAT binding), bypassing DNS; C{None} to locate the next hop.
    @ivar q: the preference; targets of the same q are tried in parallel,
        higher q first (RFC 3261 16.6, serial then parallel forking).
    @ivar route: Route values to put on top of the request for this target
        (a binding's Path, RFC 3327, or a static route's next hop).
    @ivar flow_failed: if set, the target is reached only over C{flow} (a
        phone behind NAT, or one that asked for RFC 5626 outbound): when
        that connection is gone, the branch fails at once with this status
        (430 Flow Failed or 480) instead of sending to the URI's address.
    """

    uri: str
    flow: Flow | None = None
    q: float = 1.0
    route: tuple[str, ...] = ()
    flow_failed: int | None = None


def _targets(targets: Iterable[Target]) -> tuple[Target, ...]:
    return tuple(targets)


@attrs.frozen
class Forward:
    """Forward the request to these targets (RFC 3261 16.6)."""

    targets: tuple[Target, ...] = attrs.field(converter=_targets)

    @targets.validator
    def _not_empty(self, attribute: attrs.Attribute, value: tuple[Target, ...]) -> None:
        if not value:
            raise ValueError("Forward needs at least one target")


@attrs.frozen
class Drop:
    """Drop the request without an answer; C{reason} is logged."""

    reason: str


StageResult = Continue | Respond | Forward | Drop
