# -*- test-case-name: sipedge.test.test_media_anchor_remote -*-
"""
The C{media-anchor} stage through the relay control protocol
(L{sipedge.testing.RemoteRelayMixin}; L{sipedge.test.test_media_anchor}
runs all its stage tests again with it), the stage given a
L{RemoteMediaRelay} connected (over L{FakeReactor}'s in-memory TCP) to a
L{ControlServerFactory} serving the tests' in-process relay, as
C{[media] relay} does with C{twistd sipedge-relay}; and what only a remote
relay can show (a lost connection, a relay that does not answer).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from sipedge.testing import (
    AnchorTestCase,
    RemoteRelayMixin,
    anchor_request,
    sdp_a,
)


class RemoteRelayDownTests(RemoteRelayMixin, AnchorTestCase):
    """What only a remote relay can show."""

    def test_not_connected(self) -> None:
        """An offer while the relay is unreachable gets 503 Media Relay Unavailable."""
        for connection in list(self.factory.connections):
            assert connection.transport is not None
            connection.transport.loseConnection()
        self.listening.stopListening()
        self.reactor.flush()
        self.assertFalse(self.remote.connected)
        result = self.refuse(anchor_request("INVITE", sdp_a()))
        self.assertEqual((result.status, result.reason), (503, "Media Relay Unavailable"))
        self.assertEqual(self.stage.calls, ())
        self.listening = self.reactor.listenTCP(
            self.listening.port, self.factory, interface="127.0.0.1"
        )
        self.reactor.advance(1.0)
        self.reactor.flush()
        self.assertTrue(self.remote.connected)

    def test_ports_exhausted(self) -> None:
        """The relay's PortsExhausted still reads 503 Media Ports Exhausted."""
        from sipedge.media import PortsExhausted

        self.patch(self.relay, "allocate", lambda key, offer: _failed(PortsExhausted("none")))
        result = self.refuse(anchor_request("INVITE", sdp_a()))
        self.assertEqual((result.status, result.reason), (503, "Media Ports Exhausted"))


def _failed(error: Exception) -> Deferred[Any]:
    from twisted.internet.defer import fail

    return fail(error)


