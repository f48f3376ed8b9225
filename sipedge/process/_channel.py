# -*- test-case-name: sipedge.test.test_process_handoff -*-
"""
The channel between the workers of one supervisor: datagrams on loopback,
each a kind, a flow and a message's bytes (L{encode_handoff}), taken only
from the other workers' channel sockets (L{WorkerChannel}). What the
workers say over it: L{sipedge.process._handoff}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sipedge.flow import Flow
from sipedge.process._sockets import CHANNEL_HOST

__all__ = [
    "HANDOFF_MAGIC", "KINDS", "NEWS", "NO_FLOW", "WorkerChannel", "decode_handoff",
    "encode_handoff",
]

#: What every channel datagram starts with.
HANDOFF_MAGIC = b"SIPEDGE-HANDOFF/1 "

#: What a worker says to another: deliver a message as received on a flow;
#: send one on a flow; I hold this flow's connection (said when a phone
#: connects, and as the answer to a send); this flow's connection is gone;
#: I have (re)started (forget what I held, tell me what you hold); a CANCEL
#: (or ACK) that matches nothing here, is it yours?; it is mine (its
#: digest); I could not send what you handed me (its digest); news for
#: the others' state, with no flow (L{NO_FLOW}): a source authenticated
#: here, a ban was made here, a user's phone was lost here (its flow died),
#: a lost user registered again here.
KINDS = ("receive", "send", "owner", "gone", "hello", "stray", "claimed", "unsent",
         "authenticated", "banned", "lost", "found")

#: The kinds that are news (acted on by a worker's listeners, if any).
NEWS = ("authenticated", "banned", "lost", "found")

#: The flow of what concerns no flow (news, L{KINDS}).
NO_FLOW = Flow("UDP", CHANNEL_HOST, 0, CHANNEL_HOST, 0)

def encode_handoff(kind: str, flow: Flow, payload: bytes = b"") -> bytes:
    """One channel datagram: C{kind}, C{flow} and the message bytes."""
    header = json.dumps(
        [kind, flow.transport, flow.local_host, flow.local_port, flow.remote_host,
         flow.remote_port],
        separators=(",", ":"),
    )
    return HANDOFF_MAGIC + header.encode() + b"\n" + payload


def decode_handoff(data: bytes) -> tuple[str, Flow, bytes]:
    """
    What L{encode_handoff} wrote.

    @raise ValueError: if C{data} is not a channel datagram.
    """
    if not data.startswith(HANDOFF_MAGIC):
        raise ValueError("not a hand-off datagram")
    header, _, payload = data[len(HANDOFF_MAGIC):].partition(b"\n")
    try:
        kind, transport, local_host, local_port, remote_host, remote_port = json.loads(header)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        flow = Flow(str(transport), str(local_host), int(local_port), str(remote_host),
                    int(remote_port))
    except (TypeError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"bad hand-off header: {e}") from None
    return kind, flow, payload


class WorkerChannel(DatagramProtocol):
    """
    One worker's end of the channel: a UDP socket on loopback that takes
    datagrams only from the other workers' channel sockets (a local process
    cannot send from a port another socket holds), and hands what they say
    to C{deliver(sender_index, kind, flow, payload)}.

    @ivar refused: datagrams dropped (not from a worker, or not understood).
    """

    _log = Logger()
    transport: Any = None

    def __init__(
        self,
        index: int,
        ports: tuple[int, ...],
        deliver: Callable[[int, str, Flow, bytes], None],
    ) -> None:
        self.index = index
        self.ports = ports
        self._deliver = deliver
        self._senders = {port: i for i, port in enumerate(ports) if i != index}
        self.refused = 0

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        sender = self._senders.get(addr[1]) if addr[0] == CHANNEL_HOST else None
        if sender is None:
            self.refused += 1
            self._log.warn("Worker channel: dropped a datagram from {source}, not a worker",
                           source=f"{addr[0]}:{addr[1]}")
            return
        try:
            kind, flow, payload = decode_handoff(data)
        except ValueError as e:
            self.refused += 1
            self._log.warn("Worker channel: dropped a datagram from worker {index}: {error}",
                           index=sender, error=str(e))
            return
        self._deliver(sender, kind, flow, payload)

    def send(self, index: int, kind: str, flow: Flow, payload: bytes = b"") -> bool:
        """Send to worker C{index}; C{False} if it could not be written."""
        if self.transport is None or index == self.index or not 0 <= index < len(self.ports):
            return False
        try:
            self.transport.write(encode_handoff(kind, flow, payload),
                                 (CHANNEL_HOST, self.ports[index]))
        except OSError as e:
            self._log.warn("Worker channel: cannot hand {kind} on {flow} to worker {index}:"
                           " {error}", kind=kind, flow=flow, index=index, error=str(e))
            return False
        return True

    def send_to_others(self, kind: str, flow: Flow, payload: bytes = b"") -> int:
        """Send to every other worker; how many it was written to."""
        return sum(self.send(i, kind, flow, payload) for i in range(len(self.ports)))
