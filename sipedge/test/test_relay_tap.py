# -*- test-case-name: sipedge.test.test_relay_tap -*-
"""
Tests for C{twistd sipedge-relay} (L{sipedge.relay_tap},
L{sipedge.relay_service}), the C{[relay]} section and the C{[media] relay}
keys of the proxy (L{sipedge.service}), on in-memory reactors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sipedge.config import Config, parse_config
from sipedge.error import ConfigError
from sipedge.media import ControlAddress, MediaOffer, RemoteMediaRelay, StreamOffer
from sipedge.pipeline.stages import MediaAnchorStage
from sipedge.relay_service import RelayService, build_relay_service
from sipedge.relay_tap import Options, makeService
from sipedge.service import build_service
from sipedge.testing import (
    FakeReactor,
    capture_log,
)

SECRET = "0123456789abcdef0123456789abcdef"


class ControlAddressTests(SynchronousTestCase):
    """L{ControlAddress}: C{tcp:host:port}."""

    def test_parse(self) -> None:
        """IPv4, IPv6 in brackets, port 0; the text comes back the same."""
        for text, host, port in [
            ("tcp:127.0.0.1:9999", "127.0.0.1", 9999),
            ("TCP:[::1]:0", "::1", 0),
            ("tcp:10.0.0.5:1", "10.0.0.5", 1),
        ]:
            address = ControlAddress.parse(text)
            self.assertEqual((address.transport, address.host, address.port), ("tcp", host, port))
            self.assertEqual(ControlAddress.parse(str(address)), address)

    def test_bad(self) -> None:
        """Anything else is a ValueError quoting the text."""
        for text in [
            "udp:127.0.0.1:9", "tcp:localhost:9", "tcp:127.0.0.1", "tcp:::1:9",
            "tcp:[::1]9", "tcp:127.0.0.1:70000", "tcp:127.0.0.1:x", "127.0.0.1:9", 9999,
        ]:
            with self.assertRaises(ValueError, msg=text):
                ControlAddress.parse(text)

    def test_loopback(self) -> None:
        """Loopback addresses are known as such."""
        self.assertTrue(ControlAddress.parse("tcp:127.0.0.2:1").is_loopback)
        self.assertTrue(ControlAddress.parse("tcp:[::1]:1").is_loopback)
        self.assertFalse(ControlAddress.parse("tcp:10.0.0.1:1").is_loopback)

    def test_endpoints(self) -> None:
        """The client endpoint matches the address family."""
        reactor = MemoryReactorClock()
        self.assertIsInstance(
            ControlAddress.parse("tcp:127.0.0.1:1").client_endpoint(reactor), TCP4ClientEndpoint
        )
        self.assertIsInstance(
            ControlAddress.parse("tcp:[::1]:1").client_endpoint(reactor), TCP6ClientEndpoint
        )


class RelaySectionTests(SynchronousTestCase):
    """The C{[relay]} section and the proxy's C{[media] relay*} keys."""

    def test_defaults(self) -> None:
        """The control port is on loopback by default, with no secret."""
        relay = Config().relay
        self.assertEqual(str(relay.control), "tcp:127.0.0.1:9999")
        self.assertIsNone(relay.secret)
        self.assertIsNone(Config().media.relay)
        with self.assertRaises(ConfigError) as raised:
            relay.read_secret()
        self.assertIn("relay.secret_file", str(raised.exception))

    def test_errors_name_the_key(self) -> None:
        """Bad values are refused naming the key."""
        cases: list[tuple[dict[str, Any], str]] = [
            ({"relay": {"control": "udp:1.2.3.4:5"}}, "relay.control"),
            ({"relay": {"secret": "short"}}, "relay.secret"),
            ({"relay": {"max_pending": 0}}, "relay.max_pending"),
            ({"relay": {"auth_timeout": -1}}, "relay.auth_timeout"),
            ({"relay": {"scret": SECRET}}, "relay.scret"),
            ({"media": {"relay": "tcp:relay.example:9"}}, "media.relay"),
            ({"media": {"relay_timeout": 0}}, "media.relay_timeout"),
            ({"media": {"relay_secret": "x"}}, "media.relay_secret"),
        ]
        for table, key in cases:
            with self.assertRaises(ConfigError, msg=table) as raised:
                parse_config(table)
            self.assertIn(f": {key}: ", f": {raised.exception}")
        # A digit to str.isdigit that int() refuses: named as a bad port.
        with self.assertRaises(ConfigError) as raised:
            parse_config({"relay": {"control": "tcp:1.2.3.4:\u00b2"}})
        self.assertIn("relay.control: bad port '\u00b2'", str(raised.exception))

    def test_secret_file(self) -> None:
        """A secret file is read, white space stripped; a short or missing one is refused."""
        path = Path(self.mktemp())
        path.write_text(SECRET + "\n")
        relay = parse_config({"relay": {"secret_file": str(path)}}).relay
        self.assertEqual(relay.read_secret(), SECRET.encode())
        path.write_text("short\n")
        with self.assertRaises(ConfigError) as raised:
            relay.read_secret()
        self.assertIn("relay.secret_file: ", str(raised.exception))
        path.unlink()
        with self.assertRaises(ConfigError) as raised:
            relay.read_secret()
        self.assertIn("cannot read", str(raised.exception))
        both = parse_config({"relay": {"secret_file": str(path), "secret": SECRET}}).relay
        with self.assertRaises(ConfigError):
            both.read_secret()

    def test_secret_file_relative(self) -> None:
        """A secret file named in a configuration file is relative to that file."""
        from sipedge.config import load_config

        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "relay.key").write_text(SECRET)
        (directory / "sipedge.toml").write_text(
            '[relay]\nsecret_file = "relay.key"\n'
            '[media]\nrelay = "tcp:127.0.0.1:9999"\nrelay_secret_file = "relay.key"\n'
        )
        config = load_config(str(directory / "sipedge.toml"))
        self.assertEqual(config.relay.read_secret(), SECRET.encode())
        self.assertEqual(config.media.relay_secret_bytes(), SECRET.encode())

    def test_secret_not_in_repr(self) -> None:
        """The secret stays out of repr (and so out of logs)."""
        config = parse_config({"relay": {"secret": SECRET}, "media": {"relay_secret": SECRET}})
        self.assertNotIn(SECRET, repr(config))


