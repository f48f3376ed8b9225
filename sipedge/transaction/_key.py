# -*- test-case-name: sipedge.test.test_transaction -*-
"""
Matching messages to transactions (RFC 3261 17.1.3 and 17.2.3).

A transaction is found by a L{TransactionKey} computed from the message:

 - client side (17.1.3): the branch of the top Via and the CSeq method, so
   a CANCEL, which reuses the INVITE's branch, has its own transaction;
 - server side (17.2.3): the branch and sent-by of the top Via and the
   method, where an ACK has the method of the INVITE it acknowledges;
 - server side, for requests from RFC 2543 elements whose branch lacks the
   magic cookie C{z9hG4bK} (or is the bare cookie, which RFC 4475 3.1.1.1
   calls semantically defective): the Request-URI, To tag, From tag,
   Call-ID, CSeq number and top Via. An ACK there carries the To tag of the
   response it acknowledges rather than the INVITE's, so the layer checks
   that tag against the transaction's final response (L{ack_matches}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from sipedge.error import MessageParseError
from sipedge.message import Message, Request, Response

if TYPE_CHECKING:
    from sipedge.message import Via

__all__ = [
    "TransactionKey",
    "ack_matches",
    "client_key",
    "response_server_key",
    "server_key",
]


@attrs.frozen
class TransactionKey:
    """
    What identifies one transaction. RFC 3261 keys set C{branch} (and, on
    the server side, C{sent_by}); RFC 2543 keys leave C{branch} C{None} and
    set the other fields.

    @ivar method: the method of the request that created the transaction
        (C{INVITE} for an ACK).
    @ivar branch: the top Via branch (RFC 3261 keys only).
    @ivar sent_by: the top Via sent-by, host lower-cased (server keys only).
    @ivar request_uri: the Request-URI as written (RFC 2543 keys).
    @ivar call_id: the Call-ID (RFC 2543 keys).
    @ivar cseq_number: the CSeq number (RFC 2543 keys).
    @ivar from_tag: the From tag, or C{None} (RFC 2543 keys).
    @ivar to_tag: the To tag, or C{None} (RFC 2543 keys).
    @ivar via: the top Via without C{received} and C{rport}, host
        lower-cased (RFC 2543 keys).
    """

    method: str
    branch: str | None = None
    sent_by: str | None = None
    request_uri: str | None = None
    call_id: str | None = None
    cseq_number: int | None = None
    from_tag: str | None = None
    to_tag: str | None = None
    via: str | None = None

    @property
    def is_rfc3261(self) -> bool:
        """True for a key made from an RFC 3261 branch."""
        return self.branch is not None

    def with_method(self, method: str) -> TransactionKey:
        """The same key for another method (a CANCEL's INVITE, 9.2)."""
        return attrs.evolve(self, method=method)

    def with_to_tag(self, to_tag: str | None) -> TransactionKey:
        """The same key with another To tag (RFC 2543 keys)."""
        return attrs.evolve(self, to_tag=to_tag)

    def __str__(self) -> str:
        if self.is_rfc3261:
            where = f" {self.sent_by}" if self.sent_by is not None else ""
            return f"{self.branch} {self.method}{where}"
        return f"rfc2543 {self.call_id} {self.cseq_number} {self.method} {self.via}"


def _sent_by(via: Via) -> str:
    host = via.host.lower()
    return host if via.port is None else f"{host}:{via.port}"


def _via_identity(message: Message) -> str:
    """The top Via as the 2543 rules compare it: without what we stamped."""
    via = message.top_via.without_param("received").without_param("rport")
    return str(attrs.evolve(via, host=via.host.lower()))


def server_key(request: Request) -> TransactionKey:
    """
    The key of the server transaction C{request} belongs to (RFC 3261
    17.2.3). An ACK gets the key of its INVITE transaction (for RFC 2543
    requests, with the ACK's To tag: see L{ack_matches}).

    @raise MessageParseError: if a field the key needs is malformed.
    """
    method = "INVITE" if request.method == "ACK" else request.method
    via = request.top_via
    if via.is_rfc3261_branch:
        return TransactionKey(method=method, branch=via.branch, sent_by=_sent_by(via))
    return TransactionKey(
        method=method,
        request_uri=request.uri,
        call_id=request.call_id,
        cseq_number=request.cseq.number,
        from_tag=request.from_address.tag,
        to_tag=request.to_address.tag,
        via=_via_identity(request),
    )


def client_key(message: Message) -> TransactionKey:
    """
    The key of the client transaction a request creates or a response
    belongs to (RFC 3261 17.1.3): top Via branch and CSeq method.

    @raise MessageParseError: if the top Via or the CSeq is malformed.
    """
    branch = message.top_via.branch
    if isinstance(message, Response):
        return TransactionKey(method=message.cseq.method, branch=branch)
    return TransactionKey(method=message.method, branch=branch)


def response_server_key(response: Response) -> TransactionKey | None:
    """
    The key of the server transaction that sent C{response}, if it has an
    RFC 3261 branch (an RFC 2543 key needs the Request-URI, which a response
    does not carry); C{None} otherwise.

    @raise MessageParseError: if the top Via or the CSeq is malformed.
    """
    via = response.top_via
    if not via.is_rfc3261_branch:
        return None
    return TransactionKey(method=response.cseq.method, branch=via.branch, sent_by=_sent_by(via))


def ack_matches(ack: Request, final_response: Response | None) -> bool:
    """
    True if the To tag of C{ack} is the To tag of C{final_response}, the
    final response an RFC 2543 INVITE server transaction sent (17.2.3).
    """
    if final_response is None:
        return False
    try:
        return ack.to_address.tag == final_response.to_address.tag
    except MessageParseError:
        return False
