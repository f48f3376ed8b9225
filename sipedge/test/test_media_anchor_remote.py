# -*- test-case-name: sipedge.test.test_media_anchor_remote -*-
"""
The C{media-anchor} stage through the relay control protocol: every stage
test of L{sipedge.test.test_media_anchor} again, with the stage given a
L{RemoteMediaRelay} connected (over L{FakeReactor}'s in-memory TCP) to a
L{ControlServerFactory} serving the tests' in-process relay, as
C{[media] relay} does with C{twistd sipedge-relay}; and what only a remote
relay can show (a lost connection, a relay that does not answer).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint

from sipedge.media import ControlServerFactory, MediaRelay, RemoteMediaRelay
from sipedge.test import test_media_anchor as base
from sipedge.test._helpers import flush_on_advance
from sipedge.test.test_media_srtp import counting_random
from sipedge.testing import FakeReactor

SECRET = b"remote-anchor-test-secret-0123456789"


class _Remote:
    """Mixed into a test case of L{base}: the stage's relay is remote."""

    reactor: FakeReactor

    def stage_relay(self, relay: MediaRelay) -> Any:
        self._wire_through()
        self.factory = ControlServerFactory(relay, SECRET, self.reactor,
                                            random=counting_random(50))
        self.listening = self.reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.remote = RemoteMediaRelay(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.listening.port),
            SECRET,
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


def _again(case: type) -> type:
    return type(
        f"Remote{case.__name__}",
        (_Remote, case),
        {"__doc__": f"{(case.__doc__ or '').strip()} (through the control protocol)"},
    )


RemoteOfferAnswerTests = _again(base.OfferAnswerTests)


class RemoteCallEndTests(_again(base.CallEndTests)):  # type: ignore[misc]
    """
    base.CallEndTests through the control protocol; the two tests that
    call the stage and the relay directly move the bytes before looking.
    """

    def test_later_stage_answers(self) -> None:
        """
        A stage after this one answers the INVITE (404 from location):
        told as an observer, the stage releases the session at once.
        """
        context = self.send(base.request("INVITE", base.sdp_a()))
        self.assertNotEqual(self.relay.open_ports(), [])
        self.stage.request_decided(context, base.Respond(404))
        self.reactor.flush()
        self.assertEqual(self.relay.open_ports(), [])

    def test_relay_closed(self) -> None:
        """Closing the relay ends every call, each told as ended (closed)."""
        self.call()
        self.relay.close()
        self.reactor.flush()
        self.assertEqual([e.reason for e in self.ended], ["closed"])
        self.assertEqual(self.stage.calls, ())

RemoteLateOfferTests = _again(base.LateOfferTests)
RemoteNewOfferTests = _again(base.NewOfferTests)
RemoteForkTests = _again(base.ForkTests)
RemoteSdpShapeTests = _again(base.SdpShapeTests)
RemoteSrtpTests = _again(base.SrtpTests)
RemoteSidesTests = _again(base.SidesTests)
RemoteTransferTests = _again(base.TransferTests)
RemoteForkedEarlyDialogTests = _again(base.ForkedEarlyDialogTests)


class RemoteRelayDownTests(_Remote, base.AnchorTestCase):
    """What only a remote relay can show."""

    def test_not_connected(self) -> None:
        """An offer while the relay is unreachable gets 503 Media Relay Unavailable."""
        for connection in list(self.factory.connections):
            assert connection.transport is not None
            connection.transport.loseConnection()
        self.listening.stopListening()
        self.reactor.flush()
        self.assertFalse(self.remote.connected)
        result = self.refuse(base.request("INVITE", base.sdp_a()))
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
        result = self.refuse(base.request("INVITE", base.sdp_a()))
        self.assertEqual((result.status, result.reason), (503, "Media Ports Exhausted"))


def _failed(error: Exception) -> Deferred[Any]:
    from twisted.internet.defer import fail

    return fail(error)


