# -*- test-case-name: sipedge.test.test_proxy_flowtoken -*-
"""
Flow tokens in our Record-Route (RFC 5626 5.3's idea, and what Kamailio
users do with C{add_contact_alias} / C{handle_ruri_alias}, without
touching the Contact).

A phone behind NAT puts its private address in its Contact, and that
Contact becomes the remote target of its dialogs: an in-dialog request
sent there (10.0.0.5:5060) never arrives. So when we record-route a
dialog-creating request, the flows over which each party can be reached
(the caller's if it is behind NAT or asked for RFC 5626 outbound, the
callee's if it was reached over a registered flow) are sealed into a
parameter of our Record-Route URI, bound to the Call-ID. Both parties
send that URI back as a Route in every request of the dialog; the route
stage opens it and the request is sent over the flow of the party it is
addressed to.

Nothing is stored: a restart, or another instance with the same key,
understands the token. The Contacts and the Request-URI are left as the
parties wrote them, so the internal side sees what it expects.

Which party a request is addressed to follows from the tags: the token
names the caller's From tag; a request whose To tag is that tag goes to
the caller, one whose From tag is that tag goes to the callee.
"""

from __future__ import annotations

import json

import attrs

from sipedge.error import MessageParseError, TokenError
from sipedge.message import Request, SipURI, detect_nat
from sipedge.proxy._seal import Sealer
from sipedge.transport import Flow

__all__ = ["PARAM", "DialogFlows", "FlowTokens", "PartyFlow", "asks_outbound", "dialog_flows"]

#: The Record-Route URI parameter that holds the token.
PARAM = "ft"

_KIND = b"f"


@attrs.frozen
class PartyFlow:
    """
    How one party of a dialog is reached.

    @ivar flow: the flow it sent from (or registered over).
    @ivar failed_status: the status to answer when that flow is gone:
        430 (Flow Failed, RFC 5626 5.3) for an outbound flow, else 480.
    """

    flow: Flow
    failed_status: int = 480


@attrs.frozen
class DialogFlows:
    """
    The flows of a dialog's two parties.

    @ivar caller_tag: the From tag of the dialog-creating request.
    @ivar caller: how the caller is reached, or C{None} (at its Contact).
    @ivar callee: how the callee is reached, or C{None} (at its Contact).
    """

    caller_tag: str
    caller: PartyFlow | None = None
    callee: PartyFlow | None = None

    def toward(self, from_tag: str | None, to_tag: str | None) -> PartyFlow | None:
        """
        How the party an in-dialog request with these tags is addressed to
        is reached; C{None} if at its Contact, or if the tags do not match.
        """
        if to_tag is not None and to_tag == self.caller_tag:
            return self.caller
        if from_tag is not None and from_tag == self.caller_tag:
            return self.callee
        return None


def _flow_fields(party: PartyFlow | None) -> list[object] | None:
    if party is None:
        return None
    f = party.flow
    return [f.transport, f.local_host, f.local_port, f.remote_host, f.remote_port,
            party.failed_status]


def _party(value: object) -> PartyFlow | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 6:
        raise TokenError("bad flow")
    transport, local_host, local_port, remote_host, remote_port, status = value
    if not (
        isinstance(transport, str)
        and isinstance(local_host, str)
        and isinstance(remote_host, str)
        and all(isinstance(n, int) and 0 <= n < 65536 for n in (local_port, remote_port))
        and status in (430, 480)
    ):
        raise TokenError("bad flow")
    return PartyFlow(Flow(transport, local_host, local_port, remote_host, remote_port), status)


class FlowTokens:
    """Seals and opens the L{DialogFlows} of a dialog under one key."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def seal(self, flows: DialogFlows, call_id: str) -> str:
        """The token for C{flows}, valid only with C{call_id}."""
        payload = [flows.caller_tag, _flow_fields(flows.caller), _flow_fields(flows.callee)]
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8", "surrogateescape")
        return self._sealer.seal(_KIND, data, _ad(call_id))

    def token_in(self, uri: SipURI) -> str | None:
        """The flow token C{uri} (one of our Record-Route values) carries, if any."""
        return uri.param(PARAM)

    def open(self, token: str, call_id: str) -> DialogFlows:
        """
        The flows sealed in C{token}.

        @raise TokenError: if it is not our token for C{call_id}.
        """
        data = self._sealer.open(token, _KIND, _ad(call_id))
        try:
            payload = json.loads(data.decode("utf-8", "surrogateescape"))
        except ValueError:
            raise TokenError("bad payload") from None
        if not isinstance(payload, list) or len(payload) != 3 or not isinstance(payload[0], str):
            raise TokenError("bad payload")
        return DialogFlows(payload[0], _party(payload[1]), _party(payload[2]))


def _ad(call_id: str) -> bytes:
    return b"flow\x00" + call_id.encode("utf-8", "surrogateescape")


def asks_outbound(request: Request) -> bool:
    """
    Whether C{request}'s Contact carries C{ob} (RFC 5626 5.4): its sender
    wants requests of the dialog over the flow it sent this on.
    """
    try:
        contacts = request.contacts
    except MessageParseError:
        return False
    return isinstance(contacts, tuple) and any(
        isinstance(c.uri, SipURI) and c.uri.has_param("ob") for c in contacts
    )


def dialog_flows(
    request: Request,
    incoming: Flow,
    callee_flow: Flow | None,
    callee_failed: int | None,
) -> DialogFlows | None:
    """
    The flows to seal into the Record-Route of a dialog-creating
    C{request} received on C{incoming} and sent to its callee over
    C{callee_flow}; C{None} if both parties are reached at their Contacts.

    The caller is reached over C{incoming} when it is behind NAT
    (L{sipedge.message.detect_nat}) or asked for outbound (C{ob}, then a
    gone flow answers 430); the callee over C{callee_flow} when its
    target was bound to it (C{callee_failed} is not C{None}).
    """
    try:
        tag = request.from_address.tag
    except MessageParseError:
        return None
    if not tag:
        return None
    caller = None
    if asks_outbound(request):
        caller = PartyFlow(incoming, 430)
    elif detect_nat(request, incoming).behind_nat:
        caller = PartyFlow(incoming, 480)
    callee = None
    if callee_flow is not None and callee_failed is not None:
        callee = PartyFlow(callee_flow, callee_failed)
    if caller is None and callee is None:
        return None
    return DialogFlows(tag, caller, callee)
