# -*- test-case-name: sipedge.test.test_srtp_auto -*-
"""
C{[media] srtp = "auto"} (the default): the relay chooses each call's leg
modes from what each leg can carry, so that a call the relay can carry
never gets 488.

The facts, for the offerer's leg (relay side A) and the answerer's (B):

 - what the offer asks (L{OfferKind}): no SDES keys (plain RTP, or
   DTLS-SRTP, which SDES does not concern); C{RTP/AVP} with a=crypto
   (best-effort SRTP: plain RTP is a valid answer); C{RTP/SAVP} with
   a=crypto (SRTP required);
 - whether each leg's signalling may carry SDES keys (TLS, or
   C{sdes_over_plain}): RFC 4568 8.1, the keys are in the SDP in clear;
 - whether the two parties are on the same side of the edge (both
   internal or both external): keys are shared end to end only there.

A party whose signalling may carry keys is taken to speak SRTP when
offered it (a TLS phone); a party whose signalling may not is sent plain
RTP. The table (L{AUTO_MODES}):

 - no keys in the offer: pass-through (the relay leaves the profile
   alone, as before);
 - SRTP offered over signalling that may carry keys, towards a leg that
   may carry them too: pass-through on the same side of the edge, re-key
   (the relay's own keys on each leg) across it;
 - ... towards a leg that may not: terminate (SRTP with the offerer, RTP
   with the answerer);
 - best-effort SRTP: pass-through where both legs may carry keys on the
   same side, else plain RTP on both legs (the offerer's keys go nowhere,
   and plain RTP is a valid answer);
 - SRTP required, offered over signalling that may not carry keys: the
   only valid answer would send keys back over it: refused (C{None}; the
   stage answers 488, as C{sdes_over_plain = false} asks).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping

from sipedge.media._values import MediaMode

__all__ = ["AUTO_MODES", "OfferKind", "auto_modes", "offer_kind"]


class OfferKind(enum.Enum):
    """What an offer asks of SRTP with SDES keys."""

    #: No a=crypto on a relayed stream.
    PLAIN = "plain"
    #: C{RTP/AVP} with a=crypto: SRTP if the answerer can, else RTP.
    BEST_EFFORT = "best-effort"
    #: C{RTP/SAVP(F)} with a=crypto: SRTP.
    SRTP = "srtp"


def offer_kind(offers_srtp: bool, has_keys: bool) -> OfferKind:
    """The kind of an offer, from L{offers_srtp} and L{has_keys} of its SDP."""
    if offers_srtp:
        return OfferKind.SRTP
    return OfferKind.BEST_EFFORT if has_keys else OfferKind.PLAIN


_P = MediaMode.PASSTHROUGH
_PLAIN = (MediaMode.PLAIN, MediaMode.PLAIN)
_THROUGH = (_P, _P)
_REKEY = (MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY)
_TERMINATE = (MediaMode.SRTP_TERMINATE, MediaMode.PLAIN)


def _decide(
    kind: OfferKind, offerer_keys: bool, answerer_keys: bool, same_side: bool
) -> tuple[MediaMode, MediaMode] | None:
    if kind is OfferKind.PLAIN:
        return _THROUGH
    if kind is OfferKind.BEST_EFFORT:
        return _THROUGH if offerer_keys and answerer_keys and same_side else _PLAIN
    if not offerer_keys:
        return None
    if not answerer_keys:
        return _TERMINATE
    return _THROUGH if same_side else _REKEY


#: (offer kind, offerer's leg may carry keys, answerer's leg may carry
#: keys, same side of the edge) -> (A mode, B mode), or C{None}: refused.
AUTO_MODES: Mapping[
    tuple[OfferKind, bool, bool, bool], tuple[MediaMode, MediaMode] | None
] = {
    (kind, a, b, same): _decide(kind, a, b, same)
    for kind, a, b, same in itertools.product(
        OfferKind, (False, True), (False, True), (False, True)
    )
}


def auto_modes(
    kind: OfferKind, offerer_keys: bool, answerer_keys: bool, same_side: bool
) -> tuple[MediaMode, MediaMode] | None:
    """The leg modes of a session under C{srtp = "auto"} (L{AUTO_MODES})."""
    return AUTO_MODES[(kind, offerer_keys, answerer_keys, same_side)]
