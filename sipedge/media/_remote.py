# -*- test-case-name: sipedge.test.test_media_control_protocol -*-
"""
L{RemoteMediaRelay}: an L{IMediaRelay} in another process
(C{twistd sipedge-relay}), reached over the control protocol
(C{doc/relay-protocol.md}).

It keeps one connection to the relay, made again with a back-off when it
is lost. While there is none, every call fails at once with
L{RelayUnavailable} (503), and the calls in flight when a connection is
lost fail the same way; a call the relay does not answer in C{timeout}
seconds fails with L{RelayTimeout} (503 too). The relay's L{SessionEnd}
events go to the observers.

Events are not replayed: a session that ends while the connection is down
(by the relay's limits, or because the relay restarted) would be missed.
So the client remembers the keys of the sessions it allocated that have
not ended (a key is forgotten at its L{release}, its L{SessionEnd}, or when
its allocate fails), and after each connection asks the relay for its
C{sessions()}: every remembered key the relay no longer has is reported to
the observers as ended with reason C{lost}, and forgotten.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge._log import NamedLogger
from sipedge.interfaces import IMediaRelay
from sipedge.media._control import (
    CHALLENGE_SIZE,
    MAX_LINE,
    METHODS,
    PROTOCOL,
    VERSIONS,
    LineFramer,
    auth_message,
    client_proof,
    decode_error,
    decode_message,
    decode_session_end,
    encode_message,
    hex_field,
    proofs_match,
    request_id,
    request_message,
    server_proof,
)
from sipedge.media._errors import (
    ControlProtocolError,
    MediaError,
    RelayTimeout,
    RelayUnavailable,
    ReofferUnsupported,
)
from sipedge.media._values import (
    DirectionStats,
    MediaMode,
    MediaOffer,
    Party,
    RelayAllocation,
    RelayStats,
    SessionEnd,
    SessionStats,
)

__all__ = ["DEFAULT_TIMEOUT", "LOST", "ControlClientProtocol", "RemoteMediaRelay"]

#: The end reason of a session the relay no longer has when the client
#: reconnects (see L{sipedge.media.END_REASONS}).
LOST = "lost"

#: Seconds a call may wait for the relay's reply.
DEFAULT_TIMEOUT = 2.0

_HELLO, _WELCOME, _READY = "hello", "welcome", "ready"


class ControlClientProtocol(Protocol):
    """
    One connection to the relay: the handshake (L{ready} fires when the
    relay has proved it holds the secret too), then calls and events.

    @ivar ready: fires with C{None} once authenticated (never if the
        handshake fails: the connection is closed instead).
    """

    _log = NamedLogger(namespace="sipedge.media.remote")

    def __init__(self, relay: RemoteMediaRelay) -> None:
        self.relay = relay
        self.ready: Deferred[None] = Deferred()
        self._state = _HELLO
        self._framer = LineFramer(relay.max_line)
        self._version = 0
        self._relay_challenge = b""
        self._challenge = b""
        self._next_id = 0
        self._calls: dict[int, tuple[str, Deferred[Any]]] = {}
        self._lost = False

    def dataReceived(self, data: bytes) -> None:
        if self._lost:
            return
        try:
            lines = self._framer.feed(data)
            for line in lines:
                if self._lost:
                    return
                if line.strip():
                    self._line(line)
        except ControlProtocolError as e:
            self._log.error(
                "Media relay {relay}: {problem}; closing the connection",
                relay=self.relay.description,
                problem=str(e),
                rule=e.code,
                source=self.relay.description,
            )
            self._abandon(e)

    def _line(self, line: bytes) -> None:
        message = decode_message(line)
        kind = message["type"]
        if self._state == _HELLO:
            self._hello(message)
        elif self._state == _WELCOME:
            self._welcome(message)
        elif kind in ("result", "error"):
            self._reply(message)
        elif kind == "event":
            if message.get("event") == "session-end":
                self.relay._session_ended(decode_session_end(message))
            # other events are for later versions: ignored.
        else:
            raise ControlProtocolError(f"unknown message type {kind!r}", "unknown-type")

    def _hello(self, message: dict[str, Any]) -> None:
        if message["type"] != "hello" or message.get("protocol") != PROTOCOL:
            raise ControlProtocolError(
                f"expected the relay's 'hello' ({PROTOCOL}), got {message['type']!r}", "not-a-relay"
            )
        versions = message.get("versions")
        common = [v for v in VERSIONS if isinstance(versions, list) and v in versions]
        if not common:
            raise ControlProtocolError(
                f"the relay speaks versions {versions!r}, we speak {list(VERSIONS)}", "version"
            )
        self._version = max(common)
        self._relay_challenge = hex_field(message, "challenge", CHALLENGE_SIZE)
        self._challenge = self.relay.random(CHALLENGE_SIZE)
        proof = client_proof(self.relay.secret, self._version, self._relay_challenge,
                             self._challenge)
        self._send(auth_message(self._version, proof, self._challenge))
        self._state = _WELCOME

    def _welcome(self, message: dict[str, Any]) -> None:
        if message["type"] == "error":
            error = decode_error(message.get("error"))
            code = getattr(error, "code", "refused")
            raise ControlProtocolError(f"the relay refused us: {error}", code)
        if message["type"] != "welcome":
            raise ControlProtocolError(f"expected 'welcome', got {message['type']!r}", "malformed")
        expected = server_proof(self.relay.secret, self._version, self._relay_challenge,
                                self._challenge)
        if not proofs_match(expected, hex_field(message, "proof", 32)):
            raise ControlProtocolError("the relay does not know the secret", "auth-failed")
        self._state = _READY
        self.relay._connected(self)
        self.ready.callback(None)

    def _reply(self, message: dict[str, Any]) -> None:
        number = message.get("id")
        if number is None and message["type"] == "error":
            error = decode_error(message.get("error"))
            raise ControlProtocolError(f"the relay closes the connection: {error}", "closed")
        number = request_id(message)
        call = self._calls.pop(number, None)
        if call is None:
            raise ControlProtocolError(f"a reply to no request (id {number})", "unknown-id")
        method, d = call
        if message["type"] == "error":
            d.errback(decode_error(message.get("error")))
            return
        try:
            value = METHODS[method].decode_result(message.get("result"))
        except ControlProtocolError as e:
            d.errback(e)
            raise
        d.callback(value)

    @property
    def version(self) -> int:
        """The protocol version agreed with the relay (0 before the handshake)."""
        return self._version

    def call(self, method: str, *args: Any) -> Deferred[Any]:
        """Send a request; the Deferred fires with its decoded result."""
        number = self._next_id
        self._next_id += 1
        d: Deferred[Any] = Deferred()
        self._calls[number] = (method, d)
        self._send(request_message(number, method, *args))
        return d

    def _send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.write(encode_message(message))

    def _abandon(self, error: MediaError) -> None:
        self._lost = True
        if self.transport is not None:
            self.transport.loseConnection()
        self._fail_all(error)

    def _fail_all(self, error: MediaError) -> None:
        calls, self._calls = self._calls, {}
        unavailable = RelayUnavailable(f"the connection to the media relay was lost: {error}")
        for _, d in calls.values():
            d.errback(unavailable)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        was_ready = self._state == _READY
        self._lost = True
        self._fail_all(RelayUnavailable(reason.getErrorMessage()))
        if was_ready:
            self.relay._disconnected(self, reason)
        else:
            self.relay._refused()


class _ClientFactory(Factory):
    def __init__(self, relay: RemoteMediaRelay) -> None:
        self.relay = relay

    def buildProtocol(self, addr: Any) -> ControlClientProtocol:
        protocol = ControlClientProtocol(self.relay)
        protocol.factory = self
        return protocol


@implementer(IMediaRelay)
class RemoteMediaRelay:
    """
    An L{IMediaRelay} served by C{twistd sipedge-relay}: call L{start}
    (the composition root does), then use it as any relay.

    @ivar description: how logs and errors name the relay (its address).
    """

    _log = NamedLogger(namespace="sipedge.media.remote")

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        secret: bytes,
        clock: IReactorTime,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        description: str = "",
        retry_policy: Callable[[int], float] | None = None,
        random: Callable[[int], bytes] = os.urandom,
        max_line: int = MAX_LINE,
    ) -> None:
        """
        @param endpoint: where the relay's control port is.
        @param secret: the shared secret (the relay's C{relay.secret}).
        @param clock: for call timeouts and reconnection delays.
        @param timeout: seconds a call may wait for its reply.
        @param description: the relay's name in logs (e.g. its address).
        @param retry_policy: seconds to wait before the n-th attempt to
            connect again (default: from 0.5 s, times 1.5 each time, up
            to 10 s, with up to 0.5 s of jitter).
        @param random: where challenges come from.
        @param max_line: the longest line accepted from the relay.
        """
        if not secret:
            raise ValueError("a remote relay needs the shared secret")
        self.secret = secret
        self.description = description or str(endpoint)
        self.random = random
        self.max_line = max_line
        self.timeout = timeout
        self._clock = clock
        self._protocol: ControlClientProtocol | None = None
        self._observers: list[Callable[[SessionEnd], object]] = []
        # The sessions allocated through this client and not ended, with
        # what is known of them (the statistics of a lost session).
        self._live: dict[str, SessionStats] = {}
        if retry_policy is None:
            retry_policy = backoffPolicy(0.5, 10.0, 1.5, jitter=lambda: 0.5 * _jitter(random))
        self._retry_policy = retry_policy
        # Connections that closed before the handshake completed, in a row:
        # ClientService counts a TCP connection as a success, so a relay that
        # refuses us would be retried at the first delay for ever.
        self._refusals = 0
        # No prepareConnection: ClientService (Twisted 24) has no transition
        # for a connection lost while it is being prepared. The protocol
        # closes a connection whose handshake fails instead.
        self.service = ClientService(
            endpoint, _ClientFactory(self), self._retry_delay, clock=clock
        )

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<RemoteMediaRelay {self.description} {state}>"

    @property
    def connected(self) -> bool:
        """Whether a connection is up and authenticated."""
        return self._protocol is not None

    def start(self) -> None:
        """Connect (and keep connecting)."""
        self.service.startService()

    def close(self) -> Deferred[None]:
        """Disconnect and stop reconnecting; calls in flight fail (503)."""
        if not self.service.running:
            return succeed(None)
        d: Deferred[None] = self.service.stopService()
        return d

    # -- IMediaRelay ----------------------------------------------------------

    def allocate(self, session_key: str, offer: MediaOffer) -> Deferred[RelayAllocation]:
        d = self._call("allocate", session_key, self._for_version(offer))
        d.addCallback(self._allocated)
        return d

    def update(self, session_key: str, answer: MediaOffer) -> Deferred[RelayAllocation]:
        d = self._call("update", session_key, self._for_version(answer))
        d.addCallback(self._updated)
        return d

    def reoffer(
        self, session_key: str, offer: MediaOffer, offerer: Party
    ) -> Deferred[RelayAllocation]:
        return self._call("reoffer", session_key, self._for_version(offer), offerer)

    def withdraw(self, session_key: str) -> Deferred[RelayAllocation]:
        return self._call("withdraw", session_key)

    def release(self, session_key: str) -> Deferred[SessionStats | None]:
        self._live.pop(session_key, None)
        return self._call("release", session_key)

    def sessions(self) -> Deferred[Mapping[str, SessionStats]]:
        return self._call("sessions")

    def stats(self) -> Deferred[RelayStats]:
        return self._call("stats")

    def add_observer(self, observer: Callable[[SessionEnd], object]) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer: Callable[[SessionEnd], object]) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    # -- calls ------------------------------------------------------------------

    def _for_version(self, offer: MediaOffer) -> MediaOffer:
        """
        C{offer} as the connected relay's version carries it: a version 1
        relay knows no C{source} (it latches on the SDP's address).
        """
        protocol = self._protocol
        if offer.source is not None and protocol is not None and protocol.version < 2:
            return attrs.evolve(offer, source=None)
        return offer

    def _call(self, method: str, *args: Any) -> Deferred[Any]:
        protocol = self._protocol
        if protocol is None:
            return fail(RelayUnavailable(f"the media relay at {self.description} is not connected"))
        since = METHODS[method].since
        if protocol.version < since:
            return fail(
                ReofferUnsupported(
                    f"the media relay at {self.description} speaks protocol version "
                    f"{protocol.version}; {method} needs {since}"
                )
            )
        timer: IDelayedCall | None = None

        def cancelled(_: Deferred[Any]) -> None:
            # The caller gave up (the response chain's timeout): no timer
            # left behind; a late allocation is released (below).
            if timer is not None and timer.active():
                timer.cancel()

        result: Deferred[Any] = Deferred(cancelled)

        def replied(value: Any) -> None:
            if timer is not None and timer.active():
                timer.cancel()
            if not result.called:
                result.callback(value)
            elif method == "allocate":
                # The caller gave up on it: do not leave the ports open.
                self._log.warn(
                    "Media relay {relay}: releasing session {key}, allocated after its timeout",
                    relay=self.description,
                    key=args[0],
                )
                self.release(args[0]).addErrback(lambda _: None)

        def failed(failure: Failure) -> None:
            if timer is not None and timer.active():
                timer.cancel()
            if not result.called:
                result.errback(failure)

        def timed_out() -> None:
            if result.called:
                return
            self._log.warn(
                "Media relay {relay}: {method} got no reply within {timeout} s",
                relay=self.description,
                method=method,
                timeout=self.timeout,
            )
            result.errback(
                RelayTimeout(
                    f"the media relay at {self.description} did not answer {method} "
                    f"within {self.timeout:g} s"
                )
            )

        if self.timeout:
            timer = self._clock.callLater(self.timeout, timed_out)
        protocol.call(method, *args).addCallbacks(replied, failed)
        return result

    # -- from the protocol --------------------------------------------------------

    @property
    def remembered(self) -> frozenset[str]:
        """The keys of the sessions allocated here and not ended (yet)."""
        return frozenset(self._live)

    def _allocated(self, allocation: RelayAllocation) -> RelayAllocation:
        now = self._clock.seconds()
        modes = (
            (allocation.streams[0].a_mode, allocation.streams[0].b_mode)
            if allocation.streams
            else (MediaMode.PLAIN, MediaMode.PLAIN)
        )
        ports = sorted(
            port
            for stream in allocation.streams
            for side in (stream.a, stream.b)
            for port in (side.port, side.rtcp_port)
            if port
        )
        self._live[allocation.session_key] = SessionStats(
            allocation.session_key,
            "answered" if allocation.answered else "offered",
            modes[0],
            modes[1],
            now,
            now if allocation.answered else None,
            now,
            tuple(ports),
            DirectionStats(),
            DirectionStats(),
        )
        return allocation

    def _updated(self, allocation: RelayAllocation) -> RelayAllocation:
        known = self._live.get(allocation.session_key)
        if known is not None and allocation.answered and known.answered is None:
            now = self._clock.seconds()
            self._live[allocation.session_key] = attrs.evolve(
                known, state="answered", answered=now, last_activity=now
            )
        return allocation

    def _reconcile(self) -> None:
        """
        Ask the relay which sessions it has; report the remembered ones it
        no longer has as ended (C{lost}).
        """
        if not self._live:
            return
        # Only the keys known now: one allocated while the answer is on its
        # way may be missing from it without being lost.
        asked = frozenset(self._live)

        def answered(sessions: Mapping[str, SessionStats]) -> None:
            lost = sorted(key for key in asked if key not in sessions and key in self._live)
            live = sum(1 for key in asked if key in sessions and key in self._live)
            gone = len(asked) - live - len(lost)
            self._log.info(
                "Media relay {relay}: reconciled {remembered} remembered sessions after"
                " connecting: {live} live, {lost} lost, {gone} ended meanwhile",
                relay=self.description,
                remembered=len(asked),
                live=live,
                lost=len(lost),
                gone=gone,
                lost_keys=lost,
                rule=LOST,
                source=self.description,
            )
            for key in lost:
                known = self._live.pop(key, None)
                if known is not None:
                    self._notify(SessionEnd(key, LOST, attrs.evolve(known, state="ended")))

        def failed(failure: Failure) -> None:
            self._log.warn(
                "Media relay {relay}: could not reconcile {remembered} remembered sessions"
                " ({error}); will try again at the next connection",
                relay=self.description,
                remembered=len(asked),
                error=failure.getErrorMessage(),
            )

        self._call("sessions").addCallbacks(answered, failed)

    def _retry_delay(self, attempt: int) -> float:
        return self._retry_policy(attempt + self._refusals)

    def _connected(self, protocol: ControlClientProtocol) -> None:
        self._refusals = 0
        self._protocol = protocol
        self._log.info("Connected to the media relay at {relay}", relay=self.description)
        self._reconcile()

    def _refused(self) -> None:
        self._refusals += 1

    def _disconnected(self, protocol: ControlClientProtocol, reason: Failure) -> None:
        if self._protocol is protocol:
            self._protocol = None
            self._log.warn(
                "Lost the media relay at {relay}: {reason}",
                relay=self.description,
                reason=reason.getErrorMessage(),
            )

    def _session_ended(self, end: SessionEnd) -> None:
        self._live.pop(end.session_key, None)
        self._notify(end)

    def _notify(self, end: SessionEnd) -> None:
        for observer in list(self._observers):
            try:
                observer(end)
            except Exception:
                self._log.failure("Media session observer {observer} failed", observer=observer)


def _jitter(random: Callable[[int], bytes]) -> float:
    return int.from_bytes(random(2), "big") / 65536
