# -*- test-case-name: sipedge.test.test_media_srtp -*-
"""
SRTP (RFC 3711) with SDES keys (RFC 4568), on pylibsrtp.

 - L{CryptoSuite}: the suites, as a frozen table (SDES name, pylibsrtp
   profile, key and salt lengths), cf. aiortc's C{SRTPProtectionProfile}.
   L{SUPPORTED_SUITES} holds those the installed libsrtp can use, probed at
   import.
 - L{SrtpKey}: a master key and salt for one suite, from or to an SDES
   C{inline:} key parameter.
 - L{SrtpContext}: one endpoint's keys, for both directions: C{unprotect}
   what it sends us, C{protect} what we send it (RTP or RTCP, told apart
   with L{is_rtcp}).

No Twisted here: the relay legs call these synchronously per packet.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import attrs
import pylibsrtp

from sipedge.error import MessageParseError
from sipedge.media._errors import SdesError, SrtpError
from sipedge.message import KeyParam

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "CRYPTO_SUITES",
    "MAX_PROTECT_RTCP_SIZE",
    "MAX_PROTECT_SIZE",
    "MAX_UNPROTECT_SIZE",
    "SUPPORTED_SUITES",
    "CryptoSuite",
    "SrtpContext",
    "SrtpKey",
    "check_session_params",
    "suite_named",
]

# pylibsrtp works in a fixed 1500-byte buffer per Session and keeps room for
# the longest trailer libsrtp may append (tag 16 + MKI 128; SRTCP adds the
# 4-byte index): longer packets raise ValueError there. We check first, so
# the limits are ours to count and name.
_BUFFER = 1500
#: The longest RTP packet L{SrtpContext.protect} accepts.
MAX_PROTECT_SIZE = _BUFFER - (16 + 128)
#: The longest RTCP packet L{SrtpContext.protect} accepts.
MAX_PROTECT_RTCP_SIZE = _BUFFER - (4 + 16 + 128)
#: The longest SRTP/SRTCP packet L{SrtpContext.unprotect} accepts.
MAX_UNPROTECT_SIZE = _BUFFER

#: RFC 4568 6.3.1 session parameters we can honour (the window size hint
#: only advises); a crypto line with any other is refused.
_HONOURED_SESSION_PARAMS = ("WSH=",)

_REPLAY_WINDOW = 1024


@attrs.frozen
class CryptoSuite:
    """
    One SRTP crypto suite, as SDES names it and pylibsrtp builds it.

    @ivar name: the SDES name (RFC 4568 6.2, RFC 7714 14.2).
    @ivar profile: the C{pylibsrtp.Policy.SRTP_PROFILE_*} constant.
    @ivar key_length: master key bytes.
    @ivar salt_length: master salt bytes.
    @ivar rtp_overhead: bytes SRTP adds to an RTP packet (the auth tag).
    @ivar rtcp_overhead: bytes SRTCP adds to an RTCP packet (E-flag and
        index, and the tag).
    """

    name: str
    profile: int
    key_length: int
    salt_length: int
    rtp_overhead: int
    rtcp_overhead: int

    @property
    def master_length(self) -> int:
        """Bytes of the SDES key parameter: key then salt."""
        return self.key_length + self.salt_length

    def __str__(self) -> str:
        return self.name


_P = pylibsrtp.Policy
AES_CM_128_HMAC_SHA1_80 = CryptoSuite(
    "AES_CM_128_HMAC_SHA1_80", _P.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14, 10, 14
)
# RFC 4568 6.2.2: the 32-bit tag is for SRTP only; SRTCP keeps 80 bits.
AES_CM_128_HMAC_SHA1_32 = CryptoSuite(
    "AES_CM_128_HMAC_SHA1_32", _P.SRTP_PROFILE_AES128_CM_SHA1_32, 16, 14, 4, 14
)
AEAD_AES_128_GCM = CryptoSuite(
    "AEAD_AES_128_GCM", _P.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12, 16, 20
)
AEAD_AES_256_GCM = CryptoSuite(
    "AEAD_AES_256_GCM", _P.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12, 16, 20
)

#: Every suite sipedge knows, in the order it prefers them when it offers.
CRYPTO_SUITES: tuple[CryptoSuite, ...] = (
    AES_CM_128_HMAC_SHA1_80,
    AES_CM_128_HMAC_SHA1_32,
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
)


def _usable(suite: CryptoSuite) -> bool:
    try:
        _P(srtp_profile=suite.profile)
    except pylibsrtp.Error:
        return False
    return True


#: The suites the installed libsrtp can use (the GCM ones need libsrtp
#: built with them), probed at import; same order as L{CRYPTO_SUITES}.
SUPPORTED_SUITES: tuple[CryptoSuite, ...] = tuple(s for s in CRYPTO_SUITES if _usable(s))

_BY_NAME = {suite.name: suite for suite in CRYPTO_SUITES}


def suite_named(name: str) -> CryptoSuite:
    """
    The supported suite with SDES name C{name} (case-sensitive, as RFC
    4568 9.2 defines the names).

    @raise SdesError: for a name that is unknown or not supported here.
    """
    suite = _BY_NAME.get(name)
    if suite is None:
        raise SdesError(f"unknown SRTP crypto suite {name!r}")
    if suite not in SUPPORTED_SUITES:
        raise SdesError(f"SRTP crypto suite {name} is not supported by this libsrtp")
    return suite


def check_session_params(session_params: str | None) -> None:
    """
    Refuse RFC 4568 6.3 session parameters the relay cannot honour
    (UNENCRYPTED_SRTP, UNAUTHENTICATED_SRTP, KDR, FEC_ORDER, ...).

    @raise SdesError: for one of them.
    """
    if not session_params:
        return
    for param in session_params.split():
        if not param.upper().startswith(_HONOURED_SESSION_PARAMS):
            raise SdesError(f"SDES session parameter {param!r} is not supported")


@attrs.frozen
class SrtpKey:
    """
    A master key and master salt for one suite (the value of an SDES
    C{inline:} key parameter). Its C{repr} never shows the key.
    """

    suite: CryptoSuite
    material: bytes = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if len(self.material) != self.suite.master_length:
            raise SdesError(
                f"{self.suite.name} needs {self.suite.master_length} bytes of key and salt, "
                f"not {len(self.material)}"
            )

    @classmethod
    def from_sdes(cls, key_params: str, suite: CryptoSuite) -> SrtpKey:
        """
        Parse C{inline:<base64 key||salt>[|lifetime][|MKI:length]} (RFC
        4568 6.1, 9.2). A lifetime is accepted and ignored (libsrtp keeps
        its own limits).

        @raise SdesError: for another key method, bad base64, an MKI
            (pylibsrtp cannot use one), several key parameters, or a key
            and salt of the wrong length for C{suite}.
        """
        if ";" in key_params:
            raise SdesError("several SDES key parameters need MKIs, which are not supported")
        try:
            param = KeyParam.parse(key_params)
            if param.mki is not None:
                raise SdesError("SDES keys with an MKI are not supported")
            material = param.key_salt_bytes()
        except MessageParseError as e:
            raise SdesError(e.reason) from None
        return cls(suite, material)

    @classmethod
    def generate(
        cls, suite: CryptoSuite, random: Callable[[int], bytes] = os.urandom
    ) -> SrtpKey:
        """A new key and salt for C{suite} from C{random} (C{os.urandom})."""
        return cls(suite, random(suite.master_length))

    def to_sdes(self) -> str:
        """The SDES key parameter, C{inline:<base64>} (no lifetime, no MKI)."""
        return "inline:" + base64.b64encode(self.material).decode("ascii")


def _policy(key: SrtpKey, ssrc_type: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(
        key=key.material, ssrc_type=ssrc_type, srtp_profile=key.suite.profile
    )
    policy.allow_repeat_tx = True
    policy.window_size = _REPLAY_WINDOW
    return policy


def _reason(error: pylibsrtp.Error) -> str:
    text = str(error)
    if text == "authentication failure":
        return "srtp-auth"
    if text.startswith("replay check failed") or text == "packet index is too old to consider":
        return "srtp-replay"
    if text in ("unsupported parameter", "error parsing data"):
        return "malformed"
    return "srtp-error"


class SrtpContext:
    """
    One endpoint's SRTP: what it sends us is unprotected with its key
    (C{inbound}), what we send it is protected with ours (C{outbound}), as
    aiortc's C{_setup_srtp} does: one libsrtp session per direction,
    C{SSRC_ANY_INBOUND}/C{SSRC_ANY_OUTBOUND}, replay window 1024, repeated
    transmissions allowed (a relay forwards retransmissions as they come).

    Not thread-safe: pylibsrtp shares one buffer per session.

    @ivar counts: failures by drop reason (C{"srtp-auth"}, C{"srtp-replay"},
        C{"too-long"}, C{"malformed"}, C{"srtp-error"}).
    """

    def __init__(self, inbound: SrtpKey | None, outbound: SrtpKey | None) -> None:
        """
        @param inbound: the endpoint's key (its a=crypto); C{None} if we
            never unprotect.
        @param outbound: our key towards it; C{None} if we never protect.
        """
        self.inbound = inbound
        self.outbound = outbound
        self.counts: dict[str, int] = {}
        self._rx = (
            pylibsrtp.Session(_policy(inbound, _P.SSRC_ANY_INBOUND))
            if inbound is not None
            else None
        )
        self._tx = (
            pylibsrtp.Session(_policy(outbound, _P.SSRC_ANY_OUTBOUND))
            if outbound is not None
            else None
        )

    def __repr__(self) -> str:
        suites = (
            self.inbound.suite.name if self.inbound else None,
            self.outbound.suite.name if self.outbound else None,
        )
        return f"<SrtpContext in={suites[0]} out={suites[1]}>"

    def _fail(self, reason: str, message: str) -> SrtpError:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        return SrtpError(message, reason)

    def protect(self, packet: bytes) -> bytes:
        """
        SRTP (or SRTCP, by L{is_rtcp}) for C{packet}.

        @raise SrtpError: if it cannot be protected; C{reason} is
            C{"too-long"} over L{MAX_PROTECT_SIZE} (L{MAX_PROTECT_RTCP_SIZE}
            for RTCP). The failure is counted in L{counts}.
        """
        tx = self._tx
        if tx is None:
            raise self._fail("srtp-error", "no outbound key")
        size = len(packet)
        try:
            if size >= 2 and 192 <= packet[1] <= 223:  # _rtp.is_rtcp, inlined
                if size > MAX_PROTECT_RTCP_SIZE:
                    raise self._fail("too-long", f"{size}-byte RTCP packet is too long")
                return tx.protect_rtcp(packet)
            if size > MAX_PROTECT_SIZE:
                raise self._fail("too-long", f"{size}-byte RTP packet is too long")
            return tx.protect(packet)
        except pylibsrtp.Error as e:
            raise self._fail(_reason(e), str(e)) from None

    def unprotect(self, packet: bytes) -> bytes:
        """
        RTP (or RTCP) from the SRTP (SRTCP) C{packet}, authenticated and
        checked against the replay window.

        @raise SrtpError: if it does not authenticate (C{"srtp-auth"}), is
            a replay (C{"srtp-replay"}), is over L{MAX_UNPROTECT_SIZE}
            (C{"too-long"}) or cannot be parsed (C{"malformed"}); counted.
        """
        rx = self._rx
        if rx is None:
            raise self._fail("srtp-error", "no inbound key")
        size = len(packet)
        if size > MAX_UNPROTECT_SIZE:
            raise self._fail("too-long", f"{size}-byte SRTP packet is too long")
        try:
            if size >= 2 and 192 <= packet[1] <= 223:
                return rx.unprotect_rtcp(packet)
            return rx.unprotect(packet)
        except pylibsrtp.Error as e:
            raise self._fail(_reason(e), str(e)) from None
