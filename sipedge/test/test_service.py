# -*- test-case-name: sipedge.test.test_service -*-
"""
Tests for L{sipedge.service}: the composition root, built on an in-memory
reactor (L{sipedge.testing.FakeReactor}: a C{MemoryReactorClock} with UDP)
and never started on the real one.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import Config, parse_config
from sipedge.error import ConfigError
from sipedge.message import Response
from sipedge.proxy import Sealer, TopologyHider
from sipedge.service import SECRET_FILE, SipEdgeService, build_service
from sipedge.store import DATABASE_NAME
from sipedge.testing import UAC, FakeReactor

LISTEN = ["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070"]
PEER = ("127.0.0.1", 40000)


class _Peer(DatagramProtocol):
    """A UDP peer that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append(data)


class _ServiceTestCase(SynchronousTestCase):
    """Builds services on fresh state directories, and cleans up after them."""

    def config(self, **sip: Any) -> Config:
        """
        A configuration with a new state directory (not yet created), domain
        C{sipedge.test}, L{LISTEN}, and C{sip} as further C{[sip]} keys.
        """
        self.state = Path(self.mktemp()).absolute()
        table = {"domains": ["sipedge.test"], "listen": LISTEN, **sip}
        return parse_config({"sip": table, "state": {"path": str(self.state)}})

    def build(self, config: Config, reactor: Any = None) -> SipEdgeService:
        """L{build_service} on C{reactor} (a new L{FakeReactor} by default)."""
        self.reactor = FakeReactor() if reactor is None else reactor
        service = build_service(config, self.reactor)
        self.addCleanup(self._stop, service, self.reactor)
        return service

    def _stop(self, service: SipEdgeService, reactor: Any) -> None:
        service.stopService()


