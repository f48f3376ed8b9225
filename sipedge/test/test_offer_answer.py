# -*- test-case-name: sipedge.test.test_offer_answer -*-
"""
Tests for L{sipedge.media._offer_answer}: the offer/answer exchange as a
transition table (cf. h2's C{test_state_machines.py}).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import (
    Exchange,
    OfferAnswerAction,
    OfferAnswerError,
    OfferAnswerInput,
    OfferAnswerState,
)
from sipedge.media._offer_answer import LIVE_STATES, TRANSITIONS

S = OfferAnswerState
I = OfferAnswerInput  # noqa: E741
A = OfferAnswerAction


def _reachable() -> set[OfferAnswerState]:
    seen = {S.IDLE}
    frontier = [S.IDLE]
    while frontier:
        state = frontier.pop()
        for (source, _), transition in TRANSITIONS.items():
            if source is state and transition.target not in seen:
                seen.add(transition.target)
                frontier.append(transition.target)
    return seen


class TotalityTests(SynchronousTestCase):
    """
    For every C{(state, input)} the exchange either moves as the table says
    or raises L{OfferAnswerError} and is DONE.
    """

    def check(self, exchange: Exchange, input: OfferAnswerInput) -> None:
        expected = TRANSITIONS.get((exchange.state, input))
        try:
            actions = exchange.process_input(input)
        except OfferAnswerError:
            self.assertIsNone(expected, f"{input} raised")
            self.assertIs(exchange.state, S.DONE)
        else:
            assert expected is not None
            self.assertEqual(actions, expected.actions)
            self.assertIs(exchange.state, expected.target)
        self.assertIn(exchange.state, set(S))

    def test_every_pair(self) -> None:
        """If any input comes in any state, the table is obeyed (or it raises and is DONE)."""
        for state in S:
            for input in I:
                self.check(Exchange(state), input)

    @given(st.lists(st.sampled_from(list(I)), max_size=30))
    def test_any_sequence(self, inputs: list[OfferAnswerInput]) -> None:
        """If any sequence of inputs comes, every step obeys the table."""
        exchange = Exchange()
        for input in inputs:
            self.check(exchange, input)

    def test_every_state_reachable(self) -> None:
        """Every state can be reached from IDLE through the table."""
        self.assertEqual(_reachable(), set(S))

    def test_done_is_terminal(self) -> None:
        """Nothing leaves DONE: the relay's late answers are absorbed there."""
        for (state, input), transition in TRANSITIONS.items():
            if state is S.DONE:
                self.assertIs(transition.target, S.DONE, input)
                self.assertTrue(transition.absorb, input)
        exchange = Exchange(S.DONE)
        self.assertEqual(exchange.process_input(I.ALLOCATED), (A.RELEASE_LATE,))

    def test_ends_every_live_state(self) -> None:
        """FAILED (except in ACTIVE), ENDED and RELAY_ENDED end every live exchange."""
        for state in LIVE_STATES:
            inputs = [I.ENDED, I.RELAY_ENDED] + ([] if state is S.ACTIVE else [I.FAILED])
            for input in inputs:
                exchange = Exchange(state)
                exchange.process_input(input)
                self.assertIs(exchange.state, S.DONE, (state, input))
                self.assertFalse(exchange.live)


