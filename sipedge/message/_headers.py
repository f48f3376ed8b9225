# -*- test-case-name: sipedge.test.test_message_headers -*-
"""
Header fields as an ordered, immutable list (RFC 3261 section 7.3).

Fields keep the name as written (a compact C{v} stays C{v}) and their raw,
unfolded value, in order, so a proxy forwards what it does not understand
untouched. Look-ups go by a I{key}: the lower-cased long form of the name, so
C{"v"}, C{"VIA"} and C{"Via"} all find the same fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from typing import Any, overload

import attrs

from sipedge.message._lex import split_comma_list

__all__ = ["COMPACT_FORMS", "Headers", "canonical_name", "header_key"]

#: RFC 3261 section 7.3.3 and the IANA registry of compact forms.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Canonical spellings for the names a proxy writes itself.
_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "Min-SE",
        "MIME-Version",
        "Organization",
        "Path",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Replaces",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Subscription-State",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
    )
}

_KEYS: dict[str, str] = {name: name for name in _CANONICAL}
_KEYS.update({short: long.lower() for short, long in COMPACT_FORMS.items()})
# The usual spellings too, so a look-up by "Via" or "Call-ID" skips lower().
_KEYS.update({name: key for key, name in _CANONICAL.items()})
_KEYS.update({short.upper(): long.lower() for short, long in COMPACT_FORMS.items()})


def header_key(name: str) -> str:
    """
    The look-up key of a header name: its long form, lower-cased.

    >>> header_key("v"), header_key("CALL-ID")
    ('via', 'call-id')
    """
    lname = name.lower()
    return _KEYS.get(lname, lname)


def canonical_name(name: str) -> str:
    """The usual spelling of a header name (C{"call-id"} -> C{"Call-ID"})."""
    key = header_key(name)
    return _CANONICAL.get(key) or "-".join(p.capitalize() for p in key.split("-"))


Field = tuple[str, str, str]  # (key, name as written, value)

# Typed Any: a compiled build (mypyc) checks "x: T = attrs.field(...)"
# against T when the class body runs (see sipedge.message._via).
_NO_KEYS: Any = None
_KEY_OF = itemgetter(0)


@attrs.frozen
class Headers:
    """
    An ordered, immutable list of header fields.

    Built from C{(name, value)} pairs; every change returns a new L{Headers}.
    Fields of the same name keep their relative order (RFC 3261 7.3.1).

    Look-ups by name search a tuple of the fields' keys, made on the first
    look-up, with C{tuple.count} and C{tuple.index}: a scan in C, where a
    scan of the fields in Python cost several times more (and a dict of
    the values more to build than the few look-ups each message gets).
    It is not part of the value.
    """

    fields: tuple[Field, ...] = ()
    _keys: Any = attrs.field(default=_NO_KEYS, init=False, eq=False, repr=False)

    def _key_tuple(self) -> tuple[str, ...]:
        """The keys of the fields, in order (made once)."""
        keys = tuple(map(_KEY_OF, self.fields))
        object.__setattr__(self, "_keys", keys)
        return keys

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Headers:
        """Headers from C{(name, value)} pairs, in order."""
        return cls(tuple((header_key(name), name, value) for name, value in pairs))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Iterate over C{(name, value)} pairs, in order."""
        return ((name, value) for _, name, value in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        keys = self._keys or self._key_tuple()
        return (_KEYS.get(name) or header_key(name)) in keys

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    @overload
    def get(self, name: str, default: str | None) -> str | None: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field called C{name}, or C{default}."""
        key = _KEYS.get(name) or header_key(name)
        keys = self._keys or self._key_tuple()
        if key in keys:
            return self.fields[keys.index(key)][2]
        return default

    def get_all(self, name: str) -> tuple[str, ...]:
        """The values of every field called C{name}, one per field line."""
        key = _KEYS.get(name) or header_key(name)
        keys = self._keys or self._key_tuple()
        found = keys.count(key)
        if not found:
            return ()
        if found == 1:
            return (self.fields[keys.index(key)][2],)
        return tuple([f[2] for f in self.fields if f[0] == key])

    def values(self, name: str) -> list[str]:
        """
        Every element of the comma-separated lists in fields called C{name}
        (RFC 3261 7.3.1: C{Route: a, b} is the same as two C{Route} fields).
        """
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_comma_list(value))
        return out

    def count(self, name: str) -> int:
        """How many field lines are called C{name}."""
        keys = self._keys or self._key_tuple()
        return keys.count(_KEYS.get(name) or header_key(name))

    def added(self, name: str, value: str) -> Headers:
        """A copy with a field appended after all others."""
        return Headers((*self.fields, (header_key(name), name, value)))

    def prepended(self, name: str, value: str) -> Headers:
        """
        A copy with a field put before the first field of the same name (or
        at the end if there is none): how a proxy adds its Via or
        Record-Route on top (RFC 3261 16.6).
        """
        key = header_key(name)
        fields = list(self.fields)
        for i, f in enumerate(fields):
            if f[0] == key:
                fields.insert(i, (key, name, value))
                break
        else:
            fields.append((key, name, value))
        return Headers(tuple(fields))

    def replaced(self, name: str, value: str) -> Headers:
        """
        A copy where the fields called C{name} become one field with
        C{value}, at the position of the first one (or appended).
        """
        key = header_key(name)
        fields: list[Field] = []
        done = False
        for f in self.fields:
            if f[0] == key:
                if not done:
                    fields.append((key, f[1], value))
                    done = True
            else:
                fields.append(f)
        if not done:
            fields.append((key, name, value))
        return Headers(tuple(fields))

    def removed(self, name: str) -> Headers:
        """A copy without any field called C{name}."""
        key = header_key(name)
        return Headers(tuple(f for f in self.fields if f[0] != key))

    def first_removed(self, name: str) -> Headers:
        """
        A copy without the first I{element} of C{name}: the first value of a
        comma-separated first field, or the whole field if it holds one
        (how a proxy pops its own Via or the top Route, RFC 3261 16.4, 16.7).
        """
        key = header_key(name)
        fields = list(self.fields)
        for i, (fkey, fname, value) in enumerate(fields):
            if fkey == key:
                rest = split_comma_list(value)[1:]
                if rest:
                    fields[i] = (fkey, fname, ", ".join(rest))
                else:
                    del fields[i]
                break
        return Headers(tuple(fields))
