# -*- test-case-name: sipedge.test.test_testing_agents -*-
"""
Scripted SIP user agents over UDP: L{UAC} places calls, L{UAS} answers
them, L{Phone} registers (answering a digest challenge) and does both.

They are C{DatagramProtocol}s, so the same agent runs on the fake network
(C{FakeReactor().listenUDP}) or on real loopback sockets (the global
reactor's C{listenUDP}); every timer is on the clock they are given.
Requests are retransmitted as RFC 3261 17.1.2.2 says for UDP (T1 doubling
up to T2, given up after 64*T1), and an answered INVITE's 2xx until its
ACK; an agent answers each retransmission with its last response. What an
agent does is recorded, so a test reads it afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sipedge.auth import ha1, response
from sipedge.error import MessageParseError
from sipedge.message import (
    Message,
    Request,
    Response,
    SipURI,
    parse_auth_header,
    parse_datagram,
    parse_uri,
    serialize,
)
from sipedge.transaction import make_response

__all__ = ["UAC", "UAS", "Call", "Phone", "SipAgent"]

_log = Logger()

Address = tuple[str, int]

T1 = 0.5
T2 = 4.0


@attrs.define
class Call:
    """
    One call of an agent, as it saw it.

    @ivar invite: the INVITE (the last one sent, for a caller).
    @ivar statuses: the statuses received (caller) or sent (callee), in order.
    @ivar state: C{"calling"}, C{"early"}, C{"confirmed"}, C{"failed"} or
        C{"ended"}.
    @ivar remote_target: where in-dialog requests go (the peer's Contact).
    @ivar route: the route set (Record-Route), in the order requests use it.
    """

    call_id: str
    invite: Request
    local_tag: str
    remote_tag: str | None = None
    statuses: list[int] = attrs.Factory(list)
    state: str = "calling"
    remote_target: str | None = None
    route: tuple[str, ...] = ()
    cseq: int = 1


def _contact_uri(message: Message) -> str | None:
    """The URI of C{message}'s first Contact, or C{None}."""
    values = message.headers.get_all("Contact")
    if not values:
        return None
    value = values[0].strip()
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0]


