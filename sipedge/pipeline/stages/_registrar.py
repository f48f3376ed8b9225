# -*- test-case-name: sipedge.test.test_stages -*-
"""
The registrar stage: a REGISTER for one of our domains is answered by the
registrar (RFC 3261 10.3).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IDialogNeutralStage, IRequestStage
from sipedge.message import Response
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Respond, StageResult

__all__ = ["RegistrarStage", "respond_with"]

_CONTINUE = Continue()
_COPIED = frozenset(("via", "from", "to", "call-id", "cseq", "content-length"))


def respond_with(response: Response) -> Respond:
    """A L{Respond} that reproduces C{response}'s status and own fields."""
    headers = tuple(
        (name, value) for key, name, value in response.headers.fields if key not in _COPIED
    )
    return Respond(response.status, response.reason or None, headers, response.body)


# Acts on REGISTER only, which never belongs to a dialog.
@implementer(IRequestStage, IDialogNeutralStage)
class RegistrarStage:
    name = "registrar"

    def process_request(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        request = context.request
        if request.method != "REGISTER" or context.annotations.get("responsibility") != "local":
            return _CONTINUE
        registrar = context.services.registrar
        if registrar is None:
            return Respond(405, None, (("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),))
        d = registrar.handle_register(request, context.flow)
        d.addCallback(self._note_authenticated, context)
        return d.addCallback(respond_with)

    @staticmethod
    def _note_authenticated(response: Response, context: RequestContext) -> Response:
        """
        After an authenticated REGISTER succeeds, its source joins the
        allow-list of authenticated sources (the larger flood budget) until
        its last binding expires.
        """
        security = getattr(context.services, "security", None)
        if security is None or context.identity is None or response.status != 200:
            return response
        longest = 0
        try:
            contacts = response.contacts
            if isinstance(contacts, tuple):
                longest = max((c.expires or 0 for c in contacts), default=0)
        except MessageParseError:
            pass
        now = context.services.clock.seconds()
        security.note_authenticated(context.flow.remote_host, context.identity, now + longest)
        return response
