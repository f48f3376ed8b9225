# -*- test-case-name: sipedge.test.test_interfaces -*-
"""
Every zope interface of sipedge, in one place (cf. C{twisted.conch.interfaces}).

Methods are written without C{self} and annotated; data is an C{Attribute}.
Implementations declare C{@implementer(...)} and are checked with
C{verifyObject} in their tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    import builtins

    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    from sipedge.error import MessageParseError
    from sipedge.flow import Flow
    from sipedge.message import Message, Request, Response
    from sipedge.pipeline import RequestContext, StageServices
    from sipedge.results import Forward, Respond, StageResult
    from sipedge.security import Ban
    from sipedge.store import Binding

__all__ = [
    "CALLEE",
    "CALLER",
    "IBanStore",
    "IBranchStage",
    "IClientTransaction",
    "IDialogListener",
    "IDialogNeutralStage",
    "ILocationStore",
    "IMessageReceiver",
    "IMessageTap",
    "IRequestStage",
    "IResponseStage",
    "IRoutedStage",
    "IServerTransaction",
    "ISipTransport",
    "IStageFactory",
    "ITransactionUser",
    "ITransportManager",
]


class IMessageReceiver(Interface):
    """
    Where transports deliver traffic (cf. C{DNSMixin}'s controller). The
    transport knows nothing of transactions, pipeline or proxy.
    """

    def message_received(message: Message, flow: Flow) -> None:
        """
        A complete, parsed message arrived on C{flow}. For requests the
        transport has already stamped the top Via with C{received} and,
        where asked for, C{rport} (RFC 3261 18.2.1, RFC 3581).
        """

    def malformed_message(data: bytes, flow: Flow, error: MessageParseError) -> None:
        """
        Bytes that do not parse arrived on C{flow}. C{error.message} holds the
        request when its head parsed, so a 4xx can still be sent back.
        """


class IMessageTap(Interface):
    """
    Sees every SIP message the transports receive and send (a capture such
    as HEP). It must never raise and never block: it runs on the
    reactor thread for each message.
    """

    def message_in(message: Message, flow: Flow) -> None:
        """C{message} was received on C{flow} (before any processing)."""

    def message_out(message: Message, flow: Flow) -> None:
        """C{message} is being sent on C{flow}."""

    def malformed_in(data: bytes, flow: Flow) -> None:
        """Bytes that did not parse were received on C{flow}."""


class ISipTransport(Interface):
    """One listening transport (a UDP port, a TCP or TLS listener)."""

    name = Attribute("The Via transport token: 'UDP', 'TCP' or 'TLS'.")
    reliable = Attribute("True for stream transports (no retransmission timers).")
    local_host = Attribute("The address it is bound to (no brackets).")
    local_port = Attribute("The port it is bound to (the real one, after binding port 0).")

    def send_message(message: Message, flow: Flow) -> None:
        """
        Serialize C{message} and write it on C{flow} now.

        @raise sipedge.error.TransportError: if the flow is gone (a closed
            connection) or the message cannot be sent.
        """


class ITransportManager(Interface):
    """All transports together: sending chooses or opens the right one."""

    def send(
        message: Message, flow: Flow, *, server_name: str | None = None
    ) -> Deferred[Flow] | None:
        """
        Send on C{flow}: an existing connection or UDP socket, or (for an
        outgoing TCP/TLS flow whose connection does not exist yet) a new
        connection, with the message queued until it is up. For TLS,
        C{server_name} is the name the server's certificate must prove
        (RFC 5922); without it, its IP address.

        @return: C{None} when the message was written before C{send}
            returned, on C{flow} itself (a UDP datagram: no Deferred to
            make and fire on the hot path); else a Deferred that fires with
            the flow actually used (an outgoing connection has its own
            local port) or fails with L{TransportError}.
        @raise sipedge.error.TransportError: if no transport can carry it.
        """

    def flow_to(transport: str, host: str, port: int) -> Flow:
        """
        The flow we would use to reach C{host:port} (an IP literal) over
        C{transport}: an existing connection's flow if there is one, else a
        flow from our listener of that transport and address family.

        @raise sipedge.error.TransportError: if we have no such transport.
        """

    def local_hostport(transport: str, family: int) -> tuple[str, int]:
        """The address and port to put in our Via or Record-Route."""

    def connection_for(flow: Flow) -> ISipTransport | None:
        """
        The open TCP/TLS connection of C{flow} (its real or requested
        flow), or C{None}: a reliable flow without one cannot be answered
        on (RFC 3261 18.2.2 then asks for a new connection).
        """


class IServerTransaction(Interface):
    """An RFC 3261 17.2 server transaction, as the transaction user sees it."""

    key = Attribute("The TransactionKey that matches requests to it.")
    request = Attribute(
        "The Request that created the transaction; None once the final"
        " response is sent (a lingering transaction keeps only what answering"
        " retransmissions needs)."
    )
    flow = Attribute("The Flow the request arrived on (responses go back there).")
    state = Attribute("The current State.")

    def respond(response: Response) -> None:
        """Send C{response}, and retransmit it as the machine requires."""

    def cancel_timers() -> None:
        """
        Stop every timer and move to TERMINATED, silently: the TU drops the
        request unanswered (a Drop result, a topology-hiding refusal).
        """


class IClientTransaction(Interface):
    """An RFC 3261 17.1 client transaction, as the transaction user sees it."""

    key = Attribute("The TransactionKey that matches responses to it.")
    request = Attribute(
        "The Request being sent; None once a final response has arrived (it"
        " is never sent again)."
    )
    flow = Attribute("The Flow it is sent on.")
    state = Attribute("The current State.")

    def cancel_timers() -> None:
        """Stop every timer and move to TERMINATED (the TU gave up on it)."""


class ITransactionUser(Interface):
    """The layer above transactions (the proxy core)."""

    def request_received(request: Request, transaction: IServerTransaction) -> None:
        """A new request (not a retransmission) created C{transaction}."""

    def response_received(response: Response, transaction: IClientTransaction) -> None:
        """A response C{transaction} passes up (provisional or final)."""

    def transaction_failed(
        transaction: IClientTransaction | IServerTransaction, reason: Failure
    ) -> None:
        """
        A client transaction's Timer B or F fired (TransactionTimeout), a
        server INVITE transaction's Timer H fired, or the transport failed.
        """

    def transaction_terminated(transaction: IClientTransaction | IServerTransaction) -> None:
        """A server or client transaction reached TERMINATED and was removed."""

    def stray_message(message: Message, flow: Flow) -> None:
        """
        No transaction matched: an ACK for a 2xx, a CANCEL with no INVITE, a
        response with no client transaction (RFC 3261 16.7 item 3, 18.1.2).
        """


class IRequestStage(Interface):
    """One step of the request chain (cf. repro's Processor)."""

    name = Attribute("Stable id used in config and log events, e.g. 'max-forwards'.")

    def process_request(context: RequestContext) -> StageResult | Deferred[StageResult]:
        """
        Look at C{context} (a RequestContext) and return a stage result,
        or a Deferred that fires with one: C{Continue()} to go on,
        C{Respond}, C{Forward} or C{Drop} to end the chain.
        """


class IResponseStage(Interface):
    """
    The response side of a stage. A stage object that provides both
    L{IRequestStage} and L{IResponseStage} sees the requests in the request
    chain and, in the same order, every response the proxy relays upstream.
    """

    name = Attribute("Stable id.")

    def process_response(
        context: RequestContext | None, response: Response
    ) -> Response | Deferred[Response] | Deferred[Response | None] | None:
        """
        Called in order for each response relayed upstream: provisional
        responses (not 100), every 2xx to an INVITE, and the final response
        the proxy chose; and, with C{context} C{None}, for a stray 2xx
        forwarded statelessly. C{context} is the RequestContext of the
        request as the chain left it. Return the (possibly changed)
        response, C{None} to absorb it (a final response is relayed as it
        came instead), or a Deferred that fires with either.

        While a response waits for a Deferred, the later responses of the
        same server transaction (of the same Call-ID for stray 2xx) wait
        behind it: a stage sees the responses of a transaction one at a
        time, in the order they came. A stage that raises, or whose
        Deferred fails, is logged: a provisional response is dropped, a
        final one goes on as it was. A Deferred that has not fired after
        C{[timers] response_chain_timeout} seconds is cancelled, and the
        response goes on as if the stage had failed. While every stage
        answers at once, no Deferred is made.
        """


class IDialogNeutralStage(Interface):
    """
    A marker a request stage declares when it cannot change the fate of a
    request within a dialog set up through us: one that carried our own
    signed Record-Route back (the C{route} stage noted
    C{annotations["route"] == "dialog"}), other than a REGISTER (which
    never belongs to a dialog). The chain does not run such a stage on
    such a request; it runs every other stage as usual.

    Declare it only for a stage whose C{process_request} returns
    C{Continue()} on every such request, changing nothing (the request,
    the annotations, the identity) and counting nothing: skipping it must
    change nothing but the time it takes. Stages that must see every
    request, such as bans, flood budgets, the behaviour monitor, the
    toll-fraud guard (it watches BYE) or media anchoring, never declare
    it.
    """


class IBranchStage(Interface):
    """
    The per-branch side of a stage: a last look at each request the proxy
    core sends statefully, on the flow it chose for it (a registered
    phone's connection, a DNS look-up's destination, a static route's next
    hop), which the request chain cannot know. A stage object in the chain
    that also provides it is consulted, in chain order, for every branch of
    every fork and every fail-over destination, initial and in-dialog
    requests alike, and for ACKs of 2xx forwarded statelessly.
    """

    name = Attribute("Stable id, named as the rule in refusal log events.")

    def process_branch(context: RequestContext, request: Request, flow: Flow) -> Request | Respond:
        """
        C{request} (with our Via, before topology hiding) is about to leave
        on C{flow} for the request of C{context} (a RequestContext, as the
        chain left it). Return the request to send (the same or a changed
        one), or a C{Respond} to refuse this destination: the core then
        tries the branch's next DNS destination, and at the end fails the
        branch with that response (its status, reason and headers), as if
        the far side had answered it; the other branches go on, and the
        best final response (RFC 3261 16.7) reaches the caller. An ACK
        cannot be refused: a C{Respond} for one drops it (logged).

        Called synchronously on the send path: no Deferred, keep it cheap.
        A stage that raises refuses the branch with 500.
        """


class IRoutedStage(Interface):
    """
    The side of a stage that acts once the request chain has decided where
    the request goes: a stage in the chain that also provides it is told
    the chosen targets (the C{Forward} of C{location}, C{static-route},
    C{forward}, ...), in chain order, before the proxy core forwards, so it
    acts on the decision instead of predicting it (the C{media-anchor}
    stage picks a new callee's side of the edge from it).
    """

    name = Attribute("Stable id, as in the chain.")

    def targets_chosen(
        context: RequestContext, forward: Forward
    ) -> StageResult | Deferred[StageResult]:
        """
        The chain ended with C{forward} (a C{Forward}) for the request of
        C{context}. Return C{Continue()} to let it stand (the request as
        C{context} now holds it goes on), a C{Forward} to replace it, or a
        C{Respond} or C{Drop} in its place; or a Deferred that fires with
        one of these. A stage that raises ends the request with 500.
        """


class IStageFactory(Interface):
    """
    Builds a stage from configuration. Plugins provide C{IPlugin} and
    C{IStageFactory} in the C{sipedge.plugins} package.
    """

    name = Attribute("The config name, e.g. 'registrar'.")
    description = Attribute("One line for --help-stages.")

    def build_stage(options: dict[str, object], services: StageServices) -> IRequestStage:
        """
        A new IRequestStage (which may also provide IResponseStage and
        IBranchStage). C{options} is the stage's table from the config
        file; C{services} gives access to the shared services (location
        store, clock, the typed configuration).

        @raise sipedge.error.ConfigError: for a bad option.
        """


class ILocationStore(Interface):
    """
    The location service (RFC 3261 10): AOR -> bindings. Deferred-returning,
    so a remote database fits.
    """

    def update(aor: str, bindings: Sequence[Binding], now: float) -> Deferred[list[Binding]]:
        """
        Replace, add or remove the bindings of C{aor} as one REGISTER asks
        (bindings with expires 0 are removed); fire with the bindings that
        remain, unexpired, highest q first.
        """

    def remove_all(aor: str) -> Deferred[None]:
        """Remove every binding of C{aor} (Contact: * with Expires: 0)."""

    def lookup(aor: str, now: float) -> Deferred[list[Binding]]:
        """Fire with the unexpired bindings of C{aor}, highest q first."""

    def bindings(now: float) -> Deferred[list[Binding]]:
        """Fire with every unexpired binding of every AOR, by AOR (for operators)."""

    def expire(now: float) -> Deferred[int]:
        """Remove every binding expired at C{now}; fire with how many."""


#: The roles of a dialog's parties (RFC 3261 12): the one who sent the
#: initial INVITE, and the other. Defined once, here, for the proxy's
#: dialog table and every stage that keeps per-call state.
CALLER = "caller"
CALLEE = "callee"


class IDialogListener(Interface):
    """
    Something that keeps per-call state (the C{media-anchor} stage's relay
    sessions, the toll-fraud guard's call slots) and listens to the
    proxy's one dialog table (C{sipedge.proxy.DialogTracker}) to forget it
    when a dialog is over, however it ended: a BYE through us, a BYE the
    proxy sent itself (the media stopped, the session expired), a 481 or
    408 to one of its requests (RFC 5057), or no refresh within the
    table's lifetime.
    """

    def dialog_ended(call_id: str, caller_tag: str, callee_tag: str, reason: str) -> None:
        """
        The dialog of C{call_id} between C{caller_tag} (the L{CALLER}'s)
        and C{callee_tag} is over; C{reason}: C{"bye"}, C{"ended: <why>"}
        (the proxy ended it with a BYE to each party), C{"gone: <status>"}
        or C{"forgotten"}. Called synchronously, once per dialog; keep it
        cheap, and expect it for calls you never saw.
        """


class IProxyObserver(Interface):
    """
    Something that watches what the proxy decides (the behaviour monitor,
    metrics). Called synchronously: keep it cheap, never block.
    """

    def request_decided(context: RequestContext, result: StageResult) -> None:
        """
        The request chain decided C{result} (Respond, Forward or Drop) for
        the request in C{context} (a RequestContext: its flow, identity and
        annotations). Not called for ACK or CANCEL.
        """


class IMediaRelay(Interface):
    """
    The media relay, as the proxy (the media-anchoring stage) sees it:
    in-process (L{sipedge.media.MediaRelay}) or in another process reached
    over a control protocol. Every argument and result is a plain frozen
    value from L{sipedge.media} (strings, numbers, enums, tuples), and every
    call returns a Deferred, so a remote implementation fits unchanged.

    A session is one call's media, named by a key the caller chooses (e.g.
    Call-ID and from-tag). Party A made the offer, party B answers.
    """

    def allocate(session_key: str, offer: MediaOffer) -> Deferred[RelayAllocation]:
        """
        Open relay ports for the streams of A's offer, under
        C{offer.policy} (modes, interfaces, NAT, limits), and fire with
        the allocation: its B endpoints (address, ports, a=crypto) go in the
        offer forwarded to B. Media from A is accepted only from the
        addresses the offer names, or, for a party behind NAT
        (C{offer.source}, and likewise C{answer.source} for B), only from
        that source's IP, on the port learned from its first packet.

        Fails with L{sipedge.media.MediaOfferError} (488) if the offer
        cannot be served, L{sipedge.media.PortsExhausted} (503) if ports
        ran out, L{sipedge.media.SessionExists} if the key is live; nothing
        stays allocated then.
        """

    def update(session_key: str, answer: MediaOffer) -> Deferred[RelayAllocation]:
        """
        Apply the answer to the last offer (C{answer.policy} must be
        C{None}): B's to an L{allocate}, or the other party's to a
        L{reoffer}: accept its media from the addresses it names, take its
        keys (and put the re-offer in force). May be called for each
        answer (a 183 then the 200). Fires with the allocation, whose
        A endpoints go in the answer forwarded to A.

        Fails with L{sipedge.media.MediaOfferError} if the answer does not
        fit the offer (the session stays as it was) or
        L{sipedge.media.UnknownSession}.
        """

    def reoffer(
        session_key: str, offer: MediaOffer, offerer: Party
    ) -> Deferred[RelayAllocation]:
        """
        A new offer in the answered session (a re-INVITE or UPDATE), from
        C{offerer} (L{sipedge.media.Party}: A or B; the parties keep their
        sides). The session is updated in place: a stream kept keeps its
        relay ports, and its SRTP context where the keys are unchanged; a
        stream added or re-enabled gets new ports, one disabled (port 0)
        releases its ports with the answer. Nothing changes in the media
        until the answer (L{update}, which then applies to the other party):
        media flows as before meanwhile, then each party's new address and
        keys take over, its old address staying accepted until it sends
        from the new one. C{offer.policy} is C{None} or the session's (seen
        from the offerer). Fires with the allocation: the endpoints facing
        the answerer go in the offer forwarded to it. A re-offer still
        unanswered is replaced.

        Fails with L{sipedge.media.MediaOfferError} (488) if the offer
        cannot be served in place (fewer streams than the session, an
        unanswered session, another policy),
        L{sipedge.media.PortsExhausted} for an added stream,
        L{sipedge.media.UnknownSession}, or
        L{sipedge.media.ReofferUnsupported} (a relay that cannot: allocate
        a new session instead); the session stays as it was then.
        """

    def withdraw(session_key: str) -> Deferred[RelayAllocation]:
        """
        The re-offer waiting for its answer was refused (a failure to the
        re-INVITE or UPDATE, RFC 3261 14.1): forget it and release the
        ports it bound; the session goes on as before it. Harmless without
        one. Fires with the allocation in force; fails with
        L{sipedge.media.UnknownSession} or
        L{sipedge.media.ReofferUnsupported}.
        """

    def release(session_key: str) -> Deferred[SessionStats | None]:
        """
        End the session and close its ports (BYE, CANCEL, a failed call).
        Fires with its final statistics, or C{None} if no such session is
        live (releasing twice is harmless).
        """

    def sessions() -> Deferred[Mapping[str, SessionStats]]:
        """Fire with a snapshot of every live session, by key."""

    def stats() -> Deferred[RelayStats]:
        """Fire with the relay's totals."""

    def add_observer(observer: Callable[[SessionEnd], object]) -> None:
        """
        Call C{observer} with a L{sipedge.media.SessionEnd} whenever a
        session ends, whatever the reason (the relay ends sessions itself
        on idle, setup and duration timeouts: the proxy may then end the
        call with BYE).
        """

    def remove_observer(observer: Callable[[SessionEnd], object]) -> None:
        """Stop calling C{observer} (unknown observers are ignored)."""


__all__ += ["IMediaRelay"]

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sipedge.media import (
        MediaOffer,
        Party,
        RelayAllocation,
        RelayStats,
        SessionEnd,
        SessionStats,
    )


class IBanStore(Interface):
    """
    The ban list (L{sipedge.security.Bans}): sources whose traffic is
    dropped before it is parsed, each for a time that grows with repeated
    offences, and the offence counts that lead to bans. Synchronous:
    L{is_banned} runs for every packet.
    """

    stats = Attribute("Counters (a mutable mapping of str to int) of bans and offences.")

    def ban(
        source: str, reason: str, now: float, *, duration: float | None = None, rule: str = "ban"
    ) -> Ban | None:
        """
        Ban the IP address C{source} from C{now}, for C{duration} seconds
        (C{inf}: for ever) or as long as its record earns; C{None} if it
        is trusted (refused, and logged).

        @raise ValueError: if C{source} is not an IP address, or
            C{duration} is not positive.
        """

    def is_banned(source: str, now: float) -> bool:
        """Whether C{source} is banned at C{now} (cheap: every packet asks)."""

    def get(source: str, now: float) -> Ban | None:
        """The active ban of C{source}, or C{None}."""

    def unban(source: str) -> bool:
        """Lift the ban of C{source}; whether there was one."""

    def offence(source: str, kind: str, now: float, detail: str | None = None) -> Ban | None:
        """
        Count one offence of C{kind} by C{source}; the ban it earned once
        the kind's threshold is reached, else C{None}.
        """

    def offences(source: str, kind: str, now: float) -> int:
        """The offences of C{kind} by C{source} in the window ending at C{now}."""

    def purge(now: float) -> int:
        """Sweep bans ended by C{now} and old history; how many bans ended."""

    def list(now: float) -> builtins.list[Ban]:
        """The active bans at C{now}."""

    def close() -> None:
        """Release the store (its database file)."""

    def __len__() -> int:
        """How many bans are active (the mirror the hot path reads)."""
