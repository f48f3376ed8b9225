# -*- test-case-name: sipedge.test.test_transaction -*-
"""
The four transaction state machines of RFC 3261 section 17, as amended by
RFC 6026, written down as data (cf. h2's C{stream.py} C{_transitions}).

Each machine is a L{MachineSpec}: for every C{(state, input)} pair the
table holds either a L{Transition} to a state with the actions to run, or an
I{absorb} entry (a L{Transition} with C{absorb=True}): a retransmission or
stray message the RFC says to swallow, perhaps answering it (a retransmitted
request in COMPLETED gets the final response again). A pair that is not in
the table is an error: L{RemoteProtocolError} for remote inputs,
L{LocalProtocolError} for inputs from our own code, and the machine moves to
TERMINATED (cf. h2's C{ProtocolError}). Every remote input that can reach a
machine has an entry in each of its live states, so a stray packet never
kills a live transaction (an ACK never reaches a non-INVITE server
transaction: it only matches INVITE transactions). The missing pairs are
local mistakes (a 1xx from the TU after the final response) and input to a
TERMINATED machine.

Rules the tables share:

 1. Each state owns the timers listed in C{MachineSpec.timers}; entering a
    state cancels every running timer it does not own. So timers are only
    I{started} by actions, and a timer input only appears in the states that
    own it.
 2. Actions that call the transaction user come last, so the TU always sees
    a machine that has finished its transition.
 3. A timer of zero seconds (D, I, J, K on a reliable flow) fires at once,
    after the current transition; a send that fails becomes a
    TRANSPORT_ERROR input in the same way (RFC 3261 17.1.4, 17.2.4).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

__all__ = [
    "CLIENT_INVITE",
    "CLIENT_NON_INVITE",
    "REMOTE_INPUTS",
    "SERVER_INVITE",
    "SERVER_NON_INVITE",
    "Action",
    "ClientInput",
    "Input",
    "MachineSpec",
    "ServerInput",
    "State",
    "Transition",
]


class _Enum(enum.Enum):
    """
    An enum hashed by identity, as it compares: Python 3.11's C{Enum}
    hashes its name in Python code, on every dict look-up of a state or an
    input (the transition table, the running timers).
    """

    __hash__ = object.__hash__


class State(_Enum):
    """The transaction states (RFC 3261 17, RFC 6026 ACCEPTED)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class ClientInput(_Enum):
    """What can happen to a client transaction."""

    START = "start"  # the TU hands over the request
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_3XX_6XX = "3xx-6xx received"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"
    ABANDON = "abandoned by the TU"


class ServerInput(_Enum):
    """What can happen to a server transaction."""

    START = "start"  # the request that created it has arrived
    RECV_REQUEST = "request retransmission received"
    RECV_ACK = "ACK received"
    SEND_1XX = "1xx from TU"
    SEND_2XX = "2xx from TU"
    SEND_3XX_6XX = "3xx-6xx from TU"
    TIMER_TRYING = "100 Trying timer"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_L = "Timer L"
    TRANSPORT_ERROR = "transport error"
    ABANDON = "abandoned"


Input = ClientInput | ServerInput

#: Inputs caused by the network; a missing pair with one of these raises
#: RemoteProtocolError, any other LocalProtocolError.
REMOTE_INPUTS: frozenset[Input] = frozenset(
    (
        ClientInput.RECV_1XX,
        ClientInput.RECV_2XX,
        ClientInput.RECV_3XX_6XX,
        ClientInput.TRANSPORT_ERROR,
        ServerInput.RECV_REQUEST,
        ServerInput.RECV_ACK,
        ServerInput.TRANSPORT_ERROR,
    )
)


