# -*- test-case-name: sipedge.test.test_transaction -*-
"""
The engine the four transaction machines share: it looks up each input in
the machine's table (L{sipedge.transaction._states}), runs the actions,
keeps the timers and reports to the transaction user.

Sans-IO apart from the injected clock: messages leave through the C{send}
callable, and time is C{clock.callLater}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge import _debug
from sipedge.error import LocalProtocolError, RemoteProtocolError, TransportError
from sipedge.flow import Flow
from sipedge.interfaces import ITransactionUser
from sipedge.message import Message, Request
from sipedge.transaction._key import TransactionKey
from sipedge.transaction._states import REMOTE_INPUTS, Action, Input, MachineSpec, State
from sipedge.transaction._timers import TimerSettings


def set_tracing(enabled: bool) -> None:
    """
    Log (or stop logging) every transaction transition at debug level: the
    process-wide hot-path debug switch (L{sipedge._debug}).
    """
    _debug.set_enabled(enabled)


__all__: list[str] = []

Send = Callable[[Message, Flow], object]


_TIMER_INPUTS: dict[int, frozenset[Input]] = {}

#: The machine's method for each action, named once (an enum's C{name} is a
#: Python-level descriptor in 3.11: not something to read per transition).
_HANDLERS: dict[Action, str] = {action: "_do_" + action.name.lower() for action in Action}


def _timer_inputs(spec: MachineSpec) -> frozenset[Input]:
    """Every timer input of C{spec}'s states (worked out once per machine)."""
    found = _TIMER_INPUTS.get(id(spec))
    if found is None:
        found = _TIMER_INPUTS[id(spec)] = frozenset(
            i for timers in spec.timers.values() for i in timers
        )
    return found


def _bump(stats: dict[str, int], name: str) -> None:
    stats[name] = stats.get(name, 0) + 1