class OptionsTests(SynchronousTestCase):
    """L{Options}: C{twistd sipedge-relay}'s command line."""

    def setUp(self) -> None:
        self.secret_file = Path(self.mktemp())
        self.secret_file.write_text(SECRET)

    def test_flags(self) -> None:
        """C{--control} and C{--secret-file} set the control port and the secret."""
        options = Options()
        options.parseOptions(
            ["--control", "tcp:[::1]:0", "--secret-file", str(self.secret_file)]
        )
        self.assertEqual(str(options.config.relay.control), "tcp:[::1]:0")
        self.assertEqual(options.secret, SECRET.encode())

    def test_config_file(self) -> None:
        """C{--config} reads C{[media]} and C{[relay]}; the flags override it."""
        path = Path(self.mktemp())
        path.write_text(
            f'[media]\nports = "40000-40099"\n[relay]\ncontrol = "tcp:127.0.0.1:7000"\n'
            f'secret = "{SECRET}"\n'
        )
        options = Options()
        options.parseOptions(["--config", str(path)])
        self.assertEqual(options.config.media.ports, (40000, 40099))
        self.assertEqual(options.config.relay.control.port, 7000)
        options = Options()
        options.parseOptions(["--config", str(path), "--control", "tcp:127.0.0.1:7001"])
        self.assertEqual(options.config.relay.control.port, 7001)

    def test_needs_secret(self) -> None:
        """Without a secret the relay does not start, and says which key to set."""
        with self.assertRaises(usage.UsageError) as raised:
            Options().parseOptions([])
        self.assertIn("relay.secret_file", str(raised.exception))

    def test_bad_values(self) -> None:
        """A bad flag or file value is a usage error naming it."""
        path = Path(self.mktemp())
        path.write_text('[media]\nports = "3-2"\n')
        for args, text in [
            (["--control", "tcp:nowhere:1", "--secret-file", str(self.secret_file)], "--control"),
            (["--config", str(path), "--secret-file", str(self.secret_file)], "media.ports"),
            (["--secret-file", str(self.secret_file) + ".missing"], "relay.secret_file"),
            (["--control", "tls:127.0.0.1:1", "--secret-file", str(self.secret_file)],
             "relay.certificate: "),
        ]:
            with self.assertRaises(usage.UsageError) as raised:
                Options().parseOptions(args)
            self.assertIn(text, str(raised.exception))

    def test_plugin(self) -> None:
        """The C{sipedge-relay} twistd plugin is found, with these options."""
        [plugin] = [p for p in getPlugins(IServiceMaker) if p.tapname == "sipedge-relay"]
        self.assertIs(plugin.options, Options)

    def test_make_service(self) -> None:
        """L{makeService} builds a (not started) L{RelayService}."""
        options = Options()
        options.parseOptions(["--secret-file", str(self.secret_file)])
        service = makeService(options)
        self.assertIsInstance(service, RelayService)
        self.assertFalse(service.running)


