# -*- test-case-name: sipedge.test.test_testing_network -*-
"""
A misbehaving datagram network, by rule: latency and jitter (so
reordering), loss, duplication and mangling, each for the datagrams a
rule matches (by address, or by what the SIP message in them says).

A L{NetworkModel} is installed on a L{FakeDatagramNetwork}; every random
choice comes from its seeded C{random.Random} and every delay runs on its
clock (a L{FakeReactor} is both), so a run is repeatable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from sipedge.error import MessageParseError
from sipedge.message import Request, Response, parse_datagram
from sipedge.testing._datagrams import Datagram, FakeDatagramNetwork

__all__ = ["DatagramMatch", "NetworkModel", "NetworkRule", "sip_match"]

#: A test on a datagram: true if a rule applies to it.
DatagramMatch = Callable[[Datagram], bool]


def sip_match(
    method: str | Iterable[str] | None = None,
    status: int | Iterable[int] | None = None,
    header: str | None = None,
    pattern: str | None = None,
    source: tuple[str, int | None] | None = None,
    destination: tuple[str, int | None] | None = None,
) -> DatagramMatch:
    """
    A L{DatagramMatch} on the SIP message a datagram carries: its method
    (a response's CSeq method), its status, a C{header} whose value
    matches C{pattern} (C{re.search}); and its C{source} or C{destination}
    address (a port of C{None} matches any). A datagram that is no SIP
    message (keep-alives, RTP) matches only a rule without SIP criteria.
    """
    methods = {method} if isinstance(method, str) else set(method or ())
    statuses = {status} if isinstance(status, int) else set(status or ())
    regex = re.compile(pattern) if pattern is not None else None
    sip = bool(methods or statuses or header is not None)

    def address_ok(wanted: tuple[str, int | None] | None, actual: tuple[str, int]) -> bool:
        return wanted is None or (
            wanted[0] == actual[0] and wanted[1] in (None, actual[1])
        )

    def match(datagram: Datagram) -> bool:
        if not address_ok(source, datagram.source):
            return False
        if not address_ok(destination, datagram.destination):
            return False
        if not sip:
            return True
        try:
            message = parse_datagram(datagram.data)
            if isinstance(message, Request):
                if statuses:
                    return False
                found = message.method
            else:
                assert isinstance(message, Response)
                if statuses and message.status not in statuses:
                    return False
                found = message.cseq.method
        except (MessageParseError, ValueError):
            return False
        if methods and found not in methods:
            return False
        if header is not None:
            values = message.headers.get_all(header)
            if not values or (regex is not None and not any(regex.search(v) for v in values)):
                return False
        return True

    return match


@attrs.frozen
class NetworkRule:
    """
    What happens to the datagrams C{match} accepts (all, without one).

    @ivar latency: seconds each one takes.
    @ivar jitter: up to this many seconds more, at random (datagrams
        overtake each other: reordering).
    @ivar loss: the chance one is lost, 0 to 1.
    @ivar duplicate: the chance one arrives twice, 0 to 1.
    @ivar mangle: called with the bytes; what it returns arrives instead.
    """

    match: DatagramMatch | None = None
    latency: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    mangle: Callable[[bytes], bytes] | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("loss", "duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be from 0 to 1")
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter cannot be negative")

    def applies(self, datagram: Datagram) -> bool:
        return self.match is None or self.match(datagram)


class NetworkModel:
    """
    The rules of a L{FakeDatagramNetwork}: every datagram written goes
    through each rule that applies to it, in order.

    @ivar lost: the datagrams lost.
    @ivar duplicated: the datagrams that arrived twice.
    @ivar mangled: C{(before, after)} for each datagram changed.
    @ivar in_flight: how many delayed datagrams have not arrived yet.
    """

    def __init__(self, clock: Any, rules: Iterable[NetworkRule] = (), seed: int = 0) -> None:
        self.clock = clock
        self.rules: list[NetworkRule] = list(rules)
        self._random = random.Random(seed)
        self.lost: list[Datagram] = []
        self.duplicated: list[Datagram] = []
        self.mangled: list[tuple[Datagram, Datagram]] = []
        self.in_flight = 0
        self._network: FakeDatagramNetwork | None = None

    def add(self, rule: NetworkRule) -> NetworkRule:
        """Add C{rule} after the others; returns it (for L{remove})."""
        self.rules.append(rule)
        return rule

    def remove(self, rule: NetworkRule) -> None:
        self.rules.remove(rule)

    def install(self, network: FakeDatagramNetwork) -> NetworkModel:
        """Make this the model of C{network} (one model per network)."""
        network.model = self
        self._network = network
        return self

    def route(self, datagram: Datagram) -> list[tuple[float, Datagram]]:
        """
        What becomes of C{datagram}: C{(delay, datagram)} for each copy
        that arrives (none if it is lost).
        """
        copies = [(0.0, datagram)]
        for rule in self.rules:
            if not copies or not rule.applies(datagram):
                continue
            if rule.loss and self._random.random() < rule.loss:
                self.lost.append(datagram)
                return []
            if rule.mangle is not None:
                changed = attrs.evolve(datagram, data=rule.mangle(datagram.data))
                self.mangled.append((datagram, changed))
                copies = [(delay, changed) for delay, _ in copies]
                datagram = changed
            if rule.duplicate and self._random.random() < rule.duplicate:
                self.duplicated.append(datagram)
                copies = copies + copies[-1:]
            copies = [
                (delay + rule.latency + self._random.uniform(0, rule.jitter), d)
                if rule.latency or rule.jitter
                else (delay, d)
                for delay, d in copies
            ]
        return copies

    def arrive_later(self, delay: float, datagram: Datagram) -> None:
        """Deliver C{datagram} C{delay} seconds from now on the clock."""
        self.in_flight += 1
        self.clock.callLater(delay, self._arrive, datagram)

    def _arrive(self, datagram: Datagram) -> None:
        self.in_flight -= 1
        assert self._network is not None
        self._network.pending.append(datagram)
        self._network.flush()