class Action(_Enum):
    """What a transition does; each is a C{_do_<name>} method of the machine."""

    # client
    SEND_REQUEST = "send the request"
    RETRANSMIT_REQUEST = "retransmit the request"
    SEND_ACK = "send the ACK for a 3xx-6xx"
    RESEND_ACK = "retransmit the ACK"
    PASS_RESPONSE_UP = "pass the response to the TU"
    START_TIMER_A = "start Timer A at T1"
    BACKOFF_TIMER_A = "restart Timer A at twice its interval"
    START_TIMER_B = "start Timer B"
    START_TIMER_D = "start Timer D"
    START_TIMER_E = "start Timer E at T1"
    BACKOFF_TIMER_E = "restart Timer E at twice its interval, at most T2"
    RESTART_TIMER_E_AT_T2 = "restart Timer E at T2"
    START_TIMER_F = "start Timer F"
    START_TIMER_K = "start Timer K"
    START_TIMER_M = "start Timer M"
    # server
    START_TRYING_TIMER = "start the 100 Trying timer"
    STOP_TRYING_TIMER = "stop the 100 Trying timer"
    SEND_TRYING = "send 100 Trying"
    SEND_RESPONSE = "send the TU's response"
    RESEND_PROVISIONAL = "retransmit the last provisional response"
    RESEND_FINAL = "retransmit the final response"
    PASS_ACK_UP = "pass the ACK to the TU"
    START_TIMER_G = "start Timer G at T1"
    BACKOFF_TIMER_G = "restart Timer G at twice its interval, at most T2"
    START_TIMER_H = "start Timer H"
    START_TIMER_I = "start Timer I"
    START_TIMER_J = "start Timer J"
    START_TIMER_L = "start Timer L"
    # both
    REPORT_TIMEOUT = "tell the TU the transaction timed out"
    REPORT_TRANSPORT_ERROR = "tell the TU the transport failed"


@attrs.frozen
class Transition:
    """
    One table entry.

    @ivar target: the state to move to.
    @ivar actions: what to do, in order.
    @ivar absorb: C{True} if the input is a retransmission or stray message
        that is swallowed here (maybe answered) and never reaches the TU.
    """

    target: State
    actions: tuple[Action, ...] = ()
    absorb: bool = False


def _go(target: State, *actions: Action) -> Transition:
    return Transition(target, actions)


def _absorb(state: State, *actions: Action) -> Transition:
    return Transition(state, actions, absorb=True)


@attrs.frozen
class MachineSpec:
    """
    One machine: its states, inputs, transition table and timers.

    @ivar name: for log events, e.g. C{"client INVITE"}.
    @ivar initial: the state a new transaction is in.
    @ivar inputs: the input enum.
    @ivar transitions: C{(state, input) -> Transition}.
    @ivar timers: C{state -> timer inputs that may run in it}.
    """

    name: str
    initial: State
    inputs: type[ClientInput] | type[ServerInput]
    transitions: Mapping[tuple[State, Input], Transition]
    timers: Mapping[State, frozenset[Input]]

    @property
    def states(self) -> frozenset[State]:
        """Every state this machine can be in."""
        return frozenset(self.timers)


S = State
C = ClientInput
V = ServerInput
A = Action