class BuildServiceTests(_ServiceTestCase):
    """Tests for L{build_service}, before the service starts."""

    def test_not_started(self) -> None:
        """
        If L{build_service} is given a C{MemoryReactorClock}, it builds the
        tree without listening or starting anything.
        """
        config = self.config()
        reactor = MemoryReactorClock()
        service = self.build(config, reactor)
        self.assertIsInstance(service, SipEdgeService)
        self.assertIs(service.config, config)
        self.assertFalse(service.running)
        self.assertEqual(reactor.tcpServers, [])
        self.assertEqual(service.transports.transports, ())
        self.assertIs(service.core.transports, service.transports)

    def test_state_directory(self) -> None:
        """
        L{build_service} creates the state directory, private to its owner,
        with the location database in it.
        """
        self.build(self.config())
        self.assertTrue(self.state.is_dir())
        self.assertEqual(stat.S_IMODE(self.state.stat().st_mode) & 0o077, 0)
        self.assertTrue((self.state / DATABASE_NAME).is_file())

    def test_state_directory_unusable(self) -> None:
        """If the state directory cannot be made, L{ConfigError} names C{state.path}."""
        config = self.config()
        self.state.parent.mkdir(parents=True, exist_ok=True)
        self.state.write_text("a file, not a directory")
        with self.assertRaises(ConfigError) as raised:
            build_service(config, FakeReactor())
        self.assertTrue(str(raised.exception).startswith("state.path: cannot create"))

    def test_secret_created(self) -> None:
        """L{build_service} makes a 32-byte Record-Route secret with mode 0600."""
        self.build(self.config())
        secret = self.state / SECRET_FILE
        self.assertEqual(len(secret.read_bytes()), 32)
        self.assertEqual(stat.S_IMODE(secret.stat().st_mode), 0o600)

    def test_secret_reused(self) -> None:
        """
        If the state directory holds a secret, the next L{build_service}
        signs with it, so Record-Route values survive a restart.
        """
        config = self.config()
        first = self.build(config)
        secret = (self.state / SECRET_FILE).read_bytes()
        second = self.build(config)
        self.assertEqual((self.state / SECRET_FILE).read_bytes(), secret)
        self.assertEqual(second.signer.mac("call-1"), first.signer.mac("call-1"))

    def test_short_secret_replaced(self) -> None:
        """If the secret file is shorter than 32 bytes, a new secret replaces it."""
        config = self.config()
        self.state.mkdir(parents=True)
        (self.state / SECRET_FILE).write_bytes(b"short")
        self.build(config)
        secret = (self.state / SECRET_FILE).read_bytes()
        self.assertEqual(len(secret), 32)
        self.assertNotEqual(secret[:5], b"short")

    def topology_config(self, **section: Any) -> Config:
        """L{config} with C{[topology_hiding]} enabled and C{section} in it."""
        self.state = Path(self.mktemp()).absolute()
        return parse_config(
            {
                "sip": {"domains": ["sipedge.test"], "listen": LISTEN},
                "state": {"path": str(self.state)},
                "topology_hiding": {"enabled": True, **section},
            }
        )

    def test_topology_hiding_off(self) -> None:
        """By default the proxy core hides nothing."""
        service = self.build(self.config())
        self.assertIsNone(service.topology)
        self.assertIsNone(service.core.topology)

    def test_topology_hiding_rr_key(self) -> None:
        """
        Enabled without C{key_file}, topology hiding seals with keys derived
        from the Record-Route secret, so its tokens survive a restart.
        """
        service = self.build(self.topology_config(internal=["10.0.0.0/8"]))
        self.assertIs(service.core.topology, service.topology)
        assert service.topology is not None
        self.assertTrue(service.topology.is_internal("10.1.1.1"))
        self.assertFalse(service.topology.is_internal("192.168.1.1"))
        masked = service.topology.mask_call_id("call@10.0.0.5")
        again = TopologyHider(Sealer((self.state / SECRET_FILE).read_bytes()), ())
        self.assertEqual(again.unmask_call_id(masked), "call@10.0.0.5")

    def test_topology_hiding_key_file(self) -> None:
        """With C{key_file}, topology hiding seals with that file's secret."""
        key = Path(self.mktemp())
        key.write_bytes(b"k" * 32)
        service = self.build(self.topology_config(key_file=str(key)))
        assert service.topology is not None
        masked = service.topology.mask_call_id("call@10.0.0.5")
        self.assertEqual(
            TopologyHider(Sealer(b"k" * 32), ()).unmask_call_id(masked), "call@10.0.0.5"
        )

    def test_topology_hiding_bad_key_file(self) -> None:
        """A missing or short C{key_file} stops start-up with an error naming the key."""
        missing = self.topology_config(key_file=str(Path(self.mktemp())))
        with self.assertRaises(ConfigError) as raised:
            build_service(missing, FakeReactor())
        self.assertTrue(str(raised.exception).startswith("topology_hiding.key_file: cannot read"))
        short = Path(self.mktemp())
        short.write_bytes(b"short")
        with self.assertRaises(ConfigError) as raised:
            build_service(self.topology_config(key_file=str(short)), FakeReactor())
        self.assertIn("at least 32", str(raised.exception))

    def test_chain(self) -> None:
        """L{build_service} builds the request chain of C{pipeline.stages}, in order."""
        config = self.config()
        service = self.build(config)
        names = tuple(stage.name for stage in service.core.chain.stages)
        self.assertEqual(names, config.pipeline.stages)

    def test_dialogs_wired(self) -> None:
        """
        The service has a dialog tracker that the core tells of dialogs
        and originates BYEs through; the media-anchor stage reports the
        end of a call's media to it, and it tells the stage of calls it
        ends or forgets.
        """
        from sipedge.pipeline.stages import MediaAnchorStage

        service = self.build(self.config())
        tracker = service.dialogs
        assert tracker is not None
        self.assertIs(service.core.dialogs, tracker)
        self.assertIn(tracker, service.core.observers)
        self.assertEqual(tracker.originate, service.core.originate)
        [stage] = [s for s in service.core.chain.stages if isinstance(s, MediaAnchorStage)]
        self.assertEqual(stage.on_media_ended, tracker.media_ended)
        self.assertEqual(tracker.listeners, [service.toll_fraud, stage])
        self.assertEqual(tracker.max_lifetime, 43200.0)

    def test_dead_flows_wired(self) -> None:
        """
        The keepalives hear of every connection that is gone, and share with
        the location stage the users whose bindings they removed (answered
        480).
        """
        service = self.build(self.config())
        keepalive = service.keepalive
        assert keepalive is not None
        self.assertIs(keepalive.lost, service.lost)
        self.assertIs(service.core.services.lost, service.lost)
        self.assertEqual(service.transports.on_stream_lost, [keepalive.flow_lost])

    def test_dialogs_off(self) -> None:
        """With C{dialogs.track = false} (or no Record-Route) there is no tracker."""
        config = self.config()
        config = attrs.evolve(config, dialogs=attrs.evolve(config.dialogs, track=False))
        self.assertIsNone(self.build(config).dialogs)
        self.assertIsNone(self.build(self.config(record_route=False)).dialogs)

    def test_unknown_stage(self) -> None:
        """If a stage is not installed, L{build_service} raises L{ConfigError} naming it."""
        config = parse_config(
            {
                "pipeline": {"stages": ["sanity", "no-such-stage", "forward"]},
                "state": {"path": str(Path(self.mktemp()).absolute())},
            }
        )
        with self.assertRaises(ConfigError) as raised:
            build_service(config, FakeReactor())
        self.assertIn("pipeline.stages[1]: unknown stage 'no-such-stage'", str(raised.exception))