class SipAgent(DatagramProtocol):
    """
    A SIP user agent on one UDP socket, driven by a test.

    @ivar received: every message received, in order.
    @ivar sent: C{(message, destination)} for everything sent (retransmissions too).
    @ivar calls: the calls by Call-ID.
    """

    def __init__(
        self,
        user: str,
        domain: str,
        clock: Any,
        *,
        host: str = "127.0.0.1",
        password: str | None = None,
        outbound: Address | None = None,
    ) -> None:
        """
        @param outbound: where out-of-dialog requests go (a proxy), by
            default the Request-URI's host and port.
        """
        self.user = user
        self.domain = domain
        self.clock = clock
        self.host = host
        self.password = password
        self.outbound = outbound
        self.received: list[Message] = []
        self.sent: list[tuple[Message, Address]] = []
        self.calls: dict[str, Call] = {}
        self._counter = itertools.count(1)
        self._timers: dict[str, Any] = {}
        self._last_response: dict[tuple[str, str], tuple[Response, Address]] = {}
        self._authenticated: set[str] = set()
        self._finished: set[tuple[str, str]] = set()
        self.port = 0

    # -- the socket ----------------------------------------------------------

    def listen(self, reactor: Any, port: int = 0) -> Any:
        """Bind on C{reactor} (fake or real) at C{host:port}; returns the listening port."""
        listening = reactor.listenUDP(port, self, interface=self.host)
        self.port = listening.getHost().port
        return listening

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    @property
    def uri(self) -> str:
        """This agent's address of record."""
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self.host}:{self.port}>"

    def stop(self) -> None:
        """Cancel every timer (retransmissions); call in a cleanup."""
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()

    def send(self, message: Message, destination: Address) -> None:
        assert self.transport is not None, "listen first"
        self.sent.append((message, destination))
        self.transport.write(serialize(message), destination)

    # -- building ------------------------------------------------------------

    def _token(self, what: str) -> str:
        return f"{what}-{self.user}-{next(self._counter)}"

    def request(
        self,
        method: str,
        uri: str,
        *fields: str,
        call_id: str | None = None,
        cseq: int = 1,
        to: str | None = None,
        from_tag: str | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        max_forwards: int = 70,
    ) -> Request:
        """A request from this agent, with a new branch (and Call-ID, unless given)."""
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{self._token('b')};rport",
            f"Max-Forwards: {max_forwards}",
            f"From: <{self.uri}>;tag={from_tag or self._token('tag')}",
            f"To: {to or f'<{uri}>'}",
            f"Call-ID: {call_id or self._token('call') + '@' + self.host}",
            f"CSeq: {cseq} {method}",
            f"Contact: {self.contact}",
            *fields,
        ]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines += [f"Content-Length: {len(body)}", "", ""]
        message = parse_datagram("\r\n".join(lines).encode() + body)
        assert isinstance(message, Request)
        return message

    # -- receiving -----------------------------------------------------------

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        try:
            message = parse_datagram(data)
        except MessageParseError as e:
            _log.info("Agent {user}: unparsable datagram ({error})", user=self.user, error=e)
            return
        source = (addr[0], addr[1])
        self.received.append(message)
        if isinstance(message, Request):
            self._request_received(message, source)
        else:
            self._response_received(message, source)

    def _request_received(self, request: Request, source: Address) -> None:
        key = (request.top_via.branch or "", request.method)
        if key in self._last_response:
            response, destination = self._last_response[key]
            self.send(response, destination)
            return
        if request.method == "ACK":
            self._timers_cancel(f"2xx:{request.call_id}")
            call = self.calls.get(request.call_id)
            if call is not None and call.state == "early":
                call.state = "confirmed"
            return
        self.request_received(request, source)

    def request_received(self, request: Request, source: Address) -> None:
        """A new request: 405 here; L{UAS} answers calls."""
        self.answer(request, source, 405)

    def answer(
        self, request: Request, source: Address, status: int, *fields: tuple[str, str],
        body: bytes = b"", to_tag: str | None = None,
    ) -> Response:
        """Send a response to C{request}, to where its Via says (rport: the source)."""
        made = make_response(request, status, headers=fields, to_tag=to_tag)
        if body:
            made = made.with_body(body, "application/sdp")
        self._last_response[(request.top_via.branch or "", request.method)] = (made, source)
        self.send(made, source)
        return made

    def _response_received(self, message: Response, source: Address) -> None:
        branch = message.top_via.branch or ""
        method = message.cseq.method
        if message.status >= 200 or method == "INVITE":
            # A provisional response ends an INVITE's retransmissions
            # (17.1.1.2); a non-INVITE request's go on until a final one.
            self._timers_cancel(f"req:{branch}:{method}")
        if message.status >= 200:
            if (branch, method) in self._finished:
                # A retransmitted final response: the transaction absorbs
                # it (17.1.1.2), except that an INVITE's is ACKed again.
                call = self.calls.get(message.call_id)
                if method == "INVITE" and call is not None:
                    if message.status < 300:
                        self._ack_2xx(call, message)
                    else:
                        invite = self._sent_request(branch, "INVITE")
                        if invite is not None:
                            self._ack(invite, message)
                return
            self._finished.add((branch, method))
        if message.status in (401, 407) and branch not in self._authenticated:
            if self._retry_with_credentials(message):
                return
        if method == "INVITE":
            self._invite_response(message)
        self.response_received(message)

    def response_received(self, message: Response) -> None:
        """Any response (after the agent's own handling); for subclasses."""

    # -- sending requests, retransmitted --------------------------------------

    def send_request(self, request: Request, destination: Address | None = None) -> Request:
        """
        Send C{request} to C{destination} (by default C{outbound}, else the
        Request-URI's host and port), retransmitted until a response comes.
        """
        if destination is None:
            destination = self.outbound or self._uri_address(request.uri)
        self.send(request, destination)
        if request.method != "ACK":
            branch = request.top_via.branch or ""
            self._retransmit(f"req:{branch}:{request.method}", request, destination, T1, 0.0)
        return request

    @staticmethod
    def _uri_address(uri: str) -> Address:
        """Where a SIP URI (or a name-addr holding one) points: its host and port."""
        text = uri.strip()
        if "<" in text:
            text = text.split("<", 1)[1].split(">", 1)[0]
        parsed = parse_uri(text)
        if not isinstance(parsed, SipURI):
            raise ValueError(f"not a SIP URI: {uri!r}")
        return (parsed.bare_host, parsed.port or 5060)

    def _retransmit(
        self, key: str, message: Message, destination: Address, interval: float, spent: float
    ) -> None:
        if spent + interval > 64 * T1:
            self._timers.pop(key, None)
            return

        def again() -> None:
            self.send(message, destination)
            self._retransmit(key, message, destination, min(interval * 2, T2), spent + interval)

        self._timers[key] = self.clock.callLater(interval, again)

    def _timers_cancel(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _sent_request(self, branch: str, method: str) -> Request | None:
        """The request this agent sent with C{branch} and C{method}."""
        for message, _ in reversed(self.sent):
            if (isinstance(message, Request) and message.method == method
                    and message.top_via.branch == branch):
                return message
        return None

    def _retry_with_credentials(self, challenge: Response) -> bool:
        if self.password is None:
            return False
        field = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        values = challenge.headers.get_all(field)
        if not values:
            return False
        try:
            digest = parse_auth_header(values[0]).as_challenge()
        except MessageParseError:
            return False
        original = self._sent_request(challenge.top_via.branch or "", challenge.cseq.method)
        if original is None:
            return False
        if original.method == "INVITE":
            self._ack(original, challenge)
        secret = ha1(digest.algorithm, self.user, digest.realm, self.password)
        qop = "auth" if "auth" in digest.qop else None
        cnonce = self._token("cnonce") if qop else None
        value = response(
            digest.algorithm, secret, original.method, original.uri, digest.nonce,
            qop=qop, nc="00000001" if qop else None, cnonce=cnonce,
        )
        params = [
            f'username="{self.user}"', f'realm="{digest.realm}"', f'nonce="{digest.nonce}"',
            f'uri="{original.uri}"', f'response="{value}"',
        ]
        if digest.algorithm:
            params.append(f"algorithm={digest.algorithm}")
        if digest.opaque is not None:
            params.append(f'opaque="{digest.opaque}"')
        if qop:
            params += [f"qop={qop}", "nc=00000001", f'cnonce="{cnonce}"']
        answer_field = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        retry = self.request(
            original.method,
            original.uri,
            *(f"{n}: {v}" for n, v in original.headers
              if n.lower() not in ("via", "max-forwards", "from", "to", "call-id", "cseq",
                                   "contact", "content-length", "content-type")),
            f"{answer_field}: Digest {', '.join(params)}",
            call_id=original.call_id,
            cseq=original.cseq.number + 1,
            to=original.headers.get("To"),
            from_tag=original.from_address.tag,
            body=original.body,
            content_type=original.headers.get("Content-Type") or "application/sdp",
        )
        self._authenticated.add(retry.top_via.branch or "")
        call = self.calls.get(original.call_id)
        if call is not None:
            call.invite, call.cseq = retry, retry.cseq.number
        self.send_request(retry)
        return True

    # -- INVITE transactions ---------------------------------------------------

    def _invite_response(self, message: Response) -> None:
        call = self.calls.get(message.call_id)
        if call is None:
            return
        call.statuses.append(message.status)
        if 100 < message.status < 200 and call.state == "calling":
            call.state = "early"
        elif 200 <= message.status < 300:
            if call.state not in ("confirmed", "ended"):
                call.state = "confirmed"
                call.remote_tag = message.to_address.tag
                call.remote_target = _contact_uri(message)
                call.route = tuple(reversed(message.headers.get_all("Record-Route")))
            self._ack_2xx(call, message)
        elif message.status >= 300:
            call.state = "failed"
            invite = self._sent_request(message.top_via.branch or "", "INVITE")
            self._ack(invite or call.invite, message)

    def _ack(self, invite: Request, final: Response) -> None:
        """The ACK of a non-2xx final response: same branch, hop by hop (17.1.1.3)."""
        lines = [
            f"ACK {invite.uri} SIP/2.0",
            f"Via: {invite.headers.get('Via')}",
            "Max-Forwards: 70",
            f"From: {invite.headers.get('From')}",
            f"To: {final.headers.get('To')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq.number} ACK",
            "Content-Length: 0",
            "",
            "",
        ]
        ack = parse_datagram("\r\n".join(lines).encode())
        destination = self.outbound or self._uri_address(invite.uri)
        self.send(ack, destination)

    def _ack_2xx(self, call: Call, ok: Response) -> None:
        self.send_request(self.in_dialog(call, "ACK", cseq=call.invite.cseq.number))

    def in_dialog(self, call: Call, method: str, *fields: str, cseq: int | None = None) -> Request:
        """A request in C{call}'s dialog (RFC 3261 12.2.1.1), its Route set included."""
        if cseq is None:
            call.cseq += 1
            cseq = call.cseq
        caller = call.invite.from_address.tag == call.local_tag
        remote = call.invite.headers.get("To" if caller else "From") or ""
        remote = remote.split(";tag=")[0]
        target = call.remote_target or call.invite.uri
        routes = [f"Route: {r}" for r in call.route]
        return self.request(
            method, target, *routes, *fields,
            call_id=call.call_id, cseq=cseq,
            to=f"{remote};tag={call.remote_tag}" if call.remote_tag else remote,
            from_tag=call.local_tag,
        )

    def send_in_dialog(self, request: Request, call: Call) -> Request:
        """Send an in-dialog request to its first Route (loose routing) or its target."""
        if call.route:
            destination = self._uri_address(call.route[0])
        else:
            destination = self._uri_address(request.uri)
        return self.send_request(request, destination)


class UAC(SipAgent):
    """A caller: L{invite}, L{bye}, L{cancel}."""

    def invite(self, uri: str, body: bytes = b"", *fields: str) -> Call:
        """Call C{uri}; the 2xx is ACKed, a failure too (the ACK of 17.1.1.3)."""
        request = self.request("INVITE", uri, *fields, body=body)
        tag = request.from_address.tag
        assert tag is not None
        call = Call(request.call_id, request, tag)
        self.calls[call.call_id] = call
        self.send_request(request)
        return call

    def bye(self, call: Call) -> Request:
        """Hang up a confirmed call."""
        call.state = "ended"
        return self.send_in_dialog(self.in_dialog(call, "BYE"), call)

    def cancel(self, call: Call) -> Request:
        """CANCEL an INVITE still ringing (RFC 3261 9.1: same branch, same CSeq number)."""
        invite = call.invite
        lines = [
            f"CANCEL {invite.uri} SIP/2.0",
            f"Via: {invite.headers.get('Via')}",
            "Max-Forwards: 70",
            f"From: {invite.headers.get('From')}",
            f"To: {invite.headers.get('To')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {invite.cseq.number} CANCEL",
            "Content-Length: 0",
            "",
            "",
        ]
        cancel = parse_datagram("\r\n".join(lines).encode())
        assert isinstance(cancel, Request)
        self.send(cancel, self.outbound or self._uri_address(invite.uri))
        return cancel


class UAS(SipAgent):
    """
    A callee: answers INVITE with C{ring} (180 first), then C{status}
    (200 by default, with C{sdp} as its body) C{answer_after} seconds
    later; BYE, CANCEL and OPTIONS get their answers.

    @ivar on_invite: called with each new INVITE, before the answer.
    """

    status = 200
    ring = True
    answer_after = 0.0
    sdp = b""
    on_invite: Callable[[Request], object] | None = None

    def request_received(self, request: Request, source: Address) -> None:
        method = request.method
        if method == "INVITE":
            self._incoming(request, source)
        elif method == "BYE":
            call = self.calls.get(request.call_id)
            if call is None:
                self.answer(request, source, 481)
                return
            call.state = "ended"
            self.answer(request, source, 200)
        elif method == "CANCEL":
            call = self.calls.get(request.call_id)
            self.answer(request, source, 200 if call is not None else 481)
            if call is not None and call.state in ("calling", "early"):
                self._timers_cancel(f"answer:{call.call_id}")
                call.state = "failed"
                self._final(call, source, 487)
        elif method == "OPTIONS":
            self.answer(request, source, 200, ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
        else:
            self.answer(request, source, 405, ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))

    def _incoming(self, invite: Request, source: Address) -> None:
        if invite.to_address.tag is not None:
            call = self.calls.get(invite.call_id)
            if call is None:
                self.answer(invite, source, 481)
                return
            self.answer(invite, source, 200, ("Contact", self.contact),
                        body=self.sdp, to_tag=call.local_tag)
            return
        call = Call(invite.call_id, invite, self._token("tag"), invite.from_address.tag)
        call.route = tuple(invite.headers.get_all("Record-Route"))
        call.remote_target = _contact_uri(invite)
        self.calls[call.call_id] = call
        if self.on_invite is not None:
            self.on_invite(invite)
        if self.ring:
            self.answer(invite, source, 180, ("Contact", self.contact), to_tag=call.local_tag)
            call.statuses.append(180)
            call.state = "early"
        if self.answer_after > 0:
            self._timers[f"answer:{call.call_id}"] = self.clock.callLater(
                self.answer_after, self._final, call, source, self.status
            )
        else:
            self._final(call, source, self.status)

    def _final(self, call: Call, source: Address, status: int) -> None:
        self._timers.pop(f"answer:{call.call_id}", None)
        fields = [("Contact", self.contact)] if status < 300 else []
        fields += [("Record-Route", r) for r in call.route] if status < 300 else []
        made = self.answer(call.invite, source, status, *fields,
                           body=self.sdp if status < 300 else b"", to_tag=call.local_tag)
        call.statuses.append(status)
        if status < 300:
            call.state = "early"  # confirmed by the ACK
            self._retransmit(f"2xx:{call.call_id}", made, source, T1, 0.0)
        else:
            call.state = "failed"


class Phone(UAC, UAS):
    """
    A phone: registers with its registrar (answering a digest challenge
    with C{password}), answers calls as L{UAS} does and places them as
    L{UAC} does.

    @ivar registered: whether the last REGISTER got a 2xx.
    """

    registered = False

    def register(self, registrar: Address | None = None, expires: int = 3600) -> Request:
        """REGISTER this phone's Contact for its AOR."""
        request = self.request(
            "REGISTER", f"sip:{self.domain}", f"Expires: {expires}",
            to=f"<{self.uri}>",
        )
        return self.send_request(request, registrar)

    def response_received(self, message: Response) -> None:
        if message.cseq.method == "REGISTER" and message.status >= 200:
            self.registered = 200 <= message.status < 300
