# -*- test-case-name: sipedge.test.test_proxy_responses -*-
"""
The responses of one server transaction on their way through an
asynchronous response chain: one at a time, in the order they came.

The proxy core runs the response chain itself while it answers at once
(no queue, no Deferred). Once a stage answers with a Deferred, the
responses that come after it wait here until it has fired, so a 200 never
overtakes the 180 before it, and a retransmitted 2xx is handled after the
first (and gets what the first got). A response may wait
C{timeout} seconds at most: then the chain is cancelled and the response
goes on as if a stage had failed (a provisional is dropped, a final is
relayed as it came), so a Deferred that never fires cannot hold a
transaction.

The backlog is bounded too, so a peer that floods a call with responses
(18x with SDP to a slow remote relay) cannot grow it without end: past
C{max_waiting} waiting responses a provisional one is dropped, past twice
that a 2xx too (its sender retransmits it, RFC 3261 13.3.1.4). A non-2xx
final always waits: the core relays one per transaction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.message import Response

__all__ = ["MAX_WAITING", "ResponseQueue"]

#: Waiting responses past which provisional ones are dropped (2xx: twice).
MAX_WAITING = 32

#: C{deliver(owner, response as received, response as the chain left it
#: or None)}: what the core does with a response once the chain is done.
Deliver = Callable[[Any, Response, "Response | None"], object]
#: C{run(context, response)}: the response chain.
Run = Callable[[Any, Response], "Response | Deferred[Response | None] | None"]


class ResponseQueue:
    """
    The responses of one server transaction (or one stray call) waiting
    for the response chain.

    @param run: runs the response chain (L{RequestChain.run_responses}).
    @param clock: an L{IReactorTime}, for the timeout.
    @param timeout: how long one response may wait for the chain.
    @param owner: passed to C{deliver} (the fork, or C{None}).
    @param on_idle: called with the queue when the last waiting response
        has been delivered.
    @param max_waiting: the backlog past which provisional responses are
        dropped (2xx past twice as many).
    """

    _log = Logger()

    def __init__(
        self,
        run: Run,
        clock: Any,
        timeout: float,
        owner: Any = None,
        on_idle: Callable[[ResponseQueue], object] | None = None,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._run = run
        self._max_waiting = max_waiting
        #: Responses dropped because the backlog was full.
        self.dropped = 0
        self._clock = clock
        self._timeout = timeout
        self.owner = owner
        self._on_idle = on_idle
        self._waiting: deque[tuple[Any, Response, Deliver]] = deque()
        self._current: Deferred[Response | None] | None = None
        self._current_entry: tuple[Response, Deliver] | None = None
        self._timer: Any = None
        self._draining = False

    def __repr__(self) -> str:
        return f"<ResponseQueue busy={self.busy} waiting={len(self._waiting)}>"

    @property
    def busy(self) -> bool:
        """A response is in the chain (and others may wait behind it)."""
        return self._current is not None

    def __len__(self) -> int:
        """How many responses wait, the one in the chain included."""
        return len(self._waiting) + (self._current is not None)

    def submit(self, context: Any, response: Response, deliver: Deliver) -> None:
        """
        Run the chain on C{response} once the ones before it are delivered;
        drop it if the backlog is full (see the module docstring).
        """
        waiting = len(self._waiting)
        status = response.status
        if (status < 200 and waiting >= self._max_waiting) or (
            200 <= status < 300 and waiting >= 2 * self._max_waiting
        ):
            self.dropped += 1
            if self.dropped == 1:  # one line per queue, not one per response
                self._log.warn(
                    "Dropping the {status} of {call_id} (and any more): {waiting} "
                    "responses already wait for the response chain",
                    status=status,
                    call_id=response.headers.get("Call-ID"),
                    waiting=waiting,
                    rule="response-backlog",
                )
            return
        self._waiting.append((context, response, deliver))
        self._drain()

    def wait(
        self, running: Deferred[Response | None], response: Response, deliver: Deliver
    ) -> None:
        """
        C{response} is in the chain already (C{running} fires with the
        result); the queue must be idle.
        """
        assert self._current is None, "the queue is busy"
        self._start(running, response, deliver)
        self._drain()

    def stop(self) -> None:
        """Forget every waiting response (the service stops): nothing is delivered."""
        self._waiting.clear()
        current, self._current = self._current, None
        self._current_entry = None
        self._stop_timer()
        if current is not None:
            current.cancel()

    # -- internals --------------------------------------------------------------

    def _drain(self) -> None:
        if self._draining:
            return  # a delivery from inside the loop below: it goes on
        self._draining = True
        try:
            while self._current is None and self._waiting:
                context, response, deliver = self._waiting.popleft()
                try:
                    result = self._run(context, response)
                except Exception:
                    self._log.failure("The response chain failed")
                    result = None
                if isinstance(result, Deferred):
                    self._start(result, response, deliver)
                else:
                    self._deliver(deliver, response, result)
        finally:
            self._draining = False
        if self._current is None and self._on_idle is not None:
            self._on_idle(self)

    def _start(
        self, running: Deferred[Response | None], response: Response, deliver: Deliver
    ) -> None:
        self._current = running
        self._current_entry = (response, deliver)
        running.addBoth(self._fired, running)
        if self._current is running:  # not fired at once
            self._timer = self._clock.callLater(self._timeout, self._timed_out, running)

    def _fired(self, result: object, running: Deferred[Response | None]) -> None:
        if self._current is not running:
            return None  # given up on (timeout), or stopped
        assert self._current_entry is not None
        response, deliver = self._current_entry
        self._current = self._current_entry = None
        self._stop_timer()
        if isinstance(result, Failure):
            self._log.failure(
                "The response chain failed on {status}", result, status=response.status
            )
            result = None
        assert result is None or isinstance(result, Response)
        self._deliver(deliver, response, result)
        self._drain()
        return None

    def _timed_out(self, running: Deferred[Response | None]) -> None:
        self._timer = None
        if self._current is not running or self._current_entry is None:
            return
        response, deliver = self._current_entry
        self._log.warn(
            "The response chain took more than {timeout} seconds on the {status} of "
            "{call_id}: cancelled",
            timeout=self._timeout,
            status=response.status,
            call_id=response.headers.get("Call-ID"),
        )
        # A cancelled stage fails: the chain usually ends at once then.
        running.cancel()
        if self._current is running:
            # Still waiting (a stage after it waits too): give up on it.
            self._current = self._current_entry = None
            self._deliver(deliver, response, None)
            self._drain()

    def _deliver(self, deliver: Deliver, response: Response, result: Response | None) -> None:
        try:
            deliver(self.owner, response, result)
        except Exception:
            self._log.failure("Relaying the {status} failed", status=response.status)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
