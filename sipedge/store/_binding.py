# -*- test-case-name: sipedge.test.test_store -*-
"""
Bindings: what the location service (RFC 3261 10) remembers of a REGISTER.

A L{Binding} maps an address-of-record to one contact address, with what a
proxy needs to reach that contact again: the flow the REGISTER arrived on
(so requests go back over the same connection or NAT binding, as SIP
Outbound does, RFC 5626), the Path (RFC 3327) and the Call-ID and CSeq that
order refreshes (RFC 3261 10.3 step 7).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import attrs

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.message import URI, SipURI, escape_user, parse_uri, unescape

__all__ = ["Binding", "aor_of", "binding_order", "same_binding"]


def aor_of(uri: URI | str) -> str:
    """
    The canonical address-of-record of C{uri}, the key of the location
    service (RFC 3261 10.3 step 5): C{scheme:user@host} with the scheme
    kept (C{sip} or C{sips}), the host lower-cased, the user compared
    case-sensitively with its escapes decoded and re-escaped one canonical
    way (so C{sip:%61lice@EXAMPLE.com} and C{sip:alice@example.com} are the
    same AOR), and no password, port, parameters or headers.

    @raise MessageParseError: if C{uri} is not a SIP or SIPS URI (status
        hint 416 for a valid URI of another scheme, 400 for no URI at all).
    """
    if isinstance(uri, str):
        parsed = parse_uri(uri)
    else:
        parsed = uri
    if not isinstance(parsed, SipURI):
        raise MessageParseError(f"not a SIP or SIPS URI: {str(parsed)[:80]!r}", status_hint=416)
    host = parsed.host.lower()
    if parsed.user is None:
        return f"{parsed.scheme}:{host}"
    return f"{parsed.scheme}:{escape_user(unescape(parsed.user))}@{host}"


def _finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, not {value!r}")


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _check_q(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"q must be between 0 and 1, not {value!r}")


@attrs.frozen(kw_only=True)
class Binding:
    """
    One binding of an address-of-record to a contact address.

    @ivar aor: the canonical AOR (L{aor_of}).
    @ivar contact: the Contact URI text exactly as registered (escaped
        headers such as C{?Route=%3C...%3E} kept verbatim, RFC 4475
        regescrt), without the Contact header parameters.
    @ivar expires_at: when the binding expires, in C{clock.seconds()} time.
    @ivar q: the preference, 0 to 1 (RFC 3261 20.10); higher first.
    @ivar call_id: the Call-ID of the REGISTER that created or last
        refreshed it.
    @ivar cseq: that REGISTER's CSeq number.
    @ivar flow: the flow the REGISTER arrived on, or C{None}.
    @ivar path: the Path header values of the REGISTER, in order (RFC 3327).
    @ivar instance: the C{+sip.instance} Contact parameter, unquoted
        (e.g. C{<urn:uuid:...>}), or C{None} (RFC 5626, RFC 5627).
    @ivar reg_id: the C{reg-id} Contact parameter (RFC 5626), or C{None}.
    @ivar user_agent: the User-Agent header of the REGISTER, or C{None}.
    @ivar received: where the REGISTER came from, as a URI
        (C{sip:192.0.2.4:5060;transport=udp}), or C{None}.
    """

    aor: str
    contact: str
    expires_at: float = attrs.field(validator=_finite)
    q: float = attrs.field(default=1.0, converter=float, validator=_check_q)
    call_id: str
    cseq: int
    flow: Flow | None = None
    path: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    instance: str | None = None
    reg_id: int | None = None
    user_agent: str | None = None
    received: str | None = None

    def is_expired(self, now: float) -> bool:
        """True if the binding has expired at C{now}."""
        return self.expires_at <= now

    def expires_in(self, now: float) -> int:
        """
        The whole seconds left at C{now}, for the C{expires} parameter of a
        200 (RFC 3261 10.3 step 8): 0 once expired, at least 1 before.
        """
        left = self.expires_at - now
        if left <= 0:
            return 0
        return max(1, round(left))

    @property
    def contact_uri(self) -> URI:
        """The parsed contact URI."""
        return _parse(self.contact)


@lru_cache(maxsize=4096)
def _parse(text: str) -> URI:
    return parse_uri(text)


def _equivalent(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return _parse(a).equivalent(_parse(b))
    except MessageParseError:
        return False


def same_binding(existing: Binding, new: Binding) -> bool:
    """
    True if C{new} updates (refreshes or removes) the stored C{existing}
    binding of the same AOR.

    A binding registered with C{+sip.instance} is identified by its
    instance and reg-id (RFC 5626 section 6, RFC 5627); any other binding
    by its contact URI, compared with the URI comparison rules (RFC 3261
    10.3 step 7, 19.1.4), so C{sip:%00@h} and C{sip:%00%00@h} are two
    bindings (RFC 4475 escnull).
    """
    if existing.aor != new.aor:
        return False
    if existing.instance is not None:
        return existing.instance == new.instance and existing.reg_id == new.reg_id
    return _equivalent(existing.contact, new.contact)


def binding_order(binding: Binding) -> tuple[float, str, str, int]:
    """
    The sort key of lookups: highest q first (RFC 3261 16.6 forking), then
    a fixed order, so every store answers the same list.
    """
    return (
        -binding.q,
        binding.contact,
        binding.instance or "",
        -1 if binding.reg_id is None else binding.reg_id,
    )
