# -*- test-case-name: sipedge.test.test_transport -*-
"""
Stamping the top Via of a received request with where it really came from
(RFC 3261 18.2.1, RFC 3581 4), so responses find their way back through
NATs.
"""

from __future__ import annotations

import ipaddress

from sipedge.flow import Flow
from sipedge.message import Request, carry_views, remember_vias

__all__ = ["stamp_via"]


def _bare_ip(host: str) -> str:
    """
    An IP literal as it goes into C{received}: no brackets and no zone
    (RFC 3261 25.1 C{IPv6address} has neither; RFC 5118 4.5 lets a
    receiver accept both forms, so we write the plain one).
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.split("%", 1)[0]


def _same_ip(sent_by_host: str, source: str) -> bool:
    """True if the Via sent-by host is the source address (as an address)."""
    if sent_by_host == source:
        return True  # as written: most clients put their address there
    try:
        return ipaddress.ip_address(_bare_ip(sent_by_host)) == ipaddress.ip_address(source)
    except ValueError:
        # A host name (or garbage): never equal to an address.
        return False


def _first_element_end(value: str) -> int:
    """
    Where the first element of a comma-separated Via field value ends:
    the index of the first comma outside a quoted-string, or C{len(value)}.
    """
    n = len(value)
    if '"' not in value:
        comma = value.find(",")
        return n if comma < 0 else comma
    i = 0
    while i < n:
        c = value[i]
        if c == '"':
            i += 1
            while i < n and value[i] != '"':
                i += 2 if value[i] == "\\" else 1
        elif c == ",":
            return i
        i += 1
    return n


def stamp_via(request: Request, flow: Flow, *, answer_to_source: bool = False) -> Request:
    """
    The request with its top Via stamped for the flow it arrived on.

    RFC 3261 18.2.1: when the sent-by host differs from the source address,
    add C{received=<source address>}. RFC 3581 4: when the top Via has an
    C{rport} parameter, set its value to the source port and add
    C{received} even if the host matches. An C{rport} that already has a
    value is overwritten too (a client never sends one; a value from the
    wire can only steer our responses elsewhere), and so is a C{received}
    the peer wrote itself.

    Only the top Via value changes: the first element of the first Via
    field. The rest of that field and every other field stay as they were.

    @param answer_to_source: stamp C{rport} as if the client had asked for
        it: the answer to a malformed request goes back exactly where the
        request came from, whatever its Via says.
    @raise sipedge.error.MessageParseError: if the request has no Via or
        its Via fields do not parse.
    """
    via = request.top_via
    source = flow.remote_host
    if "[" in source or "%" in source:
        source = _bare_ip(source)
    rport = True if answer_to_source else via.rport
    if rport is not None:
        stamped = via.stamped(source, flow.remote_port)
    elif via.received is not None or not _same_ip(via.host, source):
        stamped = via.stamped(source)
    else:
        return request
    # Only the parameters can differ (Via.stamped keeps the rest).
    if stamped.params == via.params:
        return request
    fields = list(request.headers.fields)
    for i, (key, name, value) in enumerate(fields):
        if key == "via":
            first_end = _first_element_end(value)
            head = value[:first_end]
            start = len(head) - len(head.lstrip())
            end = len(head.rstrip())
            text = value[:start] + str(stamped) + value[end:]
            fields[i] = (key, name, text)
            if first_end == len(value):
                # The responses bring this field back: known already.
                remember_vias(text, (stamped,))
            break
    # The stamped Via reparses to an equal value (sipedge.message._via), so
    # the copy keeps every view already parsed, its Vias included.
    copy = Request(request.method, request.uri, type(request.headers)(tuple(fields)),
                   request.body, request.version)
    return carry_views(request, copy, "Via", vias=(stamped, *request.vias[1:]))
