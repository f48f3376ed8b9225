# -*- test-case-name: sipedge.test.test_proxy_dialogs -*-
"""
The INVITE dialogs we record-route, remembered so that the proxy can end a
call itself, as Kamailio's dialog module does (C{dlg_end_dlg}): a BYE to
each party, built from what each party would need to see in a request of
the other one.

For each confirmed dialog (the first 2xx of an initial INVITE that carries
our Record-Route) the tracker keeps, per party: its remote target (its
Contact, refreshed by re-INVITE and UPDATE), the route set towards it
from where we stand (the Record-Route entries between us and it, nearest
first), the flow it is reached on, the From and To it expects, and the
highest CSeq number the other party has used (our BYE uses one more).

It also enforces RFC 4028 session timers: a dialog whose 2xx negotiated a
Session-Expires interval and sees no refresh (a 2xx to a re-INVITE or
UPDATE) before the interval minus min(32, interval/3) seconds (RFC 4028
10) is ended like a call whose media stopped.

A dialog is forgotten on its BYE, on a 481 or 408 to one of its requests
(RFC 5057), when it is ended, and at the latest C{max_lifetime} seconds
after its last refresh (a party crashed and no BYE ever came), so memory
stays bounded; at most C{max_dialogs} are tracked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge import _debug
from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.interfaces import CALLEE, CALLER, IDialogListener, IProxyObserver
from sipedge.message import Headers, Request, Response, quote_text
from sipedge.pipeline import Forward
from sipedge.proxy._dialog_records import Dialog, DialogSeed, Party
from sipedge.proxy._forwarding import _strict_route_fixup

__all__ = [
    "CALLEE",
    "CALLER",
    "Dialog",
    "DialogSeed",
    "DialogTracker",
    "Party",
    "session_expires",
]


#: The BYE's Reason text (RFC 3326) for each way the relay ends a call.
MEDIA_REASONS = {
    "idle": "media timeout",
    "max-duration": "media maximum duration",
    "setup-timeout": "media setup timeout",
    "closed": "media relay closed",
    "lost": "media session lost by the relay",
}

_REFRESHING = frozenset(("INVITE", "UPDATE"))


def session_expires(message: Request | Response) -> int | None:
    """
    The delta-seconds of C{message}'s Session-Expires (RFC 4028 4), or
    C{None} if it has none or it does not parse.
    """
    value = message.headers.get("Session-Expires")
    if value is None:
        return None
    head = value.split(";", 1)[0].strip()
    if not (head.isascii() and head.isdigit()) or len(head) > 10:
        return None
    seconds = int(head)
    return seconds if seconds > 0 else None


def _other(role: str) -> str:
    return CALLEE if role == CALLER else CALLER


def _contact(message: Request | Response) -> str | None:
    """The first Contact header field's value, unparsed."""
    return message.headers.get("Contact")


def _reason(cause: int, text: str) -> str:
    try:
        quoted = quote_text(text)
    except MessageParseError:
        quoted = '"ended by sipedge"'
    return f"SIP;cause={cause};text={quoted}"


