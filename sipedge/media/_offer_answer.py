# -*- test-case-name: sipedge.test.test_offer_answer -*-
"""
One RFC 3264 offer/answer exchange as an anchoring proxy sees it, written
down as data (as L{sipedge.transaction._states} and h2's C{stream.py}).

An exchange is an offer and its answer between the two parties of a call,
carried by one transaction (RFC 3261 13.2.1, RFC 3262, RFC 3311, RFC
6337 2): the offer in an INVITE, re-INVITE, UPDATE or PRACK and its answer
in a 18x/2xx; or, for an INVITE without SDP, the offer in its 18x/2xx and
the answer in the PRACK or ACK. The proxy in the middle gives each offer
to the media relay (a session is allocated, or the current one re-offered)
and each answer too (the session is updated), so an exchange also waits
for the relay.

L{Exchange} is sans-IO: it neither sends nor calls the relay. Its owner
(the C{media-anchor} stage) feeds it an L{OfferAnswerInput} for each event
and carries out the L{OfferAnswerAction}s of the transition. For every
C{(state, input)} pair the table L{TRANSITIONS} holds a L{Transition} (a
state to move to and actions), or an I{absorb} entry that stays (a
retransmitted offer, a 2xx that repeats a 18x's offer). A pair missing from
the table raises L{OfferAnswerError} and moves the exchange to L{DONE}
(whose owner then releases what it holds).

Rules the table follows:

 1. A new offer while an exchange is outstanding gets 491 (RFC 3261 14.2,
    RFC 3311 5.2), except when the exchange was answered early (a 18x or a
    PRACK): that answer stands and the exchange becomes the call's current
    one (RFC 6337 3.1.1).
 2. A re-offer (C{REOFFER}, C{LATE_REOFFER}: a new offer in a call whose
    media already flows) is its own input and action, L{Action.REOFFER}, so
    that a relay able to re-offer a live session keeps its ports.
 3. The relay's late answers (C{ALLOCATED}, C{UPDATED}, their refusals) to
    an exchange already ended are absorbed in L{DONE}; an allocation that
    comes then is released (L{Action.RELEASE_LATE}).
 4. C{FAILED} (a final failure of the transaction, a later stage that
    answers the request itself) and C{ENDED} (the end of the call) end any
    live exchange.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from sipedge.error import SipEdgeError

__all__ = [
    "LIVE_STATES",
    "TRANSITIONS",
    "Exchange",
    "OfferAnswerAction",
    "OfferAnswerError",
    "OfferAnswerInput",
    "OfferAnswerState",
    "OfferAnswerTransition",
]


class OfferAnswerError(SipEdgeError):
    """An input the exchange's state does not allow (a missing table pair)."""


class OfferAnswerState(enum.Enum):
    """Where an exchange is."""

    #: Nothing yet.
    IDLE = "idle"
    #: An INVITE without SDP went on: its 18x/2xx carries the offer.
    AWAITING_OFFER = "awaiting offer"
    #: The offer of a request is with the relay.
    ALLOCATING = "allocating"
    #: That offer went on with the relay's addresses: a 18x/2xx answers.
    OFFERED = "offered"
    #: The offer of a 18x/2xx (to an INVITE without SDP) is with the relay.
    ALLOCATING_LATE = "allocating late offer"
    #: That offer went on: the PRACK or ACK answers.
    OFFERED_LATE = "late offer sent"
    #: An early answer (a 18x, a PRACK) is with the relay.
    ANSWERING_EARLY = "answering early"
    #: A final answer (a 2xx, an ACK) is with the relay.
    ANSWERING = "answering"
    #: Answered early: the 2xx confirms (with or without SDP).
    EARLY = "early"
    #: A 2xx without SDP confirmed another early dialog than the one whose
    #: answer the relay has: that dialog's answer is going back to it.
    RESTORING = "restoring an early answer"
    #: Answered: its session carries the call's media.
    ACTIVE = "active"
    #: Over (refused, failed, replaced, ended): it holds nothing.
    DONE = "done"


