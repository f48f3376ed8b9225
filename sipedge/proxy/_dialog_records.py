# -*- test-case-name: sipedge.test.test_proxy_dialogs -*-
"""
The records of L{sipedge.proxy._dialogs}: a dialog through us, how to
reach each of its parties, and what its initial INVITE gives it.
"""

from __future__ import annotations

from typing import Any

import attrs

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.interfaces import CALLEE, CALLER
from sipedge.message import parse_contact

__all__ = ["Dialog", "DialogSeed", "Party"]


@attrs.frozen
class Party:
    """
    How to reach one party of a dialog with a request of ours.

    @ivar contact: its Contact header field as received (parsed only when
        a BYE is sent: most calls end without one of ours).
    @ivar route: the route set towards it from us, nearest hop first.
    @ivar flow: the flow it (or the hop before it) is reached on.
    @ivar from_: the From of a request to it: the other party, with its tag.
    @ivar to: the To of a request to it: itself, with its tag.
    """

    contact: str
    route: tuple[str, ...]
    flow: Flow | None
    from_: str
    to: str

    @property
    def target(self) -> str | None:
        """Its remote target: the URI of its Contact, or C{None} if that does not parse."""
        try:
            contacts = parse_contact(self.contact)
        except MessageParseError:
            return None
        if not isinstance(contacts, tuple) or not contacts:
            return None
        return str(contacts[0].uri)


@attrs.frozen
class DialogSeed:
    """
    What the initial INVITE of a dialog gives it (L{DialogTracker.seed}).

    @ivar sent_rr: how many Record-Route fields the INVITE had as we sent it.
    @ivar upstream_rr: its Record-Route values as received (the caller's side).
    @ivar caller_contact: its first Contact field, or C{None}.
    @ivar from_value: its From field, or C{None}.
    @ivar caller_flow: the flow it came on.
    @ivar cseq: its CSeq number.
    """

    sent_rr: int
    upstream_rr: tuple[str, ...]
    caller_contact: str | None
    from_value: str | None
    caller_flow: Flow | None
    cseq: int


@attrs.define(eq=False)
class Dialog:
    """
    A confirmed INVITE dialog through us.

    @ivar cseq: the highest CSeq number seen in requests from each role.
    @ivar session_expires: the negotiated RFC 4028 interval, or C{None}.
    @ivar deadline: when the dialog is ended (session expiry) or forgotten
        (lifetime), on the tracker's clock.
    """

    call_id: str
    caller_tag: str
    callee_tag: str
    parties: dict[str, Party]
    cseq: dict[str, int]
    session_expires: int | None = None
    deadline: float = 0.0
    expiring: bool = False
    timer: Any = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.caller_tag, self.callee_tag)

    def role_of(self, from_tag: str | None) -> str:
        """The role of the party whose tag is C{from_tag}."""
        return CALLER if from_tag == self.caller_tag else CALLEE
