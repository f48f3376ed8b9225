# -*- test-case-name: sipedge.test.test_interfaces -*-
"""
Every implementer of every sipedge interface is checked with C{verifyObject}.

The test walks the sipedge package (its tests aside): every zope interface
defined in it, and every class defined in it that declares one. Each such
class needs a builder in L{BUILDERS} (or, for an abstract base, an entry in
L{ABSTRACT} naming the subclasses that are checked in its place), so a new
implementer cannot be forgotten: the walk fails, naming it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

import sipedge
from sipedge.config import DEFAULT_STAGES
from sipedge.message import Request, parse_datagram
from sipedge.pipeline import StageServices, build_chain, stage_factories
from sipedge.proxy import LocalIdentity
from sipedge.testing import FakeReactor, RecordingReceiver
from sipedge.transport import Flow

SECRET = b"k" * 32
UDP = Flow("UDP", "192.0.2.1", 5060, "192.0.2.7", 5060)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKinterfaces\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: interfaces@192.0.2.7\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.7>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _modules() -> Iterator[Any]:
    """Every module of the sipedge package, its tests aside."""
    for info in pkgutil.walk_packages(sipedge.__path__, "sipedge."):
        if info.name == "sipedge.test" or info.name.startswith("sipedge.test."):
            continue
        yield importlib.import_module(info.name)


def interfaces_and_implementers() -> tuple[set[InterfaceClass], dict[type, set[InterfaceClass]]]:
    """
    The interfaces sipedge defines, and each class defined in sipedge that
    declares one or more of them (with those interfaces).
    """
    modules = list(_modules())
    interfaces = {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, InterfaceClass) and value.__module__.startswith("sipedge.")
    }
    implementers: dict[type, set[InterfaceClass]] = {}
    for module in modules:
        for value in vars(module).values():
            if not inspect.isclass(value) or value.__module__ != module.__name__:
                continue
            if isinstance(value, InterfaceClass):
                continue
            provided = {i for i in interfaces if i.implementedBy(value)}
            if provided:
                implementers[value] = provided
    return interfaces, implementers


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- builders: one object of each implementer ------------------------------------


class _User:
    """A transaction user that ignores everything (for building transactions)."""

    def request_received(self, request: Any, transaction: Any) -> None: ...
    def response_received(self, response: Any, transaction: Any) -> None: ...
    def transaction_failed(self, transaction: Any, reason: Any) -> None: ...
    def transaction_terminated(self, transaction: Any) -> None: ...
    def stray_message(self, message: Any, flow: Any) -> None: ...


def _request(method: str = "INVITE") -> Request:
    message = parse_datagram(INVITE.replace(b"INVITE", method.encode()))
    assert isinstance(message, Request)
    return message


class _World:
    """The shared objects the builders need, made once per test."""

    def __init__(self, test: SynchronousTestCase) -> None:
        from sipedge.auth import MemoryCredentialStore, NonceSource
        from sipedge.proxy import RecordRouteSigner, Registrar
        from sipedge.security import Monitor, Security, TollFraudGuard
        from sipedge.store import MemoryLocationStore

        self.test = test
        self.clock = Clock()
        self.store = MemoryLocationStore()
        self.security = Security(clock=self.clock)
        test.addCleanup(self.security.close)
        self.signer = RecordRouteSigner(SECRET)
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(("example.com",), (("UDP", "192.0.2.1", 5060),)),
            location=self.store,
            registrar=Registrar(self.store, self.clock),
            signer=self.signer,
            security=self.security,
            credentials=MemoryCredentialStore(),
            nonces=NonceSource(SECRET, self.clock),
            monitor=Monitor(clock=self.clock, security=self.security),
            toll_fraud=TollFraudGuard(clock=self.clock),
        )
        self.chain = build_chain(DEFAULT_STAGES, {}, self.services)
        self.stages = {type(stage): stage for stage in self.chain.stages}
        self.factories = {type(f): f for f in stage_factories().values()}

    def path(self, name: str) -> str:
        directory = Path(self.test.mktemp())
        directory.mkdir(parents=True)
        return str(directory / name)


def _stage(world: _World, cls: type) -> object:
    return world.stages[cls]


def _factory(world: _World, cls: type) -> object:
    return world.factories[cls]


def _transaction(world: _World, cls: type) -> object:
    method = "INVITE" if "Invite" in cls.__name__ and "NonInvite" not in cls.__name__ else "OPTIONS"
    return cls(
        _request(method), UDP, send=lambda message, flow: None, user=_User(), clock=world.clock
    )


def _credentials(world: _World, cls: type) -> object:
    from sipedge.message import DigestCredentials

    response = DigestCredentials(
        username="alice",
        realm="example.com",
        nonce="abc",
        uri="sip:bob@example.com",
        response="0" * 32,
    )
    return cls(response, "INVITE")


def _user(world: _World, cls: type) -> object:
    return cls("alice")


def _memory_credentials(world: _World, cls: type) -> object:
    return cls()


def _sqlite_credentials(world: _World, cls: type) -> object:
    store = cls(world.path("credentials.sqlite3"))
    world.test.addCleanup(store.close)
    return store


def _nonces(world: _World, cls: type) -> object:
    return cls(SECRET, world.clock)


def _media_relay(world: _World, cls: type) -> object:
    from sipedge.media import PortAllocator

    reactor = FakeReactor()
    relay = cls(reactor, PortAllocator(reactor, 40000, 40099, "127.0.0.1"))
    world.test.addCleanup(relay.close)
    return relay


def _remote_relay(world: _World, cls: type) -> object:
    from twisted.internet.endpoints import TCP4ClientEndpoint

    reactor = FakeReactor()
    return cls(TCP4ClientEndpoint(reactor, "127.0.0.1", 9), SECRET, reactor)


def _core(world: _World, cls: type) -> object:
    return cls(
        chain=world.chain, services=world.services, clock=world.clock, signer=world.signer
    )


def _dialogs(world: _World, cls: type) -> object:
    return cls(world.clock)


def _bans(world: _World, cls: type) -> object:
    bans = cls()
    world.test.addCleanup(bans.close)
    return bans


def _observer(world: _World, cls: type) -> object:
    return cls(clock=world.clock)


def _memory_store(world: _World, cls: type) -> object:
    return cls()


def _sqlite_store(world: _World, cls: type) -> object:
    store = cls(world.path("locations.sqlite3"))
    world.test.addCleanup(store.close)
    return store


def _layer(world: _World, cls: type) -> object:
    layer = cls(_User(), lambda message, flow: None, world.clock)
    world.test.addCleanup(layer.stop)
    return layer


def _manager(world: _World, cls: type) -> object:
    return cls(RecordingReceiver(), FakeReactor())


def _worker_router(world: _World, cls: type) -> object:
    from sipedge.process import WorkerSpec

    return cls(RecordingReceiver(), WorkerSpec(0, 1, (), ((),)))


def _remote_connection(world: _World, cls: type) -> object:
    from sipedge.flow import Flow
    from sipedge.process import WorkerRouter

    router = _worker_router(world, WorkerRouter)
    return cls(router, Flow("TCP", "127.0.0.1", 5060, "127.0.0.1", 40000))


def _stream_listener(world: _World, cls: type) -> object:
    from sipedge.transport import TransportManager

    reactor = FakeReactor()
    manager = TransportManager(RecordingReceiver(), reactor)
    listener = manager.listen_tcp("127.0.0.1", 0)
    world.test.addCleanup(manager.close)
    return listener


def _stream(world: _World, cls: type) -> object:
    return cls(RecordingReceiver(), clock=world.clock)


def _datagram(world: _World, cls: type) -> object:
    return cls(RecordingReceiver())


def _receiver(world: _World, cls: type) -> object:
    return cls()


def _fault(world: _World, cls: type) -> object:
    return cls((), world.clock)


def _hep_capture(world: _World, cls: type) -> object:
    from sipedge.capture import HepSender

    sender = HepSender(FakeReactor(), "udp", "127.0.0.1", 9060)
    return cls(sender, world.clock, node_id=2001)


def _call_recorder(world: _World, cls: type) -> object:
    return cls([].append, world.clock)


def _tapped_receiver(world: _World, cls: type) -> object:
    return cls(RecordingReceiver(), ())


def _later_relay(world: _World, cls: type) -> object:
    return cls(_media_relay(world, _relay_class()), world.clock)


def _relay_class() -> type:
    from sipedge.media import MediaRelay

    return MediaRelay


BUILDERS: dict[str, Callable[[_World, type], object]] = {
    "sipedge.accounting._record.CallRecorder": _call_recorder,
    "sipedge.auth._offer.RememberedAlgorithms": _receiver,
    "sipedge.capture._tap.HepCapture": _hep_capture,
    "sipedge.metrics._messages.MessageCounter": _receiver,
    "sipedge.transport._listeners._TappedReceiver": _tapped_receiver,
    "sipedge.auth._credentials.SipDigestCredentials": _credentials,
    "sipedge.auth._credentials.SipUser": _user,
    "sipedge.auth._credentials.MemoryCredentialStore": _memory_credentials,
    "sipedge.auth._credentials.SQLiteCredentialStore": _sqlite_credentials,
    "sipedge.auth._nonce.NonceSource": _nonces,
    "sipedge.media._relay.MediaRelay": _media_relay,
    "sipedge.media._remote.RemoteMediaRelay": _remote_relay,
    "sipedge.pipeline.stages._ban.BanCheckStage": _stage,
    "sipedge.pipeline.stages._digest_auth.DigestAuthStage": _stage,
    "sipedge.pipeline.stages._fault.FaultStage": _fault,
    "sipedge.pipeline.stages._filter.FilterStage": _stage,
    "sipedge.pipeline.stages._flood.FloodStage": _stage,
    "sipedge.pipeline.stages._forward.ForwardStage": _stage,
    "sipedge.pipeline.stages._location.LocationStage": _stage,
    "sipedge.pipeline.stages._loop.LoopDetectStage": _stage,
    "sipedge.pipeline.stages._max_forwards.MaxForwardsStage": _stage,
    "sipedge.pipeline.stages._media_anchor.MediaAnchorStage": _stage,
    "sipedge.pipeline.stages._monitor.MonitorStage": _stage,
    "sipedge.pipeline.stages._registrar.RegistrarStage": _stage,
    "sipedge.pipeline.stages._responsibility.ResponsibilityStage": _stage,
    "sipedge.pipeline.stages._route.RouteStage": _stage,
    "sipedge.pipeline.stages._sanity.SanityStage": _stage,
    "sipedge.pipeline.stages._scanner.ScannerStage": _stage,
    "sipedge.pipeline.stages._static_route.StaticRouteStage": _stage,
    "sipedge.pipeline.stages._toll_fraud.TollFraudStage": _stage,
    "sipedge.plugins.sipedge_auth_stages.AuthStageFactory": _factory,
    "sipedge.plugins.sipedge_lab_stages.LabStageFactory": _factory,
    "sipedge.plugins.sipedge_media_stages.MediaStageFactory": _factory,
    "sipedge.plugins.sipedge_monitor_stages.MonitorStageFactory": _factory,
    "sipedge.plugins.sipedge_security_stages.SecurityStageFactory": _factory,
    "sipedge.plugins.sipedge_stages.StageFactory": _factory,
    "sipedge.proxy._core.ProxyCore": _core,
    "sipedge.proxy._dialogs.DialogTracker": _dialogs,
    "sipedge.security._bans.Bans": _bans,
    "sipedge.security._monitor.Monitor": _observer,
    "sipedge.security._tollfraud.TollFraudGuard": _observer,
    "sipedge.store._memory.MemoryLocationStore": _memory_store,
    "sipedge.store._sqlite.SQLiteLocationStore": _sqlite_store,
    "sipedge.transaction._client.ClientInviteTransaction": _transaction,
    "sipedge.transaction._client.ClientNonInviteTransaction": _transaction,
    "sipedge.transaction._layer.TransactionLayer": _layer,
    "sipedge.transaction._server.ServerInviteTransaction": _transaction,
    "sipedge.transaction._server.ServerNonInviteTransaction": _transaction,
    "sipedge.transport._listeners.StreamListener": _stream_listener,
    "sipedge.transport._manager.TransportManager": _manager,
    "sipedge.process._handoff.WorkerTransportManager": _manager,
    "sipedge.process._handoff.WorkerRouter": _worker_router,
    "sipedge.process._handoff.RemoteConnection": _remote_connection,
    "sipedge.transport._stream.SipStreamProtocol": _stream,
    "sipedge.transport._udp.SipDatagramProtocol": _datagram,
    "sipedge.testing._proxy.PendingLookupStore": _memory_store,
    "sipedge.testing._receiver.RecordingReceiver": _receiver,
    "sipedge.testing._relays.LaterRelay": _later_relay,
}
"""How to build one object of each implementer, by its qualified name."""

ABSTRACT: dict[str, tuple[str, ...]] = {
    "sipedge.transaction._client._ClientTransaction": (
        "sipedge.transaction._client.ClientInviteTransaction",
        "sipedge.transaction._client.ClientNonInviteTransaction",
    ),
    "sipedge.transaction._server._ServerTransaction": (
        "sipedge.transaction._server.ServerInviteTransaction",
        "sipedge.transaction._server.ServerNonInviteTransaction",
    ),
}
"""Abstract bases that declare an interface, and the subclasses checked instead."""


class InterfaceWalkTests(SynchronousTestCase):
    """Every interface and every implementer, walked."""

    def setUp(self) -> None:
        self.interfaces, self.implementers = interfaces_and_implementers()

    def test_interfaces_found(self) -> None:
        """
        The walk finds the interfaces of L{sipedge.interfaces} and of the
        packages (L{sipedge.auth}), so it cannot pass by finding nothing.
        """
        names = {i.__name__ for i in self.interfaces}
        for name in ("IRequestStage", "ITransportManager", "IBanStore", "INonceSource"):
            self.assertIn(name, names)

    def test_every_implementer_has_a_builder(self) -> None:
        """
        Each class that declares a sipedge interface has a builder here (or
        is an abstract base whose subclasses have one): a new implementer
        fails this test until it is added.
        """
        found = {_name(cls) for cls in self.implementers}
        known = set(BUILDERS) | set(ABSTRACT)
        self.assertEqual(
            (sorted(found - known), sorted(known - found)),
            ([], []),
            "(implementers without a builder in BUILDERS, builders of no implementer)",
        )
        for base, subclasses in ABSTRACT.items():
            for subclass in subclasses:
                self.assertIn(subclass, BUILDERS, base)

    def test_verify_every_implementer(self) -> None:
        """
        One object of each implementer provides, by C{verifyObject}, every
        sipedge interface its class declares.
        """
        world = _World(self)
        checked = []
        for cls, provided in sorted(self.implementers.items(), key=lambda i: _name(i[0])):
            builder = BUILDERS.get(_name(cls))
            if builder is None:
                continue  # an abstract base (see test_every_implementer_has_a_builder)
            instance = builder(world, cls)
            self.assertIsInstance(instance, cls)
            for interface in sorted(provided, key=lambda i: i.__name__):
                self.assertTrue(verifyObject(interface, instance), (cls, interface))
                checked.append((_name(cls), interface.__name__))
        self.assertGreaterEqual(len(checked), len(BUILDERS))
