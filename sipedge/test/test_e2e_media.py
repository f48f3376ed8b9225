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
on 127.0.0.2 and 127.0.0.3 (see L{sipedge.testing.BaresipPhone}).
"""

from __future__ import annotations

from sipedge.testing import (
    TONE_A,
    TONE_B,
    MediaCallTestCase,
)


class TerminateTests(MediaCallTestCase):
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


class AutoTests(MediaCallTestCase):
    """C{media.srtp} not set (C{"auto"}): the relay terminates SRTP where keys may not cross."""

    def test_srtp_to_plain(self) -> None:
        """
        If phone A registers over TLS with SRTP mandatory and calls phone B,
        registered over UDP without SRTP, on the default C{srtp} (only
        C{anchor = true} and the relay's ports and address set): the keys
        may not cross B's UDP signalling, so the relay terminates SRTP: A's
        leg carries SRTP, B's the tones in PCMU, each phone hears the other
        (before C{auto}, the default C{passthrough} answered A 488).
        """
        a, b = self.start(None, "tls", "udp", a_srtp=True, b_srtp=False)
        result = self.call(a, b)
        self.assertEqual(result.modes, "srtp-terminate/plain")
        a_up, a_down = self.legs(result.datagrams, a, result.ports)
        b_up, b_down = self.legs(result.datagrams, b, result.ports)
        self.assert_srtp(a_up, TONE_A, "A to relay")
        self.assert_srtp(a_down, TONE_B, "relay to A")
        self.assert_plain(b_up, TONE_B, "B to relay")
        self.assert_plain(b_down, TONE_A, "relay to B")
        a.stop()
        b.stop()
        self.assert_heard(a, TONE_B)
        self.assert_heard(b, TONE_A)


class RekeyTests(MediaCallTestCase):
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