class PrivilegedStartTests(_ServiceTestCase):
    """Tests for L{SipEdgeService.privilegedStartService}: listening."""

    def test_listens(self) -> None:
        """
        L{SipEdgeService.privilegedStartService} listens on each configured
        address: UDP with C{listenUDP}, TCP with C{listenTCP}.
        """
        service = self.build(self.config())
        service.privilegedStartService()
        [udp] = self.reactor.udpPorts
        self.assertEqual((udp.host, udp.port), ("127.0.0.1", 5070))
        [(port, _, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (5070, "127.0.0.1"))
        self.assertEqual(service.bound, (("UDP", "127.0.0.1", 5070), ("TCP", "127.0.0.1", 5070)))
        self.assertEqual([t.name for t in service.transports.transports], ["UDP", "TCP"])

    def test_listening_logged(self) -> None:
        """
        Each listener is logged with its transport, host and real port (what
        the end-to-end tests read to find a port 0 listener).
        """
        events: list[dict[str, Any]] = []
        observer: Any = events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        service = self.build(self.config(listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]))
        service.privilegedStartService()
        logged = [
            (e["transport"], e["host"], e["port"])
            for e in events
            if e["log_format"] == "Listening for SIP on {transport} {host} port {port}"
        ]
        self.assertEqual(logged, list(service.bound))
        self.assertNotIn(0, [port for _, _, port in logged])

    def test_local_identity(self) -> None:
        """
        Once listening, the stages' L{LocalIdentity} knows the bound
        addresses (real ports for port 0) and the advertised one.
        """
        config = self.config(listen=["udp:127.0.0.1:0"], advertise="sip.example.com:5080")
        service = self.build(config)
        service.privilegedStartService()
        [(transport, host, port)] = service.bound
        self.assertEqual(
            service.core.services.local.addresses,
            {(transport, host, port), ("UDP", "sip.example.com", 5080)},
        )

    def test_tls_self_signed(self) -> None:
        """
        If a TLS listener has no certificate configured, a self-signed one
        is made in the state directory and the listener uses TLS.
        """
        service = self.build(self.config(listen=["tls:127.0.0.1:5071"]))
        service.privilegedStartService()
        [(port, _, _, _)] = self.reactor.tcpServers
        self.assertEqual(port, 5071)
        self.assertEqual([t.name for t in service.transports.transports], ["TLS"])
        self.assertNotEqual(list(self.state.glob("*.pem")), [])

    def test_udp_port_in_use(self) -> None:
        """
        If a UDP port is taken, L{SipEdgeService.privilegedStartService}
        exits with a message naming the listener.
        """
        service = self.build(self.config())
        self.reactor.network.bind("127.0.0.1", 5070, _Peer())
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        message = str(raised.exception.code)
        self.assertTrue(message.startswith("sipedge: cannot listen on udp:127.0.0.1:5070: "))
        self.assertIn("address in use", message)
        self.assertEqual(self.reactor.tcpServers, [])

    def test_tcp_port_in_use(self) -> None:
        """
        If a TCP port is taken, L{SipEdgeService.privilegedStartService}
        exits with a message naming the listener, and closes the listeners
        it had opened.
        """
        service = self.build(self.config())
        self.reactor.listenTCP(5070, Factory.forProtocol(Protocol), interface="127.0.0.1")
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        message = str(raised.exception.code)
        self.assertTrue(message.startswith("sipedge: cannot listen on tcp:127.0.0.1:5070: "))
        [udp] = self.reactor.udpPorts
        self.assertTrue(udp.closed)
        self.assertEqual(service.transports.transports, ())

    def test_bad_certificate(self) -> None:
        """
        If the TLS certificate cannot be read,
        L{SipEdgeService.privilegedStartService} exits with a message
        naming the file.
        """
        missing = Path(self.mktemp()).absolute() / "cert.pem"
        config = parse_config(
            {
                "sip": {"domains": ["sipedge.test"], "listen": ["tls:127.0.0.1:5071"]},
                "tls": {"certificate": str(missing)},
                "state": {"path": str(Path(self.mktemp()).absolute())},
            }
        )
        service = self.build(config)
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        message = str(raised.exception.code)
        self.assertTrue(message.startswith("sipedge: "), message)
        self.assertIn(str(missing), message)
        self.assertEqual(self.reactor.tcpServers, [])


