# -*- test-case-name: sipedge.test.test_media -*-
"""
The values that cross L{sipedge.interfaces.IMediaRelay}: what the
signalling side tells the relay (L{MediaOffer}, L{RelayPolicy}), what the
relay answers (L{RelayAllocation}) and what it reports (L{SessionStats},
L{RelayStats}, L{SessionEnd}).

All are frozen attrs classes holding only C{str}, C{int}, C{float},
C{bool}, enums, tuples and (in statistics) C{dict}s of those, so a remote
relay can carry them over a control protocol as they are (e.g. with
C{attrs.asdict} and back). No Twisted, no sockets here.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Iterable, Mapping

import attrs

__all__ = [
    "DEFAULT_LIMITS",
    "DROP_REASONS",
    "END_REASONS",
    "MODE_PAIRS",
    "DirectionStats",
    "LegPolicy",
    "MediaLimits",
    "MediaMode",
    "MediaOffer",
    "Party",
    "RelayAllocation",
    "RelayEndpoint",
    "RelayPolicy",
    "RelayStats",
    "SdesCrypto",
    "SessionEnd",
    "SessionStats",
    "StreamAllocation",
    "StreamOffer",
]

#: Why a leg drops a packet (the keys of L{DirectionStats.drops}):
#:  - C{foreign-source}: not from the address the signalling named (or
#:    learned, in NAT mode);
#:  - C{malformed}: shorter than an RTP/RTCP header, or not version 2;
#:  - C{too-long}: over the size limit, or too long for SRTP;
#:  - C{rate}, C{bandwidth}: over the call's packet-rate or byte-rate budget;
#:  - C{srtp-auth}: failed SRTP/SRTCP authentication (forged, tampered);
#:  - C{srtp-replay}: a replayed (or too old) SRTP/SRTCP packet;
#:  - C{srtp-error}: any other libsrtp failure;
#:  - C{no-destination}: the other side's address is not known yet;
#:  - C{send-error}: the socket refused to send it.
DROP_REASONS = (
    "foreign-source",
    "malformed",
    "too-long",
    "rate",
    "bandwidth",
    "srtp-auth",
    "srtp-replay",
    "srtp-error",
    "no-destination",
    "send-error",
)

#: Why a session ends (L{SessionEnd.reason}):
#:  - C{released}: the signalling released it (BYE, CANCEL, failure);
#:  - C{idle}: no media forwarded for C{idle_timeout} seconds;
#:  - C{setup-timeout}: no answer (L{IMediaRelay.update}) in time;
#:  - C{max-duration}: the call reached C{max_duration};
#:  - C{closed}: the relay was shut down;
#:  - C{lost}: a remote relay no longer had it when the proxy reconnected
#:    (it ended while the proxy was disconnected, or the relay restarted);
#:    reported by L{sipedge.media.RemoteMediaRelay}, never by a relay, with
#:    the statistics known at allocation (counters zero).
END_REASONS = ("released", "idle", "setup-timeout", "max-duration", "closed", "lost")


class MediaMode(enum.Enum):
    """
    What a leg does with the media it carries. A session's two legs form
    one of L{MODE_PAIRS}.
    """

    #: RTP on this leg.
    PLAIN = "plain"
    #: SRTP on this leg, decrypted (and encrypted towards it) by the relay;
    #: the other leg is L{PLAIN}.
    SRTP_TERMINATE = "srtp-terminate"
    #: SRTP on this leg and on the other one, with different keys: the
    #: relay decrypts with one leg's keys and encrypts with the other's.
    SRTP_REKEY = "srtp-rekey"
    #: SRTP end to end: the relay forwards the packets untouched and the
    #: endpoints' a=crypto lines pass between them unchanged.
    PASSTHROUGH = "passthrough"

    @property
    def srtp(self) -> bool:
        """True if the relay does SRTP on a leg in this mode."""
        return self in (MediaMode.SRTP_TERMINATE, MediaMode.SRTP_REKEY)


class Party(enum.Enum):
    """
    A session's two parties: C{A} made the first offer (L{IMediaRelay.allocate}),
    C{B} answered it. They keep their sides for the session's life: a
    re-offer from B (L{IMediaRelay.reoffer}) does not swap them.
    """

    A = "a"
    B = "b"

    @property
    def other(self) -> Party:
        """The other party."""
        return Party.B if self is Party.A else Party.A


#: The (leg A, leg B) mode pairs a session can have.
MODE_PAIRS = frozenset(
    {
        (MediaMode.PLAIN, MediaMode.PLAIN),
        (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN),
        (MediaMode.PLAIN, MediaMode.SRTP_TERMINATE),
        (MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY),
        (MediaMode.PASSTHROUGH, MediaMode.PASSTHROUGH),
    }
)

_PARTNER = {
    MediaMode.PLAIN: MediaMode.PLAIN,
    MediaMode.SRTP_TERMINATE: MediaMode.PLAIN,
    MediaMode.SRTP_REKEY: MediaMode.SRTP_REKEY,
    MediaMode.PASSTHROUGH: MediaMode.PASSTHROUGH,
}


def _non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{attribute.name} must be a number, not {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be finite and not negative, not {value!r}")


def _port_number(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is None and attribute.name == "rtcp_port":
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be a port number (0-65535), not {value!r}")


@attrs.frozen
class MediaLimits:
    """
    Per-call limits. A zero disables a limit.

    @ivar max_packet_rate: packets a second the whole call (every stream,
        both directions) may send through the relay, as a token bucket...
    @ivar packet_burst: ...that holds this many packets.
    @ivar max_bandwidth: bytes a second, likewise...
    @ivar bandwidth_burst: ...with this bucket size (at least
        C{max_packet_size}).
    @ivar max_packet_size: longer datagrams are dropped (C{too-long}).
    @ivar idle_timeout: seconds without a forwarded packet, once answered,
        after which the session ends (C{idle}). RTCP counts, so a call on
        hold with RTCP running stays up.
    @ivar setup_timeout: seconds from allocation to the answer.
    @ivar max_duration: seconds from allocation after which the session
        ends whatever happens.
    @ivar nat_learn_packets: in NAT mode, a leg may learn its remote port
        from the first this many packets from the signalled IP...
    @ivar nat_learn_seconds: ...that arrive within this many seconds of the
        answer; after that its remote address is fixed.
    """

    max_packet_rate: float = attrs.field(default=2000.0, validator=_non_negative)
    packet_burst: float = attrs.field(default=1000.0, validator=_non_negative)
    max_bandwidth: float = attrs.field(default=2_500_000.0, validator=_non_negative)
    bandwidth_burst: float = attrs.field(default=1_000_000.0, validator=_non_negative)
    max_packet_size: int = attrs.field(default=1500, validator=_non_negative)
    idle_timeout: float = attrs.field(default=60.0, validator=_non_negative)
    setup_timeout: float = attrs.field(default=300.0, validator=_non_negative)
    max_duration: float = attrs.field(default=4 * 3600.0, validator=_non_negative)
    nat_learn_packets: int = attrs.field(default=10, validator=_non_negative)
    nat_learn_seconds: float = attrs.field(default=10.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.max_packet_rate and self.packet_burst < 1:
            raise ValueError("packet_burst must be at least 1 when max_packet_rate is set")
        if self.max_bandwidth and self.bandwidth_burst < self.max_packet_size:
            raise ValueError(
                "bandwidth_burst must be at least max_packet_size when max_bandwidth is set"
            )


#: The limits a relay applies unless told otherwise.
DEFAULT_LIMITS = MediaLimits()


@attrs.frozen
class LegPolicy:
    """
    How the relay treats one leg.

    @ivar mode: see L{MediaMode}.
    @ivar interface: which of the relay's port allocators (addresses)
        faces this party, e.g. C{"inside"} or C{"outside"}.
    @ivar nat: accept the party's media from the signalled IP on another
        port than signalled, learning the port from its first packets
        (L{MediaLimits.nat_learn_packets}); off by default (strict: only
        the exact signalled address and port). A party whose offer or
        answer carries a L{MediaOffer.source} latches whatever this says,
        on that source's IP.
    """

    mode: MediaMode = MediaMode.PLAIN
    interface: str = "default"
    nat: bool = False


@attrs.frozen
class RelayPolicy:
    """
    How the relay treats a session, fixed when it is allocated.

    @ivar a: leg A (the offerer's).
    @ivar b: leg B (the answerer's); C{None} gives the mode that goes with
        C{a.mode} (plain with plain and srtp-terminate, srtp-rekey with
        srtp-rekey, passthrough with passthrough) on the same interface,
        without NAT learning.
    @ivar limits: C{None} for the relay's defaults.
    """

    a: LegPolicy = LegPolicy()
    b: LegPolicy | None = None
    limits: MediaLimits | None = None

    def legs(self) -> tuple[LegPolicy, LegPolicy]:
        """
        Both legs' policies, C{b} filled in.

        @raise ValueError: if the two modes do not make one of
            L{MODE_PAIRS}.
        """
        b = self.b
        if b is None:
            b = LegPolicy(_PARTNER[self.a.mode], self.a.interface)
        if (self.a.mode, b.mode) not in MODE_PAIRS:
            raise ValueError(f"legs in {self.a.mode.value} and {b.mode.value} cannot be combined")
        return self.a, b


@attrs.frozen
class SdesCrypto:
    """
    One SDES crypto attribute, C{a=crypto:<tag> <suite> <key-params>
    [<session-params>]} (RFC 4568 9.1). C{key_params} (the C{inline:} key)
    is left out of C{repr} so keys stay out of logs.
    """

    tag: int
    suite: str
    key_params: str = attrs.field(repr=False)
    session_params: str | None = None

    def to_value(self) -> str:
        """The attribute's value (after C{a=crypto:})."""
        session = f" {self.session_params}" if self.session_params else ""
        return f"{self.tag} {self.suite} {self.key_params}{session}"


def _crypto_tuple(items: Iterable[SdesCrypto]) -> tuple[SdesCrypto, ...]:
    return tuple(items)


@attrs.frozen
class StreamOffer:
    """
    One media stream (m= line) as a party signalled it.

    @ivar host: the connection address (c=), an IP literal; C{0.0.0.0} or
        C{::} for none (old-style hold): the leg then accepts nothing.
    @ivar port: the RTP port (m=); 0 when the stream is rejected or
        disabled (RFC 3264 6): no relay ports for it.
    @ivar rtcp_port: a=rtcp (RFC 3605); C{None} for C{port + 1}.
    @ivar rtcp_mux: a=rtcp-mux (RFC 5761): RTP and RTCP on C{port}.
    @ivar crypto: the party's a=crypto lines, in its order of preference
        (an answer has at most one).
    @ivar media: the media type (audio, video...), for statistics.
    """

    host: str
    port: int = attrs.field(validator=_port_number)
    rtcp_port: int | None = attrs.field(default=None, validator=_port_number)
    rtcp_mux: bool = False
    crypto: tuple[SdesCrypto, ...] = attrs.field(default=(), converter=_crypto_tuple)
    media: str = "audio"


def _stream_tuple(items: Iterable[StreamOffer]) -> tuple[StreamOffer, ...]:
    return tuple(items)


@attrs.frozen
class MediaOffer:
    """
    One party's session description, as the relay needs it: the offer
    (L{IMediaRelay.allocate}, with the policy; L{IMediaRelay.reoffer}) or
    the answer (L{IMediaRelay.update}, C{policy} left C{None}).

    @ivar source: the IP address this party's signalling came from (the
        request's or response's source), or C{None}. Used only when the
        party's leg latches (L{LegPolicy.nat}): the relay then accepts
        the party's media from this address, on the port it learns,
        instead of from the SDP's address (a phone behind NAT writes its
        private address in SDP). Control protocol version 2.
    """

    streams: tuple[StreamOffer, ...] = attrs.field(converter=_stream_tuple)
    policy: RelayPolicy | None = None
    source: str | None = attrs.field(default=None, metadata={"since": 2})


@attrs.frozen
class RelayEndpoint:
    """
    The relay's side of one stream, facing one party: what the SDP that
    party receives must show.

    @ivar host: the address for c=.
    @ivar port: the port for m= (0 for a disabled stream).
    @ivar rtcp_port: the port for a=rtcp, or C{None} when RTCP shares
        C{port} only.
    @ivar rtcp_mux: whether to put a=rtcp-mux.
    @ivar crypto: the a=crypto lines to put (empty for RTP/AVP).
    """

    host: str
    port: int
    rtcp_port: int | None = None
    rtcp_mux: bool = False
    crypto: tuple[SdesCrypto, ...] = attrs.field(default=(), converter=_crypto_tuple)


@attrs.frozen
class StreamAllocation:
    """
    One stream's relay endpoints: C{a} goes in the answer sent to party A,
    C{b} in the offer sent to party B.
    """

    a: RelayEndpoint
    b: RelayEndpoint
    a_mode: MediaMode
    b_mode: MediaMode


@attrs.frozen
class RelayAllocation:
    """
    What the SDP rewriter needs for a session: one L{StreamAllocation}
    per stream of the offer, in order. After L{IMediaRelay.allocate} the
    B endpoints are complete (rewrite the offer with them); after
    L{IMediaRelay.update} the A endpoints are too (rewrite the answer).

    @ivar answered: whether L{IMediaRelay.update} has been called.
    """

    session_key: str
    streams: tuple[StreamAllocation, ...]
    answered: bool = False


@attrs.frozen
class DirectionStats:
    """
    Counters of one direction of a session (or of the whole relay).

    @ivar packets: packets forwarded.
    @ivar bytes: bytes of those packets as received.
    @ivar drops: dropped packets by reason (L{DROP_REASONS}); only reasons
        that happened are present.
    """

    packets: int = 0
    bytes: int = 0
    drops: Mapping[str, int] = attrs.field(factory=dict, hash=False)

    @property
    def dropped(self) -> int:
        """All dropped packets."""
        return sum(self.drops.values())

    def __add__(self, other: DirectionStats) -> DirectionStats:
        drops = dict(self.drops)
        for reason, count in other.drops.items():
            drops[reason] = drops.get(reason, 0) + count
        return DirectionStats(self.packets + other.packets, self.bytes + other.bytes, drops)


@attrs.frozen
class SessionStats:
    """
    A session's state and counters.

    @ivar state: C{"offered"} (allocated, no answer yet), C{"answered"} or
        C{"ended"}.
    @ivar created: clock time of the allocation.
    @ivar answered: clock time of the first answer, or C{None}.
    @ivar last_activity: clock time of the last forwarded packet (the
        answer's time if none since).
    @ivar ports: the relay ports it holds (both sides), sorted.
    @ivar a_to_b: media from party A towards B (received on leg A).
    @ivar b_to_a: media from party B towards A.
    """

    session_key: str
    state: str
    a_mode: MediaMode
    b_mode: MediaMode
    created: float
    answered: float | None
    last_activity: float
    ports: tuple[int, ...]
    a_to_b: DirectionStats
    b_to_a: DirectionStats


@attrs.frozen
class RelayStats:
    """
    The relay's totals, since it started (ended sessions included).

    @ivar sessions: live sessions.
    @ivar allocated: sessions allocated.
    @ivar ended: ended sessions by reason (L{END_REASONS}).
    @ivar open_ports: ports bound now.
    @ivar a_to_b: every session's A-to-B counters, summed.
    @ivar b_to_a: likewise, B to A.
    """

    sessions: int
    allocated: int
    ended: Mapping[str, int] = attrs.field(hash=False)
    open_ports: int
    a_to_b: DirectionStats
    b_to_a: DirectionStats


@attrs.frozen
class SessionEnd:
    """A session ended: why (L{END_REASONS}) and its final statistics."""

    session_key: str
    reason: str
    stats: SessionStats


def ip_literal(host: str) -> str | None:
    """
    C{host} in canonical form (as sockets report source addresses), or
    C{None} for the unspecified address (no media expected).

    @raise ValueError: if C{host} is not an IP literal.
    """
    address = ipaddress.ip_address(host.strip("[]"))
    if address.is_unspecified:
        return None
    return str(address)


def ip_version(host: str) -> int:
    """4 or 6 (a wildcard C{""} counts as IPv4)."""
    if not host:
        return 4
    return ipaddress.ip_address(host.strip("[]")).version
