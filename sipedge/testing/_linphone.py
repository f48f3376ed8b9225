"""
A real linphone for the end-to-end tests: C{linphone-daemon} (Debian:
linphone-cli, liblinphone 5.1), headless, one process per phone with its
own home and configuration, driven through the daemon's command socket
(C{--pipe NAME}: a Unix socket C{/tmp/NAME}; one connection, one command
at a time, each answered with C{Status: Ok} or C{Status: Error} and
C{Key: value} lines).

The account is in the phone's configuration file, as a user would set it
up: identity C{sip:user@domain}, the proxy's address as registrar and as
outbound route (so calls go to the proxy, never to a DNS look-up of the
domain: with no route, linphone resolves the domain of the callee's URI).
The phone answers calls by itself (C{--auto-answer}). Without a sound card
liblinphone still sets up calls (its audio graph has no device to play or
record); the tests here check signalling, not audio.

What linphone 5.1 cannot do, and how the tests live with it: its SIP
socket listens on the wildcard address (the port is one the OS says is
free on 127.0.0.1), but it only ever sends to the proxy it is given, on
loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from sipedge.testing._tools import free_port, require_tool

__all__ = ["LinphonePhone"]

_CONFIG = """\
[sip]
sip_port={port}
sip_tcp_port=0
sip_tls_port=0
default_proxy=0
[net]
ipv6=0
[sound]
echocancellation=0
[auth_info_0]
username={user}
passwd={password}
domain={domain}
[proxy_0]
reg_proxy=<sip:{proxy};transport=udp>
reg_route=<sip:{proxy};transport=udp;lr>
reg_identity=sip:{user}@{domain}
reg_expires=600
reg_sendregister=1
"""


def _fields(reply: str) -> dict[str, str]:
    """The C{Key: value} lines of a daemon reply."""
    out: dict[str, str] = {}
    for line in reply.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


class LinphonePhone:
    """
    One C{linphone-daemon}: a user agent that registers C{sip:user@domain}
    through C{proxy} (C{host:port}, UDP) and answers every call.
    """

    def __init__(self, workdir: Path, user: str, domain: str, proxy: str, password: str) -> None:
        self.tool = require_tool("linphone-daemon")
        self.name = user
        self.account = {"user": user, "domain": domain, "proxy": proxy, "password": password}
        self.directory = (workdir / user).absolute()
        (self.directory / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory / "linphone.log"
        self.pipe = f"sipedge-test-{uuid.uuid4().hex[:12]}"
        self.process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start the daemon; wait (at most C{timeout} s) until it has registered."""
        config = _CONFIG.format(port=free_port(), **self.account)
        (self.directory / "linphonerc").write_text(config)
        out = (self.directory / "daemon.out").open("wb")
        self.process = subprocess.Popen(
            [self.tool, "--config", str(self.directory / "linphonerc"),
             "--log", str(self.log_path), "--pipe", self.pipe, "--auto-answer"],
            cwd=self.directory, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(self.directory)},
        )
        out.close()
        path = f"/tmp/{self.pipe}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if os.path.exists(path):
                control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    control.connect(path)
                except OSError:
                    control.close()
                else:
                    self._control = control
                    left = max(1.0, deadline - time.monotonic())
                    self.wait("register-status 1", "State", "LinphoneRegistrationOk", left)
                    return
            time.sleep(0.1)
        raise AssertionError(f"linphone {self.name} did not start:\n{self.log()[-3000:]}")

    def command(self, text: str, timeout: float = 10.0, ok: bool = True) -> dict[str, str]:
        """
        Send one daemon command; its reply's fields. Unless C{ok} is false
        the reply must say C{Status: Ok}.
        """
        if self._control is None:
            raise AssertionError(f"linphone {self.name} is not running")
        self._control.sendall(text.encode())
        # A reply has no end marker ("Status: Ok" then an empty line and
        # fields, or "Status: Error" and a "Reason:" line): it is complete
        # when it ends a line and nothing more comes for a moment.
        deadline = time.monotonic() + timeout
        reply = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"linphone {self.name}: no reply to {text!r}: {reply!r}")
            self._control.settimeout(min(left, 0.3) if reply.endswith(b"\n") else left)
            try:
                data = self._control.recv(65536)
            except TimeoutError:
                if reply.endswith(b"\n"):
                    break
                continue
            if not data:
                raise AssertionError(f"linphone {self.name} closed its command socket")
            reply += data
        fields = _fields(reply.decode(errors="replace"))
        if ok and fields.get("Status") != "Ok":
            raise AssertionError(f"linphone {self.name}: {text!r} failed: {reply!r}")
        return fields

    def wait(self, command: str, key: str, wanted: str, timeout: float = 15.0) -> None:
        """Repeat C{command} (every 0.2 s, at most C{timeout} s) until C{key} is C{wanted}."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.command(command, ok=False).get(key)
            if seen == wanted:
                return
            time.sleep(0.2)
        raise AssertionError(
            f"linphone {self.name}: {command!r} says {key} {seen!r}, not {wanted!r},"
            f" after {timeout} s:\n{self.log()[-3000:]}"
        )

    def log(self) -> str:
        """liblinphone's log, its SIP messages included."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon (quit, then SIGTERM, then SIGKILL)."""
        if self._control is not None:
            try:
                self._control.sendall(b"quit")
            except OSError:
                pass
            self._control.close()
            self._control = None
        if self.process is not None:
            try:
                self.process.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout / 2)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self.process = None
        try:
            os.unlink(f"/tmp/{self.pipe}")
        except FileNotFoundError:
            pass
