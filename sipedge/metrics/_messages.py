# -*- test-case-name: sipedge.test.test_metrics -*-
"""
Counting SIP messages in and out, by method and by status class: a tap the
transport manager shows every message to. Plain dict increments on the hot
path; the collector reads them when Prometheus scrapes.
"""

from __future__ import annotations

from collections import Counter

from zope.interface import implementer

from sipedge.interfaces import IMessageTap
from sipedge.message import Message, Request, Response
from sipedge.transport import Flow

__all__ = ["KNOWN_METHODS", "MessageCounter"]

#: Methods counted under their own name; any other is counted as C{"other"}
#: so that label values stay bounded whatever peers send.
KNOWN_METHODS = frozenset(
    (
        "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE",
        "PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
    )
)
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")


def _method(name: str) -> str:
    return name if name in KNOWN_METHODS else "other"


@implementer(IMessageTap)
class MessageCounter:
    """
    @ivar requests: C{(direction, method) -> count}, direction C{"in"} or C{"out"}.
    @ivar responses: C{(direction, status class) -> count}.
    @ivar malformed: datagrams or stream messages that did not parse.
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.responses: Counter[tuple[str, str]] = Counter()
        self.malformed = 0

    def _count(self, message: Message, direction: str) -> None:
        if isinstance(message, Request):
            self.requests[(direction, _method(message.method))] += 1
        elif isinstance(message, Response):
            code = message.status // 100
            self.responses[(direction, _CLASSES[code - 1] if 1 <= code <= 6 else "other")] += 1

    def message_in(self, message: Message, flow: Flow) -> None:
        self._count(message, "in")

    def message_out(self, message: Message, flow: Flow) -> None:
        self._count(message, "out")

    def malformed_in(self, data: bytes, flow: Flow) -> None:
        self.malformed += 1
