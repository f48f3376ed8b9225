# -*- test-case-name: sipedge.test.test_media -*-
"""
A relayed call: its streams, each with legs facing party A and party B,
their SRTP, the call's budget and its timers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.logger import Logger

from sipedge.media._budget import CallBudget
from sipedge.media._errors import MediaOfferError, SdesError
from sipedge.media._leg import Activity, RelayLeg
from sipedge.media._ports import PortAllocator
from sipedge.media._srtp import (
    CryptoSuite,
    SrtpContext,
    SrtpKey,
    check_session_params,
    suite_named,
)
from sipedge.media._values import (
    DirectionStats,
    LegPolicy,
    MediaLimits,
    MediaMode,
    RelayEndpoint,
    SdesCrypto,
    SessionStats,
    StreamAllocation,
    StreamOffer,
    ip_literal,
    ip_version,
)

__all__ = ["RelaySession", "RelayStream"]

Address = tuple[str, int]


def _remote(host: str, port: int, allocator: PortAllocator, what: str) -> Address | None:
    try:
        canonical = ip_literal(host)
    except ValueError:
        raise MediaOfferError(f"{what}: {host!r} is not an IP address") from None
    if canonical is None:
        return None
    if ip_version(canonical) != allocator.version:
        raise MediaOfferError(
            f"{what}: {host} is IPv{ip_version(canonical)}, the relay's "
            f"{allocator.advertised} is IPv{allocator.version}"
        )
    return (canonical, port)


def _usable_key(crypto: SdesCrypto, suites: Sequence[CryptoSuite]) -> SrtpKey:
    """The key of one a=crypto line, if the relay can use it (else SdesError)."""
    suite = suite_named(crypto.suite)
    if suite not in suites:
        raise SdesError(f"suite {crypto.suite} is not enabled")
    check_session_params(crypto.session_params)
    return SrtpKey.from_sdes(crypto.key_params, suite)


class _Side:
    """One party's legs in one stream."""

    def __init__(
        self,
        allocator: PortAllocator,
        rtp: RelayLeg,
        rtcp: RelayLeg | None,
        ports: Sequence[IListeningPort],
    ) -> None:
        self.allocator = allocator
        self.rtp = rtp
        self.rtcp = rtcp
        self.ports = list(ports)
        self.mux = rtcp is None
        self.context: SrtpContext | None = None

    @property
    def legs(self) -> tuple[RelayLeg, ...]:
        return (self.rtp,) if self.rtcp is None else (self.rtp, self.rtcp)

    @property
    def rtcp_target(self) -> RelayLeg:
        """The leg that sends RTCP to this party."""
        if self.mux or self.rtcp is None:
            return self.rtp
        return self.rtcp

    def use_context(self, context: SrtpContext | None) -> None:
        self.context = context
        for leg in self.legs:
            if context is None:
                leg.set_crypto(None, None)
            else:
                leg.set_crypto(context.unprotect, context.protect)

    def stats(self) -> DirectionStats:
        packets = octets = 0
        drops: dict[str, int] = {}
        for leg in self.legs:
            packets += leg.packets
            octets += leg.bytes
            for reason, count in leg.drops.items():
                drops[reason] = drops.get(reason, 0) + count
        return DirectionStats(packets, octets, drops)


class RelayStream:
    """
    One media stream (m= line) of a session: party A's legs (C{a}) and
    party B's (C{b}), or neither for a disabled stream (port 0).

    @ivar a_crypto: the a=crypto lines to advertise to A.
    @ivar b_crypto: the a=crypto lines to advertise to B.
    """

    def __init__(self, index: int, offer: StreamOffer) -> None:
        self.index = index
        self.offer = offer
        self.a: _Side | None = None
        self.b: _Side | None = None
        self.a_crypto: tuple[SdesCrypto, ...] = ()
        self.b_crypto: tuple[SdesCrypto, ...] = ()
        self.b_keys: dict[int, SrtpKey] = {}
        self.answer: StreamOffer | None = None

    @property
    def sides(self) -> tuple[_Side, ...]:
        return tuple(side for side in (self.a, self.b) if side is not None)

    def wire(self) -> None:
        """Point each side's legs at the other side's."""
        a, b = self.a, self.b
        if a is None or b is None:
            return
        for leg in a.legs:
            leg.connect(b.rtp, b.rtcp_target)
        for leg in b.legs:
            leg.connect(a.rtp, a.rtcp_target)

    def allocation(self, modes: tuple[MediaMode, MediaMode]) -> StreamAllocation:
        a, b = self.a, self.b
        if a is None or b is None:
            return StreamAllocation(
                RelayEndpoint(self._host(a), 0), RelayEndpoint(self._host(b), 0), *modes
            )
        a_end = RelayEndpoint(
            a.allocator.advertised,
            a.rtp.port or 0,
            None if a.rtcp is None else a.rtcp.port,
            a.mux,
            self.a_crypto,
        )
        b_end = RelayEndpoint(
            b.allocator.advertised,
            b.rtp.port or 0,
            None if b.rtcp is None else b.rtcp.port,
            self.offer.rtcp_mux,
            self.b_crypto,
        )
        return StreamAllocation(a_end, b_end, *modes)

    @staticmethod
    def _host(side: _Side | None) -> str:
        return side.allocator.advertised if side is not None else ""


