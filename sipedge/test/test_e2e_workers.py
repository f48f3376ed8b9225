# -*- test-case-name: sipedge.test.test_e2e_workers -*-
"""
End-to-end tests of C{[process] workers = 2}: the real C{twistd sipedge}
supervising two worker processes on loopback, driven by SIPp and by
sockets of our own.

Each worker listens on the shared public ports (C{SO_REUSEPORT}) and on
ports of its own, named in its Via and Record-Route; the tests reach a
given worker through its own port to show which one does what.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sipedge.message import Request, Response, StreamParser, parse_datagram
from sipedge.testing import add_user, free_port, sipp_counter, start_with_sipp

_CONFIG = """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "tls:127.0.0.1:0"]
trusted = ["127.0.0.10/32"]
[state]
path = "state"
[process]
workers = 2
"""


def _wait(predicate: object, timeout: float, what: str) -> None:
    """Poll C{predicate} every 0.1 s until true; fail after C{timeout} s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class _Socket:
    """A UDP socket on loopback that sends and receives SIP text."""

    def __init__(self, test: SynchronousTestCase, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        test.addCleanup(self.sock.close)
        self.sock.bind((host, 0))
        self.sock.settimeout(10)
        self.host, self.port = self.sock.getsockname()

    def send(self, text: str, address: tuple[str, int]) -> None:
        self.sock.sendto(text.replace("\n", "\r\n").encode(), address)

    def receive(
        self, want: str, within: float = 10.0
    ) -> tuple[Request | Response, tuple[str, int]]:
        """The next message whose first line contains C{want} (others are skipped)."""
        deadline = time.monotonic() + within
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                data, source = self.sock.recvfrom(65535)
                message = parse_datagram(data)
                first = data.split(b"\r\n", 1)[0].decode()
                if want in first:
                    return message, source
        except TimeoutError:
            pass
        finally:
            self.sock.settimeout(10)
        raise AssertionError(f"no {want!r} within {within:g} s")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class _TcpPhone:
    """A phone over one TCP connection to sipedge's public TCP port."""

    def __init__(
        self, test: SynchronousTestCase, port: int, user: str, contact: str | None = None
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        test.addCleanup(self.sock.close)
        self.host, self.port = self.sock.getsockname()
        self.user = user
        #: The host:port its Contact names (another than its own: behind NAT).
        self.contact = contact or f"{self.host}:{self.port}"
        self.parser = StreamParser()
        self.pending: list[Request | Response] = []

    def send(self, text: str) -> None:
        self.sock.sendall(text.replace("\n", "\r\n").encode())

    def receive(self, want: str) -> Request | Response:
        """The next message whose method or status is C{want} (others skipped)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            while self.pending:
                message = self.pending.pop(0)
                key = message.method if isinstance(message, Request) else str(message.status)
                if key == want:
                    return message
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("sipedge closed the phone's connection")
            self.pending.extend(
                m for m in self.parser.feed(data) if isinstance(m, (Request, Response))
            )
        raise AssertionError(f"no {want} over TCP within 10 s")

    def register(self, password: str) -> None:
        """REGISTER over the connection, answering the digest challenge."""
        call_id = uuid.uuid4().hex
        authorization = ""
        for cseq in (1, 2):
            self.send(
                "REGISTER sip:sipedge.test SIP/2.0\n"
                f"Via: SIP/2.0/TCP {self.host}:{self.port};branch=z9hG4bKr{cseq}{call_id[:8]}"
                ";rport\n"
                "Max-Forwards: 70\n"
                f"From: <sip:{self.user}@sipedge.test>;tag=r{call_id[:6]}\n"
                f"To: <sip:{self.user}@sipedge.test>\n"
                f"Call-ID: {call_id}\nCSeq: {cseq} REGISTER\n"
                f"Contact: <sip:{self.user}@{self.contact};transport=tcp>\n"
                f"{authorization}Expires: 600\nContent-Length: 0\n\n"
            )
            response = self.receive("401" if cseq == 1 else "200")
            if cseq == 2:
                return
            challenge = response.header("WWW-Authenticate") or ""
            realm = re.search(r'realm="([^"]*)"', challenge)
            nonce = re.search(r'nonce="([^"]*)"', challenge)
            assert realm is not None and nonce is not None, challenge
            ha1 = _md5(f"{self.user}:{realm.group(1)}:{password}")
            ha2 = _md5("REGISTER:sip:sipedge.test")
            cnonce = "0a4f113b"
            digest = _md5(f"{ha1}:{nonce.group(1)}:00000001:{cnonce}:auth:{ha2}")
            authorization = (
                f'Authorization: Digest username="{self.user}", realm="{realm.group(1)}",'
                f' nonce="{nonce.group(1)}", uri="sip:sipedge.test", response="{digest}",'
                f' algorithm=MD5, qop=auth, nc=00000001, cnonce="{cnonce}"\n'
            )

    def answer(self, request: Request, status: str) -> None:
        """Answer C{request} over the connection."""
        vias = "".join(f"Via: {v}\n" for v in request.headers.get_all("Via"))
        rr = "".join(f"Record-Route: {v}\n" for v in request.headers.get_all("Record-Route"))
        to = request.header("To") or ""
        self.send(
            f"SIP/2.0 {status}\n{vias}{rr}From: {request.header('From')}\n"
            f"To: {to}{'' if 'tag=' in to else ';tag=p1'}\n"
            f"Call-ID: {request.header('Call-ID')}\nCSeq: {request.header('CSeq')}\n"
            f"Contact: <sip:{self.user}@{self.contact};transport=tcp>\n"
            "Content-Length: 0\n\n"
        )


def _invite(caller: _Socket, callee: _Socket, port: int) -> tuple[str, str, Request]:
    """
    An INVITE from C{caller} (trusted) to C{callee}'s address, sent to
    C{port} and sent again as a phone does (Timer A: 0.5, 1, 2, 4 s) until
    C{callee} receives it: the call ID, the branch and the INVITE received.
    """
    call_id = uuid.uuid4().hex
    branch = "z9hG4bK" + uuid.uuid4().hex[:12]
    text = (
        f"INVITE sip:service@127.0.0.1:{callee.port} SIP/2.0\n"
        f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch={branch};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:alice@{caller.host}>;tag=a1\n"
        f"To: <sip:service@127.0.0.1:{callee.port}>\n"
        f"Call-ID: {call_id}\n"
        "CSeq: 1 INVITE\n"
        f"Contact: <sip:alice@{caller.host}:{caller.port}>\n"
        "Content-Length: 0\n\n"
    )
    for wait in (0.5, 1.0, 2.0, 4.0, 8.0):
        caller.send(text, ("127.0.0.1", port))
        try:
            request, _ = callee.receive("INVITE", within=wait)
        except AssertionError:
            continue
        assert isinstance(request, Request)
        return call_id, branch, request
    raise AssertionError(f"the callee received no INVITE {call_id} within 15.5 s")


def _answer(callee: _Socket, request: Request, status: str, tag: str = "b1") -> None:
    """Answer C{request} from C{callee} to its top Via (as a phone does)."""
    via = request.top_via
    headers = "".join(f"Via: {v}\n" for v in request.headers.get_all("Via"))
    rr = "".join(f"Record-Route: {v}\n" for v in request.headers.get_all("Record-Route"))
    callee.send(
        f"SIP/2.0 {status}\n{headers}{rr}"
        f"From: {request.header('From')}\n"
        f"To: {request.header('To')};tag={tag}\n"
        f"Call-ID: {request.header('Call-ID')}\n"
        f"CSeq: {request.header('CSeq')}\n"
        f"Contact: <sip:service@127.0.0.1:{callee.port}>\n"
        "Content-Length: 0\n\n",
        (via.host, via.port or 5060),
    )


class WorkerTests(SynchronousTestCase):
    """Two workers behind one public address."""

    def setUp(self) -> None:
        self.work, self.proxy, self.sipp = start_with_sipp(self, _CONFIG)
        self.own = self.proxy.worker_ports()
        self.assertEqual(sorted(self.own), [0, 1], self.proxy.log()[-3000:])

    def why(self, result: object = None) -> str:
        errors = "\n".join(
            p.read_text(errors="replace")[-1500:] for p in self.work.glob("*errors.log")
        )
        stdout = getattr(result, "stdout", "")[-1500:]
        return f"{stdout}\n{errors}\n--- sipedge log:\n{self.proxy.log()[-5000:]}"

    def register(self, user: str, contact_port: int, port: int) -> None:
        """REGISTER C{user} with a contact at C{contact_port}, sent to C{port}."""
        password = f"{user}-secret"
        add_user(self.proxy.config_path, user, password)
        result = self.sipp.run(
            "register.xml", f"127.0.0.1:{port}", "-s", user,
            "-au", user, "-ap", password, "-auth_uri", "sipedge.test",
            "-key", "domain", "sipedge.test", "-key", "contact_port", contact_port,
            "-key", "expires", 600, "-m", 1, transport="u1", timeout=20,
        )
        self.assertEqual(result.returncode, 0, self.why(result))

    def calls(self, count: int, port: int, target: str = "bob") -> None:
        """C{count} calls to C{target} sent to C{port}; all must succeed."""
        result = self.sipp.run(
            "uac.xml", f"127.0.0.1:{port}", "-s", target, "-key", "domain", "sipedge.test",
            "-d", 50, "-m", count, "-r", 10, transport="u1", timeout=40,
        )
        self.assertEqual(result.returncode, 0, self.why(result))
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), count, self.why(result))

    def test_registration_through_one_used_by_other(self) -> None:
        """
        A registration made through worker 0 routes calls that reach worker
        1 (the bindings are in the shared SQLite store); each call's
        responses, ACK and BYE find their way (SIPp fails a call otherwise).
        """
        uas_port = free_port()
        self.register("bob", uas_port, self.own[0]["UDP"])
        self.sipp.start("uas.xml", "-m", 15, port=uas_port, timeout=60)
        self.calls(10, self.own[1]["UDP"])
        self.calls(5, self.proxy.ports["UDP"])

    def test_via_and_record_route_name_the_worker(self) -> None:
        """
        What a worker forwards names its own port in Via and Record-Route,
        so the callee's responses and in-dialog requests reach that worker:
        the 200 reaches the caller, and the callee's BYE along the
        Record-Route reaches the caller too.
        """
        for worker in (0, 1):
            caller, callee = _Socket(self, "127.0.0.10"), _Socket(self)
            _, _, request = _invite(caller, callee, self.own[worker]["UDP"])
            self.assertEqual(request.top_via.port, self.own[worker]["UDP"], self.why())
            (rr,) = request.record_routes
            self.assertEqual(getattr(rr.uri, "port", None), self.own[worker]["UDP"])
            _answer(callee, request, "200 OK")
            response, _ = caller.receive("200")
            assert isinstance(response, Response)
            callee.send(
                f"BYE sip:alice@127.0.0.10:{caller.port} SIP/2.0\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{callee.port};branch=z9hG4bKbye{worker};rport\n"
                "Max-Forwards: 70\n"
                f"Route: {rr}\n"
                f"From: {request.header('To')};tag=b1\n"
                f"To: {request.header('From')}\n"
                f"Call-ID: {request.header('Call-ID')}\n"
                "CSeq: 1 BYE\nContent-Length: 0\n\n",
                ("127.0.0.1", self.own[worker]["UDP"]),
            )
            bye, _ = caller.receive("BYE")
            self.assertEqual(bye.header("Call-ID"), request.header("Call-ID"))

    def test_cancel_through_public_port(self) -> None:
        """
        INVITEs from several sources through the public port, each then
        cancelled from the same source: the CANCEL reaches the worker that
        holds the INVITE (the kernel sends all of a source's datagrams to
        one worker), which answers it and cancels the branch; the caller
        gets the 487 and its ACK is absorbed.
        """
        public = self.proxy.ports["UDP"]
        for _ in range(4):
            caller, callee = _Socket(self, "127.0.0.10"), _Socket(self)
            call_id, branch, request = _invite(caller, callee, public)
            _answer(callee, request, "180 Ringing")
            caller.receive("180")
            caller.send(
                f"CANCEL sip:service@127.0.0.1:{callee.port} SIP/2.0\n"
                f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch={branch};rport\n"
                "Max-Forwards: 70\n"
                f"From: <sip:alice@{caller.host}>;tag=a1\n"
                f"To: <sip:service@127.0.0.1:{callee.port}>\n"
                f"Call-ID: {call_id}\nCSeq: 1 CANCEL\nContent-Length: 0\n\n",
                ("127.0.0.1", public),
            )
            ok, _ = caller.receive("200")
            self.assertEqual(ok.header("CSeq"), "1 CANCEL")
            cancel, _ = callee.receive("CANCEL")
            assert isinstance(cancel, Request)
            _answer(callee, cancel, "200 OK")
            _answer(callee, request, "487 Request Terminated")
            final, _ = caller.receive("487")
            self.assertEqual(final.header("Call-ID"), call_id)

    def test_tcp_phone_reached_from_either_worker(self) -> None:
        """
        A phone registered over TCP is reached through both workers,
        whichever accepted its connection: the other hands the INVITE and
        ACK to the connection's owner, which hands back the phone's
        answers (their Via names the other) and its BYE (its Route does).
        """
        add_user(self.proxy.config_path, "bob", "bob-secret")
        phone = _TcpPhone(self, self.proxy.ports["TCP"], "bob")
        phone.register("bob-secret")
        self.call_tcp_phone(phone)

    def test_tcp_phone_behind_nat_reached_from_either_worker(self) -> None:
        """
        The same for a phone behind NAT (its Contact names a private
        address): it is reached only over its connection, which the other
        worker sees as the owner's (not as a dead flow).
        """
        add_user(self.proxy.config_path, "carol", "carol-secret")
        phone = _TcpPhone(self, self.proxy.ports["TCP"], "carol", contact="10.99.0.7:5060")
        phone.register("carol-secret")
        self.call_tcp_phone(phone)

    def call_tcp_phone(self, phone: _TcpPhone) -> None:
        """A call to C{phone} through each worker's own UDP port, BYE from the phone."""
        user = phone.user
        for worker in (0, 1):
            caller = _Socket(self, "127.0.0.10")
            call_id = uuid.uuid4().hex
            caller.send(
                f"INVITE sip:{user}@sipedge.test SIP/2.0\n"
                f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch=z9hG4bKi{call_id[:10]}"
                ";rport\n"
                "Max-Forwards: 70\n"
                f"From: <sip:alice@{caller.host}>;tag=a{worker}\n"
                f"To: <sip:{user}@sipedge.test>\n"
                f"Call-ID: {call_id}\nCSeq: 1 INVITE\n"
                f"Contact: <sip:alice@{caller.host}:{caller.port}>\n"
                "Content-Length: 0\n\n",
                ("127.0.0.1", self.own[worker]["UDP"]),
            )
            invite = phone.receive("INVITE")
            assert isinstance(invite, Request)
            self.assertEqual(invite.header("Call-ID"), call_id, self.why())
            phone.answer(invite, "200 OK")
            ok, _ = caller.receive("200")
            routes = [str(rr) for rr in ok.record_routes]
            route = "".join(f"Route: {r}\n" for r in routes)
            caller.send(
                f"ACK sip:{user}@{phone.contact};transport=tcp SIP/2.0\n"
                f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch=z9hG4bKa{call_id[:10]}"
                ";rport\n"
                f"Max-Forwards: 70\n{route}From: {ok.header('From')}\nTo: {ok.header('To')}\n"
                f"Call-ID: {call_id}\nCSeq: 1 ACK\nContent-Length: 0\n\n",
                ("127.0.0.1", self.own[worker]["UDP"]),
            )
            phone.receive("ACK")
            back = "".join(f"Route: {r}\n" for r in reversed(routes))
            phone.send(
                f"BYE sip:alice@{caller.host}:{caller.port} SIP/2.0\n"
                f"Via: SIP/2.0/TCP {phone.host}:{phone.port};branch=z9hG4bKb{call_id[:10]}"
                ";rport\n"
                f"Max-Forwards: 70\n{back}From: {ok.header('To')}\nTo: {ok.header('From')}\n"
                f"Call-ID: {call_id}\nCSeq: 2 BYE\nContent-Length: 0\n\n"
            )
            bye, _ = caller.receive("BYE")
            assert isinstance(bye, Request)
            _answer(caller, bye, "200 OK", tag=f"a{worker}")
            done = phone.receive("200")
            self.assertEqual(done.header("CSeq"), "2 BYE")

    def test_cancel_from_another_source_port(self) -> None:
        """
        A CANCEL sent from another source port than its INVITE may reach
        the other worker: that one asks, the worker holding the INVITE
        claims it, answers 200 and cancels the branch; the caller gets its
        487 each time.
        """
        public = self.proxy.ports["UDP"]
        for _ in range(6):
            caller, canceller, callee = (
                _Socket(self, "127.0.0.10"), _Socket(self, "127.0.0.10"), _Socket(self)
            )
            call_id, branch, request = _invite(caller, callee, public)
            _answer(callee, request, "180 Ringing")
            caller.receive("180")
            canceller.send(
                f"CANCEL sip:service@127.0.0.1:{callee.port} SIP/2.0\n"
                f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch={branch};rport\n"
                "Max-Forwards: 70\n"
                f"From: <sip:alice@{caller.host}>;tag=a1\n"
                f"To: <sip:service@127.0.0.1:{callee.port}>\n"
                f"Call-ID: {call_id}\nCSeq: 1 CANCEL\nContent-Length: 0\n\n",
                ("127.0.0.1", public),
            )
            ok, _ = canceller.receive("200")
            self.assertEqual(ok.header("CSeq"), "1 CANCEL", self.why())
            cancel, _ = callee.receive("CANCEL")
            assert isinstance(cancel, Request)
            _answer(callee, cancel, "200 OK")
            _answer(callee, request, "487 Request Terminated")
            final, _ = caller.receive("487")
            self.assertEqual(final.header("Call-ID"), call_id)

    def test_ack_from_another_source_port(self) -> None:
        """
        The ACK of a 486 sent from another source port than its INVITE, to
        the other worker, is handed to the worker holding the INVITE, which
        stops resending the 486 (without it: at 0.5, 1.5, 3.5 and 7.5 s).
        """
        caller, acker, callee = (
            _Socket(self, "127.0.0.10"), _Socket(self, "127.0.0.10"), _Socket(self)
        )
        call_id, branch, request = _invite(caller, callee, self.own[0]["UDP"])
        _answer(callee, request, "486 Busy Here")
        busy, _ = caller.receive("486")
        acker.send(
            f"ACK sip:service@127.0.0.1:{callee.port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch={branch};rport\n"
            "Max-Forwards: 70\n"
            f"From: {busy.header('From')}\nTo: {busy.header('To')}\n"
            f"Call-ID: {call_id}\nCSeq: 1 ACK\nContent-Length: 0\n\n",
            ("127.0.0.1", self.own[1]["UDP"]),
        )
        resent = 0
        deadline = time.monotonic() + 8
        while (left := deadline - time.monotonic()) > 0:
            caller.sock.settimeout(left)
            try:
                data, _ = caller.sock.recvfrom(65535)
            except TimeoutError:
                break
            resent += data.startswith(b"SIP/2.0 486")
        self.assertLessEqual(resent, 2, self.why())

    def test_killed_worker_replaced(self) -> None:
        """
        A killed worker is started again on the same sockets, while the
        other keeps serving; then it serves again on its own port.
        """
        uas_port = free_port()
        self.register("bob", uas_port, self.proxy.ports["UDP"])
        self.sipp.start("uas.xml", "-m", 9, port=uas_port, timeout=90)
        pids = self.proxy.worker_pids()
        os.kill(pids[1], signal.SIGKILL)
        self.calls(3, self.own[0]["UDP"])
        _wait(lambda: self.proxy.worker_pids()[1] != pids[1], 20, "worker 1 started again")
        _wait(lambda: self.proxy.run_log().count("sipedge worker ready: 1") >= 2, 30,
              "the new worker 1 serving")
        self.assertEqual(self.proxy.worker_pids()[0], pids[0])
        self.calls(3, self.own[1]["UDP"])
        self.calls(3, self.proxy.ports["UDP"])

    def test_tls_served_by_every_worker(self) -> None:
        """
        TLS listeners work on inherited sockets too: an OPTIONS over TLS to
        the public port, and to each worker's own TLS port, gets its 200
        (one certificate, made by worker 0 before the others start).
        """
        import ssl

        ports = [self.proxy.ports["TLS"], *(self.own[i]["TLS"] for i in (0, 1))]
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        certificates = set()
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    context.wrap_socket(raw) as tls:
                host, local = tls.getsockname()[:2]
                tls.sendall(
                    ("OPTIONS sip:sipedge.test SIP/2.0\r\n"
                     f"Via: SIP/2.0/TLS {host}:{local};branch=z9hG4bKt{port}\r\n"
                     "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=t\r\n"
                     "To: <sip:sipedge.test>\r\nCall-ID: tls-{port}\r\n"
                     "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
                )
                parser = StreamParser()
                messages: list[object] = []
                deadline = time.monotonic() + 10
                while not messages and time.monotonic() < deadline:
                    messages.extend(parser.feed(tls.recv(65536)))
                (response,) = messages
                assert isinstance(response, Response)
                self.assertEqual(response.status, 200, self.why())
                certificates.add(tls.getpeercert(binary_form=True))
        self.assertEqual(len(certificates), 1)

    def test_stop_ends_every_worker(self) -> None:
        """Stopping C{twistd sipedge} stops its workers (no process is left)."""
        pids = self.proxy.worker_pids()
        self.proxy.stop()
        for pid in pids.values():
            _wait(lambda pid=pid: not _alive(pid), 15, f"worker pid {pid} to end")


_ADMIN = """
[admin]
listen = "tcp:127.0.0.1:0"
[metrics]
listen = "tcp:127.0.0.1:0"
"""
#: What the supervisor logs of the public admin API and metrics endpoint.
_ADMIN_SERVED = re.compile(r"admin API on http://127\.0\.0\.1:(\d+)/api/v1/ \(2 workers")
_METRICS_SERVED = re.compile(r"Prometheus metrics on http://127\.0\.0\.1:(\d+)/metrics \(2 workers")


def _reply(sock: _Socket, request: Request, status: str) -> None:
    """Answer an in-dialog C{request} (its To has a tag already)."""
    via = request.top_via
    headers = "".join(f"Via: {v}\n" for v in request.headers.get_all("Via"))
    sock.send(
        f"SIP/2.0 {status}\n{headers}"
        f"From: {request.header('From')}\nTo: {request.header('To')}\n"
        f"Call-ID: {request.header('Call-ID')}\nCSeq: {request.header('CSeq')}\n"
        "Content-Length: 0\n\n",
        (via.host, via.port or 5060),
    )


class AdminWorkerTests(SynchronousTestCase):
    """
    The admin API and the metrics of two workers, served by the
    supervisor on the configured ports.
    """

    def setUp(self) -> None:
        self.work, self.proxy, self.sipp = start_with_sipp(self, _CONFIG + _ADMIN)
        self.own = self.proxy.worker_ports()
        self.assertEqual(sorted(self.own), [0, 1], self.proxy.log()[-3000:])
        log = self.proxy.run_log()
        admin, metrics = _ADMIN_SERVED.search(log), _METRICS_SERVED.search(log)
        assert admin is not None and metrics is not None, log[-3000:]
        self.url = f"http://127.0.0.1:{admin.group(1)}"
        self.metrics_url = f"http://127.0.0.1:{metrics.group(1)}/metrics"

    def ctl(self, *args: str) -> Any:
        """C{sipedge ctl --json} against the supervisor; its JSON answer."""
        result = subprocess.run(
            [sys.executable, "-m", "sipedge.cli", "ctl", "--url", self.url,
             "--token-file", str(self.work / "state" / "admin.token"), "--json", *args],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 0, f"{result.stderr}\n{self.proxy.log()[-3000:]}")
        return json.loads(result.stdout)

    def call(self, worker: int) -> tuple[str, _Socket, _Socket]:
        """A call answered through worker C{worker}'s own port, ACKed."""
        caller, callee = _Socket(self, "127.0.0.10"), _Socket(self)
        call_id, _, request = _invite(caller, callee, self.own[worker]["UDP"])
        _answer(callee, request, "200 OK")
        ok, _ = caller.receive("200")
        (route,) = ok.headers.get_all("Record-Route")
        caller.send(
            f"ACK sip:service@127.0.0.1:{callee.port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP {caller.host}:{caller.port};branch=z9hG4bKack{call_id[:8]}\n"
            f"Route: {route}\nMax-Forwards: 70\n"
            f"From: {ok.header('From')}\nTo: {ok.header('To')}\n"
            f"Call-ID: {call_id}\nCSeq: 1 ACK\nContent-Length: 0\n\n",
            ("127.0.0.1", self.own[worker]["UDP"]),
        )
        callee.receive("ACK")
        return call_id, caller, callee

    def test_calls_counters_metrics_of_every_worker(self) -> None:
        """
        C{sipedge ctl calls} lists the calls of both workers, each with the
        worker holding it; C{hangup} of worker 1's call reaches worker 1
        (both parties get its BYE); the counters are both workers' summed;
        C{/metrics} has both workers' samples, labelled.
        """
        first, _, _ = self.call(0)
        second, caller, callee = self.call(1)
        calls = self.ctl("calls")
        self.assertEqual(sorted((c["call_id"], c["worker"]) for c in calls["calls"]),
                         sorted([(first, 0), (second, 1)]))
        self.assertEqual(calls["workers"], {"answered": 2, "missing": 0})
        ended = self.ctl("hangup", second)
        self.assertEqual((ended["ended"], ended["dialogs"]), (second, 1))
        for party in (caller, callee):
            bye, _ = party.receive("BYE")
            assert isinstance(bye, Request)
            self.assertEqual(bye.header("Call-ID"), second)
            _reply(party, bye, "200 OK")
        self.assertEqual([c["call_id"] for c in self.ctl("calls")["calls"]], [first])
        counters = self.ctl("counters")
        self.assertEqual(counters["sip_requests"]["in:INVITE"], 2)
        self.assertEqual(counters["workers"], {"answered": 2, "missing": 0})
        with urllib.request.urlopen(self.metrics_url, timeout=30) as response:
            text = response.read().decode()
        for worker in (0, 1):
            self.assertIn(
                f'sipedge_sip_requests_total{{direction="in",method="INVITE",worker="{worker}"}}'
                " 1.0", text)
            self.assertIn(f'sipedge_worker_up{{worker="{worker}"}} 1.0', text)

    def test_ban_reaches_every_worker_at_once(self) -> None:
        """
        A ban made with C{sipedge ctl ban} is in force in both workers at
        once (not at their next purge): neither answers the banned
        address; after C{unban} both do.
        """
        banned = _Socket(self, "127.0.0.11")
        self.assertEqual(self.ctl("ban", "127.0.0.11")["banned"]["count"], 1)

        def options(worker: int, n: int) -> None:
            banned.send(
                "OPTIONS sip:sipedge.test SIP/2.0\n"
                f"Via: SIP/2.0/UDP {banned.host}:{banned.port};branch=z9hG4bKo{n}w{worker}\n"
                "Max-Forwards: 70\nFrom: <sip:a@example.com>;tag=o\nTo: <sip:sipedge.test>\n"
                f"Call-ID: ban-{n}-{worker}\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
                ("127.0.0.1", self.own[worker]["UDP"]),
            )

        for worker in (0, 1):
            options(worker, 1)
        banned.sock.settimeout(3)
        self.assertRaises(socket.timeout, banned.sock.recvfrom, 65535)
        self.assertEqual(self.ctl("unban", "127.0.0.11"), {"unbanned": "127.0.0.11"})
        banned.sock.settimeout(10)
        for worker in (0, 1):
            options(worker, 2)
            response, _ = banned.receive("200")
            self.assertEqual(response.header("Call-ID"), f"ban-2-{worker}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours is not serving: look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
