# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
Relays that are not in-process for the media-anchor tests: L{LaterRelay}
answers later on a clock (as a relay in another process does), and
L{RemoteRelayMixin} gives the stage a relay behind the control protocol.
Mixed into an L{AnchorTestCase}, they run its tests again.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.interfaces import IMediaRelay
from sipedge.media import ControlServerFactory, MediaRelay, RemoteMediaRelay, SessionStats
from sipedge.testing._media import counting_random
from sipedge.testing._reactor import FakeReactor, flush_on_advance

__all__ = ["LaterRelay", "LaterRelayMixin", "RemoteRelayMixin"]


@implementer(IMediaRelay)
class LaterRelay:
    """
    An L{IMediaRelay} in front of an in-process L{MediaRelay} whose
    answers come C{delay} seconds later on C{clock}: the relay does the
    work when asked, the Deferred fires later (as a remote relay's would).
    With C{hold} true, answers wait in C{held} until L{answer} is called.
    Everything else (C{open_ports}, C{session}, ...) is the inner relay's.
    """

    def __init__(self, relay: MediaRelay, clock: Any, delay: float = 0.0) -> None:
        self.relay = relay
        self.clock = clock
        self.delay = delay
        self.hold = False
        self.held: list[tuple[Deferred[Any], Any]] = []
        self.asked: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.relay, name)

    def _later(self, d: Deferred[Any]) -> Deferred[Any]:
        out: Deferred[Any] = Deferred()

        def settle(result: Any) -> None:
            if self.hold:
                self.held.append((out, result))
            else:
                self.clock.callLater(self.delay, self._fire, out, result)

        d.addBoth(settle)
        return out

    @staticmethod
    def _fire(out: Deferred[Any], result: Any) -> None:
        if isinstance(result, Failure):
            out.errback(result)
        else:
            out.callback(result)

    def answer(self) -> None:
        """Fire every held answer, in order."""
        self.hold = False
        held, self.held = self.held, []
        for out, result in held:
            self._fire(out, result)

    def allocate(self, session_key: str, offer: Any) -> Deferred[Any]:
        self.asked.append(("allocate", session_key))
        return self._later(self.relay.allocate(session_key, offer))

    def update(self, session_key: str, answer: Any) -> Deferred[Any]:
        self.asked.append(("update", session_key))
        return self._later(self.relay.update(session_key, answer))

    def reoffer(self, session_key: str, offer: Any, offerer: Any) -> Deferred[Any]:
        self.asked.append(("reoffer", session_key))
        return self._later(self.relay.reoffer(session_key, offer, offerer))

    def withdraw(self, session_key: str) -> Deferred[Any]:
        self.asked.append(("withdraw", session_key))
        return self._later(self.relay.withdraw(session_key))

    def release(self, session_key: str) -> Deferred[SessionStats | None]:
        self.asked.append(("release", session_key))
        return self._later(self.relay.release(session_key))

    def sessions(self) -> Deferred[Any]:
        return self._later(self.relay.sessions())

    def stats(self) -> Deferred[Any]:
        return self._later(self.relay.stats())

    def add_observer(self, observer: Any) -> None:
        self.relay.add_observer(observer)

    def remove_observer(self, observer: Any) -> None:
        self.relay.remove_observer(observer)


class LaterRelayMixin:
    """Mixed into an L{AnchorTestCase}: the stage's relay answers later (a L{LaterRelay})."""

    reactor: FakeReactor

    def stage_relay(self, relay: MediaRelay) -> Any:
        self.later = LaterRelay(relay, self.reactor)
        return self.later


_SECRET = b"remote-anchor-test-secret-0123456789"


class RemoteRelayMixin:
    """
    Mixed into an L{AnchorTestCase}: the stage's relay is a
    L{RemoteMediaRelay} connected over L{FakeReactor}'s in-memory TCP to a
    L{ControlServerFactory} serving the in-process relay.
    """

    reactor: FakeReactor

    def stage_relay(self, relay: MediaRelay) -> Any:
        self._wire_through()
        self.factory = ControlServerFactory(relay, _SECRET, self.reactor,
                                            random=counting_random(50))
        self.listening = self.reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.remote = RemoteMediaRelay(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.listening.port),
            _SECRET,
            self.reactor,
            description="test relay",
            retry_policy=lambda attempt: 1.0,
            random=counting_random(90),
        )
        self.remote.start()
        self.reactor.flush()
        assert self.remote.connected
        return self.remote

    def _wire_through(self) -> None:
        """
        Move the control connection's bytes whenever the tests move time,
        and after each stage call: what the stage sends without waiting
        (releases) and what the relay pushes (session ends) then arrive
        before the tests look, as they do with the in-process relay.
        """
        flush_on_advance(self.reactor)

    def send(self, *args: Any, **kwargs: Any) -> Any:
        result = super().send(*args, **kwargs)  # type: ignore[misc]
        self.reactor.flush()
        return result

    def refuse(self, *args: Any, **kwargs: Any) -> Any:
        result = super().refuse(*args, **kwargs)  # type: ignore[misc]
        self.reactor.flush()
        return result

    def back(self, *args: Any, **kwargs: Any) -> Any:
        result = super().back(*args, **kwargs)  # type: ignore[misc]
        self.reactor.flush()
        return result

    def resolved(self, result: Any) -> Any:
        if isinstance(result, Deferred):
            self.reactor.flush()
            result = self.successResultOf(result)  # type: ignore[attr-defined]
        return result

    def leak_check(self) -> None:
        self.reactor.flush()  # events and releases still on the wire
        closed = self.remote.close()
        self.reactor.flush()
        self.successResultOf(closed)  # type: ignore[attr-defined]
        self.listening.stopListening()
        super().leak_check()  # type: ignore[misc]
