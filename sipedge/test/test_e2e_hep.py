# -*- test-case-name: sipedge.test.test_e2e_hep -*-
"""
End to end: the real C{twistd sipedge} copies its SIP traffic as HEPv3 to
sngrep (Debian's C{sngrep}, listening as a HEP collector), and tshark
decodes what sngrep captured as SIP between the right addresses.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from sipedge.testing import SipEdgeProcess, free_port, require_tool


class HepTests(TestCase):
    """[hep] destination sends every message in and out to a collector."""

    def test_sngrep_collects(self) -> None:
        """
        An OPTIONS request and sipedge's answer reach sngrep as HEP; read
        back with tshark they are SIP, from the client's address and port to
        sipedge's and back, with the request's Call-ID.
        """
        sngrep = require_tool("sngrep")
        tshark = require_tool("tshark")
        work = Path(self.mktemp()).absolute()
        work.mkdir(parents=True)
        collector_port = free_port()
        pcap = work / "hep.pcap"
        collector = subprocess.Popen(
            [sngrep, "-N", "-q", "-F", "-L", f"udp:127.0.0.1:{collector_port}", "-O", str(pcap)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def stop_collector() -> None:
            if collector.poll() is None:
                collector.send_signal(signal.SIGINT)
                try:
                    collector.wait(10)
                except subprocess.TimeoutExpired:
                    collector.kill()
                    collector.wait(5)

        self.addCleanup(stop_collector)
        proxy = SipEdgeProcess(work, f"""
[sip]
listen = ["udp:127.0.0.1:0"]
domains = ["example.test"]

[hep]
destination = "udp:127.0.0.1:{collector_port}"
node_id = 2001
""")
        self.addCleanup(proxy.stop)
        proxy.start()
        sip_port = proxy.ports["UDP"]

        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(client.close)
        client.bind(("127.0.0.1", 0))
        client.settimeout(5)
        client_port = client.getsockname()[1]
        request = (
            f"OPTIONS sip:bob@example.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK-hep1;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@other.test>;tag=h1\r\n"
            f"To: <sip:bob@example.test>\r\nCall-ID: hep-e2e-1@127.0.0.1\r\n"
            f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        client.sendto(request, ("127.0.0.1", sip_port))
        answer = client.recv(65535)
        status = int(answer.split(b" ", 2)[1])

        # Bounded wait for both packets to be written, then stop sngrep so
        # the capture file is complete.
        rows: list[list[str]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if not pcap.exists() or pcap.stat().st_size < 200:
                continue
            stop_collector()
            break
        stop_collector()
        out = subprocess.run(
            [tshark, "-r", str(pcap), "-T", "fields", "-E", "separator=|",
             "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
             "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID"],
            capture_output=True, text=True, timeout=60, check=True,
        )
        rows = [line.split("|") for line in out.stdout.splitlines() if line.strip()]
        self.assertEqual(
            rows,
            [
                ["127.0.0.1", str(client_port), "127.0.0.1", str(sip_port), "OPTIONS", "",
                 "hep-e2e-1@127.0.0.1"],
                ["127.0.0.1", str(sip_port), "127.0.0.1", str(client_port), "", str(status),
                 "hep-e2e-1@127.0.0.1"],
            ],
            proxy.log()[-2000:],
        )
