# -*- test-case-name: sipedge.test.test_srtp_auto -*-
"""
Tests for C{[media] srtp = "auto"}: the decision table
(L{sipedge.media._srtp_auto}) and the C{media-anchor} stage deciding by
it, with hypothesis over the parties' sides, their signalling transports
and the offer.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.flow import Flow
from sipedge.media import MODE_PAIRS, MediaConfig, MediaMode
from sipedge.media._srtp_auto import AUTO_MODES, OfferKind, auto_modes, offer_kind
from sipedge.pipeline import Continue, Forward, RequestContext, Respond, Target
from sipedge.testing import (
    A_HOST,
    B_HOST,
    INSIDE_HOST,
    KEY_A,
    AnchorTestCase,
    sdp_a,
    sdp_b,
)
from sipedge.testing import ANCHOR_CONFIG as CONFIG
from sipedge.testing import ANCHOR_PROXY as PROXY
from sipedge.testing import anchor_request as request
from sipedge.testing import anchor_response as response

P = MediaMode.PASSTHROUGH
CRYPTO = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY_A}\r\n"

facts = st.tuples(st.sampled_from(OfferKind), st.booleans(), st.booleans(), st.booleans())


class AutoTableTests(SynchronousTestCase):
    """The decision table of C{srtp = "auto"}."""

    def test_total(self) -> None:
        """Every combination of the facts has an entry, a mode pair or a refusal."""
        self.assertEqual(len(AUTO_MODES), len(OfferKind) * 8)
        for modes in AUTO_MODES.values():
            self.assertTrue(modes is None or modes in MODE_PAIRS, modes)

    @given(facts)
    def test_never_refused_when_carried(self, fact: tuple[OfferKind, bool, bool, bool]) -> None:
        """
        If the relay can carry an offer, it is never refused: only an offer
        that requires SRTP and came over signalling that may not carry keys
        (its answer would have to send keys back over it) is.
        """
        kind, a_keys, _, _ = fact
        refused = auto_modes(*fact) is None
        self.assertEqual(refused, kind is OfferKind.SRTP and not a_keys)

    @given(facts)
    def test_keys_stay_on_secure_legs(self, fact: tuple[OfferKind, bool, bool, bool]) -> None:
        """
        If a leg's signalling may not carry keys, no key goes on it: it is
        plain RTP, or pass-through of an offer without keys.
        """
        kind, a_keys, b_keys, _ = fact
        modes = auto_modes(*fact)
        if modes is None:
            return
        for mode, keys in zip(modes, (a_keys, b_keys), strict=True):
            if not keys:
                self.assertFalse(mode.srtp, fact)
                if mode is P:
                    self.assertIs(kind, OfferKind.PLAIN, fact)

    @given(facts)
    def test_shared_keys(self, fact: tuple[OfferKind, bool, bool, bool]) -> None:
        """
        If keys pass through end to end, both legs may carry them and both
        parties are on the same side; across sides, two SRTP legs re-key.
        """
        kind, a_keys, b_keys, same = fact
        modes = auto_modes(*fact)
        if modes == (P, P) and kind is not OfferKind.PLAIN:
            self.assertTrue(a_keys and b_keys and same, fact)
        if kind is OfferKind.SRTP and a_keys and b_keys:
            expected = (P, P) if same else (MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY)
            self.assertEqual(modes, expected)
        if kind is OfferKind.SRTP and a_keys and not b_keys:
            self.assertEqual(modes, (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN))

    def test_offer_kind(self) -> None:
        """RTP/SAVP with keys asks SRTP; RTP/AVP with keys is best effort; no keys, plain."""
        self.assertIs(offer_kind(True, True), OfferKind.SRTP)
        self.assertIs(offer_kind(False, True), OfferKind.BEST_EFFORT)
        self.assertIs(offer_kind(False, False), OfferKind.PLAIN)

    def test_config(self) -> None:
        """
        C{auto} is the default; L{MediaConfig.leg_modes} decides by the
        table, and C{sdes_over_plain} lets every leg carry keys.
        """
        config = MediaConfig()
        self.assertEqual(config.srtp, "auto")
        self.assertTrue(config.sided)
        self.assertEqual(
            config.leg_modes(False, False, True, offerer_secure=True),
            (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN),
        )
        self.assertIsNone(config.leg_modes(False, False, True))
        plain_ok = MediaConfig(sdes_over_plain=True)
        self.assertEqual(plain_ok.leg_modes(False, False, True), (P, P))
        self.assertEqual(
            plain_ok.leg_modes(True, False, True),
            (MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY),
        )
        self.assertIsNone(config.policy(False, False, True))


_OFFERS = {
    OfferKind.PLAIN: lambda host: sdp_a(host=host),
    OfferKind.BEST_EFFORT: lambda host: sdp_a(host=host, extra=CRYPTO),
    OfferKind.SRTP: lambda host: sdp_a(host=host, proto="RTP/SAVP", extra=CRYPTO),
}


class AutoStageTests(AnchorTestCase):
    """The stage under C{srtp = "auto"} (the default), driven by the routing decision."""

    config = CONFIG

    @given(
        kind=st.sampled_from(OfferKind),
        caller_tls=st.booleans(),
        caller_inside=st.booleans(),
        callee_tls=st.booleans(),
        callee_inside=st.booleans(),
    )
    def test_decides(
        self,
        kind: OfferKind,
        caller_tls: bool,
        caller_inside: bool,
        callee_tls: bool,
        callee_inside: bool,
    ) -> None:
        """
        For any sides, signalling transports and offer: the call goes on
        unless the table refuses it (488); keys reach a party only over
        TLS; the relay's legs are in the table's modes; the call's end
        leaves nothing.
        """
        self.assertEqual(self.config.srtp, "auto")
        caller = "10.0.0.10" if caller_inside else A_HOST
        callee = INSIDE_HOST if callee_inside else B_HOST
        caller_flow = Flow("TLS" if caller_tls else "UDP", PROXY, 5061, caller, 40000)
        callee_flow = Flow("TLS" if callee_tls else "UDP", PROXY, 5061, callee, 40001)
        invite = request("INVITE", _OFFERS[kind](caller), uri="sip:bob@example.com")
        context = RequestContext(invite, caller_flow)
        forward = Forward((Target(f"sip:bob@{callee}", flow=callee_flow),))
        result: Any = self.resolved(self.run_request(context, forward))
        expected = auto_modes(kind, caller_tls, callee_tls, caller_inside == callee_inside)
        if expected is None:
            self.assertIsInstance(result, Respond)
            self.assertEqual(result.status, 488)
            self.stage.request_decided(context, result)
            self.assertEqual(self.relay.session_keys, ())
            return
        self.assertEqual(result, Continue())
        offer = context.request.body
        [key] = self.relay.session_keys
        self.assertEqual(self.relay.session(key).modes, expected)
        if not callee_tls:
            self.assertNotIn(b"a=crypto", offer)
        b_keys = expected[1].srtp or (expected[1] is P and kind is not OfferKind.PLAIN)
        self.assertEqual(b"a=crypto" in offer, b_keys)
        if b_keys:
            proto = "RTP/SAVP" if b"RTP/SAVP" in offer else "RTP/AVP"
            answer = sdp_b(host=callee, proto=proto, extra=CRYPTO)
        else:
            answer = sdp_b(host=callee)
        ok = self.back(context, response(invite, 200, answer))
        if not caller_tls:
            self.assertNotIn(b"a=crypto", ok.body)
        if expected[0].srtp:
            self.assertIn(b"a=crypto", ok.body)
            self.assertIn(b"RTP/SAVP", ok.body)
        self.hang_up()
        self.assertEqual(self.relay.session_keys, ())
        self.assertEqual(self.stage.calls, ())
