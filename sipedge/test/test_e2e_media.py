# -*- test-case-name: sipedge.test.test_e2e_media -*-
"""
Media end-to-end tests: two real baresip phones register to the real
C{twistd sipedge} and call each other through it with media anchoring on,
while C{tcpdump} captures the loopback interface.

Phone A (alice) plays a 440 Hz sine, phone B (bob) 1000 Hz; each records
what it receives. A third address (127.0.0.4) sends RTP to the relay's
ports during the call. From the capture, the recordings and sipedge's log
each test shows that:

- the media passes through the relay's ports, both ways (A to relay,
  relay to B, B to relay, relay to A) and nowhere else;
- an SRTP leg carries no plain PCMU of the tone (SRTP's 80-bit
  authentication tag is there, the payload decodes to noise), a plain leg
  carries RTP/PCMU with the tone;
- each phone received the other's tone (the dominant frequency of its
  recording);
- the third address's packets are dropped (never sent on by the relay,
  counted as C{foreign-source} in the session's end log);
- after the hang-up, the relay's ports are closed.

baresip 1.0 binds its RTP sockets to the wildcard address, so both phones'
media comes from 127.0.0.1 (each in a port range of its own); their SIP is
on 127.0.0.2 and 127.0.0.3 (see L{sipedge.test._baresip}).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

from sipedge.test._baresip import BaresipPhone, free_port_range
from sipedge.test._capture import (
    Capture,
    Datagram,
    dominant_frequency,
    read_wav,
    tone_share,
    ulaw_decode,
)
from sipedge.test._e2e import SipEdgeProcess, add_user, require_tool

RELAY = "127.0.0.1"
ATTACKER = "127.0.0.4"
ATTACKER_SSRC = 0x0BADBEEF
ATTACKER_PACKETS = 10  # to each relay port
TONE_A = 440
TONE_B = 1000
PCMU_20MS = 160
SRTP_TAG = 10  # AES_CM_128_HMAC_SHA1_80

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"]
[state]
path = "state"
[auth]
# baresip 1.0 (libre) answers MD5 challenges only.
algorithms = ["MD5"]
[media]
anchor = true
ports = "{low}-{high}"
address = "{relay}"
srtp = "{srtp}"
"""

_ALLOCATED = re.compile(r"Media session (\S+) allocated: (\S+), ports \(([\d, ]+)\)")


@attrs.frozen
class _Call:
    """What one call through the relay left behind."""

    key: str
    modes: str
    ports: list[int]
    ended: str
    datagrams: list[Datagram]


def _rtp_payload(data: bytes) -> tuple[int, int, bytes] | None:
    """(payload type, SSRC, payload and any SRTP tag) of an RTP packet, else None."""
    if len(data) < 12 or data[0] >> 6 != 2 or 192 <= data[1] <= 223:
        return None
    start = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:  # header extension
        if len(data) < start + 4:
            return None
        start += 4 + 4 * struct.unpack("!H", data[start + 2:start + 4])[0]
    return data[1] & 0x7F, struct.unpack("!I", data[8:12])[0], data[start:]


