# -*- test-case-name: sipedge.test.test_e2e -*-
"""
End-to-end tests: the real C{twistd sipedge} on loopback, driven by real SIP
peers (SIPp) and by small clients of our own where SIPp cannot go (TLS:
Debian's SIPp is built without it).

Each test starts its own sipedge on OS-chosen ports with its own state
directory, and stops every process it starts.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Headers, Request, Response, StreamParser, parse_datagram, serialize
from sipedge.testing import (
    add_user,
    free_port,
    sipp_counter,
    start_with_sipp,
)

DATA = Path(__file__).parent / "data"

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"]
trusted = ["127.0.0.10/32"]
[state]
path = "state"
"""


class _EndToEnd(SynchronousTestCase):
    """Starts sipedge and SIPp helpers with cleanups."""

    def setUp(self) -> None:
        self.work, self.proxy, self.sipp = start_with_sipp(self, _CONFIG)

    def proxy_address(self, transport: str = "UDP") -> str:
        return f"127.0.0.1:{self.proxy.ports[transport]}"

    def register(self, user: str, contact_port: int, transport: str = "u1") -> None:
        """
        REGISTER sip:user@sipedge.test with a contact at C{contact_port},
        answering the digest challenge (the user is created first).
        """
        name = "UDP" if transport.startswith("u") else "TCP"
        password = f"{user}-secret"
        add_user(self.proxy.config_path, user, password)
        result = self.sipp.run(
            "register.xml", self.proxy_address(name), "-s", user,
            "-au", user, "-ap", password, "-auth_uri", "sipedge.test",
            "-key", "domain", "sipedge.test", "-key", "contact_port", contact_port,
            "-key", "expires", 600, "-m", 1, transport=transport, timeout=20,
        )
        self.assertEqual(result.returncode, 0, self._why(result))

    def _why(self, result: object) -> str:
        errors = "\n".join(
            p.read_text(errors="replace")[-2000:] for p in self.work.glob("*errors.log")
        )
        stdout = getattr(result, "stdout", "")[-1500:]
        return f"{stdout}\n{errors}\n--- sipedge log:\n{self.proxy.log()[-4000:]}"

    def calls(self, count: int, rate: int, transport: str = "u1", target: str = "bob",
              domain: str = "sipedge.test", local_ip: str = "127.0.0.1") -> None:
        """Run C{count} calls at C{rate}/s from a SIPp UAC; all must succeed."""
        name = "UDP" if transport.startswith("u") else "TCP"
        result = self.sipp.run(
            "uac.xml", self.proxy_address(name), "-s", target, "-key", "domain", domain,
            "-d", 50, "-m", count, "-r", rate, transport=transport, local_ip=local_ip,
            timeout=max(30, count // rate + 20),
        )
        self.assertEqual(result.returncode, 0, self._why(result))
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), count, self._why(result))
        self.assertEqual(sipp_counter(result.stdout, "Failed call"), 0, self._why(result))


class UdpTests(_EndToEnd):
    """Calls over UDP."""

    def test_register_and_call(self) -> None:
        """
        If a phone registers its AOR over UDP, calls to the AOR reach it
        through sipedge (INVITE, 180, 200, ACK and BYE along the signed
        Record-Route), with no failed call.
        """
        uas_port = free_port()
        self.register("bob", uas_port)
        self.sipp.start("uas.xml", "-m", 20, port=uas_port, timeout=60)
        self.calls(20, 10)

    def test_relay_for_trusted_source(self) -> None:
        """
        If a trusted network calls a foreign destination, sipedge relays the
        call statefully, record-routing it.
        """
        uas_port = free_port()
        self.sipp.start("uas.xml", "-m", 10, port=uas_port, timeout=60)
        self.calls(10, 10, target="service", domain=f"127.0.0.1:{uas_port}", local_ip="127.0.0.10")

    def test_restart_keeps_registration(self) -> None:
        """
        If sipedge restarts, the registrations made before the restart still
        route calls: bindings live in SQLite in the state directory.
        """
        uas_port = free_port()
        self.register("carol", uas_port)
        self.proxy.stop()
        self.proxy.start()
        self.sipp.start("uas.xml", "-m", 3, port=uas_port, timeout=60)
        self.calls(3, 3, target="carol")


