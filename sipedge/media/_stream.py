# -*- test-case-name: sipedge.test.test_media -*-
"""
One media stream of a relayed call: each party's side (its legs, ports
and SRTP context), the a=crypto lines and keys of the exchange in force,
and an offer's plan for it (L{RelaySession} puts plans in force).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.interfaces import IListeningPort

from sipedge.media._errors import MediaOfferError
from sipedge.media._leg import RelayLeg
from sipedge.media._ports import PortAllocator
from sipedge.media._srtp import SrtpContext, SrtpKey
from sipedge.media._values import (
    DirectionStats,
    Party,
    RelayEndpoint,
    SdesCrypto,
    StreamOffer,
    ip_literal,
    ip_version,
)

__all__ = ["OfferPlan", "RelayStream", "Side", "endpoint", "remote_address"]

Address = tuple[str, int]


def remote_address(host: str, port: int, allocator: PortAllocator, what: str) -> Address | None:
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


class Side:
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

    @ivar offer: the offerer's description of it in the last exchange.
    @ivar answer: the answerer's, once answered.
    @ivar crypto: the a=crypto lines to advertise to each party.
    @ivar offered: the keys the relay offered each party, by tag.
    """

    def __init__(self, index: int, offer: StreamOffer) -> None:
        self.index = index
        self.offer = offer
        self.answer: StreamOffer | None = None
        self.sides: dict[Party, Side] = {}
        self.crypto: dict[Party, tuple[SdesCrypto, ...]] = {Party.A: (), Party.B: ()}
        self.offered: dict[Party, dict[int, SrtpKey]] = {Party.A: {}, Party.B: {}}

    @property
    def a(self) -> Side | None:
        return self.sides.get(Party.A)

    @property
    def b(self) -> Side | None:
        return self.sides.get(Party.B)

    def wire(self) -> None:
        """Point each side's legs at the other side's."""
        a, b = self.a, self.b
        if a is None or b is None:
            return
        for leg in a.legs:
            leg.connect(b.rtp, b.rtcp_target)
        for leg in b.legs:
            leg.connect(a.rtp, a.rtcp_target)


def endpoint(side: Side, crypto: tuple[SdesCrypto, ...], mux: bool) -> RelayEndpoint:
    """The relay's endpoint facing one party: what the SDP sent to it shows."""
    return RelayEndpoint(
        side.allocator.advertised,
        side.rtp.port or 0,
        None if side.rtcp is None else side.rtcp.port,
        mux,
        crypto,
    )


@attrs.define(eq=False)
class OfferPlan:
    """
    What an offer does to one stream, checked and ready: the offerer's
    address, keys and crypto lines, the lines and keys offered to the
    answerer, and, for a stream enabled (or whose offerer side must be
    bound again), the sides bound for it.
    """

    index: int
    offer: StreamOffer
    enabled: bool
    sides: dict[Party, Side]
    new_sides: dict[Party, Side]
    remote: Address | None = None
    rtcp_remote: Address | None = None
    context: SrtpContext | None = None
    to_offerer: tuple[SdesCrypto, ...] = ()
    to_answerer: tuple[SdesCrypto, ...] = ()
    offered: dict[int, SrtpKey] = attrs.Factory(dict)


