# -*- test-case-name: sipedge.test.test_capture -*-
"""
The capture tap: every SIP message the transports receive or send, as a
HEPv3 packet to a collector (L{HepSender}).
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.capture._hep import HepError, HepPacket, encode_hep3
from sipedge.capture._sender import HepSender
from sipedge.interfaces import IMessageTap
from sipedge.message import Message
from sipedge.message import serialize as serialize_message
from sipedge.transport import Flow

__all__ = ["HepCapture"]


@implementer(IMessageTap)
class HepCapture:
    """
    Copies messages to a HEP collector.

    @ivar encode_errors: messages that could not be encapsulated (over
        64 KiB), counted and skipped.
    """

    _log = Logger(namespace="sipedge.capture")

    def __init__(
        self, sender: HepSender, clock: IReactorTime, *, node_id: int, password: str = ""
    ) -> None:
        self._sender = sender
        self._clock = clock
        self._node_id = node_id
        self._password = password.encode()
        self.encode_errors = 0

    def message_in(self, message: Message, flow: Flow) -> None:
        self._capture(serialize_message(message), flow.remote, flow.local, flow,
                      message.header("Call-ID"))

    def message_out(self, message: Message, flow: Flow) -> None:
        self._capture(serialize_message(message), flow.local, flow.remote, flow,
                      message.header("Call-ID"))

    def malformed_in(self, data: bytes, flow: Flow) -> None:
        self._capture(data, flow.remote, flow.local, flow, None)

    def _capture(
        self,
        payload: bytes,
        source: tuple[str, int],
        destination: tuple[str, int],
        flow: Flow,
        call_id: str | None,
    ) -> None:
        try:
            packet = encode_hep3(HepPacket(
                transport="UDP" if flow.transport == "UDP" else "TCP",
                source=source,
                destination=destination,
                time=self._clock.seconds(),
                node_id=self._node_id,
                payload=payload,
                password=self._password,
                correlation_id=(call_id or "").encode("utf-8", "replace"),
            ))
        except HepError as e:
            self.encode_errors += 1
            self._log.debug("Not captured ({error}) on {flow}", error=e, flow=flow)
            return
        self._sender.send(packet)
