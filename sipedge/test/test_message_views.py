# -*- test-case-name: sipedge.test.test_message_views -*-
"""
Parse once: L{sipedge.message.carry_views} and the C{changed} argument of
C{with_headers} give a derived message the typed views already parsed
from the fields that did not change, and those views are exactly what
parsing the derived message would give.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.flow import Flow
from sipedge.message import (
    Headers,
    Request,
    Response,
    Via,
    carry_views,
    compiled_modules,
    parse_datagram,
    parse_via,
    parse_views,
    remember_vias,
)
from sipedge.transport import stamp_via

VIEWS = (
    "call_id",
    "cseq",
    "vias",
    "from_address",
    "to_address",
    "routes",
    "record_routes",
    "contacts",
    "max_forwards",
    "expires",
)

INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-v1;rport\r\n"
    "Route: <sip:192.0.2.1;lr>, <sip:192.0.2.2;lr>\r\n"
    "Record-Route: <sip:192.0.2.9;lr>\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\n"
    "To: <sip:bob@example.com>\r\nCall-ID: views-1\r\nCSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@198.51.100.7:5060>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n"
)


def _views(message: Any) -> dict[str, Any]:
    """Every view of C{message}, or the error it raises."""
    out: dict[str, Any] = {}
    for name in (*VIEWS, "request_uri"):
        if name == "request_uri" and not isinstance(message, Request):
            continue
        try:
            out[name] = getattr(message, name)
        except MessageParseError as e:
            out[name] = ("error", e.reason)
    return out


def _fresh(message: Request) -> Request:
    """The same message with nothing parsed yet."""
    return Request(message.method, message.uri, message.headers, message.body, message.version)


VIA = "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x"
RR = "<sip:192.0.2.1;lr>"

#: Edits a proxy makes, and the fields each changes.
EDITS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "via on top": (lambda h: h.prepended("Via", VIA), ("Via",)),
    "via popped": (lambda h: h.first_removed("Via"), ("v",)),
    "route popped": (lambda h: h.first_removed("Route"), ("Route",)),
    "record-route": (lambda h: h.prepended("Record-Route", RR), ("Record-Route",)),
    "max-forwards": (lambda h: h.replaced("Max-Forwards", "69"), ("max-forwards",)),
    "to tag": (lambda h: h.replaced("To", "<sip:bob@example.com>;tag=b"), ("To",)),
    "bad cseq": (lambda h: h.replaced("CSeq", "x INVITE"), ("CSeq",)),
    "two contacts": (lambda h: h.added("Contact", "<sip:a@192.0.2.3>"), ("m",)),
    "no expires": (lambda h: h.removed("Expires"), ("Expires",)),
}

#: Edits made by the message's own methods, which carry the Via values too.
METHOD_EDITS: dict[str, Any] = {
    "via pushed": lambda m: m.with_via_pushed(VIA),
    "bad via pushed": lambda m: m.with_via_pushed("SIP/2.0/UDP bad host"),
    "list via pushed": lambda m: m.with_via_pushed(VIA + ", " + VIA + "-2"),
    "via value pushed": lambda m: m.with_via_pushed(
        Via(transport="udp", host="[2001:db8::1]", port=5062,
            params=(("branch", "z9hG4bK-o"), ("rport", None)))
    ),
    "route popped by the method": lambda m: m.with_route_popped(),
}

RESPONSE = (
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-a, "
    "SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK-c\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-b\r\n"
    "From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\n"
    "Call-ID: r\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def _fresh_response(message: Response) -> Response:
    """The same response with nothing parsed yet."""
    return Response(message.status, message.reason, message.headers, message.body, message.version)


class CarryViewsTests(SynchronousTestCase):
    """Derived messages keep the views of unchanged fields, and only those."""

    def invite(self) -> Request:
        message = parse_datagram(INVITE.encode())
        assert isinstance(message, Request)
        return message

    @given(
        edits=st.lists(st.sampled_from(sorted((*EDITS, *METHOD_EDITS))), max_size=4),
        parsed=st.sets(st.sampled_from(VIEWS)),
        new_uri=st.booleans(),
    )
    def test_same_as_parsing_again(self, edits: list[str], parsed: set[str], new_uri: bool) -> None:
        """
        Whatever views were parsed before and whatever fields changed
        (named as C{changed}, in any spelling), every view of the derived
        message equals the view of the same message parsed afresh.
        """
        source = self.invite()
        for name in parsed:
            try:
                getattr(source, name)
            except MessageParseError:
                pass
        message = source
        for edit in edits:
            if edit in METHOD_EDITS:
                message = METHOD_EDITS[edit](message)
                continue
            change, names = EDITS[edit]
            message = message.with_headers(change(message.headers), changed=names)
        if new_uri:
            message = message.with_uri("sip:bob@203.0.113.5")
        self.assertEqual(_views(message), _views(_fresh(message)))

    def test_kept_not_parsed_again(self) -> None:
        """The views of unchanged fields are kept; the changed one is parsed on use."""
        source = self.invite()
        source.vias  # noqa: B018
        to = source.to_address
        copy = source.with_headers(source.headers.prepended("Via", VIA), changed="Via")
        self.assertEqual(set(VIEWS) & set(copy.__dict__), {"to_address"})
        self.assertIs(copy.to_address, to)
        self.assertEqual(len(copy.vias), 2)

    def test_without_changed_nothing_kept(self) -> None:
        """Without C{changed}, nothing is carried over: every view is parsed again."""
        source = self.invite()
        to = source.to_address
        copy = source.with_headers(source.headers)
        self.assertNotIn("to_address", copy.__dict__)
        self.assertEqual(copy.to_address, to)

    def test_request_uri(self) -> None:
        """The parsed Request-URI is kept while the URI is the same, parsed again if not."""
        source = self.invite()
        uri = source.request_uri
        self.assertIs(source.with_headers(source.headers, changed=()).request_uri, uri)
        moved = source.with_uri("sip:carol@example.com")
        self.assertEqual(str(moved.request_uri), "sip:carol@example.com")
        self.assertIs(moved.to_address, source.to_address)

    def test_response(self) -> None:
        """A response popped of its Via keeps its other views and its flow."""
        message = parse_datagram(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-a\r\n"
            b"Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-b\r\n"
            b"From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\n"
            b"Call-ID: r\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        assert isinstance(message, Response)
        cseq = message.cseq
        message.vias  # noqa: B018
        upstream = message.with_headers(message.headers.first_removed("Via"), changed="Via")
        self.assertIs(upstream.cseq, cseq)
        self.assertEqual([v.branch for v in upstream.vias], ["z9hG4bK-b"])

    def test_carry_views_direct(self) -> None:
        """L{carry_views} works on a copy built directly, and returns it."""
        source = self.invite()
        call_id = source.call_id
        copy = Request("INVITE", source.uri, source.headers.replaced("Max-Forwards", "3"))
        self.assertIs(carry_views(source, copy, "Max-Forwards"), copy)
        self.assertIs(copy.call_id, call_id)
        self.assertEqual(copy.max_forwards, 3)


class ViaEditsTests(SynchronousTestCase):
    """
    The Via edits of a proxy (push, pop, stamp) carry the Via values they
    know: the same as parsing the derived message again.
    """

    @given(pops=st.integers(min_value=0, max_value=4), parsed=st.booleans())
    def test_popped(self, pops: int, parsed: bool) -> None:
        """
        A response popped of its top Via any number of times has the
        views a fresh parse gives, whether its Vias were parsed before.
        """
        message = parse_datagram(RESPONSE.encode())
        assert isinstance(message, Response)
        if parsed:
            message.vias  # noqa: B018
        for _ in range(pops):
            message = message.with_via_popped()
        self.assertEqual(_views(message), _views(_fresh_response(message)))

    def test_popped_keeps_flow(self) -> None:
        """The flow given to L{Response.with_via_popped} is the copy's, else its own."""
        message = parse_datagram(RESPONSE.encode())
        assert isinstance(message, Response)
        flow = Flow("UDP", "127.0.0.1", 5060, "192.0.2.1", 5060)
        popped = message.with_via_popped(flow)
        self.assertIs(popped.flow, flow)
        self.assertIs(popped.with_via_popped().flow, flow)

    def test_pushed_carries(self) -> None:
        """A pushed Via on parsed Vias is carried, not parsed again from the headers."""
        message = parse_datagram(INVITE.encode())
        assert isinstance(message, Request)
        below = message.vias
        pushed = message.with_via_pushed(VIA)
        self.assertIn("vias", pushed.__dict__)
        self.assertEqual(pushed.vias[1:], below)
        self.assertEqual(pushed.vias[0].branch, "z9hG4bK-x")

    def test_pushed_value_carries(self) -> None:
        """
        A pushed L{Via} value goes on top as its text, and is the copy's
        top Via itself when the Vias below were parsed.
        """
        message = parse_datagram(INVITE.encode())
        assert isinstance(message, Request)
        via = Via(transport="UDP", host="192.0.2.1", port=5060,
                  params=(("branch", "z9hG4bK-o"), ("rport", None)))
        below = message.vias
        pushed = message.with_via_pushed(via)
        self.assertEqual(
            pushed.headers.get("Via"), "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-o;rport"
        )
        self.assertIs(pushed.vias[0], via)
        self.assertEqual(pushed.vias[1:], below)
        self.assertEqual(_views(pushed), _views(_fresh(pushed)))

    @given(
        rport=st.sampled_from(["", ";rport", ";rport=9", ";RPort"]),
        received=st.sampled_from(["", ";received=10.0.0.1", ";Received=192.0.2.9"]),
        host=st.sampled_from(["198.51.100.7", "192.0.2.5", "Phone.example.com", "[2001:db8::1]"]),
        port=st.sampled_from(["", ":5060", ":05062"]),
        extra=st.sampled_from(["", ";x", ";ttl=3;maddr=192.0.2.4", ' ;  name = "q;v" ']),
        more=st.sampled_from(["", ", SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-z"]),
        parsed=st.booleans(),
    )
    def test_stamped(
        self, rport: str, received: str, host: str, port: str, extra: str, more: str, parsed: bool
    ) -> None:
        """
        A request stamped with where it came from (C{received}, C{rport})
        has the views a fresh parse of the stamped request gives.
        """
        text = INVITE.replace(
            "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-v1;rport",
            f"SIP/2.0/UDP {host}{port};branch=z9hG4bK-v1{rport}{received}{extra}{more}",
        )
        message = parse_datagram(text.encode())
        assert isinstance(message, Request)
        if parsed:
            message.to_address  # noqa: B018
        stamped = stamp_via(message, Flow("UDP", "127.0.0.1", 5060, "198.51.100.7", 5070))
        self.assertEqual(_views(stamped), _views(_fresh(stamped)))


