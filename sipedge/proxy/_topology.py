# -*- test-case-name: sipedge.test.test_proxy_topology, sipedge.test.test_proxy_topology_core -*-
"""
Topology hiding (cf. Kamailio's topoh module), stateless: what the
external side must not see is sealed into tokens that only we can open
(L{sipedge.proxy._seal}), so nothing is stored, a restart loses nothing,
and several instances sharing the key understand each other's tokens.

A message sent to an address outside the internal networks is I{hidden}:

 - Via (requests): only our Via is left; the Vias below it are sealed
   into its C{sth} parameter, and put back when a response brings it
   back (L{reveal_response}).
 - Record-Route: our own entries stay (so the dialog comes back through
   us); every entry on the internal side of them (below them in a
   request, above them in a response) is sealed into the C{sth} parameter
   of our entry next to them. When the external party sends the route
   set back (Route in its requests, Record-Route in its 2xx), our entry
   is expanded again. Without an entry of ours, they are removed.
 - Contact: each Contact becomes C{sip:sth-<token>@<our address>}, the
   token holding the original URI, bound to the Call-ID; a request from
   outside to that URI goes to the original (L{reveal_request}).
   REGISTER Contacts are sealed with their Path instead (not bound to the
   Call-ID: later calls to the binding have other Call-IDs). Responses to
   REGISTER keep their Contacts: they are the registering party's own.
 - Call-ID: masked (C{sth-<token>}) when the call was set up from the
   internal side; the external side knows the call only by the mask.
   Which calls those are is carried statelessly too: our Record-Route
   entries of such a dialog carry the flag C{sthc}, and the top Via of a
   request whose Call-ID we unmasked carries it until the response leaves.
 - Path is removed (REGISTER: sealed into the Contact tokens).

SDP is left alone (the media stage's job), and so are From, To and the
Request-URI: they name users, not hops.

Tokens come back only in what the external side returns; one that does
not open (forged, corrupted, another call's) refuses the message. A
request from outside that names an internal address in the clear (its
Request-URI or a Route) is refused too: nothing we send out names one, so
no legitimate peer has one, and an outsider must not be able to address
the internal network through us.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence

import attrs

from sipedge.error import MessageParseError, TokenError
from sipedge.flow import format_hostport
from sipedge.message import (
    Headers,
    Request,
    Response,
    SipURI,
    parse_contact,
    parse_sip_uri,
    parse_uri,
    parse_via,
)
from sipedge.pipeline import LocalIdentity
from sipedge.proxy._seal import Sealer
from sipedge.proxy._topology_headers import (
    _call_id,
    _entry,
    _with_uri_param,
    _with_values,
    _without_uri_param,
)

__all__ = ["CALL_ID_FLAG", "PARAM", "TOKEN_PREFIX", "Refusal", "Revealed", "TopologyHider"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What a masked Call-ID and the user part of a masked Contact start with.
TOKEN_PREFIX = "sth-"
#: The Via / Record-Route URI parameter holding what was folded into it.
PARAM = "sth"
#: The flag (Record-Route URI parameter, Via parameter) that the dialog's
#: Call-ID is masked on the external side.
CALL_ID_FLAG = "sthc"
#: The rule named in the log lines of refusals.
RULE = "topology-hiding"

_CALL_ID = b"i"
_CONTACT = b"c"
_REGISTRATION = b"r"
_VIAS = b"v"
_BELOW = b"b"  # Record-Route entries below ours (a request's)
_ABOVE = b"a"  # Record-Route entries above ours (a response's)


@attrs.frozen
class Refusal:
    """
    A message from outside we will not take: answer a request with
    C{status}, drop a response; log C{detail} under L{RULE}.
    """

    status: int
    reason: str
    detail: str


@attrs.frozen
class Revealed:
    """
    A received request with our tokens opened.

    @ivar request: the request as the internal side must see it.
    @ivar mask_call_id: whether, forwarded to the external side, its
        Call-ID is to be masked (a dialog set up from the internal side).
    """

    request: Request
    mask_call_id: bool


def _encode(values: Sequence[str]) -> bytes:
    return json.dumps(list(values)).encode("ascii")


def _decode(data: bytes) -> list[str]:
    try:
        values = json.loads(data.decode("ascii"))
    except ValueError:
        raise TokenError("bad payload") from None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TokenError("bad payload")
    return values


def _ad(call_id: str) -> bytes:
    return call_id.encode("utf-8", "surrogateescape")


class TopologyHider:
    """
    Hides what goes out to the external side and reveals what comes back.

    Sans-IO: every method takes a message and gives a message; the proxy
    core decides which messages, and knows our addresses.

    @param sealer: the L{Sealer} of our tokens.
    @param internal: the internal networks; every other address is
        external.
    """

    def __init__(self, sealer: Sealer, internal: Iterable[IPNetwork]) -> None:
        self._sealer = sealer
        self._internal = tuple(internal)

    def is_internal(self, host: str) -> bool:
        """Whether C{host} is an IP address in an internal network (not a name)."""
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._internal)

    def is_external(self, host: str) -> bool:
        """Whether messages to C{host} (an IP address) are hidden."""
        return not self.is_internal(host)

    # -- Call-ID ----------------------------------------------------------------

    def mask_call_id(self, call_id: str) -> str:
        """The masked form of C{call_id}; a mask of ours stays as it is."""
        if call_id.startswith(TOKEN_PREFIX):
            try:
                self.unmask_call_id(call_id)
            except TokenError:
                pass
            else:
                return call_id
        return TOKEN_PREFIX + self._sealer.seal(_CALL_ID, _ad(call_id))

    def unmask_call_id(self, call_id: str) -> str:
        """
        The original of a masked Call-ID; any other Call-ID as it is.

        @raise TokenError: if it looks masked but is not our mask.
        """
        if not call_id.startswith(TOKEN_PREFIX):
            return call_id
        plain = self._sealer.open(call_id[len(TOKEN_PREFIX) :], _CALL_ID)
        return plain.decode("utf-8", "surrogateescape")

    # -- hiding -------------------------------------------------------------------

    def hide_request(
        self,
        request: Request,
        local: LocalIdentity,
        ours: tuple[str, str, int],
        mask_call_id: bool,
    ) -> Request:
        """
        C{request} (with our Via, and our Record-Route if any, on top) as
        the external side may see it.

        @param local: our L{sipedge.proxy.LocalIdentity}.
        @param ours: C{(transport, host, port)} of our interface towards
            the external side, for masked Contacts.
        @param mask_call_id: whether the dialog's Call-ID is masked.
        """
        call_id = _call_id(request)
        ad = _ad(call_id or "")
        headers = request.headers
        vias = headers.values("Via")
        if len(vias) > 1:
            top = parse_via(vias[0]).with_param(
                PARAM, self._sealer.seal(_VIAS, _encode(vias[1:]), ad)
            )
            headers = _with_values(headers, "Via", [str(top)])
        headers = self._hide_record_route(headers, local, ad, below=True, flag=mask_call_id)
        register = request.method == "REGISTER"
        path = headers.values("Path")
        headers = headers.removed("Path")
        if register:
            headers = self._hide_contacts(headers, local, ours, _REGISTRATION, b"", path)
        else:
            headers = self._hide_contacts(headers, local, ours, _CONTACT, ad, [])
        if mask_call_id and call_id is not None:
            headers = headers.replaced("Call-ID", self.mask_call_id(call_id))
        return request.with_headers(headers)

    def hide_response(
        self, response: Response, local: LocalIdentity, ours: tuple[str, str, int]
    ) -> Response:
        """
        C{response} (to a request from the external side) as the external
        side may see it: internal Record-Route entries and Contacts hidden,
        the Call-ID masked back if the request came with it masked.
        """
        headers = response.headers
        call_id = _call_id(response)
        ad = _ad(call_id or "")
        vias = headers.values("Via")
        mask = False
        if vias:
            try:
                top = parse_via(vias[0])
            except MessageParseError:
                top = None
            if top is not None and top.has_param(CALL_ID_FLAG):
                mask = True
                headers = _with_values(
                    headers, "Via", [str(top.without_param(CALL_ID_FLAG)), *vias[1:]]
                )
        headers = self._hide_record_route(headers, local, ad, below=False, flag=False)
        try:
            register = response.cseq.method == "REGISTER"
        except MessageParseError:
            register = False
        if not register:
            headers = self._hide_contacts(headers, local, ours, _CONTACT, ad, [])
        if mask and call_id is not None:
            headers = headers.replaced("Call-ID", self.mask_call_id(call_id))
        return response.with_headers(headers)

    def _hide_record_route(
        self, headers: Headers, local: LocalIdentity, ad: bytes, *, below: bool, flag: bool
    ) -> Headers:
        values = headers.values("Record-Route")
        if not values:
            return headers
        entries = [_entry(v) for v in values]
        is_ours = [e is not None and local.is_local_uri(e.uri) for e in entries]
        if True not in is_ours:
            return headers.removed("Record-Route")
        first = is_ours.index(True)
        last = first
        while last + 1 < len(entries) and is_ours[last + 1]:
            last += 1
        out = list(values[first : last + 1])
        if flag:
            out = [str(_with_uri_param(entries[i], CALL_ID_FLAG)) for i in range(first, last + 1)]
        if below:
            hidden = values[last + 1 :]
            kept_above = values[:first]  # cannot happen in a request we built
            if hidden:
                token = self._sealer.seal(_BELOW, _encode(hidden), ad)
                out[-1] = str(_with_uri_param(_entry(out[-1]), PARAM, token))
            out = [*kept_above, *out]
        else:
            # traversal order: from our entry towards the internal side
            hidden = list(reversed(values[:first]))
            if hidden:
                token = self._sealer.seal(_ABOVE, _encode(hidden), ad)
                out[0] = str(_with_uri_param(_entry(out[0]), PARAM, token))
            out = [*out, *values[last + 1 :]]
        return _with_values(headers, "Record-Route", out)

    def _hide_contacts(
        self,
        headers: Headers,
        local: LocalIdentity,
        ours: tuple[str, str, int],
        kind: bytes,
        ad: bytes,
        path: Sequence[str],
    ) -> Headers:
        if "Contact" not in headers:
            return headers
        out: list[str] = []
        for value in headers.get_all("Contact"):
            try:
                contacts = parse_contact(value)
            except MessageParseError:
                continue  # fail closed: never let an unreadable one out
            if not isinstance(contacts, tuple):
                out.append(value)  # "*"
                continue
            for contact in contacts:
                if local.is_local_uri(contact.uri) and _is_token_uri(contact.uri):
                    out.append(str(contact))
                    continue
                token = self._sealer.seal(kind, _encode([str(contact.uri), *path]), ad)
                secure = isinstance(contact.uri, SipURI) and contact.uri.scheme == "sips"
                out.append(str(contact.with_uri(_our_uri(ours, token, secure))))
        if not out:
            return headers.removed("Contact")
        return _with_values(headers, "Contact", out)

    # -- revealing ------------------------------------------------------------------

    def reveal_request(
        self, request: Request, local: LocalIdentity, external: bool
    ) -> Revealed | Refusal:
        """
        C{request}, received from the external side if C{external}, as the
        internal side must see it, or why we refuse it.
        """
        if external:
            refusal = self._clear_internal(request, local)
            if refusal is not None:
                return refusal
        headers = request.headers
        try:
            call_id = self.unmask_call_id(request.call_id)
        except TokenError:
            return Refusal(400, "Bad Call-ID", "forged or corrupted masked Call-ID")
        except MessageParseError:
            return Revealed(request, False)
        ad = _ad(call_id)
        uri: object = request.uri
        if call_id != request.call_id:
            headers = headers.replaced("Call-ID", call_id)
            vias = headers.values("Via")
            try:
                top = parse_via(vias[0]).with_param(CALL_ID_FLAG)
            except (MessageParseError, IndexError):
                return Refusal(400, "Bad Via", "no Via to mark")
            headers = _with_values(headers, "Via", [str(top), *vias[1:]])
        target = request.request_uri if isinstance(request.request_uri, SipURI) else None
        extra_routes: list[str] = []
        if target is not None and local.is_local_uri(target) and _is_token_uri(target):
            try:
                values = self._open_contact(target, ad)
            except TokenError:
                return Refusal(403, "Forbidden", "forged or corrupted masked Contact")
            uri, extra_routes = values[0], values[1:]
        routes = headers.values("Route")
        revealed: list[str] = []
        flagged = False
        leading = True
        for value in routes:
            entry = _entry(value)
            if entry is None or not local.is_local_uri(entry.uri):
                leading = False
                revealed.append(value)
                continue
            if leading and isinstance(entry.uri, SipURI) and entry.uri.has_param(CALL_ID_FLAG):
                flagged = True
            token = entry.uri.param(PARAM) if isinstance(entry.uri, SipURI) else None
            if token is None:
                revealed.append(value)
                continue
            try:
                hidden = self._open_routes(token, ad)
            except TokenError:
                return Refusal(403, "Forbidden", "forged or corrupted hidden Route")
            revealed.append(str(_without_uri_param(entry, PARAM)))
            revealed.extend(hidden)
        revealed.extend(extra_routes)
        if revealed != routes:
            headers = (
                _with_values(headers, "Route", revealed) if revealed else headers.removed("Route")
            )
        headers = self._reveal_contacts(headers, local, ad)
        out = Request(request.method, str(uri), headers, request.body, request.version)
        if request.to_address.tag is None:
            mask = not external
        else:
            mask = flagged
        return Revealed(out, mask)

    def reveal_response(self, response: Response, local: LocalIdentity) -> Response | Refusal:
        """C{response}, received from the external side, as the internal side must see it."""
        headers = response.headers
        try:
            call_id = self.unmask_call_id(response.call_id)
        except TokenError:
            return Refusal(400, "Bad Call-ID", "forged or corrupted masked Call-ID")
        except MessageParseError:
            return response
        ad = _ad(call_id)
        if call_id != response.call_id:
            headers = headers.replaced("Call-ID", call_id)
        vias = headers.values("Via")
        if vias:
            try:
                top = parse_via(vias[0])
            except MessageParseError:
                top = None
            token = top.param(PARAM) if top is not None else None
            if top is not None and token is not None:
                try:
                    hidden = _decode(self._sealer.open(token, _VIAS, ad))
                except TokenError:
                    return Refusal(400, "Bad Via", "forged or corrupted hidden Via")
                headers = _with_values(
                    headers, "Via", [str(top.without_param(PARAM)), *hidden, *vias[1:]]
                )
        values = headers.values("Record-Route")
        if values:
            out: list[str] = []
            for value in values:
                entry = _entry(value)
                token = None
                if entry is not None and isinstance(entry.uri, SipURI):
                    token = entry.uri.param(PARAM)
                if entry is None or token is None or not local.is_local_uri(entry.uri):
                    out.append(value)
                    continue
                kept = str(_without_uri_param(entry, PARAM))
                try:
                    kind = self._sealer.kind_of(token)
                    hidden = self._open_routes(token, ad)
                except TokenError:
                    return Refusal(
                        400, "Bad Record-Route", "forged or corrupted hidden Record-Route"
                    )
                if kind == _ABOVE:
                    out.extend(reversed(hidden))
                    out.append(kept)
                else:
                    out.append(kept)
                    out.extend(hidden)
            headers = _with_values(headers, "Record-Route", out)
        headers = self._reveal_contacts(headers, local, ad)
        return response.with_headers(headers)

    def _open_routes(self, token: str, ad: bytes) -> list[str]:
        kind = self._sealer.kind_of(token)
        if kind not in (_BELOW, _ABOVE):
            raise TokenError("not a route token")
        return _decode(self._sealer.open(token, kind, ad))

    def _open_contact(self, uri: SipURI, ad: bytes) -> list[str]:
        """The original URI (and, for a REGISTER Contact, its Path) of a masked Contact URI."""
        token = (uri.user or "")[len(TOKEN_PREFIX) :]
        kind = self._sealer.kind_of(token)
        if kind == _REGISTRATION:
            values = _decode(self._sealer.open(token, kind, b""))
        else:
            values = _decode(self._sealer.open(token, _CONTACT, ad))
        if not values:
            raise TokenError("empty contact")
        try:
            parse_uri(values[0])
        except MessageParseError:
            raise TokenError("bad contact") from None
        return values

    def _reveal_contacts(self, headers: Headers, local: LocalIdentity, ad: bytes) -> Headers:
        """Our masked Contacts back to the originals (one that does not open stays)."""
        if "Contact" not in headers:
            return headers
        out: list[str] = []
        changed = False
        for value in headers.get_all("Contact"):
            try:
                contacts = parse_contact(value)
            except MessageParseError:
                out.append(value)
                continue
            if not isinstance(contacts, tuple):
                out.append(value)
                continue
            for contact in contacts:
                uri = contact.uri
                if isinstance(uri, SipURI) and local.is_local_uri(uri) and _is_token_uri(uri):
                    try:
                        original = parse_uri(self._open_contact(uri, ad)[0])
                    except (TokenError, MessageParseError):
                        out.append(str(contact))
                        continue
                    out.append(str(contact.with_uri(original)))
                    changed = True
                else:
                    out.append(str(contact))
        return _with_values(headers, "Contact", out) if changed else headers

    def _clear_internal(self, request: Request, local: LocalIdentity) -> Refusal | None:
        """
        A refusal if C{request} (from outside) names an internal address
        (not ours) in the clear, or is an in-dialog request whose target is
        not one of our masked Contacts.
        """
        uris: list[object] = [request.request_uri]
        try:
            uris.extend(r.uri for r in request.routes)
        except MessageParseError:
            return Refusal(400, "Bad Route", "unreadable Route")
        for uri in uris:
            if not isinstance(uri, SipURI) or local.is_local_uri(uri):
                continue
            for host in (uri.host, uri.maddr):
                if host and self.is_internal(host):
                    return Refusal(403, "Forbidden", f"internal address {host} named from outside")
        # Every Contact we send out is masked, so the remote target of an
        # in-dialog request from outside is one of ours: anything else (a
        # host name that resolves inside, say) is not a dialog of ours.
        target = request.request_uri
        try:
            in_dialog = request.to_address.tag is not None
        except MessageParseError:
            in_dialog = False
        if (
            in_dialog
            and isinstance(target, SipURI)
            and not _is_token_uri(target)
            and not local.is_our_domain(target)
        ):
            return Refusal(
                403, "Forbidden", "in-dialog request from outside not to a masked Contact"
            )
        return None


def _is_token_uri(uri: object) -> bool:
    return isinstance(uri, SipURI) and (uri.user or "").startswith(TOKEN_PREFIX)


def _our_uri(ours: tuple[str, str, int], token: str, secure: bool = False) -> SipURI:
    """
    A URI of ours carrying C{token}. As with our Record-Route
    (L{sipedge.proxy._forwarding.record_route_value}), a TLS interface
    gets a SIPS URI only where the hidden Contact was SIPS, else
    C{sip:...;transport=tls}, which user agents without C{sips} follow.
    """
    transport, host, port = ours
    if transport == "TLS" and secure:
        scheme, params = "sips", ""
    else:
        scheme = "sip"
        params = "" if transport == "UDP" else f";transport={transport.lower()}"
    return parse_sip_uri(f"{scheme}:{TOKEN_PREFIX}{token}@{format_hostport(host, port)}{params}")
