# -*- test-case-name: sipedge.test.test_testing -*-
"""
L{RecordingReceiver}: an L{IMessageReceiver} that keeps what it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from sipedge.interfaces import IMessageReceiver

__all__ = ["RecordingReceiver"]



@implementer(IMessageReceiver)
class RecordingReceiver:
    """
    An L{IMessageReceiver} that keeps everything it gets.

    @ivar messages: C{(message, flow)} pairs, in order.
    @ivar malformed: C{(data, flow, error)} triples, in order.
    """

    def __init__(
        self,
        on_message: Callable[[Any, Any], object] | None = None,
        on_malformed: Callable[[bytes, Any, Any], object] | None = None,
    ) -> None:
        """
        @param on_message: also called with each C{(message, flow)}.
        @param on_malformed: also called with each C{(data, flow, error)}.
        """
        self.messages: list[tuple[Any, Any]] = []
        self.malformed: list[tuple[bytes, Any, Any]] = []
        self._on_message = on_message
        self._on_malformed = on_malformed

    def message_received(self, message: Any, flow: Any) -> None:
        self.messages.append((message, flow))
        if self._on_message is not None:
            self._on_message(message, flow)

    def malformed_message(self, data: bytes, flow: Any, error: Any) -> None:
        self.malformed.append((data, flow, error))
        if self._on_malformed is not None:
            self._on_malformed(data, flow, error)


