# -*- test-case-name: sipedge.test.test_message_sdp -*-
"""
The SDP grammar (RFC 8866 9) shared by the line views: token and number
patterns, address checks, and the error helpers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sipedge.error import MessageParseError

_TYPE_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_EOLS = ("\r\n", "\n", "")
# RFC 8866 9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39
#                        / %x41-5A / %x5E-7E
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_PORT_RE = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_NUM5_RE = re.compile(r"[0-9]{1,5}")
_IP4_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
_MULTICAST_RE = re.compile(r"[0-9]{1,10}(?:/[0-9]{1,10})?")
_VERSION_RE = re.compile(r"[0-9]{1,64}")
_TAG_RE = re.compile(r"[0-9]{1,9}")
_PT_RE = re.compile(r"[0-9]{1,3}")
_CLOCK_RE = re.compile(r"[0-9]{1,10}")
_PTIME_RE = re.compile(r"([0-9]{1,9})(\.[0-9]{1,9})?")
_KEY_SALT_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LIFETIME_RE = re.compile(r"(?:2\^)?[0-9]+")
_MKI_RE = re.compile(r"([0-9]{1,128}):([0-9]{1,3})")
_WS = " \t"

# attrs.field arguments typed Any, for the SDP classes' converted fields: a
# compiled build (mypyc) checks the value of "x: T = attrs.field(...)"
# against T when the class body runs, and attrs.field returns its marker
# there. Typed Any (a default, or no validator), the call is not checked;
# attrs and mypy see the same field (as in _via.py).
_NO_VALIDATOR: Any = None
_NO_ITEMS: Any = ()



_V = TypeVar("_V")


def _error(reason: str) -> MessageParseError:
    return MessageParseError(reason, status_hint=400)


def _show(text: str) -> str:
    """C{text} for an error reason: repr'd, cut at 40 characters."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def _port(text: str, what: str) -> int:
    if _NUM5_RE.fullmatch(text) is None:
        raise _error(f"bad {what} {_show(text)}")
    port = int(text)
    if port > 65535:
        raise _error(f"{what} {port} out of range 0..65535")
    return port


def _is_hostname(text: str) -> bool:
    """
    True for a host name (RFC 8866 9 FQDN; RFC 1123 labels): dot-separated
    labels of letters, digits and inner hyphens, the last one not numeric.
    """
    if not text or len(text) > 255:
        return False
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    for label in labels:
        if len(label) > 63 or _LABEL_RE.fullmatch(label) is None:
            return False
    return not labels[-1].isdigit()


def _check_address(addrtype: str, address: str) -> None:
    """
    Check a unicast or multicast address (without C{/ttl/count}) of address
    type C{IP4} or C{IP6} (RFC 8866 5.7). IPv6 literals are not bracketed in
    SDP (RFC 5118 4.6).
    """
    if addrtype == "IP4":
        m = _IP4_RE.fullmatch(address)
        if m is not None:
            if all(int(octet) <= 255 for octet in m.groups()):
                return
            raise _error(f"bad IP4 address {_show(address)}")
        if _is_hostname(address):
            return
        raise _error(f"bad IP4 address or host name {_show(address)}")
    if address.startswith("["):
        raise _error(f"IP6 address must not be bracketed in SDP: {_show(address)}")
    if ":" in address:
        if "%" not in address and len(address) <= 45:
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                pass
            else:
                return
        raise _error(f"bad IP6 address {_show(address)}")
    if _is_hostname(address):
        return
    raise _error(f"bad IP6 address or host name {_show(address)}")


def _attr_name(value: str) -> str:
    """The name of the attribute in an C{a=} line's value."""
    return value.partition(":")[0].strip(_WS)


def _checked(view: _V, parse: Callable[[str], _V], text: str) -> str:
    """
    Return C{text}, the canonical form of C{view}, after checking it parses
    back to an equal value.

    @raise ValueError: if it does not, i.e. C{view} holds values that cannot
        be written as valid SDP.
    """
    try:
        again = parse(text)
    except MessageParseError as e:
        raise ValueError(f"{view!r} is not valid SDP ({e.reason})") from None
    if again != view:
        raise ValueError(f"{view!r} does not survive writing as {text!r}")
    return text


def _str_tuple(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)
