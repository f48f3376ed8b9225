# -*- test-case-name: sipedge.test.test_message_message -*-
"""
SIP requests and responses as immutable values (RFC 3261 section 7).

A message holds its start line, its L{Headers} and its body as bytes.
Content-Length is framing, not content: the parser checks it and drops it
from the headers, and the serializer always writes the right one, so a
changed body can never go out with a stale length.

Typed views (L{Message.vias}, L{Message.cseq}, ...) parse on first use and
are cached; they raise L{MessageParseError} when the field is malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import attrs

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.message._address import STAR, parse_contact, parse_name_addr, parse_name_addr_list
from sipedge.message._fields import parse_cseq, parse_option_tags, parse_uint
from sipedge.message._headers import Headers, header_key
from sipedge.message._uri import parse_uri
from sipedge.message._via import parse_via_list

_T = TypeVar("_T")


class cached_property(Generic[_T]):
    """
    Like C{functools.cached_property}, without its lock: Python 3.11's takes
    an RLock on every first access, and a proxy reads views on many
    short-lived derived messages. The value goes into the instance's
    C{__dict__} (messages are frozen attrs classes without slots), after
    which this non-data descriptor is no longer consulted.
    """

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        # A compiled build (mypyc) passes a native callable without
        # __name__; __set_name__ names the view in either build.
        self.name = getattr(func, "__name__", "")
        self.__doc__ = getattr(func, "__doc__", None)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> cached_property[_T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value


# A proxy derives many messages from one (stamped, forwarded, answered):
# they share the same header value strings, whose hashes Python keeps, so
# memoizing the parsers of the fields read on every message is one dict
# look-up instead of a parse. The values are frozen, so sharing is safe;
# errors are not cached (they raise again).
# Via values by their text, first in first out past 4,096: a dict rather
# than an lru_cache, so that a proxy can put in the Vias it writes itself
# (L{remember_vias}) and the responses that carry them back find them.
_VIA_MEMO: dict[str, tuple[Via, ...]] = {}
_VIA_MEMO_SIZE = 4096
_VIA_MEMO_TEXT = 512


def _parse_via_list(text: str) -> tuple[Via, ...]:
    vias = _VIA_MEMO.get(text)
    if vias is None:
        vias = parse_via_list(text)
        remember_vias(text, vias)
    return vias


def remember_vias(text: str, vias: tuple[Via, ...]) -> None:
    """
    Memoize C{vias} as what a Via field C{text} parses to. The caller
    vouches for it: C{parse_via_list(text) == vias}. A text over 512
    characters is not kept: a flood of long Vias holds a few MB at most.
    """
    if len(text) > _VIA_MEMO_TEXT:
        return
    if len(_VIA_MEMO) >= _VIA_MEMO_SIZE:
        del _VIA_MEMO[next(iter(_VIA_MEMO))]
    _VIA_MEMO[text] = vias
_parse_name_addr = lru_cache(maxsize=4096)(parse_name_addr)
_parse_cseq = lru_cache(maxsize=1024)(parse_cseq)
# A phone's Contact is the same in every request it sends, and the Route
# set of a dialog the same in each of its requests.
_parse_name_addr_list = lru_cache(maxsize=4096)(parse_name_addr_list)
_parse_contact = lru_cache(maxsize=4096)(parse_contact)



# Each view from the values of its field (one per field line, in order), so
# that a view read alone and L{parse_views} give the same value or error.


def _single_of(values: tuple[str, ...] | list[str], name: str) -> str:
    if not values:
        raise MessageParseError(f"missing {name} header field")
    if len(values) > 1:
        raise MessageParseError(f"more than one {name} header field")
    return values[0]


def _call_id_of(values: tuple[str, ...] | list[str]) -> str:
    value = _single_of(values, "Call-ID")
    if not value or " " in value or "\t" in value:
        raise MessageParseError("malformed Call-ID")
    return value


def _cseq_of(values: tuple[str, ...] | list[str]) -> CSeq:
    return _parse_cseq(_single_of(values, "CSeq"))


def _vias_of(values: tuple[str, ...] | list[str]) -> tuple[Via, ...]:
    if len(values) == 1:
        return _parse_via_list(values[0])
    out: list[Via] = []
    for value in values:
        out.extend(_parse_via_list(value))
    return tuple(out)


def _from_of(values: tuple[str, ...] | list[str]) -> NameAddress:
    return _parse_name_addr(_single_of(values, "From"))


def _to_of(values: tuple[str, ...] | list[str]) -> NameAddress:
    return _parse_name_addr(_single_of(values, "To"))


def _addresses_of(values: tuple[str, ...] | list[str]) -> tuple[NameAddress, ...]:
    out: list[NameAddress] = []
    for value in values:
        out.extend(_parse_name_addr_list(value))
    return tuple(out)


def _contacts_of(values: tuple[str, ...] | list[str]) -> tuple[NameAddress, ...] | str:
    out: list[NameAddress] = []
    for value in values:
        parsed = _parse_contact(value)
        if parsed is STAR:
            if len(values) > 1:
                raise MessageParseError("wildcard Contact must stand alone")
            return "*"
        out.extend(parsed)
    return tuple(out)


def _max_forwards_of(values: tuple[str, ...] | list[str]) -> int | None:
    if not values:
        return None
    if len(values) > 1:
        raise MessageParseError("more than one Max-Forwards header field")
    return parse_uint(values[0], "Max-Forwards", 255)


def _expires_of(values: tuple[str, ...] | list[str]) -> int | None:
    if not values:
        return None
    return parse_uint(values[0], "Expires", 2**32 - 1)


if TYPE_CHECKING:
    from sipedge.message._address import NameAddress
    from sipedge.message._fields import CSeq
    from sipedge.message._uri import URI
    from sipedge.message._via import Via

__all__ = [
    "SIP_VERSION",
    "Message",
    "Request",
    "Response",
    "carry_views",
    "parse_views",
    "remember_vias",
]

SIP_VERSION = "SIP/2.0"


#: Each cached header view and the header field (its key) it is read from.
_VIEW_FIELDS = (
    ("call_id", "call-id"),
    ("cseq", "cseq"),
    ("vias", "via"),
    ("from_address", "from"),
    ("to_address", "to"),
    ("routes", "route"),
    ("record_routes", "record-route"),
    ("contacts", "contact"),
    ("max_forwards", "max-forwards"),
    ("expires", "expires"),
)


#: Each view's parser, from the values of its field.
_VIEW_PARSERS: dict[str, Callable[[Any], Any]] = {
    "call_id": _call_id_of,
    "cseq": _cseq_of,
    "vias": _vias_of,
    "from_address": _from_of,
    "to_address": _to_of,
    "routes": _addresses_of,
    "record_routes": _addresses_of,
    "contacts": _contacts_of,
    "max_forwards": _max_forwards_of,
    "expires": _expires_of,
}
_VIEW_KEY = dict(_VIEW_FIELDS)
_VIEW_KEYS = frozenset(_VIEW_KEY.values())


def parse_views(message: _Views, views: tuple[str, ...]) -> None:
    """
    Parse the header views named C{views} (of L{carry_views}'s list:
    C{"call_id"}, C{"cseq"}, C{"vias"}, ...), in that order, as reading each
    in turn would: the same values kept, or the same error raised by the
    first that fails (the ones before it kept). One pass over the fields
    gathers the values of all, rather than a look-up per view.

    @raise MessageParseError: if one of them is malformed.
    """
    parsed = message.__dict__
    todo = [name for name in views if name not in parsed]
    if not todo:
        return
    found: dict[str, list[str]] = {}
    for key, _, value in message.headers.fields:
        if key in _VIEW_KEYS:
            values = found.get(key)
            if values is None:
                found[key] = [value]
            else:
                values.append(value)
    for name in todo:
        parsed[name] = _VIEW_PARSERS[name](found.get(_VIEW_KEY[name], ()))


@lru_cache(maxsize=256)
def _carried(changed: str | tuple[str, ...]) -> frozenset[str]:
    """The views a copy keeps when the fields C{changed} differ (named once per spelling)."""
    keys = (header_key(changed),) if isinstance(changed, str) else tuple(map(header_key, changed))
    return frozenset(name for name, key in _VIEW_FIELDS if key not in keys)


def carry_views(
    source: _Views,
    copy: _T,
    changed: str | tuple[str, ...] = (),
    *,
    vias: tuple[Via, ...] | None = None,
) -> _T:
    """
    Parse once: give C{copy}, a message derived from C{source}, the typed
    views C{source} has already parsed from header fields that did not
    change, and its parsed Request-URI if the URI is the same. C{changed}
    names every header field whose values differ between the two (any
    spelling); a view of one of those is parsed again on use.

    C{vias}, when the caller knows them, are the copy's Via values (what
    parsing its Via fields gives): a proxy that stamps, pushes or pops one
    Via knows the others already.

    The caller vouches for C{changed} and C{vias}: a field that changed
    but is not named would leave a stale view. Returns C{copy}.
    """
    parsed = source.__dict__
    target = copy.__dict__
    for name in _carried(changed).intersection(parsed):
        target[name] = parsed[name]
    if "request_uri" in parsed and getattr(copy, "uri", None) == getattr(source, "uri", None):
        target["request_uri"] = parsed["request_uri"]
    if vias is not None:
        target["vias"] = vias
    return copy


def _pushed_vias(source: _Views, value: str) -> tuple[Via, ...] | None:
    """The Via values after pushing C{value}, if C{source}'s are parsed and it parses."""
    vias: tuple[Via, ...] | None = source.__dict__.get("vias")
    if vias is None:
        return None
    try:
        return (*_parse_via_list(value), *vias)
    except MessageParseError:
        return None  # parsed (and refused) on use, as without this


