"""
Tests for the blocklist stage: run them with
C{python -m twisted.trial test_sipedge_blocklist}.
"""

from __future__ import annotations

from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IStageFactory
from sipedge.message import Request, parse_datagram
from sipedge.pipeline import Continue, Drop, RequestContext, Respond
from sipedge.transport import Flow
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge_blocklist import BlocklistFactory

FLOW = Flow("UDP", "192.0.2.1", 5060, "203.0.113.9", 5070)
OPTIONS = {"block": ["sipvicious@*", "*@198.51.100.*"], "mark": "X-Screened: yes"}


def invite(caller: str, *fields: str, method: str = "INVITE") -> Request:
    """A request from C{caller} (a From value) with extra C{fields}."""
    lines = [
        f"{method} sip:bob@sipedge.test SIP/2.0",
        "Via: SIP/2.0/UDP 203.0.113.9:5070;branch=z9hG4bK-1",
        "Max-Forwards: 70",
        f"From: {caller};tag=1",
        "To: <sip:bob@sipedge.test>",
        "Call-ID: call-1",
        f"CSeq: 1 {method}",
        *fields,
        "Content-Length: 0",
    ]
    request = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(request, Request)
    return request


class BlocklistStageTests(SynchronousTestCase):
    """Tests for L{sipedge_blocklist.BlocklistStage}."""

    def setUp(self) -> None:
        self.stage = BlocklistFactory().build_stage(dict(OPTIONS), None)
        self.events: list[dict] = []

    def run_stage(self, request: Request) -> tuple[object, RequestContext]:
        context = RequestContext(request, FLOW, log=Logger(observer=self.events.append))
        return self.stage.process_request(context), context

    def test_interface(self) -> None:
        """The stage provides L{IRequestStage}, named C{blocklist}."""
        self.assertTrue(verifyObject(IRequestStage, self.stage))
        self.assertEqual(self.stage.name, "blocklist")

    def test_blocked_user(self) -> None:
        """If the From user matches a rule, the stage answers 403 and logs the rule."""
        result, _ = self.run_stage(invite("<sip:sipvicious@203.0.113.9>"))
        self.assertEqual(result, Respond(403))
        [event] = self.events
        self.assertEqual(event["rule"], "sipvicious@*")
        self.assertEqual(event["caller"], "sipvicious@203.0.113.9")
        self.assertEqual(event["method"], "INVITE")

    def test_blocked_host(self) -> None:
        """If the From host matches a rule, the stage answers 403."""
        result, _ = self.run_stage(invite('"Eve" <sip:eve@198.51.100.20>'))
        self.assertEqual(result, Respond(403))
        self.assertEqual(self.events[0]["rule"], "*@198.51.100.*")

    def test_user_is_case_sensitive(self) -> None:
        """If only the case of the user differs, the rule does not match."""
        result, _ = self.run_stage(invite("<sip:SIPVicious@203.0.113.9>"))
        self.assertEqual(result, Continue())

    def test_tel_caller(self) -> None:
        """If the From is a C{tel:} URI, its number is the user, with an empty host."""
        stage = BlocklistFactory().build_stage({"block": ["+1900*@*"]}, None)
        context = RequestContext(invite("<tel:+19005550100>"), FLOW)
        self.assertEqual(stage.process_request(context), Respond(403))

    def test_ack_dropped(self) -> None:
        """If a blocked caller sends an ACK, which cannot be answered, the stage drops it."""
        result, _ = self.run_stage(invite("<sip:sipvicious@x.test>", method="ACK"))
        self.assertIsInstance(result, Drop)

    def test_others_marked(self) -> None:
        """If no rule matches, the stage goes on with the mark replacing any sent."""
        request = invite("<sip:alice@sipedge.test>", "X-Screened: forged")
        result, context = self.run_stage(request)
        self.assertEqual(result, Continue())
        self.assertEqual(context.request.headers.get_all("X-Screened"), ("yes",))
        self.assertIs(context.original, request)
        self.assertEqual(self.events, [])


class BlocklistFactoryTests(SynchronousTestCase):
    """Tests for L{sipedge_blocklist.BlocklistFactory}."""

    def test_interface(self) -> None:
        """The factory provides L{IStageFactory}."""
        self.assertTrue(verifyObject(IStageFactory, BlocklistFactory()))

    def test_bad_options(self) -> None:
        """If an option is bad, the factory raises L{ConfigError} naming it."""
        for options, key in [
            ({"blok": []}, "pipeline.options.blocklist.blok:"),
            ({"block": "eve@*"}, "pipeline.options.blocklist.block:"),
            ({"block": ["eve@*", "eve"]}, "pipeline.options.blocklist.block[1]:"),
            ({"mark": "no colon"}, "pipeline.options.blocklist.mark:"),
        ]:
            with self.assertRaises(ConfigError) as raised:
                BlocklistFactory().build_stage(options, None)
            self.assertTrue(str(raised.exception).startswith(key), str(raised.exception))
