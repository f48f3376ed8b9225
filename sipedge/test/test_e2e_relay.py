# -*- test-case-name: sipedge.test.test_e2e_relay -*-
"""
End-to-end: the real C{twistd sipedge-relay} in a child process on
loopback, driven by a L{RemoteMediaRelay} in this process over the control
protocol, with real RTP over UDP between two loopback sockets; and two real
baresip phones calling through the real C{twistd sipedge} whose media
anchoring drives that relay process (C{[media] relay}).

The relay's control port is chosen by the OS (its log says which), its
media ports are a range found free just before, every wait is bounded, and
the process, the connection and the sockets are closed in cleanups.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from sipedge.media import (
    MediaOffer,
    RelayPolicy,
    RelayUnavailable,
    RemoteMediaRelay,
    SessionEnd,
    StreamOffer,
)
from sipedge.testing import MEDIA_RELAY_HOST as RELAY
from sipedge.testing import (
    TONE_A,
    TONE_B,
    RelayProcess,
    SipEdgeProcess,
    add_user,
    free_port_range,
)
from sipedge.testing import MediaCallTestCase as _MediaCall
from sipedge.testing import rtp_packet as rtp

SECRET = "e2e-relay-secret-0123456789abcdef"
HOST = "127.0.0.1"


class _Party(DatagramProtocol):
    """A party's RTP socket (RTCP multiplexed): keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))


class RelayProcessTests(TestCase):
    """C{twistd sipedge-relay} serves calls to a remote client."""

    timeout = 90

    def setUp(self) -> None:
        work = Path(self.mktemp())
        work.mkdir(parents=True)
        (work / "relay.key").write_text(SECRET + "\n")
        self.low, self.high = free_port_range(8)
        self.relay = RelayProcess(
            work,
            f"""
[media]
address = "{HOST}"
ports = "{self.low}-{self.high}"
max_packet_rate = 0
max_bandwidth = 0
[relay]
control = "tcp:{HOST}:0"
secret_file = "relay.key"
""",
        )
        self.addCleanup(self.relay.stop)
        self.relay.start()

    def remote(self, secret: str = SECRET) -> RemoteMediaRelay:
        host, port = self.relay.control
        remote = RemoteMediaRelay(
            TCP4ClientEndpoint(reactor, host, port), secret.encode(), reactor, timeout=10
        )
        remote.start()
        self.addCleanup(remote.close)
        return remote

    def party(self) -> tuple[_Party, Any]:
        protocol = _Party()
        port = reactor.listenUDP(0, protocol, interface=HOST)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        return protocol, port

    @inlineCallbacks
    def until(self, condition: Callable[[], bool], what: str, limit: float = 10.0
              ) -> Generator[Deferred[Any], Any, None]:
        """Wait (at most C{limit} s, in 50 ms steps) until C{condition()}."""
        for _ in range(int(limit / 0.05)):
            if condition():
                return
            yield deferLater(reactor, 0.05, lambda: None)
        self.fail(f"timed out waiting for {what}\n{self.relay.log()[-3000:]}")

    @inlineCallbacks
    def test_call_through_the_relay(self) -> Generator[Deferred[Any], Any, None]:
        """
        A call allocated and answered over the control protocol relays real
        RTP both ways between two loopback sockets; packets from a stranger
        and malformed ones are dropped and counted by reason; release closes
        the ports and returns the final statistics, and the session's end
        is pushed to the observer.
        """
        remote = self.remote()
        ended: list[SessionEnd] = []
        remote.add_observer(ended.append)
        yield self.until(lambda: remote.connected, "the control connection")
        a, a_port = self.party()
        b, b_port = self.party()
        stranger, stranger_port = self.party()
        a_at = a_port.getHost().port
        b_at = b_port.getHost().port

        offer = MediaOffer([StreamOffer(HOST, a_at, rtcp_mux=True)], RelayPolicy())
        allocation = yield remote.allocate("e2e-call", offer)
        (stream,) = allocation.streams
        self.assertEqual(stream.b.host, HOST)
        self.assertTrue(self.low <= stream.b.port <= self.high)
        answer = MediaOffer([StreamOffer(HOST, b_at, rtcp_mux=True)])
        allocation = yield remote.update("e2e-call", answer)
        (stream,) = allocation.streams
        self.assertTrue(allocation.answered)
        relay_a = (HOST, stream.a.port)  # A sends here
        relay_b = (HOST, stream.b.port)  # B sends here

        for n in range(5):
            a_port.write(rtp(n), relay_a)
        for n in range(3):
            b_port.write(rtp(100 + n, ssrc=0xB0B), relay_b)
        stranger_port.write(rtp(50), relay_a)
        stranger_port.write(rtp(51), relay_b)
        a_port.write(b"\x80\x00", relay_a)  # shorter than an RTP header
        yield self.until(lambda: len(b.received) == 5 and len(a.received) == 3, "relayed RTP")
        self.assertEqual([data for data, _ in b.received], [rtp(n) for n in range(5)])
        self.assertEqual({addr for _, addr in b.received}, {relay_b})
        self.assertEqual({addr for _, addr in a.received}, {relay_a})
        self.assertEqual(stranger.received, [])

        sessions = yield remote.sessions()
        live = sessions["e2e-call"]
        self.assertEqual(live.state, "answered")
        self.assertEqual((live.a_to_b.packets, live.a_to_b.bytes), (5, 5 * 172))
        self.assertEqual((live.b_to_a.packets, live.b_to_a.bytes), (3, 3 * 172))
        self.assertEqual(live.a_to_b.drops, {"foreign-source": 1, "malformed": 1})
        self.assertEqual(live.b_to_a.drops, {"foreign-source": 1})
        totals = yield remote.stats()
        self.assertEqual((totals.sessions, totals.allocated), (1, 1))
        self.assertEqual(totals.open_ports, len(live.ports))
        self.assertIn(stream.a.port, live.ports)
        self.assertIn(stream.b.port, live.ports)

        final = yield remote.release("e2e-call")
        self.assertEqual(final.state, "ended")
        self.assertEqual(final.a_to_b.packets, 5)
        self.assertEqual(final.b_to_a.drops, {"foreign-source": 1})
        yield self.until(lambda: bool(ended), "the session-end event")
        self.assertEqual([(e.session_key, e.reason) for e in ended], [("e2e-call", "released")])
        self.assertEqual(ended[0].stats, final)
        totals = yield remote.stats()
        self.assertEqual(
            (totals.sessions, totals.open_ports, totals.ended), (0, 0, {"released": 1})
        )
        self.assertEqual(totals.a_to_b.packets, 5)
        # The relay's ports are closed: they can be bound again.
        for port in live.ports:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((HOST, port))

    @inlineCallbacks
    def test_wrong_secret(self) -> Generator[Deferred[Any], Any, None]:
        """A client with the wrong secret is refused and its calls fail with 503."""
        remote = self.remote("not-the-secret-0123456789")
        yield self.until(lambda: "auth-failed" in self.relay.log() or
                         "authentication failed" in self.relay.log(), "the refusal")
        self.assertFalse(remote.connected)
        error = yield self.assertFailure(remote.stats(), RelayUnavailable)
        self.assertEqual(error.status_hint, 503)



