# -*- test-case-name: sipedge.test.test_media -*-
"""
A relay leg: one UDP socket of the relay, facing one party.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol

from sipedge.media._errors import SrtpError

if TYPE_CHECKING:
    from sipedge.media._budget import CallBudget

__all__ = ["Activity", "RelayLeg"]

Address = tuple[str, int]
Transform = Callable[[bytes], bytes]


def _closed(data: bytes, addr: Address) -> None:
    raise OSError(errno.EBADF, "the relay port is closed")


class Activity:
    """Where legs note the time of the last packet they forwarded."""

    __slots__ = ("last",)

    def __init__(self, now: float) -> None:
        self.last = now


class RelayLeg(DatagramProtocol):
    """
    One relay socket facing one party: RTP, RTCP, or both multiplexed.

    A packet is forwarded only if it comes from exactly C{remote}, the
    address the signalling named (strict, the default). Two exceptions:

     - latching (L{expect} with C{nat=True}, a party behind NAT): while
       the leg is learning, packets from the signalled IP on another port
       are accepted too, and the first one that gets through fixes
       C{remote} (it is learned once; a packet from C{remote} itself ends
       learning as well). On an SRTP leg (one that unprotects) only a
       packet that authenticates gets through, and learning lasts
       C{learn_seconds}; on any other leg it also ends after the first
       C{learn_packets} packets from that IP. Another IP never latches.
       With C{confirm}, nothing is sent to the party before it latches;
    - a re-offer that moves the party (L{retarget}): its previous address
       stays accepted until a packet from the new one arrives (RFC 3264 8:
       the party may send from the old port until it has the answer).

    Everything else is dropped and counted by reason in
    L{drops} (see L{sipedge.media.DROP_REASONS}).

    Packets are sent out of the other party's legs: RTCP (RFC 5761 4) to
    C{rtcp_out}, RTP to C{rtp_out}, each to that leg's C{remote}. On an
    SRTP leg (L{set_crypto}) what arrives is unprotected first, and what
    leaves is protected by the outgoing leg.

    @ivar remote: where the party is: packets are accepted from it and sent
        to it. C{None} before the signalling named it (everything is
        dropped as foreign).
    @ivar packets: packets forwarded from this leg.
    @ivar bytes: their bytes, as received.
    @ivar drops: packets dropped here, by reason.
    """

    transport: Any = None

    def __init__(
        self,
        name: str,
        clock: IReactorTime,
        activity: Activity | None = None,
        *,
        budget: CallBudget | None = None,
        max_packet_size: int = 1500,
    ) -> None:
        """
        @param name: for logs and C{repr}, e.g. C{"a-rtp"}.
        @param clock: read once per forwarded packet.
        @param activity: updated with the time of each forwarded packet
            (shared by a session's legs); by default the leg's own.
        @param budget: the call's rate budget (shared by its legs).
        @param max_packet_size: longer packets are dropped (C{too-long}).
        """
        self.name = name
        #: The local port, once bound.
        self.port: int | None = None
        self.remote: Address | None = None
        #: The address the signalling named (C{remote} before latching).
        self.signalled: Address | None = None
        #: A previous address still accepted (L{retarget}), or C{None}.
        self.previous: Address | None = None
        self.packets = 0
        self.bytes = 0
        self.drops: dict[str, int] = {}
        self._clock = clock
        self._activity = activity if activity is not None else Activity(clock.seconds())
        self._budget = budget
        self._max_size = max_packet_size
        self.rtp_out: RelayLeg | None = None
        self.rtcp_out: RelayLeg | None = None
        self._unprotect: Transform | None = None
        self._protect: Transform | None = None
        self._learning = False
        self._learn_left = 0
        self._learn_until = 0.0
        # The IP a latching leg learns from (the signalled one).
        self._learn_ip: str | None = None
        # learning or a previous address: the forwarding path has
        # something to settle after a packet got through.
        self._watch = False
        self._sendto: Callable[[bytes, Address], object] = _closed

    def __repr__(self) -> str:
        return f"<RelayLeg {self.name} :{self.port} remote={self.remote}>"

    def startProtocol(self) -> None:
        transport = self.transport
        self.port = transport.getHost().port
        # A real UDP port's socket sends straight away. Twisted's write()
        # checks the address is an IP literal of the right family on every
        # call (about 1.3 us, a fifth of the plain path); the relay checked
        # its remotes once, when the signalling named them.
        handle = getattr(transport, "getHandle", None)
        self._sendto = handle().sendto if handle is not None else transport.write

    def stopProtocol(self) -> None:
        self._sendto = _closed

    @property
    def learning(self) -> bool:
        """True while the leg may still learn its remote port (NAT mode)."""
        return self._learning

    def expect(
        self,
        remote: Address | None,
        *,
        nat: bool = False,
        learn_packets: int = 10,
        learn_seconds: float = 10.0,
        confirm: bool = False,
    ) -> None:
        """
        Accept media from, and send it to, C{remote} (an IP literal in
        canonical form, and a port), or nothing (C{None}). With C{nat},
        learn the port as the class docstring says, from now on. With
        C{confirm} too (a party behind NAT: C{remote} is its signalling
        source address with the SDP's port, a guess), nothing is sent to
        the party until its first packet says where it is. Forgets any
        previous address.
        """
        self.signalled = remote
        self.previous = None
        self._learn_ip = remote[0] if remote is not None else None
        self._learning = bool(
            nat and remote is not None and (learn_packets > 0 or confirm)
        )
        self.remote = None if confirm and self._learning else remote
        self._learn_left = learn_packets
        self._learn_until = self._clock.seconds() + learn_seconds
        self._watch = self._learning

    def retarget(
        self,
        remote: Address | None,
        *,
        nat: bool = False,
        learn_packets: int = 10,
        learn_seconds: float = 10.0,
        confirm: bool = False,
    ) -> None:
        """
        A re-offer or its answer signalled C{remote} for this party.
        The same address as before changes nothing (a port learned behind
        NAT is kept). A new one is used from now on, and learned again with
        C{nat}; the address the party used until now stays accepted until
        a packet comes from the new one, so media goes on meanwhile.
        """
        if remote == self.signalled:
            return
        old = self.remote
        previous = old if old is not None else self.previous
        self.expect(
            remote,
            nat=nat,
            learn_packets=learn_packets,
            learn_seconds=learn_seconds,
            confirm=confirm,
        )
        if previous is not None and previous != remote:
            self.previous = previous
            self._watch = True

    def connect(self, rtp_out: RelayLeg, rtcp_out: RelayLeg) -> None:
        """Send RTP out of C{rtp_out} and RTCP out of C{rtcp_out}."""
        self.rtp_out = rtp_out
        self.rtcp_out = rtcp_out

    def set_crypto(self, unprotect: Transform | None, protect: Transform | None) -> None:
        """
        Unprotect what arrives here with C{unprotect}, and protect what
        this leg sends with C{protect} (an L{SrtpContext}'s methods); C{None}
        for none.
        """
        self._unprotect = unprotect
        self._protect = protect

    def drop(self, reason: str) -> None:
        """Count one packet dropped for C{reason}."""
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _settle(self, addr: Address) -> None:
        """A packet from C{addr} got through: latch on it, forget the old address."""
        if self._learning and addr != self.previous:
            self._learning = False
            self.remote = addr
        if addr == self.remote:
            self.previous = None
        self._watch = self.previous is not None

    def _admit_learning(self, addr: Address) -> bool:
        """
        Whether a packet from C{addr} (not C{remote}) may be taken while
        learning: C{remote}'s IP, in time, and on a leg that does not
        authenticate, within the first packets.
        """
        if not self._learning or addr[0] != self._learn_ip:
            return False
        if self._clock.seconds() >= self._learn_until:
            self._learning = False
            self._watch = self.previous is not None
            return False
        if self._unprotect is None:
            if self._learn_left <= 0:
                self._learning = False
                self._watch = self.previous is not None
                return False
            self._learn_left -= 1
        return True

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        # The hot path: keep it flat, no allocation beyond what libsrtp does.
        if addr != self.remote and addr != self.previous and not self._admit_learning(addr):
            self.drop("foreign-source")
            return
        size = len(data)
        if size > self._max_size:
            self.drop("too-long")
            return
        if size < 8 or data[0] & 0xC0 != 0x80:
            self.drop("malformed")
            return
        if 192 <= data[1] <= 223:  # RTCP (RFC 5761 4)
            out = self.rtcp_out
        elif size < 12:
            self.drop("malformed")
            return
        else:
            out = self.rtp_out
        now = self._clock.seconds()
        budget = self._budget
        if budget is not None:
            refused = budget.admit(size, now)
            if refused is not None:
                self.drop(refused)
                return
        if out is None or out.remote is None:
            self.drop("no-destination")
            return
        try:
            unprotect = self._unprotect
            if unprotect is not None:
                data = unprotect(data)
            protect = out._protect
            if protect is not None:
                data = protect(data)
            out._sendto(data, out.remote)
        except SrtpError as e:
            self.drop(e.reason)
            return
        except (OSError, MessageLengthError):
            self.drop("send-error")
            return
        self.packets += 1
        self.bytes += size
        self._activity.last = now
        if self._watch:
            self._settle(addr)
