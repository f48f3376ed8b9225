# -*- test-case-name: sipedge.test.test_process_handoff -*-
"""
Handing messages between the workers of one supervisor.

Most messages reach the right worker by themselves (see C{doc/workers.md}):
the kernel keeps a source on one worker, and each worker's own port in Via
and Record-Route brings back responses and in-dialog requests. What is left
goes over the workers' channel (L{WorkerChannel}, datagrams on loopback):

 - a message that arrives at one worker but names another in its top Via
   (a response) or its top Route (a request): for example a phone's
   response, over the TCP connection that belongs to the worker that
   accepted it, to a request another worker sent. It is handed to the
   worker it names, with the flow it came on (L{WorkerRouter});
 - a CANCEL, or an ACK for a 3xx-6xx response (no Route: hop by hop),
   that matches no transaction of the worker it reached (its phone sent it
   from another source port than its INVITE): the other workers are asked,
   and the one holding the INVITE claims it (answers the CANCEL, absorbs
   the ACK); unclaimed after L{STRAY_WAIT} seconds, it is handled here (a
   CANCEL gets 481);
 - a message a worker must send over a TCP/TLS connection another worker
   holds (a phone connected to it): it is handed to the owner, which writes
   it on the connection (L{WorkerTransportManager}). The owner of a flow is
   learnt from what the other workers hand over; until it is known, the
   message goes to every other worker and the one holding the connection
   sends it and says so. The others say they did not; when every worker it
   went to said so (the connection closed meanwhile), the transaction that
   sent it gets a transport error at once (a request for a phone's flow is
   then answered 430 or 480), instead of timing out.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.error import MessageParseError, TransportError
from sipedge.flow import Flow
from sipedge.interfaces import IMessageReceiver, ISipTransport
from sipedge.message import (
    DEFAULT_LIMITS,
    Limits,
    Message,
    Request,
    Response,
    SipURI,
    parse_datagram,
    serialize,
)
from sipedge.process._channel import KINDS, NEWS, NO_FLOW, WorkerChannel
from sipedge.process._sockets import SHARED, WorkerSpec
from sipedge.transport import TransportManager

__all__ = [
    "MAX_AWAITING",
    "MAX_OWNERS",
    "STRAY_WAIT",
    "RemoteConnection",
    "WorkerRouter",
    "WorkerTransportManager",
]

#: Seconds a worker waits for another to claim a CANCEL that matches none of
#: its transactions, before answering it itself (481).
STRAY_WAIT = 0.5

#: The flow a C{hello} names (none).
_NO_FLOW = Flow("UDP", "0.0.0.0", 0, "0.0.0.0", 0)

#: Flows whose owner is remembered (the least recently used forgotten first).
MAX_OWNERS = 100_000

#: Messages handed to another worker to send, awaiting its word (the
#: oldest forgotten first: a word lost on the channel).
MAX_AWAITING = 10_000

_STREAMS = ("TCP", "TLS")


def _digest(payload: bytes) -> str:
    """What names a handed-over message in the answers about it."""
    return hashlib.sha256(payload).hexdigest()[:32]


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _remote_key(transport: str, host: str, port: int) -> tuple[str, str, int]:
    host = _bare(host)
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    return (transport.upper(), host, port)


@implementer(IMessageReceiver)
class WorkerRouter:
    """
    A worker's receiver in front of its transaction layer: delivers what
    is its own, hands to another worker what names that worker, and acts
    on what the other workers hand to it.

    @ivar channel: the L{WorkerChannel}, once listening (until then
        everything is delivered here).
    @ivar transports: the worker's L{WorkerTransportManager}.
    @ivar handed: messages handed to other workers, by kind.
    """

    _log = Logger()

    def __init__(
        self,
        receiver: IMessageReceiver,
        spec: WorkerSpec,
        limits: Limits = DEFAULT_LIMITS,
        *,
        clock: Any = None,
        matches: Callable[[Request], bool] | None = None,
    ) -> None:
        """
        @param receiver: where what is ours goes (the transaction layer).
        @param spec: which worker we are, and the others' addresses.
        @param limits: the parser's limits, for what is handed over.
        @param clock: an C{IReactorTime}, to wait for the claim of a stray
            CANCEL; with C{matches}, enables asking the others.
        @param matches: whether a request matches a transaction of ours
            (for a CANCEL or an ACK: the INVITE it cancels or acknowledges).
        """
        self._receiver = receiver
        self.spec = spec
        self._limits = limits
        self._clock = clock
        self._matches = matches
        self._strays: dict[str, tuple[Message, Flow, Any]] = {}
        self.channel: WorkerChannel | None = None
        self.transports: WorkerTransportManager | None = None
        self._owners: OrderedDict[Flow, int] = OrderedDict()
        self._by_remote: dict[tuple[str, str, int], Flow] = {}
        #: Digest -> [message, workers yet to answer], for what we handed
        #: to others to send.
        self._awaiting: OrderedDict[str, list[Any]] = OrderedDict()
        self.handed = {kind: 0 for kind in KINDS}
        #: What to do with news from another worker, by kind: called with
        #: the sender's index and the payload (L{tell_others}).
        self.listeners: dict[str, Callable[[int, bytes], None]] = {}
        #: Called with the index of a worker that (re)started (its
        #: C{hello}): each tells it the news it would have heard (L{tell}).
        self.greeters: list[Callable[[int], None]] = []

    # Deciding

    def owner_of(self, message: Message) -> int | None:
        """
        The other worker C{message} belongs to: the one whose own address
        is in the top Via of a response or the top Route of a request; else
        C{None} (ours, or no worker's).
        """
        try:
            if isinstance(message, Response):
                via = message.top_via
                if via.port is None:
                    return None
                return self.spec.sibling_of(via.transport, _bare(via.host), via.port)
            routes = message.routes
        except MessageParseError:
            return None
        if not routes:
            return None
        uri = routes[0].uri
        if not isinstance(uri, SipURI) or uri.port is None:
            return None
        transport = (uri.param("transport") or ("TLS" if uri.scheme == "sips" else "UDP")).upper()
        return self.spec.sibling_of(transport, _bare(uri.host), uri.port)

    def flow_owner(self, flow: Flow) -> int | None:
        """
        For a TCP/TLS flow accepted on one of the workers' listeners: the
        other worker known to hold its connection, else C{-1} (one of the
        others, not known which). C{None} for any other flow.
        """
        if flow.transport not in _STREAMS:
            return None
        owner = self.spec.sibling_of(flow.transport, flow.local_host, flow.local_port)
        if owner is not None:
            return owner
        known = self._owners.get(flow)
        if known is not None:
            self._owners.move_to_end(flow)
            return known
        for s in self.spec.sockets:
            if s.transport == flow.transport and s.port == flow.local_port and s.role == SHARED:
                return -1
        return None

    def holder_of(self, flow: Flow) -> int | None:
        """The other worker known to hold C{flow}'s connection (it said so), or C{None}."""
        return self._owners.get(flow)

    def flow_to(self, transport: str, host: str, port: int) -> Flow | None:
        """The flow of another worker's connection to C{host:port}, if one is known."""
        return self._by_remote.get(_remote_key(transport, host, port))

    def _learn(self, flow: Flow, owner: int) -> None:
        if flow.transport not in _STREAMS:
            return
        self._owners[flow] = owner
        self._owners.move_to_end(flow)
        self._by_remote[_remote_key(flow.transport, flow.remote_host, flow.remote_port)] = flow
        while len(self._owners) > MAX_OWNERS:
            self.forget(next(iter(self._owners)))

    def forget(self, flow: Flow) -> None:
        """Forget the owner of C{flow} (its connection is gone)."""
        self._owners.pop(flow, None)
        key = _remote_key(flow.transport, flow.remote_host, flow.remote_port)
        if self._by_remote.get(key) == flow:
            del self._by_remote[key]

    # Telling the others what we hold

    def hello(self) -> None:
        """Say we have (re)started: the others forget what we held and say what they hold."""
        if self.channel is not None:
            self.channel.send_to_others("hello", _NO_FLOW)

    def connected(self, flow: Flow) -> None:
        """A phone connected to us on C{flow}: tell the others."""
        if self.channel is not None:
            self.channel.send_to_others("owner", flow)

    def lost(self, flow: Flow) -> None:
        """Our connection on C{flow} is gone: tell the others."""
        if self.channel is not None:
            self.channel.send_to_others("gone", flow)

    # IMessageReceiver

    def message_received(self, message: Message, flow: Flow) -> None:
        channel = self.channel
        owner = self.owner_of(message) if channel is not None else None
        if owner is None or channel is None:
            if channel is not None and self._stray(message):
                self._ask_others(channel, message, flow)
                return
            self._receiver.message_received(message, flow)
            return
        if channel.send(owner, "receive", flow, serialize(message)):
            self.handed["receive"] += 1
        else:
            self._receiver.message_received(message, flow)

    def malformed_message(self, data: bytes, flow: Flow, error: MessageParseError) -> None:
        self._receiver.malformed_message(data, flow, error)

    # A CANCEL or an ACK that matches nothing here

    def _stray(self, message: Message) -> bool:
        """
        A CANCEL, or an ACK without Route (the ACK of a 3xx-6xx goes hop by
        hop; an ACK for a 2xx follows the Record-Route), that matches no
        transaction here: another worker may hold its INVITE.
        """
        if self._clock is None or self._matches is None or not isinstance(message, Request):
            return False
        method = message.method
        if method == "ACK":
            if message.headers.get("Route") is not None:
                return False
        elif method != "CANCEL":
            return False
        return not self._matches(message)

    def _ask_others(self, channel: WorkerChannel, message: Message, flow: Flow) -> None:
        payload = serialize(message)
        key = _digest(payload)
        if key in self._strays:
            return  # a retransmission: the question is out
        if not channel.send_to_others("stray", flow, payload):
            self._receiver.message_received(message, flow)
            return
        self.handed["stray"] += 1
        call = self._clock.callLater(STRAY_WAIT, self._unclaimed, key)
        self._strays[key] = (message, flow, call)

    def _unclaimed(self, key: str) -> None:
        message, flow, _ = self._strays.pop(key)
        self._receiver.message_received(message, flow)

    def stop(self) -> None:
        """Stop waiting for claims (what waits is dropped: its sender retransmits)."""
        for _, _, call in self._strays.values():
            if call.active():
                call.cancel()
        self._strays.clear()

    # Sending over another worker's connection

    def send_elsewhere(self, message: Message, flow: Flow) -> bool:
        """
        Hand C{message} to the worker holding C{flow}'s connection (or to
        every other worker, if not known which); C{False} if C{flow} is not
        one another worker can hold or there is no channel.
        """
        owner = self.flow_owner(flow)
        channel = self.channel
        if owner is None or channel is None:
            return False
        data = serialize(message)
        if owner >= 0:
            count = int(channel.send(owner, "send", flow, data))
        else:
            count = channel.send_to_others("send", flow, data)
        if not count:
            return False
        self.handed["send"] += 1
        awaiting = self._awaiting
        awaiting[_digest(data)] = [message, count]
        while len(awaiting) > MAX_AWAITING:
            awaiting.popitem(last=False)
        return True

    def _unsent(self, sender: int, flow: Flow, key: str) -> None:
        """Worker C{sender} could not send what we handed it for C{flow}."""
        if self._owners.get(flow) == sender:
            self.forget(flow)  # it no longer holds that connection
        entry = self._awaiting.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return  # others may hold it yet
        del self._awaiting[key]
        message = entry[0]
        self._log.info("No worker holds the connection {flow} any more: not sent", flow=flow)
        failed = getattr(self._receiver, "transport_failed", None)
        if failed is not None:
            failed(message, Failure(TransportError(f"the connection {flow} is gone")))

    def _answer_send(self, sender: int, kind: str, flow: Flow, payload: bytes) -> None:
        if self.channel is not None:
            self.channel.send(sender, kind, flow, _digest(payload).encode())

    # What the other workers hand over

    def tell_others(self, kind: str, payload: bytes) -> int:
        """
        News for every other worker (a kind its L{listeners} act on);
        how many it was written to (none before the channel listens).
        """
        if self.channel is None:
            return 0
        self.handed[kind] = self.handed.get(kind, 0) + 1
        return self.channel.send_to_others(kind, NO_FLOW, payload)

    def tell(self, index: int, kind: str, payload: bytes) -> bool:
        """News for worker C{index} alone (a greeting: L{greeters})."""
        if self.channel is None:
            return False
        self.handed[kind] = self.handed.get(kind, 0) + 1
        return self.channel.send(index, kind, NO_FLOW, payload)

    def deliver(self, sender: int, kind: str, flow: Flow, payload: bytes) -> None:
        """Act on what worker C{sender} handed over (L{WorkerChannel}'s C{deliver})."""
        if kind in NEWS:
            listener = self.listeners.get(kind)
            if listener is None:
                return  # nothing here cares
            try:
                listener(sender, payload)
            except Exception:
                self._log.failure("Cannot act on the {kind} news of worker {sender}",
                                  kind=kind, sender=sender)
            return
        if kind == "owner":
            self._learn(flow, sender)
            if payload:  # the answer to a send: it went out
                self._awaiting.pop(payload.decode("ascii", "replace"), None)
            return
        if kind == "unsent":
            self._unsent(sender, flow, payload.decode("ascii", "replace"))
            return
        if kind == "gone":
            if self._owners.get(flow) == sender:
                self.forget(flow)
            return
        if kind == "claimed":
            waiting = self._strays.pop(payload.decode("ascii", "replace"), None)
            if waiting is not None and waiting[2].active():
                waiting[2].cancel()
            return
        if kind == "hello":
            for known, owner in list(self._owners.items()):
                if owner == sender:
                    self.forget(known)
            if self.transports is not None and self.channel is not None:
                for accepted in self.transports.accepted_flows():
                    self.channel.send(sender, "owner", accepted)
            for greet in self.greeters:
                try:
                    greet(sender)
                except Exception:
                    self._log.failure("Cannot tell worker {sender} the news", sender=sender)
            return
        try:
            message = parse_datagram(payload, self._limits)
        except MessageParseError as e:
            self._log.warn("Worker {sender} handed over a message that does not parse: {error}",
                           sender=sender, error=e.reason)
            return
        if kind == "stray":
            if not (isinstance(message, Request) and self._matches and self._matches(message)):
                return
            if self.channel is not None:
                self.channel.send(sender, "claimed", flow, _digest(payload).encode())
            kind = "receive"
        if kind == "receive":
            # It came over a connection of the sender's: answers go back there.
            self._learn(flow, sender)
            try:
                self._receiver.message_received(message, flow)
            except Exception:
                self._log.failure("Receiver failed on a message handed over by worker {sender}",
                                  sender=sender)
            return
        transports = self.transports
        if transports is None or transports.own_connection(flow) is None:
            # Not ours (the worker that holds it sends it), or closed.
            self._answer_send(sender, "unsent", flow, payload)
            return
        try:
            transports.send(message, flow)
        except TransportError as e:
            self._log.info("Cannot send what worker {sender} handed over on {flow}: {error}",
                           sender=sender, flow=flow, error=str(e))
            self._answer_send(sender, "unsent", flow, payload)
            return
        self._answer_send(sender, "owner", flow, payload)


@implementer(ISipTransport)
class RemoteConnection:
    """
    A TCP/TLS connection another worker holds, as this worker sees it:
    what is sent on it is handed to that worker.
    """

    reliable = True

    def __init__(self, router: WorkerRouter, flow: Flow) -> None:
        self._router = router
        self.flow = flow
        self.name = flow.transport
        self.local_host = flow.local_host
        self.local_port = flow.local_port

    def send_message(self, message: Message, flow: Flow) -> None:
        if not self._router.send_elsewhere(message, flow):
            raise TransportError(f"cannot hand {flow} to the worker holding it")


class WorkerTransportManager(TransportManager):
    """
    A worker's transports: what must go over a TCP/TLS connection that
    another worker accepted is handed to that worker (L{WorkerRouter})
    instead of opening a connection of our own to the phone.

    @ivar router: set by the composition root.
    """

    router: WorkerRouter | None = None

    def own_connection(self, flow: Flow) -> Any:
        """C{flow}'s connection if this worker holds it (L{TransportManager.connection_for})."""
        return super().connection_for(flow)

    def connection_for(self, flow: Flow) -> Any:
        """
        As L{TransportManager.connection_for}, and for a connection another
        worker said it holds, a L{RemoteConnection} (so the proxy core sends
        on it rather than giving up on a phone connected to another worker).
        """
        own = super().connection_for(flow)
        if own is not None or self.router is None:
            return own
        if self.router.holder_of(flow) is None:
            return None
        return RemoteConnection(self.router, flow)

    def accepted_flows(self) -> list[Flow]:
        """The flows of the connections phones made to us (up)."""
        return [
            p.flow for p in self.connections
            if p.requested_flow is None and p.flow is not None and not p.closed
        ]

    def stream_connected(self, protocol: Any) -> None:
        super().stream_connected(protocol)
        if self.router is not None and protocol.requested_flow is None:
            self.router.connected(protocol.flow)

    def stream_lost(self, protocol: Any, reason: Any) -> None:
        flow = protocol.flow
        super().stream_lost(protocol, reason)
        if self.router is not None and protocol.requested_flow is None and flow is not None:
            self.router.lost(flow)

    def flow_to(self, transport: str, host: str, port: int) -> Flow:
        """
        As L{TransportManager.flow_to}, but a connection another worker
        holds to C{host:port} is used before a new one of ours.
        """
        flow = super().flow_to(transport, host, port)
        if self.router is None or flow.transport not in _STREAMS:
            return flow
        if self.own_connection(flow) is not None:
            return flow
        return self.router.flow_to(flow.transport, host, port) or flow

    def send(
        self, message: Message, flow: Flow, *, server_name: str | None = None
    ) -> Deferred[Flow] | None:
        router = self.router
        if (
            router is not None
            and flow.transport in _STREAMS
            and self.own_connection(flow) is None
            and router.send_elsewhere(message, flow)
        ):
            return succeed(flow)
        return super().send(message, flow, server_name=server_name)