class TcpTests(_EndToEnd):
    """Calls over TCP."""

    def test_register_and_call(self) -> None:
        """
        If a phone registers over TCP and its connection is gone by the time
        it is called, sipedge opens a TCP connection to its Contact, and
        every call completes.
        """
        uas_port = free_port(kind=socket.SOCK_STREAM)
        self.register("dave", uas_port, transport="t1")
        self.sipp.start("uas.xml", "-m", 10, port=uas_port, transport="t1", timeout=60)
        self.calls(10, 5, transport="t1", target="dave")


class _TlsClient:
    """A tiny SIP user agent over TLS (Debian's SIPp has no TLS)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # sipedge's self-signed certificate
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="sipedge.test")
        self.local_port = self.sock.getsockname()[1]
        self.parser = StreamParser()
        self.pending: list[Request | Response] = []
        self.timeout = timeout

    def send(self, message: Request) -> None:
        self.sock.sendall(serialize(message))

    def receive(self) -> Request | Response:
        deadline = time.monotonic() + self.timeout
        while not self.pending:
            if time.monotonic() > deadline:
                raise AssertionError("no SIP message over TLS in time")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("sipedge closed the TLS connection")
            self.pending.extend(
                e for e in self.parser.feed(data) if isinstance(e, (Request, Response))
            )
        return self.pending.pop(0)

    def final(self, method: str) -> Response:
        """Receive until a final response to C{method}."""
        for _ in range(10):
            message = self.receive()
            if (
                isinstance(message, Response)
                and message.status >= 200
                and message.cseq.method == method
            ):
                return message
        raise AssertionError(f"no final response to {method}")

    def close(self) -> None:
        self.sock.close()


class TlsTests(_EndToEnd):
    """A call over TLS."""

    def test_tls_call(self) -> None:
        """
        If a caller from outside, on TLS, calls a phone registered over UDP,
        the call sets up, and ACK and BYE follow the Record-Route (one entry
        per side: sip with transport=tls on the TLS side, since the
        Request-URI is not SIPS; sip on the UDP side). (A caller
        whose From is one of our domains would be challenged with 407.)
        """
        uas_port = free_port()
        self.register("erin", uas_port)
        self.sipp.start("uas.xml", "-m", 1, port=uas_port, timeout=60)
        client = _TlsClient(self.proxy.ports["TLS"])
        self.addCleanup(client.close)
        call_id = uuid.uuid4().hex
        via = f"SIP/2.0/TLS 127.0.0.1:{client.local_port};branch=z9hG4bK{uuid.uuid4().hex};rport"
        common = [
            ("From", "<sips:alice@example.org>;tag=tls1"),
            ("To", "<sip:erin@sipedge.test>"),
            ("Call-ID", call_id),
            ("Max-Forwards", "70"),
        ]
        sdp = (
            b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
            b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
        )
        client.send(Request("INVITE", "sip:erin@sipedge.test", Headers.of(
            ("Via", via), *common, ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:alice@127.0.0.1:{client.local_port};transport=tls>"),
            ("Content-Type", "application/sdp")), sdp))
        ok = client.final("INVITE")
        self.assertEqual(ok.status, 200, self._why(ok))
        routes = list(reversed(ok.headers.values("Record-Route")))
        self.assertEqual(len(routes), 2, ok.headers.values("Record-Route"))
        self.assertTrue(routes[0].startswith("<sip:"), routes)
        self.assertIn(";transport=tls;", routes[0])
        contacts = ok.contacts
        assert isinstance(contacts, tuple), contacts
        contact = contacts[0].uri
        to = ok.headers.get("To") or ""
        dialog = [("From", common[0][1]), ("To", to), ("Call-ID", call_id), ("Max-Forwards", "70")]
        route_headers = [("Route", r) for r in routes]
        client.send(Request("ACK", str(contact), Headers.of(
            ("Via", via.replace("branch=z9hG4bK", "branch=z9hG4bKack")), *route_headers, *dialog,
            ("CSeq", "1 ACK"))))
        client.send(Request("BYE", str(contact), Headers.of(
            ("Via", via.replace("branch=z9hG4bK", "branch=z9hG4bKbye")), *route_headers, *dialog,
            ("CSeq", "2 BYE"))))
        self.assertEqual(client.final("BYE").status, 200)


class PolicyTests(_EndToEnd):
    """What sipedge refuses, over the wire."""

    def _exchange(self, data: bytes, source: str = "127.0.0.1") -> Response:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(5)
            s.sendto(data, ("127.0.0.1", self.proxy.ports["UDP"]))
            for _ in range(5):
                reply = parse_datagram(s.recv(65535))
                if isinstance(reply, Response) and reply.status >= 200:
                    return reply
        raise AssertionError("no final response")

    def _request(self, method: str, uri: str, extra: str = "") -> bytes:
        branch = uuid.uuid4().hex
        return (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:mallory@evil.example>;tag=1\r\n"
            f"To: <{uri}>\r\nCall-ID: {branch}\r\nCSeq: 1 {method}\r\n{extra}"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    def test_no_open_relay(self) -> None:
        """
        If an untrusted source asks sipedge to relay a call to a foreign
        destination, it gets 403 and nothing is forwarded.
        """
        reply = self._exchange(self._request("INVITE", "sip:+4930123456@192.0.2.99"))
        self.assertEqual(reply.status, 403)
        self.assertNotIn("192.0.2.99", "".join(
            line for line in self.proxy.log().splitlines() if "Branch" in line))

    def test_forged_route_refused(self) -> None:
        """
        If an untrusted source preloads sipedge's own address as a Route to
        make a request look in-dialog, it still gets 403 (the Route is not
        signed for this Call-ID).
        """
        route = f"Route: <sip:{self.proxy_address()};lr;se=0000000000>\r\n"
        reply = self._exchange(self._request("INVITE", "sip:victim@192.0.2.99", route))
        self.assertEqual(reply.status, 403)

    def test_torture_messages(self) -> None:
        """
        Torture messages sent to the running proxy get the status the RFC
        asks for: 505 for SIP/7.0, 483 for Max-Forwards 0, 420 for an
        unsupported Proxy-Require, 416 for an unknown URI scheme.
        """
        for name, status in (("badvers", 505), ("zeromf", 483), ("bext01", 420), ("unkscm", 416)):
            data = (DATA / "rfc4475" / f"{name}.dat").read_bytes()
            message = parse_datagram(data) if name != "badvers" else None
            # The corpus Vias name RFC example hosts; point the reply at us.
            if message is not None:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
                    headers = message.headers.replaced(
                        "Via",
                        f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{name}{uuid.uuid4().hex}",
                    )
                    s.settimeout(5)
                    s.sendto(serialize(message.with_headers(headers)),
                             ("127.0.0.1", self.proxy.ports["UDP"]))
                    reply = parse_datagram(s.recv(65535))
                    while isinstance(reply, Response) and reply.status < 200:
                        reply = parse_datagram(s.recv(65535))
            else:
                text = data.replace(b"192.0.2.1", b"127.0.0.1")
                reply = self._exchange(text)
            assert isinstance(reply, Response)
            self.assertEqual(reply.status, status, name)


class SecurityTests(_EndToEnd):
    """The security edge, over the wire."""

    def _send(self, sock: socket.socket, data: bytes) -> Response | None:
        sock.sendto(data, ("127.0.0.1", self.proxy.ports["UDP"]))
        try:
            reply = parse_datagram(sock.recv(65535))
        except TimeoutError:
            return None
        assert isinstance(reply, Response)
        return reply

    def _options(self, port: int, user_agent: str) -> bytes:
        branch = uuid.uuid4().hex
        return (
            "OPTIONS sip:100@sipedge.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@example.org>;tag=1\r\n"
            f"To: <sip:100@sipedge.test>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n"
            f"User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    def test_scanner_banned(self) -> None:
        """
        If a SIPVicious-style scanner probes sipedge, it gets no answer and
        its address is banned: its next ordinary request is dropped too,
        while another address is still answered.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
            attacker.bind(("127.0.0.66", 0))
            attacker.settimeout(1.5)
            port = attacker.getsockname()[1]
            self.assertIsNone(self._send(attacker, self._options(port, "friendly-scanner")))
            self.assertIsNone(self._send(attacker, self._options(port, "Linphone/5.0")))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as user:
            user.bind(("127.0.0.1", 0))
            user.settimeout(5)
            reply = self._send(user, self._options(user.getsockname()[1], "Linphone/5.0"))
            self.assertIsNotNone(reply)
        self.assertIn("Banning 127.0.0.66", self.proxy.log())
