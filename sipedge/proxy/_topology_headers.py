# -*- test-case-name: sipedge.test.test_proxy_topology, sipedge.test.test_proxy_topology_core -*-
"""
Header-field helpers of L{TopologyHider<sipedge.proxy._topology.TopologyHider>}:
replacing the fields of one header, reading the Call-ID and Via/Record-Route
entries leniently, and setting or removing a URI parameter on an entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from sipedge.error import MessageParseError
from sipedge.message import (
    Headers,
    NameAddress,
    Request,
    Response,
    SipURI,
    header_key,
    parse_name_addr,
)

__all__: list[str] = []


def _with_values(headers: Headers, name: str, values: Sequence[str]) -> Headers:
    """
    C{headers} with the fields called C{name} replaced by one field per
    value, where the first of them was (appended if there was none).
    """
    key = header_key(name)
    fields: list[tuple[str, str, str]] = []
    done = False
    for field in headers.fields:
        if field[0] != key:
            fields.append(field)
        elif not done:
            fields.extend((key, field[1], v) for v in values)
            done = True
    if not done:
        fields.extend((key, name, v) for v in values)
    return Headers(tuple(fields))


def _call_id(message: Request | Response) -> str | None:
    """The Call-ID, or C{None} if the message has none that parses."""
    try:
        return message.call_id
    except MessageParseError:
        return None


def _entry(value: str) -> NameAddress | None:
    try:
        return parse_name_addr(value)
    except MessageParseError:
        return None


def _with_uri_param(entry: NameAddress | None, name: str, value: str | None = None) -> NameAddress:
    assert entry is not None and isinstance(entry.uri, SipURI)
    return entry.with_uri(entry.uri.with_param(name, value))


def _without_uri_param(entry: NameAddress, name: str) -> NameAddress:
    assert isinstance(entry.uri, SipURI)
    return entry.with_uri(entry.uri.without_param(name))
