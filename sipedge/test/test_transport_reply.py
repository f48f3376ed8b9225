"""
Tests for L{sipedge.transport._reply}: where a response goes (RFC 3261
18.2.2, RFC 3581 4), for a server transaction and statelessly, and the
L{MessageSender} the transactions write through.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import TransportError
from sipedge.message import Message, Request, Response, parse_datagram
from sipedge.transport import ROUTES_KEPT, Flow, MessageSender, is_broadcast, response_flow

PROXY = "192.0.2.1"


def response(via: str) -> Response:
    """A 200 whose top Via is C{via} (after 'SIP/2.0/')."""
    text = (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/{via}\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
        "Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Response)
    return message


def flow_to(transport: str, host: str, port: int) -> Flow:
    """A stand-in for C{ITransportManager.flow_to}: from our listener."""
    if host == "198.51.100.99":
        raise TransportError("no route")
    return Flow(transport.upper(), PROXY, 5060, host, port)


UDP_IN = Flow("UDP", PROXY, 5060, "198.51.100.7", 40000)


class ResponseFlowTests(SynchronousTestCase):
    """Tests for L{response_flow}."""

    def test_rport(self) -> None:
        """
        With C{rport} filled in (RFC 3581), the response goes to the
        received address and the rport port, from the socket the request
        came to.
        """
        out = response_flow(
            response("UDP 10.0.0.5:5060;branch=z9hG4bK1;received=198.51.100.7;rport=40000"),
            UDP_IN,
            flow_to,
        )
        self.assertEqual(out, UDP_IN)

    def test_received_sent_by_port(self) -> None:
        """
        With C{received} and no C{rport}, the response goes to the received
        address at the sent-by port (18.2.2), not to the source port.
        """
        out = response_flow(
            response("UDP 10.0.0.5:5070;branch=z9hG4bK1;received=198.51.100.7"), UDP_IN, flow_to
        )
        self.assertEqual(out, Flow("UDP", PROXY, 5060, "198.51.100.7", 5070))

    def test_sent_by_port_not_source_port(self) -> None:
        """
        With neither C{received} nor C{rport} (the sent-by host is the
        source address), the response goes to the sent-by port, as a
        stateless response does: the client did not ask for symmetric
        responses (before the split, a server transaction answered the
        source port and a stateless response the sent-by port).
        """
        via = "UDP 198.51.100.7:5062;branch=z9hG4bK1"
        expected = Flow("UDP", PROXY, 5060, "198.51.100.7", 5062)
        self.assertEqual(response_flow(response(via), UDP_IN, flow_to), expected)
        self.assertEqual(response_flow(response(via), None, flow_to), expected)

    def test_not_stamped(self) -> None:
        """
        A Via naming a host without C{received} was not stamped (the
        answer to a malformed request): it goes back to the source.
        """
        out = response_flow(response("UDP c.example.com;branch=z9hG4bK1"), UDP_IN, flow_to)
        self.assertIs(out, UDP_IN)

    def test_default_port(self) -> None:
        """A sent-by without port means 5060 (5061 for a stateless TLS response)."""
        self.assertEqual(
            response_flow(response("UDP 198.51.100.7;branch=z9hG4bK1"), UDP_IN, flow_to),
            Flow("UDP", PROXY, 5060, "198.51.100.7", 5060),
        )
        self.assertEqual(
            response_flow(response("TLS 198.51.100.7;branch=z9hG4bK1"), None, flow_to),
            Flow("TLS", PROXY, 5060, "198.51.100.7", 5061),
        )

    def test_reliable_same_connection(self) -> None:
        """Over TCP the response goes back on the flow the request came on."""
        tcp = Flow("TCP", PROXY, 5060, "198.51.100.7", 40001)
        out = response_flow(
            response("TCP 10.0.0.5:5060;branch=z9hG4bK1;received=198.51.100.7"), tcp, flow_to
        )
        self.assertIs(out, tcp)

    def test_stateless_transport_from_via(self) -> None:
        """Statelessly, the top Via's transport and rport choose the flow."""
        out = response_flow(
            response("TCP 10.0.0.5:5060;branch=z9hG4bK1;received=198.51.100.7;rport=40001"),
            None,
            flow_to,
        )
        self.assertEqual(out, Flow("TCP", PROXY, 5060, "198.51.100.7", 40001))

    def test_broadcast(self) -> None:
        """
        A broadcast, multicast or unspecified address is never answered
        (RFC 4475 3.3.10), for a transaction as statelessly.
        """
        for host in ("255.255.255.255", "224.0.0.1", "0.0.0.0", "ff02::1"):
            via = f"UDP phone.invalid;branch=z9hG4bK1;received={host}"
            self.assertIsNone(response_flow(response(via), UDP_IN, flow_to), host)
            self.assertIsNone(response_flow(response(via), None, flow_to), host)
            self.assertTrue(is_broadcast(host))
        self.assertFalse(is_broadcast("phone.invalid"))

    def test_maddr_ignored(self) -> None:
        """C{maddr} does not steer a response (to a group or elsewhere)."""
        out = response_flow(
            response("UDP 198.51.100.7:5060;branch=z9hG4bK1;maddr=224.0.1.75"), UDP_IN, flow_to
        )
        self.assertEqual(out, Flow("UDP", PROXY, 5060, "198.51.100.7", 5060))

    def test_no_route(self) -> None:
        """Statelessly, C{flow_to}'s L{TransportError} comes through."""
        self.assertRaises(
            TransportError,
            response_flow,
            response("UDP 198.51.100.99:5060;branch=z9hG4bK1"),
            None,
            flow_to,
        )