class ExchangeTests(SynchronousTestCase):
    """The exchanges RFC 3264, 3262 and 3311 describe, step by step."""

    def run_inputs(self, *inputs: OfferAnswerInput) -> tuple[Exchange, list[tuple[A, ...]]]:
        exchange = Exchange()
        actions = [exchange.process_input(i) for i in inputs]
        return exchange, actions

    def test_offer_answer(self) -> None:
        """An offer in an INVITE, answered by its 200: allocate, send, update, activate."""
        exchange, actions = self.run_inputs(I.OFFER, I.ALLOCATED, I.ANSWER, I.UPDATED)
        self.assertEqual(
            actions,
            [(A.ALLOCATE,), (A.SEND_OFFER,), (A.UPDATE,), (A.SEND_ANSWER, A.ACTIVATE)],
        )
        self.assertIs(exchange.state, S.ACTIVE)
        self.assertEqual(exchange.history, [I.OFFER, I.ALLOCATED, I.ANSWER, I.UPDATED])

    def test_reoffer(self) -> None:
        """A new offer in a call with media is a REOFFER, its own action."""
        exchange, actions = self.run_inputs(I.REOFFER)
        self.assertEqual(actions, [(A.REOFFER,)])
        exchange, actions = self.run_inputs(I.OFFERLESS, I.LATE_REOFFER)
        self.assertEqual(actions, [(), (A.REOFFER,)])
        self.assertIs(exchange.state, S.ALLOCATING_LATE)

    def test_late_offer(self) -> None:
        """An INVITE without SDP: the offer in the 200, the answer in the ACK."""
        exchange, actions = self.run_inputs(
            I.OFFERLESS, I.LATE_OFFER, I.ALLOCATED, I.ACK_ANSWER, I.UPDATED
        )
        self.assertEqual(actions[-1], (A.SEND_ANSWER, A.ACTIVATE))
        self.assertIs(exchange.state, S.ACTIVE)

    def test_retransmission_waits(self) -> None:
        """An ACK retransmitted while the relay takes its answer waits."""
        exchange, _ = self.run_inputs(I.OFFERLESS, I.LATE_OFFER, I.ALLOCATED, I.ACK_ANSWER)
        self.assertEqual(exchange.process_input(I.ACK_ANSWER), (A.WAIT,))
        self.assertIs(exchange.state, S.ANSWERING)

    def test_early_answer_confirmed(self) -> None:
        """A 18x answers early; the 2xx without SDP confirms it."""
        exchange, actions = self.run_inputs(
            I.OFFER, I.ALLOCATED, I.EARLY_ANSWER, I.UPDATED, I.CONFIRMED
        )
        self.assertEqual(actions[-2:], [(A.SEND_ANSWER,), (A.ACTIVATE,)])
        self.assertIs(exchange.state, S.ACTIVE)

    def test_other_dialog_confirmed(self) -> None:
        """A 2xx of another early dialog puts its answer back first."""
        _exchange, actions = self.run_inputs(
            I.OFFER, I.ALLOCATED, I.EARLY_ANSWER, I.UPDATED, I.CONFIRMED_OTHER, I.UPDATED
        )
        self.assertEqual(actions[-2:], [(A.RESTORE_ANSWER,), (A.ACTIVATE,)])

    def test_glare(self) -> None:
        """A new offer while one is outstanding gets 491 (RFC 3261 14.2, RFC 3311 5.2)."""
        for inputs in (
            (I.OFFER,),
            (I.OFFER, I.ALLOCATED),
            (I.OFFERLESS,),
            (I.OFFERLESS, I.LATE_OFFER, I.ALLOCATED),
            (I.OFFER, I.ALLOCATED, I.ANSWER),
        ):
            exchange, _ = self.run_inputs(*inputs)
            state = exchange.state
            self.assertEqual(exchange.process_input(I.NEW_OFFER), (A.REFUSE_491,), inputs)
            self.assertIs(exchange.state, state)

    def test_new_offer_after_early_answer(self) -> None:
        """A new offer after an early answer makes that exchange the active one (RFC 6337)."""
        exchange, _ = self.run_inputs(I.OFFER, I.ALLOCATED, I.EARLY_ANSWER, I.UPDATED)
        self.assertEqual(exchange.process_input(I.NEW_OFFER), (A.ACTIVATE,))
        self.assertIs(exchange.state, S.ACTIVE)

    def test_refused(self) -> None:
        """The relay refuses the offer: the request is refused, the exchange is done."""
        exchange, actions = self.run_inputs(I.OFFER, I.ALLOCATION_REFUSED)
        self.assertEqual(actions[-1], (A.REFUSE,))
        self.assertIs(exchange.state, S.DONE)

    def test_late_allocation_released(self) -> None:
        """An allocation that comes after the call ended is released."""
        _exchange, actions = self.run_inputs(I.OFFER, I.ENDED, I.ALLOCATED)
        self.assertEqual(actions, [(A.ALLOCATE,), (A.RELEASE,), (A.RELEASE_LATE,)])

    def test_missing_pair_raises(self) -> None:
        """An answer before any offer raises L{OfferAnswerError} and ends the exchange."""
        exchange = Exchange()
        with self.assertRaises(OfferAnswerError):
            exchange.process_input(I.ANSWER)
        self.assertIs(exchange.state, S.DONE)
        self.assertFalse(exchange.accepts(I.OFFER))