# RFC 3261 17.1.1.2 figure 5, as replaced by RFC 6026 section 7.2 figure 5.
CLIENT_INVITE = MachineSpec(
    name="client INVITE",
    initial=S.CALLING,
    inputs=ClientInput,
    timers={
        S.CALLING: frozenset((C.TIMER_A, C.TIMER_B)),
        S.PROCEEDING: frozenset(),
        S.COMPLETED: frozenset((C.TIMER_D,)),
        S.ACCEPTED: frozenset((C.TIMER_M,)),
        S.TERMINATED: frozenset(),
    },
    transitions={
        (S.CALLING, C.START): _go(S.CALLING, A.SEND_REQUEST, A.START_TIMER_A, A.START_TIMER_B),
        (S.CALLING, C.TIMER_A): _go(S.CALLING, A.RETRANSMIT_REQUEST, A.BACKOFF_TIMER_A),
        (S.CALLING, C.TIMER_B): _go(S.TERMINATED, A.REPORT_TIMEOUT),
        (S.CALLING, C.RECV_1XX): _go(S.PROCEEDING, A.PASS_RESPONSE_UP),
        (S.CALLING, C.RECV_2XX): _go(S.ACCEPTED, A.START_TIMER_M, A.PASS_RESPONSE_UP),
        (S.CALLING, C.RECV_3XX_6XX): _go(
            S.COMPLETED, A.SEND_ACK, A.START_TIMER_D, A.PASS_RESPONSE_UP
        ),
        (S.CALLING, C.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.CALLING, C.ABANDON): _go(S.TERMINATED),
        (S.PROCEEDING, C.RECV_1XX): _go(S.PROCEEDING, A.PASS_RESPONSE_UP),
        (S.PROCEEDING, C.RECV_2XX): _go(S.ACCEPTED, A.START_TIMER_M, A.PASS_RESPONSE_UP),
        (S.PROCEEDING, C.RECV_3XX_6XX): _go(
            S.COMPLETED, A.SEND_ACK, A.START_TIMER_D, A.PASS_RESPONSE_UP
        ),
        (S.PROCEEDING, C.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.PROCEEDING, C.ABANDON): _go(S.TERMINATED),
        # 17.1.1.2: retransmitted finals get the ACK again; anything else late
        # is swallowed.
        (S.COMPLETED, C.RECV_1XX): _absorb(S.COMPLETED),
        (S.COMPLETED, C.RECV_2XX): _absorb(S.COMPLETED),
        (S.COMPLETED, C.RECV_3XX_6XX): _absorb(S.COMPLETED, A.RESEND_ACK),
        (S.COMPLETED, C.TIMER_D): _go(S.TERMINATED),
        # The final response has already gone up: a failed ACK only ends it.
        (S.COMPLETED, C.TRANSPORT_ERROR): _go(S.TERMINATED),
        (S.COMPLETED, C.ABANDON): _go(S.TERMINATED),
        # RFC 6026 8.4: further 2xx (retransmissions, other forks) go to the TU.
        (S.ACCEPTED, C.RECV_1XX): _absorb(S.ACCEPTED),
        (S.ACCEPTED, C.RECV_2XX): _go(S.ACCEPTED, A.PASS_RESPONSE_UP),
        (S.ACCEPTED, C.RECV_3XX_6XX): _absorb(S.ACCEPTED),
        (S.ACCEPTED, C.TIMER_M): _go(S.TERMINATED),
        (S.ACCEPTED, C.TRANSPORT_ERROR): _absorb(S.ACCEPTED),
        (S.ACCEPTED, C.ABANDON): _go(S.TERMINATED),
        (S.TERMINATED, C.ABANDON): _absorb(S.TERMINATED),
    },
)