def _with_via(text: str) -> Response:
    """A fresh response whose only Via field is C{text}."""
    return Response(200, "OK", parse_datagram(RESPONSE.encode()).headers.replaced("Via", text))


class ViaMemoTests(SynchronousTestCase):
    """The Vias a proxy writes are known when responses bring them back."""

    def test_pushed_value_known(self) -> None:
        """A response carrying a Via we pushed as a value gets that value, unparsed."""
        message = parse_datagram(INVITE.encode())
        assert isinstance(message, Request)
        via = Via(transport="UDP", host="192.0.2.1", port=5060,
                  params=(("branch", "z9hG4bK-memo-1"), ("rport", None)))
        pushed = message.with_via_pushed(via)
        text = pushed.headers.get("Via")
        assert text is not None
        self.assertIs(_with_via(text).vias[0], via)

    def test_stamped_known(self) -> None:
        """A response carrying the Via field we stamped gets the stamped value."""
        message = parse_datagram(INVITE.replace("views-1", "memo-2").encode())
        assert isinstance(message, Request)
        stamped = stamp_via(message, Flow("UDP", "127.0.0.1", 5060, "192.0.2.77", 40000))
        text = stamped.headers.get("Via")
        assert text is not None
        self.assertIs(_with_via(text).vias[0], stamped.vias[0])
        self.assertEqual(_with_via(text).vias, (parse_via(text),))

    def test_long_not_kept(self) -> None:
        """A Via text over 512 characters is not kept (parsed each time)."""
        text = "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-" + "x" * 500
        wrong = (parse_via("SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-other"),)
        remember_vias(text, wrong)
        self.assertEqual(_with_via(text).vias, (parse_via(text),))

    def test_bounded(self) -> None:
        """
        The memo keeps the 4,096 latest texts: an older one is parsed again
        (here told a wrong value on purpose, to see which one is used).
        """
        text = "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-memo-3"
        wrong = (parse_via("SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-other"),)
        remember_vias(text, wrong)
        self.assertEqual(_with_via(text).vias, wrong)
        for i in range(4096):
            remember_vias(f"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-fill-{i}", wrong)
        self.assertEqual(_with_via(text).vias, (parse_via(text),))