class _MediaCall(SynchronousTestCase):
    """Starts sipedge, the phones and the capture, all stopped in cleanups."""

    def setUp(self) -> None:
        require_tool("baresip")
        require_tool("tcpdump")
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.relay_ports = free_port_range(20)
        self.ports_a = free_port_range(20, avoid=(self.relay_ports,))
        self.ports_b = free_port_range(20, avoid=(self.relay_ports, self.ports_a))

    def start(self, srtp: str, a_transport: str, b_transport: str,
              a_srtp: bool, b_srtp: bool) -> tuple[BaresipPhone, BaresipPhone]:
        """sipedge with C{media.srtp = srtp}, then phones A and B registered."""
        self.proxy = SipEdgeProcess(self.work, _CONFIG.format(
            low=self.relay_ports[0], high=self.relay_ports[-1], relay=RELAY, srtp=srtp,
        ))
        self.addCleanup(self.proxy.stop)
        for user in ("alice", "bob"):
            add_user(self.proxy.config_path, user, f"{user}-secret")
        self.proxy.start()
        a = self.phone("alice", "127.0.0.2", a_transport, TONE_A, a_srtp, self.ports_a)
        b = self.phone("bob", "127.0.0.3", b_transport, TONE_B, b_srtp, self.ports_b)
        return a, b

    def phone(self, user: str, address: str, transport: str, tone: int, srtp: bool,
              rtp_ports: range) -> BaresipPhone:
        port = self.proxy.ports[transport.upper()]
        account = (
            f"<sip:{user}@sipedge.test;transport={transport}>;auth_pass={user}-secret"
            f";outbound=\"sip:127.0.0.1:{port};transport={transport}\""
            f";regint=600;audio_codecs=pcmu"
            + (";mediaenc=srtp-mand" if srtp else "")
        )
        phone = BaresipPhone(
            self.work, user, sip_address=address, account=account, tone=tone,
            rtp_ports=rtp_ports, ca_file=self.proxy.workdir / "state" / "sipedge-cert.pem",
        )
        self.addCleanup(phone.stop)
        phone.start()
        return phone

    def call(self, a: BaresipPhone, b: BaresipPhone, seconds: float = 3.0) -> _Call:
        """
        A calls B through sipedge under capture; media for C{seconds}
        while the attacker sends; A hangs up. What happened, for the
        checks.
        """
        capture = Capture(self.work / "lo.pcap", ports=(self.relay_ports, a.rtp_ports, b.rtp_ports))
        self.addCleanup(capture.stop)
        capture.start()
        a.command("dial", "sip:bob@sipedge.test")
        b.wait_event("CALL_INCOMING")
        b.command("accept")
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        found = _ALLOCATED.findall(self.proxy.log())
        self.assertEqual(len(found), 1, found)
        [(key, modes, ports_text)] = found
        ports = [int(p) for p in ports_text.split(",")]
        time.sleep(seconds / 2)
        self.attack(ports)
        time.sleep(seconds / 2)
        a.command("hangup")
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
        ended = self.wait_log(rf"Media session {re.escape(key)} ended \(([\w-]+)\): .*")
        self.wait_closed(ports)
        datagrams = capture.stop()
        return _Call(key, modes, ports, ended, datagrams)

    def attack(self, ports: list[int]) -> None:
        """Send RTP from the third address to every relay port."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ATTACKER, 0))
            for seq in range(ATTACKER_PACKETS):
                header = struct.pack("!BBHII", 0x80, 0, seq, seq * PCMU_20MS, ATTACKER_SSRC)
                for port in ports:
                    s.sendto(header + b"\xaa" * PCMU_20MS, (RELAY, port))
                time.sleep(0.02)

    def wait_log(self, pattern: str, timeout: float = 20.0) -> str:
        """The first line of sipedge's log matching C{pattern} (waiting for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.proxy.log())
            if match:
                return match.group(0)
            time.sleep(0.1)
        self.fail(f"no {pattern!r} in sipedge's log:\n{self.proxy.log()[-4000:]}")

    def wait_closed(self, ports: list[int], timeout: float = 10.0) -> None:
        """Wait until nothing is bound on C{ports} (each can be bound again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bound = [p for p in ports if not _bindable(RELAY, p)]
            if not bound:
                return
            time.sleep(0.1)
        self.fail(f"relay ports {bound} still bound after the hang-up")

    # -- checks --------------------------------------------------------------

    def legs(self, datagrams: list[Datagram], phone: BaresipPhone,
             relay_ports: list[int]) -> tuple[list[bytes], list[bytes]]:
        """
        The RTP packets of C{phone}'s leg: (phone to relay, relay to
        phone), each from and to one port; the relay's port is one of
        C{relay_ports}.
        """
        def rtp(d: Datagram) -> bool:
            return _rtp_payload(d.payload) is not None

        up = [d for d in datagrams if d.src[1] in phone.rtp_ports and d.dst[0] == RELAY
              and d.dst[1] in relay_ports and rtp(d)]
        down = [d for d in datagrams if d.dst[1] in phone.rtp_ports and d.src[0] == RELAY
                and d.src[1] in relay_ports and rtp(d)]
        self.assertGreater(len(up), 50, f"{phone.name} to relay: {len(up)} RTP packets")
        self.assertGreater(len(down), 50, f"relay to {phone.name}: {len(down)} RTP packets")
        self.assertEqual(len({(d.src, d.dst) for d in up}), 1, {(d.src, d.dst) for d in up})
        self.assertEqual(len({(d.src, d.dst) for d in down}), 1, {(d.src, d.dst) for d in down})
        self.assertEqual(up[0].dst, down[0].src, "the relay answers from the port it listens on")
        self.assertEqual(up[0].src, down[0].dst)
        return [d.payload for d in up], [d.payload for d in down]

    def assert_plain(self, packets: list[bytes], tone: int, what: str) -> None:
        """RTP/PCMU, 20 ms a packet, carrying C{tone}."""
        payloads = [_rtp_payload(p) for p in packets]
        self.assertEqual({p[0] for p in payloads if p}, {0}, f"{what}: payload types")
        self.assertEqual({len(p[2]) for p in payloads if p}, {PCMU_20MS}, what)
        samples = ulaw_decode(b"".join(p[2] for p in payloads[len(payloads) // 2:][:50] if p))
        self.assertEqual(dominant_frequency(samples, 8000), tone, what)
        self.assertGreater(tone_share(samples, tone, 8000), 0.5, what)

    def assert_srtp(self, packets: list[bytes], tone: int, what: str) -> None:
        """SRTP: the 80-bit tag after 20 ms of PCMU, a payload that is no tone."""
        payloads = [_rtp_payload(p) for p in packets]
        self.assertEqual({p[0] for p in payloads if p}, {0}, f"{what}: payload types")
        self.assertEqual({len(p[2]) for p in payloads if p}, {PCMU_20MS + SRTP_TAG}, what)
        middle = [p for p in payloads[len(payloads) // 2:][:50] if p]
        samples = ulaw_decode(b"".join(p[2][:PCMU_20MS] for p in middle))
        self.assertLess(tone_share(samples, tone, 8000), 0.05, f"{what}: the tone shows")

    def assert_heard(self, phone: BaresipPhone, tone: int) -> None:
        """C{phone}'s recording: C{tone} dominates a second from its middle."""
        rate, samples = read_wav(phone.recording())
        self.assertGreater(len(samples), 2 * rate, f"{phone.name} recorded {len(samples)} samples")
        middle = samples[len(samples) // 2 - rate // 2:][:rate]
        self.assertEqual(dominant_frequency(middle, rate), tone, phone.name)
        self.assertGreater(tone_share(middle, tone, rate), 0.5, phone.name)

    def assert_attacker_dropped(self, result: _Call) -> None:
        """The third address reached the relay's ports, and nothing went on."""
        datagrams, ports = result.datagrams, result.ports
        sent = [d for d in datagrams if d.src[0] == ATTACKER and d.dst[1] in ports]
        self.assertEqual(len(sent), ATTACKER_PACKETS * len(ports), "the attack was not captured")
        self.assertEqual([d for d in datagrams if d.dst[0] == ATTACKER and d.src[1] in ports], [])
        relayed = [_rtp_payload(d.payload) for d in datagrams
                   if d.src[0] == RELAY and d.src[1] in ports]
        self.assertNotIn(ATTACKER_SSRC, {p[1] for p in relayed if p})
        ended = result.ended
        match = re.search(r"foreign-source (\d+)", ended)
        self.assertIsNotNone(match, ended)
        assert match is not None
        self.assertGreaterEqual(int(match.group(1)), len(sent), ended)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class TerminateTests(_MediaCall):
    """C{media.srtp = "terminate"}: SRTP with the TLS phone, RTP with the other."""

    def test_srtp_to_plain(self) -> None:
        """
        If phone A registers over TLS with SRTP mandatory and calls phone B,
        registered over UDP without SRTP, the call goes through the relay
        with SRTP on A's leg and plain RTP on B's: A's leg carries SRTP
        (no tone, an authentication tag), B's leg the tones in PCMU, each
        phone hears the other, the third address's packets are dropped, and
        the relay's ports close after the hang-up.
        """
        a, b = self.start("terminate", "tls", "udp", a_srtp=True, b_srtp=False)
        result = self.call(a, b)
        self.assertEqual(result.modes, "srtp-terminate/plain")
        a_up, a_down = self.legs(result.datagrams, a, result.ports)
        b_up, b_down = self.legs(result.datagrams, b, result.ports)
        self.assert_srtp(a_up, TONE_A, "A to relay")
        self.assert_srtp(a_down, TONE_B, "relay to A")
        self.assert_plain(b_up, TONE_B, "B to relay")
        self.assert_plain(b_down, TONE_A, "relay to B")
        self.assert_attacker_dropped(result)
        a.stop()
        b.stop()
        self.assert_heard(a, TONE_B)
        self.assert_heard(b, TONE_A)


class RekeyTests(_MediaCall):
    """C{media.srtp = "rekey"}: SRTP on both legs, each with the relay's own keys."""

    def test_srtp_both_legs(self) -> None:
        """
        If both phones register over TLS with SRTP mandatory and one calls
        the other, both legs carry SRTP (no tone, an authentication tag),
        re-keyed by the relay (no packet leaves it with bytes that came in),
        each phone hears the other, the third address's packets are
        dropped, and the relay's ports close after the hang-up.
        """
        a, b = self.start("rekey", "tls", "tls", a_srtp=True, b_srtp=True)
        result = self.call(a, b)
        self.assertEqual(result.modes, "srtp-rekey/srtp-rekey")
        a_up, a_down = self.legs(result.datagrams, a, result.ports)
        b_up, b_down = self.legs(result.datagrams, b, result.ports)
        self.assert_srtp(a_up, TONE_A, "A to relay")
        self.assert_srtp(a_down, TONE_B, "relay to A")
        self.assert_srtp(b_up, TONE_B, "B to relay")
        self.assert_srtp(b_down, TONE_A, "relay to B")
        self.assertEqual({p[12:] for p in a_up} & {p[12:] for p in b_down}, set())
        self.assertEqual({p[12:] for p in b_up} & {p[12:] for p in a_down}, set())
        self.assert_attacker_dropped(result)
        a.stop()
        b.stop()
        self.assert_heard(a, TONE_B)
        self.assert_heard(b, TONE_A)
