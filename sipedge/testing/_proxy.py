# -*- test-case-name: sipedge.test.test_proxy_core -*-
"""
A whole L{ProxyCore} in memory: the real transaction layer and request
chain, with L{FakeTransports} (records what is sent) and L{FakeLocator}
(canned destinations per host), on a L{Clock}. L{ProxyHarness} is mixed
into a C{SynchronousTestCase}; the parties are fixed addresses of the
documentation ranges (RFC 5737): the proxy at L{PROXY}, Alice upstream,
Bob and Carol downstream, a trusted PBX at L{TRUSTED}.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any, overload

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import TransportError
from sipedge.flow import format_hostport
from sipedge.message import Message, Request, Response, serialize
from sipedge.pipeline import StageServices, build_chain
from sipedge.proxy import LocalIdentity, ProxyCore, RecordRouteSigner, Registrar
from sipedge.store import LostBindings, MemoryLocationStore
from sipedge.testing._messages import sip_request
from sipedge.transaction import TimerSettings
from sipedge.transport import Destination, Flow, stamp_via

__all__ = [
    "ALICE",
    "ALICE_CONTACT",
    "BOB",
    "BOB_CONTACT",
    "BOB_TCP",
    "BOB_TLS",
    "BOB_UDP",
    "CAROL",
    "CAROL_UDP",
    "DAVE",
    "PROXY",
    "PROXY6",
    "SECRET",
    "STAGES",
    "TRUSTED",
    "UPSTREAM",
    "FakeLocator",
    "FakeTransports",
    "PendingLookupStore",
    "ProxyHarness",
]

PROXY = "192.0.2.1"
#: Our IPv6 address, when a harness listens on both families (L{ProxyHarness.ipv6}).
PROXY6 = "2001:db8::1"
SECRET = b"0123456789abcdef0123456789abcdef"
STAGES = (
    "sanity",
    "max-forwards",
    "loop-detect",
    "route",
    "responsibility",
    "registrar",
    "location",
    "static-route",
    "forward",
)

ALICE = Flow("UDP", PROXY, 5060, "198.51.100.7", 5060)
BOB_UDP = Flow("UDP", PROXY, 5060, "203.0.113.5", 5060)
BOB_TCP = Flow("TCP", PROXY, 5060, "203.0.113.5", 40001)
BOB_TLS = Flow("TLS", PROXY, 5061, "203.0.113.5", 40002)
CAROL_UDP = Flow("UDP", PROXY, 5060, "203.0.113.6", 5060)
TRUSTED = Flow("UDP", PROXY, 5060, "10.1.2.3", 5060)

BOB = BOB_UDP.remote
CAROL = CAROL_UDP.remote
DAVE = ("203.0.113.7", 5060)
UPSTREAM = ALICE.remote

#: The Contacts Alice and Bob register in dialog tests.
ALICE_CONTACT = "<sip:alice@198.51.100.7:5060>"
BOB_CONTACT = "<sip:bob@203.0.113.5:5060>"


class FakeTransports:
    """
    An L{ITransportManager} that records every C{send(message, flow)}; we
    listen on UDP, TCP and TLS at L{PROXY}, IPv4 only, or also at L{PROXY6}
    with C{ipv6}.
    """

    def __init__(self, ipv6: bool = False) -> None:
        self.ipv6 = ipv6
        self.sent: list[tuple[Message, Flow]] = []
        self.unreachable: set[tuple[str, str]] = set()
        self.fail_send: set[tuple[str, int]] = set()
        self.results: list[Any] = []
        self.connections: set[Flow] = set()
        self.server_names: list[str | None] = []

    def send(
        self, message: Message, flow: Flow, *, server_name: str | None = None
    ) -> Deferred[Flow] | None:
        # Everything sent must serialize (no header smuggling, no bad URI).
        serialize(message)
        self.sent.append((message, flow))
        self.server_names.append(server_name)
        if flow.remote in self.fail_send:
            d: Deferred[Flow] = fail(TransportError(f"cannot connect to {flow}"))
            self.results.append(d)
            return d
        return None

    def connection_for(self, flow: Flow) -> object | None:
        return object() if flow in self.connections else None

    def flow_to(self, transport: str, host: str, port: int) -> Flow:
        if (transport, host) in self.unreachable:
            raise TransportError(f"no {transport} route to {host}")
        v6 = ipaddress.ip_address(host).version == 6
        local_host, local_port = self.local_hostport(
            transport, socket.AF_INET6 if v6 else socket.AF_INET
        )
        return Flow(transport, local_host, local_port, host, port)

    def local_hostport(self, transport: str, family: int) -> tuple[str, int]:
        if family != socket.AF_INET and not (self.ipv6 and family == socket.AF_INET6):
            raise TransportError(f"no {transport} transport for family {family}")
        host = PROXY if family == socket.AF_INET else PROXY6
        return (host, 5061 if transport == "TLS" else 5060)


class FakeLocator:
    """A locator with canned destinations per host."""

    def __init__(self) -> None:
        self.table: dict[str, list[Destination]] = {}
        self.pending: dict[str, Deferred[list[Destination]]] = {}
        self.located: list[str] = []

    def add(self, host: str, *addresses: tuple[str, str, int]) -> None:
        self.table[host] = [Destination(t, h, p, host, host) for t, h, p in addresses]

    def locate(self, uri: Any) -> Deferred[list[Destination]]:
        host = uri.host.strip("[]")
        self.located.append(host)
        if host in self.pending:
            return self.pending[host]
        if host in self.table:
            return succeed(list(self.table[host]))
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return fail(TransportError(f"cannot resolve {host}"))
        transport = (uri.param("transport") or "udp").upper()
        return succeed([Destination(transport, host, uri.port or 5060, host, host)])


if TYPE_CHECKING:
    _HarnessBase = SynchronousTestCase
else:
    _HarnessBase = object


class ProxyHarness(_HarnessBase):
    """What every proxy core test sets up; mixed into SynchronousTestCase."""

    timer_c = 180.0
    #: Whether we also listen on IPv6, at L{PROXY6} (dual stack).
    ipv6 = False
    #: The networks trusted to relay to foreign destinations.
    trusted: tuple[str, ...] = ("10.0.0.0/8",)

    def setUp(self) -> None:
        self.build()
        self.addCleanup(self.assert_clean)

    def build(self) -> None:
        """A new proxy with its fakes (called again for each hypothesis example)."""
        self.clock = Clock()
        self.clock.advance(1000)
        self.transports = FakeTransports(self.ipv6)
        self.locator = FakeLocator()
        self.store = MemoryLocationStore()
        self.registrar = Registrar(self.store, self.clock)
        self.signer = RecordRouteSigner(SECRET)
        self.lost = LostBindings()
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(
                ["example.com"],
                [
                    (transport, host, 5061 if transport == "TLS" else 5060)
                    for host in ((PROXY, PROXY6) if self.ipv6 else (PROXY,))
                    for transport in ("UDP", "TCP", "TLS")
                ],
            ),
            trusted=tuple(ipaddress.ip_network(n) for n in self.trusted),
            location=self.store,
            registrar=self.registrar,
            signer=self.signer,
            lost=self.lost,
        )
        self.core = self.make_core()

    def make_core(self, chain: Any = None, **extra: Any) -> ProxyCore:
        """
        A L{ProxyCore} on this harness's fakes: C{chain} (default: the
        standard L{STAGES}) and C{extra} keyword arguments (C{observers},
        C{dialogs}, C{topology}, ...) as given.
        """
        return ProxyCore(
            chain=build_chain(STAGES, {}, self.services) if chain is None else chain,
            services=self.services,
            clock=self.clock,
            signer=self.signer,
            transports=self.transports,
            locator=self.locator,
            timers=TimerSettings(timer_c=self.timer_c),
            **extra,
        )

    # -- driving -----------------------------------------------------------

    def receive(self, message: Message, flow: Flow) -> None:
        """Deliver C{message} as the transport would (Via stamped)."""
        if isinstance(message, Request):
            message = stamp_via(message, flow)
        self.core.transactions.message_received(message, flow)

    def take(self) -> list[tuple[Message, Flow]]:
        """What was sent since the last call."""
        sent, self.transports.sent = self.transports.sent, []
        return sent

    @overload
    def sent_to(self, remote: tuple[str, int], kind: str) -> list[Request]: ...

    @overload
    def sent_to(self, remote: tuple[str, int], kind: int) -> list[Response]: ...

    @overload
    def sent_to(self, remote: tuple[str, int], kind: None = None) -> list[Message]: ...

    def sent_to(self, remote: tuple[str, int], kind: str | int | None = None) -> list[Any]:
        """
        What was sent to C{remote} since the last L{take} (without clearing):
        requests of method C{kind} or responses of status C{kind}.
        """
        out = []
        for message, flow in self.transports.sent:
            if flow.remote != remote:
                continue
            if kind is None:
                out.append(message)
            elif isinstance(message, Request) and message.method == kind:
                out.append(message)
            elif isinstance(message, Response) and message.status == kind:
                out.append(message)
        return out

    def only(self, remote: tuple[str, int], kind: str | int) -> Any:
        """The one message of C{kind} sent to C{remote}."""
        found = self.sent_to(remote, kind)
        self.assertEqual(len(found), 1, f"{kind} to {remote}: {found!r}")
        return found[0]

    def statuses(self, remote: tuple[str, int]) -> list[int]:
        """
        The statuses of the responses sent to C{remote}, in order; a
        retransmission by a server transaction (the same response again) is
        not counted.
        """
        seen: set[int] = set()
        out = []
        for m, flow in self.transports.sent:
            if isinstance(m, Response) and flow.remote == remote and id(m) not in seen:
                seen.add(id(m))
                out.append(m.status)
        return out

    def register(
        self,
        contact: str,
        flow: Flow,
        *,
        aor: str = "bob",
        q: float | None = None,
        call_id: str | None = None,
    ) -> None:
        """Register C{contact} for C{aor}@example.com from C{flow}."""
        value = f"<{contact}>" + (f";q={q}" if q is not None else "")
        self.receive(
            sip_request(
                "REGISTER",
                "sip:example.com",
                f"Contact: {value}",
                call_id=call_id or f"reg-{aor}-{flow.remote_host}",
                branch=f"z9hG4bK-reg-{abs(hash(contact))}",
                via=format_hostport(flow.remote_host, flow.remote_port),
                transport=flow.transport,
                from_=f"<sip:{aor}@example.com>;tag=reg",
                to=f"<sip:{aor}@example.com>",
            ),
            flow,
        )
        self.assertEqual(self.statuses(flow.remote), [200])
        self.take()

    def settle(self, seconds: float = 300.0, step: float = 0.5) -> None:
        """Let time pass in small steps, so every timer gets to fire."""
        self.clock.pump([step] * int(seconds / step))

    def assert_clean(self) -> None:
        """No transaction, fork, branch or timer is left over."""
        self.settle()
        tc: Any = self
        tc.assertEqual(dict(self.core.transactions.server_transactions), {})
        tc.assertEqual(dict(self.core.transactions.client_transactions), {})
        tc.assertEqual(self.core.forking.forks, {})
        tc.assertEqual(self.core.cancelling.cancels, set())
        tc.assertEqual(self.core.forking.branches, {})
        tc.assertEqual(self.core.forking.accepted, {})
        tc.assertEqual(self.clock.getDelayedCalls(), [])


class PendingLookupStore(MemoryLocationStore):
    """A location store whose lookups wait until the test fires them."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[Deferred[Any]] = []
        self.hold = False

    def lookup(self, aor: str, now: float) -> Deferred[Any]:
        if not self.hold:
            return super().lookup(aor, now)
        d: Deferred[Any] = Deferred()
        self.lookups.append(d)
        return d