class OfferAnswerInput(enum.Enum):
    """What can happen to an exchange."""

    OFFER = "offer in a request"
    REOFFER = "new offer in a request of a call with media"
    OFFERLESS = "INVITE without SDP"
    LATE_OFFER = "offer in a 18x/2xx"
    LATE_REOFFER = "offer in a 18x/2xx of a call with media"
    REPEATED_OFFER = "a 18x repeats the offer already sent"
    REPEATED_OFFER_FINAL = "a 2xx repeats the offer already sent"
    ALLOCATED = "relay allocated the offer"
    ALLOCATION_REFUSED = "relay refused the offer"
    ALLOCATION_REFUSED_EARLY = "relay refused the offer of a 18x"
    EARLY_ANSWER = "answer in a 18x"
    ANSWER = "answer in a 2xx"
    PRACK_ANSWER = "answer in a PRACK"
    ACK_ANSWER = "answer in an ACK"
    UPDATED = "relay took the answer"
    ANSWER_REFUSED = "relay refused the answer"
    EARLY_ANSWER_REFUSED = "relay refused the answer of a 18x"
    CONFIRMED = "2xx without SDP"
    CONFIRMED_OTHER = "2xx without SDP of another early dialog"
    NO_ANSWER = "ACK without the answer it owed"
    NEW_OFFER = "another exchange starts"
    REPLACED = "a newer exchange became active"
    FAILED = "the transaction failed"
    RELAY_ENDED = "the relay ended the session"
    ENDED = "the call ended"


class OfferAnswerAction(enum.Enum):
    """What a transition asks its owner to do."""

    ALLOCATE = "give the offer to the relay (a new session)"
    REOFFER = "give the new offer to the relay (the call's session)"
    SEND_OFFER = "send the offer on with the relay's B side"
    RESEND_OFFER = "send the offer already sent again"
    HIDE = "send on without usable SDP"
    UPDATE = "give the answer to the relay"
    RESTORE_ANSWER = "give the confirmed dialog's early answer back to the relay"
    SEND_ANSWER = "send the answer on with the relay's A side"
    WAIT = "a retransmission waits for the answer under way"
    REFUSE = "refuse the request (the relay's status)"
    REFUSE_491 = "answer 491 Request Pending"
    ACTIVATE = "this exchange's session now carries the media"
    RELEASE = "release the exchange's session"
    RELEASE_LATE = "release a session allocated after the end"
    WARN = "log that SDP owed did not come"


@attrs.frozen
class OfferAnswerTransition:
    """
    One table entry.

    @ivar target: the state to move to.
    @ivar actions: what to do, in order.
    @ivar absorb: a repeated or late input that changes nothing.
    """

    target: OfferAnswerState
    actions: tuple[OfferAnswerAction, ...] = ()
    absorb: bool = False


S = OfferAnswerState
I = OfferAnswerInput  # noqa: E741
A = OfferAnswerAction


def _go(target: OfferAnswerState, *actions: OfferAnswerAction) -> OfferAnswerTransition:
    return OfferAnswerTransition(target, actions)


def _absorb(state: OfferAnswerState, *actions: OfferAnswerAction) -> OfferAnswerTransition:
    return OfferAnswerTransition(state, actions, absorb=True)


#: The states an exchange holds (or may hold) a relay session in.
LIVE_STATES = frozenset(set(S) - {S.IDLE, S.DONE})

#: States whose exchange is outstanding: a new offer gets 491.
_OUTSTANDING = (
    S.AWAITING_OFFER,
    S.ALLOCATING,
    S.OFFERED,
    S.ALLOCATING_LATE,
    S.OFFERED_LATE,
    S.ANSWERING_EARLY,
    S.ANSWERING,
    S.RESTORING,
)