# Field lines for the views, well formed or not, in any spelling.
_VIEW_LINES = st.sampled_from(
    [
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x"),
        ("v", "SIP/2.0/UDP h1, SIP/2.0/TCP h2;rport"),
        ("Via", "bad via"),
        ("Call-ID", "c1"),
        ("i", "c 2"),
        ("Call-ID", ""),
        ("CSeq", "1 INVITE"),
        ("CSeq", "x"),
        ("From", "<sip:a@b>;tag=1"),
        ("f", "<bad"),
        ("To", "<sip:c@d>"),
        ("t", "sip:e@f;tag=2"),
        ("Max-Forwards", "70"),
        ("Max-Forwards", "300"),
        ("Contact", "*"),
        ("m", "<sip:g@h>, <sip:i@j>"),
        ("Contact", "<sip:k@l"),
        ("Record-Route", "<sip:p;lr>"),
        ("Route", "<sip:q;lr>, <sip:r;lr>"),
        ("Route", "<bad"),
        ("Expires", "60"),
        ("Expires", "-1"),
        ("X-Other", "1"),
    ]
)


class ParseViewsTests(SynchronousTestCase):
    """L{parse_views} is reading each view in turn, in one pass."""

    @given(
        fields=st.lists(_VIEW_LINES, max_size=10),
        names=st.lists(st.sampled_from(VIEWS), unique=True),
        before=st.sets(st.sampled_from(VIEWS)),
    )
    def test_same_as_reading_each(
        self, fields: list[tuple[str, str]], names: list[str], before: set[str]
    ) -> None:
        """
        For any fields and views, some parsed already: the same views are
        parsed, to the same values, or the same error is raised by the
        first malformed one, the views before it kept and none after.
        """
        headers = Headers.of(*fields)
        one, batch = (Request("INVITE", "sip:a@b", headers) for _ in range(2))
        for message in (one, batch):
            for name in before:
                try:
                    getattr(message, name)
                except MessageParseError:
                    pass
        expected: object = None
        for name in names:
            try:
                getattr(one, name)
            except MessageParseError as e:
                expected = (e.reason, e.status_hint)
                break
        try:
            parse_views(batch, tuple(names))
            outcome: object = None
        except MessageParseError as e:
            outcome = (e.reason, e.status_hint)
        self.assertEqual(outcome, expected)
        self.assertEqual(batch.__dict__, one.__dict__)

    def test_one_pass(self) -> None:
        """The views come from one walk over the fields, not a look-up each."""
        if "sipedge.message._headers" in compiled_modules():
            raise self.skipTest("Headers is a native class here: its look-ups cannot be counted")
        message = parse_datagram(INVITE.encode())
        assert isinstance(message, Request)
        looked_up: list[str] = []

        class Counting(Headers):
            def get_all(self, name: str) -> tuple[str, ...]:
                looked_up.append(name)
                return super().get_all(name)

        request = Request("INVITE", message.uri, Counting(message.headers.fields))
        parse_views(request, VIEWS)
        self.assertEqual(looked_up, [])
        self.assertEqual(_views(request), _views(_fresh(message)))
