# -*- test-case-name: sipedge.test.test_media_srtp -*-
"""
Tests for L{sipedge.media._srtp}: crypto suites, SDES keys, SRTP contexts.
"""

from __future__ import annotations

import base64

import pylibsrtp
from twisted.trial.unittest import SynchronousTestCase

from sipedge.media import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    CRYPTO_SUITES,
    MAX_PROTECT_SIZE,
    SUPPORTED_SUITES,
    CryptoSuite,
    SdesError,
    SrtpContext,
    SrtpError,
    SrtpKey,
    build_rtcp,
    build_rtp,
    suite_named,
)
from sipedge.media._srtp import check_session_params
from sipedge.testing import counting_random


def rtp(sequence: int, size: int = 172, ssrc: int = 0x11223344) -> bytes:
    """An RTP packet of C{size} bytes (a 12-byte header)."""
    return build_rtp(
        payload_type=0, sequence=sequence, timestamp=160 * sequence, ssrc=ssrc,
        payload=bytes(size - 12),
    )


def rtcp(ssrc: int = 0x11223344) -> bytes:
    """A receiver report with one (zero) report block."""
    return build_rtcp(packet_type=201, ssrc=ssrc, count=1, body=bytes(24))


def pair(suite: CryptoSuite, seed: int = 0) -> tuple[SrtpContext, SrtpContext]:
    """A sender's and a receiver's contexts sharing one key each way."""
    random = counting_random(seed)
    one, two = SrtpKey.generate(suite, random), SrtpKey.generate(suite, random)
    return SrtpContext(inbound=two, outbound=one), SrtpContext(inbound=one, outbound=two)


class CryptoSuiteTests(SynchronousTestCase):
    """The suite table and the probe."""

    def test_table(self) -> None:
        """Names, key and salt lengths follow RFC 4568 and RFC 7714."""
        self.assertEqual(
            [(s.name, s.key_length, s.salt_length) for s in CRYPTO_SUITES],
            [
                ("AES_CM_128_HMAC_SHA1_80", 16, 14),
                ("AES_CM_128_HMAC_SHA1_32", 16, 14),
                ("AEAD_AES_128_GCM", 16, 12),
                ("AEAD_AES_256_GCM", 32, 12),
            ],
        )
        self.assertEqual(AES_CM_128_HMAC_SHA1_80.master_length, 30)
        self.assertEqual(AEAD_AES_256_GCM.master_length, 44)
        self.assertEqual(str(AEAD_AES_128_GCM), "AEAD_AES_128_GCM")

    def test_supported_are_usable(self) -> None:
        """Every probed suite builds a policy; the AES-CM ones always do."""
        self.assertIn(AES_CM_128_HMAC_SHA1_80, SUPPORTED_SUITES)
        self.assertIn(AES_CM_128_HMAC_SHA1_32, SUPPORTED_SUITES)
        for suite in SUPPORTED_SUITES:
            pylibsrtp.Policy(srtp_profile=suite.profile)

    def test_suite_named(self) -> None:
        """Suites are found by SDES name; unknown names raise L{SdesError}."""
        self.assertIs(suite_named("AES_CM_128_HMAC_SHA1_32"), AES_CM_128_HMAC_SHA1_32)
        self.assertRaises(SdesError, suite_named, "F8_128_HMAC_SHA1_80")
        self.assertRaises(SdesError, suite_named, "aes_cm_128_hmac_sha1_80")