_table: dict[tuple[OfferAnswerState, OfferAnswerInput], OfferAnswerTransition] = {
    # Starting: an offer in a request, or an INVITE that asks for one.
    (S.IDLE, I.OFFER): _go(S.ALLOCATING, A.ALLOCATE),
    (S.IDLE, I.REOFFER): _go(S.ALLOCATING, A.REOFFER),
    (S.IDLE, I.OFFERLESS): _go(S.AWAITING_OFFER),
    # The offer of a request.
    (S.ALLOCATING, I.ALLOCATED): _go(S.OFFERED, A.SEND_OFFER),
    (S.ALLOCATING, I.ALLOCATION_REFUSED): _go(S.DONE, A.REFUSE),
    (S.OFFERED, I.EARLY_ANSWER): _go(S.ANSWERING_EARLY, A.UPDATE),
    (S.OFFERED, I.ANSWER): _go(S.ANSWERING, A.UPDATE),
    (S.OFFERED, I.CONFIRMED): _go(S.DONE, A.WARN, A.RELEASE),
    # The offer of a 18x/2xx; another fork's (or a changed) offer replaces it.
    (S.AWAITING_OFFER, I.LATE_OFFER): _go(S.ALLOCATING_LATE, A.ALLOCATE),
    (S.AWAITING_OFFER, I.LATE_REOFFER): _go(S.ALLOCATING_LATE, A.REOFFER),
    (S.AWAITING_OFFER, I.CONFIRMED): _go(S.DONE, A.WARN),
    (S.AWAITING_OFFER, I.NO_ANSWER): _absorb(S.AWAITING_OFFER),
    (S.ALLOCATING_LATE, I.ALLOCATED): _go(S.OFFERED_LATE, A.SEND_OFFER),
    (S.ALLOCATING_LATE, I.ALLOCATION_REFUSED): _go(S.DONE, A.HIDE),
    (S.ALLOCATING_LATE, I.ALLOCATION_REFUSED_EARLY): _go(S.AWAITING_OFFER, A.HIDE),
    (S.ALLOCATING_LATE, I.CONFIRMED): _absorb(S.ALLOCATING_LATE),
    (S.ALLOCATING_LATE, I.NO_ANSWER): _absorb(S.ALLOCATING_LATE),
    (S.OFFERED_LATE, I.LATE_OFFER): _go(S.ALLOCATING_LATE, A.RELEASE, A.ALLOCATE),
    (S.OFFERED_LATE, I.LATE_REOFFER): _go(S.ALLOCATING_LATE, A.RELEASE, A.REOFFER),
    (S.OFFERED_LATE, I.REPEATED_OFFER): _absorb(S.OFFERED_LATE, A.RESEND_OFFER),
    (S.OFFERED_LATE, I.REPEATED_OFFER_FINAL): _absorb(S.OFFERED_LATE, A.RESEND_OFFER),
    (S.OFFERED_LATE, I.PRACK_ANSWER): _go(S.ANSWERING_EARLY, A.UPDATE),
    (S.OFFERED_LATE, I.ACK_ANSWER): _go(S.ANSWERING, A.UPDATE),
    (S.OFFERED_LATE, I.CONFIRMED): _absorb(S.OFFERED_LATE),
    (S.OFFERED_LATE, I.NO_ANSWER): _go(S.DONE, A.WARN, A.RELEASE),
    # The relay takes an answer; a retransmitted PRACK or ACK waits for it.
    (S.ANSWERING_EARLY, I.UPDATED): _go(S.EARLY, A.SEND_ANSWER),
    (S.ANSWERING_EARLY, I.EARLY_ANSWER_REFUSED): _go(S.OFFERED, A.HIDE),
    (S.ANSWERING_EARLY, I.ANSWER_REFUSED): _go(S.DONE, A.HIDE, A.RELEASE),
    (S.ANSWERING_EARLY, I.PRACK_ANSWER): _absorb(S.ANSWERING_EARLY, A.WAIT),
    (S.ANSWERING_EARLY, I.ACK_ANSWER): _absorb(S.ANSWERING_EARLY, A.WAIT),
    (S.ANSWERING_EARLY, I.CONFIRMED): _absorb(S.ANSWERING_EARLY),
    (S.ANSWERING_EARLY, I.NO_ANSWER): _absorb(S.ANSWERING_EARLY),
    (S.ANSWERING_EARLY, I.REPEATED_OFFER): _absorb(S.ANSWERING_EARLY, A.RESEND_OFFER),
    (S.ANSWERING_EARLY, I.REPEATED_OFFER_FINAL): _absorb(S.ANSWERING_EARLY, A.RESEND_OFFER),
    (S.ANSWERING, I.UPDATED): _go(S.ACTIVE, A.SEND_ANSWER, A.ACTIVATE),
    (S.ANSWERING, I.ANSWER_REFUSED): _go(S.DONE, A.HIDE, A.RELEASE),
    (S.ANSWERING, I.EARLY_ANSWER_REFUSED): _go(S.DONE, A.HIDE, A.RELEASE),
    (S.ANSWERING, I.PRACK_ANSWER): _absorb(S.ANSWERING, A.WAIT),
    (S.ANSWERING, I.ACK_ANSWER): _absorb(S.ANSWERING, A.WAIT),
    (S.ANSWERING, I.CONFIRMED): _absorb(S.ANSWERING),
    (S.ANSWERING, I.NO_ANSWER): _absorb(S.ANSWERING),
    (S.ANSWERING, I.REPEATED_OFFER): _absorb(S.ANSWERING, A.RESEND_OFFER),
    (S.ANSWERING, I.REPEATED_OFFER_FINAL): _absorb(S.ANSWERING, A.RESEND_OFFER),
    # Answered early: forks answer one after another; the 2xx confirms.
    (S.EARLY, I.EARLY_ANSWER): _go(S.ANSWERING_EARLY, A.UPDATE),
    (S.EARLY, I.ANSWER): _go(S.ANSWERING, A.UPDATE),
    (S.EARLY, I.PRACK_ANSWER): _go(S.ANSWERING_EARLY, A.UPDATE),
    (S.EARLY, I.ACK_ANSWER): _go(S.ANSWERING, A.UPDATE),
    (S.EARLY, I.CONFIRMED): _go(S.ACTIVE, A.ACTIVATE),
    (S.EARLY, I.CONFIRMED_OTHER): _go(S.RESTORING, A.RESTORE_ANSWER),
    (S.RESTORING, I.UPDATED): _go(S.ACTIVE, A.ACTIVATE),
    (S.RESTORING, I.ANSWER_REFUSED): _go(S.DONE, A.RELEASE),
    (S.EARLY, I.REPEATED_OFFER): _absorb(S.EARLY, A.RESEND_OFFER),
    (S.EARLY, I.REPEATED_OFFER_FINAL): _go(S.ACTIVE, A.RESEND_OFFER, A.ACTIVATE),
    # RFC 3261 13.2.1: a second offer in the responses is not allowed.
    (S.EARLY, I.LATE_OFFER): _absorb(S.EARLY, A.HIDE),
    (S.EARLY, I.LATE_REOFFER): _absorb(S.EARLY, A.HIDE),
    (S.EARLY, I.NO_ANSWER): _absorb(S.EARLY),
    (S.EARLY, I.NEW_OFFER): _go(S.ACTIVE, A.ACTIVATE),
    # Active: replaced by the next exchange's answer, or ended.
    (S.ACTIVE, I.REPLACED): _go(S.DONE, A.RELEASE),
    (S.ACTIVE, I.RELAY_ENDED): _go(S.DONE),
    (S.ACTIVE, I.ENDED): _go(S.DONE, A.RELEASE),
    # Rule 3: the relay answers after the end.
    (S.DONE, I.ALLOCATED): _absorb(S.DONE, A.RELEASE_LATE),
    (S.DONE, I.ALLOCATION_REFUSED): _absorb(S.DONE),
    (S.DONE, I.ALLOCATION_REFUSED_EARLY): _absorb(S.DONE),
    (S.DONE, I.UPDATED): _absorb(S.DONE, A.HIDE),
    (S.DONE, I.ANSWER_REFUSED): _absorb(S.DONE, A.HIDE),
    (S.DONE, I.EARLY_ANSWER_REFUSED): _absorb(S.DONE, A.HIDE),
    (S.DONE, I.FAILED): _absorb(S.DONE),
    (S.DONE, I.ENDED): _absorb(S.DONE),
    (S.DONE, I.RELAY_ENDED): _absorb(S.DONE),
}

