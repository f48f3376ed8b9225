"""
The sans-IO SIP message core: parse, inspect, change and serialize SIP
messages and their header values (RFC 3261, RFC 8866 SDP). Uses the
standard library and attrs only: no Twisted, no sockets, no clock.
"""

from sipedge.message._address import (
    STAR,
    NameAddress,
    Star,
    parse_contact,
    parse_name_addr,
    parse_name_addr_list,
    quote_text,
)
from sipedge.message._auth import (
    AuthenticationInfo,
    AuthHeader,
    DigestChallenge,
    DigestCredentials,
    parse_auth_header,
    parse_authentication_info,
)
from sipedge.message._branch import BRANCH_PREFIX, branch_digest, digest_of_branch, make_branch
from sipedge.message._build import COMPILED, compiled_modules
from sipedge.message._check import KNOWN_METHODS, check_request, check_response
from sipedge.message._cut import cut_top_via
from sipedge.message._fields import CSeq, parse_cseq, parse_option_tags, parse_uint
from sipedge.message._headers import COMPACT_FORMS, Headers, canonical_name, header_key
from sipedge.message._lex import TOKEN_CHARS, split_comma_list, unquote
from sipedge.message._limits import DEFAULT_LIMITS, Limits
from sipedge.message._message import (
    SIP_VERSION,
    Message,
    Request,
    Response,
    carry_views,
    parse_views,
    remember_vias,
)
from sipedge.message._nat import NatVerdict, detect_nat, is_private_address, parse_ip_address
from sipedge.message._parser import (
    KeepAlivePing,
    KeepAlivePong,
    StreamEvent,
    StreamParser,
    is_keepalive,
    parse_datagram,
)
from sipedge.message._sdp import SessionDescription, parse_sdp
from sipedge.message._sdp_crypto import Crypto, KeyParam
from sipedge.message._sdp_lines import (
    Attribute,
    Connection,
    Direction,
    Fmtp,
    Line,
    Media,
    Origin,
    Rtcp,
    RtpMap,
)
from sipedge.message._sdp_section import MediaDescription
from sipedge.message._serializer import serialize
from sipedge.message._sip_uri import SipURI
from sipedge.message._uri import URI, AbsoluteURI, TelURI, parse_sip_uri, parse_uri
from sipedge.message._uri_grammar import escape_user, unescape
from sipedge.message._via import BRANCH_MAGIC_COOKIE, Via, parse_via, parse_via_list

__all__ = [
    "BRANCH_MAGIC_COOKIE",
    "BRANCH_PREFIX",
    "COMPACT_FORMS",
    "COMPILED",
    "DEFAULT_LIMITS",
    "KNOWN_METHODS",
    "SIP_VERSION",
    "STAR",
    "TOKEN_CHARS",
    "URI",
    "AbsoluteURI",
    "Attribute",
    "AuthHeader",
    "AuthenticationInfo",
    "CSeq",
    "Connection",
    "Crypto",
    "DigestChallenge",
    "DigestCredentials",
    "Direction",
    "Fmtp",
    "Headers",
    "KeepAlivePing",
    "KeepAlivePong",
    "KeyParam",
    "Limits",
    "Line",
    "Media",
    "MediaDescription",
    "Message",
    "NameAddress",
    "NatVerdict",
    "Origin",
    "Request",
    "Response",
    "Rtcp",
    "RtpMap",
    "SessionDescription",
    "SipURI",
    "Star",
    "StreamEvent",
    "StreamParser",
    "TelURI",
    "Via",
    "branch_digest",
    "canonical_name",
    "carry_views",
    "check_request",
    "check_response",
    "compiled_modules",
    "cut_top_via",
    "detect_nat",
    "digest_of_branch",
    "escape_user",
    "header_key",
    "is_keepalive",
    "is_private_address",
    "make_branch",
    "parse_auth_header",
    "parse_authentication_info",
    "parse_contact",
    "parse_cseq",
    "parse_datagram",
    "parse_ip_address",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_option_tags",
    "parse_sdp",
    "parse_sip_uri",
    "parse_uint",
    "parse_uri",
    "parse_via",
    "parse_via_list",
    "parse_views",
    "quote_text",
    "remember_vias",
    "serialize",
    "split_comma_list",
    "unescape",
    "unquote",
]