class SrtpKeyTests(SynchronousTestCase):
    """L{SrtpKey}: SDES parsing, generation, formatting."""

    KEY = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # RFC 4568 section 8.1

    def test_from_sdes(self) -> None:
        """RFC 4568's example key parses: 30 bytes of key and salt."""
        key = SrtpKey.from_sdes(self.KEY, AES_CM_128_HMAC_SHA1_80)
        self.assertEqual(len(key.material), 30)
        self.assertEqual(key.to_sdes(), self.KEY)

    def test_lifetime_accepted(self) -> None:
        """A lifetime is accepted (and ignored)."""
        key = SrtpKey.from_sdes(self.KEY + "|2^20", AES_CM_128_HMAC_SHA1_32)
        self.assertEqual(key.to_sdes(), self.KEY)

    def test_mki_rejected(self) -> None:
        """An MKI cannot be used with pylibsrtp: L{SdesError}."""
        with self.assertRaises(SdesError) as caught:
            SrtpKey.from_sdes(self.KEY + "|2^20|1:4", AES_CM_128_HMAC_SHA1_80)
        self.assertIn("MKI", str(caught.exception))
        self.assertRaises(SdesError, SrtpKey.from_sdes, self.KEY + "|1:4", AES_CM_128_HMAC_SHA1_80)
        self.assertRaises(
            SdesError, SrtpKey.from_sdes, self.KEY + "|1:4;" + self.KEY + "|2:4",
            AES_CM_128_HMAC_SHA1_80,
        )

    def test_wrong_length(self) -> None:
        """A key of the wrong length for the suite is refused."""
        with self.assertRaises(SdesError) as caught:
            SrtpKey.from_sdes(self.KEY, AEAD_AES_128_GCM)
        self.assertIn("28 bytes", str(caught.exception))
        short = "inline:" + base64.b64encode(bytes(29)).decode()
        self.assertRaises(SdesError, SrtpKey.from_sdes, short, AES_CM_128_HMAC_SHA1_80)
        self.assertRaises(SdesError, SrtpKey, AES_CM_128_HMAC_SHA1_80, bytes(31))

    def test_bad_base64(self) -> None:
        """Bad base64 and other key methods are refused."""
        for text in ("inline:not*base64", "inline:", "inline:QUJD=A", "uri:http://x/key",
                     "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"):
            self.assertRaises(SdesError, SrtpKey.from_sdes, text, AES_CM_128_HMAC_SHA1_80)

    def test_sdes_error_is_media_and_value_error(self) -> None:
        """L{SdesError} is an L{SrtpError} and a C{ValueError}, with a 488 hint."""
        error = SdesError("x")
        self.assertIsInstance(error, SrtpError)
        self.assertIsInstance(error, ValueError)
        self.assertEqual(error.status_hint, 488)

    def test_generate(self) -> None:
        """Keys come from the injected random source, at the suite's length."""
        for suite in CRYPTO_SUITES:
            key = SrtpKey.generate(suite, counting_random())
            self.assertEqual(key.material, bytes(range(suite.master_length)))
            self.assertEqual(SrtpKey.from_sdes(key.to_sdes(), suite), key)

    def test_repr_hides_key(self) -> None:
        """A key's repr names the suite, never the key."""
        key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random(65))
        self.assertNotIn("ABCDEFGH", repr(key))
        self.assertNotIn(key.to_sdes()[7:], repr(key))
        self.assertIn("AES_CM_128_HMAC_SHA1_80", repr(key))

    def test_session_params(self) -> None:
        """Only the window size hint is accepted among session parameters."""
        check_session_params(None)
        check_session_params("WSH=128")
        for params in ("UNENCRYPTED_SRTP", "KDR=10", "WSH=64 UNAUTHENTICATED_SRTP"):
            self.assertRaises(SdesError, check_session_params, params)


