# -*- test-case-name: sipedge.test.test_media -*-
"""
A call's packet-rate and bandwidth budget: two token buckets checked
together for each packet, on a clock time the caller passes (sans-IO).
"""

from __future__ import annotations

__all__ = ["CallBudget"]


class CallBudget:
    """
    Two token buckets: one of packets (C{packet_rate} a second, holding at
    most C{packet_burst}) and one of bytes (C{byte_rate}, C{byte_burst}).
    A rate of 0 disables that bucket. Both start full. In any interval of
    C{t} seconds at most C{rate * t + burst} packets (bytes) get through.
    """

    __slots__ = ("_byte_burst", "_byte_rate", "_bytes", "_packet_burst",
                 "_packet_rate", "_packets", "_stamp")

    def __init__(
        self,
        packet_rate: float,
        packet_burst: float,
        byte_rate: float,
        byte_burst: float,
        now: float,
    ) -> None:
        inf = float("inf")
        self._packet_rate = packet_rate or inf
        self._packet_burst = packet_burst if packet_rate else inf
        self._byte_rate = byte_rate or inf
        self._byte_burst = byte_burst if byte_rate else inf
        self._packets = self._packet_burst
        self._bytes = self._byte_burst
        self._stamp = now

    def admit(self, size: int, now: float) -> str | None:
        """
        Take one packet of C{size} bytes at time C{now}: C{None} if it is
        within budget (the tokens are spent), else C{"rate"} or
        C{"bandwidth"} (nothing is spent).
        """
        elapsed = now - self._stamp
        if elapsed > 0:
            self._stamp = now
            packets = self._packets + elapsed * self._packet_rate
            self._packets = packets if packets < self._packet_burst else self._packet_burst
            octets = self._bytes + elapsed * self._byte_rate
            self._bytes = octets if octets < self._byte_burst else self._byte_burst
        if self._packets < 1:
            return "rate"
        if self._bytes < size:
            return "bandwidth"
        self._packets -= 1
        self._bytes -= size
        return None
