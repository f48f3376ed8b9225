# -*- test-case-name: sipedge.test.test_proxy_keepalive -*-
"""
Keeping the NAT bindings of registered phones open (cf. Kamailio's
nathelper C{natping_interval} with C{sipping_*}).

A home router forgets a UDP mapping after some idle time (often 30
seconds, some 20). A phone behind it that registered for an hour is then
unreachable until it registers again: incoming calls are lost. So every
C{interval} seconds we send each registered UDP phone behind NAT an
OPTIONS over the flow it registered from; the request and its answer keep
the mapping open. A ping that gets any final response shows the flow
alive. One unanswered after C{timeout} seconds (10, as RFC 5626 4.4.1
gives a pong; or whose transaction fails sooner) shows it dead: the
binding is removed, so a caller gets 480 at once rather than waiting 32
seconds for a phone that cannot hear.

TCP and TLS phones reached only over their connection (behind NAT, or
RFC 5626 outbound) are watched too: when that connection is gone
(L{flow_lost}), their bindings are removed the same way. The users whose
bindings were removed so are remembered in a L{LostBindings}: the location
stage answers them 480, not the 404 of a user nobody registered.

The bindings to ping are learnt from the registrar (L{registered}) as
phones register; after a restart, pinging resumes as they re-register
(phones behind NAT are told to do so at a short interval, see
L{sipedge.proxy.Registrar}).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import LocalProtocolError, MessageParseError
from sipedge.flow import Flow
from sipedge.interfaces import ILocationStore
from sipedge.message import Headers, Request, Response
from sipedge.store import Binding, LostBindings, binding_flow

__all__ = [
    "DEFAULT_KEEPALIVE_INTERVAL",
    "PING_TIMEOUT",
    "NatKeepalive",
    "bound_to_connection",
    "needs_keepalive",
]

#: Seconds between pings: keeps a 30-second router UDP timeout open (and a
#: 20-second one, with a little to spare).
DEFAULT_KEEPALIVE_INTERVAL = 15.0

#: Seconds a ping may stay unanswered before its flow counts as dead (RFC
#: 5626 4.4.1 waits 10 seconds for a pong).
PING_TIMEOUT = 10.0

_log = Logger(namespace="sipedge.nat")


def needs_keepalive(binding: Binding) -> bool:
    """
    Whether C{binding} is a UDP phone reached over its NAT binding: it
    registered directly (no Path) over UDP, and its Contact names another
    address than the source, or it asked for RFC 5626 outbound (see
    L{sipedge.store.binding_flow}).
    """
    flow = binding.flow
    return flow is not None and flow.transport == "UDP" and binding_flow(binding)[1] is not None


def bound_to_connection(binding: Binding) -> bool:
    """
    Whether C{binding} is a TCP or TLS phone reached only over the
    connection it registered on (no Path): it asked for RFC 5626 outbound,
    or its Contact is an IP address other than the connection's source (a
    phone behind NAT), or not a SIP URI. Without that connection it cannot
    be reached at all (see L{sipedge.store.binding_flow}).
    """
    flow = binding.flow
    return flow is not None and flow.reliable and binding_flow(binding)[1] is not None


@attrs.frozen
class _Key:
    aor: str
    contact: str


class NatKeepalive:
    """
    Pings the registered UDP phones behind NAT, watches the connections of
    TCP and TLS phones reached only over them, and removes the bindings
    whose flow died.

    @param store: the L{ILocationStore} (dead bindings are removed there).
    @param clock: schedules the pings.
    @param originate: sends a request of ours on a flow and fires with its
        final response, or fails when it times out
        (L{sipedge.proxy.ProxyCore.originate}).
    @param interval: seconds between pings of one binding.
    @param timeout: seconds a ping may stay unanswered.
    @param lost: where the users whose bindings were removed are
        remembered (the location stage answers them 480), or C{None}.
    @param random: where Call-IDs and tags come from.
    """

    def __init__(
        self,
        store: ILocationStore,
        clock: IReactorTime,
        originate: Callable[..., Deferred[Response]],
        *,
        interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        timeout: float = PING_TIMEOUT,
        lost: LostBindings | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"keepalive interval must be positive, not {interval}")
        if not timeout > 0:
            raise ValueError(f"ping timeout must be positive, not {timeout}")
        self.interval = interval
        self.timeout = timeout
        self.lost = lost
        self._store = store
        self._clock = clock
        self._originate = originate
        self._random = random
        self._bindings: dict[_Key, Binding] = {}
        self._connections: dict[_Key, Binding] = {}
        self._pending: dict[_Key, IDelayedCall] = {}
        self._loop: LoopingCall | None = None
        #: Counters: pings sent, answered, timed out; bindings removed.
        self.stats = {"sent": 0, "answered": 0, "failed": 0, "removed": 0}

    def __len__(self) -> int:
        return len(self._bindings)

    # -- from the registrar and the transports ---------------------------------

    def registered(self, aor: str, bindings: Iterable[Binding], now: float) -> None:
        """
        The bindings of C{aor} after a REGISTER: ping those behind NAT,
        watch the connections of those reached only over them.
        """
        for table in (self._bindings, self._connections):
            for key in [k for k in table if k.aor == aor]:
                del table[key]
        if self.lost is not None:
            self.lost.forget(aor)
        for binding in bindings:
            if binding.is_expired(now):
                continue
            if needs_keepalive(binding):
                self._bindings[_Key(aor, binding.contact)] = binding
            elif bound_to_connection(binding):
                self._connections[_Key(aor, binding.contact)] = binding

    def flow_lost(self, flow: Flow) -> None:
        """A connection is gone: the bindings reached only over it are removed."""
        for key, binding in list(self._connections.items()):
            if binding.flow == flow:
                del self._connections[key]
                self._drop(binding, "its connection is gone")

    # -- the timer -------------------------------------------------------------

    def start(self) -> None:
        """Ping every C{interval} seconds until L{stop}."""
        if self._loop is not None:
            raise LocalProtocolError("keepalives already started")
        loop = LoopingCall(self.ping_all)
        loop.clock = self._clock
        self._loop = loop
        loop.start(self.interval, now=False).addErrback(self._loop_failed)

    def stop(self) -> None:
        """Stop pinging (no error if not started); pings in flight no longer time out."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        for key in list(self._pending):
            self._settle(key)

    def _loop_failed(self, failure: Failure) -> None:
        self._loop = None
        _log.failure("NAT keepalives stopped", failure)

    def ping_all(self) -> None:
        """Ping each binding that has no ping in flight; forget expired ones."""
        now = self._clock.seconds()
        for key, binding in list(self._bindings.items()):
            if binding.is_expired(now):
                del self._bindings[key]
            elif key not in self._pending:
                self._ping(key, binding)
        for key, binding in list(self._connections.items()):
            if binding.is_expired(now):
                del self._connections[key]

    def _ping(self, key: _Key, binding: Binding) -> None:
        assert binding.flow is not None
        tag = self._random(6).hex()
        call_id = f"ka-{self._random(10).hex()}"
        headers = Headers.of(
            ("From", f"<sip:keepalive@{_host_of(binding)}>;tag={tag}"),
            ("To", f"<{binding.contact}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 OPTIONS"),
            ("Content-Length", "0"),
        )
        try:
            request = Request("OPTIONS", binding.contact, headers)
        except (MessageParseError, ValueError) as e:
            _log.info("Not pinging {contact}: {error}", contact=binding.contact, error=str(e))
            del self._bindings[key]
            return
        timer = self._clock.callLater(
            self.timeout, self._dead, key, binding, f"no answer within {self.timeout:g} s"
        )
        self._pending[key] = timer
        self.stats["sent"] += 1
        d = self._originate(request, binding.flow)
        d.addCallbacks(
            self._answered, self._failed, callbackArgs=(key, timer),
            errbackArgs=(key, timer, binding),
        )

    def _settle(self, key: _Key, timer: IDelayedCall | None = None) -> bool:
        """
        The ping of C{key} (the one C{timer} times, if given) is over: its
        timeout no longer runs. Whether it was still pending.
        """
        pending = self._pending.get(key)
        if pending is None or (timer is not None and pending is not timer):
            return False  # timed out already (and maybe pinged again since)
        del self._pending[key]
        if pending.active():
            pending.cancel()
        return True

    def _answered(self, response: Response, key: _Key, timer: IDelayedCall) -> None:
        if self._settle(key, timer):
            self.stats["answered"] += 1

    def _failed(self, failure: Failure, key: _Key, timer: IDelayedCall, binding: Binding) -> None:
        if self._settle(key, timer):
            self._dead(key, binding, failure.getErrorMessage())

    def _dead(self, key: _Key, binding: Binding, why: str) -> None:
        """The ping of C{binding} failed (C{why}): its flow is dead."""
        self._pending.pop(key, None)
        self.stats["failed"] += 1
        if self._bindings.get(key) != binding:
            return  # registered again meanwhile
        del self._bindings[key]
        self._drop(binding, f"no answer ({why})")

    def _drop(self, binding: Binding, why: str) -> None:
        _log.info(
            "Flow {flow} of {contact} of {aor} is dead: removing the binding, {why}",
            contact=binding.contact,
            aor=binding.aor,
            flow=str(binding.flow),
            why=why,
        )
        d = self._store.lookup(binding.aor, self._clock.seconds())
        d.addCallback(self._remove, binding)
        d.addErrback(lambda f: _log.failure("Could not remove a dead binding", f))

    def _remove(self, current: list[Any], binding: Binding) -> Deferred[Any] | None:
        if binding not in current:
            return None  # refreshed or removed meanwhile
        self.stats["removed"] += 1
        now = self._clock.seconds()
        if self.lost is not None:
            self.lost.lost(binding.aor, binding.expires_at)
        return self._store.update(binding.aor, [attrs.evolve(binding, expires_at=now)], now)


def _host_of(binding: Binding) -> str:
    """The domain of the binding's AOR, for the From of our pings."""
    aor = binding.aor
    host = aor.split("@", 1)[-1] if "@" in aor else aor.split(":", 1)[-1]
    return host or "invalid"
