# -*- test-case-name: sipedge.test.test_e2e_media -*-
"""
Helpers for the media end-to-end tests: a loopback capture with
C{tcpdump} (Debian: tcpdump), a small pcap reader, and the audio checks
(G.711 mu-law decoding, a Goertzel tone detector, WAV reading), standard
library only.
"""

from __future__ import annotations

import ipaddress
import math
import os
import signal
import struct
import subprocess
import time
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from twisted.trial.unittest import SkipTest

from sipedge.testing._tools import require_tool

__all__ = [
    "Capture",
    "CapturedDatagram",
    "dominant_frequency",
    "read_pcap",
    "read_wav",
    "tone_share",
    "ulaw_decode",
]


@attrs.frozen
class CapturedDatagram:
    """One captured IPv4 UDP datagram."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


# -- pcap ---------------------------------------------------------------------

_LINK_ETHERNET = 1
_LINK_RAW = 101
_LINK_LINUX_SLL = 113
_LINK_LINUX_SLL2 = 276


def read_pcap(path: Path) -> list[CapturedDatagram]:
    """
    The UDP datagrams (IPv4 and IPv6) of the pcap file at C{path} (libpcap format,
    micro- or nanosecond, either byte order; Ethernet, raw IP or Linux
    cooked link types). Fragments and everything else are skipped.
    """
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    table = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in table:
        raise ValueError(f"{path}: not a pcap file (magic {magic.hex()})")
    order, unit = table[magic]
    link = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    offset = 24
    found = []
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack(order + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        packet = _udp_of(_ip_of(frame, link))
        if packet is not None:
            src, dst, payload = packet
            found.append(CapturedDatagram(seconds + fraction * unit, src, dst, payload))
    return found


def _ip_of(frame: bytes, link: int) -> bytes:
    if link == _LINK_ETHERNET:
        kind, start = frame[12:14], 14
        if kind == b"\x81\x00":  # 802.1Q
            kind, start = frame[16:18], 18
        return frame[start:] if kind in _IP_TYPES else b""
    if link == _LINK_LINUX_SLL:
        return frame[16:] if frame[14:16] in _IP_TYPES else b""
    if link == _LINK_LINUX_SLL2:
        return frame[20:] if frame[0:2] in _IP_TYPES else b""
    if link == _LINK_RAW:
        return frame
    return b""


#: The EtherTypes of IPv4 and IPv6.
_IP_TYPES = (b"\x08\x00", b"\x86\xdd")


def _udp6_of(ip: bytes) -> tuple[tuple[str, int], tuple[str, int], bytes] | None:
    """A UDP datagram in an IPv6 packet with no extension header (loopback's)."""
    if len(ip) < 48 or ip[6] != 17:
        return None
    udp = ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    src = str(ipaddress.IPv6Address(ip[8:24]))
    dst = str(ipaddress.IPv6Address(ip[24:40]))
    return (src, sport), (dst, dport), udp[8:length]


def _udp_of(ip: bytes) -> tuple[tuple[str, int], tuple[str, int], bytes] | None:
    if ip[:1] and ip[0] >> 4 == 6:
        return _udp6_of(ip)
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    header = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    flags_fragment = struct.unpack("!H", ip[6:8])[0]
    if flags_fragment & 0x3FFF:  # a fragment
        return None
    udp = ip[header:total]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    src = ".".join(map(str, ip[12:16]))
    dst = ".".join(map(str, ip[16:20]))
    return (src, sport), (dst, dport), udp[8:length]


# -- tcpdump ------------------------------------------------------------------


class Capture:
    """
    C{tcpdump} on the loopback interface, writing UDP datagrams to a pcap
    file, started and stopped within bounded time.
    """

    def __init__(self, path: Path, interface: str = "lo", ports: Sequence[range] = ()) -> None:
        """
        @param ports: capture only UDP to or from these port ranges (other
            tests share the loopback interface); all UDP when empty.
        """
        self.tool = require_tool("tcpdump")
        self.path = path.absolute()
        self.interface = interface
        self.filter = "udp" + (
            " and (" + " or ".join(f"portrange {r[0]}-{r[-1]}" for r in ports) + ")"
            if ports else ""
        )
        self._log = self.path.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start capturing; wait (at most C{timeout} s) until tcpdump listens."""
        log = self._log.open("wb")
        self.process = subprocess.Popen(
            # -U: write each packet at once; -Z root: keep writing where root
            # may (tcpdump otherwise drops to its own user after opening).
            [self.tool, "-i", self.interface, "-n", "-U", "-s", "0", "-w", str(self.path),
             *(["-Z", "root"] if os.geteuid() == 0 else []), self.filter],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._log.read_text(errors="replace")
            if "listening on" in text:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        text = self._log.read_text(errors="replace")
        reason = f"tcpdump cannot capture on {self.interface}: {text.strip()[-500:]}"
        if os.environ.get("SIPEDGE_REQUIRE_TOOLS") == "1":
            raise AssertionError(reason)
        raise SkipTest(reason)

    def stop(self, timeout: float = 10.0) -> list[CapturedDatagram]:
        """Stop capturing (SIGINT flushes the file); the datagrams captured."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self.process = None
        return read_pcap(self.path) if self.path.exists() else []


# -- audio --------------------------------------------------------------------


def _ulaw_table() -> list[int]:
    table = []
    for byte in range(256):
        u = ~byte & 0xFF
        sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        table.append(-magnitude if sign else magnitude)
    return table


_ULAW = _ulaw_table()


def ulaw_decode(data: bytes) -> list[int]:
    """G.711 mu-law (PCMU) bytes as 16-bit linear samples."""
    return [_ULAW[b] for b in data]


def read_wav(path: Path) -> tuple[int, list[int]]:
    """The sample rate and the first channel of a 16-bit PCM WAV file."""
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16")
        channels = w.getnchannels()
        frames = w.readframes(w.getnframes())
        rate = w.getframerate()
    samples = struct.unpack(f"<{len(frames) // 2}h", frames[: len(frames) // 2 * 2])
    return rate, list(samples[::channels])


def _power(samples: Sequence[float], frequency: float, rate: int) -> float:
    """Goertzel: the power of C{samples} at C{frequency}."""
    k = 2.0 * math.cos(2.0 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def dominant_frequency(
    samples: Sequence[int], rate: int, candidates: Iterable[float] = range(100, 3900, 20)
) -> float:
    """The candidate frequency with the most power in C{samples}."""
    return max(candidates, key=lambda f: _power(samples, f, rate))


def tone_share(samples: Sequence[int], frequency: float, rate: int) -> float:
    """
    The share of C{samples}' energy at C{frequency} (0 to 1): near 1 for a
    clean sine at that frequency, near 2/len(samples) for noise.
    """
    n = len(samples)
    mean = sum(samples) / n if n else 0.0
    energy = sum((x - mean) ** 2 for x in samples)
    if energy == 0:
        return 0.0
    # Parseval: a sine's power at its frequency is (n/2) * its energy.
    return min(1.0, 2.0 * _power([x - mean for x in samples], frequency, rate) / (n * energy))