# RFC 3261 17.1.2.2 figure 6.
_CLIENT_NON_INVITE_FINAL = (A.START_TIMER_K, A.PASS_RESPONSE_UP)
CLIENT_NON_INVITE = MachineSpec(
    name="client non-INVITE",
    initial=S.TRYING,
    inputs=ClientInput,
    timers={
        S.TRYING: frozenset((C.TIMER_E, C.TIMER_F)),
        S.PROCEEDING: frozenset((C.TIMER_E, C.TIMER_F)),
        S.COMPLETED: frozenset((C.TIMER_K,)),
        S.TERMINATED: frozenset(),
    },
    transitions={
        (S.TRYING, C.START): _go(S.TRYING, A.SEND_REQUEST, A.START_TIMER_E, A.START_TIMER_F),
        (S.TRYING, C.TIMER_E): _go(S.TRYING, A.RETRANSMIT_REQUEST, A.BACKOFF_TIMER_E),
        (S.TRYING, C.TIMER_F): _go(S.TERMINATED, A.REPORT_TIMEOUT),
        (S.TRYING, C.RECV_1XX): _go(S.PROCEEDING, A.PASS_RESPONSE_UP),
        (S.TRYING, C.RECV_2XX): _go(S.COMPLETED, *_CLIENT_NON_INVITE_FINAL),
        (S.TRYING, C.RECV_3XX_6XX): _go(S.COMPLETED, *_CLIENT_NON_INVITE_FINAL),
        (S.TRYING, C.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.TRYING, C.ABANDON): _go(S.TERMINATED),
        (S.PROCEEDING, C.TIMER_E): _go(S.PROCEEDING, A.RETRANSMIT_REQUEST, A.RESTART_TIMER_E_AT_T2),
        (S.PROCEEDING, C.TIMER_F): _go(S.TERMINATED, A.REPORT_TIMEOUT),
        (S.PROCEEDING, C.RECV_1XX): _go(S.PROCEEDING, A.PASS_RESPONSE_UP),
        (S.PROCEEDING, C.RECV_2XX): _go(S.COMPLETED, *_CLIENT_NON_INVITE_FINAL),
        (S.PROCEEDING, C.RECV_3XX_6XX): _go(S.COMPLETED, *_CLIENT_NON_INVITE_FINAL),
        (S.PROCEEDING, C.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.PROCEEDING, C.ABANDON): _go(S.TERMINATED),
        (S.COMPLETED, C.RECV_1XX): _absorb(S.COMPLETED),
        (S.COMPLETED, C.RECV_2XX): _absorb(S.COMPLETED),
        (S.COMPLETED, C.RECV_3XX_6XX): _absorb(S.COMPLETED),
        (S.COMPLETED, C.TIMER_K): _go(S.TERMINATED),
        (S.COMPLETED, C.TRANSPORT_ERROR): _absorb(S.COMPLETED),
        (S.COMPLETED, C.ABANDON): _go(S.TERMINATED),
        (S.TERMINATED, C.ABANDON): _absorb(S.TERMINATED),
    },
)

# RFC 3261 17.2.1 figure 7, as replaced by RFC 6026 section 7.1 figure 7.
SERVER_INVITE = MachineSpec(
    name="server INVITE",
    initial=S.PROCEEDING,
    inputs=ServerInput,
    timers={
        S.PROCEEDING: frozenset((V.TIMER_TRYING,)),
        S.COMPLETED: frozenset((V.TIMER_G, V.TIMER_H)),
        S.CONFIRMED: frozenset((V.TIMER_I,)),
        S.ACCEPTED: frozenset((V.TIMER_L,)),
        S.TERMINATED: frozenset(),
    },
    transitions={
        (S.PROCEEDING, V.START): _go(S.PROCEEDING, A.START_TRYING_TIMER),
        (S.PROCEEDING, V.TIMER_TRYING): _go(S.PROCEEDING, A.SEND_TRYING),
        (S.PROCEEDING, V.RECV_REQUEST): _absorb(S.PROCEEDING, A.RESEND_PROVISIONAL),
        (S.PROCEEDING, V.RECV_ACK): _absorb(S.PROCEEDING),
        (S.PROCEEDING, V.SEND_1XX): _go(S.PROCEEDING, A.STOP_TRYING_TIMER, A.SEND_RESPONSE),
        (S.PROCEEDING, V.SEND_2XX): _go(S.ACCEPTED, A.SEND_RESPONSE, A.START_TIMER_L),
        (S.PROCEEDING, V.SEND_3XX_6XX): _go(
            S.COMPLETED, A.SEND_RESPONSE, A.START_TIMER_G, A.START_TIMER_H
        ),
        (S.PROCEEDING, V.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.PROCEEDING, V.ABANDON): _go(S.TERMINATED),
        (S.COMPLETED, V.RECV_REQUEST): _absorb(S.COMPLETED, A.RESEND_FINAL),
        (S.COMPLETED, V.RECV_ACK): _go(S.CONFIRMED, A.START_TIMER_I),
        (S.COMPLETED, V.TIMER_G): _go(S.COMPLETED, A.RESEND_FINAL, A.BACKOFF_TIMER_G),
        (S.COMPLETED, V.TIMER_H): _go(S.TERMINATED, A.REPORT_TIMEOUT),
        (S.COMPLETED, V.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.COMPLETED, V.ABANDON): _go(S.TERMINATED),
        (S.CONFIRMED, V.RECV_REQUEST): _absorb(S.CONFIRMED),
        (S.CONFIRMED, V.RECV_ACK): _absorb(S.CONFIRMED),
        (S.CONFIRMED, V.TIMER_I): _go(S.TERMINATED),
        (S.CONFIRMED, V.TRANSPORT_ERROR): _absorb(S.CONFIRMED),
        (S.CONFIRMED, V.ABANDON): _go(S.TERMINATED),
        # RFC 6026 8.7: INVITE retransmissions are absorbed, ACKs and further
        # 2xx from the TU pass through, the TU retransmits its 2xx itself.
        (S.ACCEPTED, V.RECV_REQUEST): _absorb(S.ACCEPTED),
        (S.ACCEPTED, V.RECV_ACK): _go(S.ACCEPTED, A.PASS_ACK_UP),
        (S.ACCEPTED, V.SEND_2XX): _go(S.ACCEPTED, A.SEND_RESPONSE),
        (S.ACCEPTED, V.TIMER_L): _go(S.TERMINATED),
        (S.ACCEPTED, V.TRANSPORT_ERROR): _absorb(S.ACCEPTED),
        (S.ACCEPTED, V.ABANDON): _go(S.TERMINATED),
        (S.TERMINATED, V.ABANDON): _absorb(S.TERMINATED),
    },
)