def _popped_vias(source: _Views) -> tuple[Via, ...] | None:
    """The Via values after popping the top one, if C{source}'s are parsed."""
    vias: tuple[Via, ...] | None = source.__dict__.get("vias")
    return vias[1:] if vias else None


_C = TypeVar("_C", bound=type)


def _interpreted(cls: _C) -> _C:
    """
    Keep a class an ordinary Python class in a compiled build: mypyc
    compiles an undecorated class to a native one, which the attrs
    classes below (with their C{__dict__} of cached views) cannot
    subclass. A no-op in the pure-Python build.
    """
    return cls


@_interpreted
class _Views:
    """Typed views shared by requests and responses (parsed on demand)."""

    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of the first field called C{name}, or C{None}."""
        return self.headers.get(name)

    @cached_property
    def call_id(self) -> str:
        """The Call-ID (exactly one field required)."""
        return _call_id_of(self.headers.get_all("Call-ID"))

    @cached_property
    def cseq(self) -> CSeq:
        """The parsed CSeq (exactly one field required)."""
        return _cseq_of(self.headers.get_all("CSeq"))

    @cached_property
    def vias(self) -> tuple[Via, ...]:
        """Every Via value, top first."""
        return _vias_of(self.headers.get_all("Via"))

    @property
    def top_via(self) -> Via:
        """The topmost Via (RFC 3261 8.1.1.7, 18.2.1)."""
        vias = self.vias
        if not vias:
            raise MessageParseError("missing Via header field")
        return vias[0]

    @cached_property
    def from_address(self) -> NameAddress:
        """The parsed From (exactly one field required)."""
        return _from_of(self.headers.get_all("From"))

    @cached_property
    def to_address(self) -> NameAddress:
        """The parsed To (exactly one field required)."""
        return _to_of(self.headers.get_all("To"))

    @cached_property
    def routes(self) -> tuple[NameAddress, ...]:
        """Every Route value, in order."""
        return _addresses_of(self.headers.get_all("Route"))

    @cached_property
    def record_routes(self) -> tuple[NameAddress, ...]:
        """Every Record-Route value, in order."""
        return _addresses_of(self.headers.get_all("Record-Route"))

    @cached_property
    def contacts(self) -> tuple[NameAddress, ...] | str:
        """
        Every Contact value, in order, or the string C{"*"} for a wildcard
        Contact (RFC 3261 10.2.2), which must stand alone.
        """
        return _contacts_of(self.headers.get_all("Contact"))

    @cached_property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 8.1.1.6), or C{None} if absent."""
        return _max_forwards_of(self.headers.get_all("Max-Forwards"))

    @cached_property
    def expires(self) -> int | None:
        """The Expires header field in seconds, or C{None} if absent."""
        return _expires_of(self.headers.get_all("Expires"))

    def option_tags(self, name: str) -> tuple[str, ...]:
        """The option tags of Require, Proxy-Require, Supported or Unsupported."""
        out: list[str] = []
        for value in self.headers.get_all(name):
            out.extend(parse_option_tags(value))
        return tuple(out)

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower-cased, without parameters."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower()


