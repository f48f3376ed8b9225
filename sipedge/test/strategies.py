"""
Hypothesis strategies shared by the sipedge tests.

Each section generates one kind of protocol element; keep new strategies in
the section they belong to (or add a section), with a docstring saying what
they generate and which grammar they follow.
"""

from __future__ import annotations

import ipaddress
import string
from typing import Any

from hypothesis import strategies as st

from sipedge.message import TOKEN_CHARS, SipURI

__all__ = [
    "absolute_uri_texts",
    "decoded_text",
    "hostnames",
    "hosts",
    "ipv4_addresses",
    "ipv6_references",
    "sip_uri_texts",
    "sip_uris",
    "tel_uri_texts",
    "tokens",
]


# --------------------------------------------------------------------------
# Text as the parsers see it
# --------------------------------------------------------------------------


def decoded_text() -> st.SearchStrategy[str]:
    """
    Any C{str} a parser may be given: arbitrary text, and arbitrary bytes
    decoded as UTF-8 with C{surrogateescape} (so with lone surrogates).
    """
    return st.one_of(
        st.text(),
        st.binary().map(lambda data: data.decode("utf-8", "surrogateescape")),
    )


# --------------------------------------------------------------------------
# Lexical pieces (RFC 3261 section 25.1)
# --------------------------------------------------------------------------

_TOKEN_ALPHABET = "".join(sorted(TOKEN_CHARS))
_ALPHANUM = string.ascii_letters + string.digits
# unreserved  =  alphanum / mark
_UNRESERVED = _ALPHANUM + "-_.!~*'()"
# user (user-unreserved added)
_USER_ALPHABET = _UNRESERVED + "&=+$,;?/"
# password
_PASSWORD_ALPHABET = _UNRESERVED + "&=+$,"
# paramchar (param-unreserved added)
_PARAM_ALPHABET = _UNRESERVED + "[]/:&+$"
# hname / hvalue (hnv-unreserved added)
_HEADER_ALPHABET = _UNRESERVED + "[]/?:+$"


def tokens(min_size: int = 1, max_size: int = 16) -> st.SearchStrategy[str]:
    """RFC 3261 C{token}s."""
    return st.text(alphabet=_TOKEN_ALPHABET, min_size=min_size, max_size=max_size)


def _escapes() -> st.SearchStrategy[str]:
    """C{escaped = "%" HEXDIG HEXDIG}, with either case of hex digits."""
    return st.builds(
        lambda octet, upper: f"%{octet:02X}" if upper else f"%{octet:02x}",
        st.integers(0, 255),
        st.booleans(),
    )