@implementer(IProxyObserver)
class DialogTracker:
    """
    The dialogs the proxy record-routes, and ending them with BYE.

    The proxy core tells it of every chain decision (it is an
    L{IProxyObserver}: in-dialog requests raise CSeqs, a BYE forgets) and
    of every final response a branch receives (L{response_received}: a 2xx
    confirms or refreshes a dialog). C{originate} is the core's
    L{ProxyCore.originate}, set by whoever builds both.

    @param clock: an C{IReactorTime}.
    @param max_lifetime: seconds after which a dialog is forgotten if
        nothing refreshed it (0: never).
    @param max_dialogs: the most dialogs tracked at once.
    @param session_timers: whether RFC 4028 session expiry ends calls.
    @param max_forwards: the Max-Forwards of our BYEs.
    """

    _log = Logger()

    def __init__(
        self,
        clock: Any,
        *,
        originate: Callable[[Request, Flow | None], Deferred[Response]] | None = None,
        max_lifetime: float = 43200.0,
        max_dialogs: int = 100_000,
        session_timers: bool = True,
        max_forwards: int = 70,
    ) -> None:
        self._clock = clock
        self.originate = originate
        self.max_lifetime = max_lifetime
        self.max_dialogs = max_dialogs
        self.session_timers = session_timers
        self.max_forwards = max_forwards
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        #: The L{IDialogListener}s told when a dialog is over, however it
        #: ended (L{add_listener}).
        self.listeners: list[IDialogListener] = []
        self.stats = {"confirmed": 0, "ended": 0, "expired": 0, "forgotten": 0, "untracked": 0}

    def __len__(self) -> int:
        return len(self._dialogs)

    def add_listener(self, listener: IDialogListener) -> None:
        """Tell C{listener} of every dialog that is over (once each)."""
        if listener not in self.listeners:
            self.listeners.append(listener)

    def __repr__(self) -> str:
        return f"<DialogTracker dialogs={len(self._dialogs)}>"

    def find(self, call_id: str, tag: str | None, other: str | None) -> Dialog | None:
        """The dialog of C{call_id} between the tags C{tag} and C{other}, in either order."""
        if tag is None or other is None:
            return None
        dialog = self._dialogs.get((call_id, tag, other))
        if dialog is None:
            dialog = self._dialogs.get((call_id, other, tag))
        return dialog

    @property
    def dialogs(self) -> tuple[Dialog, ...]:
        return tuple(self._dialogs.values())

    def stop(self) -> None:
        """Forget every dialog and stop every timer (the service is stopping)."""
        for dialog in list(self._dialogs.values()):
            self._forget(dialog)

    # -- IProxyObserver -------------------------------------------------------

    def request_decided(self, context: Any, result: Any) -> None:
        """An in-dialog request goes on: its CSeq counts; a BYE forgets the dialog."""
        if not isinstance(result, Forward) or not self._dialogs:
            return
        request = context.original
        try:
            call_id = request.call_id
            from_tag = request.from_address.tag
            to_tag = request.to_address.tag
            cseq = request.cseq.number
        except MessageParseError:
            return
        dialog = self.find(call_id, from_tag, to_tag)
        if dialog is None:
            return
        role = dialog.role_of(from_tag)
        if cseq > dialog.cseq[role]:
            dialog.cseq[role] = cseq
        if request.method == "BYE":
            if _debug.enabled():  # every call ends here
                self._log.debug("Dialog {call_id} ended by BYE", call_id=call_id)
            self._forget(dialog)
            self._tell(dialog, "bye")

    # -- responses (from the core) ------------------------------------------

    def response_received(
        self, context: Any, sent: Request, response: Response, flow: Flow
    ) -> DialogSeed | None:
        """
        A final response came back on a branch: C{sent} is the request as
        we forwarded it, C{context} its L{RequestContext}, C{flow} where
        the response came from.

        @return: for the first 2xx of a new dialog, what the INVITE gives
            any dialog of it (L{seed}), for a 2xx of another dialog that
            may come after the fork is let go of (L{late_2xx}).
        """
        try:
            method = response.cseq.method
            call_id = response.call_id
            from_tag = response.from_address.tag
            to_tag = response.to_address.tag
            sent_to_tag = sent.to_address.tag
        except MessageParseError:
            return None
        status = response.status
        if sent_to_tag is None:
            if method == "INVITE" and 200 <= status < 300 and to_tag is not None:
                if self.find(call_id, from_tag, to_tag) is None:
                    return self._confirm(context, sent, response, flow)
            return None
        dialog = self.find(call_id, from_tag, to_tag)
        if dialog is None:
            return None
        if status in (408, 481):
            # RFC 5057 5.1: the dialog is gone at the far end.
            self._log.info(
                "Dialog {call_id} ended: {method} answered {status}",
                call_id=call_id,
                method=method,
                status=status,
            )
            self._forget(dialog)
            self._tell(dialog, f"gone: {status}")
        elif 200 <= status < 300 and method in _REFRESHING:
            self._refreshed(dialog, dialog.role_of(from_tag), sent, response)
        return None

    def seed(self, context: Any, sent: Request) -> DialogSeed | None:
        """
        What confirming a dialog of C{sent} (an initial INVITE as we
        forwarded it, C{context} its L{RequestContext}) needs from the
        request, kept without the messages: a fork lets go of them while a
        2xx of another dialog may still come (a forking proxy downstream).
        C{None} if C{sent} is in a dialog already, or its fields do not parse.
        """
        if context is None:
            return None
        original: Request = context.original
        try:
            if sent.to_address.tag is not None:
                return None
            return DialogSeed(
                len(sent.headers.values("Record-Route")),
                tuple(original.headers.values("Record-Route")),
                _contact(original),
                original.headers.get("From"),
                context.flow,
                sent.cseq.number,
            )
        except MessageParseError:
            return None

    def late_2xx(self, seed: DialogSeed, response: Response, flow: Flow) -> None:
        """
        A 2xx to the initial INVITE of C{seed} that came once the fork had
        let go of its request (L{seed}): a dialog not known yet (another
        phone's, answering through a forking proxy downstream) is tracked.
        """
        try:
            if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
                return
            call_id = response.call_id
            from_tag = response.from_address.tag
            to_tag = response.to_address.tag
        except MessageParseError:
            return
        if to_tag is not None and self.find(call_id, from_tag, to_tag) is None:
            self._confirm_seed(seed, response, flow)

    def _confirm(
        self, context: Any, sent: Request, response: Response, flow: Flow
    ) -> DialogSeed | None:
        """The first 2xx of an initial INVITE: a dialog, if we record-routed it."""
        seed = self.seed(context, sent)
        if seed is not None:
            self._confirm_seed(seed, response, flow)
        return seed

    def _confirm_seed(self, seed: DialogSeed, response: Response, flow: Flow) -> None:
        try:
            received_rr = response.headers.values("Record-Route")
            call_id = response.call_id
            caller_tag = response.from_address.tag
            callee_tag = response.to_address.tag
            to_value = response.headers.get("To")
        except MessageParseError:
            return
        sent_rr = seed.sent_rr
        upstream_rr = seed.upstream_rr
        ours = sent_rr - len(upstream_rr)
        below = len(received_rr) - sent_rr
        caller_target = seed.caller_contact
        from_value = seed.from_value
        callee_target = _contact(response)
        if (
            ours <= 0
            or below < 0
            or caller_tag is None
            or callee_tag is None
            or caller_target is None
            or callee_target is None
            or from_value is None
            or to_value is None
        ):
            # Not record-routed by us (later requests will not come
            # through us), or a party without a Contact: nothing to end.
            self.stats["untracked"] += 1
            return
        if len(self._dialogs) >= self.max_dialogs:
            self.stats["untracked"] += 1
            self._log.warn(
                "Dialog {call_id} not tracked: {count} dialogs already",
                call_id=call_id,
                count=len(self._dialogs),
            )
            return
        dialog = Dialog(
            call_id,
            caller_tag,
            callee_tag,
            {
                CALLER: Party(
                    caller_target,
                    upstream_rr,
                    seed.caller_flow,
                    to_value,
                    from_value,
                ),
                CALLEE: Party(
                    callee_target,
                    tuple(reversed(received_rr[:below])),
                    flow,
                    from_value,
                    to_value,
                ),
            },
            {CALLER: seed.cseq, CALLEE: 0},
        )
        self._dialogs[dialog.key] = dialog
        self.stats["confirmed"] += 1
        self._set_session_timer(dialog, response)

    def _refreshed(self, dialog: Dialog, requester: str, sent: Request, response: Response) -> None:
        """
        A 2xx to a re-INVITE or UPDATE: both remote targets are refreshed
        (RFC 3261 12.2, RFC 3311 5.1), and so is the session timer.
        """
        for role, message in ((requester, sent), (_other(requester), response)):
            contact = _contact(message)
            party = dialog.parties[role]
            if contact is not None and contact != party.contact:
                dialog.parties[role] = attrs.evolve(party, contact=contact)
        self._set_session_timer(dialog, response)

    # -- timers -----------------------------------------------------------------

    def _set_session_timer(self, dialog: Dialog, response: Response) -> None:
        """
        Arm the dialog's one timer: at the session expiry the 2xx
        negotiated (RFC 4028 10: interval minus min(32, interval/3)), else
        at the end of its lifetime.
        """
        interval = session_expires(response) if self.session_timers else None
        dialog.session_expires = interval
        now = self._clock.seconds()
        deadline = None
        expiring = False
        if interval is not None:
            deadline = now + interval - min(32.0, interval / 3)
            expiring = True
        if self.max_lifetime and (deadline is None or now + self.max_lifetime < deadline):
            deadline = now + self.max_lifetime
            expiring = False
        if dialog.timer is not None and dialog.timer.active():
            dialog.timer.cancel()
        dialog.timer = None
        dialog.expiring = expiring
        if deadline is None:
            return
        dialog.deadline = deadline
        dialog.timer = self._clock.callLater(deadline - now, self._deadline, dialog)

    def _deadline(self, dialog: Dialog) -> None:
        dialog.timer = None
        if self._dialogs.get(dialog.key) is not dialog:
            return
        if dialog.expiring:
            self.stats["expired"] += 1
            self._log.info(
                "Session of call {call_id} expired: no refresh in {interval} s (RFC 4028)",
                call_id=dialog.call_id,
                interval=dialog.session_expires,
            )
            self._end(dialog, "session expired", 408)
        else:
            self.stats["forgotten"] += 1
            self._log.info(
                "Dialog {call_id} forgotten after {lifetime} s without a refresh",
                call_id=dialog.call_id,
                lifetime=self.max_lifetime,
            )
            self._forget(dialog)
            self._tell(dialog, "forgotten")

    def _forget(self, dialog: Dialog) -> None:
        if self._dialogs.get(dialog.key) is dialog:
            del self._dialogs[dialog.key]
        if dialog.timer is not None and dialog.timer.active():
            dialog.timer.cancel()
        dialog.timer = None

    # -- ending calls -----------------------------------------------------------

    def media_ended(self, ended: Any) -> None:
        """
        The relay ended an anchored call's media (a L{MediaEnded}): end the
        call with a BYE to each party.
        """
        text = MEDIA_REASONS.get(ended.reason, f"media ended ({ended.reason})")
        if not self.end(ended.call_id, ended.caller_tag, ended.callee_tag, text) and (
            ended.reason != "closed"  # the relay closes at shutdown, after we stopped
        ):
            self._log.info(
                "Media of call {call_id} ended ({reason}) and no dialog of it is known:"
                " no BYE sent",
                call_id=ended.call_id,
                reason=ended.reason,
            )

    def end(
        self, call_id: str, tag: str | None, other: str | None, text: str, cause: int = 200
    ) -> bool:
        """
        End the dialog of C{call_id} between C{tag} and C{other} (in either
        order): a BYE to each party, with C{Reason: SIP;cause=<cause>;
        text="<text>"} (RFC 3326). False if no such dialog is known.
        """
        dialog = self.find(call_id, tag, other)
        if dialog is None:
            return False
        self._end(dialog, text, cause)
        return True

    def _end(self, dialog: Dialog, text: str, cause: int) -> None:
        self.stats["ended"] += 1
        self._log.info(
            "Ending call {call_id} ({reason}): BYE to both parties",
            call_id=dialog.call_id,
            reason=text,
            caller_tag=dialog.caller_tag,
            callee_tag=dialog.callee_tag,
        )
        reason = _reason(cause, text)
        for role in (CALLER, CALLEE):
            self._send_bye(dialog, role, reason)
        # Forgotten after the BYEs are sent: the core finds the dialog of a
        # BYE it hides (topology hiding masks its Call-ID by the caller's side).
        self._forget(dialog)
        self._tell(dialog, f"ended: {text}")

    def _tell(self, dialog: Dialog, reason: str) -> None:
        """Tell every L{IDialogListener} that C{dialog} is over."""
        for listener in list(self.listeners):
            try:
                listener.dialog_ended(dialog.call_id, dialog.caller_tag, dialog.callee_tag, reason)
            except Exception:
                self._log.failure("Dialog listener {listener!r} failed", listener=listener)

    def bye(self, dialog: Dialog, role: str, reason: str) -> Request | None:
        """
        The BYE we send to the party of C{role}, without our Via; C{None}
        if its Contact does not parse.
        """
        party = dialog.parties[role]
        target = party.target
        if target is None:
            return None
        cseq = dialog.cseq[_other(role)] + 1
        headers = Headers.of(
            *(("Route", value) for value in party.route),
            ("Max-Forwards", str(self.max_forwards)),
            ("From", party.from_),
            ("To", party.to),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{cseq} BYE"),
            ("Reason", reason),
            ("Content-Length", "0"),
        )
        return _strict_route_fixup(Request("BYE", target, headers))

    def _send_bye(self, dialog: Dialog, role: str, reason: str) -> None:
        request = self.bye(dialog, role, reason)
        if request is None:
            self._log.info(
                "Cannot send BYE to the {role} of call {call_id}: its Contact does not parse",
                role=role,
                call_id=dialog.call_id,
            )
            return
        if self.originate is None:
            self._log.warn("Cannot send BYE for {call_id}: no originator", call_id=dialog.call_id)
            return
        d = self.originate(request, dialog.parties[role].flow)
        d.addCallbacks(
            self._bye_answered,
            self._bye_failed,
            callbackArgs=(dialog.call_id, role),
            errbackArgs=(dialog.call_id, role),
        )

    def _bye_answered(self, response: Response, call_id: str, role: str) -> None:
        self._log.info(
            "BYE to the {role} of call {call_id} answered {status}",
            role=role,
            call_id=call_id,
            status=response.status,
        )

    def _bye_failed(self, failure: Failure, call_id: str, role: str) -> None:
        self._log.info(
            "BYE to the {role} of call {call_id} failed: {error}",
            role=role,
            call_id=call_id,
            error=failure.getErrorMessage(),
        )
