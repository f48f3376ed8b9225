# -*- test-case-name: sipedge.test.test_pipeline -*-
"""
Tests for L{sipedge.pipeline}: the chain runner, the request context, the
stage results, the services and the plugin registry.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import LogLevel
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

import sipedge.plugins
from sipedge.error import ConfigError
from sipedge.flow import Flow
from sipedge.interfaces import IRequestStage, IRoutedStage, IStageFactory
from sipedge.message import Request, parse_datagram
from sipedge.pipeline import (
    Continue,
    Drop,
    Forward,
    RequestChain,
    RequestContext,
    Respond,
    StageResult,
    StageServices,
    Target,
    build_chain,
    stage_factories,
)
from sipedge.proxy import LocalIdentity
from sipedge.testing import capture_log

FLOW = Flow("UDP", "192.0.2.1", 5060, "198.51.100.7", 5060)

BUILT_IN = (
    "sanity",
    "max-forwards",
    "loop-detect",
    "route",
    "responsibility",
    "registrar",
    "location",
    "static-route",
    "forward",
)


def options_request() -> Request:
    lines = [
        "OPTIONS sip:bob@example.com SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-1",
        "Max-Forwards: 70",
        "From: <sip:alice@example.com>;tag=1",
        "To: <sip:bob@example.com>",
        "Call-ID: pipeline-1",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def services() -> StageServices:
    return StageServices(
        clock=Clock(),
        local=LocalIdentity(["example.com"], [("UDP", "192.0.2.1", 5060)]),
        trusted=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")),
    )


@implementer(IRequestStage)
class Stage:
    """A stage that records its calls and returns what it is given."""

    def __init__(self, name: str, result: Any, calls: list[str]) -> None:
        self.name = name
        self._result = result
        self._calls = calls

    def process_request(self, context: RequestContext) -> Any:
        self._calls.append(self.name)
        result = self._result
        if isinstance(result, BaseException):
            raise result
        if callable(result):
            return result(context)
        return result


class RequestChainTests(SynchronousTestCase):
    """Tests for L{RequestChain}."""

    def setUp(self) -> None:
        self.calls: list[str] = []
        self.context = RequestContext(options_request(), FLOW)
        self.events = capture_log(self)
        self.clock = Clock()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def chain(self, *results: Any) -> RequestChain:
        return RequestChain(
            [Stage(f"s{i}", result, self.calls) for i, result in enumerate(results)]
        )

    def later(self, result: Any) -> Any:
        """
        A stage body that answers with a Deferred firing with C{result}
        (raising it, if an exception) once the clock moves: the chain's
        asynchronous path.
        """

        def answer() -> Any:
            if isinstance(result, BaseException):
                raise result
            return result

        return lambda context: deferLater(self.clock, 0, answer)

    def deferred(self, result: StageResult | Deferred[StageResult]) -> Deferred[StageResult]:
        """
        C{result}, which must be a Deferred (the chain waited on a stage),
        once the clock has moved enough for every stage to answer.
        """
        self.assertIsInstance(result, Deferred)
        assert isinstance(result, Deferred)
        for _ in range(10):
            self.clock.advance(0)
        return result

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["log_level"] in (LogLevel.error, LogLevel.critical)]

    def test_order(self) -> None:
        """
        If stages continue, L{RequestChain.run} calls them in order until
        one decides, and returns that decision at once (no Deferred).
        """
        decision = Respond(404)
        result = self.chain(Continue(), Continue(), decision, Respond(500)).run(self.context)
        self.assertIs(result, decision)
        self.assertEqual(self.calls, ["s0", "s1", "s2"])

    def test_stage_logger(self) -> None:
        """
        If a stage logs through C{context.log}, the event's namespace names
        the stage (C{sipedge.stage.<name>}).
        """

        def log(context: RequestContext) -> Continue:
            context.log.info("hello {who}", who="world")
            return Continue()

        self.chain(log, Respond(404)).run(self.context)
        [event] = [e for e in self.events if e.get("who") == "world"]
        self.assertEqual(event["log_namespace"], "sipedge.stage.s0")

    def test_each_decision(self) -> None:
        """If a stage returns Forward or Drop, L{RequestChain.run} ends with it."""
        for decision in (Forward([Target("sip:a@b")]), Drop("flood")):
            self.calls.clear()
            self.assertIs(self.chain(decision, Respond(500)).run(self.context), decision)
            self.assertEqual(self.calls, ["s0"])

    def test_deferred(self) -> None:
        """
        If a stage returns a Deferred, L{RequestChain.run} returns a
        Deferred that fires with the decision of the stages after it.
        """
        pending: Deferred[Any] = Deferred()
        decision = Forward([Target("sip:bob@192.0.2.9")])
        d = self.chain(Continue(), lambda c: pending, Continue(), decision).run(self.context)
        self.assertIsInstance(d, Deferred)
        self.assertNoResult(d)
        self.assertEqual(self.calls, ["s0", "s1"])
        pending.callback(Continue())
        self.assertIs(self.successResultOf(self.deferred(d)), decision)
        self.assertEqual(self.calls, ["s0", "s1", "s2", "s3"])

    def test_deferred_decides(self) -> None:
        """If a stage's Deferred fires with a decision, the chain ends there."""
        d = self.chain(self.later(Respond(486)), Respond(500)).run(self.context)
        self.assertEqual(self.successResultOf(self.deferred(d)), Respond(486))
        self.assertEqual(self.calls, ["s0"])

    def test_two_deferreds(self) -> None:
        """If two stages return Deferreds, L{RequestChain.run} waits for both."""
        d = self.chain(self.later(Continue()), self.later(Continue()), Drop("x")).run(self.context)
        self.assertEqual(self.successResultOf(self.deferred(d)), Drop("x"))

    def test_stages_share_context(self) -> None:
        """
        If a stage replaces the request and leaves an annotation, later
        stages see both, and the original request stays.
        """
        original = self.context.request
        changed = original.with_uri("sip:carol@example.com")

        def replace(context: RequestContext) -> Continue:
            context.request = changed
            context.annotations["first"] = "seen"
            return Continue()

        def check(context: RequestContext) -> Respond:
            self.assertIs(context.request, changed)
            self.assertIs(context.original, original)
            self.assertEqual(context.annotations, {"first": "seen"})
            return Respond(200)

        self.assertEqual(self.chain(replace, check).run(self.context), Respond(200))

    def test_exception(self) -> None:
        """
        If a stage raises, L{RequestChain.run} answers 500, logs the failure
        with the stage's name, and calls no later stage.
        """
        result = self.chain(ZeroDivisionError("bug"), Respond(200)).run(self.context)
        self.assertEqual(result, Respond(500))
        self.assertEqual(self.calls, ["s0"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        [event] = self.errors()
        self.assertEqual(event["stage"], "s0")
        self.assertEqual(event["method"], "OPTIONS")

    def test_deferred_failure(self) -> None:
        """
        If a stage's Deferred fails, L{RequestChain.run}'s Deferred fires
        with 500 and the failure is logged.
        """
        d = self.chain(self.later(KeyError("store")), Respond(200)).run(self.context)
        self.assertEqual(self.successResultOf(self.deferred(d)), Respond(500))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(self.calls, ["s0"])

    def test_exception_after_deferred(self) -> None:
        """
        If a stage after a Deferred raises, the chain's Deferred fires with
        500, the failure is logged once, naming that stage.
        """
        d = self.chain(self.later(Continue()), ValueError("late")).run(self.context)
        self.assertEqual(self.successResultOf(self.deferred(d)), Respond(500))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual([e["stage"] for e in self.errors()], ["s1"])

    def test_bad_result(self) -> None:
        """
        If a stage returns something that is not a stage result,
        L{RequestChain.run} answers 500 and logs an error.
        """
        bads = (None, "forward", 404, Target("sip:a@b"))
        for bad in bads:
            self.assertEqual(self.chain(bad, Respond(200)).run(self.context), Respond(500))
        self.assertEqual([e["result"] for e in self.errors()], list(bads))

    def test_bad_result_deferred(self) -> None:
        """If a stage's Deferred fires with a non-result, the chain answers 500."""
        d = self.chain(self.later(None), Respond(200)).run(self.context)
        self.assertEqual(self.successResultOf(self.deferred(d)), Respond(500))
        self.assertEqual(self.calls, ["s0"])
        self.assertEqual(len(self.errors()), 1)

    def test_no_decision(self) -> None:
        """
        If no stage decides, L{RequestChain.run} answers 500 and logs a
        configuration error.
        """
        result = self.chain(Continue(), Continue()).run(self.context)
        self.assertIsInstance(result, Respond)
        assert isinstance(result, Respond)
        self.assertEqual(result.status, 500)
        self.assertEqual(len(self.errors()), 1)

    def test_empty(self) -> None:
        """If the chain is empty, L{RequestChain.run} answers 500."""
        result = RequestChain([]).run(self.context)
        assert isinstance(result, Respond)
        self.assertEqual(result.status, 500)

    def test_no_decision_after_deferred(self) -> None:
        """If no stage decides after a Deferred, the chain's Deferred fires with 500."""
        d = self.chain(self.later(Continue())).run(self.context)
        result = self.successResultOf(self.deferred(d))
        assert isinstance(result, Respond)
        self.assertEqual(result.status, 500)


class RequestContextTests(SynchronousTestCase):
    """Tests for L{RequestContext}."""

    def test_original(self) -> None:
        """
        If no original is given, L{RequestContext.original} is the request;
        replacing the request keeps it.
        """
        request = options_request()
        context = RequestContext(request, FLOW)
        self.assertIs(context.original, request)
        context.request = request.with_uri("sip:x@example.com")
        self.assertIs(context.original, request)
        self.assertIsNone(context.identity)

    def test_annotations_own(self) -> None:
        """If two contexts are made, L{RequestContext} gives each its own annotations."""
        a = RequestContext(options_request(), FLOW)
        b = RequestContext(options_request(), FLOW)
        a.annotations["x"] = 1
        self.assertEqual(b.annotations, {})


class ResultsTests(SynchronousTestCase):
    """Tests for the stage results."""

    def test_respond_status(self) -> None:
        """
        If L{Respond} is given a status outside 200-699, it raises
        ValueError (1xx are the proxy's own business).
        """
        for status in (100, 180, 199, 700, 0):
            self.assertRaises(ValueError, Respond, status)
        for status in (200, 404, 699):
            self.assertEqual(Respond(status).status, status)

    def test_respond_defaults(self) -> None:
        """If only a status is given, L{Respond} has no reason, headers or body."""
        self.assertEqual(Respond(403), Respond(403, None, (), b""))

    def test_forward_needs_targets(self) -> None:
        """If L{Forward} is given no target, it raises ValueError."""
        self.assertRaises(ValueError, Forward, [])
        self.assertRaises(ValueError, Forward, ())

    def test_forward_tuple(self) -> None:
        """If L{Forward} is given a list, it keeps a tuple (hashable, frozen)."""
        forward = Forward([Target("sip:a@b"), Target("sip:c@d", q=0.5)])
        self.assertEqual(forward.targets, (Target("sip:a@b"), Target("sip:c@d", q=0.5)))
        self.assertEqual(
            hash(forward), hash(Forward((Target("sip:a@b"), Target("sip:c@d", q=0.5))))
        )

    def test_target_defaults(self) -> None:
        """If only a URI is given, L{Target} has no flow, q 1.0 and no route."""
        target = Target("sip:a@b")
        self.assertEqual((target.flow, target.q, target.route), (None, 1.0, ()))

    def test_frozen(self) -> None:
        """If a result is changed in place, attrs refuses."""
        for value in (Continue(), Respond(404), Forward([Target("sip:a@b")]), Drop("x")):
            field = attrs.fields(type(value))
            if field:
                self.assertRaises(
                    attrs.exceptions.FrozenInstanceError, setattr, value, field[0].name, 1
                )

    def test_equality(self) -> None:
        """If two results hold the same values, they are equal."""
        self.assertEqual(Continue(), Continue())
        self.assertEqual(Drop("a"), Drop("a"))
        self.assertNotEqual(Drop("a"), Drop("b"))


class StageServicesTests(SynchronousTestCase):
    """Tests for L{StageServices}."""

    def test_is_trusted(self) -> None:
        """
        If a host is an IP address in a trusted network (IPv6 with or
        without brackets), L{StageServices.is_trusted} is true; otherwise,
        and for names, it is false.
        """
        s = services()
        self.assertTrue(s.is_trusted("10.1.2.3"))
        self.assertTrue(s.is_trusted("2001:db8::5"))
        self.assertTrue(s.is_trusted("[2001:db8::5]"))
        self.assertFalse(s.is_trusted("11.0.0.1"))
        self.assertFalse(s.is_trusted("example.com"))
        self.assertFalse(s.is_trusted(""))

    def test_nothing_trusted(self) -> None:
        """If no network is trusted, L{StageServices.is_trusted} is always false."""
        s = attrs.evolve(services(), trusted=())
        self.assertFalse(s.is_trusted("10.1.2.3"))
        self.assertFalse(s.is_trusted("127.0.0.1"))


class _NotAStage:
    name = "broken"


@implementer(IStageFactory)
class _Factory:
    def __init__(self, name: str, build: Any) -> None:
        self.name = name
        self.description = "test"
        self._build = build

    def build_stage(self, options: dict[str, Any], services: Any) -> Any:
        return self._build(options, services)


class RegistryTests(SynchronousTestCase):
    """Tests for L{stage_factories} and L{build_chain}."""

    def test_plugins_found(self) -> None:
        """
        If the built-in stages are installed, C{getPlugins(IStageFactory,
        sipedge.plugins)} finds every one, and L{stage_factories} lists them
        by name.
        """
        names = {p.name for p in getPlugins(IStageFactory, sipedge.plugins)}
        self.assertTrue(set(BUILT_IN) <= names, names)
        factories = stage_factories()
        self.assertTrue(set(BUILT_IN) <= set(factories))
        for name in BUILT_IN:
            self.assertEqual(factories[name].name, name)

    def test_factories_provide(self) -> None:
        """Each built-in factory provides L{IStageFactory} and C{IPlugin}."""
        for name, factory in stage_factories().items():
            self.assertTrue(verifyObject(IStageFactory, factory), name)
            self.assertTrue(IPlugin.providedBy(factory), name)
            self.assertTrue(factory.description, name)

    def test_stages_provide(self) -> None:
        """
        If the built-in chain is built, every stage provides
        L{IRequestStage} and carries its config name, in order.
        """
        chain = build_chain(BUILT_IN, {}, services())
        self.assertEqual(tuple(stage.name for stage in chain.stages), BUILT_IN)
        for stage in chain.stages:
            self.assertTrue(verifyObject(IRequestStage, stage))

    def test_unknown_stage(self) -> None:
        """
        If a stage name is unknown, L{build_chain} raises L{ConfigError}
        naming its place, the closest names and every installed one.
        """
        error = self.assertRaises(ConfigError, build_chain, ["sanity", "locaton"], {}, services())
        message = str(error)
        self.assertIn("pipeline.stages[1]", message)
        self.assertIn("'locaton'", message)
        self.assertIn("did you mean location", message)
        self.assertIn("installed:", message)

    def test_unknown_stage_no_suggestion(self) -> None:
        """If nothing is close, L{build_chain}'s error makes no suggestion."""
        error = self.assertRaises(ConfigError, build_chain, ["zzzzzz"], {}, services())
        self.assertNotIn("did you mean", str(error))

    def test_unknown_option(self) -> None:
        """
        If a stage is given an option it does not know, L{build_chain}
        raises L{ConfigError} naming the key.
        """
        error = self.assertRaises(
            ConfigError, build_chain, ["forward"], {"forward": {"speed": 3}}, services()
        )
        self.assertIn("pipeline.options.forward", str(error))
        self.assertIn("'speed'", str(error))
        error = self.assertRaises(
            ConfigError, build_chain, ["sanity"], {"sanity": {"suported": []}}, services()
        )
        self.assertIn("supported", str(error))

    def test_sanity_options(self) -> None:
        """
        If C{sanity.supported} is a list of option tags, L{build_chain}
        takes it; anything else is a L{ConfigError}.
        """
        build_chain(["sanity"], {"sanity": {"supported": ["timer"]}}, services())
        self.assertRaises(
            ConfigError, build_chain, ["sanity"], {"sanity": {"supported": "timer"}}, services()
        )
        self.assertRaises(
            ConfigError, build_chain, ["sanity"], {"sanity": {"supported": [1]}}, services()
        )

    def test_not_a_stage(self) -> None:
        """
        If a factory builds something that is not a request stage,
        L{build_chain} raises L{ConfigError}.
        """
        factories = {"broken": _Factory("broken", lambda o, s: _NotAStage())}
        error = self.assertRaises(ConfigError, build_chain, ["broken"], {}, None, factories)
        self.assertIn("'broken'", str(error))

    def test_factories_given(self) -> None:
        """
        If factories are given, L{build_chain} uses them, passing each its
        options (a copy) and the services.
        """
        seen: list[Any] = []
        s = services()

        def build(options: dict[str, Any], services: Any) -> Any:
            seen.append((options, services))
            return Stage("mine", Respond(200), [])

        options = {"mine": {"a": 1}}
        chain = build_chain(["mine", "mine"], options, s, {"mine": _Factory("mine", build)})
        self.assertEqual(len(chain.stages), 2)
        self.assertEqual(seen, [({"a": 1}, s), ({"a": 1}, s)])
        self.assertIsNot(seen[0][0], options["mine"])

    def test_empty_chain(self) -> None:
        """If no stage is named, L{build_chain} builds an empty chain."""
        self.assertEqual(build_chain([], {}, services()).stages, ())


@implementer(IRequestStage, IRoutedStage)
class RoutedStage(Stage):
    """A stage that continues, and answers C{outcome} when told the targets."""

    def __init__(self, name: str, outcome: Any, calls: list[str]) -> None:
        super().__init__(name, Continue(), calls)
        self.outcome = outcome
        self.told: list[Forward] = []

    def targets_chosen(self, context: RequestContext, forward: Forward) -> Any:
        self.told.append(forward)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class RoutedChainTests(SynchronousTestCase):
    """The hook after the routing decision: L{IRoutedStage}."""

    def setUp(self) -> None:
        self.calls: list[str] = []
        self.context = RequestContext(options_request(), FLOW)
        self.events = capture_log(self)
        self.forward = Forward((Target("sip:bob@192.0.2.9"),))

    def test_told_the_targets(self) -> None:
        """
        If the chain ends with Forward, every routed stage is told its
        targets, in chain order, after the deciding stage; Continue lets the
        Forward stand.
        """
        first = RoutedStage("r1", Continue(), self.calls)
        second = RoutedStage("r2", Continue(), self.calls)
        chain = RequestChain([first, second, Stage("decide", self.forward, self.calls)])
        verifyObject(IRoutedStage, first)
        self.assertEqual(chain.routed_stages, (first, second))
        self.assertIs(chain.run(self.context), self.forward)
        self.assertEqual(first.told, [self.forward])
        self.assertEqual(second.told, [self.forward])
        self.assertEqual(self.calls, ["r1", "r2", "decide"])

    def test_replaced(self) -> None:
        """A routed stage may answer in the Forward's place; later ones are not told."""
        first = RoutedStage("r1", Respond(488), self.calls)
        second = RoutedStage("r2", Continue(), self.calls)
        chain = RequestChain([first, second, Stage("decide", self.forward, self.calls)])
        self.assertEqual(chain.run(self.context), Respond(488))
        self.assertEqual(second.told, [])

    def test_not_told_without_forward(self) -> None:
        """If the chain answers the request itself, no routed stage is told."""
        routed = RoutedStage("r1", Continue(), self.calls)
        chain = RequestChain([routed, Stage("decide", Respond(404), self.calls)])
        self.assertEqual(chain.run(self.context), Respond(404))
        self.assertEqual(routed.told, [])

    def test_deferred(self) -> None:
        """A routed stage may answer with a Deferred: the chain's result waits for it."""
        waiting: Deferred[Any] = Deferred()
        routed = RoutedStage("r1", waiting, self.calls)
        chain = RequestChain([routed, Stage("decide", succeed(self.forward), self.calls)])
        result = chain.run(self.context)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        waiting.callback(Continue())
        self.assertIs(self.successResultOf(result), self.forward)

    def test_raises(self) -> None:
        """A routed stage that raises ends the request with 500 (logged)."""
        routed = RoutedStage("r1", RuntimeError("boom"), self.calls)
        chain = RequestChain([routed, Stage("decide", self.forward, self.calls)])
        self.assertEqual(chain.run(self.context), Respond(500))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bad_outcome(self) -> None:
        """A routed stage that returns something else ends the request with 500."""
        routed = RoutedStage("r1", "yes", self.calls)
        chain = RequestChain([routed, Stage("decide", self.forward, self.calls)])
        self.assertEqual(chain.run(self.context), Respond(500))