def _escaped_text(alphabet: str, min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    """Text of characters from C{alphabet} and C{%HH} escapes."""
    return st.lists(
        st.one_of(st.sampled_from(alphabet), _escapes()),
        min_size=min_size,
        max_size=max_size,
    ).map("".join)


# --------------------------------------------------------------------------
# Hosts (RFC 3261 section 25.1, RFC 5118)
# --------------------------------------------------------------------------


def _labels(first: str) -> st.SearchStrategy[str]:
    """C{first *( alphanum / "-" ) alphanum} or a single C{first} character."""
    return st.one_of(
        st.sampled_from(first),
        st.builds(
            lambda a, middle, z: a + middle + z,
            st.sampled_from(first),
            st.text(alphabet=_ALPHANUM + "-", max_size=8),
            st.sampled_from(_ALPHANUM),
        ),
    )


def hostnames() -> st.SearchStrategy[str]:
    """
    C{hostname = *( domainlabel "." ) toplabel [ "." ]}, in mixed case, with
    or without the trailing dot.
    """
    return st.builds(
        lambda labels, top, dot: "".join(label + "." for label in labels) + top + dot,
        st.lists(_labels(_ALPHANUM), max_size=4),
        _labels(string.ascii_letters),
        st.sampled_from(["", "", "", "."]),
    )


def ipv4_addresses() -> st.SearchStrategy[str]:
    """Dotted-quad IPv4 addresses."""
    return st.ip_addresses(v=4).map(str)


def _ipv6_text(address: ipaddress.IPv6Address, form: int, upper: bool) -> str:
    """
    One way to write C{address}: compressed (0), exploded (1), with the last
    32 bits as an IPv4 address (2), the same compressed (3), or compressed
    in the three-colon form the RFC 3261 ABNF allows (4, RFC 5118 4.9).
    """
    if form == 0:
        text = address.compressed
    elif form == 1:
        text = address.exploded
    else:
        packed = address.packed
        groups = [f"{packed[i] << 8 | packed[i + 1]:x}" for i in range(0, 12, 2)]
        ipv4 = ".".join(str(octet) for octet in packed[12:])
        if form == 2 or "0" not in groups:
            text = ":".join(groups) + ":" + ipv4
        else:
            start = end = groups.index("0")
            while end < len(groups) and groups[end] == "0":
                end += 1
            hexpart = ":".join(groups[:start]) + "::" + ":".join(groups[end:])
            if hexpart.endswith("::") and form == 3:
                text = hexpart + ipv4
            else:
                text = hexpart + ":" + ipv4
    return text.upper() if upper else text


def _ipv6_addresses() -> st.SearchStrategy[ipaddress.IPv6Address]:
    """IPv6 addresses, many of them with runs of zero groups."""
    return st.one_of(
        st.ip_addresses(v=6),
        st.lists(st.sampled_from([0, 0, 0, 0, 1, 0x0D, 0x20, 0xFF]), min_size=16, max_size=16)
        .map(bytes)
        .map(ipaddress.IPv6Address),
    )


def ipv6_references() -> st.SearchStrategy[str]:
    """
    C{IPv6reference = "[" IPv6address "]"}: compressed, exploded, with a
    trailing IPv4 address, and the three-colon form of RFC 5118 4.9.
    """
    return st.builds(_ipv6_text, _ipv6_addresses(), st.integers(0, 4), st.booleans()).map(
        lambda address: f"[{address}]"
    )


def hosts() -> st.SearchStrategy[str]:
    """C{host = hostname / IPv4address / IPv6reference}."""
    return st.one_of(hostnames(), ipv4_addresses(), ipv6_references())


# --------------------------------------------------------------------------
# URIs (RFC 3261 section 19.1, RFC 3966, RFC 2396)
# --------------------------------------------------------------------------


@st.composite
def _sip_uri_parts(draw: Any) -> dict[str, Any]:
    """The components of a SIP or SIPS URI, raw (escaped)."""
    user = draw(st.none() | _escaped_text(_USER_ALPHABET))
    password = None
    if user is not None:
        password = draw(st.none() | _escaped_text(_PASSWORD_ALPHABET, min_size=0))
    return {
        "scheme": draw(st.sampled_from(["sip", "sips"])),
        "user": user,
        "password": password,
        "host": draw(hosts()),
        "port": draw(st.none() | st.integers(0, 65535)),
        "params": tuple(
            draw(
                st.lists(
                    st.tuples(
                        _escaped_text(_PARAM_ALPHABET),
                        st.none() | _escaped_text(_PARAM_ALPHABET),
                    ),
                    max_size=4,
                )
            )
        ),
        "headers": tuple(
            draw(
                st.lists(
                    st.tuples(
                        _escaped_text(_HEADER_ALPHABET),
                        _escaped_text(_HEADER_ALPHABET, min_size=0),
                    ),
                    max_size=3,
                )
            )
        ),
    }


def sip_uris() -> st.SearchStrategy[SipURI]:
    """
    L{SipURI} values with escaped user parts and passwords, hostnames, IPv4
    and IPv6 references, ports, parameters with and without values, and
    headers.
    """
    return _sip_uri_parts().map(lambda parts: SipURI(**parts))


@st.composite
def sip_uri_texts(draw: Any) -> str:
    """
    The text of valid SIP and SIPS URIs, written independently of
    L{SipURI}, with the scheme in any case and ports with leading zeros.
    """
    parts = draw(_sip_uri_parts())
    scheme = "".join(c.upper() if draw(st.booleans()) else c for c in parts["scheme"])
    text = scheme + ":"
    if parts["user"] is not None:
        text += parts["user"]
        if parts["password"] is not None:
            text += ":" + parts["password"]
        text += "@"
    text += parts["host"]
    if parts["port"] is not None:
        text += ":" + "0" * draw(st.integers(0, 2)) + str(parts["port"])
    for name, value in parts["params"]:
        text += f";{name}" if value is None else f";{name}={value}"
    if parts["headers"]:
        text += "?" + "&".join(f"{name}={value}" for name, value in parts["headers"])
    return text


@st.composite
def tel_uri_texts(draw: Any) -> str:
    """The text of valid RFC 3966 tel URIs, global and local."""
    separators = "-.()"
    if draw(st.booleans()):
        number = (
            "+"
            + draw(st.text(alphabet=string.digits + separators, max_size=8))
            + draw(st.sampled_from(string.digits))
        )
        params = []
    else:
        number = draw(st.text(alphabet=string.hexdigits + "*#" + separators, max_size=8)) + draw(
            st.sampled_from(string.hexdigits + "*#")
        )
        context = draw(
            hostnames() | st.builds(lambda digits: "+" + digits, st.text(string.digits, min_size=1))
        )
        params = [("phone-context", context)]
    params += draw(
        st.lists(
            st.tuples(
                st.text(alphabet=_ALPHANUM + "-", min_size=1, max_size=8),
                st.none() | _escaped_text(_PARAM_ALPHABET),
            ),
            max_size=3,
        )
    )
    params = draw(st.permutations(params))
    return (
        "tel:"
        + number
        + "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)
    )


def absolute_uri_texts() -> st.SearchStrategy[str]:
    """
    The text of C{absoluteURI}s of schemes other than sip, sips and tel:
    C{scheme ":" opaque}.
    """
    opaque_alphabet = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"<>')
    return st.builds(
        lambda first, rest, opaque: f"{first}{rest}:{opaque}",
        st.sampled_from(string.ascii_letters),
        st.text(alphabet=_ALPHANUM + "+-.", max_size=8),
        st.text(alphabet=opaque_alphabet, min_size=1, max_size=20),
    ).filter(lambda text: text.partition(":")[0].lower() not in ("sip", "sips", "tel"))
