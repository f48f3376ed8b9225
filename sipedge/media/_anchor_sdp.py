# -*- test-case-name: sipedge.test.test_media_anchor -*-
"""
SDP and the relay's values, for media anchoring (sans-IO: no Twisted).

 - L{offer_of}: a session description as the L{MediaOffer} the relay
   takes (one L{StreamOffer} per m= line);
 - L{rewrite}: a session description with a L{RelayAllocation}'s
   endpoints written in: the offer for party B with the C{b} endpoints,
   the answer for party A with the C{a} endpoints;
 - L{reject}: a session description with every stream rejected and every
   address hidden, for SDP that cannot be anchored;
 - L{OriginVersions}: keeps the o= version one party receives increasing
   (RFC 3264 8) although the SDP it receives is ours.

Only RTP streams (C{RTP/AVP}, C{RTP/AVPF}, C{RTP/SAVP}, C{RTP/SAVPF})
are relayed: any other stream (T.38 C{udptl}, C{UDP/TLS/RTP/SAVP}
(DTLS-SRTP), TCP) goes to the other party with port 0 (rejected), since
the relay forwards RTP and RTCP only. ICE attributes are removed: the
parties must send to the relay, not to each other.
"""

from __future__ import annotations

import ipaddress

import attrs

from sipedge.error import MessageParseError
from sipedge.media._errors import MediaOfferError
from sipedge.media._values import (
    MediaMode,
    MediaOffer,
    RelayAllocation,
    RelayEndpoint,
    RelayPolicy,
    SdesCrypto,
    StreamOffer,
)
from sipedge.message import (
    Connection,
    Crypto,
    MediaDescription,
    Rtcp,
    SessionDescription,
)

__all__ = [
    "ICE_ATTRIBUTES",
    "RTP_PROFILES",
    "OriginVersions",
    "has_keys",
    "is_relayed",
    "media_family",
    "offer_of",
    "offers_srtp",
    "reject",
    "rewrite",
]

#: How many origins L{OriginVersions} remembers.
_ORIGINS = 4

#: The m= protocols the relay carries.
RTP_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"})

#: The ICE attributes (RFC 8839) removed from anchored SDP.
ICE_ATTRIBUTES = (
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
    "ice-pacing",
)


def is_relayed(media: MediaDescription) -> bool:
    """True for an RTP stream that is not rejected (port 0)."""
    return media.port != 0 and media.proto.upper() in RTP_PROFILES


def _address(connection: Connection | None, what: str) -> str:
    if connection is None:
        raise MediaOfferError(f"{what}: no c= line")
    if connection.nettype.upper() != "IN" or connection.addrtype.upper() not in ("IP4", "IP6"):
        raise MediaOfferError(f"{what}: c= is not an IN IP4 or IP6 address")
    try:
        address = ipaddress.ip_address(connection.address)
    except ValueError:
        raise MediaOfferError(f"{what}: c= {connection.address!r} is not an IP address") from None
    if address.is_multicast or connection.ttl_count is not None:
        raise MediaOfferError(f"{what}: multicast media cannot be relayed")
    return str(address)


def _crypto(media: MediaDescription) -> tuple[SdesCrypto, ...]:
    """The a=crypto lines that parse, as the relay's values."""
    out = []
    for value in media.attribute_values("crypto"):
        try:
            crypto = Crypto.parse(value or "")
        except MessageParseError:
            continue
        keys = ";".join(key.to_text() for key in crypto.key_params)
        out.append(SdesCrypto(crypto.tag, crypto.suite, keys, crypto.session_params))
    return tuple(out)


def offer_of(sdp: SessionDescription, policy: RelayPolicy | None = None) -> MediaOffer:
    """
    The relay's view of a session description: one L{StreamOffer} per m=
    line, in order; a stream that is not relayed (L{is_relayed}) has
    port 0. C{policy} goes with an offer, not an answer.

    @raise MediaOfferError: for a relayed stream without an IP address
        (a host name, a multicast group, no c= at all) or with a bad
        a=rtcp.
    """
    streams = []
    for index, media in enumerate(sdp.media):
        if not is_relayed(media):
            streams.append(StreamOffer("0.0.0.0", 0, media=media.media_type))
            continue
        what = f"stream {index} ({media.media_type})"
        host = _address(sdp.media_connection(media), what)
        try:
            rtcp = media.rtcp
        except MessageParseError as e:
            raise MediaOfferError(f"{what}: {e.reason}") from None
        streams.append(
            StreamOffer(
                host,
                media.port,
                None if rtcp is None else rtcp.port,
                media.rtcp_mux,
                _crypto(media),
                media.media_type,
            )
        )
    return MediaOffer(streams, policy)