class RunningServiceTests(_ServiceTestCase):
    """Tests for a started L{SipEdgeService}, and for stopping it."""

    def start(self, **sip: Any) -> SipEdgeService:
        service = self.build(self.config(**sip))
        service.privilegedStartService()
        service.startService()
        return service

    def listener(self) -> tuple[str, int]:
        """The address of the UDP listener."""
        [udp] = self.reactor.udpPorts
        return (udp.host, udp.port)

    def test_start(self) -> None:
        """
        L{SipEdgeService.startService} runs the service and removes expired
        registrations every minute.
        """
        service = self.start()
        self.assertTrue(service.running)
        expiry = [c for c in self.reactor.getDelayedCalls() if "Registrar._expire" in repr(c)]
        self.assertEqual([c.getTime() for c in expiry], [60.0])

    def test_wired(self) -> None:
        """
        A request that reaches a UDP listener goes through the transaction
        layer, the proxy core and the chain, and is answered on its flow.
        """
        self.start()
        # From outside our domains: no digest challenge for these tests.
        alice = UAC("alice", "example.org", self.reactor, host=PEER[0], outbound=self.listener())
        alice.listen(self.reactor, PEER[1])
        self.addCleanup(alice.stop)
        alice.send_request(alice.request("OPTIONS", "sip:sipedge.test", max_forwards=0))
        self.reactor.flush()
        [response] = alice.received
        assert isinstance(response, Response)
        self.assertEqual(response.status, 200)

    def test_stop(self) -> None:
        """
        L{SipEdgeService.stopService} stops the service, releases every
        port, stops the expiry and closes the location database.
        """
        service = self.start()
        self.assertIsNone(self.successResultOf(service.stopService()))
        self.assertFalse(service.running)
        self.assertEqual(service.transports.transports, ())
        [udp] = self.reactor.udpPorts
        self.assertTrue(udp.closed)
        self.assertIsNone(self.reactor.network.port_at("127.0.0.1", 5070))
        # The TCP port is free again.
        self.reactor.listenTCP(5070, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.assertEqual(
            [c for c in self.reactor.getDelayedCalls() if "Registrar._expire" in repr(c)], []
        )
        self.failureResultOf(
            service.store.lookup("sip:alice@sipedge.test", 0.0), sqlite3.ProgrammingError
        )

    def test_stop_leaves_no_delayed_calls(self) -> None:
        """L{SipEdgeService.stopService} leaves nothing scheduled on the reactor."""
        service = self.start()
        self.successResultOf(service.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stop_cancels_timer_c(self) -> None:
        """
        If an INVITE is being forwarded, L{SipEdgeService.stopService}
        cancels its Timer C as well as its transactions' timers.
        """
        service = self.start(trusted=["127.0.0.0/8"])
        alice = UAC("alice", "example.org", self.reactor, host=PEER[0], outbound=self.listener())
        alice.listen(self.reactor, PEER[1])
        call = alice.invite("sip:bob@192.0.2.99")
        self.reactor.flush()
        self.assertEqual(call.statuses, [100])
        self.assertIn(b"INVITE sip:bob@192.0.2.99", self.reactor.network.sent[-1].data)
        self.successResultOf(service.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
