# -*- test-case-name: sipedge.test.test_media_reoffer -*-
"""
Which SDES keys (RFC 4568) the relay takes and gives in an offer/answer
exchange, for one stream and one party, with the keys in use kept when a
re-offer does not change them (so SRTP goes on without a new context, its
rollover counter and replay window intact). Sans-IO: no Twisted here.

 - L{offerer_keys}: the offerer's a=crypto lines give its key; the relay
   answers with one line of its own;
 - L{answerer_keys}: the relay offers the answerer a key for each suite it
   accepts (or passes the offerer's lines on, in pass-through);
 - L{answer_context}: the answerer's one a=crypto line gives its key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sipedge.media._errors import MediaOfferError, SdesError
from sipedge.media._srtp import (
    CryptoSuite,
    SrtpContext,
    SrtpKey,
    check_session_params,
    suite_named,
)
from sipedge.media._values import MediaMode, SdesCrypto, StreamOffer

__all__ = ["answer_context", "answerer_keys", "offerer_keys", "usable_key"]

Random = Callable[[int], bytes]


def usable_key(crypto: SdesCrypto, suites: Sequence[CryptoSuite]) -> SrtpKey:
    """The key of one a=crypto line, if the relay can use it (else SdesError)."""
    suite = suite_named(crypto.suite)
    if suite not in suites:
        raise SdesError(f"suite {crypto.suite} is not enabled")
    check_session_params(crypto.session_params)
    return SrtpKey.from_sdes(crypto.key_params, suite)


def offerer_keys(
    offer: StreamOffer,
    mode: MediaMode,
    suites: Sequence[CryptoSuite],
    random: Random,
    current: SrtpContext | None,
    what: str,
) -> tuple[tuple[SdesCrypto, ...], SrtpContext | None]:
    """
    The a=crypto line the relay answers the offerer with, and the context
    of the offerer's leg: the first of its lines the relay can use, with a
    key of ours in the same suite. If that key is the one in use
    (C{current}), the context is kept, and our key with it.

    @raise MediaOfferError: on an SRTP leg, if no line is usable.
    """
    if not mode.srtp:
        return (), None
    problems = []
    for crypto in offer.crypto:
        try:
            theirs = usable_key(crypto, suites)
        except SdesError as e:
            problems.append(f"tag {crypto.tag}: {e}")
            continue
        if current is not None and current.inbound == theirs and current.outbound is not None:
            ours = current.outbound
            context = current
        else:
            ours = SrtpKey.generate(theirs.suite, random)
            context = SrtpContext(theirs, ours)
        return (SdesCrypto(crypto.tag, crypto.suite, ours.to_sdes()),), context
    detail = "; ".join(problems) if problems else "no a=crypto"
    raise MediaOfferError(f"{what}: no usable SRTP key ({detail})")


def answerer_keys(
    offer: StreamOffer,
    mode: MediaMode,
    suites: Sequence[CryptoSuite],
    random: Random,
    offered: Mapping[int, SrtpKey],
    current: SrtpContext | None,
) -> tuple[tuple[SdesCrypto, ...], dict[int, SrtpKey]]:
    """
    The a=crypto lines the relay offers the answerer, and their keys by
    tag: one for each suite, tags from 1 in C{suites}' order. A key offered
    before under the same tag and suite (C{offered}), or the one in use
    (C{current}), is offered again, so an answerer that keeps its key
    keeps the whole context. In pass-through, the offerer's lines as they
    are.
    """
    if mode is MediaMode.PASSTHROUGH:
        return offer.crypto, {}
    if not mode.srtp:
        return (), {}
    keys: dict[int, SrtpKey] = {}
    crypto = []
    in_use = current.outbound if current is not None else None
    for tag, suite in enumerate(suites, start=1):
        key = offered.get(tag)
        if key is None or key.suite != suite:
            key = in_use if in_use is not None and in_use.suite == suite else None
        if key is None:
            key = SrtpKey.generate(suite, random)
        keys[tag] = key
        crypto.append(SdesCrypto(tag, suite.name, key.to_sdes()))
    return tuple(crypto), keys


def answer_context(
    answer: StreamOffer,
    mode: MediaMode,
    offered: Mapping[int, SrtpKey],
    current: SrtpContext | None,
    what: str,
) -> SrtpContext | None:
    """
    The context of the answerer's leg from its answer's one a=crypto line
    (one of the tags the relay offered): C{current} if the keys are those
    in use.

    @raise MediaOfferError: if the line is missing, not one offered, or
        its key is unusable.
    """
    if not mode.srtp:
        return None
    if not answer.port:
        return current
    if len(answer.crypto) != 1:
        raise MediaOfferError(
            f"{what}: the answer needs one a=crypto, it has {len(answer.crypto)}"
        )
    (crypto,) = answer.crypto
    ours = offered.get(crypto.tag)
    if ours is None or ours.suite.name != crypto.suite:
        raise MediaOfferError(f"{what}: the answer's a=crypto {crypto.tag} was not offered")
    try:
        check_session_params(crypto.session_params)
        theirs = SrtpKey.from_sdes(crypto.key_params, ours.suite)
    except SdesError as e:
        raise MediaOfferError(f"{what}: {e}") from None
    if current is not None and current.inbound == theirs and current.outbound == ours:
        return current
    return SrtpContext(theirs, ours)