for _state in _OUTSTANDING:
    # Rule 1, and rule 4 for every live state.
    _table[(_state, I.NEW_OFFER)] = _absorb(_state, A.REFUSE_491)
for _state in LIVE_STATES - {S.ACTIVE}:
    _table[(_state, I.FAILED)] = _go(S.DONE, A.RELEASE)
    _table[(_state, I.RELAY_ENDED)] = _go(S.DONE)
    _table[(_state, I.ENDED)] = _go(S.DONE, A.RELEASE)
del _state

#: C{(state, input) -> transition}: every pair an exchange accepts.
TRANSITIONS: Mapping[tuple[OfferAnswerState, OfferAnswerInput], OfferAnswerTransition] = _table

del S, I, A


@attrs.define(eq=False)
class Exchange:
    """
    The state of one offer/answer exchange (sans-IO: the owner carries out
    the actions).

    @ivar state: where it is.
    @ivar history: the inputs it took, for log lines and tests.
    """

    state: OfferAnswerState = OfferAnswerState.IDLE
    history: list[OfferAnswerInput] = attrs.Factory(list)

    @property
    def live(self) -> bool:
        """Whether it may hold a relay session."""
        return self.state in LIVE_STATES

    def accepts(self, input: OfferAnswerInput) -> bool:
        """Whether C{input} has an entry in the current state (without taking it)."""
        return (self.state, input) in TRANSITIONS

    def process_input(self, input: OfferAnswerInput) -> tuple[OfferAnswerAction, ...]:
        """
        Take C{input}: move as the table says and return the actions to
        carry out. A pair missing from the table raises
        L{OfferAnswerError} and leaves the exchange L{DONE}.
        """
        transition = TRANSITIONS.get((self.state, input))
        if transition is None:
            state, self.state = self.state, OfferAnswerState.DONE
            raise OfferAnswerError(f"{input.value!r} is not allowed in state {state.value!r}")
        self.history.append(input)
        self.state = transition.target
        return transition.actions