@attrs.define(eq=False, repr=False)
class Transaction:
    """
    Base of the four transaction classes.

    @ivar request: the request that created the transaction, while its
        state may still need it (see L{_let_go}); C{None} after.
    @ivar flow: where it is sent (client) or where it came from (server).
    @ivar key: the L{TransactionKey} that matches messages to it.
    @ivar state: the current L{State}.
    """

    _log: ClassVar[Logger] = Logger()
    #: The machine (set by each subclass).
    spec: ClassVar[MachineSpec]
    #: The name used for counters, e.g. C{"client_invite"}.
    kind: ClassVar[str]
    #: The states that may still send the request or a message built from
    #: it (set by each subclass); in the others the transaction lets go of
    #: it (L{_let_go}).
    _request_states: ClassVar[frozenset[State]]

    request: Request | None
    flow: Flow
    _send: Send = attrs.field(kw_only=True)
    _user: ITransactionUser = attrs.field(kw_only=True)
    _clock: IReactorTime = attrs.field(kw_only=True)
    _timers: TimerSettings = attrs.field(kw_only=True, factory=TimerSettings)
    key: TransactionKey = attrs.field(kw_only=True, default=None)
    _on_terminated: Callable[[Any], object] | None = attrs.field(kw_only=True, default=None)
    _stats: dict[str, int] = attrs.field(kw_only=True, factory=dict)

    state: State = attrs.field(init=False)
    # The timers running, as (input, call) pairs: a state has one to three,
    # and a lingering transaction one (a list of one pair is half a dict).
    _running: list[tuple[Input, IDelayedCall]] = attrs.field(init=False, factory=list)
    # Inputs queued by actions (zero timers, send failures); None while
    # empty, which it nearly always is.
    _queue: list[tuple[Input, Any]] | None = attrs.field(init=False, default=None)
    _draining: bool = attrs.field(init=False, default=False)
    _started: bool = attrs.field(init=False, default=False)
    _finished: bool = attrs.field(init=False, default=False)
    _generation: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.state = self.spec.initial
        if self.key is None:
            self.key = self._make_key()

    def _make_key(self) -> TransactionKey:
        raise NotImplementedError()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} {self.state.name}>"

    @property
    def reliable(self) -> bool:
        """True if the flow is reliable (no retransmission timers)."""
        return self.flow.reliable

    @property
    def terminated(self) -> bool:
        """True once the transaction is TERMINATED."""
        return self.state is State.TERMINATED

    # -- the inputs every machine has ------------------------------------------

    def start(self) -> None:
        """
        Begin: a client sends its request and starts its timers; a server
        (whose request has just arrived) starts its timers (an INVITE
        server's 100 Trying timer).

        @raise LocalProtocolError: if it was started before (the transaction
            is then TERMINATED).
        """
        input = self.spec.inputs.START
        if self._started:
            raise self._protocol_error(input)
        self._started = True
        self.process_input(input)

    def cancel_timers(self) -> None:
        """
        Stop every timer and move to TERMINATED (the TU gave up on it, or the
        layer is stopping). Does nothing once TERMINATED.
        """
        self.process_input(self.spec.inputs.ABANDON)

    def terminate(self) -> None:
        """The same as L{cancel_timers}: end the transaction, silently."""
        self.cancel_timers()

    def transport_error(self, reason: Failure) -> None:
        """
        The transport failed to send one of our messages after C{send}
        returned (a connection that could not be opened): RFC 3261 17.1.4 and
        17.2.4, as if C{send} had raised. Ignored once TERMINATED.
        """
        if self.state is not State.TERMINATED:
            self.process_input(self._transport_error_input, reason)

    # -- the engine --------------------------------------------------------

    def process_input(self, input: Input, payload: Any = None) -> None:
        """
        Feed one input to the machine: the one entry point the named
        methods (C{start}, C{respond}, ...) and the timers use.

        @raise RemoteProtocolError: if the table has no entry for a remote
            input in this state (the machine is then TERMINATED).
        @raise LocalProtocolError: likewise for a local input.
        """
        transition = self.spec.transitions.get((self.state, input))
        if transition is None:
            raise self._protocol_error(input)
        old = self.state
        self.state = transition.target
        self._generation += 1
        generation = self._generation
        if transition.target is not old:
            if _debug.enabled():
                self._log.debug(
                    "Transaction {key} {old} -> {new} on {input}",
                    key=self.key,
                    old=old.name,
                    new=transition.target.name,
                    input=input.value,
                )
            self._keep_timers(self.spec.timers[transition.target])
        if transition.absorb:
            _bump(self._stats, "absorbed")
            if _debug.enabled():
                self._log.debug(
                    "Transaction {key} in {state} absorbed {input}",
                    key=self.key,
                    state=old.name,
                    input=input.value,
                )
        for action in transition.actions:
            if self._generation != generation:
                # The TU moved the machine on from inside a callback.
                break
            getattr(self, _HANDLERS[action])(payload)
        if self.state is State.TERMINATED:
            self._finish()
        if self.state not in self._request_states:
            self._let_go()
        if self._queue:
            self._drain()

    def _let_go(self) -> None:
        """
        Drop what the state reached no longer needs: a transaction that
        lingers (Timers J, K, L, M: up to 32 s) keeps only what absorbing
        and answering retransmissions takes, not the whole parsed request.
        """
        self.request = None

    def _drain(self) -> None:
        """Run the inputs that actions queued (zero timers, send failures)."""
        if self._draining or not self._queue:
            return
        self._draining = True
        try:
            while self._queue:
                if self.state is State.TERMINATED:
                    self._queue = None
                    break
                input, payload = self._queue.pop(0)
                self.process_input(input, payload)
        finally:
            self._draining = False
        if not self._queue:
            self._queue = None

    def _enqueue(self, input: Input, payload: Any = None) -> None:
        if self._queue is None:
            self._queue = [(input, payload)]
        else:
            self._queue.append((input, payload))

    def _protocol_error(self, input: Input) -> Exception:
        """A pair missing from the table: terminate, return what to raise."""
        error = RemoteProtocolError if input in REMOTE_INPUTS else LocalProtocolError
        message = (
            f"{self.spec.name} transaction {self.key} in {self.state.name}"
            f" cannot take {input.value}"
        )
        _bump(self._stats, "protocol_errors")
        self._log.warn(
            "Transaction {key}: {input} in {state} is a protocol error; terminating",
            key=self.key,
            input=input.value,
            state=self.state.name,
        )
        if self.state is not State.TERMINATED:
            self.state = State.TERMINATED
            self._generation += 1
            self._finish()
        return error(message)

    def _finish(self) -> None:
        """Entered TERMINATED: stop everything, tell the layer and the TU."""
        if self._finished:
            return
        self._finished = True
        self._keep_timers(frozenset())
        self._queue = None
        if self._on_terminated is not None:
            self._on_terminated(self)
        self._call_user(self._user.transaction_terminated, self)

    # -- timers ------------------------------------------------------------

    def _keep_timers(self, owned: frozenset[Input]) -> None:
        """Cancel every running or queued timer the current state does not own."""
        running = self._running
        if running:
            for input, call in running:
                if input not in owned:
                    call.cancel()
            self._running = [pair for pair in running if pair[0] in owned]
        if self._queue:
            timer_inputs = _timer_inputs(self.spec)
            self._queue[:] = [
                item for item in self._queue if item[0] not in timer_inputs or item[0] in owned
            ]

    def _start_timer(self, input: Input, delay: float) -> None:
        """Start (or restart) a timer; a zero delay fires after this transition."""
        if self._running:
            self._cancel_timer(input)
        if delay <= 0:
            self._enqueue(input)
            return
        self._running.append((input, self._clock.callLater(delay, self._timer_fired, input)))

    def _cancel_timer(self, input: Input) -> None:
        call = self._forget_timer(input)
        if call is not None:
            call.cancel()

    def _forget_timer(self, input: Input) -> IDelayedCall | None:
        running = self._running
        for i, (each, call) in enumerate(running):
            if each is input:
                del running[i]
                return call
        return None

    def _timer_fired(self, input: Input) -> None:
        self._forget_timer(input)
        self.process_input(input)

    @property
    def running_timers(self) -> frozenset[Input]:
        """The timer inputs scheduled now (for tests and introspection)."""
        return frozenset(input for input, _ in self._running)

    # -- I/O ---------------------------------------------------------------

    def _transmit(self, message: Message, retransmission: bool = False) -> None:
        """Hand C{message} to the transport; a failure becomes an input."""
        try:
            self._send(message, self.flow)
        except TransportError:
            failure = Failure()
            _bump(self._stats, "transport_errors")
            self._log.warn(
                "Transaction {key}: cannot send on {flow}: {error}",
                key=self.key,
                flow=str(self.flow),
                error=failure.getErrorMessage(),
            )
            self._enqueue(self._transport_error_input, failure)
            return
        if retransmission:
            _bump(self._stats, "retransmissions")
            if _debug.enabled():
                self._log.debug("Transaction {key} retransmitted", key=self.key)

    _transport_error_input: ClassVar[Input]

    def _call_user(self, method: Callable[..., object], *args: object) -> None:
        """Call the TU; its bugs are logged, never allowed to break the machine."""
        try:
            method(*args)
        except Exception:
            self._log.failure("Transaction user raised from {method}", method=method.__name__)
