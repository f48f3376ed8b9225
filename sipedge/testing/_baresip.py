# -*- test-case-name: sipedge.test.test_e2e_media -*-
"""
Real phones for the media end-to-end tests: baresip (Debian: baresip),
headless, one process per phone with its own configuration directory.

Each phone plays a sine (C{ausine}) at its own frequency, records what it
receives (the C{sndfile} filter writes the decoded audio to a WAV file:
baresip 1.0's C{aufile} module is a source only), speaks G.711 mu-law
only, and is driven through its TCP control interface (C{ctrl_tcp}:
netstring-framed JSON commands, events and responses; the commands
C{dial}, C{accept} and C{hangup} come from its C{menu} module). The
C{aubridge} module stands in for a sound card, so no ALSA or PulseAudio
is needed.

What baresip 1.0 cannot do, and how the tests live with it:

- it binds its RTP sockets to the wildcard address, whatever
  C{net_interface} says, so on loopback its media always comes from
  127.0.0.1: each phone's media is on 127.0.0.1 (C{net_interface}), in a
  port range of its own, so that the SDP names the address packets really
  come from (the relay is strict about that);
- its SIP over TLS is a client only (no certificate of its own), from
  127.0.0.1 too, and it knows no C{sips:} URIs;
- it does not verify the server's certificate: it registers over TLS to
  sipedge's self-signed certificate with or without C{sip_cafile} (the
  phones are given that certificate as C{sip_cafile} all the same).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from sipedge.flow import format_hostport
from sipedge.testing._tools import family_of_host, free_port, require_tool

__all__ = ["BaresipPhone", "free_rtp_ports", "module_path"]

_MODULES = ("g711", "sndfile", "ausine", "aubridge", "srtp")
_ALL_MODULES = (*_MODULES, "account", "menu", "ctrl_tcp")
_MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules")


def module_path() -> str:
    """
    Where baresip's modules are (Debian: C{/usr/lib/baresip/modules});
    skip (or fail, in CI) when one the phones need is missing.
    """
    for directory in _MODULE_DIRS:
        if all(Path(directory, f"{m}.so").exists() for m in _ALL_MODULES):
            return directory
    reason = (
        f"baresip's modules {', '.join(_ALL_MODULES)} are not all in "
        f"{' or '.join(_MODULE_DIRS)} (Debian: apt-get install baresip-core)"
    )
    if os.environ.get("SIPEDGE_REQUIRE_TOOLS") == "1":
        raise AssertionError(f"SIPEDGE_REQUIRE_TOOLS=1 but {reason}")
    raise SkipTest(reason)
_STATUS = re.compile(r"\[\d+:\d\d:\d\d\] audio=\d+/\d+ \(bit/s\)\s*")
_REGISTERED = re.compile(r"\{0/(UDP|TCP|TLS)/v[46]\} 200 OK")


def free_rtp_ports(size: int = 20, host: str = "127.0.0.1", low: int = 20000,
                    high: int = 32000, avoid: tuple[range, ...] = (),
                    also: tuple[str, ...] = ()) -> range:
    """
    C{size} consecutive UDP ports, from an even one, that are free on
    C{host} now (and on C{also}, e.g. C{::1} for a relay on both loopback
    addresses) and overlap none of C{avoid}; below the usual ephemeral
    range (32768 up), so that the OS does not hand them out meanwhile.
    """
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, high - size) & ~1
        ports = range(start, start + size)
        if any(set(ports) & set(r) for r in avoid):
            continue
        if all(_udp_free(h, p) for h in (host, *also) for p in ports):
            return ports
    raise RuntimeError(f"no {size} free UDP ports in a row on {host}")


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(family_of_host(host), socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


class BaresipPhone:
    """
    One baresip process: a user agent registered to sipedge.

    @ivar events: the C{ctrl_tcp} events received so far (decoded JSON).
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        sip_address: str,
        account: str,
        tone: int,
        rtp_ports: range,
        ca_file: Path | None = None,
        media_address: str = "127.0.0.1",
    ) -> None:
        self.tool = require_tool("baresip")
        self.modules = module_path()
        self.name = name
        self.directory = (workdir / name).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sip_address = sip_address
        self.account = account
        self.tone = tone
        self.rtp_ports = rtp_ports
        self.ca_file = ca_file
        self.media_address = media_address
        self.log_path = self.directory / "baresip.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.control_port = 0
        self.events: list[dict[str, Any]] = []
        self._control: socket.socket | None = None
        self._buffer = b""
        self._pending: list[dict[str, Any]] = []
        self._token = 0

    # -- configuration -----------------------------------------------------

    def _config(self, sip_port: int) -> str:
        lines = [
            ("poll_method", "epoll"),
            ("sip_listen", format_hostport(self.sip_address, sip_port)),
            *([("sip_cafile", str(self.ca_file))] if self.ca_file else []),
            ("net_interface", self.media_address),
            ("call_local_timeout", "30"),
            ("call_max_calls", "1"),
            ("audio_player", f"aubridge,{self.name}-play"),
            ("audio_source", f"ausine,{self.tone}"),
            ("audio_alert", f"aubridge,{self.name}-alert"),
            # ausine makes 48 kHz stereo only; baresip resamples for PCMU.
            ("ausrc_srate", "48000"),
            ("ausrc_channels", "2"),
            ("audio_buffer", "40"),
            ("rtp_ports", f"{self.rtp_ports[0]}-{self.rtp_ports[-1]}"),
            ("rtcp_mux", "no"),
            ("rtp_stats", "no"),
            ("module_path", self.modules),
            *(("module", f"{m}.so") for m in _MODULES),
            ("module_tmp", "account.so"),
            ("module_app", "menu.so"),
            ("module_app", "ctrl_tcp.so"),
            ("ctrl_tcp_listen", format_hostport(self.sip_address, self.control_port)),
            # Relative to the working directory: sndfile cuts long paths.
            ("snd_path", "."),
        ]
        return "".join(f"{key}\t\t{value}\n" for key, value in lines)

    # -- life --------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start baresip; wait (at most C{timeout} s) until it has registered."""
        sip_port = free_port(self.sip_address, socket.SOCK_STREAM)
        self.control_port = free_port(self.sip_address, socket.SOCK_STREAM)
        (self.directory / "config").write_text(self._config(sip_port))
        (self.directory / "accounts").write_text(self.account + "\n")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [self.tool, "-f", str(self.directory), "-v"],
            cwd=self.directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._control is None:
                try:
                    self._control = socket.create_connection(
                        (self.sip_address, self.control_port), timeout=1.0
                    )
                except OSError:
                    self._control = None
            if self._control is not None and _REGISTERED.search(self.log()):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"baresip {self.name} did not register within {timeout} s:\n{self.log()[-3000:]}"
        )

    def log(self) -> str:
        """baresip's output, without the call status lines it prints every 100 ms."""
        if not self.log_path.exists():
            return ""
        return _STATUS.sub("", self.log_path.read_text(errors="replace"))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop baresip (SIGTERM, then SIGKILL after C{timeout} s)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    # -- control -----------------------------------------------------------

    def command(self, name: str, params: str = "", timeout: float = 10.0) -> dict[str, Any]:
        """Send C{ctrl_tcp} command C{name}; its response (events are kept)."""
        if self._control is None:
            raise AssertionError(f"baresip {self.name} is not running")
        self._token += 1
        token = f"{self.name}-{self._token}"
        body = {"command": name, "params": params, "token": token}
        self._control.sendall(_netstring(json.dumps(body).encode()))
        found = self._read_until(lambda m: m.get("response") and m.get("token") == token, timeout)
        if not found.get("ok"):
            raise AssertionError(f"baresip {self.name}: {name} {params!r} failed: {found}")
        return found

    def wait_event(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first event of type C{kind} (already received or coming)."""
        for event in self.events:
            if event.get("type") == kind:
                return event
        return self._read_until(lambda m: m.get("event") and m.get("type") == kind, timeout)

    def _read_until(self, wanted: Any, timeout: float) -> dict[str, Any]:
        assert self._control is not None
        deadline = time.monotonic() + timeout
        while True:
            # One recv may bring a response and events after it: those
            # stay queued for the next wait.
            self._pending.extend(self._messages())
            while self._pending:
                message = self._pending.pop(0)
                if message.get("event"):
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"baresip {self.name}: nothing wanted within {timeout} s; events "
                    f"{[e.get('type') for e in self.events]}\n{self.log()[-3000:]}"
                )
            self._control.settimeout(min(left, 0.5))
            try:
                data = self._control.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"baresip {self.name} closed its control connection")
            self._buffer += data

    def _messages(self) -> list[dict[str, Any]]:
        """The complete netstrings in the buffer, decoded."""
        out: list[dict[str, Any]] = []
        while True:
            length, colon, rest = self._buffer.partition(b":")
            if not colon or not length.isdigit() or len(rest) < int(length) + 1:
                return out
            size = int(length)
            payload, self._buffer = rest[:size], rest[size + 1:]
            out.append(json.loads(payload))

    def recording(self) -> Path:
        """The WAV file of what the phone received (sndfile's C{dump-*-dec.wav})."""
        found = sorted(self.directory.glob("dump-*-dec.wav"))
        if not found:
            raise AssertionError(f"baresip {self.name} recorded nothing:\n{self.log()[-2000:]}")
        return found[-1]