class RelaySession:
    """
    A relayed call: L{RelayStream}s, the per-call budget shared by all its
    legs, and its timers (setup, idle, maximum duration) on C{clock}.
    Built by L{MediaRelay}; ends once, through L{close}, which releases its
    ports and calls C{on_end(session, reason)}.
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
        self._timer: IDelayedCall | None = None
        self._max_timer: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<RelaySession {self.key!r} {self.state} streams={len(self.streams)}>"

    @property
    def modes(self) -> tuple[MediaMode, MediaMode]:
        return (self.a_policy.mode, self.b_policy.mode)

    # -- building -----------------------------------------------------------

    def _leg(self, name: str) -> RelayLeg:
        return RelayLeg(
            f"{self.key}/{name}",
            self._clock,
            self.activity,
            budget=self.budget,
            max_packet_size=self.limits.max_packet_size,
        )

    def _bind(self, allocator: PortAllocator, name: str, mux: bool) -> _Side:
        rtp = self._leg(f"{name}-rtp" if not mux else f"{name}-mux")
        if mux:
            return _Side(allocator, rtp, None, [allocator.allocate(rtp)])
        rtcp = self._leg(f"{name}-rtcp")
        return _Side(allocator, rtp, rtcp, allocator.allocate_pair(rtp, rtcp))

    def offer(
        self,
        streams: Sequence[StreamOffer],
        a_ports: PortAllocator,
        b_ports: PortAllocator,
        suites: Sequence[CryptoSuite],
        random: Callable[[int], bytes],
    ) -> None:
        """
        Set up the streams of A's offer: bind ports, choose A's crypto and
        make ours, start the setup and duration timers.

        @raise MediaOfferError: if the offer cannot be served.
        @raise PortsExhausted: if ports ran out (nothing stays bound).
        """
        a_mode, b_mode = self.modes
        try:
            for index, offer in enumerate(streams):
                stream = RelayStream(index, offer)
                self.streams.append(stream)
                if offer.port == 0:
                    continue
                remote = _remote(offer.host, offer.port, a_ports, f"stream {index}")
                rtcp_remote = None
                if remote is not None and not offer.rtcp_mux:
                    rtcp_remote = (remote[0], offer.rtcp_port or offer.port + 1)
                a_crypto, a_context = self._offer_crypto_a(stream, a_mode, suites, random)
                stream.a = self._bind(a_ports, "a", offer.rtcp_mux)
                stream.b = self._bind(b_ports, "b", False)
                stream.a.rtp.expect(remote)
                if stream.a.rtcp is not None:
                    stream.a.rtcp.expect(rtcp_remote)
                stream.a_crypto = a_crypto
                stream.a.use_context(a_context)
                stream.b_crypto = self._offer_crypto_b(stream, b_mode, suites, random)
                stream.wire()
        except BaseException:
            self._release_ports()
            raise
        if self.limits.setup_timeout:
            self._timer = self._clock.callLater(
                self.limits.setup_timeout, self.close, "setup-timeout"
            )
        if self.limits.max_duration:
            self._max_timer = self._clock.callLater(
                self.limits.max_duration, self.close, "max-duration"
            )

    def _offer_crypto_a(
        self,
        stream: RelayStream,
        mode: MediaMode,
        suites: Sequence[CryptoSuite],
        random: Callable[[int], bytes],
    ) -> tuple[tuple[SdesCrypto, ...], SrtpContext | None]:
        offer = stream.offer
        if not mode.srtp:
            return (), None
        problems = []
        for crypto in offer.crypto:
            try:
                theirs = _usable_key(crypto, suites)
            except SdesError as e:
                problems.append(f"tag {crypto.tag}: {e}")
                continue
            ours = SrtpKey.generate(theirs.suite, random)
            return (
                (SdesCrypto(crypto.tag, crypto.suite, ours.to_sdes()),),
                SrtpContext(theirs, ours),
            )
        detail = "; ".join(problems) if problems else "no a=crypto"
        raise MediaOfferError(f"stream {stream.index}: no usable SRTP key ({detail})")

    def _offer_crypto_b(
        self,
        stream: RelayStream,
        mode: MediaMode,
        suites: Sequence[CryptoSuite],
        random: Callable[[int], bytes],
    ) -> tuple[SdesCrypto, ...]:
        if mode is MediaMode.PASSTHROUGH:
            return stream.offer.crypto
        if not mode.srtp:
            return ()
        crypto = []
        for tag, suite in enumerate(suites, start=1):
            key = SrtpKey.generate(suite, random)
            stream.b_keys[tag] = key
            crypto.append(SdesCrypto(tag, suite.name, key.to_sdes()))
        return tuple(crypto)

    def answer(self, streams: Sequence[StreamOffer]) -> None:
        """
        Apply B's answer (again for each answer: a 183 then a 200): B's
        addresses and keys; on the first one, start learning (NAT legs) and
        switch the setup timer to the idle timer.

        @raise MediaOfferError: if the answer does not fit the offer.
        """
        if len(streams) != len(self.streams):
            raise MediaOfferError(
                f"the answer has {len(streams)} streams, the offer {len(self.streams)}"
            )
        a_mode, b_mode = self.modes
        plans: list[tuple[Address | None, Address | None, SrtpContext | None] | None] = []
        for stream, answer in zip(self.streams, streams, strict=True):
            if stream.a is None or stream.b is None:
                plans.append(None)
                continue
            what = f"stream {stream.index}"
            remote = None
            rtcp_remote = None
            if answer.port:
                remote = _remote(answer.host, answer.port, stream.b.allocator, what)
            if remote is not None and not answer.rtcp_mux:
                rtcp_remote = (remote[0], answer.rtcp_port or answer.port + 1)
            context = self._answer_crypto_b(stream, answer, b_mode)
            plans.append((remote, rtcp_remote, context))
        # Everything checked: apply.
        now = self._clock.seconds()
        first = self.answered is None
        limits = self.limits
        for stream, answer, plan in zip(self.streams, streams, plans, strict=True):
            if plan is None or stream.a is None or stream.b is None:
                continue
            remote, rtcp_remote, context = plan
            stream.answer = answer
            b = stream.b
            b.mux = answer.rtcp_mux and remote is not None
            learn = (limits.nat_learn_packets, limits.nat_learn_seconds)
            self._expect(b.rtp, remote, self.b_policy.nat, learn)
            if b.rtcp is not None:
                self._expect(b.rtcp, None if b.mux else rtcp_remote, self.b_policy.nat, learn)
            if context is not b.context:
                b.use_context(context)
            if a_mode is MediaMode.PASSTHROUGH:
                stream.a_crypto = answer.crypto
            if first:
                for leg in stream.a.legs:
                    self._expect(leg, leg.remote, self.a_policy.nat, learn)
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

    @staticmethod
    def _expect(
        leg: RelayLeg, remote: Address | None, nat: bool, learn: tuple[int, float]
    ) -> None:
        leg.expect(remote, nat=nat, learn_packets=learn[0], learn_seconds=learn[1])

    def _answer_crypto_b(
        self, stream: RelayStream, answer: StreamOffer, mode: MediaMode
    ) -> SrtpContext | None:
        b = stream.b
        assert b is not None
        if not mode.srtp:
            return None
        if not answer.port:
            return b.context
        what = f"stream {stream.index}"
        if len(answer.crypto) != 1:
            raise MediaOfferError(
                f"{what}: the answer needs one a=crypto, it has {len(answer.crypto)}"
            )
        (crypto,) = answer.crypto
        ours = stream.b_keys.get(crypto.tag)
        if ours is None or ours.suite.name != crypto.suite:
            raise MediaOfferError(f"{what}: the answer's a=crypto {crypto.tag} was not offered")
        try:
            check_session_params(crypto.session_params)
            theirs = SrtpKey.from_sdes(crypto.key_params, ours.suite)
        except SdesError as e:
            raise MediaOfferError(f"{what}: {e}") from None
        if b.context is not None and b.context.inbound == theirs:
            return b.context
        return SrtpContext(theirs, ours)

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
            for side in stream.sides:
                for leg in side.legs:
                    leg.expect(None)
                    leg.set_crypto(None, None)
                for port in side.ports:
                    results.append(side.allocator.release(port))
                side.ports = []
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
        for stream in self.streams:
            for side in stream.sides:
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

    def allocation_streams(self) -> tuple[StreamAllocation, ...]:
        return tuple(stream.allocation(self.modes) for stream in self.streams)
