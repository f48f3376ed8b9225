# -*- test-case-name: sipedge.test.test_media -*-
"""
The media relay under test: L{RelayTestCase} puts an in-process
L{MediaRelay} on L{FakeReactor}'s in-memory network, with parties to talk
through it; L{RemoteRelayTestCase} serves one on a control port and
connects a L{RemoteMediaRelay} to it. Both end every test with a leak
check (no relay port bound, no session, no delayed call left).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import (
    ControlServerFactory,
    MediaOffer,
    MediaRelay,
    PortAllocator,
    RelayAllocation,
    RelayPolicy,
    SdesCrypto,
    SessionEnd,
    SrtpContext,
    SrtpKey,
    StreamOffer,
)
from sipedge.testing._logs import capture_log
from sipedge.testing._media import (
    A_HOST,
    B_HOST,
    MEDIA_LIMITS,
    RELAY_HOST,
    MediaEndpoint,
    counting_random,
)
from sipedge.testing._reactor import FakeReactor

__all__ = ["RelayTestCase", "RemoteRelayTestCase", "a_crypto", "context_from"]


class RelayTestCase(SynchronousTestCase):
    """A relay on a fake network, and parties to talk through it."""

    #: The relay's address and its port range.
    relay_host = RELAY_HOST
    port_range = (20000, 20019)

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.network = self.reactor.network
        self.ports = PortAllocator(self.reactor, *self.port_range, self.relay_host)
        self.ended: list[SessionEnd] = []
        self.relay = self.make_relay(self.ports)
        self.addCleanup(self.leak_check)

    def make_relay(self, ports: Any, **kwargs: Any) -> MediaRelay:
        kwargs.setdefault("limits", MEDIA_LIMITS)
        kwargs.setdefault("random", counting_random(1))
        relay = MediaRelay(self.reactor, ports, **kwargs)
        relay.add_observer(self.ended.append)
        return relay

    def leak_check(self) -> None:
        """Nothing the relay opened is left: ports, sessions, timers."""
        self.assertEqual(self.relay.open_ports(), [])
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        for port in range(self.port_range[0], self.port_range[1] + 1):
            self.assertIsNone(self.network.port_at(self.relay_host, port), port)

    def endpoint(self, host: str, port: int) -> MediaEndpoint:
        """A party's socket at C{host:port}."""
        protocol = MediaEndpoint()
        protocol.socket = self.network.bind(host, port, protocol)
        return protocol

    def send(
        self, sender: MediaEndpoint, data: bytes, port: int, host: str | None = None
    ) -> None:
        """C{sender} sends C{data} to the relay's C{port}; deliver it."""
        sender.socket.write(data, (host or self.relay_host, port))
        self.network.flush()

    def allocate(
        self, key: str = "call-1", streams: Any = None, **policy: Any
    ) -> RelayAllocation:
        if streams is None:
            streams = [StreamOffer(A_HOST, 4000)]
        offer = MediaOffer(streams, RelayPolicy(**policy) if policy else None)
        return self.successResultOf(self.relay.allocate(key, offer))

    def update(self, key: str = "call-1", streams: Any = None) -> RelayAllocation:
        if streams is None:
            streams = [StreamOffer(B_HOST, 5000)]
        return self.successResultOf(self.relay.update(key, MediaOffer(streams)))

    def release(self, key: str = "call-1") -> Any:
        return self.successResultOf(self.relay.release(key))

    def stats(self, key: str = "call-1") -> Any:
        return self.successResultOf(self.relay.sessions())[key]


class RemoteRelayTestCase(SynchronousTestCase):
    """A relay served on the fake network and a L{RemoteMediaRelay} to it."""

    relay: Any
    #: The relay's address and port range, the control port's address and secret.
    relay_host = RELAY_HOST
    port_range = (20000, 20007)
    control_host = "127.0.0.1"
    secret = b"correct horse battery staple"

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.events = capture_log(self)
        self.ports = PortAllocator(self.reactor, *self.port_range, self.relay_host)
        if not hasattr(self, "relay"):
            self.relay = self.new_relay()
        self.factory = ControlServerFactory(
            self.relay, self.secret, self.reactor, random=counting_random(100), max_pending=4
        )
        self.listening = self.reactor.listenTCP(0, self.factory, interface=self.control_host)
        self.addCleanup(self.leak_check)
        self.remote = self.connect(self.secret)
        self.ended: list[SessionEnd] = []
        self.remote.add_observer(self.ended.append)

    def new_relay(self) -> MediaRelay:
        """The relay behind the control port."""
        return MediaRelay(self.reactor, self.ports, limits=MEDIA_LIMITS, random=counting_random(1))

    def connect(self, secret: bytes, timeout: float = 2.0) -> Any:
        from sipedge.media import RemoteMediaRelay

        remote = RemoteMediaRelay(
            TCP4ClientEndpoint(self.reactor, self.control_host, self.listening.port),
            secret,
            self.reactor,
            timeout=timeout,
            description="relay-under-test",
            retry_policy=lambda attempt: 1.0,
            random=counting_random(200),
        )
        remote.start()
        self.addCleanup(self.stop, remote)
        self.reactor.flush()
        return remote

    def stop(self, remote: Any) -> None:
        d = remote.close()
        self.reactor.flush()
        self.successResultOf(d)

    def leak_check(self) -> None:
        if isinstance(self.relay, MediaRelay):
            self.relay.close()
            self.assertEqual(self.relay.open_ports(), [])
        self.listening.stopListening()
        self.reactor.flush()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def wait(self, d: Deferred[Any]) -> Any:
        """Move the bytes, then C{d}'s result."""
        self.reactor.flush()
        return self.successResultOf(d)

    def failure(self, d: Deferred[Any], *kinds: type[BaseException]) -> Any:
        self.reactor.flush()
        return self.failureResultOf(d, *kinds).value

    def drop_connections(self) -> None:
        """The relay's side closes every control connection."""
        for connection in list(self.factory.connections):
            assert connection.transport is not None
            connection.transport.loseConnection()
        self.reactor.flush()


def a_crypto(key: SrtpKey, tag: int = 1) -> SdesCrypto:
    """The a=crypto line of a party whose key is C{key}."""
    return SdesCrypto(tag, key.suite.name, key.to_sdes())


def context_from(ours: SrtpKey, theirs: SdesCrypto) -> SrtpContext:
    """A party's context: it sends with C{ours}, reads with the key offered to it."""
    return SrtpContext(
        inbound=SrtpKey.from_sdes(theirs.key_params, ours.suite), outbound=ours
    )
