# -*- test-case-name: sipedge.test.test_store_lost -*-
"""
The users whose phones sipedge lost: their bindings were dropped because
the flow they were reached over died (a keepalive unanswered, a
connection gone; see L{sipedge.proxy.NatKeepalive}).

A call to such a user, while no binding is left, is answered 480
(Temporarily Unavailable: RFC 3261 21.4.18, the user is known but not
reachable now) at once, rather than the 404 of a user nobody registered
(which tells a caller nothing about who exists). Each user is remembered
until the latest of its lost bindings would have expired; a new
registration (or an unregistration) of the user forgets it.

In memory and bounded (the oldest is forgotten first): after a restart
the answer is 404 instead, which is still at once. The workers of one
service tell each other (C{sipedge.worker_service.SharedLostBindings}).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["LostBindings"]


class LostBindings:
    """
    AOR -> until when a call to it is answered 480.

    @param limit: how many AORs are remembered at most.
    """

    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._limit = limit
        self._until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def lost(self, aor: str, until: float) -> None:
        """A binding of C{aor} that would have lasted until C{until} was dropped."""
        until = max(until, self._until.pop(aor, until))
        self._until[aor] = until
        while len(self._until) > self._limit:
            self._until.popitem(last=False)

    def is_lost(self, aor: str, now: float) -> bool:
        """Whether C{aor} lost its phone and would still be registered at C{now}."""
        until = self._until.get(aor)
        if until is None:
            return False
        if until <= now:
            del self._until[aor]
            return False
        return True

    def forget(self, aor: str) -> None:
        """C{aor} registered (or unregistered) since: its 404 or its bindings tell."""
        self._until.pop(aor, None)

    def entries(self, now: float) -> list[tuple[str, float]]:
        """Every C{(aor, until)} still lost at C{now}, the oldest first."""
        return [(aor, until) for aor, until in self._until.items() if until > now]
