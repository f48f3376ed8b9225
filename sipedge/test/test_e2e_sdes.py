# -*- test-case-name: sipedge.test.test_e2e_sdes -*-
"""
End-to-end: the real C{twistd sipedge} anchoring media with C{srtp =
"terminate"} never sends the relay's SDES keys to a callee over UDP
(C{sdes_over_plain = false}): a SIPp caller gets 488, the callee's socket
gets nothing; with C{sdes_over_plain = true} the keys go.
"""

from __future__ import annotations

import select
import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    free_port_range,
    sipp_counter,
    start_with_sipp,
)

# The caller (127.0.0.10) is internal, the callee (127.0.0.1) external: the
# callee's leg is SRTP with the relay's keys, the caller's plain RTP.
_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0"]
trusted = ["127.0.0.10/32"]
[state]
path = "state"
[media]
anchor = true
address = "127.0.0.1"
ports = "{low}-{high}"
internal = ["127.0.0.10/32"]
srtp = "terminate"
sdes_over_plain = {plain}
"""


class SdesOverUdpTests(SynchronousTestCase):
    """The relay's keys towards a callee reached over UDP."""

    def start(self, plain: bool) -> None:
        low, high = free_port_range(20)
        config = _CONFIG.format(low=low, high=high, plain="true" if plain else "false")
        self.work, self.proxy, self.sipp = start_with_sipp(self, config)
        self.callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.callee.close)
        self.callee.bind(("127.0.0.1", 0))
        self.callee_port = self.callee.getsockname()[1]

    def caller(self, scenario: str) -> list[str]:
        return [
            scenario,
            f"127.0.0.1:{self.proxy.ports['UDP']}",
            "-s",
            "service",
            "-key",
            "domain",
            f"127.0.0.1:{self.callee_port}",
            "-m",
            "1",
        ]

    def received(self, seconds: float, until: bytes | None = None) -> list[bytes]:
        """
        What the callee's socket gets within C{seconds}, or until a
        datagram that starts with C{until}.
        """
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.callee], [], [], left)
            if ready:
                out.append(self.callee.recv(65535))
                if until is not None and out[-1].startswith(until):
                    break
        return out

    def test_refused(self) -> None:
        """
        sdes_over_plain = false: the caller gets 488 with the Warning, the
        callee gets no INVITE, and sipedge logs the refusal.
        """
        self.start(plain=False)
        result = self.sipp.run(*self.caller("uac_488.xml"), local_ip="127.0.0.10", timeout=30)
        log = self.proxy.log()
        self.assertEqual(result.returncode, 0, f"{result.stdout[-1500:]}\n{log[-4000:]}")
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 1)
        self.assertEqual(self.received(0.5), [])
        self.assertIn("Not sending SDES keys in INVITE", log)

    def test_allowed(self) -> None:
        """sdes_over_plain = true: the callee gets the INVITE with the relay's keys."""
        self.start(plain=True)
        self.sipp.start(*self.caller("uac_ended.xml"), local_ip="127.0.0.10", timeout=30)
        invites = [d for d in self.received(10, b"INVITE ") if d.startswith(b"INVITE ")][:1]
        self.assertEqual(len(invites), 1, self.proxy.log()[-3000:])
        self.assertIn(b"RTP/SAVP", invites[0])
        self.assertIn(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", invites[0])
