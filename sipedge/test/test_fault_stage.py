# -*- test-case-name: sipedge.test.test_fault_stage -*-
"""
Tests for the C{fault} stage (L{sipedge.pipeline.stages._fault}): its
rules, its configuration errors, and the stage in a whole proxy core.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.error import ConfigError
from sipedge.interfaces import IRequestStage, IResponseStage, IStageFactory
from sipedge.pipeline import Continue, Drop, RequestContext, build_chain, stage_factories
from sipedge.pipeline.stages import FaultStage, rules_from_options
from sipedge.testing import (
    ALICE,
    BOB,
    BOB_UDP,
    STAGES,
    UPSTREAM,
    ProxyHarness,
    sip_answer,
    sip_request,
)


def stage(*rules: dict[str, Any], seed: int = 0, clock: Any = None) -> FaultStage:
    """A fault stage with C{rules}, as the plugin builds it."""
    built, seed = rules_from_options({"rules": list(rules), "seed": seed})
    return FaultStage(built, clock if clock is not None else Clock(), seed)


def invite(*fields: str, call_id: str = "call-1") -> Any:
    return sip_request("INVITE", "sip:bob@example.com", *fields, call_id=call_id)


class PluginTests(SynchronousTestCase):
    """The C{fault} plugin."""

    def test_registered(self) -> None:
        """C{fault} is a stage factory; it builds a request and response stage."""
        factory = stage_factories()["fault"]
        self.assertTrue(verifyObject(IStageFactory, factory))
        built = factory.build_stage({}, _Services())
        self.assertTrue(verifyObject(IRequestStage, built))
        self.assertTrue(verifyObject(IResponseStage, built))
        self.assertEqual(built.name, "fault")

    def test_not_default(self) -> None:
        """The fault stage is in no default chain: a lab lists it on purpose."""
        from sipedge.config import DEFAULT_CONFIG

        self.assertNotIn("fault", DEFAULT_CONFIG.pipeline.stages)

    def test_unknown_option(self) -> None:
        """An unknown option is a ConfigError naming it."""
        with self.assertRaises(ConfigError) as e:
            stage_factories()["fault"].build_stage({"rule": []}, _Services())
        self.assertIn("'rule'", str(e.exception))


class _Services:
    clock = Clock()


class RequestRuleTests(SynchronousTestCase):
    """Rules on the request side."""

    def test_no_rules(self) -> None:
        """Without rules every request goes on untouched."""
        context = RequestContext(invite(), ALICE)
        self.assertEqual(stage().process_request(context), Continue())

    def test_drop_by_method(self) -> None:
        """A drop rule for INVITE drops INVITEs, and only them."""
        fault = stage({"action": "drop", "method": "INVITE"})
        self.assertIsInstance(fault.process_request(RequestContext(invite(), ALICE)), Drop)
        options = sip_request("OPTIONS", "sip:bob@example.com")
        self.assertEqual(fault.process_request(RequestContext(options, ALICE)), Continue())
        self.assertEqual(list(fault.hits), [("drop", "INVITE sip:bob@example.com")])

    def test_header_match(self) -> None:
        """C{header} and C{match}: only requests whose field matches."""
        fault = stage({"action": "drop", "header": "User-Agent", "match": "^Buggy/"})
        hit = RequestContext(invite("User-Agent: Buggy/1.0"), ALICE)
        missed = RequestContext(invite("User-Agent: Fine/2.0"), ALICE)
        absent = RequestContext(invite(), ALICE)
        self.assertIsInstance(fault.process_request(hit), Drop)
        self.assertEqual(fault.process_request(missed), Continue())
        self.assertEqual(fault.process_request(absent), Continue())

    def test_mangle(self) -> None:
        """C{mangle} replaces the C{set} fields and removes the C{remove} ones."""
        fault = stage({"action": "mangle", "set": {"Subject": "mangled"}, "remove": ["Allow"]})
        context = RequestContext(invite("Allow: INVITE, ACK", "Subject: hello"), ALICE)
        self.assertEqual(fault.process_request(context), Continue())
        self.assertEqual(context.request.headers.get_all("Subject"), ("mangled",))
        self.assertEqual(context.request.headers.get_all("Allow"), ())
        self.assertEqual(context.original.headers.get_all("Subject"), ("hello",))

    def test_delay(self) -> None:
        """C{delay}: the request goes on C{seconds} later on the clock."""
        clock = Clock()
        fault = stage({"action": "delay", "seconds": 2.5}, clock=clock)
        result = fault.process_request(RequestContext(invite(), ALICE))
        assert isinstance(result, Deferred)
        clock.advance(2.4)
        self.assertNoResult(result)
        clock.advance(0.1)
        self.assertEqual(self.successResultOf(result), Continue())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_delay_cancelled(self) -> None:
        """Cancelling a delayed request (the chain's timeout) leaves no timer."""
        clock = Clock()
        fault = stage({"action": "delay", "seconds": 5}, clock=clock)
        result = fault.process_request(RequestContext(invite(), ALICE))
        assert isinstance(result, Deferred)
        result.cancel()
        self.failureResultOf(result)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_first_rule_wins(self) -> None:
        """Rules are tried in order; the first that matches acts."""
        fault = stage(
            {"action": "mangle", "method": "INVITE", "set": {"X-Seen": "1"}},
            {"action": "drop"},
        )
        context = RequestContext(invite(), ALICE)
        self.assertEqual(fault.process_request(context), Continue())
        bye = sip_request("BYE", "sip:bob@example.com")
        self.assertIsInstance(fault.process_request(RequestContext(bye, ALICE)), Drop)

    def test_probability_seeded(self) -> None:
        """
        C{probability}: about that share of matching requests is hit, and
        the same seed hits the same requests.
        """
        def run(seed: int) -> list[bool]:
            fault = stage({"action": "drop", "probability": 0.3}, seed=seed)
            return [
                isinstance(fault.process_request(RequestContext(invite(), ALICE)), Drop)
                for _ in range(400)
            ]

        first = run(11)
        self.assertEqual(first, run(11))
        self.assertNotEqual(first, run(12))
        self.assertTrue(80 < sum(first) < 160, sum(first))

    def test_hits_bounded(self) -> None:
        """The stage remembers its last KEEP_HITS hits only."""
        fault = stage({"action": "drop"})
        for n in range(FaultStage.KEEP_HITS + 5):
            fault.process_request(RequestContext(invite(call_id=f"c{n}"), ALICE))
        self.assertEqual(len(fault.hits), FaultStage.KEEP_HITS)

    def test_probability_zero(self) -> None:
        """A probability of 0 never hits."""
        fault = stage({"action": "drop", "probability": 0})
        for _ in range(50):
            self.assertEqual(fault.process_request(RequestContext(invite(), ALICE)), Continue())


class ResponseRuleTests(SynchronousTestCase):
    """Rules on the response side."""

    def test_requests_only_by_default(self) -> None:
        """A rule without C{direction} leaves responses alone."""
        fault = stage({"action": "drop"})
        response = sip_answer(invite(), 180)
        self.assertIs(fault.process_response(None, response), response)

    def test_drop_by_status(self) -> None:
        """A response rule with C{status} absorbs those statuses only."""
        fault = stage({"action": "drop", "direction": "response", "status": [180, 183]})
        self.assertIsNone(fault.process_response(None, sip_answer(invite(), 180)))
        ok = sip_answer(invite(), 200)
        self.assertIs(fault.process_response(None, ok), ok)

    def test_method_of_response(self) -> None:
        """C{method} matches a response's CSeq method."""
        fault = stage({"action": "drop", "direction": "both", "method": "BYE"})
        bye = sip_request("BYE", "sip:bob@example.com", cseq=2)
        self.assertIsNone(fault.process_response(None, sip_answer(bye, 200)))
        ok = sip_answer(invite(), 200)
        self.assertIs(fault.process_response(None, ok), ok)

    def test_delay_and_mangle(self) -> None:
        """A response is delayed on the clock, or mangled."""
        clock = Clock()
        fault = stage(
            {"action": "delay", "direction": "response", "status": 180, "seconds": 1},
            {"action": "mangle", "direction": "response", "set": {"Server": "lab"}},
            clock=clock,
        )
        ringing = sip_answer(invite(), 180)
        result = fault.process_response(None, ringing)
        assert isinstance(result, Deferred)
        clock.advance(1)
        self.assertIs(self.successResultOf(result), ringing)
        ok = fault.process_response(None, sip_answer(invite(), 200))
        assert ok is not None and not isinstance(ok, Deferred)
        self.assertEqual(ok.headers.get_all("Server"), ("lab",))


class ConfigErrorTests(SynchronousTestCase):
    """Every mistake in C{[pipeline.options.fault]} names its key."""

    def error(self, options: dict[str, Any]) -> str:
        with self.assertRaises(ConfigError) as e:
            rules_from_options(options)
        return str(e.exception)

    def test_errors(self) -> None:
        """Each bad rule or option gets an error naming its key."""
        cases: list[tuple[dict[str, Any], str]] = [
            ({"rules": {}}, "pipeline.options.fault.rules: must be a list"),
            ({"seed": "x"}, "pipeline.options.fault.seed: must be an integer"),
            ({"rules": [1]}, "rules[0]: must be a table"),
            ({"rules": [{"action": "explode"}]}, "rules[0].action: must be one of"),
            ({"rules": [{"action": "drop", "colour": 1}]}, "rules[0].colour: unknown key"),
            ({"rules": [{"action": "drop", "direction": "up"}]}, "rules[0].direction"),
            ({"rules": [{"action": "drop", "method": "IN VITE"}]}, "rules[0].method"),
            ({"rules": [{"action": "drop", "status": 180}]}, "rules[0].status: a status"),
            ({"rules": [{"action": "drop", "direction": "response", "status": 99}]},
             "rules[0].status"),
            ({"rules": [{"action": "drop", "match": "x"}]}, "rules[0].match: needs header"),
            ({"rules": [{"action": "drop", "header": "To", "match": "("}]},
             "rules[0].match: not a regular expression"),
            ({"rules": [{"action": "drop", "probability": 2}]}, "rules[0].probability"),
            ({"rules": [{"action": "delay"}]}, "rules[0].seconds: a delay needs seconds"),
            ({"rules": [{"action": "delay", "seconds": 301}]}, "rules[0].seconds"),
            ({"rules": [{"action": "drop", "seconds": 1}]}, "rules[0].seconds: only for"),
            ({"rules": [{"action": "mangle"}]}, "rules[0]: mangle needs set or remove"),
            ({"rules": [{"action": "mangle", "set": {"X": "a\r\nY: b"}}]},
             "rules[0].set.X: a value cannot hold a line break"),
            ({"rules": [{"action": "mangle", "remove": "Allow"}]}, "rules[0].remove"),
            ({"rules": [{"action": "drop", "set": {"X": "1"}}]}, "rules[0]: set and remove"),
        ]
        for options, expected in cases:
            self.assertIn(expected, self.error(options), options)


class InProxyTests(ProxyHarness, SynchronousTestCase):
    """The stage first in a whole proxy core's chain."""

    rules: list[dict[str, Any]] = [{"action": "drop", "method": "INVITE", "probability": 0.5}]

    def make_core(self, chain: Any = None, **extra: Any) -> Any:
        options = {"fault": {"rules": self.rules, "seed": 3}}
        chain = build_chain(("fault", *STAGES), options, self.services)
        return super().make_core(chain, **extra)

    def test_dropped_invite_retransmitted(self) -> None:
        """
        An INVITE the fault stage drops is not forwarded: Alice gets only
        the 100 Trying the core sends before the chain runs, and her
        retransmissions are decided again, each with its own dice, until
        one passes and reaches Bob.
        """
        self.register("sip:bob@203.0.113.5:5060", BOB_UDP)
        attempts = 0
        while not self.sent_to(BOB, "INVITE") and attempts < 20:
            attempts += 1
            self.receive(sip_request("INVITE", "sip:bob@example.com"), ALICE)
        self.assertGreater(attempts, 1)
        self.only(BOB, "INVITE")
        self.assertEqual(self.statuses(UPSTREAM), [100])
        forwarded = self.only(BOB, "INVITE")
        self.take()
        self.receive(sip_answer(forwarded, 486), BOB_UDP)
        self.assertEqual(self.statuses(UPSTREAM), [486])
