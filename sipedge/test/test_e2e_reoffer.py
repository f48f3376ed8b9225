# -*- test-case-name: sipedge.test.test_e2e_reoffer -*-
"""
Hold and resume end to end: two real baresip phones through the real
C{twistd sipedge} with C{[media] anchor = true} (nothing else tuned), under
a C{tcpdump} capture of the loopback interface. Phone A puts the call on
hold (a re-INVITE, C{a=sendonly}) and resumes it (another re-INVITE): the
relay re-offers its one session in place, so the ports never change, and
after the resume the media flows both ways again through those ports
(the tones checked in the captured RTP).
"""

from __future__ import annotations

import re
import time

from sipedge.testing import (
    TONE_A,
    TONE_B,
    Capture,
    MediaCallTestCase,
)

_ALLOCATED = re.compile(r"Media session (\S+) allocated: (\S+), ports \(([\d, ]+)\)")
_REOFFERED = re.compile(r"Media session (\S+) re-offered by (\w): ports \(([\d, ]+)\)")


class HoldResumeTests(MediaCallTestCase):
    """A re-INVITE hold and resume keep the relay's ports."""

    def test_hold_resume_keeps_ports(self) -> None:
        """
        If A calls B, holds and resumes, sipedge allocates one relay
        session and re-offers it twice with the same ports; media goes
        through those ports both ways after the resume, carrying each
        phone's tone to the other.
        """
        a, b = self.start("passthrough", "udp", "udp", a_srtp=False, b_srtp=False)
        capture = Capture(
            self.work / "lo.pcap", ports=(self.relay_ports, a.rtp_ports, b.rtp_ports)
        )
        self.addCleanup(capture.stop)
        capture.start()
        a.command("dial", "sip:bob@sipedge.test")
        b.wait_event("CALL_INCOMING")
        b.command("accept")
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        [(key, _, ports_text)] = _ALLOCATED.findall(self.proxy.log())
        ports = tuple(int(p) for p in ports_text.split(","))
        time.sleep(1.0)
        a.command("hold")
        self.wait_log(r"Media session \S+ re-offered by a: ports \([\d, ]+\)")
        time.sleep(1.0)
        a.command("resume")
        deadline = time.monotonic() + 20
        while len(_REOFFERED.findall(self.proxy.log())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        resumed = time.time()
        time.sleep(2.0)
        a.command("hangup")
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
        self.wait_log(rf"Media session {re.escape(key)} ended \(released\)")
        self.wait_closed(list(ports))
        datagrams = capture.stop()
        log = self.proxy.log()
        self.assertEqual(len(_ALLOCATED.findall(log)), 1, log[-3000:])
        reoffers = _REOFFERED.findall(log)
        self.assertEqual(len(reoffers), 2, log[-3000:])
        for reoffered_key, _, reoffered_ports in reoffers:
            self.assertEqual(reoffered_key, key)
            self.assertEqual(tuple(int(p) for p in reoffered_ports.split(",")), ports)
        after = [d for d in datagrams if d.time >= resumed]
        to_a = [d for d in after if d.src[1] in ports and d.dst[1] in a.rtp_ports]
        to_b = [d for d in after if d.src[1] in ports and d.dst[1] in b.rtp_ports]
        self.assertGreater(len(to_a), 20, "relay to A after the resume")
        self.assertGreater(len(to_b), 20, "relay to B after the resume")
        used = {d.src[1] for d in datagrams if d.src[1] in ports}
        self.assertTrue(used <= set(ports))
        # The tones after the resume, from the capture (baresip 1.0's
        # sndfile recording does not survive the re-INVITEs' audio restarts).
        self.assert_plain([d.payload for d in to_a], TONE_B, "relay to A after the resume")
        self.assert_plain([d.payload for d in to_b], TONE_A, "relay to B after the resume")
