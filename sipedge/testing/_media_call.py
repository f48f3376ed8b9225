# -*- test-case-name: sipedge.test.test_e2e_media -*-
"""
A call between two real baresip phones through the real C{twistd sipedge}
with media anchoring on, under a C{tcpdump} capture of the loopback
interface (L{MediaCallTestCase}), and the checks a media test makes on
what was captured and recorded.

Phone A (alice, SIP on 127.0.0.2) plays a 440 Hz sine (L{TONE_A}), phone
B (bob, on 127.0.0.3) 1000 Hz (L{TONE_B}); a third address (127.0.0.4)
sends RTP to the relay's ports during the call. baresip 1.0 binds its RTP
sockets to the wildcard address, so both phones' media comes from
127.0.0.1, each in a port range of its own (see L{BaresipPhone}).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import format_hostport
from sipedge.testing._baresip import BaresipPhone, free_rtp_ports
from sipedge.testing._capture import (
    Capture,
    CapturedDatagram,
    dominant_frequency,
    read_wav,
    tone_share,
    ulaw_decode,
)
from sipedge.testing._processes import SipEdgeProcess, add_user
from sipedge.testing._tools import family_of_host, require_tool

__all__ = ["MEDIA_RELAY_HOST", "TONE_A", "TONE_B", "MediaCall", "MediaCallTestCase"]

#: Where the relay listens (the media address in sipedge's config).
MEDIA_RELAY_HOST = RELAY = "127.0.0.1"
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
[media]
anchor = true
ports = "{low}-{high}"
address = "{relay}"
{srtp}"""

_ALLOCATED = re.compile(r"Media session (\S+) allocated: (\S+), ports \(([\d, ]+)\)")


@attrs.frozen
class MediaCall:
    """What one call through the relay left behind."""

    key: str
    modes: str
    ports: list[int]
    ended: str
    datagrams: list[CapturedDatagram]


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


class MediaCallTestCase(SynchronousTestCase):
    """
    Starts sipedge, the phones and the capture, all stopped in cleanups.

    @cvar extra_config: TOML sections added to sipedge's configuration.
    @cvar relay_hosts: the relay's addresses, whose ports must all be
        closed after a call (C{::1} too, on a dual-stack relay).
    """

    extra_config = ""
    relay_hosts: tuple[str, ...] = (RELAY,)

    def setUp(self) -> None:
        require_tool("baresip")
        require_tool("tcpdump")
        self.work = Path(self.mktemp()).absolute()
        self.work.mkdir(parents=True)
        self.relay_ports = free_rtp_ports(20)
        self.ports_a = free_rtp_ports(20, avoid=(self.relay_ports,))
        self.ports_b = free_rtp_ports(20, avoid=(self.relay_ports, self.ports_a))

    def start(self, srtp: str | None, a_transport: str, b_transport: str,
              a_srtp: bool, b_srtp: bool) -> tuple[BaresipPhone, BaresipPhone]:
        """
        sipedge with C{media.srtp = srtp} (C{None}: not set, the default),
        then phones A and B registered.
        """
        line = "" if srtp is None else f'srtp = "{srtp}"\n'
        self.proxy = SipEdgeProcess(self.work, _CONFIG.format(
            low=self.relay_ports[0], high=self.relay_ports[-1], relay=RELAY, srtp=line,
        ) + self.extra_config)
        self.addCleanup(self.proxy.stop)
        for user in ("alice", "bob"):
            add_user(self.proxy.config_path, user, f"{user}-secret")
        self.proxy.start()
        a = self.phone("alice", "127.0.0.2", a_transport, TONE_A, a_srtp, self.ports_a)
        b = self.phone("bob", "127.0.0.3", b_transport, TONE_B, b_srtp, self.ports_b)
        return a, b

    def phone(self, user: str, address: str, transport: str, tone: int, srtp: bool,
              rtp_ports: range, proxy_host: str = "127.0.0.1",
              media_address: str = "127.0.0.1") -> BaresipPhone:
        """
        A phone for C{user}, its SIP on C{address}, registered over
        C{transport} to sipedge's listener on C{proxy_host} (C{::1} for
        an IPv6 phone, whose C{media_address} is C{::1} too).
        """
        name = transport.upper()
        port = self.proxy.listeners.get((name, proxy_host), self.proxy.ports.get(name))
        account = (
            f"<sip:{user}@sipedge.test;transport={transport}>;auth_pass={user}-secret"
            f";outbound=\"sip:{format_hostport(proxy_host, port or 0)};transport={transport}\""
            f";regint=600;audio_codecs=pcmu"
            + (";mediaenc=srtp-mand" if srtp else "")
        )
        phone = BaresipPhone(
            self.work, user, sip_address=address, account=account, tone=tone,
            rtp_ports=rtp_ports, ca_file=self.proxy.workdir / "state" / "sipedge-cert.pem",
            media_address=media_address,
        )
        self.addCleanup(phone.stop)
        phone.start()
        return phone

    def call(self, a: BaresipPhone, b: BaresipPhone, seconds: float = 3.0) -> MediaCall:
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
        return MediaCall(key, modes, ports, ended, datagrams)

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
            bound = [p for p in ports for h in self.relay_hosts if not _bindable(h, p)]
            if not bound:
                return
            time.sleep(0.1)
        self.fail(f"relay ports {bound} still bound after the hang-up")

    # -- checks --------------------------------------------------------------

    def legs(self, datagrams: list[CapturedDatagram], phone: BaresipPhone,
             relay_ports: list[int], relay: str = RELAY) -> tuple[list[bytes], list[bytes]]:
        """
        The RTP packets of C{phone}'s leg: (phone to relay, relay to
        phone), each from and to one port; the relay's port is one of
        C{relay_ports}.
        """
        def rtp(d: CapturedDatagram) -> bool:
            return _rtp_payload(d.payload) is not None

        up = [d for d in datagrams if d.src[1] in phone.rtp_ports and d.dst[0] == relay
              and d.dst[1] in relay_ports and rtp(d)]
        down = [d for d in datagrams if d.dst[1] in phone.rtp_ports and d.src[0] == relay
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

    def assert_attacker_dropped(self, result: MediaCall) -> None:
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
    with socket.socket(family_of_host(host), socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
