# -*- test-case-name: sipedge.test.test_e2e_reload -*-
"""
A tiny SIP caller over one TLS connection (Debian's SIPp has no TLS): it
places whole calls (INVITE, 200, ACK, BYE, 200) on the connection it
opened once, so a test can show what happens to a connection that was up
before something changed (a certificate reload), and which certificate
that connection was given.

Blocking sockets with timeouts, loopback only: for end-to-end tests
against a C{twistd sipedge} in a child process.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
import uuid

from sipedge.message import Headers, Request, Response, StreamParser, serialize

__all__ = ["TlsCaller"]

_SDP = (
    b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)


class TlsCaller:
    """
    A caller from outside our domains (its From is C{sips:alice@example.org},
    so it is not challenged) on one TLS connection to C{host:port}. The
    server's certificate is not verified (tests compare it instead: see
    L{certificate_digest}).

    @ivar local_port: the connection's own port (the same for every call).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = context.wrap_socket(raw)
        self.local_port: int = self.sock.getsockname()[1]
        self._parser = StreamParser()
        self._pending: list[Request | Response] = []
        self.timeout = timeout

    def certificate_digest(self) -> str:
        """The SHA-256 (hex) of the DER certificate the server gave this connection."""
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha256(der).hexdigest()

    def send(self, message: Request) -> None:
        self.sock.sendall(serialize(message))

    def receive(self) -> Request | Response:
        """The next SIP message on the connection (bounded by C{timeout})."""
        deadline = time.monotonic() + self.timeout
        while not self._pending:
            if time.monotonic() > deadline:
                raise AssertionError("no SIP message over TLS in time")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("sipedge closed the TLS connection")
            self._pending.extend(
                e for e in self._parser.feed(data) if isinstance(e, (Request, Response))
            )
        return self._pending.pop(0)

    def final(self, method: str, call_id: str) -> Response:
        """Receive until the final response to C{method} of call C{call_id}."""
        for _ in range(20):
            message = self.receive()
            if (
                isinstance(message, Response)
                and message.status >= 200
                and message.cseq.method == method
                and message.headers.get("Call-ID") == call_id
            ):
                return message
        raise AssertionError(f"no final response to {method}")

    def call(self, uri: str) -> tuple[int, int]:
        """
        Call C{uri}: INVITE; on a 200, ACK and BYE along its Record-Route.

        @return: the final status of the INVITE and of the BYE (0: none sent).
        """
        call_id = uuid.uuid4().hex
        via = (
            f"SIP/2.0/TLS 127.0.0.1:{self.local_port};branch=z9hG4bK{uuid.uuid4().hex};rport"
        )
        sender = ("From", f"<sips:alice@example.org>;tag={uuid.uuid4().hex[:8]}")
        common = [sender, ("To", f"<{uri}>"), ("Call-ID", call_id), ("Max-Forwards", "70")]
        self.send(Request("INVITE", uri, Headers.of(
            ("Via", via), *common, ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:alice@127.0.0.1:{self.local_port};transport=tls>"),
            ("Content-Type", "application/sdp")), _SDP))
        ok = self.final("INVITE", call_id)
        if ok.status != 200:
            return ok.status, 0
        contacts = ok.contacts
        assert isinstance(contacts, tuple) and contacts, ok
        contact = str(contacts[0].uri)
        routes = [("Route", r) for r in reversed(ok.headers.values("Record-Route"))]
        dialog = [sender, ("To", ok.headers.get("To") or ""), ("Call-ID", call_id),
                  ("Max-Forwards", "70")]
        self.send(Request("ACK", contact, Headers.of(
            ("Via", via.replace("branch=z9hG4bK", "branch=z9hG4bKack")), *routes, *dialog,
            ("CSeq", "1 ACK"))))
        self.send(Request("BYE", contact, Headers.of(
            ("Via", via.replace("branch=z9hG4bK", "branch=z9hG4bKbye")), *routes, *dialog,
            ("CSeq", "2 BYE"))))
        return 200, self.final("BYE", call_id).status

    def close(self) -> None:
        self.sock.close()