class RelayServiceTests(SynchronousTestCase):
    """L{RelayService} on an in-memory reactor."""

    def start(self, **relay: Any) -> RelayService:
        self.reactor = FakeReactor()
        config = parse_config(
            {"relay": {"control": "tcp:127.0.0.1:0", "secret": SECRET, **relay},
             "media": {"address": "127.0.0.1", "ports": "31000-31009"}}
        )
        service = build_relay_service(config, self.reactor, SECRET.encode())
        service.privilegedStartService()
        service.startService()
        self.addCleanup(self.stop, service)
        return service

    def stop(self, service: RelayService) -> None:
        if service.running:
            self.successResultOf(service.stopService())
        self.reactor.flush()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_serves_the_relay(self) -> None:
        """
        The service listens on the control port, logs where, and serves its
        relay to a L{RemoteMediaRelay} that holds the secret.
        """
        events = capture_log(self)
        service = self.start()
        port = service.control_port.getHost().port
        [started] = [e for e in events if "sipedge-relay started" in e.get("log_format", "")]
        self.assertEqual((started["control_host"], started["control_port"]), ("127.0.0.1", port))
        self.assertEqual(started["control"], f"tcp:127.0.0.1:{port}")
        remote = RemoteMediaRelay(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", port), SECRET.encode(), self.reactor
        )
        remote.start()
        self.reactor.flush()
        allocated = remote.allocate("k", MediaOffer([StreamOffer("127.0.0.1", 4000)]))
        self.reactor.flush()
        allocation = self.successResultOf(allocated)
        self.assertEqual(allocation.streams[0].b.port, 31002)
        self.assertEqual(service.relay.session_keys, ("k",))
        closing = remote.close()
        self.reactor.flush()
        self.successResultOf(closing)
        self.successResultOf(service.stopService())
        self.assertEqual(service.relay.open_ports(), [])
        self.assertEqual(service.relay.session_keys, ())

    def test_port_in_use(self) -> None:
        """A control port that cannot be bound stops start-up naming it."""
        self.reactor = FakeReactor()
        from twisted.internet.protocol import Factory, Protocol

        self.reactor.listenTCP(7999, Factory.forProtocol(Protocol), interface="127.0.0.1")
        config = parse_config({"relay": {"control": "tcp:127.0.0.1:7999"}})
        service = build_relay_service(config, self.reactor, SECRET.encode())
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        self.assertIn("relay.control tcp:127.0.0.1:7999", str(raised.exception))

    def test_warns_off_loopback(self) -> None:
        """A control port off loopback is logged as a warning."""
        events = capture_log(self)
        self.start(control="tcp:0.0.0.0:0")
        self.assertTrue([e for e in events if "reachable from the network" in e["log_format"]])


class ProxyWiringTests(SynchronousTestCase):
    """C{[media] relay} in the proxy's composition root."""

    def config(self, **media: Any) -> Config:
        state = Path(self.mktemp()).absolute()
        return parse_config(
            {
                "sip": {"domains": ["sipedge.test"], "listen": ["udp:127.0.0.1:5070"]},
                "state": {"path": str(state)},
                "media": {"anchor": True, "relay": "tcp:127.0.0.1:9999",
                          "relay_secret": SECRET, **media},
            }
        )

    def test_remote_relay_wired(self) -> None:
        """
        With C{media.relay}, the C{media-anchor} stage gets a
        L{RemoteMediaRelay} to the address given, which connects when the
        service starts and disconnects when it stops.
        """
        reactor = FakeReactor()
        service = build_service(self.config(relay_timeout=3), reactor)
        self.addCleanup(lambda: service.running and service.stopService())
        self.assertIsInstance(service.media, RemoteMediaRelay)
        self.assertEqual(service.media.description, "tcp:127.0.0.1:9999")
        self.assertEqual(service.media.timeout, 3.0)
        self.assertIs(service.core.services.media, service.media)
        [stage] = [s for s in service.core.chain.stages if isinstance(s, MediaAnchorStage)]
        self.assertIs(stage.relay, service.media)
        service.privilegedStartService()
        service.startService()
        self.assertEqual(reactor.tcpClients[-1][:2], ("127.0.0.1", 9999))
        self.successResultOf(service.stopService())
        reactor.flush()
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_secret_needed(self) -> None:
        """Without a readable secret the proxy does not start, naming the key."""
        with self.assertRaises(ConfigError) as raised:
            build_service(self.config(relay_secret=None), FakeReactor())
        self.assertIn("media.relay_secret_file", str(raised.exception))

    def test_in_process_by_default(self) -> None:
        """Without C{media.relay} the relay is in process."""
        from sipedge.media import MediaRelay

        reactor = FakeReactor()
        service = build_service(self.config(relay=None), reactor)
        self.addCleanup(service.stopService)
        self.assertIsInstance(service.media, MediaRelay)


