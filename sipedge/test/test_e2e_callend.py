# -*- test-case-name: sipedge.test.test_e2e_callend -*-
"""
End-to-end: the real C{twistd sipedge} anchoring a call's media on
loopback ends the call itself when no media flows, with a BYE to each SIPp
peer, and closes the relay's ports.
"""

from __future__ import annotations

import re
import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from sipedge.testing import (
    free_port,
    free_port_range,
    sipp_counter,
    start_with_sipp,
)

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
idle_timeout = 2
"""


class IdleMediaTests(SynchronousTestCase):
    """A call without media is ended by the proxy."""

    def setUp(self) -> None:
        low, high = free_port_range(20)
        self.ports = (low, high)
        config = _CONFIG.format(low=low, high=high)
        self.work, self.proxy, self.sipp = start_with_sipp(self, config)

    def test_bye_to_both(self) -> None:
        """
        A relayed call whose parties send no RTP: after media.idle_timeout
        sipedge sends each party a BYE with C{Reason: ...;text="media
        timeout"}, both answer 200, the call counts as successful at both
        ends, and no relay port stays open.
        """
        uas_port = free_port()
        uas = self.sipp.start("uas_ended.xml", "-m", 1, port=uas_port, timeout=30)
        result = self.sipp.run(
            "uac_ended.xml", f"127.0.0.1:{self.proxy.ports['UDP']}",
            "-s", "service", "-key", "domain", f"127.0.0.1:{uas_port}", "-m", 1,
            local_ip="127.0.0.10", timeout=30,
        )
        log = self.proxy.log()
        self.assertEqual(result.returncode, 0, f"{result.stdout[-1500:]}\n{log[-4000:]}")
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 1)
        self.assertEqual(uas.wait(30), 0, log[-4000:])
        self.assertIn("Ending call", log)
        self.assertIn("media timeout", log)
        self.assertIn("BYE to the caller of call", log)
        self.assertEqual(log.count(" answered 200"), 2, log[-3000:])
        # The relay's ports of the call are free again.
        [ports] = re.findall(r"allocated: .*, ports \(([0-9, ]+)\)", log)
        used = [int(p) for p in ports.split(",")]
        low, high = self.ports
        self.assertTrue(all(low <= p <= high for p in used), used)
        deadline = time.monotonic() + 5
        busy: list[int] = []
        while time.monotonic() < deadline:
            busy = []
            for port in used:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError:
                        busy.append(port)
            if not busy:
                break
            time.sleep(0.2)
        self.assertEqual(busy, [], log[-3000:])