def media_family(sdp: SessionDescription) -> int | None:
    """
    The IP family (4 or 6) of the address of the first relayed stream
    (the unspecified address of a hold counts), or C{None} when there is
    no such stream or its c= is not an IP address: which of the relay's
    interfaces faces this party (dual stack).
    """
    for media in sdp.media:
        if not is_relayed(media):
            continue
        connection = sdp.media_connection(media)
        if connection is None:
            return None
        try:
            return ipaddress.ip_address(connection.address).version
        except ValueError:
            return None
    return None


def has_keys(sdp: SessionDescription) -> bool:
    """True if a relayed stream carries a=crypto (SDES keys)."""
    return any(is_relayed(m) and m.has_attribute("crypto") for m in sdp.media)


def offers_srtp(sdp: SessionDescription) -> bool:
    """True if a relayed stream is C{RTP/SAVP(F)} with a=crypto."""
    return any(
        is_relayed(m) and "SAVP" in m.proto.upper() and m.has_attribute("crypto") for m in sdp.media
    )


def _unspecified(like: str | None, connection: Connection) -> Connection:
    """The unspecified address of C{like}'s family (else the connection's)."""
    if like is not None:
        six = ":" in like
    else:
        six = connection.addrtype.upper() == "IP6"
    return Connection("IN", "IP6", "::") if six else Connection("IN", "IP4", "0.0.0.0")


def _connection(connection: Connection, host: str | None) -> Connection:
    """
    The c= to write for C{connection} on the relay's C{host}: the relay's
    address, or the unspecified address (of the relay's family) where the
    party wrote one (RFC 3264 8.4 hold) or where there is no relay address.
    """
    if host is None or connection.is_unspecified:
        return _unspecified(host, connection)
    return Connection.for_address(host)


def _origin_family(sdp: SessionDescription, host: str | None) -> SessionDescription:
    """C{sdp} with its o= address the relay's C{host} if o= is of the other IP family."""
    try:
        origin = sdp.origin
    except MessageParseError:
        return sdp
    if host is None or origin is None or origin.nettype.upper() != "IN":
        return sdp
    family = ipaddress.ip_address(host).version
    if origin.addrtype.upper() == f"IP{family}" or origin.addrtype.upper() not in ("IP4", "IP6"):
        return sdp
    return sdp.with_origin(attrs.evolve(origin, addrtype=f"IP{family}", address=host))


def _profile(proto: str, srtp: bool) -> str:
    feedback = proto.upper().endswith("F")
    return ("RTP/SAVP" if srtp else "RTP/AVP") + ("F" if feedback else "")


def _without_ice(sdp: SessionDescription) -> SessionDescription:
    out = sdp.without_attributes(*ICE_ATTRIBUTES)
    for index, media in enumerate(out.media):
        if any(media.has_attribute(name) for name in ICE_ATTRIBUTES):
            out = out.with_media(index, media.without_attributes(*ICE_ATTRIBUTES))
    return out