class TlsRelayProcessTests(TestCase):
    """C{twistd sipedge-relay} with a C{tls:} control port."""

    timeout = 90

    @inlineCallbacks
    def test_tls_control(self) -> Generator[Deferred[Any], Any, None]:
        """
        A relay process listening with TLS serves a proxy that trusts its
        CA (the channel verified against the relay's IP), and a call's
        allocation and release go through.
        """
        from sipedge.config import parse_config
        from sipedge.testing import make_certificates

        work = Path(self.mktemp()).absolute()
        work.mkdir(parents=True)
        certificates = make_certificates(ip_addresses=[HOST], common_name="relay")
        (work / "relay.pem").write_bytes(certificates.cert_pem)
        (work / "relay.key.pem").write_bytes(certificates.key_pem)
        (work / "ca.pem").write_bytes(certificates.ca_pem)
        (work / "relay.key").write_text(SECRET)
        low, high = free_port_range(4)
        relay = RelayProcess(work, f"""
[media]
address = "{HOST}"
ports = "{low}-{high}"
[relay]
control = "tls:{HOST}:0"
secret_file = "relay.key"
certificate = "relay.pem"
private_key = "relay.key.pem"
""")
        self.addCleanup(relay.stop)
        relay.start()
        self.assertIn("sipedge-relay started: control on tls:", relay.log())
        host, port = relay.control
        media = parse_config({"media": {
            "relay": f"tls:{host}:{port}", "relay_secret": SECRET,
            "relay_ca": str(work / "ca.pem"),
        }}).media
        remote = media.build_remote_relay(reactor)
        remote.start()
        self.addCleanup(remote.close)
        for _ in range(200):
            if remote.connected:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(remote.connected, relay.log()[-3000:])
        allocation = yield remote.allocate(
            "tls-call", MediaOffer([StreamOffer(HOST, 4000)], RelayPolicy())
        )
        self.assertTrue(low <= allocation.streams[0].b.port <= high)
        final = yield remote.release("tls-call")
        self.assertEqual(final.state, "ended")


