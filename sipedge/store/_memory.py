# -*- test-case-name: sipedge.test.test_store -*-
"""
The location service in memory: for tests, and the reference the other
stores are checked against.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet import defer
from twisted.internet.defer import Deferred
from zope.interface import implementer

from sipedge.interfaces import ILocationStore
from sipedge.store._binding import Binding, binding_order, same_binding

__all__ = ["MemoryLocationStore", "apply_update"]


def apply_update(
    current: Iterable[Binding], bindings: Iterable[Binding], now: float
) -> list[Binding]:
    """
    The bindings of one AOR after a REGISTER: each of C{bindings}, in
    order, first removes every current binding it updates (L{same_binding})
    and is then added unless it expired at C{now} (expires 0 removes).
    Every store applies updates with this function.
    """
    result = list(current)
    for new in bindings:
        result = [old for old in result if not same_binding(old, new)]
        if not new.is_expired(now):
            result.append(new)
    return result


def _alive(bindings: Iterable[Binding], now: float) -> list[Binding]:
    return sorted((b for b in bindings if not b.is_expired(now)), key=binding_order)


@implementer(ILocationStore)
class MemoryLocationStore:
    """An L{ILocationStore} in a dict; lost when the process ends."""

    def __init__(self) -> None:
        self._bindings: dict[str, list[Binding]] = {}

    def update(self, aor: str, bindings: Iterable[Binding], now: float) -> Deferred[list[Binding]]:
        """
        Apply the bindings of one REGISTER to C{aor} (see L{apply_update});
        fire with the unexpired bindings, highest q first.
        """
        bindings = list(bindings)
        for binding in bindings:
            if binding.aor != aor:
                return defer.fail(ValueError(f"binding for {binding.aor!r}, not {aor!r}"))
        result = apply_update(self._bindings.get(aor, ()), bindings, now)
        if result:
            self._bindings[aor] = result
        else:
            self._bindings.pop(aor, None)
        return defer.succeed(_alive(result, now))

    def remove_all(self, aor: str) -> Deferred[None]:
        """Remove every binding of C{aor}."""
        self._bindings.pop(aor, None)
        return defer.succeed(None)

    def lookup(self, aor: str, now: float) -> Deferred[list[Binding]]:
        """Fire with the unexpired bindings of C{aor}, highest q first."""
        return defer.succeed(_alive(self._bindings.get(aor, ()), now))

    def bindings(self, now: float) -> Deferred[list[Binding]]:
        """Fire with every unexpired binding of every AOR, by AOR."""
        return defer.succeed(
            [b for aor in sorted(self._bindings) for b in _alive(self._bindings[aor], now)]
        )

    def counts(self, now: float) -> tuple[int, int]:
        """C{(AORs registered, bindings)} unexpired at C{now}, at once (for metrics)."""
        alive = [len(_alive(bindings, now)) for bindings in self._bindings.values()]
        return sum(1 for n in alive if n), sum(alive)

    def expire(self, now: float) -> Deferred[int]:
        """Remove every binding expired at C{now}; fire with how many."""
        removed = 0
        for aor in list(self._bindings):
            kept = [b for b in self._bindings[aor] if not b.is_expired(now)]
            removed += len(self._bindings[aor]) - len(kept)
            if kept:
                self._bindings[aor] = kept
            else:
                del self._bindings[aor]
        return defer.succeed(removed)

    def close(self) -> None:
        """Nothing to release; here so every store can be closed alike."""