# RFC 3261 17.2.2 figure 8.
_SERVER_NON_INVITE_FINAL = (A.SEND_RESPONSE, A.START_TIMER_J)
SERVER_NON_INVITE = MachineSpec(
    name="server non-INVITE",
    initial=S.TRYING,
    inputs=ServerInput,
    timers={
        S.TRYING: frozenset(),
        S.PROCEEDING: frozenset(),
        S.COMPLETED: frozenset((V.TIMER_J,)),
        S.TERMINATED: frozenset(),
    },
    transitions={
        (S.TRYING, V.START): _go(S.TRYING),
        (S.TRYING, V.RECV_REQUEST): _absorb(S.TRYING),
        (S.TRYING, V.SEND_1XX): _go(S.PROCEEDING, A.SEND_RESPONSE),
        (S.TRYING, V.SEND_2XX): _go(S.COMPLETED, *_SERVER_NON_INVITE_FINAL),
        (S.TRYING, V.SEND_3XX_6XX): _go(S.COMPLETED, *_SERVER_NON_INVITE_FINAL),
        (S.TRYING, V.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.TRYING, V.ABANDON): _go(S.TERMINATED),
        (S.PROCEEDING, V.RECV_REQUEST): _absorb(S.PROCEEDING, A.RESEND_PROVISIONAL),
        (S.PROCEEDING, V.SEND_1XX): _go(S.PROCEEDING, A.SEND_RESPONSE),
        (S.PROCEEDING, V.SEND_2XX): _go(S.COMPLETED, *_SERVER_NON_INVITE_FINAL),
        (S.PROCEEDING, V.SEND_3XX_6XX): _go(S.COMPLETED, *_SERVER_NON_INVITE_FINAL),
        (S.PROCEEDING, V.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.PROCEEDING, V.ABANDON): _go(S.TERMINATED),
        (S.COMPLETED, V.RECV_REQUEST): _absorb(S.COMPLETED, A.RESEND_FINAL),
        # 17.2.2: "Any other final responses passed by the TU to the server
        # transaction MUST be discarded while in the 'Completed' state."
        (S.COMPLETED, V.SEND_2XX): _absorb(S.COMPLETED),
        (S.COMPLETED, V.SEND_3XX_6XX): _absorb(S.COMPLETED),
        (S.COMPLETED, V.TIMER_J): _go(S.TERMINATED),
        (S.COMPLETED, V.TRANSPORT_ERROR): _go(S.TERMINATED, A.REPORT_TRANSPORT_ERROR),
        (S.COMPLETED, V.ABANDON): _go(S.TERMINATED),
        (S.TERMINATED, V.ABANDON): _absorb(S.TERMINATED),
    },
)

del S, C, V, A
