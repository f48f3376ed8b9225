# -*- test-case-name: sipedge.test.test_proxy_fork -*-
"""
The response context of one forwarded request (RFC 3261 16.6-16.7): its
branches, the q-value groups still to try (serial forking), and the choice
of the best final response.
"""

from __future__ import annotations

from typing import Any

import attrs

from sipedge.message import Request, Response
from sipedge.pipeline import Target

__all__ = ["Branch", "Fork", "best_response", "group_by_q"]

# 16.7 step 6: among 4xx, responses that tell the client how to resubmit
# are preferred.
_PREFERRED_4XX = (401, 407, 415, 420, 484)


@attrs.define(eq=False)
class Branch:
    """One target of a fork and its client transaction."""

    index: int
    target: Target
    request: Request | None = None
    transaction: Any = None
    destinations: list[Any] = attrs.Factory(list)
    provisional: bool = False
    final: Response | None = None
    cancel_pending: bool = False
    done: bool = False
    #: True once the branch is to be cancelled (CANCEL sent or pending): it
    #: is never failed over to another destination then.
    cancelled: bool = False
    #: RFC 3261 9.1: how long we wait for a final response after our CANCEL.
    cancel_timer: Any = None
    #: The request as sent to the current destination (our Via and
    #: Record-Route on), before topology hiding.
    sent: Request | None = None
    #: RFC 3261 18.1.1: the next hop's transport was ours to choose (found
    #: by DNS, no C{transport} parameter), so a request too large for UDP
    #: may go over TCP to the same address.
    may_use_tcp: bool = False
    #: The UDP flow a request too large for it was moved from: used after
    #: all if no TCP connection can be made (18.1.1).
    udp_fallback: Any = None
    #: What the dialog tracker needs to track another dialog a 2xx on this
    #: branch may bring once the fork is let go of (a L{DialogSeed}).
    seed: Any = None


@attrs.define(eq=False)
class Fork:
    """
    @ivar server: the server transaction of the request we forward.
    @ivar request: the request after the pipeline (what each branch copies).
    @ivar original: the request as received (for loop-detection branches).
    @ivar groups: target groups not tried yet, highest q first.
    @ivar context: the request's RequestContext, for the response chain.
    @ivar responses: the L{ResponseQueue} of responses waiting for the
        response chain; C{None} until a response stage answers with a
        Deferred.
    @ivar finished: the fork has its final response (Timer C stopped); it
        is forgotten once no response of it waits in the response chain.
    """

    server: Any
    request: Request
    original: Request
    digest: str
    incoming: Any
    groups: list[list[Target]]
    branches: list[Branch] = attrs.Factory(list)
    context: Any = None
    final_sent: bool = False
    cancelled: bool = False
    timer_c: Any = None
    next_index: int = 0
    responses: Any = None
    finished: bool = False

    def pending(self) -> list[Branch]:
        """Branches with no final response yet."""
        return [b for b in self.branches if not b.done]

    def finals(self) -> list[Response]:
        return [b.final for b in self.branches if b.final is not None]


def group_by_q(targets: tuple[Target, ...]) -> list[list[Target]]:
    """Targets in groups of equal q, highest q first (RFC 3261 16.6)."""
    groups: dict[float, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.q, []).append(target)
    return [groups[q] for q in sorted(groups, reverse=True)]


def best_response(responses: list[Response]) -> Response:
    """
    Choose the final response to send upstream (RFC 3261 16.7 step 6): a
    6xx if any; else the lowest class, preferring 401, 407, 415, 420 and 484
    among 4xx. A 401 or 407 carries the challenges of every 401 and 407
    received (16.7 step 7), and a chosen 503 becomes a 500.
    """
    if not responses:
        raise ValueError("no responses to choose from")
    six = [r for r in responses if r.status >= 600]
    if six:
        return six[0]
    lowest = min(r.status // 100 for r in responses)
    candidates = [r for r in responses if r.status // 100 == lowest]
    chosen = candidates[0]
    if lowest == 4:
        for code in _PREFERRED_4XX:
            preferred = [r for r in candidates if r.status == code]
            if preferred:
                chosen = preferred[0]
                break
    if chosen.status in (401, 407):
        headers = chosen.headers
        for other in responses:
            if other is chosen or other.status not in (401, 407):
                continue
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                for value in other.headers.get_all(name):
                    headers = headers.added(name, value)
        chosen = chosen.with_headers(headers)
    if chosen.status == 503:
        chosen = attrs.evolve(chosen, status=500, reason="Server Internal Error")
    return chosen
