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
alive. One whose transaction times out (RFC 3261 Timer F, after ten
retransmissions) shows it dead: the binding is removed, so a caller gets
480 at once rather than waiting 32 seconds for a phone that cannot hear.

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
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import LocalProtocolError, MessageParseError
from sipedge.interfaces import ILocationStore
from sipedge.message import Headers, Request, Response, SipURI, parse_uri
from sipedge.store import Binding

__all__ = ["DEFAULT_KEEPALIVE_INTERVAL", "NatKeepalive", "needs_keepalive"]

#: Seconds between pings: keeps a 30-second router UDP timeout open (and a
#: 20-second one, with a little to spare).
DEFAULT_KEEPALIVE_INTERVAL = 15.0

_log = Logger(namespace="sipedge.nat")


def needs_keepalive(binding: Binding) -> bool:
    """
    Whether C{binding} is a UDP phone reached over its NAT binding: it
    registered directly (no Path) over UDP, and its Contact names another
    address than the source, or it asked for RFC 5626 outbound.
    """
    flow = binding.flow
    if flow is None or binding.path or flow.transport != "UDP":
        return False
    if binding.reg_id is not None:
        return True
    try:
        uri = parse_uri(binding.contact)
    except MessageParseError:
        return True
    return not isinstance(uri, SipURI) or uri.bare_host != flow.remote_host


@attrs.frozen
class _Key:
    aor: str
    contact: str


class NatKeepalive:
    """
    Pings the registered UDP phones behind NAT.

    @param store: the L{ILocationStore} (dead bindings are removed there).
    @param clock: schedules the pings.
    @param originate: sends a request of ours on a flow and fires with its
        final response, or fails when it times out
        (L{sipedge.proxy.ProxyCore.originate}).
    @param interval: seconds between pings of one binding.
    @param random: where Call-IDs and tags come from.
    """

    def __init__(
        self,
        store: ILocationStore,
        clock: IReactorTime,
        originate: Callable[..., Deferred[Response]],
        *,
        interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"keepalive interval must be positive, not {interval}")
        self.interval = interval
        self._store = store
        self._clock = clock
        self._originate = originate
        self._random = random
        self._bindings: dict[_Key, Binding] = {}
        self._pending: set[_Key] = set()
        self._loop: LoopingCall | None = None
        #: Counters: pings sent, answered, timed out; bindings removed.
        self.stats = {"sent": 0, "answered": 0, "failed": 0, "removed": 0}

    def __len__(self) -> int:
        return len(self._bindings)

    # -- from the registrar ----------------------------------------------------

    def registered(self, aor: str, bindings: Iterable[Binding], now: float) -> None:
        """The bindings of C{aor} after a REGISTER: ping those behind NAT."""
        for key in [k for k in self._bindings if k.aor == aor]:
            del self._bindings[key]
        for binding in bindings:
            if needs_keepalive(binding) and not binding.is_expired(now):
                self._bindings[_Key(aor, binding.contact)] = binding

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
        """Stop pinging (no error if not started)."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

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
        self._pending.add(key)
        self.stats["sent"] += 1
        d = self._originate(request, binding.flow)
        d.addCallbacks(
            self._answered, self._failed, callbackArgs=(key,), errbackArgs=(key, binding)
        )

    def _answered(self, response: Response, key: _Key) -> None:
        self._pending.discard(key)
        self.stats["answered"] += 1

    def _failed(self, failure: Failure, key: _Key, binding: Binding) -> None:
        self._pending.discard(key)
        self.stats["failed"] += 1
        if self._bindings.get(key) != binding:
            return  # registered again meanwhile
        del self._bindings[key]
        _log.info(
            "No answer from {contact} of {aor} over {flow}: removing the binding ({error})",
            contact=binding.contact,
            aor=binding.aor,
            flow=str(binding.flow),
            error=failure.getErrorMessage(),
        )
        d = self._store.lookup(binding.aor, self._clock.seconds())
        d.addCallback(self._remove, binding)
        d.addErrback(lambda f: _log.failure("Could not remove a dead binding", f))

    def _remove(self, current: list[Any], binding: Binding) -> Deferred[Any] | None:
        if binding not in current:
            return None  # refreshed or removed meanwhile
        self.stats["removed"] += 1
        now = self._clock.seconds()
        return self._store.update(binding.aor, [attrs.evolve(binding, expires_at=now)], now)


def _host_of(binding: Binding) -> str:
    """The domain of the binding's AOR, for the From of our pings."""
    aor = binding.aor
    host = aor.split("@", 1)[-1] if "@" in aor else aor.split(":", 1)[-1]
    return host or "invalid"