@attrs.frozen(eq=True, slots=False)
class Request(_Views):
    """
    A SIP request (RFC 3261 7.1).

    @ivar method: the method, case-sensitive (C{INVITE}, C{REGISTER}, ...).
    @ivar uri: the Request-URI as written (see L{Request.request_uri}).
    """

    method: str
    uri: str
    headers: Headers = Headers()
    body: bytes = b""
    version: str = SIP_VERSION

    @cached_property
    def request_uri(self) -> URI:
        """The parsed Request-URI."""
        return parse_uri(self.uri)

    # Copies are made directly, not with attrs.evolve, which introspects the
    # class on every call: a proxy derives several messages from each one.

    def with_uri(self, uri: object) -> Request:
        """A copy with another Request-URI (a URI value or its text)."""
        copy = type(self)(self.method, str(uri), self.headers, self.body, self.version)
        return carry_views(self, copy)

    def with_headers(
        self, headers: Headers, changed: str | tuple[str, ...] | None = None
    ) -> Request:
        """
        A copy with other headers. With C{changed}, the names of the only
        fields that differ, the copy keeps the typed views already parsed
        from the others (L{carry_views}).
        """
        copy = type(self)(self.method, self.uri, headers, self.body, self.version)
        if changed is not None:
            carry_views(self, copy, changed)
        return copy

    def with_via_pushed(self, value: str | Via) -> Request:
        """
        A copy with the Via C{value} on top (RFC 3261 16.6 item 8), keeping
        every view already parsed: the Via values are C{value}'s and ours.

        C{value} is the field's text, or a L{Via} whose text (C{str()})
        parses back to it, as every well-formed Via does: a proxy that
        builds its own Via need not have it parsed again.
        """
        if isinstance(value, str):
            text = value
            vias = _pushed_vias(self, value)
        else:
            text = str(value)
            remember_vias(text, (value,))  # for the responses that bring it back
            below: tuple[Via, ...] | None = self.__dict__.get("vias")
            vias = None if below is None else (value, *below)
        copy = type(self)(
            self.method, self.uri, self.headers.prepended("Via", text), self.body, self.version
        )
        return carry_views(self, copy, "Via", vias=vias)

    def with_route_popped(self) -> Request:
        """
        A copy without the top Route value (RFC 3261 16.4), keeping every
        view already parsed: the Route values are ours less the first.
        """
        copy = type(self)(
            self.method, self.uri, self.headers.first_removed("Route"), self.body, self.version
        )
        carry_views(self, copy, "Route")
        routes: tuple[NameAddress, ...] | None = self.__dict__.get("routes")
        if routes:
            copy.__dict__["routes"] = routes[1:]
        return copy

    def with_body(self, body: bytes, content_type: str | None = None) -> Request:
        """A copy with another body (and Content-Type, if given)."""
        headers = self.headers
        if content_type is not None:
            headers = headers.replaced("Content-Type", content_type)
        return type(self)(self.method, self.uri, headers, body, self.version)


