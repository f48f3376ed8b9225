# -*- test-case-name: sipedge.test.test_media -*-
"""
A relayed call: its streams, each with legs facing party A and party B,
their SRTP, the call's budget and its timers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sipedge.media._budget import CallBudget
from sipedge.media._errors import MediaOfferError
from sipedge.media._leg import Activity, RelayLeg
from sipedge.media._ports import PortAllocator
from sipedge.media._sdes import answer_context, answerer_keys, offerer_keys
from sipedge.media._srtp import CryptoSuite, SrtpContext
from sipedge.media._stream import OfferPlan, RelayStream, Side, endpoint, remote_address
from sipedge.media._values import (
    DirectionStats,
    LegPolicy,
    MediaLimits,
    MediaMode,
    Party,
    RelayEndpoint,
    SessionStats,
    StreamAllocation,
    StreamOffer,
    ip_literal,
)

__all__ = ["RelaySession", "RelayStream"]

Address = tuple[str, int]


class RelaySession:
    """
    A relayed call: L{RelayStream}s, the per-call budget shared by all its
    legs, and its timers (setup, idle, maximum duration) on C{clock}.
    Built by L{MediaRelay}; ends once, through L{close}, which releases its
    ports and calls C{on_end(session, reason)}.

    Party A made the first offer. Later offers (L{reoffer}) come from
    either party; they are checked and planned at once (ports bound only
    for streams added), and take effect with their answer (L{answer}), so
    media flows as before until then, and a refused re-offer (L{withdraw})
    leaves the session as it was.
    """

    _log = Logger()

    def __init__(
        self,
        key: str,
        clock: IReactorTime,
        legs: tuple[LegPolicy, LegPolicy],
        limits: MediaLimits,
        on_end: Callable[[RelaySession, str], object],
    ) -> None:
        self.key = key
        self._clock = clock
        self.a_policy, self.b_policy = legs
        self.policies = {Party.A: legs[0], Party.B: legs[1]}
        self.limits = limits
        self._on_end = on_end
        self.streams: list[RelayStream] = []
        self.created = clock.seconds()
        self.answered: float | None = None
        self.state = "offered"
        self.activity = Activity(self.created)
        self.budget: CallBudget | None = None
        if limits.max_packet_rate or limits.max_bandwidth:
            self.budget = CallBudget(
                limits.max_packet_rate,
                limits.packet_burst,
                limits.max_bandwidth,
                limits.bandwidth_burst,
                self.created,
            )
        self.ended_reason: str | None = None
        #: Who made the last offer.
        self.offerer = Party.A
        #: The IP address each party's signalling last came from.
        self.sources: dict[Party, str | None] = {Party.A: None, Party.B: None}
        self._allocators: dict[Party, PortAllocator] = {}
        self._suites: Sequence[CryptoSuite] = ()
        self._random: Callable[[int], bytes] = os.urandom
        self._pending: list[OfferPlan] | None = None
        self._committed_offerer = Party.A
        self._pending_source: str | None = None
        self._timer: IDelayedCall | None = None
        self._max_timer: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<RelaySession {self.key!r} {self.state} streams={len(self.streams)}>"

    @property
    def modes(self) -> tuple[MediaMode, MediaMode]:
        return (self.a_policy.mode, self.b_policy.mode)

    @property
    def reoffered(self) -> bool:
        """Whether a re-offer waits for its answer."""
        return self._pending is not None

    # -- building -----------------------------------------------------------

    def _leg(self, name: str) -> RelayLeg:
        return RelayLeg(
            f"{self.key}/{name}",
            self._clock,
            self.activity,
            budget=self.budget,
            max_packet_size=self.limits.max_packet_size,
        )

    def _bind(self, party: Party, mux: bool) -> Side:
        allocator = self._allocators[party]
        name = party.value
        rtp = self._leg(f"{name}-rtp" if not mux else f"{name}-mux")
        if mux:
            return Side(allocator, rtp, None, [allocator.allocate(rtp)])
        rtcp = self._leg(f"{name}-rtcp")
        return Side(allocator, rtp, rtcp, allocator.allocate_pair(rtp, rtcp))

    def _address(
        self,
        party: Party,
        source: str | None,
        host: str,
        port: int,
        rtcp_port: int | None,
        mux: bool,
        what: str,
    ) -> tuple[Address | None, Address | None]:
        """
        Where a party is, for the RTP and the RTCP legs: its SDP address,
        or, for a party behind NAT (its signalling source is known), that
        source's IP with the SDP's ports (learned from its packets later).
        """
        allocator = self._allocators[party]
        remote = remote_address(host, port, allocator, what)
        if source is None:
            source = self.sources[party]
        if remote is not None and source is not None:
            remote = remote_address(source, port, allocator, f"{what}: the signalling source")
        if remote is None or mux:
            return remote, None
        return remote, (remote[0], rtcp_port or port + 1)

    def offer(
        self,
        streams: Sequence[StreamOffer],
        a_ports: PortAllocator,
        b_ports: PortAllocator,
        suites: Sequence[CryptoSuite],
        random: Callable[[int], bytes],
        source: str | None = None,
    ) -> None:
        """
        Set up the streams of A's offer: bind ports, choose A's crypto and
        make ours, start the setup and duration timers.

        @param source: where A's signalling came from (L{MediaOffer.source}).
        @raise MediaOfferError: if the offer cannot be served.
        @raise PortsExhausted: if ports ran out (nothing stays bound).
        """
        self._allocators = {Party.A: a_ports, Party.B: b_ports}
        self._suites = tuple(suites)
        self._random = random
        self._check_source(source, Party.A)
        plans = self._plan(streams, Party.A, source)
        self._commit(plans, Party.A, source, first=True)
        if self.limits.setup_timeout:
            self._timer = self._clock.callLater(
                self.limits.setup_timeout, self.close, "setup-timeout"
            )
        if self.limits.max_duration:
            self._max_timer = self._clock.callLater(
                self.limits.max_duration, self.close, "max-duration"
            )

    def reoffer(self, streams: Sequence[StreamOffer], offerer: Party, source: str | None) -> None:
        """
        Plan a new offer from C{offerer} in the answered session: the
        streams it keeps keep their ports (and keys, where unchanged), an
        added or re-enabled stream gets new ones, a disabled one releases
        its ports at the answer. A re-offer still unanswered is replaced.

        @raise MediaOfferError: if it cannot be served (nothing changes).
        @raise PortsExhausted: if ports ran out (nothing changes).
        """
        if self.answered is None:
            raise MediaOfferError("the session's first offer has not been answered yet")
        if len(streams) < len(self.streams):
            raise MediaOfferError(
                f"the offer has {len(streams)} streams, the session {len(self.streams)}: "
                "m= lines are never removed (RFC 3264 8)"
            )
        self._check_source(source, offerer)
        plans = self._plan(streams, offerer, source)
        self.withdraw()
        self._pending = plans
        self._pending_source = source
        self.offerer = offerer

    def withdraw(self) -> bool:
        """
        Forget the re-offer waiting for its answer (it was refused), and
        release the ports it bound. True if there was one.
        """
        plans, self._pending = self._pending, None
        if plans is None:
            return False
        for plan in plans:
            self._release_sides(plan.new_sides.values())
        # Who offered last is who offered the exchange now in force.
        self.offerer = self._committed_offerer
        return True

    def _release_sides(self, sides: Iterable[Side]) -> list[Any]:
        """Close the ports of C{sides}; what closing them returned."""
        results = []
        for side in sides:
            for leg in side.legs:
                leg.expect(None)
                leg.set_crypto(None, None)
            for port in side.ports:
                results.append(side.allocator.release(port))
            side.ports = []
        return results

    def _check_source(self, source: str | None, party: Party) -> None:
        if source is None:
            return
        try:
            ip_literal(source)
        except ValueError:
            raise MediaOfferError(
                f"party {party.value}'s signalling source {source!r} is not an IP address"
            ) from None

    def _plan(
        self, streams: Sequence[StreamOffer], offerer: Party, source: str | None
    ) -> list[OfferPlan]:
        """
        Check an offer and bind what it adds; nothing else changes.

        @raise MediaOfferError: if it cannot be served (nothing stays bound).
        """
        answerer = offerer.other
        plans: list[OfferPlan] = []
        try:
            for index, offer in enumerate(streams):
                what = f"stream {index}"
                stream = self.streams[index] if index < len(self.streams) else None
                sides = dict(stream.sides) if stream is not None else {}
                plan = OfferPlan(index, offer, bool(offer.port), sides, {})
                plans.append(plan)
                if not offer.port:
                    continue
                plan.remote, plan.rtcp_remote = self._address(
                    offerer, source, offer.host, offer.port, offer.rtcp_port, offer.rtcp_mux, what
                )
                current = sides.get(offerer)
                context = current.context if current is not None else None
                plan.to_offerer, plan.context = offerer_keys(
                    offer, self.policies[offerer].mode, self._suites, self._random, context, what
                )
                previous = stream.offered[answerer] if stream is not None else {}
                theirs = sides.get(answerer)
                plan.to_answerer, plan.offered = answerer_keys(
                    offer,
                    self.policies[answerer].mode,
                    self._suites,
                    self._random,
                    previous,
                    theirs.context if theirs is not None else None,
                )
                if current is not None and current.rtcp is None and not offer.rtcp_mux:
                    # Bound for RTCP multiplexing, now wanted apart.
                    current = None
                if current is None:
                    plan.new_sides[offerer] = sides[offerer] = self._bind(offerer, offer.rtcp_mux)
                if answerer not in sides:
                    plan.new_sides[answerer] = sides[answerer] = self._bind(answerer, False)
        except BaseException:
            for plan in plans:
                self._release_sides(plan.new_sides.values())
            raise
        return plans

    def _commit(
        self, plans: Sequence[OfferPlan], offerer: Party, source: str | None, *, first: bool
    ) -> None:
        """Put an offer's plans in force (the first offer's at once, a re-offer's at its answer)."""
        answerer = offerer.other
        if source is not None:
            self.sources[offerer] = source
        for plan in plans:
            if plan.index < len(self.streams):
                stream = self.streams[plan.index]
                stream.offer = plan.offer
            else:
                stream = RelayStream(plan.index, plan.offer)
                self.streams.append(stream)
            if not plan.enabled:
                self._release_sides(stream.sides.values())
                stream.sides = {}
                stream.crypto = {Party.A: (), Party.B: ()}
                stream.answer = None
                continue
            replaced = [
                side for party, side in stream.sides.items() if plan.sides.get(party) is not side
            ]
            self._release_sides(replaced)
            stream.sides = dict(plan.sides)
            side = stream.sides[offerer]
            side.mux = plan.offer.rtcp_mux or side.rtcp is None
            self._point(
                side, plan.remote, plan.rtcp_remote, offerer,
                fresh=first or offerer in plan.new_sides,
            )
            if plan.context is not side.context:
                side.use_context(plan.context)
            stream.crypto[offerer] = plan.to_offerer
            stream.crypto[answerer] = plan.to_answerer
            stream.offered[answerer] = plan.offered
            stream.wire()
        self._committed_offerer = offerer

    def _learning(self, party: Party) -> dict[str, Any]:
        """
        How a party's legs learn: latching if its policy says so
        (L{LegPolicy.nat}) or it is behind NAT (its signalling source is
        known); then nothing is sent to it before its first packet.
        """
        behind = self.sources[party] is not None
        return {
            "nat": self.policies[party].nat or behind,
            "learn_packets": self.limits.nat_learn_packets,
            "learn_seconds": self.limits.nat_learn_seconds,
            "confirm": behind,
        }

    def _point(
        self,
        side: Side,
        remote: Address | None,
        rtcp_remote: Address | None,
        party: Party,
        *,
        fresh: bool,
    ) -> None:
        """Point a side's legs at the party: afresh, or as a re-offer moves it."""
        learning = self._learning(party) if not fresh or self.answered is not None else {}
        for leg, where in ((side.rtp, remote), (side.rtcp, None if side.mux else rtcp_remote)):
            if leg is None:
                continue
            if fresh:
                leg.expect(where, **learning)
            else:
                leg.retarget(where, **learning)

    def answer(self, streams: Sequence[StreamOffer], source: str | None = None) -> None:
        """
        Apply the answer to the last offer (again for each answer: a 183
        then a 200): the answerer's addresses and keys, and a re-offer's
        plan with it; on the first one, start learning (NAT legs) and switch
        the setup timer to the idle timer.

        @raise MediaOfferError: if the answer does not fit the offer
            (nothing changes; a re-offer stays pending).
        """
        pending = self._pending
        offerer = self.offerer
        answerer = offerer.other
        self._check_source(source, answerer)
        if pending is not None:
            views = [(p.enabled, p.sides.get(answerer), p.offered, p.offer) for p in pending]
        else:
            views = [
                (bool(s.sides), s.sides.get(answerer), s.offered[answerer], s.offer)
                for s in self.streams
            ]
        if len(streams) != len(views):
            raise MediaOfferError(
                f"the answer has {len(streams)} streams, the offer {len(views)}"
            )
        mode = self.policies[answerer].mode
        plans: list[tuple[Address | None, Address | None, SrtpContext | None] | None] = []
        for index, ((enabled, side, offered, _), answer) in enumerate(
            zip(views, streams, strict=True)
        ):
            if not enabled or side is None:
                plans.append(None)
                continue
            what = f"stream {index}"
            remote, rtcp_remote = (None, None)
            if answer.port:
                remote, rtcp_remote = self._address(
                    answerer, source, answer.host, answer.port, answer.rtcp_port,
                    answer.rtcp_mux, what,
                )
            new = pending is not None and answerer in pending[index].new_sides
            current = None if new else side.context
            context = answer_context(answer, mode, offered, current, what)
            plans.append((remote, rtcp_remote, context))
        # Everything checked: apply.
        if pending is not None:
            self._pending = None
            self._commit(pending, offerer, self._pending_source, first=False)
        if source is not None:
            self.sources[answerer] = source
        now = self._clock.seconds()
        first = self.answered is None
        limits = self.limits
        for stream, answer, plan in zip(self.streams, streams, plans, strict=True):
            if plan is None:
                continue
            remote, rtcp_remote, context = plan
            stream.answer = answer
            side = stream.sides[answerer]
            side.mux = answer.rtcp_mux and remote is not None
            self._point(side, remote, rtcp_remote, answerer, fresh=False)
            if context is not side.context:
                side.use_context(context)
            if self.policies[offerer].mode is MediaMode.PASSTHROUGH:
                stream.crypto[offerer] = answer.crypto
            if first:
                # The offerer learns the relay's address now: its legs
                # start learning (a NAT party's, latching).
                for leg in stream.sides[offerer].legs:
                    leg.expect(leg.signalled, **self._learning(offerer))
            stream.wire()
        if first:
            self.answered = now
            self.state = "answered"
            self.activity.last = now
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
            if limits.idle_timeout:
                self._timer = self._clock.callLater(limits.idle_timeout, self._check_idle)

    def allocation_streams(self) -> tuple[StreamAllocation, ...]:
        """
        Each stream's endpoints: those of a re-offer waiting for its
        answer, or those in force.
        """
        offerer = self.offerer
        answerer = offerer.other
        result = []
        items: Sequence[OfferPlan | RelayStream] = (
            self._pending if self._pending is not None else self.streams
        )
        for item in items:
            if isinstance(item, OfferPlan):
                enabled, sides, offer = item.enabled, item.sides, item.offer
                crypto = {offerer: item.to_offerer, answerer: item.to_answerer}
            else:
                enabled, sides, offer = bool(item.sides), item.sides, item.offer
                crypto = item.crypto
            ends = {Party.A: RelayEndpoint("", 0), Party.B: RelayEndpoint("", 0)}
            if enabled:
                side = sides[offerer]
                mux = side.mux if isinstance(item, RelayStream) else offer.rtcp_mux
                ends[offerer] = endpoint(side, crypto[offerer], mux or side.rtcp is None)
                side = sides[answerer]
                ends[answerer] = endpoint(
                    side, crypto[answerer], offer.rtcp_mux or side.rtcp is None
                )
            result.append(StreamAllocation(ends[Party.A], ends[Party.B], *self.modes))
        return tuple(result)

    # -- timers and the end ---------------------------------------------------

    def _check_idle(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        due = self.activity.last + self.limits.idle_timeout
        if now >= due:
            self.close("idle")
        else:
            self._timer = self._clock.callLater(due - now, self._check_idle)

    def _release_ports(self) -> list[Any]:
        results = []
        for stream in self.streams:
            results += self._release_sides(stream.sides.values())
        plans, self._pending = self._pending, None
        for plan in plans or ():
            results += self._release_sides(plan.new_sides.values())
        return results

    def close(self, reason: str = "released") -> list[Any]:
        """
        End the session (once): stop its timers, close its ports, call
        C{on_end}.

        @return: what closing the ports returned (Deferreds or C{None}s).
        """
        if self.state == "ended":
            return []
        self.state = "ended"
        for timer in (self._timer, self._max_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._max_timer = None
        results = self._release_ports()
        self.ended_reason = reason
        try:
            self._on_end(self, reason)
        except Exception:
            self._log.failure("on_end failed for {key}", key=self.key)
        return results

    # -- reporting --------------------------------------------------------------

    def ports(self) -> tuple[int, ...]:
        """The ports the session holds, sorted."""
        held = []
        sides = [side for stream in self.streams for side in stream.sides.values()]
        sides += [side for plan in self._pending or () for side in plan.new_sides.values()]
        for side in sides:
            if side.ports:
                held += [leg.port for leg in side.legs if leg.port is not None]
        return tuple(sorted(held))

    def stats(self) -> SessionStats:
        """A snapshot of the session's state and counters."""
        a_to_b = DirectionStats()
        b_to_a = DirectionStats()
        for stream in self.streams:
            if stream.a is not None:
                a_to_b = a_to_b + stream.a.stats()
            if stream.b is not None:
                b_to_a = b_to_a + stream.b.stats()
        return SessionStats(
            session_key=self.key,
            state=self.state,
            a_mode=self.a_policy.mode,
            b_mode=self.b_policy.mode,
            created=self.created,
            answered=self.answered,
            last_activity=self.activity.last,
            ports=self.ports(),
            a_to_b=a_to_b,
            b_to_a=b_to_a,
        )
