# -*- test-case-name: sipedge.test.test_transaction -*-
"""
The timer values of RFC 3261 section 17 and appendix A, with the RFC 6026
Timers L and M.

Only T1, T2, T4, the Timer D floor, the 100 Trying delay and the proxy's
Timer C are settings; every other timer is derived from them as the RFC
defines it, so changing T1 (as RFC 3261 17.1.1.1 allows on a known
low-latency network) changes A, B, E, F, G, H, J, L and M together.

   Timer    Value            Section               Meaning
   T1       500ms default    17.1.1.1              RTT estimate
   T2       4s               17.1.2.2              The maximum retransmit
                                                   interval for non-INVITE
                                                   requests and INVITE
                                                   responses
   T4       5s               17.1.2.2              Maximum duration a
                                                   message will remain in
                                                   the network
   Timer A  initially T1     17.1.1.2              INVITE request retransmit
   Timer B  64*T1            17.1.1.2              INVITE transaction timeout
   Timer C  > 3min           16.6 bullet 11        proxy INVITE timeout
   Timer D  > 32s for UDP    17.1.1.2              Wait time for response
            0s for TCP/SCTP                        retransmits
   Timer E  initially T1     17.1.2.2              non-INVITE retransmit
   Timer F  64*T1            17.1.2.2              non-INVITE timeout
   Timer G  initially T1     17.2.1                INVITE response retransmit
   Timer H  64*T1            17.2.1                Wait time for ACK receipt
   Timer I  T4 for UDP       17.2.1                Wait time for ACK
            0s for TCP/SCTP                        retransmits
   Timer J  64*T1 for UDP    17.2.2                Wait time for non-INVITE
            0s for TCP/SCTP                        request retransmits
   Timer K  T4 for UDP       17.1.2.2              Wait time for response
            0s for TCP/SCTP                        retransmits
   Timer L  64*T1            RFC 6026 8.7          Wait time for accepted
                                                   INVITE request retransmits
   Timer M  64*T1            RFC 6026 8.4          Wait time for
                                                   retransmission of 2xx
                                                   to INVITE or additional
                                                   2xx from other branches
                                                   of a forked INVITE
"""

from __future__ import annotations

import attrs

__all__ = ["TimerSettings"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


def _at_least_t1(instance: TimerSettings, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= instance.T1:
        raise ValueError(f"{attribute.name} must be at least T1, not {value!r}")


@attrs.frozen
class TimerSettings:
    """
    The transaction timer settings (RFC 3261 appendix A, RFC 6026).

    The attributes keep the RFC's names. The derived timers are properties
    (the same on every transport) or methods that take C{reliable}, because
    the RFC sets them to zero on a reliable transport.

    @ivar T1: the round-trip time estimate, 0.5 s.
    @ivar T2: the cap on the retransmission interval of non-INVITE requests
        and INVITE responses, 4 s.
    @ivar T4: how long a message may stay in the network, 5 s.
    @ivar timer_c: the proxy's INVITE timeout (RFC 3261 16.6 item 11), more
        than 3 minutes; the transaction layer does not use it.
    @ivar timer_d_unreliable: Timer D on an unreliable transport, at least
        32 s.
    @ivar trying_delay: how long an INVITE server transaction waits for the
        transaction user's first response before it sends 100 Trying itself
        (RFC 3261 17.2.1: "within 200 ms").
    """

    T1: float = attrs.field(default=0.5, validator=_positive)
    T2: float = attrs.field(default=4.0, validator=_at_least_t1)
    T4: float = attrs.field(default=5.0, validator=_positive)
    timer_c: float = attrs.field(default=180.0, validator=_positive)
    timer_d_unreliable: float = attrs.field(default=32.0, validator=_positive)
    trying_delay: float = attrs.field(default=0.2, validator=_positive)

    @property
    def timer_a(self) -> float:
        """The first INVITE request retransmission interval: T1."""
        return self.T1

    @property
    def timer_b(self) -> float:
        """The INVITE client transaction timeout: 64*T1."""
        return 64 * self.T1

    def timer_d(self, reliable: bool) -> float:
        """How long an INVITE client stays COMPLETED: 32 s, or 0 if reliable."""
        return 0.0 if reliable else self.timer_d_unreliable

    @property
    def timer_e(self) -> float:
        """The first non-INVITE request retransmission interval: T1."""
        return self.T1

    @property
    def timer_f(self) -> float:
        """The non-INVITE client transaction timeout: 64*T1."""
        return 64 * self.T1

    @property
    def timer_g(self) -> float:
        """The first INVITE final response retransmission interval: T1."""
        return self.T1

    @property
    def timer_h(self) -> float:
        """How long an INVITE server waits for the ACK: 64*T1."""
        return 64 * self.T1

    def timer_i(self, reliable: bool) -> float:
        """How long an INVITE server stays CONFIRMED: T4, or 0 if reliable."""
        return 0.0 if reliable else self.T4

    def timer_j(self, reliable: bool) -> float:
        """How long a non-INVITE server stays COMPLETED: 64*T1, or 0 if reliable."""
        return 0.0 if reliable else 64 * self.T1

    def timer_k(self, reliable: bool) -> float:
        """How long a non-INVITE client stays COMPLETED: T4, or 0 if reliable."""
        return 0.0 if reliable else self.T4

    @property
    def timer_l(self) -> float:
        """How long an INVITE server stays ACCEPTED: 64*T1 (RFC 6026)."""
        return 64 * self.T1

    @property
    def timer_m(self) -> float:
        """How long an INVITE client stays ACCEPTED: 64*T1 (RFC 6026)."""
        return 64 * self.T1
