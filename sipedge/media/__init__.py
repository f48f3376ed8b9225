# -*- test-case-name: sipedge.test.test_media -*-
"""
The media layer: RTP/RTCP headers (sans-IO), SRTP with SDES keys, and the
relay that opens ports only for a call's duration and only between the
endpoints the signalling named. See C{doc/media.md}.

 - L{sipedge.media._rtp}: RTP/RTCP header views, no Twisted.
 - L{sipedge.media._srtp}: L{CryptoSuite}, L{SrtpKey}, L{SrtpContext} on
   pylibsrtp, no Twisted.
 - L{sipedge.media._values}: the plain values of L{IMediaRelay}.
 - the relay (Twisted): L{PortAllocator}, L{RelayLeg}, L{RelaySession},
   L{MediaRelay}.
 - L{sipedge.media._control}: the relay control protocol's wire format
   (sans-IO); L{ControlServerFactory} serves a relay over it and
   L{RemoteMediaRelay} is the L{IMediaRelay} that uses one
   (C{doc/relay-protocol.md}).

The relay's names are imported lazily, on first use, so that importing
this package (and its sans-IO modules) loads no Twisted module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sipedge.media._anchor_sdp import (
    OriginVersions,
    has_keys,
    media_family,
    offer_of,
    offers_srtp,
    reject,
    rewrite,
)
from sipedge.media._budget import CallBudget
from sipedge.media._config import DEFAULT_INTERNAL_NETWORKS, MediaConfig, parse_media_config
from sipedge.media._control import (
    METHODS,
    client_proof,
    encode_message,
    encode_value,
    server_proof,
    welcome_message,
)
from sipedge.media._control_config import ControlAddress, RelayServiceConfig, parse_relay_config
from sipedge.media._errors import (
    ControlProtocolError,
    MediaError,
    MediaOfferError,
    PortsExhausted,
    RelayTimeout,
    RelayUnavailable,
    ReofferUnsupported,
    RtpParseError,
    SdesError,
    SessionExists,
    SrtpError,
    UnknownSession,
)
from sipedge.media._nat import nat_source
from sipedge.media._offer_answer import (
    Exchange,
    OfferAnswerAction,
    OfferAnswerError,
    OfferAnswerInput,
    OfferAnswerState,
)
from sipedge.media._rtp import (
    RTCP_HEADER_SIZE,
    RTP_HEADER_SIZE,
    RtcpHeader,
    RtpHeader,
    build_rtcp,
    build_rtp,
    is_rtcp,
    is_valid_rtcp,
    is_valid_rtp,
)
from sipedge.media._srtp import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    CRYPTO_SUITES,
    MAX_PROTECT_RTCP_SIZE,
    MAX_PROTECT_SIZE,
    MAX_UNPROTECT_SIZE,
    SUPPORTED_SUITES,
    CryptoSuite,
    SrtpContext,
    SrtpKey,
    suite_named,
)
from sipedge.media._values import (
    DEFAULT_LIMITS,
    DROP_REASONS,
    END_REASONS,
    MODE_PAIRS,
    DirectionStats,
    LegPolicy,
    MediaLimits,
    MediaMode,
    MediaOffer,
    Party,
    RelayAllocation,
    RelayEndpoint,
    RelayPolicy,
    RelayStats,
    SdesCrypto,
    SessionEnd,
    SessionStats,
    StreamAllocation,
    StreamOffer,
)

if TYPE_CHECKING:
    from sipedge.media._control_server import ControlServerFactory
    from sipedge.media._leg import RelayLeg
    from sipedge.media._ports import MAX_DATAGRAM_SIZE, PortAllocator
    from sipedge.media._relay import DEFAULT_INTERFACE, MediaRelay
    from sipedge.media._remote import RemoteMediaRelay
    from sipedge.media._session import RelaySession, RelayStream

# The Twisted side, loaded on first use.
_LAZY = {
    "ControlServerFactory": "sipedge.media._control_server",
    "RemoteMediaRelay": "sipedge.media._remote",
    "DEFAULT_INTERFACE": "sipedge.media._relay",
    "MAX_DATAGRAM_SIZE": "sipedge.media._ports",
    "MediaRelay": "sipedge.media._relay",
    "PortAllocator": "sipedge.media._ports",
    "RelayLeg": "sipedge.media._leg",
    "RelaySession": "sipedge.media._session",
    "RelayStream": "sipedge.media._session",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "CRYPTO_SUITES",
    "DEFAULT_INTERFACE",
    "DEFAULT_INTERNAL_NETWORKS",
    "DEFAULT_LIMITS",
    "DROP_REASONS",
    "END_REASONS",
    "MAX_DATAGRAM_SIZE",
    "MAX_PROTECT_RTCP_SIZE",
    "MAX_PROTECT_SIZE",
    "MAX_UNPROTECT_SIZE",
    "METHODS",
    "MODE_PAIRS",
    "RTCP_HEADER_SIZE",
    "RTP_HEADER_SIZE",
    "SUPPORTED_SUITES",
    "CallBudget",
    "ControlAddress",
    "ControlProtocolError",
    "ControlServerFactory",
    "CryptoSuite",
    "DirectionStats",
    "Exchange",
    "LegPolicy",
    "MediaConfig",
    "MediaError",
    "MediaLimits",
    "MediaMode",
    "MediaOffer",
    "MediaOfferError",
    "MediaRelay",
    "OfferAnswerAction",
    "OfferAnswerError",
    "OfferAnswerInput",
    "OfferAnswerState",
    "OriginVersions",
    "Party",
    "PortAllocator",
    "PortsExhausted",
    "RelayAllocation",
    "RelayEndpoint",
    "RelayLeg",
    "RelayPolicy",
    "RelayServiceConfig",
    "RelaySession",
    "RelayStats",
    "RelayStream",
    "RelayTimeout",
    "RelayUnavailable",
    "RemoteMediaRelay",
    "ReofferUnsupported",
    "RtcpHeader",
    "RtpHeader",
    "RtpParseError",
    "SdesCrypto",
    "SdesError",
    "SessionEnd",
    "SessionExists",
    "SessionStats",
    "SrtpContext",
    "SrtpError",
    "SrtpKey",
    "StreamAllocation",
    "StreamOffer",
    "UnknownSession",
    "build_rtcp",
    "build_rtp",
    "client_proof",
    "encode_message",
    "encode_value",
    "has_keys",
    "is_rtcp",
    "is_valid_rtcp",
    "is_valid_rtp",
    "media_family",
    "nat_source",
    "offer_of",
    "offers_srtp",
    "parse_media_config",
    "parse_relay_config",
    "reject",
    "rewrite",
    "server_proof",
    "suite_named",
    "welcome_message",
]