class SrtpContextTests(SynchronousTestCase):
    """L{SrtpContext} round trips, tamper, replay and size limits."""

    def test_round_trip_every_suite(self) -> None:
        """
        For every supported suite, RTP and RTCP protected by one context
        unprotect in the other (separate tx and rx), and back.
        """
        for suite in SUPPORTED_SUITES:
            alice, bob = pair(suite)
            for sequence in range(1, 6):
                packet = rtp(sequence)
                protected = alice.protect(packet)
                self.assertNotEqual(protected[12:], packet[12:], suite.name)
                self.assertEqual(len(protected), len(packet) + suite.rtp_overhead, suite.name)
                self.assertEqual(bob.unprotect(protected), packet, suite.name)
                answer = rtp(sequence, ssrc=0x55667788)
                self.assertEqual(alice.unprotect(bob.protect(answer)), answer, suite.name)
            report = rtcp()
            protected = alice.protect(report)
            self.assertEqual(len(protected), len(report) + suite.rtcp_overhead, suite.name)
            self.assertEqual(bob.unprotect(protected), report, suite.name)
            self.assertEqual(alice.unprotect(bob.protect(report)), report, suite.name)

    def test_tamper(self) -> None:
        """A changed bit (payload or tag) fails authentication: counted."""
        for suite in SUPPORTED_SUITES:
            alice, bob = pair(suite)
            protected = bytearray(alice.protect(rtp(1)))
            protected[40] ^= 0x01
            with self.assertRaises(SrtpError) as caught:
                bob.unprotect(bytes(protected))
            self.assertEqual(caught.exception.reason, "srtp-auth", suite.name)
            report = bytearray(alice.protect(rtcp()))
            report[-1] ^= 0x80
            self.assertRaises(SrtpError, bob.unprotect, bytes(report))
            self.assertEqual(bob.counts, {"srtp-auth": 2})

    def test_wrong_key(self) -> None:
        """A packet protected with another key fails authentication."""
        alice, _ = pair(AES_CM_128_HMAC_SHA1_80, seed=0)
        _, mallory = pair(AES_CM_128_HMAC_SHA1_80, seed=99)
        with self.assertRaises(SrtpError) as caught:
            mallory.unprotect(alice.protect(rtp(1)))
        self.assertEqual(caught.exception.reason, "srtp-auth")

    def test_replay(self) -> None:
        """A packet seen before is a replay, for RTP and RTCP alike."""
        for suite in SUPPORTED_SUITES:
            alice, bob = pair(suite)
            protected = alice.protect(rtp(7))
            bob.unprotect(protected)
            with self.assertRaises(SrtpError) as caught:
                bob.unprotect(protected)
            self.assertEqual(caught.exception.reason, "srtp-replay")
            report = alice.protect(rtcp())
            bob.unprotect(report)
            self.assertRaises(SrtpError, bob.unprotect, report)
            self.assertEqual(bob.counts, {"srtp-replay": 2})

    def test_retransmission_protected_again(self) -> None:
        """The same RTP packet can be protected twice (allow_repeat_tx)."""
        alice, _ = pair(AES_CM_128_HMAC_SHA1_80)
        self.assertEqual(alice.protect(rtp(3)), alice.protect(rtp(3)))

    def test_too_long(self) -> None:
        """
        A 1400-byte packet is too long to protect (pylibsrtp's buffer):
        L{SrtpError} C{too-long}, counted; the limit itself passes.
        """
        alice, bob = pair(AES_CM_128_HMAC_SHA1_80)
        with self.assertRaises(SrtpError) as caught:
            alice.protect(rtp(1, size=1400))
        self.assertEqual(caught.exception.reason, "too-long")
        self.assertEqual(alice.counts, {"too-long": 1})
        bob.unprotect(alice.protect(rtp(2, size=MAX_PROTECT_SIZE)))
        with self.assertRaises(SrtpError) as caught:
            bob.unprotect(bytes(1501))
        self.assertEqual(caught.exception.reason, "too-long")
        big_rtcp = build_rtcp(packet_type=201, ssrc=1, body=bytes(1400))
        self.assertRaises(SrtpError, alice.protect, big_rtcp)
        self.assertEqual(alice.counts, {"too-long": 2})

    def test_malformed(self) -> None:
        """libsrtp's refusal of a runt is C{malformed}."""
        _, bob = pair(AES_CM_128_HMAC_SHA1_80)
        with self.assertRaises(SrtpError) as caught:
            bob.unprotect(b"\x80\x00\x00\x01")
        self.assertEqual(caught.exception.reason, "malformed")

    def test_one_direction_only(self) -> None:
        """A context without an outbound (inbound) key cannot protect (unprotect)."""
        key = SrtpKey.generate(AES_CM_128_HMAC_SHA1_80, counting_random())
        self.assertRaises(SrtpError, SrtpContext(key, None).protect, rtp(1))
        self.assertRaises(SrtpError, SrtpContext(None, key).unprotect, rtp(1))
        self.assertIn("in=AES_CM_128_HMAC_SHA1_80 out=None", repr(SrtpContext(key, None)))
