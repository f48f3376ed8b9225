# -*- test-case-name: sipedge.test.test_accounting -*-
"""
Call records: one JSON object per call, as an operator's billing, fraud and
quality tools read them (the CDRs Kamailio's acc module or a PBX writes).

L{CallRecorder} watches the signalling itself, so it needs nothing from
the stages: as a message tap it sees each initial INVITE arrive, the final
response sipedge sends back (every response sipedge sends goes upstream),
and the BYE that ends the call, from either party or from sipedge itself
(the media stopped, the session expired); as a proxy observer it learns
who authenticated. A call that fails is recorded with its final status; a
call that is answered, when it ends. A challenge (401, 407) ends no call:
the INVITE sent again with credentials starts its record.

It keeps one small entry per call in progress, bounded in number and in
age, and hands finished records to a writer (L{JsonLinesWriter}) that
writes them off the reactor thread.

Given the media relay, it adds the relay's packet, byte and drop counts of
an anchored call: as a relay observer it learns each session's final
counts when the session ends (the anchor names sessions
C{<Call-ID>;<caller tag>[;<n>]}). A session usually ends just after the
BYE that ends the call, so a call whose sessions are still live when it
ends waits for them (at most C{media_grace} seconds) before it is written.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IMediaRelay, IMessageTap, IProxyObserver
from sipedge.media import DirectionStats, SessionEnd
from sipedge.message import Message, Request, Response
from sipedge.transport import Flow

__all__ = ["CallRecord", "CallRecorder"]


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


@attrs.define
class CallRecord:
    """
    One call, as far as it has got.

    @ivar call_id: the Call-ID.
    @ivar caller_tag: the caller's From tag.
    @ivar caller: the From URI; C{callee}: the To URI;
        C{request_uri}: where the caller asked to go.
    @ivar source: C{host:port} the INVITE came from, and its transport.
    @ivar user: the authenticated user, or C{None}.
    @ivar start: when the INVITE arrived; C{answer}: its 2xx went back;
        C{end}: the call ended (or failed).
    @ivar status: the final status sent to the caller.
    @ivar ended_by: C{"caller"}, C{"callee"}, C{"proxy"} (sipedge sent the
        BYE), C{"timeout"} (the record's age limit) or C{None} for a failed
        call.
    @ivar reason: why it ended: C{"bye"}, the text of sipedge's Reason, or
        the final response's reason phrase.
    @ivar a_to_b: the relay's counts of the media from the caller (party
        A) to the callee, over the call's relay sessions; C{None} if the
        call had none; C{b_to_a}: the other way.
    @ivar waiting: the keys of relay sessions still live when the call
        ended, whose end the record waits for.
    """

    call_id: str
    caller_tag: str
    caller: str
    callee: str
    request_uri: str
    source: str
    transport: str
    start: float
    user: str | None = None
    answer: float | None = None
    end: float | None = None
    status: int | None = None
    ended_by: str | None = None
    reason: str | None = None
    callee_tag: str | None = None
    a_to_b: DirectionStats | None = None
    b_to_a: DirectionStats | None = None
    sessions: int = 0
    waiting: set[str] = attrs.Factory(set)
    grace: Any = None

    def add_media(self, end: SessionEnd) -> None:
        """Count the final statistics of one of the call's relay sessions."""
        stats = end.stats
        self.sessions += 1
        self.a_to_b = stats.a_to_b if self.a_to_b is None else self.a_to_b + stats.a_to_b
        self.b_to_a = stats.b_to_a if self.b_to_a is None else self.b_to_a + stats.b_to_a
        self.waiting.discard(end.session_key)

    def _media(self) -> dict[str, Any] | None:
        if self.a_to_b is None or self.b_to_a is None:
            return None
        return {
            "sessions": self.sessions,
            **{name: {"packets": d.packets, "bytes": d.bytes, "dropped": d.dropped,
                      "drops": dict(sorted(d.drops.items()))}
               for name, d in (("a_to_b", self.a_to_b), ("b_to_a", self.b_to_a))},
        }

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (times ISO 8601 in UTC; seconds as numbers)."""
        duration = None
        if self.answer is not None and self.end is not None:
            duration = round(self.end - self.answer, 3)
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "request_uri": self.request_uri,
            "user": self.user,
            "source": self.source,
            "transport": self.transport,
            "start": _iso(self.start),
            "answer": _iso(self.answer),
            "end": _iso(self.end),
            "duration": duration,
            "status": self.status,
            "ended_by": self.ended_by,
            "reason": self.reason,
            "media": self._media(),
        }


def _uri(value: Any) -> str:
    try:
        return str(value.uri)
    except (AttributeError, MessageParseError):
        return ""


@implementer(IMessageTap, IProxyObserver)
class CallRecorder:
    """
    @ivar written: records handed to the writer.
    @ivar dropped: calls forgotten unrecorded because too many were in
        progress.
    """

    _log = Logger(namespace="sipedge.accounting")

    def __init__(
        self,
        write: Callable[[dict[str, Any]], None],
        clock: IReactorTime,
        *,
        max_calls: int = 100_000,
        max_age: float = 43_200.0,
        relay: IMediaRelay | None = None,
        media_grace: float = 5.0,
    ) -> None:
        """
        @param write: called with each finished record's JSON object.
        @param max_calls: calls in progress kept at most; past it the
            oldest is dropped (counted, logged once in 1000).
        @param max_age: seconds after which a call in progress is written
            as ended by C{"timeout"} (no BYE was seen: a lost BYE, a crash
            of both phones); checked when calls start.
        @param relay: the media relay whose sessions' counts go in the
            records (observed from now on), or C{None}.
        @param media_grace: the most seconds an ended call waits for its
            relay sessions to end before it is written without them.
        """
        self._write = write
        self._clock = clock
        self._max_calls = max_calls
        self._max_age = max_age
        self._calls: OrderedDict[str, CallRecord] = OrderedDict()
        #: Ended calls waiting for their relay sessions' end, by Call-ID.
        self._ending: dict[str, CallRecord] = {}
        self._relay = relay
        self._media_grace = media_grace
        self.written = 0
        self.dropped = 0
        if relay is not None:
            relay.add_observer(self._media_ended)

    def __len__(self) -> int:
        return len(self._calls)

    # IProxyObserver

    def request_decided(self, context: Any, result: Any) -> None:
        identity = getattr(context, "identity", None)
        if identity is None:
            return
        try:
            record = self._calls.get(context.original.call_id)
        except (AttributeError, MessageParseError):
            return
        if record is not None and record.user is None:
            record.user = identity

    # IMessageTap

    def message_in(self, message: Message, flow: Flow) -> None:
        try:
            if isinstance(message, Request):
                if message.method == "INVITE" and message.to_address.tag is None:
                    self._started(message, flow)
                elif message.method == "BYE":
                    self._bye(message, sent_by_us=False)
        except MessageParseError:
            return

    def message_out(self, message: Message, flow: Flow) -> None:
        try:
            if isinstance(message, Response):
                if message.status >= 200 and message.cseq.method == "INVITE":
                    self._final(message)
            elif isinstance(message, Request) and message.method == "BYE":
                self._bye(message, sent_by_us=True)
        except MessageParseError:
            return

    def malformed_in(self, data: bytes, flow: Flow) -> None:
        pass

    # The call's life

    def _started(self, invite: Request, flow: Flow) -> None:
        call_id = invite.call_id
        if call_id in self._calls:
            return  # a retransmission, or a spiral back through us
        now = self._clock.seconds()
        self._expire(now)
        if len(self._calls) >= self._max_calls:
            self._calls.popitem(last=False)
            self.dropped += 1
            if self.dropped % 1000 == 1:
                self._log.warn("Call records: {count} calls in progress; oldest dropped"
                               " ({dropped} so far)", count=len(self._calls),
                               dropped=self.dropped)
        caller_tag = invite.from_address.tag or ""
        self._calls[call_id] = CallRecord(
            call_id=call_id,
            caller_tag=caller_tag,
            caller=_uri(invite.from_address),
            callee=_uri(invite.to_address),
            request_uri=str(invite.uri),
            source=f"{flow.remote_host}:{flow.remote_port}",
            transport=flow.transport,
            start=now,
        )

    def _final(self, response: Response) -> None:
        record = self._calls.get(response.call_id)
        if record is None or (record.status is not None and record.status < 300):
            return  # not ours, or a retransmitted 2xx of an answered call
        if response.status in (401, 407):
            # A challenge: the caller sends the INVITE again with credentials
            # (same Call-ID), which starts the call's record anew.
            del self._calls[record.call_id]
            return
        now = self._clock.seconds()
        record.status = response.status
        if response.status < 300:
            record.answer = now
            record.callee_tag = response.to_address.tag
            return
        record.end = now
        record.reason = response.reason
        self._finish(record)

    def _bye(self, bye: Request, sent_by_us: bool) -> None:
        record = self._calls.get(bye.call_id)
        if record is None or record.answer is None:
            return
        record.end = self._clock.seconds()
        if sent_by_us and self._is_ours(bye):
            record.ended_by = "proxy"
            record.reason = bye.header("Reason") or "bye"
        else:
            record.ended_by = "caller" if bye.from_address.tag == record.caller_tag else "callee"
            record.reason = "bye"
        self._finish(record)

    def _is_ours(self, bye: Request) -> bool:
        """A BYE sipedge originated has a single Via: ours."""
        return len(bye.headers.values("Via")) == 1 and bye.header("Reason") is not None

    def _finish(self, record: CallRecord) -> None:
        self._calls.pop(record.call_id, None)
        relay = self._relay
        if relay is None:
            self._written(record)
            return
        self._ending[record.call_id] = record
        d = relay.sessions()
        d.addCallbacks(lambda sessions: self._wait_for_media(record, sessions),
                       lambda failure: self._written(record))

    def _wait_for_media(self, record: CallRecord, sessions: Any) -> None:
        base = f"{record.call_id};{record.caller_tag}"
        record.waiting = {key for key in sessions
                          if key == base or key.startswith(base + ";")}
        if not record.waiting:
            self._written(record)
        elif record.grace is None and self._ending.get(record.call_id) is record:
            record.grace = self._clock.callLater(self._media_grace, self._written, record)

    def _media_ended(self, end: SessionEnd) -> None:
        """A relay session ended: count it in its call's record."""
        call_id, _, rest = end.session_key.partition(";")
        caller_tag = rest.partition(";")[0]
        record = self._ending.get(call_id) or self._calls.get(call_id)
        if record is None or record.caller_tag != caller_tag:
            return
        record.add_media(end)
        if self._ending.get(call_id) is record and not record.waiting and record.grace:
            self._written(record)

    def _written(self, record: CallRecord) -> None:
        if self._ending.get(record.call_id) is record:
            del self._ending[record.call_id]
        grace, record.grace = record.grace, None
        if grace is not None and grace.active():
            grace.cancel()
        self.written += 1
        self._write(record.to_json())

    def _expire(self, now: float) -> None:
        while self._calls:
            oldest = next(iter(self._calls.values()))
            if now - oldest.start < self._max_age:
                return
            oldest.end = now
            oldest.ended_by = "timeout"
            oldest.reason = "no BYE seen"
            self._finish(oldest)

    def flush(self) -> None:
        """
        Write every call still in progress as ended by C{"shutdown"}, and
        every ended call still waiting for its media's counts with what it
        has (stopping).
        """
        if self._relay is not None:
            self._relay.remove_observer(self._media_ended)
            self._relay = None
        for record in list(self._ending.values()):
            self._written(record)
        now = self._clock.seconds()
        for record in list(self._calls.values()):
            record.end = now
            record.ended_by = "shutdown"
            record.reason = "sipedge stopped"
            self._finish(record)
