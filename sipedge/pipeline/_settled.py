# -*- test-case-name: sipedge.test.test_pipeline_settled -*-
"""
A Deferred that has already fired is a value: L{settled} takes it out, so
that code on the request path goes on synchronously instead of through
callbacks (a store lookup over SQLite, a next hop that is an IP address,
C{succeed(...)}, C{maybeDeferred} of a synchronous function all return
one).

Only a Deferred with nothing left to run is taken apart: one whose
callbacks have all run (not paused, not waiting on another Deferred).
Anything else stays a Deferred, and the caller takes its asynchronous
path, which gives the same results later.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["settled"]

_T = TypeVar("_T")


def _handled(failure: Failure) -> None:
    """The failure was taken out: it is the caller's now."""


def settled(value: _T | Deferred[_T]) -> _T | Failure | Deferred[_T]:
    """
    The result of C{value} if it is a Deferred that has fired with nothing
    waiting on it: the value, or the L{Failure} (marked handled: the
    caller deals with it, as an exception); C{value} itself otherwise (a
    plain value, or a Deferred that has not fired).
    """
    if not isinstance(value, Deferred):
        return value
    box: list[Any] = []

    def take(result: Any) -> Any:
        box.append(result)
        return result

    # Runs at once if the result is there; otherwise it waits in the chain
    # and passes the result through untouched.
    value.addBoth(take)
    if not box:
        return value
    result = box[0]
    if isinstance(result, Failure):
        value.addErrback(_handled)
    return result