class RecordingTransports:
    """Records C{send}; a remote in C{failing} fails asynchronously."""

    def __init__(self) -> None:
        self.sent: list[tuple[Message, Flow, str | None]] = []
        self.failing: set[tuple[str, int]] = set()

    def send(
        self, message: Message, flow: Flow, *, server_name: str | None = None
    ) -> Deferred[Flow] | None:
        self.sent.append((message, flow, server_name))
        if flow.remote in self.failing:
            return fail(TransportError("refused"))
        return None

    def flow_to(self, transport: str, host: str, port: int) -> Flow:
        return flow_to(transport, host, port)


class MessageSenderTests(SynchronousTestCase):
    """Tests for L{MessageSender}."""

    def setUp(self) -> None:
        self.transports = RecordingTransports()
        self.failed: list[tuple[Message, Failure]] = []
        self.sender = MessageSender(
            self.transports, request_failed=lambda m, f: self.failed.append((m, f))
        )

    def test_routes_responses(self) -> None:
        """A transaction's response goes where L{response_flow} says."""
        r = response("UDP 198.51.100.7:5062;branch=z9hG4bK1")
        self.sender.send(r, UDP_IN)
        self.assertEqual(
            self.transports.sent, [(r, Flow("UDP", PROXY, 5060, "198.51.100.7", 5062), None)]
        )

    def test_route_remembered(self) -> None:
        """
        The responses of one transaction (its flow, their top Via the same
        parsed value) are routed once: the second goes where the first
        went (the very flow value worked out for the first); another flow is
        routed anew.
        """
        trying = response("UDP 198.51.100.7:5062;branch=z9hG4bK1")
        # A copy carrying the parsed Vias, as a relayed response does.
        ringing = trying.with_headers(trying.headers, changed=())
        self.assertIs(ringing.top_via, trying.top_via)
        self.sender.send(trying, UDP_IN)
        self.sender.send(ringing, UDP_IN)
        other = Flow("UDP", PROXY, 5060, "198.51.100.7", 5062)
        self.sender.send(ringing, other)
        expected = Flow("UDP", PROXY, 5060, "198.51.100.7", 5062)
        self.assertEqual([f for _, f, _ in self.transports.sent], [expected] * 3)
        self.assertIs(self.transports.sent[0][1], self.transports.sent[1][1])

    def test_routes_bounded(self) -> None:
        """At most L{ROUTES_KEPT} routes are remembered, the oldest going first."""
        first = response("UDP 198.51.100.7:5062;branch=z9hG4bK0")
        self.sender.send(first, UDP_IN)
        for i in range(1, ROUTES_KEPT + 1):
            self.sender.send(response(f"UDP 198.51.100.7:5062;branch=z9hG4bKb{i}"), UDP_IN)
        routes = self.sender._routes
        self.assertEqual(len(routes), ROUTES_KEPT)
        self.assertNotIn(id(first.top_via), [id(via) for via, _, _ in routes.values()])

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "UDP 10.0.0.5:5060;branch=z9hG4bK1;received=198.51.100.7;rport=40000",
                        "UDP 198.51.100.7:5062;branch=z9hG4bK1",
                        "UDP 198.51.100.7;branch=z9hG4bK1;rport",
                        "TCP 198.51.100.7;branch=z9hG4bK1",
                        "UDP c.example.com;branch=z9hG4bK1",
                        "UDP x.invalid;branch=z9hG4bK1;received=0.0.0.0",
                        "UDP 198.51.100.7;branch=z9hG4bK1;rport=x",
                    ]
                ),
                st.sampled_from(
                    [
                        UDP_IN,
                        Flow("UDP", PROXY, 5060, "198.51.100.7", 5062),
                        Flow("TCP", PROXY, 5060, "198.51.100.7", 40001),
                        Flow("UDP", PROXY, 5060, "203.0.113.9", 5060),
                    ]
                ),
            ),
            max_size=20,
        )
    )
    def test_route_as_response_flow(self, sends: list[tuple[str, Flow]]) -> None:
        """
        Remembered or not, each response goes where L{response_flow} says
        (or nowhere when it says C{None}).
        """
        sender = MessageSender(RecordingTransports())
        parsed = {via: response(via) for via, _ in sends}
        for via, flow in sends:
            message = parsed[via]
            before = len(sender.transports.sent)
            sender.send(message, flow)
            expected = response_flow(message, flow, flow_to)
            sent = sender.transports.sent[before:]
            self.assertEqual([f for _, f, _ in sent], [] if expected is None else [expected])

    def test_broadcast_dropped(self) -> None:
        """A response for a broadcast address is not sent."""
        self.sender.send(response("UDP x.invalid;branch=z9hG4bK1;received=0.0.0.0"), UDP_IN)
        self.assertEqual(self.transports.sent, [])

    def test_outgoing_filter(self) -> None:
        """
        C{outgoing} sees every response after routing and may replace it
        or stop it (topology hiding is this filter).
        """
        seen: list[Flow] = []
        replacement = response("UDP 198.51.100.7:5062;branch=z9hG4bK2")

        def outgoing(r: Response, flow: Flow) -> Response | None:
            seen.append(flow)
            return replacement if len(seen) == 1 else None

        self.sender.outgoing = outgoing
        self.sender.send(response("UDP 198.51.100.7:5062;branch=z9hG4bK1"), UDP_IN)
        self.sender.send(response("UDP 198.51.100.7:5062;branch=z9hG4bK1"), UDP_IN)
        self.assertEqual([m for m, _, _ in self.transports.sent], [replacement])
        self.assertEqual([f.remote for f in seen], [("198.51.100.7", 5062)] * 2)

    def test_server_name(self) -> None:
        """A TLS flow we opened for a resolved name proves that name (RFC 5922)."""
        tls = Flow("TLS", PROXY, 5061, "198.51.100.8", 5061)
        self.sender.expect_server_name(tls, "sip.example.net")
        request = parse_datagram(
            b"OPTIONS sip:x@example.net SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK9\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.net>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        assert isinstance(request, Request)
        self.sender.send(request, tls)
        self.assertEqual(self.transports.sent[-1][2], "sip.example.net")

    def test_request_failure_reported(self) -> None:
        """A request the transports fail to write later is reported; a response is not."""
        request = parse_datagram(
            b"OPTIONS sip:x@example.net SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK9\r\n"
            b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.net>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        assert isinstance(request, Request)
        self.transports.failing.add(("198.51.100.8", 5060))
        self.sender.send(request, Flow("TCP", PROXY, 5060, "198.51.100.8", 5060))
        self.sender.send(
            response("UDP 198.51.100.8;branch=z9hG4bK1"), Flow("UDP", PROXY, 5060, "1.2.3.4", 9)
        )
        [(message, failure)] = self.failed
        self.assertIs(message, request)
        self.assertTrue(failure.check(TransportError))

    def test_send_response_stateless(self) -> None:
        """L{MessageSender.send_response} sends to the top Via, or says it could not."""
        ok = response("UDP 10.0.0.5:5070;branch=z9hG4bK1;received=198.51.100.7;rport=5071")
        self.assertTrue(self.sender.send_response(ok))
        self.assertEqual(self.transports.sent[-1][1].remote, ("198.51.100.7", 5071))
        self.assertFalse(self.sender.send_response(response("UDP 198.51.100.99;branch=z9hG4bK1")))
        self.assertFalse(
            self.sender.send_response(response("UDP x.invalid;branch=z9hG4bK1;received=0.0.0.0"))
        )
        self.assertEqual(len(self.transports.sent), 1)

    def test_send_stateless_failure_logged(self) -> None:
        """A stateless send that fails is logged, not raised."""
        self.transports.failing.add(("198.51.100.7", 5060))
        r = response("UDP 198.51.100.7;branch=z9hG4bK1")
        sent = self.sender.send_stateless(
            r, Flow("UDP", PROXY, 5060, "198.51.100.7", 5060), "failed: {error}"
        )
        self.assertTrue(sent)
        self.assertEqual(self.failed, [])