def rewrite(sdp: SessionDescription, allocation: RelayAllocation, side: str) -> SessionDescription:
    """
    C{sdp} as party C{side} must receive it: with the C{a} endpoints (the
    answer for A, C{side="a"}) or the C{b} endpoints (the offer for B,
    C{side="b"}) of C{allocation}.

    For each relayed stream: the port, the c= lines (session and media
    level; an unspecified address, RFC 3264 hold, stays unspecified, in
    the relay's family), a=rtcp (when the party wrote one, or RTCP is not
    on port + 1, or as the fallback of a=rtcp-mux), a=rtcp-mux, and unless
    the leg is L{MediaMode.PASSTHROUGH} the profile (C{RTP/SAVP} on an SRTP
    leg, C{RTP/AVP} on a plain one; the C{F} of C{AVPF} kept) and the
    a=crypto lines. Streams the relay does not carry get port 0. Every
    other line (direction, codecs, o= but for its version) is kept, but
    for an o= address of the other IP family than the relay's address
    (a call bridged between IPv4 and IPv6): the relay's, so the receiver
    sees one family (baresip 1.0 takes the family of the call from the
    first C{IN IP4}/C{IN IP6} in the body, the o= line's).

    @raise MediaOfferError: if C{sdp} has another number of streams than
        C{allocation}.
    """
    if side not in ("a", "b"):
        raise ValueError(f"side must be 'a' or 'b', not {side!r}")
    if len(sdp.media) != len(allocation.streams):
        raise MediaOfferError(
            f"the description has {len(sdp.media)} streams, the relay {len(allocation.streams)}"
        )
    ends: list[RelayEndpoint] = [getattr(s, side) for s in allocation.streams]
    modes: list[MediaMode] = [getattr(s, side + "_mode") for s in allocation.streams]
    host = next((end.host for end in ends if end.port and end.host), None)
    out = _origin_family(_without_ice(sdp), host)
    if out.connection is not None:
        out = out.with_connection(_connection(out.connection, host))
    for index, (media, end, mode) in enumerate(zip(out.media, ends, modes, strict=True)):
        if not is_relayed(media) or not end.port:
            new = media.with_port(0) if media.port else media
            if media.connection is not None:
                new = new.with_connection(_connection(media.connection, host))
            out = out.with_media(index, new)
            continue
        new = media.with_port(end.port)
        if media.connection is not None:
            new = new.with_connection(_connection(media.connection, end.host))
        rtcp = end.rtcp_port
        if rtcp is not None and (
            media.has_attribute("rtcp") or end.rtcp_mux or rtcp != end.port + 1
        ):
            new = new.with_rtcp(Rtcp(rtcp))
        else:
            new = new.with_rtcp(None)
        new = new.with_rtcp_mux(end.rtcp_mux)
        if mode is not MediaMode.PASSTHROUGH:
            new = new.with_proto(_profile(media.proto, mode.srtp))
            new = new.with_crypto(Crypto.parse(c.to_value()) for c in end.crypto)
        out = out.with_media(index, new)
    return out


def reject(sdp: SessionDescription) -> SessionDescription:
    """
    C{sdp} with every stream rejected (port 0), every address unspecified,
    and no a=crypto, a=rtcp or ICE attribute left: for SDP the relay
    cannot anchor (a refused answer, a dialog other than the anchored one),
    so that nothing of the other party leaks and no media flows around
    the relay.
    """
    out = _without_ice(sdp)
    if out.connection is not None:
        out = out.with_connection(_connection(out.connection, None))
    for index, media in enumerate(out.media):
        new = media.with_port(0) if media.port else media
        if media.connection is not None:
            new = new.with_connection(_connection(media.connection, None))
        out = out.with_media(index, new.with_crypto(()).with_rtcp(None))
    return out


@attrs.define
class OriginVersions:
    """
    The o= lines one party receives from us: RFC 3264 8 wants the version
    of each new description one more than the last, and the same for an
    unchanged one. The SDP we send is the other party's rewritten, so
    L{stamp} numbers it from what we sent before with that origin: the
    first description of an origin gets the party's version plus one (we
    changed it), each changed one the last plus one, an unchanged one (a
    retransmission, the answer of a 183 repeated in the 200) the last
    again. The last few origins are remembered (forks answer with their
    own).
    """

    _sent: dict[tuple[str, ...], tuple[int, bytes]] = attrs.Factory(dict)

    def stamp(self, sdp: SessionDescription) -> SessionDescription:
        """C{sdp} with the o= version it must carry; remembered as sent."""
        try:
            origin = sdp.origin
        except MessageParseError:
            return sdp
        if origin is None:
            return sdp
        identity = (
            origin.username,
            origin.sess_id,
            origin.nettype,
            origin.addrtype,
            origin.address,
        )
        content = sdp.with_origin(attrs.evolve(origin, sess_version=0)).to_bytes()
        sent = self._sent.pop(identity, None)
        if sent is None:
            version = origin.sess_version + 1
        elif sent[1] == content:
            version = sent[0]
        else:
            version = sent[0] + 1
        self._sent[identity] = (version, content)
        while len(self._sent) > _ORIGINS:
            del self._sent[next(iter(self._sent))]
        return sdp.with_origin(attrs.evolve(origin, sess_version=version))