class TlsControlTests(SynchronousTestCase):
    """A C{tls:} control port, handshakes run in memory for real."""

    def setUp(self) -> None:
        from sipedge.testing import make_certificates

        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir()
        certificates = make_certificates(ip_addresses=["127.0.0.1"], common_name="relay")
        (self.directory / "relay.pem").write_bytes(certificates.cert_pem)
        (self.directory / "relay.key.pem").write_bytes(certificates.key_pem)
        (self.directory / "ca.pem").write_bytes(certificates.ca_pem)
        other = make_certificates(ip_addresses=["127.0.0.1"], ca_name="another CA")
        (self.directory / "other-ca.pem").write_bytes(other.ca_pem)
        self.reactor = FakeReactor()

    def relay(self) -> RelayService:
        config = parse_config({
            "relay": {
                "control": "tls:127.0.0.1:0",
                "secret": SECRET,
                "certificate": str(self.directory / "relay.pem"),
                "private_key": str(self.directory / "relay.key.pem"),
            },
            "media": {"ports": "31000-31009"},
        })
        service = build_relay_service(config, self.reactor, SECRET.encode())
        service.privilegedStartService()
        service.startService()
        self.addCleanup(self.stop, service)
        return service

    def stop(self, service: RelayService) -> None:
        self.successResultOf(service.stopService())
        self.reactor.flush()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def remote(self, port: int, ca: str) -> RemoteMediaRelay:
        media = parse_config({"media": {
            "relay": f"tls:127.0.0.1:{port}",
            "relay_secret": SECRET,
            "relay_ca": str(self.directory / ca),
        }}).media
        remote = media.build_remote_relay(self.reactor)
        remote.start()

        def close() -> None:
            d = remote.close()
            self.reactor.flush()
            self.successResultOf(d)

        self.addCleanup(close)
        self.reactor.flush()
        return remote

    def test_calls_over_tls(self) -> None:
        """A proxy that trusts the relay's CA connects over TLS and allocates."""
        service = self.relay()
        remote = self.remote(service.control_port.getHost().port, "ca.pem")
        self.assertTrue(remote.connected)
        allocated = remote.allocate("k", MediaOffer([StreamOffer("127.0.0.1", 4000)]))
        self.reactor.flush()
        self.assertEqual(self.successResultOf(allocated).session_key, "k")
        released = remote.release("k")
        self.reactor.flush()
        final = self.successResultOf(released)
        assert final is not None
        self.assertEqual(final.state, "ended")

    def test_untrusted_relay(self) -> None:
        """A relay whose certificate the proxy does not trust is never used."""
        service = self.relay()
        remote = self.remote(service.control_port.getHost().port, "other-ca.pem")
        self.assertFalse(remote.connected)
        self.assertEqual(service.factory.connections, set())

    def test_tls_needs_certificate(self) -> None:
        """A C{tls:} control port without a certificate is refused, naming the key."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"relay": {"control": "tls:127.0.0.1:0"}})
        self.assertIn("relay.certificate", str(raised.exception))

    def test_bad_certificate_file(self) -> None:
        """A certificate file that holds no PEM stops start-up, naming the key."""
        (self.directory / "relay.pem").write_text("nothing")
        config = parse_config({"relay": {
            "control": "tls:127.0.0.1:0", "certificate": str(self.directory / "relay.pem"),
        }})
        service = build_relay_service(config, self.reactor, SECRET.encode())
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        self.assertIn("relay.certificate", str(raised.exception))

    def test_bad_ca_file(self) -> None:
        """A proxy's C{relay_ca} that cannot be read is refused, naming the key."""
        media = parse_config({"media": {
            "relay": "tls:127.0.0.1:1", "relay_secret": SECRET,
            "relay_ca": str(self.directory / "missing.pem"),
        }}).media
        with self.assertRaises(ConfigError) as raised:
            media.build_remote_relay(self.reactor)
        self.assertIn("media.relay_ca", str(raised.exception))