_PROXY_WITH_REMOTE_RELAY = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"]
[state]
path = "state"
[media]
anchor = true
{srtp}relay = "tcp:{control_host}:{control_port}"
relay_secret_file = "relay.key"
relay_timeout = 5
"""

_REMOTE_RELAY = """
[media]
ports = "{low}-{high}"
address = "{relay}"
[relay]
control = "tcp:127.0.0.1:0"
secret_file = "relay.key"
"""


class ProxyWithRemoteRelayTests(_MediaCall):
    """
    Two real baresip phones call through the real C{twistd sipedge} whose
    media anchoring drives a real C{twistd sipedge-relay} in another
    process (C{[media] relay}), with the checks of
    L{sipedge.test.test_e2e_media}: media through the relay's ports both
    ways, each phone hears the other, a third address's packets dropped,
    the ports closed after the hang-up.
    """

    def start(self, srtp: str | None, a_transport: str, b_transport: str,
              a_srtp: bool, b_srtp: bool) -> Any:
        (self.work / "relay.key").write_text(SECRET)
        relay_dir = self.work / "relay"
        relay_dir.mkdir()
        (relay_dir / "relay.key").write_text(SECRET)
        self.relay = RelayProcess(relay_dir, _REMOTE_RELAY.format(
            low=self.relay_ports[0], high=self.relay_ports[-1], relay=RELAY,
        ))
        self.addCleanup(self.relay.stop)
        self.relay.start()
        host, port = self.relay.control
        self.proxy = SipEdgeProcess(self.work, _PROXY_WITH_REMOTE_RELAY.format(
            srtp="" if srtp is None else f'srtp = "{srtp}"\n',
            control_host=host,
            control_port=port,
        ))
        self.addCleanup(self.proxy.stop)
        for user in ("alice", "bob"):
            add_user(self.proxy.config_path, user, f"{user}-secret")
        self.proxy.start()
        # The relay's own log says what it allocated and how sessions ended:
        # the checks read both logs.
        proxy_log = self.proxy.log
        self.proxy.log = lambda: proxy_log() + self.relay.log()  # type: ignore[method-assign]
        a = self.phone("alice", "127.0.0.2", a_transport, TONE_A, a_srtp, self.ports_a)
        b = self.phone("bob", "127.0.0.3", b_transport, TONE_B, b_srtp, self.ports_b)
        return a, b

    def test_plain_call_through_remote_relay(self) -> None:
        """
        Phones A and B, both over UDP without SRTP, call through sipedge;
        the media goes through the separate relay process's ports both
        ways, each phone hears the other's tone, the third address's
        packets are dropped, and the relay's ports close after the hang-up;
        the proxy logged its connection to the relay.
        """
        a, b = self.start("passthrough", "udp", "udp", a_srtp=False, b_srtp=False)
        result = self.call(a, b)
        self.assertEqual(result.modes, "passthrough/passthrough")
        self.assertTrue(all(self.relay_ports[0] <= p <= self.relay_ports[-1]
                            for p in result.ports))
        a_up, a_down = self.legs(result.datagrams, a, result.ports)
        b_up, b_down = self.legs(result.datagrams, b, result.ports)
        self.assert_plain(a_up, TONE_A, "A to relay")
        self.assert_plain(b_down, TONE_A, "relay to B")
        self.assert_plain(b_up, TONE_B, "B to relay")
        self.assert_plain(a_down, TONE_B, "relay to A")
        self.assert_heard(b, TONE_A)
        self.assert_heard(a, TONE_B)
        self.assert_attacker_dropped(result)
        self.assertIn("Connected to the media relay at tcp:127.0.0.1:", self.proxy.log())
        self.assertIn("authenticated", self.relay.log())
