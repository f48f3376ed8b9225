# -*- test-case-name: sipedge.test.test_media -*-
"""
L{MediaRelay}: the in-process L{IMediaRelay}.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.interfaces import IMediaRelay
from sipedge.media._errors import (
    MediaOfferError,
    SessionExists,
    UnknownSession,
)
from sipedge.media._ports import PortAllocator
from sipedge.media._session import RelaySession
from sipedge.media._srtp import SUPPORTED_SUITES, CryptoSuite
from sipedge.media._values import (
    DEFAULT_LIMITS,
    DirectionStats,
    LegPolicy,
    MediaLimits,
    MediaOffer,
    Party,
    RelayAllocation,
    RelayPolicy,
    RelayStats,
    SessionEnd,
    SessionStats,
)

__all__ = ["DEFAULT_INTERFACE", "MediaRelay"]

#: The interface name of a relay given a single L{PortAllocator}.
DEFAULT_INTERFACE = "default"


@implementer(IMediaRelay)
class MediaRelay:
    """
    A media relay in this process: sessions of L{RelayLeg}s bound by
    L{PortAllocator}s, timed on an injected clock.

    Everything happens synchronously; the Deferreds it returns have already
    fired.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        ports: PortAllocator | Mapping[str, PortAllocator],
        *,
        limits: MediaLimits = DEFAULT_LIMITS,
        suites: Sequence[CryptoSuite] = SUPPORTED_SUITES,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        """
        @param clock: for timers and packet times (the reactor).
        @param ports: the port allocator, or allocators by interface name
            (L{LegPolicy.interface}); a single one is C{"default"}.
        @param limits: the limits of sessions whose policy gives none.
        @param suites: the SRTP suites the relay accepts from parties and
            offers them, in order of preference (those in
            L{SUPPORTED_SUITES}).
        @param random: where SRTP keys come from.
        """
        if isinstance(ports, PortAllocator):
            ports = {DEFAULT_INTERFACE: ports}
        if not ports:
            raise ValueError("a relay needs at least one port allocator")
        unsupported = [s.name for s in suites if s not in SUPPORTED_SUITES]
        if unsupported:
            raise ValueError(f"SRTP suites not supported here: {', '.join(unsupported)}")
        self._clock = clock
        self._allocators = dict(ports)
        self.limits = limits
        self._suites = tuple(suites)
        self._random = random
        self._sessions: dict[str, RelaySession] = {}
        self._observers: list[Callable[[SessionEnd], object]] = []
        self._allocated = 0
        self._ended: dict[str, int] = {}
        self._a_to_b = DirectionStats()
        self._b_to_a = DirectionStats()

    def __repr__(self) -> str:
        return f"<MediaRelay sessions={len(self._sessions)} ports={len(self.open_ports())}>"

    # -- IMediaRelay ----------------------------------------------------------

    def allocate(self, session_key: str, offer: MediaOffer) -> Deferred[RelayAllocation]:
        try:
            return succeed(self.allocate_now(session_key, offer))
        except Exception:
            return fail()

    def update(self, session_key: str, answer: MediaOffer) -> Deferred[RelayAllocation]:
        try:
            return succeed(self.update_now(session_key, answer))
        except Exception:
            return fail()

    def reoffer(
        self, session_key: str, offer: MediaOffer, offerer: Party
    ) -> Deferred[RelayAllocation]:
        try:
            return succeed(self.reoffer_now(session_key, offer, offerer))
        except Exception:
            return fail()

    def withdraw(self, session_key: str) -> Deferred[RelayAllocation]:
        try:
            return succeed(self.withdraw_now(session_key))
        except Exception:
            return fail()

    def release(self, session_key: str) -> Deferred[SessionStats | None]:
        return succeed(self.release_now(session_key))

    def sessions(self) -> Deferred[Mapping[str, SessionStats]]:
        return succeed({key: s.stats() for key, s in self._sessions.items()})

    def stats(self) -> Deferred[RelayStats]:
        return succeed(self.stats_now())

    def add_observer(self, observer: Callable[[SessionEnd], object]) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer: Callable[[SessionEnd], object]) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    # -- the same, synchronously ------------------------------------------------

    def allocate_now(self, session_key: str, offer: MediaOffer) -> RelayAllocation:
        """
        L{allocate}, returning or raising at once.

        @raise MediaOfferError: if the offer cannot be served.
        @raise PortsExhausted: if ports ran out.
        @raise SessionExists: if C{session_key} is live.
        """
        if session_key in self._sessions:
            raise SessionExists(f"session {session_key!r} is already allocated")
        policy = offer.policy if offer.policy is not None else RelayPolicy()
        legs = _legs(policy)
        allocators = []
        for leg in legs:
            allocator = self._allocators.get(leg.interface)
            if allocator is None:
                raise MediaOfferError(f"no relay interface named {leg.interface!r}")
            allocators.append(allocator)
        limits = policy.limits if policy.limits is not None else self.limits
        session = RelaySession(session_key, self._clock, legs, limits, self._ended_session)
        session.offer(
            offer.streams, allocators[0], allocators[1], self._suites, self._random, offer.source
        )
        self._sessions[session_key] = session
        self._allocated += 1
        # Once a call, like the session's end: info, as rtpengine logs calls.
        self._log.info(
            "Media session {key} allocated: {modes}, ports {ports}",
            key=session_key,
            modes="/".join(mode.value for mode in session.modes),
            ports=session.ports(),
        )
        return RelayAllocation(session_key, session.allocation_streams(), answered=False)

    def update_now(self, session_key: str, answer: MediaOffer) -> RelayAllocation:
        """
        L{update}, returning or raising at once.

        @raise MediaOfferError: if the answer does not fit the offer.
        @raise UnknownSession: if C{session_key} is not live.
        """
        session = self.session(session_key)
        if answer.policy is not None:
            raise MediaOfferError("the policy is fixed when the session is allocated")
        session.answer(answer.streams, answer.source)
        return RelayAllocation(session_key, session.allocation_streams(), answered=True)

    def reoffer_now(
        self, session_key: str, offer: MediaOffer, offerer: Party = Party.A
    ) -> RelayAllocation:
        """
        L{reoffer}, returning or raising at once.

        @raise MediaOfferError: if the offer cannot be served in place.
        @raise PortsExhausted: if ports for added streams ran out.
        @raise UnknownSession: if C{session_key} is not live.
        """
        session = self.session(session_key)
        if offer.policy is not None:
            legs = _legs(offer.policy)
            if offerer is Party.B:
                legs = (legs[1], legs[0])
            if legs != (session.a_policy, session.b_policy) or (
                offer.policy.limits is not None and offer.policy.limits != session.limits
            ):
                raise MediaOfferError(
                    "the policy of a re-offer must be the session's (allocate a new session)"
                )
        session.reoffer(offer.streams, offerer, offer.source)
        self._log.info(
            "Media session {key} re-offered by {party}: ports {ports}",
            key=session_key,
            party=offerer.value,
            ports=session.ports(),
        )
        return RelayAllocation(session_key, session.allocation_streams(), answered=False)

    def withdraw_now(self, session_key: str) -> RelayAllocation:
        """
        L{withdraw}, returning or raising at once.

        @raise UnknownSession: if C{session_key} is not live.
        """
        session = self.session(session_key)
        session.withdraw()
        return RelayAllocation(
            session_key, session.allocation_streams(), answered=session.answered is not None
        )

    def release_now(self, session_key: str) -> SessionStats | None:
        """L{release}, at once: the final statistics, or C{None}."""
        session = self._sessions.get(session_key)
        if session is None:
            return None
        session.close("released")
        return session.stats()

    def stats_now(self) -> RelayStats:
        """The relay's totals, now."""
        a_to_b, b_to_a = self._a_to_b, self._b_to_a
        for session in self._sessions.values():
            stats = session.stats()
            a_to_b = a_to_b + stats.a_to_b
            b_to_a = b_to_a + stats.b_to_a
        return RelayStats(
            sessions=len(self._sessions),
            allocated=self._allocated,
            ended=dict(self._ended),
            open_ports=len(self.open_ports()),
            a_to_b=a_to_b,
            b_to_a=b_to_a,
        )

    # -- in-process extras ----------------------------------------------------------

    def session(self, session_key: str) -> RelaySession:
        """
        The live session C{session_key}.

        @raise UnknownSession: if there is none.
        """
        session = self._sessions.get(session_key)
        if session is None:
            raise UnknownSession(f"no media session {session_key!r}")
        return session

    @property
    def session_keys(self) -> tuple[str, ...]:
        """The keys of the live sessions."""
        return tuple(self._sessions)

    def open_ports(self) -> list[tuple[str, int]]:
        """
        Every port the relay holds now, as C{(interface, port)}, sorted:
        empty when no session is live (the leak check).
        """
        return sorted(
            (name, port)
            for name, allocator in self._allocators.items()
            for port in allocator.open_ports()
        )

    def close(self) -> Deferred[None]:
        """
        End every session (reason C{closed}) and close its ports; fires
        when the ports are closed.
        """
        results: list[Any] = []
        for session in list(self._sessions.values()):
            results += session.close("closed")
        waiting = [r for r in results if isinstance(r, Deferred)]
        done: Deferred[Any] = gatherResults(waiting) if waiting else succeed(None)
        return done.addCallback(lambda _: None)

    def _ended_session(self, session: RelaySession, reason: str) -> None:
        self._sessions.pop(session.key, None)
        self._ended[reason] = self._ended.get(reason, 0) + 1
        stats = session.stats()
        self._a_to_b = self._a_to_b + stats.a_to_b
        self._b_to_a = self._b_to_a + stats.b_to_a
        self._log.info(
            "Media session {key} ended ({reason}): {a_packets} packets A to B, "
            "{b_packets} B to A, {dropped} dropped{why}",
            key=session.key,
            reason=reason,
            a_packets=stats.a_to_b.packets,
            b_packets=stats.b_to_a.packets,
            dropped=stats.a_to_b.dropped + stats.b_to_a.dropped,
            why=_drop_reasons(stats.a_to_b + stats.b_to_a),
            a_drops=dict(stats.a_to_b.drops),
            b_drops=dict(stats.b_to_a.drops),
        )
        end = SessionEnd(session.key, reason, stats)
        for observer in list(self._observers):
            try:
                observer(end)
            except Exception:
                self._log.failure("Media session observer {observer} failed", observer=observer)


def _legs(policy: RelayPolicy) -> tuple[LegPolicy, LegPolicy]:
    try:
        return policy.legs()
    except ValueError as e:
        raise MediaOfferError(str(e)) from None


def _drop_reasons(stats: DirectionStats) -> str:
    """C{" (foreign-source 12, malformed 1)"} for the session's end log; empty without drops."""
    if not stats.drops:
        return ""
    return " (" + ", ".join(f"{r} {n}" for r, n in sorted(stats.drops.items())) + ")"