@attrs.frozen(eq=True, slots=False)
class Response(_Views):
    """
    A SIP response (RFC 3261 7.2).

    @ivar flow: the flow it was received on, where the proxy relays it (the
        response stages learn from it where its sender is: a callee behind
        NAT); C{None} for one made here. Not part of its value: two
        responses that differ only there are equal.
    """

    status: int
    reason: str = ""
    headers: Headers = Headers()
    body: bytes = b""
    version: str = SIP_VERSION
    flow: Flow | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def is_provisional(self) -> bool:
        """True for 1xx."""
        return self.status < 200

    def with_headers(
        self,
        headers: Headers,
        flow: Flow | None = None,
        changed: str | tuple[str, ...] | None = None,
    ) -> Response:
        """
        A copy with other headers (and the flow it was received on, if
        given). With C{changed}, the names of the only fields that differ,
        the copy keeps the typed views already parsed from the others
        (L{carry_views}).
        """
        copy = type(self)(
            self.status,
            self.reason,
            headers,
            self.body,
            self.version,
            flow=self.flow if flow is None else flow,
        )
        if changed is not None:
            carry_views(self, copy, changed)
        return copy

    def with_via_popped(self, flow: Flow | None = None) -> Response:
        """
        A copy without the top Via value (RFC 3261 16.7 item 3), and the flow
        it was received on, if given, keeping every view already parsed.
        """
        copy = type(self)(
            self.status,
            self.reason,
            self.headers.first_removed("Via"),
            self.body,
            self.version,
            flow=self.flow if flow is None else flow,
        )
        return carry_views(self, copy, "Via", vias=_popped_vias(self))

    def with_body(self, body: bytes, content_type: str | None = None) -> Response:
        """A copy with another body (and Content-Type, if given)."""
        headers = self.headers
        if content_type is not None:
            headers = headers.replaced("Content-Type", content_type)
        return type(self)(
            self.status, self.reason, headers, body, self.version, flow=self.flow
        )


Message = Request | Response
